//! What the loader refuses, with the messages and errno FreeBSD gives.

mod common;

use common::*;
use kld::{Import, LoadError};

fn fail(ko: &std::path::Path, resolver: &Table, o: &kld::LoadOptions) -> LoadError {
    match kld::load(ko, resolver, o) {
        Ok(m) => {
            let md = m.metadata();
            m.unmap();
            panic!("{} loaded, metadata {md:?}", ko.display())
        }
        Err(e) => {
            println!("{e}");
            e
        }
    }
}

fn unsupported_line(ko: &std::path::Path) -> String {
    format!("linker_load_file: {} - unsupported file type", ko.display())
}

const ENOEXEC_MSG: &str = "kldload: an error occurred while loading module";

#[test]
fn refuses_an_import_the_resolver_lacks() {
    let ko = c_module(
        "unknown_import",
        r#"
void kpi_missing(int);
void fixture_call(void);
void fixture_call(void) { kpi_missing(1); }
"#,
        1500068,
    );
    let e = fail(&ko, &Table(vec![]), &opts(1500068));
    assert!(matches!(&e, LoadError::UndefinedSymbol { symbol, .. } if symbol == "kpi_missing"));
    assert_eq!(
        e.console(),
        [
            "link_elf_obj: symbol kpi_missing undefined".to_string(),
            unsupported_line(&ko)
        ]
    );
    assert_eq!(e.errno(), kld::ENOEXEC);
    assert!(e.kldload_message().starts_with(ENOEXEC_MSG));
    assert!(e
        .to_string()
        .contains("link_elf_obj: symbol kpi_missing undefined"));
}

#[test]
fn refuses_a_geom_class_without_g_modevent() {
    // DECLARE_GEOM_CLASS's moduledata points at g_modevent: a kernel
    // without GEOM (here: a resolver without it) cannot link the module.
    let ko = c_module(
        "no_g_modevent",
        r#"
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/sx.h>
#include <geom/geom.h>

static struct g_class fixture_class = {
	.name = "FIXTURE",
	.version = G_VERSION,
};
DECLARE_GEOM_CLASS(fixture_class, g_fixture);
"#,
        1500068,
    );
    let r = Table(vec![(
        "module_register_init",
        Import::Func(must_not_run as *const () as usize),
    )]);
    let e = fail(&ko, &r, &opts(1500068));
    assert!(matches!(&e, LoadError::UndefinedSymbol { symbol, .. } if symbol == "g_modevent"));
    assert_eq!(e.console()[0], "link_elf_obj: symbol g_modevent undefined");
}

/// `test`.ko linked from the one source `src` (`ext` "c" or "s") built
/// for 1500068 with the `extra` compiler flags.
fn one_source_module(test: &str, src: &str, ext: &str, extra: &[&str]) -> std::path::PathBuf {
    let dir = scratch(test);
    let o = compile(&dir, test, src, ext, 1500068, extra);
    link(&dir, test, &[o])
}

fn gotpcrel_module(test: &str, extra: &[&str]) -> std::path::PathBuf {
    one_source_module(
        test,
        r#"
extern int kpi_value;
void *fixture_lock(void);
void *
fixture_lock(void)
{
	void *p;
	__asm__("movq kpi_value@GOTPCREL(%%rip), %0" : "=r"(p));
	return (p);
}
"#,
        "c",
        extra,
    )
}

/// Loading `ko` is refused for a relocation of type `rtype` against the
/// global `global` (`kpi_value`, which the resolver then has as data), or
/// against a local when None; the messages name the file.
fn expect_unexpected(ko: &std::path::Path, rtype: u32, global: Option<&str>) {
    let resolver = match global {
        Some(_) => data_resolver(),
        None => Table(vec![]),
    };
    let e = fail(ko, &resolver, &opts(1500068));
    let LoadError::UnexpectedRelocation {
        rtype: got, symidx, ..
    } = &e
    else {
        panic!(
            "{}: expected an unexpected-relocation refusal, got {e:?}",
            ko.display()
        );
    };
    assert_eq!(*got, rtype, "{}", ko.display());
    let mut want = vec![format!(
        "kldload: unexpected relocation type {rtype}, symbol index {symidx}"
    )];
    if let Some(name) = global {
        want.push(format!("link_elf_obj: symbol {name} undefined"));
    }
    want.push(unsupported_line(ko));
    assert_eq!(e.console(), want);
    assert_eq!(e.errno(), kld::ENOEXEC, "{}", ko.display());
}

