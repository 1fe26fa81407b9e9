//! Per-bio latency, as a user process sees it: from the bio's creation to
//! its completion reaching the process, in sim time (virtual time in
//! deterministic mode, wall time on threads).
//!
//! GEOM (the simulator's `bio.rs`) stamps every user bio when it is made;
//! when a path fails a clone of it, the time of that error is kept on the
//! user bio, and when the class sends a clone again the bio counts as
//! re-issued. From those stamps:
//! - **latency** of every bio, and of the re-issued ones alone;
//! - **failover time**: from the (first) path error to the successful
//!   completion of the re-issued bio;
//! - **worker wait**: from a path error to the re-issue of the bio it
//!   failed (the time the bio waited for the class's worker).

use serde::Serialize;

use crate::sim::SimPlatform;

/// Raw samples, nanoseconds.
#[derive(Clone, Debug, Default)]
pub(crate) struct LatencyLog {
    pub all: Vec<u64>,
    pub reissued: Vec<u64>,
    pub failover: Vec<u64>,
    pub worker_wait: Vec<u64>,
}

/// Percentiles of one set of samples, nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `v`.
    pub fn of(v: &[u64]) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        let mut s = v.to_vec();
        s.sort_unstable();
        let rank = |q: f64| -> u64 {
            let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
            s[i]
        };
        Percentiles {
            count: s.len() as u64,
            p50_ns: rank(0.50),
            p99_ns: rank(0.99),
            max_ns: s[s.len() - 1],
        }
    }

    fn show(&self) -> String {
        if self.count == 0 {
            return "none".into();
        }
        format!(
            "p50 {} p99 {} max {} ({})",
            us(self.p50_ns),
            us(self.p99_ns),
            us(self.max_ns),
            self.count
        )
    }
}

fn us(ns: u64) -> String {
    format!("{:.1}us", ns as f64 / 1000.0)
}

/// What the run's bios saw (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencyStats {
    /// "virtual" (deterministic) or "wall" (threaded).
    pub clock: String,
    pub all: Percentiles,
    pub reissued: Percentiles,
    pub failover: Percentiles,
    pub worker_wait: Percentiles,
}

impl LatencyStats {
    /// One line for a timeline summary.
    pub fn text(&self) -> String {
        format!(
            "latency ({} time): all {}; re-issued {}; failover {}; worker wait {}",
            self.clock,
            self.all.show(),
            self.reissued.show(),
            self.failover.show(),
            self.worker_wait.show()
        )
    }
}

impl SimPlatform {
    /// The latency figures of every user bio completed so far.
    pub fn latency(&self) -> LatencyStats {
        let log = self.latency_log();
        LatencyStats {
            clock: match self.mode() {
                crate::Mode::Deterministic => "virtual".into(),
                crate::Mode::Threaded => "wall".into(),
            },
            all: Percentiles::of(&log.all),
            reissued: Percentiles::of(&log.reissued),
            failover: Percentiles::of(&log.failover),
            worker_wait: Percentiles::of(&log.worker_wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).rev().collect();
        let p = Percentiles::of(&v);
        assert_eq!((p.count, p.p50_ns, p.p99_ns, p.max_ns), (100, 50, 99, 100));
        assert_eq!(Percentiles::of(&[7]).p99_ns, 7);
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }
}
