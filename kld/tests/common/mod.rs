//! Builds small test modules the way the real one is built: clang-14 with
//! FreeBSD kernel flags against the FreeBSD 15 headers of the `ziglang`
//! wheel, linked with `ld.lld-14 -r`. The tools are installed by
//! `scripts/toolchain.sh` (which `make test` runs first); a test never
//! installs anything, and fails with a clear message when they are missing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kld::{Import, LoadOptions, ModMetadata, Resolver};

pub const CLANG: &str = "clang-14";
pub const LD: &str = "ld.lld-14";

fn ziglang_include() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.util,os;s=importlib.util.find_spec('ziglang');print(os.path.dirname(s.origin) if s and s.origin else '')",
        ])
        .output()
        .expect("python3 is needed to find the ziglang wheel's FreeBSD headers");
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !dir.is_empty(),
        "the ziglang Python package (FreeBSD headers) is missing: run scripts/toolchain.sh kbuild"
    );
    PathBuf::from(dir).join("lib/libc/include")
}

fn tool(name: &str) {
    let ok = Command::new(name)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "{name} is missing: run scripts/toolchain.sh kbuild");
}

/// A scratch folder for one test (per process, so concurrent `cargo test`
/// runs do not share files).
pub fn scratch(test: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kld-fixtures");
    // Folders of test processes that are gone.
    if let Ok(dirs) = std::fs::read_dir(&root) {
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_ok() && !Path::new("/proc").join(&name).exists() {
                let _ = std::fs::remove_dir_all(d.path());
            }
        }
    }
    let d = root.join(std::process::id().to_string()).join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch folder");
    d
}

/// Compiles one C or assembly source with the kernel flags and
/// `__FreeBSD_version` = `version`; returns the object.
pub fn compile(
    dir: &Path,
    name: &str,
    src: &str,
    ext: &str,
    version: i32,
    extra: &[&str],
) -> PathBuf {
    tool(CLANG);
    let inc = ziglang_include();
    let srcp = dir.join(format!("{name}.{ext}"));
    std::fs::write(&srcp, src).expect("write source");
    let opt = dir.join("opt_global.h");
    if !opt.exists() {
        std::fs::write(&opt, "").expect("write opt_global.h");
    }
    let obj = dir.join(format!("{name}.o"));
    let mut c = Command::new(CLANG);
    c.args([
        "--target=x86_64-unknown-freebsd15.0",
        "-D_KERNEL",
        "-DKLD_MODULE",
        &format!("-D__FreeBSD_version={version}"),
        "-ffreestanding",
        "-nostdinc",
        "-fno-common",
        "-fno-pic",
        "-fno-strict-aliasing",
        "-fwrapv",
        "-mcmodel=kernel",
        "-mno-red-zone",
        "-mno-mmx",
        "-mno-sse",
        "-mno-avx",
        "-msoft-float",
        "-fno-asynchronous-unwind-tables",
        "-O2",
        "-Wall",
        "-Werror=implicit-function-declaration",
        "-include",
    ]);
    c.arg(&opt);
    for d in ["generic-freebsd", "x86_64-freebsd-none", "x86-freebsd-none"] {
        c.arg(format!("-I{}", inc.join(d).display()));
    }
    c.args(extra).arg("-c").arg(&srcp).arg("-o").arg(&obj);
    let out = c.output().expect("run clang-14");
    assert!(
        out.status.success(),
        "clang-14 failed on {name}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    obj
}

/// Links objects into a module with `ld.lld-14 -r`.
pub fn link(dir: &Path, name: &str, objs: &[PathBuf]) -> PathBuf {
    tool(LD);
    let ko = dir.join(format!("{name}.ko"));
    let out = Command::new(LD)
        .args(["-r", "-m", "elf_x86_64", "-o"])
        .arg(&ko)
        .args(objs)
        .output()
        .expect("run ld.lld-14");
    assert!(
        out.status.success(),
        "ld.lld-14 failed on {name}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ko
}

/// Compiles one C source into a module.
pub fn c_module(test: &str, src: &str, version: i32) -> PathBuf {
    let dir = scratch(test);
    let o = compile(&dir, test, src, "c", version, &[]);
    link(&dir, test, &[o])
}

/// A resolver from a fixed table.
pub struct Table(pub Vec<(&'static str, Import)>);

impl Resolver for Table {
    fn resolve(&self, name: &str) -> Option<Import> {
        self.0.iter().find(|(n, _)| *n == name).map(|&(_, i)| i)
    }
}

pub fn opts(kernel_version: i32) -> LoadOptions {
    LoadOptions {
        kernel_version,
        known_modules: Vec::new(),
    }
}

/// An imported function that must never run.
pub extern "C" fn must_not_run() {
    eprintln!("kld test: an import that must not be called was called");
    std::process::abort();
}

/// The headers every fixture module includes (param, systm, kernel,
/// module), as a literal for `concat!`.
#[allow(unused_macros)]
macro_rules! module_headers {
    () => {
        r#"
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
"#
    };
}
#[allow(unused_imports)]
pub(crate) use module_headers;

/// The C declaration of the module "fixture": an event handler accepting
/// every event and its DECLARE_MODULE at SI_SUB_DRIVERS, first; a literal
/// for `concat!` (the fixture adds its own MODULE_VERSION and depends).
#[allow(unused_macros)]
macro_rules! fixture_module {
    () => {
        r#"static int
fixture_modevent(module_t mod, int type, void *data)
{
	return (0);
}
static moduledata_t fixture_mod = { "fixture", fixture_modevent, NULL };
DECLARE_MODULE(fixture, fixture_mod, SI_SUB_DRIVERS, SI_ORDER_FIRST);
"#
    };
}
#[allow(unused_imports)]
pub(crate) use fixture_module;

/// The (min, pref, max) of the MDT_DEPEND on kernel in `md`, if any.
pub fn kernel_depend(md: &[ModMetadata]) -> Option<(i32, i32, i32)> {
    md.iter().find_map(|e| match e {
        ModMetadata::Depend {
            module,
            min,
            pref,
            max,
        } if module == "kernel" => Some((*min, *pref, *max)),
        _ => None,
    })
}
