//! `struct bio` mirrors: the simulator's move-only [`Bio`] handles, given to
//! the module as real C bios (a side table keyed by address), and the bio
//! half of the KPI: `g_clone_bio`, `g_io_request`, `g_io_deliver`,
//! `g_std_done`, `g_destroy_bio`, and the child's `bio_done` call.
//!
//! Who holds a bio's simulator handle follows FreeBSD's ownership: a parent
//! at our provider keeps its handle here until `g_io_deliver` (or its last
//! child's `g_std_done`) gives it back; a child's handle goes to the
//! simulator with `g_io_request` and comes back with the done call.

use std::ffi::{c_char, c_int};
use std::ptr;

use geom_multipath_rs::platform::BioCmd;

use crate::bio::{Bio, Phase};
use crate::ids::{BioId, GeomId};
use crate::sim::SimPlatform;
use crate::util::lock;
use crate::violation::rule;

use super::super::kstructs as k;
use super::{alloc_zeroed, GeomState, Mirror};

/// One live C bio.
pub struct BioEntry {
    pub id: BioId,
    /// The simulator handle while the module owns the bio.
    handle: Option<Bio>,
    /// `bio_attribute`'s storage (a parent's; children share it).
    _attr: Option<std::ffi::CString>,
    /// Made by `g_clone_bio` (else: a parent the simulator started).
    pub clone: bool,
    /// Sent with `g_io_request` and not yet back in its done.
    pub in_flight: bool,
}

fn cmd_to_c(c: BioCmd) -> u16 {
    (match c {
        BioCmd::Read => k::BIO_READ,
        BioCmd::Write => k::BIO_WRITE,
        BioCmd::Delete => k::BIO_DELETE,
        BioCmd::Flush => k::BIO_FLUSH,
        BioCmd::GetAttr => k::BIO_GETATTR,
        BioCmd::Other => k::BIO_ZONE,
    }) as u16
}

/// Frees a C bio made by this module.
///
/// # Safety
/// `bp` came from `alloc_zeroed::<k::bio>()` and is freed once.
unsafe fn free_bio(bp: *mut k::bio) {
    // SAFETY: per the contract.
    unsafe { drop(Box::from_raw(bp)) };
}

pub(super) fn free_all(m: &mut Mirror) {
    for (addr, e) in m.bios.drain() {
        if let Some(h) = e.handle {
            let _ = h.into_id();
        }
        // SAFETY: every table entry is a bio this module allocated.
        unsafe { free_bio(addr as *mut k::bio) };
    }
    m.bio_by_id.clear();
}

impl GeomState {
    fn insert_bio(&self, bp: *mut k::bio, e: BioEntry) {
        let mut m = self.lock();
        m.bios_done.remove(&(bp as usize));
        m.bio_by_id.insert(e.id, bp as usize);
        m.bios.insert(bp as usize, e);
    }

