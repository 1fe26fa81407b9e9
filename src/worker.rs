//! The failover worker: one thread per class that re-issues failed bios.
//!
//! Child bios finish in `done`, where sleeping and the topology lock are
//! forbidden. A child that failed with EIO or ENXIO is therefore queued here;
//! the worker (a kproc in the kernel, a thread or a scheduled task in the
//! simulator) takes the topology lock, marks the path failed, picks the next
//! one and sends the parent again.
//!
//! The queue is the platform's ([`BioQueue`], kept with the worker's mutex):
//! in the kernel it links the bios themselves, so queueing from done never
//! allocates and cannot fail.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::class::Softc;
use crate::platform::{BioQueue, Platform, WaitQueue};

/// The worker's queue and its stop protocol.
pub struct Worker<P: Platform> {
    /// Mutex + sleep channel + the queue of failed bios, which is only
    /// touched while the mutex is held.
    wq: P::Wq,
    stop: AtomicBool,
    exited: AtomicBool,
    /// Bios the worker has handled since start: for tests and status.
    handled: AtomicUsize,
}

/// Holds the worker mutex; releases it on drop.
struct Held<'a, W: WaitQueue>(&'a W);

impl<'a, W: WaitQueue> Held<'a, W> {
    fn take(wq: &'a W) -> Self {
        wq.lock();
        Held(wq)
    }
}

impl<W: WaitQueue> Drop for Held<'_, W> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

impl<P: Platform> Worker<P> {
    pub fn new(plat: &P) -> Result<Self, crate::platform::Errno> {
        Ok(Worker {
            wq: plat.new_wait_queue("g_mp_kt")?,
            stop: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            handled: AtomicUsize::new(0),
        })
    }

    /// Queues a failed child of `softc`. Called from done: takes only the
    /// worker mutex, never sleeps and never allocates (the platform's queue
    /// links the bio itself; the softc reference is a count increment).
    pub fn enqueue(&self, softc: Arc<Softc<P>>, child: P::Bio) {
        let _held = Held::take(&self.wq);
        self.wq.push_bio(child, softc);
        self.wq.wakeup();
    }

    fn take_one(&self) -> Option<(P::Bio, Arc<Softc<P>>)> {
        let _held = Held::take(&self.wq);
        self.wq.pop_bio()
    }

    /// Handles one queued bio, if any. Returns whether it did.
    /// Takes the topology lock itself: call it without.
    pub fn process_one(&self, plat: &P) -> bool {
        match self.take_one() {
            Some((child, softc)) => {
                // Counted first: the re-issued bio may complete, and its
                // waiter look at the count, before handle_failed returns.
                self.handled.fetch_add(1, Ordering::SeqCst);
                softc.handle_failed(plat, child);
                true
            }
            None => false,
        }
    }

    /// Whether bios are waiting (for a deterministic scheduler).
    pub fn has_work(&self) -> bool {
        let _held = Held::take(&self.wq);
        self.wq.has_bios()
    }

    /// The worker's mutex and channel (the kernel platform's kproc
    /// handshake uses its mutex too).
    pub fn wait_queue(&self) -> &P::Wq {
        &self.wq
    }

    pub fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }

    /// The worker thread's body: drains the queue, sleeps until woken, and
    /// returns once asked to stop with the queue empty.
    pub fn run(&self, plat: &P) {
        loop {
            while self.process_one(plat) {}
            let held = Held::take(&self.wq);
            if !self.wq.has_bios() {
                if self.stop.load(Ordering::Acquire) {
                    self.exited.store(true, Ordering::Release);
                    self.wq.wakeup();
                    drop(held);
                    return;
                }
                // The emptiness check and the sleep are atomic under the
                // mutex, so an enqueue between them cannot be missed.
                self.wq.sleep();
            }
            drop(held);
        }
    }

    /// Asks the worker to finish: it drains what is queued, then exits.
    pub fn request_stop(&self) {
        self.raise(&self.stop);
    }

    /// Sets `flag` under the queue lock and wakes the sleepers: a sleeper
    /// checks its flag under the same lock, so it cannot miss the wakeup.
    fn raise(&self, flag: &AtomicBool) {
        let _held = Held::take(&self.wq);
        flag.store(true, Ordering::Release);
        self.wq.wakeup();
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Marks the worker exited (for platforms that drive it by steps).
    pub fn mark_exited(&self) {
        self.raise(&self.exited);
    }

    pub fn is_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// Sleeps until the worker has exited (kernel `fini`: msleep on the
    /// worker's channel, as `kproc` gives no join).
    pub fn wait_exited(&self) {
        let _held = Held::take(&self.wq);
        while !self.exited.load(Ordering::Acquire) {
            self.wq.sleep();
        }
    }
}

impl<P: Platform> Drop for Worker<P> {
    /// Bios still queued (a worker that never ran) are given up one by one:
    /// the softc reference is released and the bio's own drop reports it,
    /// outside the mutex (a softc's drop may call the platform).
    fn drop(&mut self) {
        loop {
            let item = {
                let _held = Held::take(&self.wq);
                self.wq.pop_bio()
            };
            match item {
                Some(item) => drop(item),
                None => break,
            }
        }
    }
}
