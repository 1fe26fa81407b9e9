//! Bios and the I/O path of `geom_io.c`: `g_io_request` (onto `g_down`,
//! or into the provider's start at once under direct dispatch),
//! `g_io_check`, start, `g_io_deliver` (onto `g_up`, or into the consumer's
//! done at once), done, `g_clone_bio`, `g_std_done`.
//!
//! A [`Bio`] is a move-only handle onto a row of the bio table; the row
//! records where the bio is (queued down, at a provider, queued up, in a
//! done method) so that a bio requested or completed twice, or a child
//! folded into a parent that was already delivered, is reported ("once").
//! Dropping a handle without handing it back to GEOM loses the bio, which
//! is reported too.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use geom_multipath_rs::platform::{append_c_str, BioCmd, Errno, EINVAL, EIO, ENOMEM, ENXIO, EPERM};

use crate::ids::{BioId, ConsumerId, GeomId, ProviderId};
use crate::sched::{current, Ctx, TID_DOWN, TID_UP};
use crate::sim::{record_violation, Completion, SimPlatform, SimShared};
use crate::util::lock;
use crate::violation::rule;

/// Direct dispatch's nesting: a start or done GEOM calls in the
/// requester's or completer's thread runs in that thread as a start or
/// done context (it may not sleep), and GEOM stops calling directly when
/// the stack is half used, which here is a nesting depth.
mod direct {
    use std::cell::Cell;

    use crate::sched::{enter, Ctx, CtxGuard};

    /// Direct calls nested on one thread before GEOM queues instead (a
    /// FreeBSD kernel stack holds several start/done frames of a stack of
    /// classes; the exact depth does not matter, that there is one does).
    const MAX_DEPTH: u32 = 8;

    thread_local! {
        static DEPTH: Cell<u32> = const { Cell::new(0) };
    }

    pub(super) fn has_room() -> bool {
        DEPTH.with(Cell::get) < MAX_DEPTH
    }

    /// One level of direct call, as simulated thread `tid` in `ctx`.
    pub(super) struct Nest {
        /// Restores the caller's context when the call returns.
        _ctx: CtxGuard,
    }

    impl Drop for Nest {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }

    pub(super) fn nest(tid: u64, ctx: Ctx) -> Nest {
        DEPTH.with(|d| d.set(d.get() + 1));
        Nest {
            _ctx: enter(tid, ctx),
        }
    }
}

/// A bio's data buffer, shared by a parent and its clones (`bio_data`).
pub type DataBuf = Arc<Mutex<Vec<u8>>>;

/// How a finished bio is reported.
#[derive(Clone, Debug)]
pub struct BioResult {
    pub error: Errno,
    /// `bio_completed`: bytes transferred.
    pub completed: u64,
    /// The buffer after the I/O (reads: what was read).
    pub data: Vec<u8>,
}

pub(crate) type UserDone = Arc<dyn Fn(BioId, BioResult) + Send + Sync>;

#[derive(Clone)]
pub(crate) enum DoneTarget {
    /// A clone: the done method of the geom that cloned it.
    Class(GeomId),
    /// `biowait` (g_read_data, g_write_data).
    Wait(Arc<Completion<BioResult>>),
    /// A user process's completion callback (runs on g_up; must not sleep).
    User(UserDone),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Created, not requested (or retired to be sent again).
    New,
    /// On the g_down queue.
    Down,
    /// Handed to a provider's start method: the geom owns it.
    AtProvider,
    /// Delivered, on the g_up queue.
    Up,
    /// Handed to its done method.
    InDone,
}

pub(crate) struct BioState {
    pub cmd: BioCmd,
    /// `bio_attribute` of a BIO_GETATTR (the attribute's name).
    pub attribute: Option<Arc<str>>,
    pub offset: u64,
    pub length: u64,
    pub data: Option<DataBuf>,
    /// `BIO_UNMAPPED`: the data is pages without a kernel address (the
    /// simulator still keeps it in `data`; only the flag is checked).
    pub unmapped: bool,
    pub error: Errno,
    pub completed: u64,
    pub parent: Option<BioId>,
    pub children: u32,
    pub inbed: u32,
    /// Children retired after a path failed them, not yet sent again:
    /// the next clone sent is a re-issue ([`SimPlatform::reissued`]).
    pub retry_pending: u32,
    /// Sim time the bio was made (user bios: for its latency).
    pub born: u64,
    /// Sim time a path first failed a clone of this (root) bio, and the
    /// latest such error.
    pub first_err: Option<u64>,
    pub last_err: u64,
    /// A clone of this (root) bio was sent again after a path error.
    pub reissued: bool,
    pub from: Option<ConsumerId>,
    pub to: Option<ProviderId>,
    pub done: DoneTarget,
    pub cookie: usize,
    pub phase: Phase,
}

