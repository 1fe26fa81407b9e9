//! Loading a small module built like the real one, running its SYSINITs on
//! Rust imports, and unmapping it.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use common::*;
use kld::{Import, ModMetadata};

const FIXTURE: &str = concat!(
    module_headers!(),
    r#"
int fixture_counter;
int fixture_seen = 7;
extern int kpi_value;
void kpi_note(int a, long b, const char *s, int *where);
void kpi_done(void *);
void (*fixture_cb)(void *);

static int fixture_arg = 2;

static void
fixture_init(void *arg)
{
	fixture_counter = 40 + *(int *)arg + kpi_value;
	fixture_cb = kpi_done;
	kpi_note(1, 0x123456789L, "hello", &fixture_counter);
}
SYSINIT(fixture, SI_SUB_DRIVERS, SI_ORDER_SECOND, fixture_init, &fixture_arg);

static void
fixture_early(void *arg)
{
	kpi_note(0, (long)arg, "early", &fixture_seen);
}
SYSINIT(fixture_early, SI_SUB_TUNABLES, SI_ORDER_FIRST, fixture_early, (void *)5);

static void
fixture_fini(void *arg)
{
	kpi_note(9, 0, "fini", &fixture_counter);
}
SYSUNINIT(fixture_fini, SI_SUB_DRIVERS, SI_ORDER_SECOND, fixture_fini, NULL);

"#,
    fixture_module!(),
    r#"MODULE_VERSION(fixture, 3);
MODULE_DEPEND(fixture, other, 1, 2, 3);
"#
);

/// Held by every test here: a test that checks a range is unmapped must not
/// see another test's fresh mapping land in it.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes the [`serial`] lock, then builds module `test` from the C `src`
/// for 1500068 (see `c_module`).
fn serial_c_module(test: &str, src: &str) -> (MutexGuard<'static, ()>, PathBuf) {
    let guard = serial();
    (guard, c_module(test, src, 1500068))
}

static NOTES: Mutex<Vec<(i32, i64, String, usize)>> = Mutex::new(Vec::new());
static REGISTERED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn kpi_note(a: i32, b: i64, s: *const std::ffi::c_char, where_: *mut i32) {
    // SAFETY: the module passes a NUL-terminated string literal.
    let s = unsafe { std::ffi::CStr::from_ptr(s) }
        .to_string_lossy()
        .into_owned();
    NOTES.lock().unwrap().push((a, b, s, where_ as usize));
}

extern "C" fn module_register_init(data: usize) {
    REGISTERED.store(data, Ordering::SeqCst);
}

/// Loads FIXTURE from `ko` with `note` and `register` as its functions
/// `kpi_note` and `module_register_init`, `kpi_done` never to run,
/// `kpi_value` at `value`, and module `other` present in `other_version`.
fn load_fixture(
    ko: &std::path::Path,
    note: *const (),
    value: usize,
    register: *const (),
    other_version: i32,
) -> kld::Module {
    let resolver = Table(vec![
        ("kpi_note", Import::Func(note as usize)),
        ("kpi_done", Import::Func(must_not_run as *const () as usize)),
        ("kpi_value", Import::Data(value)),
        ("module_register_init", Import::Func(register as usize)),
    ]);
    let mut o = opts(1500068);
    o.known_modules.push(("other".into(), other_version));
    kld::load(ko, &resolver, &o).unwrap_or_else(|e| panic!("{e}"))
}

/// The mappings of this process: (start, end, permissions).
fn maps() -> Vec<(usize, usize, String)> {
    let text = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let hex = |x: &str| usize::from_str_radix(x, 16).expect("hex address");
    text.lines()
        .map(|line| {
            let mut it = line.split_whitespace();
            let range = it.next().expect("an address range");
            let perms = it.next().expect("permissions");
            let (a, b) = range.split_once('-').expect("a range");
            (hex(a), hex(b), perms.to_string())
        })
        .collect()
}

