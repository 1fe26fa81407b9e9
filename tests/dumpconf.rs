//! The XML MULTIPATH puts in `kern.geom.confxml` (what `gmultipath list`
//! and `status` read): element names and values per path (State: ACTIVE,
//! PASSIVE, READ, FAIL, LOST), per geom (State: OPTIMAL, DEGRADED,
//! BROKEN, UUID, Mode, Type) and per provider (State, and the mediasize, which
//! hides the label sector on labelled devices).

mod common;

use std::sync::{Arc, Mutex};

use common::{
    child_text, for_each_mode, getactive, gm, list, modes, provider_ref, san, with_device,
};
use geom_sim::{Access, BioCmd, BioResult, Lun, LunConfig, Sim, EIO, ENXIO};

const SIZE: u64 = 1 << 20;
const DA: [&str; 3] = ["da0", "da1", "da2"];

/// (element, text) pairs of a `<config>`, in document order.
type Config = Vec<(String, String)>;

/// One MULTIPATH geom of the confxml, element names kept.
#[derive(Debug)]
struct GeomXml {
    config: Config,
    /// (path provider name, consumer config), in XML order (newest first).
    consumers: Vec<(String, Config)>,
    /// (name, mediasize, sectorsize, provider config).
    providers: Vec<(String, u64, u32, Config)>,
}

