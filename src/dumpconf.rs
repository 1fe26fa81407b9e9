//! dumpconf: the XML that `gmultipath list` and `status` read.
//!
//! Element names and values are FreeBSD's, so the stock userland and the
//! scripts built on it keep working: per path `<State>` (NEW, LOST, FAIL,
//! ACTIVE, READ, PASSIVE), per provider `<State>`, per geom `<State>`
//! (OPTIMAL, DEGRADED, BROKEN), `<UUID>`, `<Mode>` and `<Type>`, in that order.

use core::fmt;
use core::fmt::Write as _;

use crate::class::Softc;
use crate::metadata::Mode;
use crate::path::st;
use crate::platform::Platform;

/// One path's state word as `gmultipath list` shows it.
pub fn path_state<P: Platform>(sc: &Softc<P>, slot: usize) -> &'static str {
    let state = sc.paths.state(slot);
    if state & st::NEW != 0 {
        "NEW"
    } else if state & st::LOST != 0 {
        "LOST"
    } else if state & st::FAIL != 0 {
        "FAIL"
    } else if sc.mode() == Mode::ActiveActive || sc.paths.active() == Some(slot) {
        "ACTIVE"
    } else if sc.mode() == Mode::ActiveRead {
        "READ"
    } else {
        "PASSIVE"
    }
}

/// The device's state: BROKEN without a good path, DEGRADED when a path is
/// failed or there is only one, OPTIMAL otherwise.
pub fn geom_state<P: Platform>(sc: &Softc<P>) -> &'static str {
    let good = sc.paths.good_count();
    let ndisks = sc.paths.ndisks();
    if good == 0 {
        "BROKEN"
    } else if good != ndisks || ndisks == 1 {
        "DEGRADED"
    } else {
        "OPTIMAL"
    }
}

pub(crate) fn dumpconf<P: Platform>(
    sc: &Softc<P>,
    _plat: &P,
    sb: &mut dyn fmt::Write,
    indent: &str,
    cp: Option<P::Consumer>,
    pp: Option<P::Provider>,
) {
    // A failed write means the sbuf overflowed; GEOM truncates the XML then.
    let _ = write_conf(sc, sb, indent, cp, pp);
}

fn write_conf<P: Platform>(
    sc: &Softc<P>,
    sb: &mut dyn fmt::Write,
    indent: &str,
    cp: Option<P::Consumer>,
    pp: Option<P::Provider>,
) -> fmt::Result {
    if let Some(cp) = cp {
        if let Some(slot) = sc.slot_of(cp) {
            writeln!(sb, "{}<State>{}</State>", indent, path_state(sc, slot))?;
        }
        return Ok(());
    }
    if pp.is_some() {
        return writeln!(sb, "{}<State>{}</State>", indent, geom_state(sc));
    }
    // FreeBSD's order: State, UUID, Mode, Type.
    writeln!(sb, "{}<State>{}</State>", indent, geom_state(sc))?;
    writeln!(sb, "{}<UUID>{}</UUID>", indent, Escaped(sc.uuid()))?;
    writeln!(sb, "{}<Mode>{}</Mode>", indent, sc.mode().name())?;
    let kind = if sc.is_automatic() {
        "AUTOMATIC"
    } else {
        "MANUAL"
    };
    sb.write_str(indent)?;
    writeln!(sb, "<Type>{}</Type>", kind)
}

/// Text escaped for the XML as GEOM's `g_conf_cat_escaped` escapes names:
/// markup characters and every byte above 0x7e as `&#xNN;`, other control
/// characters as `?`. A label's uuid may be any text (FreeBSD prints it
/// raw, which breaks the XML for every `geom` user when it holds a `<`).
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            match b {
                b'&' | b'<' | b'>' | b'\'' | b'"' | 0x7f..=0xff => write!(f, "&#x{b:X};")?,
                b'\t' | b'\n' | b'\r' | 0x20..=0x7e => f.write_char(char::from(b))?,
                _ => f.write_char('?')?,
            }
        }
        Ok(())
    }
}