fn data_resolver() -> Table {
    let p = kld::low_alloc(8, 8).unwrap() as usize;
    Table(vec![("kpi_value", Import::Data(p))])
}

/// `test`.ko whose one function loads the address of `sym` with
/// `movl $sym, %eax` (an R_X86_64_32), followed by `data`.
fn r32_module(test: &str, sym: &str, data: &str) -> std::path::PathBuf {
    let src =
        format!("\t.text\n\t.globl fixture_f\nfixture_f:\n\tmovl ${sym}, %eax\n\tret\n{data}");
    one_source_module(test, &src, "s", &[])
}

/// Relocation types the kernel does not apply are refused, each case
/// named by its module's file in the messages: GOTPCREL, REX_GOTPCRELX,
/// and R_X86_64_32 against a global and against a local. Local
/// relocations are applied first; a failure there is ENOEXEC with only
/// the relocation line (the local is not named).
#[test]
fn refuses_unexpected_relocations() {
    let (no_relax, kpi) = (["-Wa,-mrelax-relocations=no"], Some("kpi_value"));
    let local = "\t.data\nfixture_local:\n\t.long 1\n";
    let cases = [
        (gotpcrel_module("gotpcrel", &no_relax), 9, kpi),
        (gotpcrel_module("rex_gotpcrelx", &[]), 42, kpi),
        (r32_module("r32_global", "kpi_value", ""), 10, kpi),
        (r32_module("r32_local", "fixture_local", local), 10, None),
    ];
    for (ko, rtype, global) in cases {
        expect_unexpected(&ko, rtype, global);
    }
}

const DECLARED: &str = concat!(
    module_headers!(),
    fixture_module!(),
    r#"MODULE_VERSION(fixture, 3);
"#
);

fn declared_resolver() -> Table {
    Table(vec![(
        "module_register_init",
        Import::Func(must_not_run as *const () as usize),
    )])
}

fn kernel_range(m: &kld::Module) -> (i32, i32, i32) {
    kernel_depend(&m.metadata()).expect("an MDT_DEPEND on kernel")
}

