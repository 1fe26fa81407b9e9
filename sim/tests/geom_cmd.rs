//! What geom(8) itself decides before a request reaches the class: the
//! class must be loadable or listed, and its standard `load` and `unload`
//! commands (sbin/geom/core/geom.c: get_class, std_load, std_unload).

mod common;

use common::{add_lun_1m, both};

#[test]
fn without_the_class_every_command_is_refused_by_geom() {
    both(7, |sim| {
        add_lun_1m(sim, &["da0", "da1"]);
        let invalid = Err("Invalid class name 'multipath'.".to_string());
        for argv in [
            &["create", "mp", "da0", "da1"][..],
            &["label", "mp", "da0", "da1"],
            &["list"],
            &["status"],
            &["load"],
            &["destroy", "mp"],
            &["frobnicate"],
        ] {
            assert_eq!(sim.gmultipath(argv), invalid, "gmultipath {argv:?}");
        }
        // Nothing was labelled or created on the way.
        assert!(!sim.confxml().contains("MULTIPATH"));
        let class = sim.load_multipath().unwrap();
        assert_eq!(sim.gmultipath(&["status"]), Ok(String::new()));
        sim.unload_class(class).unwrap();
        assert_eq!(sim.gmultipath(&["status"]), invalid, "after unload");
    });
}

#[test]
fn load_finds_the_module_and_unload_looks_for_the_stock_file() {
    both(8, |sim| {
        sim.load_multipath().unwrap();
        let ok = |s: &str| Ok(s.to_string());
        let err = |s: &str| Err(s.to_string());
        for (argv, want) in [
            (&["load"][..], ok("")),
            (&["load", "-v"], ok("Module available.\nDone.\n")),
            (&["load", "-v", "-v"], err("Option 'v' specified twice.")),
            (&["load", "-x"], err("Invalid option -x.")),
            // geom(8) unloads a file named geom_multipath; ours is
            // geom_multipath_rs.ko, so the class stays loaded.
            (
                &["unload"],
                err("Could not find module: No such file or directory."),
            ),
        ] {
            assert_eq!(sim.gmultipath(argv), want, "gmultipath {argv:?}");
        }
        assert!(sim.confxml().contains("<name>MULTIPATH</name>"));
    });
}
