//! Sleep channels (`_sleep`/`wakeup`): a generation counter per channel
//! address. A sleeper reads the generation before releasing its interlock
//! and sleeps until it changes, so a wakeup between the two is not lost.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::util::{lock, wait_timeout};

#[derive(Default)]
pub struct SleepQ {
    gens: Mutex<HashMap<usize, u64>>,
    cv: Condvar,
}

impl SleepQ {
    /// The channel's generation.
    pub fn gen(&self, chan: usize) -> u64 {
        lock(&self.gens).get(&chan).copied().unwrap_or(0)
    }

    /// `wakeup(chan)`: every sleeper on it wakes.
    pub fn wakeup(&self, chan: usize) {
        *lock(&self.gens).entry(chan).or_default() += 1;
        self.cv.notify_all();
    }

    /// Threaded mode: sleeps until the channel moves past `gen0` (true)
    /// or `timeout` passes (false). No timeout: sleeps until woken.
    pub fn wait(&self, chan: usize, gen0: u64, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = lock(&self.gens);
        loop {
            if g.get(&chan).copied().unwrap_or(0) != gen0 {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            g = wait_timeout(&self.cv, g, Duration::from_millis(50));
        }
    }
}

/// An `sbintime_t` (32.32 fixed-point seconds) as a duration; None for 0.
pub fn sbt_duration(sbt: i64) -> Option<Duration> {
    if sbt <= 0 {
        return None;
    }
    let secs = (sbt >> 32) as u64;
    let frac = (sbt & 0xffff_ffff) as u64;
    Some(Duration::from_secs(secs) + Duration::from_nanos((frac * 1_000_000_000) >> 32))
}