#[derive(Default)]
pub(crate) struct BioTable {
    pub map: BTreeMap<BioId, BioState>,
    /// Injected `g_clone_bio` allocation failures, per mille.
    pub clone_fail_permille: u32,
    /// Latency samples of user bios ([`crate::latency`]).
    pub(crate) latency: crate::latency::LatencyLog,
}

impl BioTable {
    /// The bio at the top of `id`'s parent chain.
    fn root_of(&self, mut id: BioId) -> BioId {
        for _ in 0..64 {
            match self.map.get(&id).and_then(|s| s.parent) {
                Some(p) => id = p,
                None => break,
            }
        }
        id
    }
}

/// An owned `struct bio *`. Hand it back with `g_io_request`,
/// `g_io_deliver`, `g_std_done` or `retire_child`; dropping it loses the
/// bio and is reported.
pub struct Bio {
    id: BioId,
    sh: Option<Weak<SimShared>>,
}

impl std::fmt::Debug for Bio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.id)
    }
}

impl Bio {
    pub(crate) fn new(id: BioId, sh: Weak<SimShared>) -> Bio {
        Bio { id, sh: Some(sh) }
    }

    pub fn id(&self) -> BioId {
        self.id
    }

    /// Gives up the handle without the lost-bio report: ownership moved
    /// into GEOM.
    pub(crate) fn into_id(mut self) -> BioId {
        self.sh = None;
        self.id
    }
}

impl Drop for Bio {
    fn drop(&mut self) {
        if let Some(sh) = self.sh.take().and_then(|w| w.upgrade()) {
            record_violation(&sh, rule::ONCE, format!("{:?} handle dropped without being requested, delivered or completed: the bio is lost", self.id));
        }
    }
}