fn config_of(n: roxmltree::Node) -> Config {
    n.children()
        .find(|c| c.has_tag_name("config"))
        .map(|c| {
            c.children()
                .filter(|e| e.is_element())
                .map(|e| {
                    (
                        e.tag_name().name().to_string(),
                        e.text().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn geom_xml(sim: &Sim, name: &str) -> Option<GeomXml> {
    let xml = sim.confxml();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed confxml");
    let prov_name = |id: &str| {
        doc.descendants()
            .find(|p| p.has_tag_name("provider") && p.attribute("id") == Some(id))
            .and_then(|p| child_text(p, "name"))
            .unwrap_or("")
            .to_string()
    };
    let class = doc
        .descendants()
        .find(|c| c.has_tag_name("class") && child_text(*c, "name") == Some("MULTIPATH"))?;
    let g = class
        .children()
        .find(|g| g.has_tag_name("geom") && child_text(*g, "name") == Some(name))?;
    let consumers = g
        .children()
        .filter(|c| c.has_tag_name("consumer"))
        .map(|c| (prov_name(provider_ref(c)), config_of(c)))
        .collect();
    let providers = g
        .children()
        .filter(|p| p.has_tag_name("provider"))
        .map(|p| {
            (
                child_text(p, "name").unwrap_or("").to_string(),
                child_text(p, "mediasize").unwrap().parse().unwrap(),
                child_text(p, "sectorsize").unwrap().parse().unwrap(),
                config_of(p),
            )
        })
        .collect();
    Some(GeomXml {
        config: config_of(g),
        consumers,
        providers,
    })
}

fn pairs(v: &[(&str, &str)]) -> Config {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The geom's `<config>`: exactly State, UUID, Mode, Type, in FreeBSD's
/// order (`gmultipath list` prints them as they come).
#[track_caller]
fn assert_geom(x: &GeomXml, uuid: &str, state: &str, mode: &str, kind: &str) {
    assert_eq!(
        x.config,
        pairs(&[
            ("State", state),
            ("UUID", uuid),
            ("Mode", mode),
            ("Type", kind)
        ]),
        "{x:?}"
    );
    assert_eq!(x.providers.len(), 1, "{x:?}");
    assert_eq!(
        x.providers[0].3,
        pairs(&[("State", state)]),
        "provider {x:?}"
    );
}

/// Per-path `<config>`: exactly one State; `want` oldest path first.
#[track_caller]
fn assert_paths(x: &GeomXml, want: &[(&str, &str)]) {
    let mut got: Vec<(String, Config)> = x.consumers.clone();
    got.reverse();
    let want: Vec<(String, Config)> = want
        .iter()
        .map(|(p, s)| (p.to_string(), pairs(&[("State", s)])))
        .collect();
    assert_eq!(got, want);
}

fn xml(sim: &Sim, name: &str) -> GeomXml {
    sim.run_until_idle();
    geom_xml(sim, name).unwrap_or_else(|| panic!("no geom {name} in the confxml"))
}

fn label_uuid(lun: &Lun) -> String {
    let ss = lun.sectorsize() as u64;
    let s = lun.read_raw(lun.mediasize() - ss, ss as usize).unwrap();
    let f = &s[16..56];
    let end = f.iter().position(|&b| b == 0).unwrap_or(40);
    String::from_utf8(f[..end].to_vec()).unwrap()
}

#[test]
fn path_states_in_each_mode() {
    with_device(
        301,
        &DA,
        &["create", "mp", "da0", "da1", "da2"],
        |sim, _lun| {
            let x = xml(sim, "mp");
            assert_geom(&x, "", "OPTIMAL", "Active/Passive", "MANUAL");
            assert_paths(
                &x,
                &[("da0", "ACTIVE"), ("da1", "PASSIVE"), ("da2", "PASSIVE")],
            );
            gm(sim, &["configure", "-A", "mp"]);
            let x = xml(sim, "mp");
            assert_geom(&x, "", "OPTIMAL", "Active/Active", "MANUAL");
            assert_paths(
                &x,
                &[("da0", "ACTIVE"), ("da1", "ACTIVE"), ("da2", "ACTIVE")],
            );
            gm(sim, &["fail", "mp", "da1"]);
            let x = xml(sim, "mp");
            assert_geom(&x, "", "DEGRADED", "Active/Active", "MANUAL");
            assert_paths(&x, &[("da0", "ACTIVE"), ("da1", "FAIL"), ("da2", "ACTIVE")]);
            gm(sim, &["configure", "-R", "mp"]);
            let x = xml(sim, "mp");
            assert_geom(&x, "", "DEGRADED", "Active/Read", "MANUAL");
            assert_paths(&x, &[("da0", "ACTIVE"), ("da1", "FAIL"), ("da2", "READ")]);
            gm(sim, &["restore", "mp", "da1"]);
            gm(sim, &["prefer", "mp", "da2"]);
            let x = xml(sim, "mp");
            assert_geom(&x, "", "OPTIMAL", "Active/Read", "MANUAL");
            assert_paths(&x, &[("da0", "READ"), ("da1", "READ"), ("da2", "ACTIVE")]);
            gm(sim, &["configure", "-P", "mp"]);
            let x = xml(sim, "mp");
            assert_geom(&x, "", "OPTIMAL", "Active/Passive", "MANUAL");
            assert_paths(
                &x,
                &[("da0", "PASSIVE"), ("da1", "PASSIVE"), ("da2", "ACTIVE")],
            );
        },
    );
}

/// OPTIMAL with every path good, DEGRADED with one failed and always with
/// a single path.
#[test]
fn geom_state_optimal_and_degraded() {
    with_device(302, &DA, &["create", "mp", "da0", "da1"], |sim, _lun| {
        assert_geom(&xml(sim, "mp"), "", "OPTIMAL", "Active/Passive", "MANUAL");
        gm(sim, &["fail", "mp", "da0"]);
        assert_geom(&xml(sim, "mp"), "", "DEGRADED", "Active/Passive", "MANUAL");
        gm(sim, &["restore", "mp", "da0"]);
        assert_geom(&xml(sim, "mp"), "", "OPTIMAL", "Active/Passive", "MANUAL");
        gm(sim, &["remove", "mp", "da1"]);
        let x = xml(sim, "mp");
        assert_geom(&x, "", "DEGRADED", "Active/Passive", "MANUAL");
        assert_paths(&x, &[("da0", "ACTIVE")]);
        gm(sim, &["add", "mp", "da1"]);
        assert_geom(&xml(sim, "mp"), "", "OPTIMAL", "Active/Passive", "MANUAL");
        // A device created with a single path, in every mode.
        for (flag, mode) in [("-A", "Active/Active"), ("-R", "Active/Read")] {
            gm(sim, &["create", flag, "one", "da2"]);
            let x = xml(sim, "one");
            assert_geom(&x, "", "DEGRADED", mode, "MANUAL");
            assert_paths(&x, &[("da2", "ACTIVE")]);
            gm(sim, &["destroy", "one"]);
        }
        gm(sim, &["create", "one", "da2"]);
        assert_geom(&xml(sim, "one"), "", "DEGRADED", "Active/Passive", "MANUAL");
    });
}

/// BROKEN cannot be reached by failing paths: failing the last good one
/// (by the verb or by I/O errors) restores the others first.
#[test]
fn failing_every_path_never_shows_broken() {
    with_device(303, &DA, &["create", "mp", "da0", "da1"], |sim, lun| {
        gm(sim, &["fail", "mp", "da0"]);
        gm(sim, &["fail", "mp", "da1"]);
        let x = xml(sim, "mp");
        assert_geom(&x, "", "DEGRADED", "Active/Passive", "MANUAL");
        assert_paths(&x, &[("da0", "ACTIVE"), ("da1", "FAIL")]);
        // Every path failing I/O: the write fails, the device is not BROKEN.
        lun.path(0).unwrap().fail_rate(EIO, 1000);
        lun.path(1).unwrap().fail_rate(EIO, 1000);
        let dev = sim
            .open("multipath/mp", Access::new(0, 1, 0))
            .expect("open");
        assert_eq!(dev.write(0, &[1; 512]), Err(EIO));
        drop(dev);
        let x = xml(sim, "mp");
        assert_eq!(x.config[0], ("State".to_string(), "DEGRADED".to_string()));
        assert_eq!(
            x.consumers.iter().filter(|(_, c)| c[0].1 == "FAIL").count(),
            1,
            "{x:?}"
        );
        lun.path(0).unwrap().heal();
        lun.path(1).unwrap().heal();
    });
}

/// A path that goes away while bios are in flight on it stays, LOST, until
/// they are back; with every path so, the device is BROKEN and has no
/// active path. Latency keeps the bios in flight long enough to look.
#[test]
fn lost_paths_drain_and_broken() {
    for m in modes() {
        for all in [false, true] {
            let (sim, lun) = san(m, 304 + u64::from(all), &DA[..2], SIZE);
            gm(&sim, &["create", "-A", "mp", "da0", "da1"]);
            let dev = sim
                .open("multipath/mp", Access::new(1, 0, 0))
                .expect("open");
            for i in 0..2 {
                lun.path(i).unwrap().set_latency(400_000, 0);
            }
            let started =
                |l: &Lun| -> u64 { (0..2).map(|i| l.path(i).unwrap().counts().started).sum() };
            let base = started(&lun);
            let done: Arc<Mutex<Vec<BioResult>>> = Arc::default();
            for i in 0..8u64 {
                let d = done.clone();
                dev.submit(BioCmd::Read, i * 4096, 4096, None, move |_, r| {
                    d.lock().unwrap().push(r)
                })
                .expect("submit");
            }
            assert!(sim.run_until(|| started(&lun) == base + 8));
            let dying: &[usize] = if all { &[0, 1] } else { &[0] };
            for &i in dying {
                lun.path(i).unwrap().die();
            }
            let lost = |s: &Sim| {
                s.log_lines()
                    .iter()
                    .filter(|l| l.contains("was disconnected"))
                    .count()
            };
            assert!(sim.run_until(|| lost(&sim) == dying.len()));
            let x = geom_xml(&sim, "mp").expect("still there while draining");
            assert!(done.lock().unwrap().is_empty(), "bios came back too soon");
            if all {
                assert_geom(&x, "", "BROKEN", "Active/Active", "MANUAL");
                assert_paths(&x, &[("da0", "LOST"), ("da1", "LOST")]);
                assert_eq!(getactive(&sim, "mp"), "none");
                assert!(list(&sim, "mp").is_some());
            } else {
                assert_geom(&x, "", "DEGRADED", "Active/Active", "MANUAL");
                assert_paths(&x, &[("da0", "LOST"), ("da1", "ACTIVE")]);
                assert_eq!(getactive(&sim, "mp"), "da1");
            }
            assert!(sim.run_until(|| done.lock().unwrap().len() == 8));
            sim.run_until_idle();
            let errors: Vec<i32> = done.lock().unwrap().iter().map(|r| r.error).collect();
            if all {
                // Nowhere to retry: ENXIO, and the device is gone.
                assert!(errors.iter().all(|&e| e == ENXIO), "{errors:?}");
                assert!(geom_xml(&sim, "mp").is_none());
            } else {
                // Retried on da1; da0 is torn down once drained.
                assert!(errors.iter().all(|&e| e == 0), "{errors:?}");
                let x = xml(&sim, "mp");
                assert_geom(&x, "", "DEGRADED", "Active/Active", "MANUAL");
                assert_paths(&x, &[("da1", "ACTIVE")]);
            }
            drop(dev);
            sim.finish().assert_clean();
        }
    }
}

/// UUID, Type and the provider's size: manual devices show the whole
/// path and no uuid; labelled ones the label's uuid and one sector less.
#[test]
fn uuid_type_and_mediasize() {
    for_each_mode(|m| {
        let (sim, lun) = san(m, 306, &DA[..2], SIZE);
        let mut cfg = LunConfig::new(&["dk0", "dk1"], SIZE);
        cfg.sectorsize = 4096;
        let wide = sim.add_lun(cfg).expect("4K lun");
        sim.run_until_idle();

        gm(&sim, &["create", "mp", "da0", "da1"]);
        let x = xml(&sim, "mp");
        assert_geom(&x, "", "OPTIMAL", "Active/Passive", "MANUAL");
        assert_eq!(
            (x.providers[0].0.as_str(), x.providers[0].1),
            ("multipath/mp", SIZE)
        );
        assert_eq!(x.providers[0].2, 512);
        gm(&sim, &["create", "-R", "mk", "dk0", "dk1"]);
        let x = xml(&sim, "mk");
        assert_geom(&x, "", "OPTIMAL", "Active/Read", "MANUAL");
        assert_eq!((x.providers[0].1, x.providers[0].2), (SIZE, 4096));
        gm(&sim, &["stop", "mp"]);
        gm(&sim, &["stop", "mk"]);

        gm(&sim, &["label", "-A", "lp", "da0", "da1"]);
        let uuid = label_uuid(&lun);
        assert_eq!(uuid.len(), 36);
        let x = xml(&sim, "lp");
        assert_geom(&x, &uuid, "OPTIMAL", "Active/Active", "AUTOMATIC");
        assert_eq!(x.providers[0].0, "multipath/lp");
        assert_eq!((x.providers[0].1, x.providers[0].2), (SIZE - 512, 512));
        assert_paths(&x, &[("da0", "ACTIVE"), ("da1", "ACTIVE")]);

        gm(&sim, &["label", "lk", "dk0", "dk1"]);
        let uuid_k = label_uuid(&wide);
        assert_ne!(uuid_k, uuid);
        let x = xml(&sim, "lk");
        assert_geom(&x, &uuid_k, "OPTIMAL", "Active/Passive", "AUTOMATIC");
        assert_eq!((x.providers[0].1, x.providers[0].2), (SIZE - 4096, 4096));

        // configure keeps the uuid (and rewrites the label with it).
        gm(&sim, &["configure", "-R", "lk"]);
        assert_geom(
            &xml(&sim, "lk"),
            &uuid_k,
            "OPTIMAL",
            "Active/Read",
            "AUTOMATIC",
        );
        assert_eq!(label_uuid(&wide), uuid_k);
        sim
    });
}

/// The original create form: a uuid, so AUTOMATIC and one sector less.
#[test]
fn create_with_uuid_is_automatic() {
    for_each_mode(|m| {
        let (sim, _lun) = san(m, 307, &DA[..2], SIZE);
        let uuid = "A1B2C3D4-0000-4000-8000-00000000ABCD";
        gm(&sim, &["create", "mp", "da0", "da1", uuid]);
        let x = xml(&sim, "mp");
        assert_geom(&x, uuid, "OPTIMAL", "Active/Passive", "AUTOMATIC");
        assert_eq!(x.providers[0].1, SIZE - 512);
        sim
    });
}
