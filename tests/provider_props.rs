//! Properties of the multipath provider that come from its paths:
//!
//! - stripe size and offset: copied from the first path that has one when
//!   the provider has none yet (so ZFS sees the 4 KiB physical sectors of a
//!   512e disk through `multipath/NAME`), and then kept, as in FreeBSD;
//! - `G_PF_ACCEPT_UNMAPPED`: set only when every path that may carry I/O
//!   takes unmapped bios (FreeBSD ORs it, so one path without it would be
//!   handed unmapped bios), recomputed when paths are added and removed.
//!
//! Each test runs under both schedulers.

mod common;

use common::{for_each_mode, gm, san};
use geom_sim::{rule, Access, LunConfig, Mode, Sim, SimConfig};

const MD: [&str; 3] = ["md0", "md1", "md2"];
const SIZE: u64 = 1 << 20;

/// (stripesize, stripeoffset) of `multipath/NAME`.
fn stripe(sim: &Sim, name: &str) -> (u64, u64) {
    let pp = sim
        .g_provider_by_name(&format!("multipath/{name}"))
        .unwrap_or_else(|| panic!("no multipath/{name}"));
    sim.provider_stripe_of(pp).expect("provider exists")
}

/// Whether `multipath/NAME` has G_PF_ACCEPT_UNMAPPED.
fn unmapped(sim: &Sim, name: &str) -> bool {
    sim.run_until_idle();
    let pp = sim
        .g_provider_by_name(&format!("multipath/{name}"))
        .unwrap_or_else(|| panic!("no multipath/{name}"));
    sim.provider_accepts_unmapped_of(pp)
        .expect("provider exists")
}

/// The stripe comes from the first path added that reports one; a path
/// added later, or the giver leaving, does not change it.
#[test]
fn stripe_comes_from_the_first_path_that_has_one() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 1, &MD, SIZE);
        lun.path(1).unwrap().set_stripe(4096, 0);
        lun.path(2).unwrap().set_stripe(8192, 512);
        gm(&sim, &["create", "mp", "md0"]);
        assert_eq!(stripe(&sim, "mp"), (0, 0), "md0 has no stripe");
        gm(&sim, &["add", "mp", "md1"]);
        assert_eq!(stripe(&sim, "mp"), (4096, 0), "copied from md1");
        gm(&sim, &["add", "mp", "md2"]);
        assert_eq!(stripe(&sim, "mp"), (4096, 0), "kept over md2's");
        gm(&sim, &["remove", "mp", "md1"]);
        assert_eq!(stripe(&sim, "mp"), (4096, 0), "kept after md1 left");
        // geom(8) shows it (diskinfo, ZFS's ashift come from these fields).
        let xml = sim.confxml();
        assert!(xml.contains("<stripesize>4096</stripesize>"), "{xml}");
        sim.finish().assert_clean();

        // All at once: the first path in the command that has one.
        let (sim, lun) = san(m, 2, &MD, SIZE);
        lun.path(1).unwrap().set_stripe(8192, 512);
        lun.path(2).unwrap().set_stripe(4096, 0);
        gm(&sim, &["create", "mp", "md0", "md1", "md2"]);
        assert_eq!(stripe(&sim, "mp"), (8192, 512));
        sim
    });
}

/// A labelled 512e LUN (512-byte logical, 4 KiB physical sectors): the
/// device shows the 4 KiB stripe of its paths.
#[test]
fn labelled_512e_lun_shows_its_physical_sector() {
    for_each_mode(|m| {
        let sim = Sim::new(SimConfig::new(m, 3));
        let cfg = LunConfig {
            stripesize: 4096,
            ..LunConfig::new(&["da0", "da1"], SIZE)
        };
        let lun = sim.add_lun(cfg).expect("lun");
        sim.load_multipath().expect("load");
        sim.run_until_idle();
        gm(&sim, &["label", "mp", "da0", "da1"]);
        assert_eq!(stripe(&sim, "mp"), (4096, 0));
        let dev = sim.open("multipath/mp", Access::new(1, 0, 0)).unwrap();
        assert_eq!(dev.size(), Some((SIZE - 512, 512)));
        drop(dev);
        // It survives a path dying and coming back.
        lun.path(0).unwrap().die();
        sim.run_until_idle();
        lun.path(0).unwrap().revive();
        sim.run_until_idle();
        assert_eq!(stripe(&sim, "mp"), (4096, 0));
        sim
    });
}