#[test]
fn loads_relocates_and_runs_sysinits() {
    let (_serial, ko) = serial_c_module("positive", FIXTURE);
    let value = kld::low_alloc(4, 4).unwrap() as *mut i32;
    // SAFETY: a fresh 4-byte low block.
    unsafe { *value = 100 };
    let (note, register) = (kpi_note as *const (), module_register_init as *const ());
    let m = load_fixture(&ko, note, value as usize, register, 2);

    let (start, end) = m.range();
    assert!(end <= 1 << 31, "mapped below 2 GiB");
    assert!(m.relocations() > 0);
    let counter = m.symbol("fixture_counter").expect("global data symbol");
    let seen = m.symbol("fixture_seen").expect("initialised data symbol");
    assert!(m.contains(counter) && m.contains(seen) && m.contains(start));
    assert!(
        m.symbol("fixture_init").is_some(),
        "local symbols are listed too"
    );
    // SAFETY: module data, mapped.
    assert_eq!(unsafe { *(seen as *const i32) }, 7);

    // Metadata: DECLARE_MODULE's depend on kernel, the module, the version
    // and the depend on `other`.
    let md = m.metadata();
    assert!(md.contains(&ModMetadata::Depend {
        module: "kernel".into(),
        min: 1500068,
        pref: 1500068,
        max: 1599999
    }));
    assert!(md.contains(&ModMetadata::Version {
        module: "fixture".into(),
        version: 3
    }));
    assert!(md.contains(&ModMetadata::Depend {
        module: "other".into(),
        min: 1,
        pref: 2,
        max: 3
    }));
    let moddata = md
        .iter()
        .find_map(|e| match e {
            ModMetadata::Module { name, data } if name == "fixture" => Some(*data),
            _ => None,
        })
        .expect("MDT_MODULE fixture");
    assert_eq!(Some(moddata), m.symbol("fixture_mod"));

    // SYSINITs: tunables first, then DECLARE_MODULE's (DRIVERS, FIRST), then
    // ours (DRIVERS, SECOND).
    let si = m.sysinits();
    let keys: Vec<_> = si.iter().map(|s| (s.subsystem, s.order)).collect();
    assert_eq!(keys, [(0x700000, 0), (0x3100000, 0), (0x3100000, 1)]);
    assert_eq!(m.set("sysinit_set").len(), 3);
    assert_eq!(si[1].udata, moddata);
    assert_eq!(
        m.trampoline_target(si[1].func),
        Some(module_register_init as *const () as usize)
    );
    assert!(
        m.contains(si[1].func),
        "imports are called through a trampoline in the module"
    );
    for s in &si {
        // SAFETY: the module's own SYSINITs, on imports implemented above.
        unsafe { m.call_sysinit(s) };
    }
    assert_eq!(REGISTERED.load(Ordering::SeqCst), moddata);
    let notes = NOTES.lock().unwrap().clone();
    assert_eq!(
        notes,
        vec![
            (0, 5, "early".to_string(), seen),
            (1, 0x123456789, "hello".to_string(), counter)
        ]
    );
    // SAFETY: module data, mapped.
    assert_eq!(
        unsafe { *(counter as *const i32) },
        142,
        "40 + 2 + kpi_value"
    );
    let cb = m.symbol("fixture_cb").unwrap();
    // SAFETY: module data, mapped.
    let cbv = unsafe { *(cb as *const usize) };
    assert_eq!(Some(cbv), m.import("kpi_done"));
    assert_eq!(
        m.trampoline_target(cbv),
        Some(must_not_run as *const () as usize)
    );

    let su = m.sysuninits();
    assert_eq!(su.len(), 1);
    // SAFETY: as above.
    unsafe { m.call_sysinit(&su[0]) };
    assert_eq!(NOTES.lock().unwrap().last().unwrap().2, "fini");

    let names: Vec<_> = m.imports().into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        ["kpi_done", "kpi_note", "kpi_value", "module_register_init"]
    );
    let bytes = std::fs::read(&ko).unwrap();
    assert_eq!(kld::imports(&bytes).unwrap(), names);

    m.unmap();
    assert!(
        !kld::is_mapped(start, end - start),
        "unmapped after unmap()"
    );
}

#[test]
fn rights_are_per_section_kind() {
    let (_serial, ko) = serial_c_module("rights", FIXTURE);
    let value = kld::low_alloc(4, 4).unwrap();
    let never = must_not_run as *const ();
    let m = load_fixture(&ko, never, value as usize, never, 3);
    let (start, end) = m.range();
    let perms: Vec<String> = maps()
        .into_iter()
        .filter(|&(a, b, _)| a >= start && b <= end)
        .map(|(_, _, p)| p[..3].to_string())
        .collect();
    assert!(perms.contains(&"r-x".to_string()), "{perms:?}");
    assert!(perms.contains(&"rw-".to_string()), "{perms:?}");
    assert!(
        !perms.iter().any(|p| p == "rwx"),
        "no page is writable and executable: {perms:?}"
    );
    m.unmap();
}

fn maps_overlap(start: usize, end: usize) -> bool {
    maps().into_iter().any(|(a, b, _)| a < end && b > start)
}

