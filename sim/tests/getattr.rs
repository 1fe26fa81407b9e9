//! BIO_GETATTR in the simulator: the attribute name travels with the bio
//! (and its clones), a disk path answers "GEOM::physpath" when one is set
//! (`gnop -z`) the way `g_handleattr_str` does, everything else gets
//! EOPNOTSUPP, and the pass-through class forwards it untouched. Under both
//! schedulers.

mod common;

use common::{add_lun_1m, both, pass_over};
use geom_sim::{Access, Lun, Sim, EFAULT, ENXIO, EOPNOTSUPP, EPERM, PHYSPATH};

const PP: &str = "some/physical/path";

/// A 1 MiB LUN whose one path da0 has the physical path [`PP`].
fn da0_with_physpath(sim: &Sim) -> Lun {
    let lun = add_lun_1m(sim, &["da0"]);
    lun.path(0).expect("da0").set_physpath(Some(PP));
    lun
}

#[test]
fn disk_answers_physpath_like_handleattr_str() {
    both(1, |sim| {
        let lun = add_lun_1m(sim, &["da0", "da1"]);
        let p0 = lun.path(0).unwrap();
        p0.set_physpath(Some(PP));
        assert_eq!(p0.physpath().as_deref(), Some(PP));
        let dev = sim.open("da0", Access::new(1, 0, 0)).unwrap();
        // The whole buffer comes back (bio_completed = bio_length): the
        // string, its NUL, zero fill.
        let raw = dev.getattr(PHYSPATH, 64).unwrap();
        assert_eq!(raw.len(), 64);
        assert_eq!(&raw[..PP.len()], PP.as_bytes());
        assert!(raw[PP.len()..].iter().all(|&b| b == 0));
        assert_eq!(dev.getattr_str(PHYSPATH, 1024).unwrap(), PP);
        // Room for the string and its NUL, exactly.
        assert_eq!(dev.getattr_str(PHYSPATH, PP.len() + 1).unwrap(), PP);
        // No room for the NUL: EFAULT, as g_handleattr gives.
        assert_eq!(dev.getattr(PHYSPATH, PP.len()), Err(EFAULT));
        // Other attributes, and a path without a physical path.
        assert_eq!(dev.getattr("GEOM::ident", 64), Err(EOPNOTSUPP));
        assert_eq!(dev.getattr("GEOM::physpat", 64), Err(EOPNOTSUPP));
        let other = sim.open("da1", Access::new(1, 0, 0)).unwrap();
        assert_eq!(other.getattr(PHYSPATH, 64), Err(EOPNOTSUPP));
        // Removing it again (gnop destroy and create without -z).
        p0.set_physpath(None);
        assert_eq!(dev.getattr(PHYSPATH, 64), Err(EOPNOTSUPP));
        // A generic string attribute is answered the same way.
        p0.set_attribute("GEOM::ident", Some("SER123"));
        assert_eq!(dev.getattr_str("GEOM::ident", 32).unwrap(), "SER123");
        drop((dev, other));
    });
}

#[test]
fn getattr_needs_read_access_and_meets_faults() {
    both(2, |sim| {
        let lun = da0_with_physpath(sim);
        let wo = sim.open("da0", Access::new(0, 1, 0)).unwrap();
        assert_eq!(
            wo.getattr(PHYSPATH, 64),
            Err(EPERM),
            "g_io_check: no read access"
        );
        drop(wo);
        let dev = sim.open("da0", Access::new(1, 0, 0)).unwrap();
        lun.path(0).unwrap().fail_next(1, ENXIO);
        assert_eq!(
            dev.getattr(PHYSPATH, 64),
            Err(ENXIO),
            "injected faults apply"
        );
        assert_eq!(dev.getattr_str(PHYSPATH, 64).unwrap(), PP);
        // A dead path: the node is gone with it.
        lun.path(0).unwrap().die();
        sim.run_until_idle();
        assert_eq!(dev.getattr(PHYSPATH, 64), Err(ENXIO));
        drop(dev);
    });
}

#[test]
fn passthrough_forwards_getattr_unchanged() {
    both(3, |sim| {
        let _lun = da0_with_physpath(sim);
        pass_over(sim, "da0");
        let dev = sim.open("da0.pass", Access::new(1, 0, 0)).unwrap();
        let raw = dev.getattr(PHYSPATH, 128).unwrap();
        assert_eq!(
            raw.len(),
            128,
            "the child's bio_completed reaches the parent"
        );
        assert_eq!(dev.getattr_str(PHYSPATH, 128).unwrap(), PP);
        assert_eq!(dev.getattr(PHYSPATH, 4), Err(EFAULT));
        assert_eq!(dev.getattr("GEOM::ident", 128), Err(EOPNOTSUPP));
        drop(dev);
    });
}