/// The flag is the AND of the paths that can carry I/O, recomputed on
/// every add, remove and loss; a FAIL path still counts (it can be
/// restored and then carry I/O).
#[test]
fn unmapped_flag_is_and_of_the_paths() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 4, &MD, SIZE);
        let md2 = lun.path(2).unwrap();
        md2.set_accepts_unmapped(false);
        gm(&sim, &["create", "mp", "md0", "md1"]);
        assert!(unmapped(&sim, "mp"), "md0 and md1 take unmapped I/O");
        gm(&sim, &["add", "mp", "md2"]);
        assert!(!unmapped(&sim, "mp"), "md2 does not");
        gm(&sim, &["fail", "mp", "md2"]);
        assert!(!unmapped(&sim, "mp"), "a FAIL path can come back");
        gm(&sim, &["restore", "mp", "md2"]);
        gm(&sim, &["remove", "mp", "md2"]);
        assert!(unmapped(&sim, "mp"), "md2 removed");
        gm(&sim, &["add", "mp", "md2"]);
        assert!(!unmapped(&sim, "mp"), "md2 back");
        // Losing the path (its device goes away) counts as removing it.
        md2.die();
        assert!(unmapped(&sim, "mp"), "md2 gone");
        // The other way round: the only path without it is the first one.
        gm(&sim, &["remove", "mp", "md0"]);
        lun.path(1).unwrap().set_accepts_unmapped(false);
        gm(&sim, &["add", "mp", "md0"]);
        assert!(!unmapped(&sim, "mp"), "md1 never took it");
        sim.finish().assert_clean();

        // A labelled device: taste adds the paths one by one.
        let (sim, lun) = san(m, 5, &["da0", "da1"], SIZE);
        lun.path(1).unwrap().set_accepts_unmapped(false);
        gm(&sim, &["label", "mp", "da0", "da1"]);
        assert!(!unmapped(&sim, "mp"));
        lun.path(1).unwrap().die();
        assert!(unmapped(&sim, "mp"), "only da0 left");
        lun.path(1).unwrap().revive();
        assert!(!unmapped(&sim, "mp"), "da1 tasted back in");
        sim
    });
}

/// Unmapped I/O through the device while every path takes it, in
/// active/active so both paths carry it: no rule broken, data intact.
/// Once a path without it joins, the user sees the flag gone and sends
/// mapped bios, which every path takes.
#[test]
fn unmapped_io_flows_while_every_path_takes_it() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 6, &MD, SIZE);
        lun.path(2).unwrap().set_accepts_unmapped(false);
        gm(&sim, &["create", "-A", "mp", "md0", "md1"]);
        let dev = sim.open("multipath/mp", Access::new(1, 1, 0)).unwrap();
        assert!(dev.accepts_unmapped());
        dev.set_unmapped_io(true);
        for i in 0..16u64 {
            dev.write(i * 4096, &[i as u8 + 1; 4096]).unwrap();
        }
        for i in 0..16u64 {
            assert_eq!(dev.read(i * 4096, 4096).unwrap(), vec![i as u8 + 1; 4096]);
        }
        let (c0, c1) = (lun.path(0).unwrap().counts(), lun.path(1).unwrap().counts());
        assert!(c0.completed > 0 && c1.completed > 0, "{c0:?} {c1:?}");
        // md2 joins: the flag goes, the user falls back to mapped bios.
        gm(&sim, &["add", "mp", "md2"]);
        assert!(!dev.accepts_unmapped());
        dev.set_unmapped_io(false);
        for i in 0..16u64 {
            assert_eq!(dev.read(i * 4096, 4096).unwrap(), vec![i as u8 + 1; 4096]);
        }
        assert!(lun.path(2).unwrap().counts().completed > 0);
        drop(dev);
        sim
    });
}

/// The rule the AND keeps: an unmapped bio sent to a provider without
/// G_PF_ACCEPT_UNMAPPED is reported (the I/O itself still happens).
#[test]
fn unmapped_bio_to_a_provider_without_the_flag_is_a_violation() {
    for m in [Mode::Deterministic, Mode::Threaded] {
        let (sim, lun) = san(m, 7, &MD, SIZE);
        lun.path(2).unwrap().set_accepts_unmapped(false);
        let ok = sim.open("md0", Access::new(1, 1, 0)).unwrap();
        ok.set_unmapped_io(true);
        ok.write(0, &[5; 512]).unwrap();
        drop(ok);
        assert!(!sim.has_violation(rule::UNMAPPED));
        let dev = sim.open("md2", Access::new(1, 1, 0)).unwrap();
        assert!(!dev.accepts_unmapped());
        dev.set_unmapped_io(true);
        dev.write(512, &[6; 512]).unwrap();
        assert_eq!(lun.read_raw(512, 512).unwrap(), vec![6; 512]);
        drop(dev);
        let v = sim.take_violations();
        assert!(
            v.iter()
                .any(|v| v.rule == rule::UNMAPPED && v.message.contains("md2")),
            "{v:?}"
        );
        sim.finish().assert_clean();
    }
}
