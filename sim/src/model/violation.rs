//! GEOM rule violations: what the kernel would catch with KASSERT or
//! `g_topology_assert()`, recorded with the name of the rule broken.
//!
//! The simulator records a violation and then refuses or neutralises the
//! offending call where going on would hang it (a sleep in done returns at
//! once, a detach of an open consumer does nothing). It does not panic in its
//! own threads: that would kill `g_down` or `g_up` and turn a clear report
//! into a hang. Tests read the list with [`crate::SimPlatform::violations`] or fail
//! through [`crate::SimPlatform::assert_clean`] / [`crate::Report::assert_clean`].

use std::fmt;

/// The rules, by the names the messages use.
pub mod rule {
    /// A call that needs the topology lock made without it, or the lock
    /// taken where it must not be (start, done, recursively).
    pub const TOPOLOGY: &str = "topology";
    /// A call that may sleep made from start or done, or with the topology
    /// lock held.
    pub const NOSLEEP: &str = "nosleep";
    /// A bio completed (or requested) more than once, or lost.
    pub const ONCE: &str = "once";
    /// Access-count misuse (negative counts, NOP access, failing close,
    /// leaks found when a consumer is destroyed or at the leak check).
    pub const ACCESS: &str = "access";
    /// Attach/detach misuse (detach while open or with I/O in flight...).
    pub const ATTACH: &str = "attach";
    /// Destroying something that is still in use.
    pub const DESTROY: &str = "destroy";
    /// A handle used after its object was destroyed.
    pub const STALE: &str = "stale";
    /// I/O misuse (request on a detached consumer, bad done routing).
    pub const IO: &str = "io";
    /// An unmapped bio (`BIO_UNMAPPED`: data pages with no kernel address)
    /// sent to a provider without `G_PF_ACCEPT_UNMAPPED`. Stricter than the
    /// kernel, which would map it into scarce transient KVA on the way
    /// (`g_io_check`): a class must not make GEOM do that behind its users.
    pub const UNMAPPED: &str = "unmapped";
    /// A mutex held across `g_io_request`, `g_io_deliver` or `g_std_done`
    /// where the flags allow direct dispatch (GEOM-RULES P13): the next
    /// geom's start or done then runs inside the call, in this thread,
    /// and may take the same mutex (a recursion panic) or another (a lock
    /// order reversal).
    pub const DIRECT: &str = "direct";
    /// Resources still held when the simulator is shut down.
    pub const LEAK: &str = "leak";
    /// Nothing can make progress (deterministic mode) or a wait timed out.
    pub const DEADLOCK: &str = "deadlock";
    /// A class interface contract broken (no class bound, bad softc...).
    pub const CLASS: &str = "class";
    /// Lock misuse WITNESS would report in a FreeBSD kernel loaded module
    /// (`sim::ko`): a lock order reversal, sleeping or `M_WAITOK` with a
    /// mutex held, unlocking a mutex the thread does not hold, destroying
    /// a mutex another thread holds.
    pub const WITNESS: &str = "witness";
    /// `malloc(9)`/`free(9)` misuse by a loaded module: bad flags, freeing
    /// a pointer malloc did not return, a type that was never initialised.
    pub const MALLOC: &str = "malloc";
    /// The loaded module called `panic(9)`.
    pub const PANIC: &str = "panic";
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// One of the names in [`rule`].
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GEOM rule '{}' violated: {}", self.rule, self.message)
    }
}
