//! The failover worker: one thread per class that re-issues failed bios.
//!
//! Child bios finish in `done`, where sleeping and the topology lock are
//! forbidden. A child that failed with EIO or ENXIO is therefore queued here;
//! the worker (a kproc in the kernel, a thread or a scheduled task in the
//! simulator) takes the topology lock, marks the path failed, picks the next
//! one and sends the parent again.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::class::Softc;
use crate::platform::{Platform, WaitQueue};

/// A failed child bio waiting for the worker, with the geom it belongs to.
pub struct Failed<P: Platform> {
    pub softc: Arc<Softc<P>>,
    pub child: P::Bio,
}

/// The worker's queue and its stop protocol.
pub struct Worker<P: Platform> {
    /// Mutex + sleep channel; `queue` is only touched while it is held, so
    /// the spin lock inside is never contended (it only makes the access safe).
    wq: P::Wq,
    queue: spin::Mutex<VecDeque<Failed<P>>>,
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
            queue: spin::Mutex::new(VecDeque::new()),
            stop: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            handled: AtomicUsize::new(0),
        })
    }

    /// Queues a failed child. Called from done: takes only the worker
    /// mutex and never sleeps. The queue grows without sleeping; if memory
    /// is short the item is handed back so the caller can complete it.
    pub fn enqueue(&self, item: Failed<P>) -> Result<(), Failed<P>> {
        let _held = Held::take(&self.wq);
        let mut q = self.queue.lock();
        if q.try_reserve(1).is_err() {
            return Err(item);
        }
        q.push_back(item);
        self.wq.wakeup();
        Ok(())
    }

    fn take_one(&self) -> Option<Failed<P>> {
        let _held = Held::take(&self.wq);
        self.queue.lock().pop_front()
    }

    /// Handles one queued bio, if any. Returns whether it did.
    /// Takes the topology lock itself: call it without.
    pub fn process_one(&self, plat: &P) -> bool {
        match self.take_one() {
            Some(item) => {
                // Counted first: the re-issued bio may complete, and its
                // waiter look at the count, before handle_failed returns.
                self.handled.fetch_add(1, Ordering::SeqCst);
                item.softc.clone().handle_failed(plat, item.child);
                true
            }
            None => false,
        }
    }

    /// Whether bios are waiting (for a deterministic scheduler).
    pub fn has_work(&self) -> bool {
        let _held = Held::take(&self.wq);
        !self.queue.lock().is_empty()
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
            if self.queue.lock().is_empty() {
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
        let _held = Held::take(&self.wq);
        self.stop.store(true, Ordering::Release);
        self.wq.wakeup();
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Marks the worker exited (for platforms that drive it by steps).
    pub fn mark_exited(&self) {
        let _held = Held::take(&self.wq);
        self.exited.store(true, Ordering::Release);
        self.wq.wakeup();
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
