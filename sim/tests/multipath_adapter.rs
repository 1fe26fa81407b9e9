//! The MULTIPATH adapter against the core's fixed entry points (the core's
//! bodies are being written; these tests hold for stubs and real ones).

mod common;

use common::{add_lun_1m, both};
use geom_sim::{Access, LunConfig, Sim, SimCtlReq};

#[test]
fn load_taste_ctl_confxml_unload() {
    both(5, |sim| {
        let class = sim.load_multipath().unwrap();
        add_lun_1m(sim, &["md0", "md1"]);
        // Requests reach the core's ctlreq, under the topology lock.
        let err = sim.gmultipath(&["getactive", "nosuch"]).unwrap_err();
        assert_eq!(err, "Device nosuch is invalid");
        let req = sim.gctl(SimCtlReq::geom_cmd("NOSUCHCLASS", "x", &[], &[], false));
        assert_eq!(req.error_text(), Some("Class not found"));
        let xml = sim.confxml();
        assert!(xml.contains("<name>MULTIPATH</name>"), "{xml}");
        assert!(xml.contains("<name>md1</name>") && xml.contains("<mediasize>1048576</mediasize>"));
        assert!(xml.starts_with("<mesh>\n") && xml.ends_with("</mesh>\n"));
        // Unload runs the core's fini, which stops its worker.
        sim.unload_class(class).unwrap();
        assert!(!sim.confxml().contains("MULTIPATH"));
    });
}

#[test]
fn label_writes_the_last_sector_and_retastes() {
    both(5, |sim| {
        sim.load_multipath().unwrap();
        let lun = add_lun_1m(sim, &["da0", "da1"]);
        let out = sim
            .gmultipath(&["label", "-A", "mp0", "da0", "da1"])
            .unwrap();
        assert_eq!(out, "", "da1 is the same LUN, so it sees the label");
        let sector = lun.read_raw((1 << 20) - 512, 512).unwrap();
        assert_eq!(&sector[..16], b"GEOM::MULTIPATH\0");
        assert_eq!(&sector[56..59], b"mp0");
        assert_eq!(sector[88], 1, "active/active");
        assert_eq!(
            u64::from_le_bytes(sector[80..88].try_into().unwrap()),
            1 << 20
        );
        // da1 is a path of mp0, held open exclusively: clearing its label
        // from outside is refused (EPERM, as g_access refuses the write
        // open in FreeBSD), and the label stays.
        assert_eq!(
            sim.gmultipath(&["clear", "da1"]),
            Err("Can't clear metadata on da1: Operation not permitted.\nNot fully done.".into())
        );
        let sector = lun.read_raw((1 << 20) - 512, 512).unwrap();
        assert_eq!(
            &sector[..16],
            b"GEOM::MULTIPATH\0",
            "the label is still there"
        );
        drop(sim.open("da0", Access::new(1, 0, 0)));
    });
}

#[test]
fn label_refuses_mismatched_sizes() {
    let sim = Sim::deterministic(1);
    add_lun_1m(&sim, &["da0"]);
    sim.add_lun(LunConfig::new(&["da1"], 2 << 20)).unwrap();
    // geom(8) checks the class is there before anything else.
    sim.load_multipath().unwrap();
    assert_eq!(
        sim.gmultipath(&["label", "mp0", "da0", "da1"]).unwrap_err(),
        "da1 media size 2097152 different."
    );
    assert_eq!(
        sim.gmultipath(&["prefer", "mp0"]).unwrap_err(),
        "Usage: prefer GEOM PROVIDER"
    );
    assert_eq!(
        sim.gmultipath(&["bogus"]).unwrap_err(),
        "Unknown command: bogus."
    );
    sim.finish().assert_clean();
}

#[test]
fn gctl_request_layout_matches_geom8() {
    let r = SimCtlReq::geom_cmd(
        "MULTIPATH",
        "create",
        &[("active_active", true), ("active_read", false)],
        &["mp0", "md0"],
        true,
    );
    let names: Vec<&str> = r.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "class",
            "verb",
            "version",
            "active_active",
            "active_read",
            "nargs",
            "arg0",
            "arg1",
            "output"
        ]
    );
    use geom_sim::CtlReq;
    assert_eq!(r.param("version"), Some(&1u32.to_ne_bytes()[..]));
    assert_eq!(r.param("active_active"), Some(&1i32.to_ne_bytes()[..]));
    assert_eq!(r.param("arg1"), Some(&b"md0\0"[..]));
    assert_eq!(r.param("output").map(|o| o.len()), Some(4096));
    let mut r = r;
    assert!(r.set_output("output", "md1 md0\n").is_ok());
    assert_eq!(r.text("output").as_deref(), Some("md1 md0\n"));
    assert!(r.set_output("arg0", "x").is_err());
    r.error(format_args!("second"));
    assert_eq!(
        r.error_text(),
        Some("No write access arg0 argument"),
        "first error wins"
    );
}