    fn take_handle(&self, bp: *mut k::bio) -> Result<Bio, &'static str> {
        let mut m = self.lock();
        let done = m.bios_done.contains(&(bp as usize));
        match m.bios.get_mut(&(bp as usize)) {
            None if done => Err("a bio already completed and freed (delivered, done or destroyed): completed twice"),
            None => Err("a bio this GEOM never handed out (not from start or g_clone_bio), or one already freed"),
            Some(e) => e.handle.take().ok_or("a bio in flight (requested and not yet completed)"),
        }
    }

    fn forget_bio(&self, bp: *mut k::bio) -> Option<BioEntry> {
        let mut m = self.lock();
        let e = m.bios.remove(&(bp as usize))?;
        m.bio_by_id.remove(&e.id);
        m.bios_done.insert(bp as usize);
        Some(e)
    }

    /// A bio the simulator sends to one of the module's providers: its C
    /// parent for `gp->start`.
    pub(crate) fn bio_for_start(&self, plat: &SimPlatform, bp: Bio) -> *mut k::bio {
        let c: *mut k::bio = alloc_zeroed();
        let attr = plat.bio_attribute_of(&bp).map(|a| super::c_string(&a));
        let data = plat.bio_data(&bp);
        let from = plat.bio_from(&bp).map(|cp| self.consumer_ptr(plat, cp));
        let to = plat.bio_to(&bp).map(|pp| self.provider_ptr(plat, pp));
        // SAFETY: `c` is fresh. `bio_data` points into the simulator's
        // buffer, which lives (and is not resized) until the bio is
        // completed; the module uses it only while it owns the bio.
        unsafe {
            (*c).bio_cmd = cmd_to_c(plat.bio_cmd_of(&bp));
            (*c).bio_offset = plat.bio_offset_of(&bp) as k::off_t;
            (*c).bio_length = plat.bio_length_of(&bp) as k::off_t;
            (*c).bio_bcount = (*c).bio_length as _;
            if plat.bio_unmapped_of(&bp) {
                (*c).bio_flags |= k::BIO_UNMAPPED as u16;
            }
            if let Some(d) = data {
                (*c).bio_data = lock(&d).as_mut_ptr() as *mut c_char;
            }
            (*c).bio_attribute = attr.as_ref().map_or(ptr::null(), |a| a.as_ptr());
            (*c).bio_from = from.unwrap_or(ptr::null_mut());
            (*c).bio_to = to.unwrap_or(ptr::null_mut());
        }
        let e = BioEntry {
            id: bp.id(),
            handle: Some(bp),
            _attr: attr,
            clone: false,
            in_flight: false,
        };
        self.insert_bio(c, e);
        c
    }

    /// `g_clone_bio(bp)`.
    pub(crate) fn clone_bio(&self, plat: &SimPlatform, parent: *mut k::bio) -> *mut k::bio {
        let child = {
            let m = self.lock();
            let Some(h) = m
                .bios
                .get(&(parent as usize))
                .and_then(|e| e.handle.as_ref())
            else {
                drop(m);
                plat.violation(
                    rule::IO,
                    format!("g_clone_bio({parent:p}): not a bio at this GEOM's provider"),
                );
                return ptr::null_mut();
            };
            plat.g_clone_bio(h)
        };
        let Some(child) = child else {
            return ptr::null_mut();
        };
        let c: *mut k::bio = alloc_zeroed();
        // SAFETY: `parent` is a live table bio, `c` fresh; the fields are
        // the ones FreeBSD's g_clone_bio copies.
        unsafe {
            (*c).bio_parent = parent;
            (*c).bio_cmd = (*parent).bio_cmd;
            (*c).bio_flags = (*parent).bio_flags & (k::BIO_UNMAPPED | k::BIO_VLIST) as u16;
            (*c).bio_length = (*parent).bio_length;
            (*c).bio_offset = (*parent).bio_offset;
            (*c).bio_data = (*parent).bio_data;
            (*c).bio_ma = (*parent).bio_ma;
            (*c).bio_ma_n = (*parent).bio_ma_n;
            (*c).bio_ma_offset = (*parent).bio_ma_offset;
            (*c).bio_attribute = (*parent).bio_attribute;
            (*parent).bio_children += 1;
        }
        let e = BioEntry {
            id: child.id(),
            handle: Some(child),
            _attr: None,
            clone: true,
            in_flight: false,
        };
        self.insert_bio(c, e);
        c
    }

    /// The simulator's id of the table bio `bp`.
    pub(crate) fn bio_id(&self, bp: *mut k::bio) -> Option<crate::ids::BioId> {
        self.lock().bios.get(&(bp as usize)).map(|e| e.id)
    }

    /// The parent `g_std_done(bp)` would deliver: `bp`'s, when `bp` is the
    /// last of its children still out.
    pub(crate) fn last_child_parent(&self, bp: *mut k::bio) -> Option<*mut k::bio> {
        self.bio_id(bp)?;
        // SAFETY: `bp` is a live table bio (just found in the table); its
        // parent, if any, is one too.
        unsafe {
            let p = (*bp).bio_parent;
            (!p.is_null() && (*p).bio_inbed + 1 == (*p).bio_children).then_some(p)
        }
    }

    /// `g_io_request(bp, cp)`.
    pub(crate) fn io_request(&self, plat: &SimPlatform, bp: *mut k::bio, cp: *mut k::g_consumer) {
        let Some(cid) = self.consumer_id(cp) else {
            return plat.violation(
                rule::STALE,
                format!("g_io_request({bp:p}, {cp:p}): not a consumer of this GEOM"),
            );
        };
        let mut h = match self.take_handle(bp) {
            Ok(h) => h,
            Err(why) => return plat.violation(rule::ONCE, format!("g_io_request({bp:p}): {why}")),
        };
        // SAFETY: `bp` is a live table bio and `cp` a live mirror.
        let offset = unsafe {
            (*bp).bio_from = cp;
            (*bp).bio_to = (*cp).provider;
            (*bp).bio_error = 0;
            (*bp).bio_completed = 0;
            (*bp).bio_offset
        };
        plat.set_bio_offset(&mut h, offset as u64);
        if let Some(e) = self.lock().bios.get_mut(&(bp as usize)) {
            e.in_flight = true;
        }
        plat.g_io_request(h, cid);
    }

    /// The simulator completes a child the module sent: fills the C bio
    /// and calls its `bio_done` (the module's child-done routine).
    pub(crate) fn child_done(&self, plat: &SimPlatform, gp: GeomId, bp: Bio) {
        let addr = self.lock().bio_by_id.get(&bp.id()).copied();
        let Some(addr) = addr else {
            plat.violation(
                rule::IO,
                format!(
                    "done of {:?} on {gp:?}: a bio the module never cloned",
                    bp.id()
                ),
            );
            return plat.g_std_done(bp);
        };
        let c = addr as *mut k::bio;
        // SAFETY: a live table bio.
        let done = unsafe {
            (*c).bio_error = plat.bio_error_of(&bp);
            (*c).bio_completed = plat.bio_completed_of(&bp) as k::off_t;
            (*c).bio_length = plat.bio_length_of(&bp) as k::off_t;
            (*c).bio_done
        };
        if let Some(e) = self.lock().bios.get_mut(&addr) {
            e.in_flight = false;
            e.handle = Some(bp);
        }
        match done {
            Some(f) => {
                // SAFETY: the module's bio_done with its own bio, as g_up
                // calls it.
                let _ = crate::ko::class::guard(&mut || unsafe { f(c) });
            }
            None => {
                plat.violation(
                    rule::IO,
                    format!("done of {c:p}: the module left bio_done NULL on its clone"),
                );
                self.std_done(plat, c);
            }
        }
    }

    /// Copies what the module wrote into a bio (error, bytes done) to the
    /// simulator's bio.
    fn push_result(plat: &SimPlatform, bp: *mut k::bio, h: &mut Bio) -> (c_int, u64) {
        // SAFETY: a live table bio.
        let (err, done) = unsafe { ((*bp).bio_error, (*bp).bio_completed) };
        plat.set_bio_error(h, err);
        let done = done.max(0) as u64;
        plat.set_bio_completed(h, done);
        (err, done)
    }

    /// `g_std_done(bp)`: folds a child into its parent, which is delivered
    /// after its last child.
    pub(crate) fn std_done(&self, plat: &SimPlatform, bp: *mut k::bio) {
        let mut h = match self.take_handle(bp) {
            Ok(h) => h,
            Err(why) => return plat.violation(rule::ONCE, format!("g_std_done({bp:p}): {why}")),
        };
        let (err, done) = Self::push_result(plat, bp, &mut h);
        // SAFETY: a live table bio; its parent (if any) is one too.
        let parent = unsafe { (*bp).bio_parent };
        let delivered = if parent.is_null() {
            false
        } else {
            // SAFETY: as above.
            unsafe {
                if (*parent).bio_error == 0 {
                    (*parent).bio_error = err;
                }
                (*parent).bio_completed += done as k::off_t;
                (*parent).bio_inbed += 1;
                (*parent).bio_inbed == (*parent).bio_children
            }
        };
        self.forget_bio(bp);
        plat.g_std_done(h);
        // SAFETY: `bp` was a table bio, now out of the table.
        unsafe { free_bio(bp) };
        if delivered {
            self.parent_gone(parent);
        }
    }

    /// A parent GEOM delivered on its own (through `g_std_done`).
    fn parent_gone(&self, parent: *mut k::bio) {
        if let Some(e) = self.forget_bio(parent) {
            if let Some(h) = e.handle {
                // The simulator delivered it: the handle is spent.
                let _ = h.into_id();
            }
            // SAFETY: a table bio, now out of the table.
            unsafe { free_bio(parent) };
        }
    }

    /// `g_io_deliver(bp, error)` of a parent.
    pub(crate) fn io_deliver(&self, plat: &SimPlatform, bp: *mut k::bio, error: c_int) {
        let mut h = match self.take_handle(bp) {
            Ok(h) => h,
            Err(why) => return plat.violation(rule::ONCE, format!("g_io_deliver({bp:p}): {why}")),
        };
        // SAFETY: a live table bio.
        let (completed, length, from) =
            unsafe { ((*bp).bio_completed, (*bp).bio_length, (*bp).bio_from) };
        if from.is_null() {
            plat.violation(rule::IO, format!("g_io_deliver({bp:p}): NULL bio_from"));
        }
        if completed < 0 || completed > length {
            plat.violation(
                rule::IO,
                format!("g_io_deliver({bp:p}): bio_completed {completed} not within bio_length {length}"),
            );
        }
        if completed > 0 && completed as u64 > plat.bio_completed_of(&h) {
            plat.set_bio_completed(&mut h, completed as u64);
        }
        self.forget_bio(bp);
        if error == crate::ENOMEM {
            self.enomem_delivered
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        plat.g_io_deliver(h, error);
        // SAFETY: `bp` was a table bio, now out of the table.
        unsafe { free_bio(bp) };
    }

    /// `g_destroy_bio(bp)`: frees a clone (the module decrements the
    /// parent's `bio_children` itself, as FreeBSD classes do).
    pub(crate) fn destroy_bio(&self, plat: &SimPlatform, bp: *mut k::bio) {
        let h = match self.take_handle(bp) {
            Ok(h) => h,
            Err(why) => return plat.violation(rule::ONCE, format!("g_destroy_bio({bp:p}): {why}")),
        };
        let Some(e) = self.forget_bio(bp) else {
            let _ = h.into_id();
            return;
        };
        if !e.clone {
            plat.violation(
                rule::IO,
                format!("g_destroy_bio({bp:p}) of a bio the module did not create (a parent at its provider)"),
            );
            let _ = h.into_id();
            return;
        }
        retire_clone(plat, h);
        // SAFETY: `bp` was a table bio, now out of the table.
        unsafe { free_bio(bp) };
    }
}

/// Forgets a clone in the simulator and drops it from its parent's count:
/// a completed one through `g_retire_child`, one never sent directly.
fn retire_clone(plat: &SimPlatform, h: Bio) {
    let unsent = {
        let t = lock(&plat.sh.bios);
        t.map
            .get(&h.id())
            .map(|s| (s.phase == Phase::New, s.parent))
    };
    match unsent {
        Some((true, parent)) => {
            let id = h.into_id();
            let mut t = lock(&plat.sh.bios);
            t.map.remove(&id);
            if let Some(p) = parent.and_then(|p| t.map.get_mut(&p)) {
                p.children = p.children.saturating_sub(1);
            }
        }
        _ => {
            if let Some(parent) = plat.g_retire_child(h) {
                // The parent's handle stays in the table.
                let _ = parent.into_id();
            }
        }
    }
}
