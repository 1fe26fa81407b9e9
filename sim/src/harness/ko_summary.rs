//! Adding up what ran through the module over many simulators: each one
//! that unloads a `GMR_CLASS=ko` module (or a `mpsim --ko` run) appends
//! its [`KoSummary`] as one line to the file `GMR_KO_SUMMARY` names, and
//! `mpsim ko-total FILE` sums the lines for `make test`'s summary.

use std::io::Write;

use crate::ko::KoSummary;

/// The variable naming the file summaries are appended to.
pub const ENV: &str = "GMR_KO_SUMMARY";

/// Appends `s` to the `GMR_KO_SUMMARY` file, when the variable is set.
/// A write failure is said on stderr (the run itself is not affected).
pub fn record(s: &KoSummary) {
    let Some(path) = std::env::var_os(ENV) else {
        return;
    };
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        // One write per line: appends from parallel tests do not mix.
        .and_then(|mut f| f.write_all(format!("{}\n", to_line(s)).as_bytes()));
    if let Err(e) = r {
        eprintln!("{ENV}={}: {e}", path.to_string_lossy());
    }
}

/// `key=value` words, one per field.
pub fn to_line(s: &KoSummary) -> String {
    format!(
        "file={} bytes={} kernel_version={} runs={} bios={} faults={} allocations={} failed_injected={} leaks={} panics={}",
        s.file.replace(char::is_whitespace, "_"),
        s.bytes,
        s.kernel_version,
        s.runs,
        s.bios,
        s.faults,
        s.allocations,
        s.failed_injected,
        s.leaks,
        s.panics
    )
}

/// The summary [`to_line`] wrote, or why the line is not one.
pub fn parse(line: &str) -> Result<KoSummary, String> {
    let mut s = KoSummary::default();
    for w in line.split_whitespace() {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("'{w}' is not key=value"))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| format!("{k}: '{v}' is not a number"))
        };
        match k {
            "file" => s.file = v.to_string(),
            "bytes" => s.bytes = num()?,
            "kernel_version" => {
                s.kernel_version = v
                    .parse()
                    .map_err(|_| format!("kernel_version: '{v}' is not a number"))?
            }
            "runs" => s.runs = num()?,
            "bios" => s.bios = num()?,
            "faults" => s.faults = num()?,
            "allocations" => s.allocations = num()?,
            "failed_injected" => s.failed_injected = num()?,
            "leaks" => s.leaks = num()?,
            "panics" => s.panics = num()?,
            _ => return Err(format!("unknown key {k}")),
        }
    }
    if s.runs == 0 {
        return Err(format!("'{line}': no runs"));
    }
    Ok(s)
}

/// The sum of every line of `text`.
pub fn total(text: &str) -> Result<KoSummary, String> {
    let mut t = KoSummary::default();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        t.add(&parse(l).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bios: u64, leaks: u64) -> KoSummary {
        KoSummary {
            file: "geom_multipath_rs.ko".into(),
            bytes: 1000,
            kernel_version: 1500068,
            runs: 1,
            bios,
            faults: 3,
            allocations: 40,
            failed_injected: 1,
            leaks,
            panics: 0,
        }
    }

    #[test]
    fn lines_round_trip_and_add_up() {
        let text = format!("{}\n{}\n", to_line(&one(10, 0)), to_line(&one(5, 2)));
        let t = total(&text).expect("total");
        assert_eq!(t.runs, 2);
        assert_eq!(t.bios, 15);
        assert_eq!(t.leaks, 2);
        assert_eq!(t.failed_injected, 2);
        assert_eq!(t.kernel_version, 1500068);
        assert_eq!(parse(&to_line(&one(7, 0))), Ok(one(7, 0)));
    }

    #[test]
    fn bad_lines_are_refused() {
        assert!(parse("bios=x runs=1").is_err());
        assert!(parse("bios=1").is_err(), "no runs");
        assert!(parse("colour=blue runs=1").is_err());
        assert!(total("runs=1 bios=2\nnonsense\n").is_err());
    }
}