#[test]
fn refuses_empty_kernel_range() {
    // Built as the module was: __FreeBSD_version 1500000, so
    // MODULE_KERNEL_MAXVER = roundup(1500000, 100000) - 1 = 1499999 and the
    // kernel range is 1500000..=1499999, preferred 1500000.
    let ko = c_module("empty_range", DECLARED, 1500000);
    let e = fail(&ko, &declared_resolver(), &opts(1500068));
    let LoadError::Dependency {
        module,
        min,
        pref,
        max,
        ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(
        (module.as_str(), *min, *pref, *max),
        ("kernel", 1500000, 1500000, 1499999)
    );
    assert_eq!(
        e.console(),
        [
            "KLD empty_range.ko: depends on kernel - not available or version mismatch".to_string(),
            unsupported_line(&ko)
        ]
    );
    assert_eq!(e.errno(), kld::ENOEXEC);
    assert!(e.to_string().contains("(an empty range)"));
    // modlist_lookup2 takes the preferred version even outside [min, max]:
    // a kernel of exactly 1500000 accepts the file.
    let m = kld::load(&ko, &declared_resolver(), &opts(1500000)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kernel_range(&m), (1500000, 1500000, 1499999));
    m.unmap();
}

#[test]
fn checks_the_kernel_version_range() {
    let ko = c_module("kernel_range", DECLARED, 1500068);
    for (kernel, ok) in [
        (1400097, false),
        (1500067, false),
        (1500068, true),
        (1500500, true),
        (1599999, true),
        (1600000, false),
    ] {
        match kld::load(&ko, &declared_resolver(), &opts(kernel)) {
            Ok(m) => {
                assert!(ok, "kernel {kernel} accepted");
                assert_eq!(kernel_range(&m), (1500068, 1500068, 1599999));
                m.unmap();
            }
            Err(e) => {
                assert!(!ok, "kernel {kernel}: {e}");
                assert!(matches!(&e, LoadError::Dependency { module, .. } if module == "kernel"));
            }
        }
    }
}

const DEPENDS: &str = concat!(
    module_headers!(),
    fixture_module!(),
    r#"MODULE_VERSION(fixture, 3);
MODULE_DEPEND(fixture, other, 1, 2, 4);
MODULE_DEPEND(fixture, fixture, 7, 7, 7);
"#
);

#[test]
fn checks_other_dependencies() {
    let ko = c_module("depends", DEPENDS, 1500068);
    let with = |mods: Vec<(&str, i32)>| kld::LoadOptions {
        kernel_version: 1500068,
        known_modules: mods.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
    };
    // Missing, and present in the wrong version.
    for mods in [vec![], vec![("other", 5)], vec![("another", 2)]] {
        let e = fail(&ko, &declared_resolver(), &with(mods));
        assert!(matches!(&e, LoadError::Dependency { module, .. } if module == "other"));
        assert_eq!(
            e.console()[0],
            "KLD depends.ko: depends on other - not available or version mismatch"
        );
    }
    // Any version in range, or the preferred one; the depend on itself
    // (a name the file gives an MDT_VERSION) is skipped.
    for mods in [
        vec![("other", 1)],
        vec![("other", 4)],
        vec![("other", 9), ("other", 2)],
    ] {
        let m = kld::load(&ko, &declared_resolver(), &with(mods)).unwrap_or_else(|e| panic!("{e}"));
        m.unmap();
    }
    // An interface the file declares that is already present.
    let e = fail(
        &ko,
        &declared_resolver(),
        &with(vec![("other", 2), ("fixture", 3)]),
    );
    assert_eq!(
        e.console(),
        ["interface fixture.3 already present in the KLD 'kernel'!".to_string()]
    );
    assert_eq!(e.errno(), kld::EEXIST);
    assert_eq!(
        e.kldload_message(),
        format!(
            "kldload: can't load {}: module already loaded or in kernel",
            ko.display()
        )
    );
}

#[test]
fn loads_a_file_without_modules() {
    // No set_modmetadata_set: the kernel links the file and registers no
    // module (linker_file_register_modules finds no set and returns 0), so
    // no MOD_LOAD ever runs. The loader does the same: it loads, with no
    // metadata and nothing to run.
    let ko = c_module(
        "no_modules",
        r#"
int fixture_value = 5;
int fixture_get(void);
int fixture_get(void) { return (fixture_value); }
"#,
        1500068,
    );
    let m = kld::load(&ko, &Table(vec![]), &opts(1500068)).unwrap_or_else(|e| panic!("{e}"));
    assert!(m.metadata().is_empty());
    assert!(m.sysinits().is_empty());
    assert!(m.set("modmetadata_set").is_empty());
    let f = m.symbol("fixture_get").unwrap();
    // SAFETY: the module's own function, taking nothing and reading its
    // own data; the module is mapped.
    let get: extern "C" fn() -> i32 = unsafe { std::mem::transmute(f) };
    assert_eq!(get(), 5);
    m.unmap();
}

#[test]
fn undefined_symbols_are_looked_up_only_when_used() {
    // An undefined global no relocation uses (like __start_set_pcpu in the
    // real module) is never looked up; an unresolved weak one is 0.
    let ko = c_module(
        "lazy",
        r#"
__asm__(".globl kpi_never_used");
extern int kpi_optional __attribute__((weak));
int *fixture_p = &kpi_optional;
"#,
        1500068,
    );
    let m = kld::load(&ko, &Table(vec![]), &opts(1500068)).unwrap_or_else(|e| panic!("{e}"));
    let p = m.symbol("fixture_p").unwrap();
    // SAFETY: module data, mapped.
    assert_eq!(unsafe { *(p as *const usize) }, 0);
    assert!(m.imports().is_empty());
    m.unmap();
}

#[test]
fn refuses_data_out_of_reach() {
    // Data above 2 GiB cannot be reached with the module's 32-bit
    // relocations: refused rather than silently truncated.
    static FAR: i32 = 0;
    let far = &FAR as *const i32 as usize;
    assert!(
        far > 1 << 31,
        "this test needs a static above 2 GiB ({far:#x})"
    );
    let ko = c_module(
        "far_data",
        r#"
extern int kpi_value;
int fixture_get(void);
int fixture_get(void) { return (kpi_value); }
"#,
        1500068,
    );
    let e = fail(
        &ko,
        &Table(vec![("kpi_value", Import::Data(far))]),
        &opts(1500068),
    );
    assert!(matches!(&e, LoadError::OutOfReach { symbol, .. } if symbol == "kpi_value"));
    assert!(e.to_string().contains("low_alloc"));
}

fn patched(test: &str, at: usize, bytes: &[u8]) -> (std::path::PathBuf, Vec<u8>) {
    let ko = c_module(test, "int fixture_value = 5;\n", 1500068);
    let mut b = std::fs::read(&ko).unwrap();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(&ko, &b).unwrap();
    (ko, b)
}

#[test]
fn refuses_what_is_not_an_amd64_object() {
    let r = Table(vec![]);
    let o = opts(1500068);

    let (ko, _) = patched("not_elf", 0, b"\x7fELG");
    let e = fail(&ko, &r, &o);
    assert!(matches!(e, LoadError::NotElf { .. }));
    assert!(e.console().is_empty());
    assert_eq!(e.errno(), kld::ENOEXEC);

    let (ko, _) = patched("elf32", 4, &[1]);
    let e = fail(&ko, &r, &o);
    let line = format!("kldload: {}: Unsupported file layout", ko.display());
    assert_eq!(e.console(), [line.clone(), line]);

    let (ko, _) = patched("big_endian", 5, &[2]);
    assert!(matches!(
        fail(&ko, &r, &o),
        LoadError::UnsupportedLayout { .. }
    ));

    let (ko, _) = patched("version", 6, &[0]);
    assert!(matches!(
        fail(&ko, &r, &o),
        LoadError::UnsupportedVersion { .. }
    ));

    let (ko, _) = patched("exec", 16, &[2, 0]);
    let e = fail(&ko, &r, &o);
    assert!(matches!(e, LoadError::NotRelocatable { e_type: 2, .. }));
    assert_eq!(e.errno(), kld::ENOEXEC);

    let (ko, _) = patched("i386", 18, &[3, 0]);
    let e = fail(&ko, &r, &o);
    assert_eq!(
        e.console(),
        [
            format!("kldload: {}: Unsupported machine", ko.display()),
            unsupported_line(&ko)
        ]
    );

    let (ko, _) = patched("truncated", 0, b"\x7fELF");
    let b = std::fs::read(&ko).unwrap();
    std::fs::write(&ko, &b[..b.len() / 2]).unwrap();
    let e = fail(&ko, &r, &o);
    assert!(matches!(e, LoadError::BadFile { .. }), "{e:?}");

    let e = kld::load(std::path::Path::new("/nonexistent/x.ko"), &r, &o).unwrap_err();
    assert_eq!(e.errno(), kld::ENOENT);
    assert_eq!(
        e.kldload_message(),
        "kldload: can't load /nonexistent/x.ko: No such file or directory"
    );
}
