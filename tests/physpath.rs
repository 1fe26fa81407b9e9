//! physpath: a successful BIO_GETATTR of "GEOM::physpath" through a
//! multipath device gets "/mp" appended, so `diskinfo -p multipath/NAME`
//! shows `<path's physical path>/mp` (FreeBSD's ATF `physpath` case, where
//! gnop -z gives both md devices the same physical path). A buffer too
//! short for the suffix leaves the path's answer as it is and is not an
//! error; other attributes pass unchanged. Each runs under both schedulers.

mod common;

use common::{check_state, for_each_mode, gm, modes, san, SIZE};
use geom_sim::{Access, Dev, Lun, Mode, Sim, EIO, EOPNOTSUPP, PHYSPATH};

const MD: [&str; 2] = ["md0", "md1"];
const PP: &str = "some/physical/path";
/// MAXPATHLEN: the buffer DIOCGPHYSPATH hands to g_io_getattr.
const MAXPATHLEN: usize = 1024;

/// `diskinfo -p multipath/mp` as a string, or the errno.
fn diskinfo_p(dev: &Dev, len: usize) -> Result<String, i32> {
    dev.getattr_str(PHYSPATH, len)
}

/// A LUN on two paths that both report [`PP`] as their physical path
/// (gnop -z), MULTIPATH loaded.
fn san_with_physpath(m: Mode, seed: u64) -> (Sim, Lun) {
    let (sim, lun) = san(m, seed, &MD, SIZE);
    for p in 0..2 {
        lun.path(p).unwrap().set_physpath(Some(PP));
    }
    (sim, lun)
}

/// FreeBSD's ATF `physpath`: create over two paths that report
/// "some/physical/path"; the device reports "some/physical/path/mp". Also
/// for a labelled device and for the active/active and active/read modes.
#[test]
fn physpath() {
    let forms: [&[&str]; 4] = [
        &["create", "mp", "md0", "md1"],
        &["create", "-A", "mp", "md0", "md1"],
        &["create", "-R", "mp", "md0", "md1"],
        &["label", "mp", "md0", "md1"],
    ];
    for m in modes() {
        for (i, argv) in forms.iter().enumerate() {
            let (sim, _lun) = san_with_physpath(m, 40 + i as u64);
            // Each path reports its own physical path (gnop -z).
            for p in MD {
                let d = sim.open(p, Access::new(1, 0, 0)).unwrap();
                assert_eq!(diskinfo_p(&d, MAXPATHLEN).unwrap(), PP, "{p}");
            }
            gm(&sim, argv);
            let dev = sim.open("multipath/mp", Access::new(1, 0, 0)).unwrap();
            assert_eq!(
                diskinfo_p(&dev, MAXPATHLEN).unwrap(),
                "some/physical/path/mp",
                "{argv:?}"
            );
            // Every time, not only the first: the suffix goes on the answer
            // of each request, never twice on one.
            assert_eq!(
                diskinfo_p(&dev, MAXPATHLEN).unwrap(),
                "some/physical/path/mp",
                "{argv:?}"
            );
            // bio_completed still covers the whole buffer, as the path set it.
            assert_eq!(dev.getattr(PHYSPATH, 64).unwrap().len(), 64);
            drop(dev);
            sim.finish().assert_clean();
        }
    }
}

/// Too short for the suffix: the path's answer goes up unchanged (never a
/// truncated suffix) and the request still succeeds; no path is failed.
#[test]
fn short_buffer_keeps_the_paths_answer() {
    for_each_mode(|m| {
        let (sim, _lun) = san_with_physpath(m, 50);
        gm(&sim, &["create", "mp", "md0", "md1"]);
        let dev = sim.open("multipath/mp", Access::new(1, 0, 0)).unwrap();
        let n = PP.len();
        // Room for the string and its NUL only.
        assert_eq!(diskinfo_p(&dev, n + 1), Ok(PP.to_string()));
        // Room for "/m" but not "/mp" and the NUL: unchanged, not cut.
        assert_eq!(diskinfo_p(&dev, n + 3), Ok(PP.to_string()));
        let raw = dev.getattr(PHYSPATH, n + 3).unwrap();
        assert_eq!(&raw[..], &[PP.as_bytes(), &[0, 0, 0]].concat()[..]);
        // Exactly enough.
        assert_eq!(diskinfo_p(&dev, n + 4), Ok(format!("{PP}/mp")));
        // Too short for the path itself: the path's own error.
        assert_eq!(diskinfo_p(&dev, n), Err(geom_sim::EFAULT));
        drop(dev);
        check_state(&sim, "mp", "md0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        sim
    });
}

/// Other attributes come back exactly as the path answered them, successes
/// and errors alike, and an error other than EIO/ENXIO fails no path.
#[test]
fn other_attributes_pass_unchanged() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 60, &MD, SIZE);
        for p in 0..2 {
            let h = lun.path(p).unwrap();
            h.set_attribute("GEOM::ident", Some("SER123"));
            // Same prefix, another attribute: the name must match whole.
            h.set_attribute("GEOM::physpath2", Some(PP));
        }
        gm(&sim, &["create", "mp", "md0", "md1"]);
        let dev = sim.open("multipath/mp", Access::new(1, 0, 0)).unwrap();
        assert_eq!(dev.getattr_str("GEOM::ident", 64).unwrap(), "SER123");
        assert_eq!(dev.getattr_str("GEOM::physpath2", 64).unwrap(), PP);
        // No physical path on the paths: EOPNOTSUPP, nothing appended.
        assert_eq!(dev.getattr(PHYSPATH, 64), Err(EOPNOTSUPP));
        assert_eq!(dev.getattr("GEOM::candelete", 64), Err(EOPNOTSUPP));
        drop(dev);
        check_state(&sim, "mp", "md0", "OPTIMAL", &["ACTIVE", "PASSIVE"]);
        sim
    });
}

/// A physpath request that fails on the active path is retried on the
/// other one like any bio; the suffix is added once, to the answer that
/// succeeded.
#[test]
fn physpath_after_failover() {
    for_each_mode(|m| {
        let (sim, lun) = san_with_physpath(m, 70);
        gm(&sim, &["create", "mp", "md0", "md1"]);
        lun.path(0).unwrap().fail_next(1, EIO);
        let dev = sim.open("multipath/mp", Access::new(1, 0, 0)).unwrap();
        assert_eq!(
            diskinfo_p(&dev, MAXPATHLEN).unwrap(),
            "some/physical/path/mp"
        );
        drop(dev);
        check_state(&sim, "mp", "md1", "DEGRADED", &["FAIL", "ACTIVE"]);
        sim
    });
}