impl SimPlatform {
    fn bios(&self) -> std::sync::MutexGuard<'_, BioTable> {
        lock(&self.sh.bios)
    }

    /// The latency samples so far.
    pub(crate) fn latency_log(&self) -> crate::latency::LatencyLog {
        self.bios().latency.clone()
    }

    /// Injects `g_clone_bio` allocation failures at `permille` / 1000.
    pub fn set_clone_failure(&self, permille: u32) {
        self.bios().clone_fail_permille = permille;
    }

    /// A new bio (`g_new_bio`) with its buffer, completed through `done`.
    pub(crate) fn new_bio(
        &self,
        cmd: BioCmd,
        offset: u64,
        length: u64,
        data: Option<DataBuf>,
        done: DoneTarget,
    ) -> Bio {
        let id = BioId(self.next_id());
        let now = self.now_ns();
        self.bios().map.insert(
            id,
            BioState {
                cmd,
                attribute: None,
                offset,
                length,
                data,
                unmapped: false,
                error: 0,
                completed: 0,
                parent: None,
                children: 0,
                inbed: 0,
                retry_pending: 0,
                born: now,
                first_err: None,
                last_err: 0,
                reissued: false,
                from: None,
                to: None,
                done,
                cookie: 0,
                phase: Phase::New,
            },
        );
        Bio::new(id, self.weak())
    }

    fn with_bio<R>(&self, bp: &Bio, what: &str, f: impl FnOnce(&mut BioState) -> R) -> Option<R> {
        let mut t = self.bios();
        match t.map.get_mut(&bp.id) {
            Some(s) => Some(f(s)),
            None => {
                drop(t);
                self.violation(
                    rule::STALE,
                    format!("{what}: {:?} was already destroyed", bp.id),
                );
                None
            }
        }
    }

    pub fn bio_cmd_of(&self, bp: &Bio) -> BioCmd {
        self.with_bio(bp, "bio_cmd", |s| s.cmd)
            .unwrap_or(BioCmd::Other)
    }
    pub fn bio_offset_of(&self, bp: &Bio) -> u64 {
        self.with_bio(bp, "bio_offset", |s| s.offset).unwrap_or(0)
    }
    /// Changes `bio_offset` (a class remapping a clone, like g_nop -o).
    pub fn set_bio_offset(&self, bp: &mut Bio, offset: u64) {
        self.with_bio(bp, "bio_offset", |s| s.offset = offset);
    }
    pub fn bio_length_of(&self, bp: &Bio) -> u64 {
        self.with_bio(bp, "bio_length", |s| s.length).unwrap_or(0)
    }
    pub fn bio_error_of(&self, bp: &Bio) -> Errno {
        self.with_bio(bp, "bio_error", |s| s.error).unwrap_or(ENXIO)
    }
    /// Sets `bio_error` (a class failing a bio before g_std_done).
    pub fn set_bio_error(&self, bp: &mut Bio, error: Errno) {
        self.with_bio(bp, "bio_error", |s| s.error = error);
    }
    pub fn bio_cookie_of(&self, bp: &Bio) -> usize {
        self.with_bio(bp, "bio_caller1", |s| s.cookie).unwrap_or(0)
    }
    pub fn set_bio_cookie(&self, bp: &mut Bio, cookie: usize) {
        self.with_bio(bp, "bio_caller1", |s| s.cookie = cookie);
    }
    /// `bio_children`, `bio_inbed`.
    pub fn bio_children_inbed(&self, bp: &Bio) -> (u32, u32) {
        self.with_bio(bp, "bio_children", |s| (s.children, s.inbed))
            .unwrap_or((0, 0))
    }
    /// `bio_from`: the consumer the bio was requested through.
    pub fn bio_from(&self, bp: &Bio) -> Option<ConsumerId> {
        self.with_bio(bp, "bio_from", |s| s.from).flatten()
    }
    /// `bio_to`: the provider it was sent to.
    pub fn bio_to(&self, bp: &Bio) -> Option<ProviderId> {
        self.with_bio(bp, "bio_to", |s| s.to).flatten()
    }
    /// The buffer shared with the bio (`bio_data`).
    pub fn bio_data(&self, bp: &Bio) -> Option<DataBuf> {
        self.with_bio(bp, "bio_data", |s| s.data.clone()).flatten()
    }
    /// Sets `bio_completed` (a driver finishing a transfer).
    pub fn set_bio_completed(&self, bp: &mut Bio, n: u64) {
        self.with_bio(bp, "bio_completed", |s| s.completed = n);
    }
    /// `bio_completed`.
    pub fn bio_completed_of(&self, bp: &Bio) -> u64 {
        self.with_bio(bp, "bio_completed", |s| s.completed)
            .unwrap_or(0)
    }
    /// Marks a bio `BIO_UNMAPPED` (a user building it from unmapped pages);
    /// its clones inherit the flag, as `g_clone_bio` copies it.
    pub fn set_bio_unmapped(&self, bp: &mut Bio, unmapped: bool) {
        self.with_bio(bp, "bio_flags", |s| s.unmapped = unmapped);
    }
    /// Whether the bio is `BIO_UNMAPPED`.
    pub fn bio_unmapped_of(&self, bp: &Bio) -> bool {
        self.with_bio(bp, "bio_flags", |s| s.unmapped)
            .unwrap_or(false)
    }
    /// `bio_attribute` of a BIO_GETATTR; `None` for other commands.
    pub fn bio_attribute_of(&self, bp: &Bio) -> Option<Arc<str>> {
        self.with_bio(bp, "bio_attribute", |s| {
            (s.cmd == BioCmd::GetAttr)
                .then(|| s.attribute.clone())
                .flatten()
        })
        .flatten()
    }
    /// Whether `bp` is a BIO_GETATTR for `name`.
    pub fn bio_attribute_eq(&self, bp: &Bio, name: &str) -> bool {
        self.with_bio(bp, "bio_attribute", |s| {
            s.cmd == BioCmd::GetAttr && s.attribute.as_deref() == Some(name)
        })
        .unwrap_or(false)
    }
    /// Appends `suffix` to the NUL-terminated string in the bio's buffer
    /// (within `bio_length`), raising `bio_completed` to cover it if need
    /// be; on error the buffer is unchanged (see `append_c_str`).
    pub fn bio_append_str(&self, bp: &mut Bio, suffix: &str) -> Result<(), Errno> {
        let (data, length) = self
            .with_bio(bp, "bio_data", |s| (s.data.clone(), s.length))
            .ok_or(ENXIO)?;
        let data = data.ok_or(EINVAL)?;
        let used = {
            let mut d = lock(&data);
            let n = usize::try_from(length).unwrap_or(usize::MAX).min(d.len());
            append_c_str(&mut d[..n], suffix)? as u64
        };
        self.with_bio(bp, "bio_completed", |s| s.completed = s.completed.max(used));
        Ok(())
    }

    /// `g_clone_bio(parent)`: the parent keeps its handle (the class may
    /// clone several children). The child's done is the class's done for
    /// the geom the parent was sent to. `None` on (injected) ENOMEM.
    pub fn g_clone_bio(&self, parent: &Bio) -> Option<Bio> {
        let id = BioId(self.next_id());
        let fail = self.bios().clone_fail_permille;
        if fail > 0 && self.chance(fail) {
            return None;
        }
        let geom = {
            let mut t = self.bios();
            let Some(p) = t.map.get_mut(&parent.id) else {
                drop(t);
                self.violation(
                    rule::STALE,
                    format!("g_clone_bio: {:?} was already destroyed", parent.id),
                );
                return None;
            };
            if p.phase != Phase::AtProvider {
                let ph = p.phase;
                drop(t);
                self.violation(
                    rule::IO,
                    format!(
                        "g_clone_bio of {:?} which is not at a provider (it is {ph:?})",
                        parent.id
                    ),
                );
                return None;
            }
            p.children += 1;
            let child = BioState {
                cmd: p.cmd,
                attribute: p.attribute.clone(),
                offset: p.offset,
                length: p.length,
                data: p.data.clone(),
                unmapped: p.unmapped,
                error: 0,
                completed: 0,
                parent: Some(parent.id),
                children: 0,
                inbed: 0,
                retry_pending: 0,
                born: 0,
                first_err: None,
                last_err: 0,
                reissued: false,
                from: None,
                to: None,
                done: DoneTarget::Class(GeomId(0)),
                cookie: 0,
                phase: Phase::New,
            };
            let to = p.to;
            t.map.insert(id, child);
            to
        };
        let gp = geom
            .and_then(|pp| self.provider_geom(pp))
            .unwrap_or(GeomId(0));
        if let Some(c) = self.bios().map.get_mut(&id) {
            c.done = DoneTarget::Class(gp);
        }
        Some(Bio::new(id, self.weak()))
    }

    /// `g_io_request(bp, cp)`: onto the g_down queue, or straight into the
    /// provider's start in this thread (direct dispatch).
    pub fn g_io_request(&self, bp: Bio, cp: ConsumerId) {
        let id = bp.into_id();
        let (pp, accept_unmapped, may_direct) = {
            let mut t = self.topo();
            let Some(c) = t.consumer.get_mut(&cp) else {
                drop(t);
                self.stale_bio(id);
                return self.violation(
                    rule::STALE,
                    format!("g_io_request({id:?}) on {cp:?}, which does not exist"),
                );
            };
            let Some(pp) = c.provider else {
                drop(t);
                self.stale_bio(id);
                return self.violation(
                    rule::IO,
                    format!("g_io_request({id:?}): consumer {cp:?} not attached"),
                );
            };
            c.nstart += 1;
            let mut accept = false;
            if let Some(p) = t.provider.get_mut(&pp) {
                p.nstart += 1;
                accept = p.accept_unmapped;
            }
            (pp, accept, t.request_may_go_direct(cp))
        };
        if may_direct {
            self.mutex_across("g_io_request", self.wq_mutex_held());
        }
        let mut unmapped_cmd = None;
        let unmapped;
        {
            let mut t = self.bios();
            let Some(s) = t.map.get_mut(&id) else {
                drop(t);
                return self.violation(
                    rule::STALE,
                    format!("g_io_request: {id:?} was already destroyed"),
                );
            };
            if s.phase != Phase::New {
                let ph = s.phase;
                drop(t);
                return self.violation(
                    rule::ONCE,
                    format!("g_io_request({id:?}) of a bio already in flight ({ph:?})"),
                );
            }
            if matches!(s.cmd, BioCmd::Read | BioCmd::Write) && s.data.is_none() {
                drop(t);
                return self.violation(rule::IO, format!("g_io_request({id:?}): NULL bio_data"));
            }
            unmapped = s.unmapped;
            if s.unmapped && !accept_unmapped && matches!(s.cmd, BioCmd::Read | BioCmd::Write) {
                unmapped_cmd = Some(s.cmd);
            }
            s.from = Some(cp);
            s.to = Some(pp);
            s.error = 0;
            s.completed = 0;
            s.phase = Phase::Down;
            // A clone sent while its parent has a failed child retired is
            // a re-issue after a path error.
            let mut again = false;
            if let Some(p) = s.parent.and_then(|pid| t.map.get_mut(&pid)) {
                if p.retry_pending > 0 {
                    p.retry_pending -= 1;
                    self.sh.reissued.fetch_add(1, Ordering::AcqRel);
                    again = true;
                }
            }
            if again {
                // How long the bio waited (for the worker) since the error.
                let now = self.now_ns();
                let root = t.root_of(id);
                if let Some(r) = t.map.get_mut(&root) {
                    r.reissued = true;
                    let wait = now.saturating_sub(r.last_err);
                    if r.first_err.is_some() {
                        t.latency.worker_wait.push(wait);
                    }
                }
            }
        }
        if let Some(cmd) = unmapped_cmd {
            // Reported, then carried out as the kernel would (it maps it).
            let name = self.provider_name_of(pp).unwrap_or_default();
            self.violation(
                rule::UNMAPPED,
                format!("g_io_request({id:?}): unmapped {cmd:?} sent to {name}, which does not accept unmapped I/O (no G_PF_ACCEPT_UNMAPPED)"),
            );
        }
        // geom_io.c's test: both ends allow it, the caller is not g_down,
        // an unmapped bio for a provider that cannot take one is mapped
        // only where the caller may sleep, no ENOMEM pacing is due, and
        // the stack has room.
        let (tid, ctx) = current();
        let direct = may_direct
            && self.sh.cfg.direct_dispatch
            && tid != TID_DOWN
            && (accept_unmapped || !unmapped || !ctx.is_io())
            && !self.sh.pace.load(Ordering::Acquire)
            && direct::has_room();
        if direct {
            self.sh.direct_starts.fetch_add(1, Ordering::Relaxed);
            let _nest = direct::nest(tid, Ctx::Start);
            return self.down_one(id, false);
        }
        let me = self.clone();
        self.sh
            .sched
            .post(&self.sh.q_down, Box::new(move || me.down_one(id, true)));
    }

    /// Whether a request on `cp` may run its provider's start inside
    /// `g_io_request` (see [`crate::topology::Topology::request_may_go_direct`]).
    pub(crate) fn request_may_go_direct(&self, cp: ConsumerId) -> bool {
        self.topo().request_may_go_direct(cp)
    }

    /// Whether delivering bio `id` may run its consumer's done inside
    /// `g_io_deliver`.
    pub(crate) fn deliver_may_go_direct(&self, id: BioId) -> bool {
        let (from, to) = match self.bios().map.get(&id) {
            Some(s) => (s.from, s.to),
            None => return false,
        };
        self.topo().done_may_go_direct(to, from)
    }

    /// GEOM-RULES P13: reports `held`, a mutex held across `call` where
    /// the flags allow direct dispatch.
    pub(crate) fn mutex_across(&self, call: &str, held: Option<String>) {
        if let Some(name) = held {
            self.violation(
                rule::DIRECT,
                format!("{call} with mutex \"{name}\" held: with direct dispatch the next geom's start or done runs inside the call, in this thread"),
            );
        }
    }

    /// The newest class mutex (`Platform::Wq`) the calling simulated
    /// thread holds.
    fn wq_mutex_held(&self) -> Option<String> {
        let (tid, _) = current();
        lock(&self.sh.wq_held)
            .get(&tid)
            .and_then(|v| v.last())
            .map(|n| n.to_string())
    }

    /// A bio that can no longer be sent: forget it so the leak check does
    /// not count it twice (the violation was recorded by the caller).
    fn stale_bio(&self, id: BioId) {
        self.bios().map.remove(&id);
    }

    /// `g_io_check`: access, provider error, alignment, bounds.
    fn io_check(&self, id: BioId) -> Result<bool, Errno> {
        let (cmd, offset, length, cp, pp) = {
            let t = self.bios();
            let Some(s) = t.map.get(&id) else {
                return Err(ENXIO);
            };
            (s.cmd, s.offset, s.length, s.from, s.to)
        };
        let t = self.topo();
        let (Some(c), Some(p)) = (
            cp.and_then(|c| t.consumer.get(&c)),
            pp.and_then(|p| t.provider.get(&p)),
        ) else {
            return Err(ENXIO);
        };
        match cmd {
            BioCmd::Read | BioCmd::GetAttr if c.acc.r == 0 => return Err(EPERM),
            BioCmd::Write | BioCmd::Delete | BioCmd::Flush if c.acc.w == 0 => return Err(EPERM),
            _ => {}
        }
        if p.error != 0 {
            return Err(p.error);
        }
        if matches!(cmd, BioCmd::Read | BioCmd::Write | BioCmd::Delete) {
            if p.sectorsize == 0 || p.mediasize == 0 {
                return Err(ENXIO);
            }
            let ss = p.sectorsize as u64;
            if !offset.is_multiple_of(ss) || !length.is_multiple_of(ss) {
                return Err(EINVAL);
            }
            if offset > p.mediasize {
                return Err(EIO);
            }
            let end = offset + length;
            if end > p.mediasize {
                let newlen = p.mediasize - offset;
                drop(t);
                if let Some(s) = self.bios().map.get_mut(&id) {
                    s.length = newlen;
                }
                return Ok(newlen > 0);
            }
        }
        Ok(true)
    }

    /// g_down (`queued`), or a direct request in the requester's thread:
    /// check the bio and hand it to the provider's start method.
    fn down_one(&self, id: BioId, queued: bool) {
        if queued {
            // g_down paused for the pacing a failed allocation asked for.
            self.sh.pace.store(false, Ordering::Release);
        }
        match self.io_check(id) {
            Err(e) => return self.deliver_id(id, e, true),
            Ok(false) => return self.deliver_id(id, 0, true),
            Ok(true) => {}
        }
        let pp = {
            let mut t = self.bios();
            let Some(s) = t.map.get_mut(&id) else { return };
            s.phase = Phase::AtProvider;
            s.to
        };
        let gp = pp.and_then(|p| self.provider_geom(p));
        match gp.and_then(|g| self.geom_class(g).map(|c| (g, c))) {
            Some((g, (imp, plat))) => {
                if self.sh.ko_loaded.load(Ordering::Acquire) && self.is_ko_class(plat.class_id()) {
                    self.sh.ko_starts.fetch_add(1, Ordering::AcqRel);
                }
                imp.start(&plat, g, Bio::new(id, self.weak()))
            }
            None => self.deliver_id(id, ENXIO, true),
        }
    }

    /// `g_io_deliver(bp, error)`: completes a bio sent to our provider.
    pub fn g_io_deliver(&self, bp: Bio, error: Errno) {
        let id = bp.into_id();
        self.deliver_id(id, error, false);
    }

    fn deliver_id(&self, id: BioId, error: Errno, from_check: bool) {
        let (cp, pp, child) = {
            let mut t = self.bios();
            let Some(s) = t.map.get_mut(&id) else {
                drop(t);
                return self.violation(
                    rule::ONCE,
                    format!("g_io_deliver({id:?}): the bio was already completed and destroyed"),
                );
            };
            let ok = if from_check {
                s.phase == Phase::Down
            } else {
                s.phase == Phase::AtProvider
            };
            if !ok {
                let ph = s.phase;
                drop(t);
                return self.violation(rule::ONCE, format!("g_io_deliver({id:?}) of a bio that is not at a provider ({ph:?}): completed twice"));
            }
            if s.children > s.inbed && !from_check {
                let (c, i) = (s.children, s.inbed);
                drop(t);
                return self.violation(rule::ONCE, format!("g_io_deliver({id:?}) while {} of its {c} children are in flight: they would complete it again", c - i));
            }
            if error == 0
                && s.completed == 0
                && matches!(s.cmd, BioCmd::Read | BioCmd::Write | BioCmd::Delete)
                && s.children == 0
            {
                // Drivers set bio_completed; a class completing its own
                // bio successfully transferred all of it.
                s.completed = s.length;
            }
            s.error = error;
            (s.from, s.to, s.parent.is_some())
        };
        if error != 0 && child {
            // A path (or a class below) failed a clone: stamp the user bio.
            let now = self.now_ns();
            let mut t = self.bios();
            let root = t.root_of(id);
            if let Some(r) = t.map.get_mut(&root) {
                r.first_err.get_or_insert(now);
                r.last_err = now;
            }
        }
        let may_direct = {
            let mut t = self.topo();
            if let Some(c) = cp.and_then(|c| t.consumer.get_mut(&c)) {
                c.nend += 1;
            }
            if let Some(p) = pp.and_then(|p| t.provider.get_mut(&p)) {
                p.nend += 1;
            }
            t.done_may_go_direct(pp, cp)
        };
        if error == ENOMEM {
            // GEOM sends the bio down again after ENOMEM, then paces: no
            // direct dispatch until g_down has paused once.
            if let Some(s) = self.bios().map.get_mut(&id) {
                s.phase = Phase::New;
            }
            if let Some(cp) = cp {
                self.g_io_request(Bio::new(id, self.weak()), cp);
                self.sh.pace.store(true, Ordering::Release);
                return;
            }
        }
        if let Some(s) = self.bios().map.get_mut(&id) {
            s.phase = Phase::Up;
        }
        // A consumer of a withering geom may be waiting for this last
        // completion before the washer can free it.
        if let Some(cp) = cp {
            let t = self.topo();
            let wake = t.consumer.get(&cp).is_some_and(|c| {
                c.nstart == c.nend && t.geom.get(&c.geom).is_some_and(|g| g.wither)
            });
            drop(t);
            if wake {
                self.g_do_wither();
            }
        }
        if may_direct && !from_check {
            self.mutex_across("g_io_deliver", self.wq_mutex_held());
        }
        let (tid, _) = current();
        if may_direct && self.sh.cfg.direct_dispatch && tid != TID_UP && direct::has_room() {
            self.sh.direct_dones.fetch_add(1, Ordering::Relaxed);
            let _nest = direct::nest(tid, Ctx::Done);
            return self.up_one(id);
        }
        let me = self.clone();
        self.sh
            .sched
            .post(&self.sh.q_up, Box::new(move || me.up_one(id)));
    }

    /// g_up: calls the bio's done.
    fn up_one(&self, id: BioId) {
        let (done, res) = {
            let mut t = self.bios();
            let Some(s) = t.map.get_mut(&id) else { return };
            s.phase = Phase::InDone;
            let done = s.done.clone();
            let res = match done {
                DoneTarget::Class(_) => None,
                _ => {
                    let data = s.data.as_ref().map(|d| lock(d).clone()).unwrap_or_default();
                    Some(BioResult {
                        error: s.error,
                        completed: s.completed,
                        data,
                    })
                }
            };
            (done, res)
        };
        self.sh
            .sched
            .trace(id.0 ^ ((res.as_ref().map_or(0, |r| r.error) as u64) << 48));
        match (done, res) {
            (DoneTarget::Class(gp), _) => match self.geom_class(gp) {
                Some((imp, plat)) => imp.done(&plat, gp, Bio::new(id, self.weak())),
                None => {
                    self.bios().map.remove(&id);
                    self.violation(
                        rule::IO,
                        format!("done of {id:?}: the geom {gp:?} that cloned it is gone"),
                    );
                }
            },
            (DoneTarget::Wait(c), Some(r)) => {
                self.bios().map.remove(&id);
                c.set(r);
            }
            (DoneTarget::User(cb), Some(r)) => {
                let now = self.now_ns();
                let mut t = self.bios();
                if let Some(s) = t.map.remove(&id) {
                    let lat = now.saturating_sub(s.born);
                    t.latency.all.push(lat);
                    if s.reissued {
                        t.latency.reissued.push(lat);
                        if let (0, Some(e)) = (r.error, s.first_err) {
                            t.latency.failover.push(now.saturating_sub(e));
                        }
                    }
                }
                drop(t);
                self.sh
                    .user_completions
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                cb(id, r);
            }
            _ => {}
        }
    }

    fn take_done_child(&self, child: Bio, what: &str) -> Option<(BioId, BioState)> {
        let id = child.into_id();
        let mut t = self.bios();
        let Some(s) = t.map.get(&id) else {
            drop(t);
            self.violation(
                rule::ONCE,
                format!("{what}({id:?}): the bio was already completed and destroyed"),
            );
            return None;
        };
        if s.phase != Phase::InDone {
            let ph = s.phase;
            drop(t);
            self.violation(
                rule::ONCE,
                format!("{what}({id:?}) of a bio that was not delivered ({ph:?})"),
            );
            return None;
        }
        if s.parent.is_none() {
            drop(t);
            self.violation(rule::IO, format!("{what}({id:?}) of a bio with no parent"));
            return None;
        }
        t.map.remove(&id).map(|s| (id, s))
    }

    /// `g_std_done(child)`: folds the child into its parent (first error
    /// wins) and delivers the parent after its last child.
    pub fn g_std_done(&self, child: Bio) {
        let Some((cid, c)) = self.take_done_child(child, "g_std_done") else {
            return;
        };
        let Some(pid) = c.parent else { return };
        let deliver = {
            let mut t = self.bios();
            let Some(p) = t.map.get_mut(&pid) else {
                drop(t);
                return self.violation(
                    rule::ONCE,
                    format!("g_std_done({cid:?}): parent {pid:?} was already completed"),
                );
            };
            if p.phase != Phase::AtProvider {
                let ph = p.phase;
                drop(t);
                return self.violation(rule::ONCE, format!("g_std_done({cid:?}): parent {pid:?} was already delivered ({ph:?}): completed twice"));
            }
            if p.error == 0 {
                p.error = c.error;
            }
            p.completed += c.completed;
            p.inbed += 1;
            if p.inbed > p.children {
                let (ch, ib) = (p.children, p.inbed);
                drop(t);
                return self.violation(rule::ONCE, format!("g_std_done: parent {pid:?} has {ib} children in bed but only {ch} were cloned"));
            }
            (p.inbed == p.children).then_some(p.error)
        };
        if let Some(err) = deliver {
            self.deliver_id(pid, err, false);
        }
    }

    /// `g_destroy_bio(child)` and `parent->bio_children--`: forgets a
    /// finished child so the parent can be cloned and sent again.
    pub fn g_retire_child(&self, child: Bio) -> Option<Bio> {
        let (_, c) = self.take_done_child(child, "retire_child")?;
        let pid = c.parent?;
        let mut t = self.bios();
        let p = t.map.get_mut(&pid)?;
        p.children = p.children.saturating_sub(1);
        if c.error != 0 {
            p.retry_pending += 1;
        }
        Some(Bio::new(pid, self.weak()))
    }

    /// Synchronous I/O (`g_read_data`/`g_write_data`/`biowait`): may sleep.
    pub(crate) fn sync_io(
        &self,
        what: &str,
        cp: ConsumerId,
        cmd: BioCmd,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<BioResult, Errno> {
        self.sync_io_attr(what, cp, cmd, None, offset, data)
    }

    /// [`SimPlatform::sync_io`] with a `bio_attribute` (BIO_GETATTR).
    pub(crate) fn sync_io_attr(
        &self,
        what: &str,
        cp: ConsumerId,
        cmd: BioCmd,
        attribute: Option<&str>,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<BioResult, Errno> {
        self.sync_io_full(what, cp, cmd, attribute, false, offset, data)
    }

    /// [`SimPlatform::sync_io`] with every option: a `bio_attribute`, and
    /// `BIO_UNMAPPED` (`unmapped`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sync_io_full(
        &self,
        what: &str,
        cp: ConsumerId,
        cmd: BioCmd,
        attribute: Option<&str>,
        unmapped: bool,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<BioResult, Errno> {
        let (_, ctx) = crate::sched::current();
        if ctx.is_io() {
            self.violation(
                rule::NOSLEEP,
                format!("{what}() from {ctx:?} context, which must not sleep"),
            );
            return Err(EIO);
        }
        if self.topology_held() {
            self.violation(
                rule::NOSLEEP,
                format!("{what}() with the topology lock held (drop it around the I/O)"),
            );
            return Err(EIO);
        }
        // A process's read(2)/write(2): the cdev drains like destroy_dev(9),
        // so the request goes out only if the consumer still exists, checked
        // and sent in one step under the topology lock.
        let user = ctx == Ctx::User;
        if user {
            self.g_topology_lock();
            if !self.consumer_exists(cp) {
                self.g_topology_unlock();
                return Err(ENXIO);
            }
        }
        let len = data.len() as u64;
        let c = Arc::new(Completion::new());
        let bp = self.new_bio(
            cmd,
            offset,
            len,
            Some(Arc::new(Mutex::new(data))),
            DoneTarget::Wait(c.clone()),
        );
        if let Some(a) = attribute {
            self.with_bio(&bp, "bio_attribute", |s| s.attribute = Some(a.into()));
        }
        if unmapped {
            self.with_bio(&bp, "bio_flags", |s| s.unmapped = true);
        }
        self.g_io_request(bp, cp);
        if user {
            self.g_topology_unlock();
        }
        match self.wait_completion(&c, what) {
            Some(r) if r.error == 0 => Ok(r),
            Some(r) => Err(r.error),
            None => Err(EIO),
        }
    }

    /// `g_read_data(cp, offset, length)`.
    pub fn g_read_data(
        &self,
        cp: ConsumerId,
        offset: u64,
        length: usize,
    ) -> Result<Vec<u8>, Errno> {
        self.sync_io("g_read_data", cp, BioCmd::Read, offset, vec![0; length])
            .map(|r| r.data)
    }

    /// `g_io_getattr(attr, cp, &len, buf)`: a BIO_GETATTR with a zeroed
    /// buffer of `len` bytes; the answer is the first `bio_completed` bytes
    /// of it. Sleeps until done.
    pub fn g_io_getattr(&self, cp: ConsumerId, attr: &str, len: usize) -> Result<Vec<u8>, Errno> {
        let r = self.sync_io_attr(
            "g_io_getattr",
            cp,
            BioCmd::GetAttr,
            Some(attr),
            0,
            vec![0; len],
        )?;
        let mut data = r.data;
        data.truncate(usize::try_from(r.completed).unwrap_or(usize::MAX));
        Ok(data)
    }

    /// `g_write_data(cp, offset, data)`.
    pub fn g_write_data(&self, cp: ConsumerId, offset: u64, data: &[u8]) -> Result<(), Errno> {
        self.sync_io("g_write_data", cp, BioCmd::Write, offset, data.to_vec())
            .map(|_| ())
    }

    /// Bios still in the table (for the leak check).
    pub(crate) fn bios_outstanding(&self) -> Vec<String> {
        self.bios()
            .map
            .iter()
            .map(|(id, s)| {
                format!(
                    "{id:?} {:?} offset {} length {} ({:?})",
                    s.cmd, s.offset, s.length, s.phase
                )
            })
            .collect()
    }

    /// (children, inbed) of a live bio, without reporting a missing one.
    pub(crate) fn bio_state(&self, id: BioId) -> Option<(u32, u32)> {
        self.bios().map.get(&id).map(|s| (s.children, s.inbed))
    }

    /// Number of bios alive.
    pub fn bios_alive(&self) -> usize {
        self.bios().map.len()
    }
}
