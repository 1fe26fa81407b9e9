//! Builds the C-variadic part of the emulated FreeBSD KPI (`src/adapter/ko/kprintf.c`).

fn main() {
    println!("cargo:rerun-if-changed=src/adapter/ko/kprintf.c");
    cc::Build::new()
        .file("src/adapter/ko/kprintf.c")
        .std("c11")
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        .compile("gmr_kprintf");
}