#[test]
fn unmap_releases_the_whole_range() {
    // After unmap, module code and data are gone: executing them would
    // fault (not attempted), the pages are absent from /proc/self/maps and
    // mincore says ENOMEM for each.
    let (_serial, ko) = serial_c_module(
        "unmap",
        "int fixture_value = 5;\nint fixture_get(void);\nint fixture_get(void) { return (fixture_value); }\n",
    );
    let m = kld::load(&ko, &Table(vec![]), &opts(1500068)).unwrap_or_else(|e| panic!("{e}"));
    let (start, end) = m.range();
    let f = m.symbol("fixture_get").unwrap();
    assert!(m.contains(f));
    assert!(kld::is_mapped(start, end - start));
    assert!(maps_overlap(start, end));
    m.unmap();
    assert!(!kld::is_mapped(start, end - start));
    assert!(
        !maps_overlap(start, end),
        "{start:#x}..{end:#x} still in /proc/self/maps"
    );
}

#[test]
fn constructors_are_listed_not_run() {
    let (_serial, ko) = serial_c_module(
        "ctor",
        r#"
int fixture_built;
volatile int fixture_source = 11;
__attribute__((constructor)) static void
fixture_ctor(void)
{
	fixture_built = fixture_source;
}
"#,
    );
    let m = kld::load(&ko, &Table(vec![]), &opts(1500068)).unwrap_or_else(|e| panic!("{e}"));
    let built = m.symbol("fixture_built").unwrap();
    // SAFETY: module data, mapped.
    assert_eq!(
        unsafe { *(built as *const i32) },
        0,
        "the loader runs no module code"
    );
    let ctors = m.ctors();
    assert_eq!(ctors.len(), 1);
    assert!(m.contains(ctors[0]));
    // SAFETY: the module's constructor, `void (void)`, writing its own data.
    let f: extern "C" fn() = unsafe { std::mem::transmute(ctors[0]) };
    f();
    // SAFETY: as above.
    assert_eq!(unsafe { *(built as *const i32) }, 11);
    assert!(m.dtors().is_empty());
    m.unmap();
}

static AL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0xff);

/// Records %al at entry: a variadic callee reads the number of vector
/// registers used from it, so the trampoline must not touch %rax.
#[unsafe(naked)]
extern "C" fn kpi_vararg() {
    std::arch::naked_asm!("mov byte ptr [rip + {al}], al", "ret", al = sym AL)
}

#[test]
fn trampolines_preserve_al_for_variadic_callees() {
    let (_serial, ko) = serial_c_module(
        "vararg",
        r#"
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
void kpi_vararg(const char *, ...);
static void
fixture_init(void *arg)
{
	kpi_vararg("%d %d %d %d %d %d %d", 1, 2, 3, 4, 5, 6, 7);
}
SYSINIT(fixture, SI_SUB_DRIVERS, SI_ORDER_SECOND, fixture_init, NULL);
"#,
    );
    let r = Table(vec![(
        "kpi_vararg",
        Import::Func(kpi_vararg as *const () as usize),
    )]);
    let m = kld::load(&ko, &r, &opts(1500068)).unwrap_or_else(|e| panic!("{e}"));
    AL.store(0xff, Ordering::SeqCst);
    for s in m.sysinits() {
        // SAFETY: the module's SYSINIT, calling the naked import above.
        unsafe { m.call_sysinit(&s) };
    }
    assert_eq!(
        AL.load(Ordering::SeqCst),
        0,
        "soft-float caller passes %al = 0"
    );
    m.unmap();
}

#[test]
fn an_undefined_name_binds_to_the_files_own_local_definition() {
    // Two objects linked with ld -r: one defines a static fixture_helper,
    // the other calls an extern fixture_helper. ld -r leaves the latter
    // undefined; the kernel's lookup asks the file itself first and, with
    // debug.link_elf_obj_leak_locals=1 (the default), finds the local.
    let _serial = serial();
    let dir = scratch("leak_locals");
    let a = compile(
        &dir,
        "a",
        "static int fixture_helper(void) { return (42); }\nint (*fixture_keep)(void) = fixture_helper;\n",
        "c",
        1500068,
        &[],
    );
    let b = compile(
        &dir,
        "b",
        "int fixture_helper(void);\nint fixture_call(void);\nint fixture_call(void) { return (fixture_helper() + 1); }\n",
        "c",
        1500068,
        &[],
    );
    let ko = link(&dir, "leak_locals", &[a, b]);
    let bytes = std::fs::read(&ko).unwrap();
    assert!(kld::imports(&bytes).unwrap().is_empty());
    let m = kld::load(&ko, &Table(vec![]), &opts(1500068)).unwrap_or_else(|e| panic!("{e}"));
    let f = m.symbol("fixture_call").unwrap();
    // SAFETY: the module's `int (void)` function, calling its own code.
    let call: extern "C" fn() -> i32 = unsafe { std::mem::transmute(f) };
    assert_eq!(call(), 43);
    m.unmap();
}
