//! `gmultipath list` and `status`: the core's confxml printed the way
//! geom(8) prints it through libgeom (whose lists come out in the reverse
//! of the XML's order, so paths are listed oldest first).

use geom_sim::{LunConfig, Sim};

fn sim_with(mode: &str) -> Sim {
    let sim = Sim::deterministic(3);
    sim.add_lun(LunConfig::new(&["md0", "md1"], 1 << 20))
        .expect("lun");
    sim.load_multipath().expect("load MULTIPATH");
    let mut argv = vec!["create"];
    if !mode.is_empty() {
        argv.push(mode);
    }
    argv.extend(["mp0", "md0", "md1"]);
    sim.gmultipath(&argv).expect("create");
    sim.run_until_idle();
    sim
}

#[test]
fn list_prints_geom_provider_and_paths_oldest_first() {
    let sim = sim_with("");
    sim.gmultipath(&["fail", "mp0", "md0"]).expect("fail");
    sim.run_until_idle();
    let out = sim.gmultipath(&["list", "mp0"]).expect("list");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Geom name: mp0");
    let at = |l: &str| {
        lines
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("no line {l:?} in:\n{out}"))
    };
    assert!(at("State: DEGRADED") < at("Providers:"));
    assert!(at("Type: MANUAL") < at("Providers:"));
    assert!(at("Mode: Active/Passive") < at("Providers:"));
    assert!(at("1. Name: multipath/mp0") > at("Providers:"));
    assert!(at("   Mediasize: 1048576 (1.0M)") > at("Providers:"));
    let c = at("Consumers:");
    assert_eq!(lines[c + 1], "1. Name: md0");
    let md1 = at("2. Name: md1");
    let states: Vec<&str> = lines[c..]
        .iter()
        .filter_map(|l| l.strip_prefix("   State: "))
        .collect();
    assert_eq!(states, ["FAIL", "ACTIVE"], "in:\n{out}");
    assert!(md1 > c);
    assert_eq!(out.chars().last(), Some('\n'));
    assert!(out.ends_with("\n\n"), "a blank line ends each geom");
    // Every geom with a provider, without names.
    assert_eq!(sim.gmultipath(&["list"]).expect("list all"), out);
    sim.finish().assert_clean();
}

#[test]
fn list_and_status_errors() {
    let sim = Sim::deterministic(4);
    // geom(8) refuses the class before `list` runs (sim/tests/geom_cmd.rs).
    assert_eq!(
        sim.gmultipath(&["list"]).unwrap_err(),
        "Invalid class name 'multipath'."
    );
    sim.load_multipath().expect("load");
    assert_eq!(
        sim.gmultipath(&["list", "nope"]).unwrap_err(),
        "Class 'MULTIPATH' does not have an instance named 'nope'."
    );
    assert_eq!(
        sim.gmultipath(&["status", "nope"]).unwrap_err(),
        "No such geom: nope."
    );
    assert_eq!(sim.gmultipath(&["list"]).expect("empty list"), "");
    sim.finish().assert_clean();
}

#[test]
fn status_lines() {
    let sim = sim_with("-A");
    let out = sim.gmultipath(&["status", "mp0"]).expect("status");
    assert_eq!(
        out,
        "         Name   Status  Components\n\
         multipath/mp0  OPTIMAL  md0 (ACTIVE)\n\
         \x20                       md1 (ACTIVE)\n"
    );
    let out = sim
        .gmultipath(&["status", "-gs", "mp0"])
        .expect("status -gs");
    assert_eq!(
        out,
        "mp0  OPTIMAL  md0 (ACTIVE)\nmp0  OPTIMAL  md1 (ACTIVE)\n"
    );
    sim.finish().assert_clean();
}
