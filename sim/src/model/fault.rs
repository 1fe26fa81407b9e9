//! Per-path fault controls: what a `gnop configure` or a flaky cable does.

use geom_multipath_rs::platform::{BioCmd, Errno, EIO};

use crate::util::Rng;

/// The faults a path applies to the bios it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Reads failing, per mille (`gnop -r`, scaled to 1000).
    pub read_fail_permille: u32,
    /// Writes (and deletes, flushes) failing, per mille (`gnop -w`).
    pub write_fail_permille: u32,
    /// The errno rate-based failures return (default EIO).
    pub errno: Errno,
    /// The next K bios fail, whatever they are.
    pub fail_next: u32,
    pub fail_next_errno: Errno,
    /// Added to every completion, microseconds.
    pub latency_us: u64,
    /// A random extra of up to this, microseconds (reorders completions).
    pub jitter_us: u64,
}

impl Faults {
    /// The error the next bio of kind `cmd` gets (0 for none), drawing
    /// from `rng` so that a seed fixes which bios fail.
    pub fn decide(&mut self, cmd: BioCmd, rng: &mut Rng) -> Errno {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return if self.fail_next_errno != 0 {
                self.fail_next_errno
            } else {
                EIO
            };
        }
        let rate = match cmd {
            BioCmd::Read => self.read_fail_permille,
            BioCmd::Write | BioCmd::Delete | BioCmd::Flush => self.write_fail_permille,
            _ => 0,
        };
        if rate > 0 && rng.chance(rate) {
            return if self.errno != 0 { self.errno } else { EIO };
        }
        0
    }

    /// Latency for one completion, ns.
    pub fn delay_ns(&self, rng: &mut Rng) -> u64 {
        let j = if self.jitter_us > 0 {
            rng.below(self.jitter_us + 1)
        } else {
            0
        };
        (self.latency_us + j) * 1000
    }
}
