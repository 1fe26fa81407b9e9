//! Corrupted modules: whatever the bytes say, a load either fails with a
//! LoadError or succeeds with a mapping below 2 GiB; it never panics or
//! touches memory outside the module (no module code runs during a load).

mod common;

use common::*;
use kld::{Import, Resolver};

struct Everything;

impl Resolver for Everything {
    fn resolve(&self, _name: &str) -> Option<Import> {
        Some(Import::Func(must_not_run as *const () as usize))
    }
}

const SRC: &str = concat!(
    module_headers!(),
    r#"
int fixture_counter;
void kpi_note(int);
static void
fixture_init(void *arg)
{
	fixture_counter++;
	kpi_note(fixture_counter);
}
SYSINIT(fixture, SI_SUB_DRIVERS, SI_ORDER_SECOND, fixture_init, NULL);
"#,
    fixture_module!(),
    r#"MODULE_VERSION(fixture, 1);
"#
);

#[test]
fn corrupted_files_fail_cleanly() {
    let ko = c_module("mutate", SRC, 1500068);
    let good = std::fs::read(&ko).unwrap();
    let o = opts(1500068);
    let m = kld::load_bytes("mutate.ko", &good, &Everything, &o).unwrap_or_else(|e| panic!("{e}"));
    m.unmap();

    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..2000 {
        let mut b = good.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() % b.len() as u64) as usize;
            b[at] = next() as u8;
        }
        match kld::load_bytes("mutate.ko", &b, &Everything, &o) {
            Ok(m) => {
                let (s, e) = m.range();
                assert!(e <= 1 << 31 && s < e);
                let _ = (
                    m.metadata(),
                    m.sysinits(),
                    m.sysuninits(),
                    m.set("sysinit_set"),
                );
                m.unmap();
                loaded += 1;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
    }
    println!("{loaded} corrupted files loaded, {refused} refused");
    assert!(refused > 0);
}
