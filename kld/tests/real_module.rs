//! Loads the real geom_multipath_rs.ko with every import pointed at a
//! function that aborts if called: proves every relocation of the module's
//! own bytes applies, and that its metadata decides the load as the kernel
//! would.

mod common;

use std::path::PathBuf;

use common::{kernel_depend, must_not_run};
use kld::{Import, LoadError, ModMetadata, Resolver};

fn ko() -> Option<PathBuf> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../geom_multipath_rs/geom_multipath_rs.ko");
    std::fs::canonicalize(p).ok()
}

/// Every import resolves: data objects to low memory, functions to a
/// trampoline of `must_not_run`.
struct Dummy;

impl Resolver for Dummy {
    fn resolve(&self, name: &str) -> Option<Import> {
        const DATA: &[&str] = &["M_GEOM", "topology_lock", "sysctl___kern_geom"];
        if DATA.contains(&name) {
            Some(Import::Data(kld::low_alloc(256, 16).ok()? as usize))
        } else {
            Some(Import::Func(must_not_run as *const () as usize))
        }
    }
}

const KERNEL: i32 = 1500068;

#[test]
fn loads_the_real_module_or_refuses_it_as_the_kernel_would() {
    let Some(path) = ko() else {
        println!(
            "SKIPPED: geom_multipath_rs/geom_multipath_rs.ko not built (bash scripts/kbuild.sh)"
        );
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let imports = kld::imports(&bytes).expect("the module parses");
    for want in [
        "g_modevent",
        "g_io_request",
        "topology_lock",
        "module_register_init",
    ] {
        assert!(imports.iter().any(|i| i == want), "{want} in {imports:?}");
    }
    assert!(
        !imports
            .iter()
            .any(|i| i.starts_with("__start_set_") || i.starts_with("__stop_set_")),
        "link-set bounds bind to the module's own sections: {imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i == "__start_set_pcpu"),
        "an undefined symbol no relocation uses is never looked up"
    );

    // What the kernel would decide, from the metadata alone.
    let depend = metadata_kernel_range(&path);
    let (min, pref, max) = depend;
    let accepts = KERNEL == pref || (min <= KERNEL && KERNEL <= max);

    let r = kld::load(
        &path,
        &Dummy,
        &kld::LoadOptions {
            kernel_version: KERNEL,
            known_modules: vec![],
        },
    );
    match (accepts, r) {
        (true, Ok(m)) => check_loaded(&m),
        (false, Err(e @ LoadError::Dependency { .. })) => {
            let text = e.to_string();
            assert!(
                text.contains(
                    "KLD geom_multipath_rs.ko: depends on kernel - not available or version mismatch"
                ),
                "{text}"
            );
            assert_eq!(e.errno(), kld::ENOEXEC);
            println!("refused as the kernel would (range {min}..={max}, preferred {pref}):\n{text}");
            // The same file with the kernel at its preferred version loads:
            // everything past the dependency check works too.
            let m = kld::load(&path, &Dummy, &kld::LoadOptions {
                kernel_version: pref,
                known_modules: vec![],
            })
            .unwrap_or_else(|e| panic!("{e}"));
            check_loaded(&m);
        }
        (accepts, r) => panic!(
            "kernel range {min}..={max} (preferred {pref}) with kernel {KERNEL}: expected {}, got {r:?}",
            if accepts { "a load" } else { "a dependency refusal" }
        ),
    }
}

/// The (min, pref, max) of the module's MDT_DEPEND on kernel, read by
/// loading it with the kernel at every version it might want.
fn metadata_kernel_range(path: &std::path::Path) -> (i32, i32, i32) {
    // Any refusal names the range in its note; a load shows the metadata.
    let r = kld::load(
        path,
        &Dummy,
        &kld::LoadOptions {
            kernel_version: KERNEL,
            known_modules: vec![],
        },
    );
    match r {
        Ok(m) => {
            let d = kernel_depend(&m.metadata()).expect("an MDT_DEPEND on kernel");
            m.unmap();
            d
        }
        Err(LoadError::Dependency {
            module,
            min,
            pref,
            max,
            ..
        }) if module == "kernel" => (min, pref, max),
        Err(e) => panic!("unexpected failure: {e}"),
    }
}

fn check_loaded(m: &kld::Module) {
    let md = m.metadata();
    let (min, pref, max) = kernel_depend(&md).expect("an MDT_DEPEND on kernel");
    println!("depends on kernel {min}..={max}, preferred {pref}");
    assert!(
        md.iter()
            .any(|e| matches!(e, ModMetadata::Module { name, .. } if name == "g_multipath")),
        "{md:?}"
    );
    assert!(
        md.contains(&ModMetadata::Version {
            module: "geom_multipath".into(),
            version: 0
        }),
        "{md:?}"
    );
    assert!(m.relocations() > 1000, "{} relocations", m.relocations());
    let si = m.sysinits();
    assert!(!si.is_empty());
    assert!(si
        .windows(2)
        .all(|w| (w[0].subsystem, w[0].order) <= (w[1].subsystem, w[1].order)));
    // DECLARE_GEOM_CLASS in FreeBSD 15's geom/geom.h: DECLARE_MODULE at
    // SI_SUB_DRIVERS, SI_ORDER_THIRD, a SYSINIT calling module_register_init
    // with the moduledata of g_multipath.
    let data = md
        .iter()
        .find_map(|e| match e {
            ModMetadata::Module { name, data } if name == "g_multipath" => Some(*data),
            _ => None,
        })
        .unwrap();
    let reg = si
        .iter()
        .find(|s| s.udata == data)
        .expect("the SYSINIT that registers g_multipath");
    assert_eq!((reg.subsystem, reg.order), (0x3100000, 2));
    assert_eq!(m.import("module_register_init"), Some(reg.func));
    let sysctls = m.set("sysctl_set");
    assert!(!sysctls.is_empty());
    assert!(
        sysctls.iter().all(|&p| m.contains(p)),
        "sysctl oids live in the module"
    );
    for (name, addr, imp) in m.imports() {
        match imp {
            Import::Func(_) => assert!(m.contains(addr), "{name}: trampoline in the module"),
            Import::Data(a) => assert_eq!(a, addr, "{name}"),
        }
    }
    println!(
        "loaded {} at {:#x?}: {} relocations, {} imports, {} sysinits",
        m.name(),
        m.range(),
        m.relocations(),
        m.imports().len(),
        si.len()
    );
}
