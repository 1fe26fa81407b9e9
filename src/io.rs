//! The I/O path: start, child done, and the worker's failover retry.
//!
//! `start` and `done` run where the topology lock is not held and sleeping
//! is forbidden; they touch only atomics (see [`crate::path`]). A child that
//! fails with EIO or ENXIO goes to the worker, which marks the path failed
//! under the topology lock and sends the parent again on the next path, up
//! to one try per path the geom had when the bio first arrived. A
//! successful BIO_GETATTR of "GEOM::physpath" gets "/mp" appended in done,
//! so the device does not claim its path's physical location.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use crate::class::Softc;
use crate::metadata::Mode;
use crate::mp_log;
use crate::path::{st, Cookie, Taken, MAX_PATHS};
use crate::platform::{BioCmd, Platform, EIO, ENOMEM, ENXIO};

/// The GETATTR attribute that names where a device sits physically
/// (`diskinfo -p`, `DIOCGPHYSPATH`).
pub const PHYSPATH_ATTR: &str = "GEOM::physpath";
/// What a multipath device adds to its path's physical path, so that the
/// device and its paths do not claim the same location.
pub const PHYSPATH_SUFFIX: &str = "/mp";

impl<P: Platform> Softc<P> {
    /// `g_start_t`: a bio for `multipath/NAME`. Takes no lock.
    pub fn start(self: &Arc<Self>, plat: &P, bp: P::Bio) {
        // One try per attached path. Counted from the occupied slots (one
        // load) rather than ndisks: a path being lost right now still holds
        // its slot, so a bio that raced onto it keeps a try for the path
        // that remains.
        let attached = self.paths.attached();
        let budget = attached.clamp(1, MAX_PATHS) as u8;
        self.dispatch(plat, bp, 0, budget);
    }

    /// Picks a path, clones the parent onto it and sends the clone down.
    fn dispatch(self: &Arc<Self>, plat: &P, parent: P::Bio, attempt: u8, budget: u8) {
        let cmd = plat.bio_cmd(&parent);
        let Some(Taken {
            slot,
            consumer,
            lane,
        }) = self.pick(plat, cmd)
        else {
            plat.io_deliver(parent, ENXIO);
            return;
        };
        let mut child = match plat.clone_bio(parent) {
            Ok(c) => c,
            Err(parent) => {
                self.put_path(plat, slot, lane);
                plat.io_deliver(parent, ENOMEM);
                return;
            }
        };
        plat.bio_set_cookie(
            &mut child,
            Cookie {
                slot,
                attempt,
                budget,
                // LANES is 4: the lane fits the cookie's byte.
                lane: lane as u8,
            }
            .encode(),
        );
        plat.io_request(child, P::consumer_from_raw(consumer));
    }

    /// Chooses a path for `cmd` and takes an in-flight reference on it:
    /// the paths take turns in active/active (and for reads in
    /// active/read), the active path carries the rest.
    fn pick(self: &Arc<Self>, plat: &P, cmd: BioCmd) -> Option<Taken> {
        let balanced = match self.mode() {
            Mode::ActiveActive => true,
            Mode::ActiveRead => cmd == BioCmd::Read,
            Mode::ActivePassive => false,
        };
        self.paths.acquire(balanced, plat.cpu_hint(), |slot| {
            self.post_teardown(plat, slot)
        })
    }

    /// Drops a path reference; a drained LOST path is torn down by event.
    fn put_path(self: &Arc<Self>, plat: &P, slot: usize, lane: usize) {
        if self.paths.put_on(slot, lane) {
            self.post_teardown(plat, slot);
        }
    }

    /// A child bio came back (done context: no topology, no sleep).
    pub fn child_done(self: &Arc<Self>, plat: &P, child: P::Bio) {
        let err = plat.bio_error(&child);
        if err == EIO || err == ENXIO {
            // Failover needs the topology lock: hand it to the worker, which
            // also drops this child's path reference. Queueing cannot fail
            // and does not allocate (see BioQueue).
            self.worker.enqueue(self.clone(), child);
            return;
        }
        let mut child = child;
        let cookie = Cookie::decode(plat.bio_cookie(&child));
        if cookie.slot < MAX_PATHS {
            self.put_path(plat, cookie.slot, usize::from(cookie.lane));
        }
        if err == 0
            && plat.bio_cmd(&child) == BioCmd::GetAttr
            && plat.bio_attribute_is(&child, PHYSPATH_ATTR)
        {
            // In place, no allocation. A buffer too short for the suffix
            // is not an error: the path's own answer goes up unchanged.
            let _ = plat.bio_append_attr_str(&mut child, PHYSPATH_SUFFIX);
        }
        plat.std_done(child);
    }

    /// Worker context: a child failed with EIO or ENXIO.
    pub fn handle_failed(self: Arc<Self>, plat: &P, child: P::Bio) {
        let err = plat.bio_error(&child);
        let cookie = Cookie::decode(plat.bio_cookie(&child));
        let slot = cookie.slot.min(MAX_PATHS - 1);
        plat.topology_lock();
        // FreeBSD logs and faults on the first error whatever else the
        // path is, LOST (removed or disconnected, still draining) included.
        if !self.paths.is_free(slot) && !self.paths.has(slot, st::FAIL) {
            mp_log!(
                plat,
                "Error {}, {} in {} marked FAIL",
                err,
                self.paths.name(slot),
                self.name
            );
            self.fault(plat, slot, st::FAIL);
        }
        if self.paths.put_on(slot, usize::from(cookie.lane)) {
            // Detach on the event thread, like every other teardown: a verb
            // running there may have dropped the topology lock around a
            // label write, and must not find a consumer gone under it.
            // The worker may sleep: the post waits for memory.
            self.post_teardown_sleeping(plat, slot);
        }
        plat.topology_unlock();

        if cookie.attempt.saturating_add(1) < cookie.budget {
            self.retries.fetch_add(1, Ordering::Relaxed);
            let parent = plat.retire_child(child);
            self.dispatch(plat, parent, cookie.attempt + 1, cookie.budget);
        } else {
            plat.std_done(child);
        }
    }
}
