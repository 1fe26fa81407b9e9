//! `malloc(9)` over the host allocator, with FreeBSD's flag semantics,
//! per-`malloc_type` accounting, leak reports at `malloc_uninit` and
//! injected `M_NOWAIT` failures.

use std::alloc::{alloc, alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Mutex;

use crate::ko::kstructs::malloc_type;
use crate::sched::Ctx;
use crate::util::lock;

/// `sys/malloc.h`.
pub const M_NOWAIT: c_int = 0x0001;
pub const M_WAITOK: c_int = 0x0002;
pub const M_ZERO: c_int = 0x0100;
/// `M_VERSION` of the FreeBSD 15 headers: `malloc_init` refuses others.
pub const M_VERSION: u64 = 2024073001;
/// `malloc_aligned` accepts alignments up to a page.
const PAGE_SIZE: usize = 4096;
/// What an INVARIANTS kernel fills new (non-`M_ZERO`) and freed memory with.
const TRASH: u32 = 0xdead_c0de;

/// Counters of one malloc type (`vmstat -m`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeStats {
    /// `ks_shortdesc`.
    pub name: String,
    /// Allocations that succeeded.
    pub allocs: u64,
    pub frees: u64,
    /// Allocations not freed yet, and their bytes.
    pub live: u64,
    pub live_bytes: u64,
    /// `M_NOWAIT` allocations failed by injection.
    pub failed: u64,
    /// Between `malloc_init` and `malloc_uninit`.
    pub initialised: bool,
    /// Allocations still live when `malloc_uninit` ran (a leak).
    pub leaked_at_uninit: u64,
    pub leaked_bytes_at_uninit: u64,
    /// The first of them: "64 bytes (allocation #153, Event context)".
    pub leaked_blocks: Vec<String>,
}

struct Block {
    layout: Layout,
    base: usize,
    size: usize,
    mtp: usize,
    /// Allocation number (1-based, per instance) and the GEOM context it
    /// was made in, for leak reports.
    seq: u64,
    ctx: Ctx,
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<usize, Block>,
    types: BTreeMap<usize, TypeStats>,
    nowait_seen: u64,
    injected: u64,
    seq: u64,
    /// `M_WAITOK` allocations made (none ever fails: they sleep).
    waitok: u64,
    /// The site of every `M_NOWAIT` allocation, in order (1-based N is
    /// index N-1), and the Ns failed by injection.
    sites: Vec<&'static str>,
    failed_at: Vec<u64>,
}

/// Which `M_NOWAIT` allocations fail (1-based, counted per instance over
/// every site: `malloc`, `malloc_aligned`, `g_clone_bio`, `g_post_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailNowait {
    /// Only the Nth.
    Nth(u64),
    /// `len` in a row from the `first`th (memory short for a while;
    /// `u64::MAX`: from then on).
    Window { first: u64, len: u64 },
    /// The Nth and every k-th after it (N, N+k, N+2k, ...).
    Every { first: u64, k: u64 },
}

impl FailNowait {
    /// Whether the `n`th `M_NOWAIT` allocation fails under this plan.
    pub fn fails(self, n: u64) -> bool {
        match self {
            FailNowait::Nth(m) => n == m,
            FailNowait::Window { first, len } => n >= first && n - first < len,
            FailNowait::Every { first, k } => n >= first && (n - first).is_multiple_of(k.max(1)),
        }
    }
}

/// What the `M_NOWAIT` allocations of a run were (for fault sweeps).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NowaitLog {
    /// The site of each, in order: `sites[N-1]` is the Nth.
    pub sites: Vec<&'static str>,
    /// The Ns failed by injection.
    pub failed: Vec<u64>,
    /// `M_WAITOK` allocations (never failed).
    pub waitok: u64,
}

/// The allocator of one emulated kernel.
pub struct MallocState {
    inner: Mutex<Inner>,
    plan: Mutex<Option<FailNowait>>,
}

/// A problem found by the allocator, reported by the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum MallocFault {
    /// `free` of an address that is not a live allocation.
    NotAllocated,
    /// `free` with another type than the allocation's: (freed as, allocated as).
    WrongType(String, String),
    /// An allocation or free with a type `malloc_init` never saw.
    UninitType(usize),
}

/// Reads `ks_shortdesc` of a malloc type.
///
/// # Safety
/// `mtp` points to a readable `struct malloc_type`.
unsafe fn type_name(mtp: *const malloc_type) -> String {
    // SAFETY: per the contract.
    let desc = unsafe { (*mtp).ks_shortdesc };
    if desc.is_null() {
        return "(null)".into();
    }
    // SAFETY: ks_shortdesc is a NUL-terminated string of the module's
    // rodata (or of our own data object for M_GEOM).
    unsafe { CStr::from_ptr(desc) }
        .to_string_lossy()
        .into_owned()
}

/// Reads a C string argument, or "(null)".
///
/// # Safety
/// `s` is null or a NUL-terminated string.
pub(crate) unsafe fn cstr(s: *const c_char) -> String {
    if s.is_null() {
        return "(null)".into();
    }
    // SAFETY: per the contract.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

impl MallocState {
    pub fn new(plan: Option<FailNowait>) -> MallocState {
        MallocState {
            inner: Mutex::new(Inner::default()),
            plan: Mutex::new(plan),
        }
    }

    /// Changes which `M_NOWAIT` allocations fail from now on (memory
    /// short again, or back); the count goes on.
    pub fn set_plan(&self, plan: Option<FailNowait>) {
        *lock(&self.plan) = plan;
    }

    /// `malloc_init`: registers the type. Returns the version it carries
    /// when that is not [`M_VERSION`] (the kernel panics then).
    ///
    /// # Safety
    /// `mtp` points to a readable `struct malloc_type`.
    pub unsafe fn init_type(&self, mtp: *mut malloc_type) -> Result<(), (String, u64)> {
        // SAFETY: per the contract.
        let (name, version) = unsafe { (type_name(mtp), (*mtp).ks_version) };
        if version != M_VERSION {
            return Err((name, version));
        }
        let mut g = lock(&self.inner);
        let t = g.types.entry(mtp as usize).or_default();
        t.name = name;
        t.initialised = true;
        Ok(())
    }

    /// `malloc_uninit`: unregisters the type and returns its counters,
    /// with what is still allocated recorded as leaked.
    pub fn uninit_type(&self, mtp: usize) -> Option<TypeStats> {
        let mut g = lock(&self.inner);
        let t = g.types.get_mut(&mtp)?;
        t.initialised = false;
        t.leaked_at_uninit = t.live;
        t.leaked_bytes_at_uninit = t.live_bytes;
        let mut live: Vec<&Block> = g.blocks.values().filter(|b| b.mtp == mtp).collect();
        live.sort_by_key(|b| b.seq);
        let blocks: Vec<String> = live
            .iter()
            .take(4)
            .map(|b| {
                format!(
                    "{} bytes (allocation #{}, {:?} context)",
                    b.size, b.seq, b.ctx
                )
            })
            .collect();
        let t = g.types.get_mut(&mtp)?;
        t.leaked_blocks = blocks;
        Some(t.clone())
    }

    /// Counts one `M_NOWAIT` allocation made at `site`; true when
    /// injection fails it.
    pub fn nowait_should_fail(&self, site: &'static str) -> bool {
        let mut g = lock(&self.inner);
        g.nowait_seen += 1;
        let n = g.nowait_seen;
        g.sites.push(site);
        let fail = lock(&self.plan).is_some_and(|p| p.fails(n));
        if fail {
            g.injected += 1;
            g.failed_at.push(n);
        }
        fail
    }

    /// The sites of the `M_NOWAIT` allocations so far and which failed.
    pub fn nowait_log(&self) -> NowaitLog {
        let g = lock(&self.inner);
        NowaitLog {
            sites: g.sites.clone(),
            failed: g.failed_at.clone(),
            waitok: g.waitok,
        }
    }

    /// `malloc`/`malloc_aligned` once the flags were checked. Null only
    /// for an `M_NOWAIT` allocation (failed by injection or by the host).
    pub fn allocate(
        &self,
        size: usize,
        align: usize,
        mtp: usize,
        flags: c_int,
        site: &'static str,
    ) -> Result<*mut c_void, MallocFault> {
        let nowait = flags & M_WAITOK == 0;
        if nowait && self.nowait_should_fail(site) {
            if let Some(t) = lock(&self.inner).types.get_mut(&mtp) {
                t.failed += 1;
            }
            return Ok(std::ptr::null_mut());
        }
        let align = align.max(16);
        let size_r = size.max(1).div_ceil(align) * align;
        let Ok(layout) = Layout::from_size_align(size_r, align) else {
            return Ok(std::ptr::null_mut());
        };
        let p = host_alloc(layout, flags & M_ZERO != 0);
        if p.is_null() {
            if nowait {
                return Ok(std::ptr::null_mut());
            }
            handle_alloc_error(layout);
        }
        let mut g = lock(&self.inner);
        g.seq += 1;
        if !nowait {
            g.waitok += 1;
        }
        let seq = g.seq;
        let t = g.types.entry(mtp).or_default();
        let known = t.initialised;
        t.allocs += 1;
        t.live += 1;
        t.live_bytes += size as u64;
        g.blocks.insert(
            p as usize,
            Block {
                layout,
                base: p as usize,
                size,
                mtp,
                seq,
                ctx: crate::sched::current().1,
            },
        );
        drop(g);
        if known {
            Ok(p.cast())
        } else {
            // Still handed out (the kernel would use the type's zero stats
            // pointer and crash later); the caller reports it.
            Err(MallocFault::UninitType(p as usize))
        }
    }

    /// `free`: returns the block to the host; the size freed is returned
    /// so the caller can forget locks that lived in it.
    pub fn release(&self, addr: usize, mtp: usize) -> Result<usize, MallocFault> {
        let mut g = lock(&self.inner);
        let Some(b) = g.blocks.remove(&addr) else {
            return Err(MallocFault::NotAllocated);
        };
        let owner = b.mtp;
        if let Some(t) = g.types.get_mut(&owner) {
            t.frees += 1;
            t.live = t.live.saturating_sub(1);
            t.live_bytes = t.live_bytes.saturating_sub(b.size as u64);
        }
        let wrong = (owner != mtp).then(|| {
            let name = |m: usize| g.types.get(&m).map_or("?".into(), |t| t.name.clone());
            MallocFault::WrongType(name(mtp), name(owner))
        });
        drop(g);
        let size = b.size;
        host_free(b);
        match wrong {
            Some(w) => Err(w),
            None => Ok(size),
        }
    }

    /// The size of a live allocation at `addr`.
    pub fn live_size(&self, addr: usize) -> Option<usize> {
        lock(&self.inner).blocks.get(&addr).map(|b| b.size)
    }

    /// Counters per type, by type address.
    pub fn types(&self) -> BTreeMap<usize, TypeStats> {
        lock(&self.inner).types.clone()
    }

    /// (`M_NOWAIT` allocations seen, failures injected).
    pub fn nowait_counts(&self) -> (u64, u64) {
        let g = lock(&self.inner);
        (g.nowait_seen, g.injected)
    }
}

impl Drop for MallocState {
    fn drop(&mut self) {
        // Blocks the module leaked (already reported at malloc_uninit, or
        // the instance was never unloaded) go back to the host here.
        let g = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, b) in g.blocks.drain() {
            host_free(b);
        }
    }
}

fn host_alloc(layout: Layout, zero: bool) -> *mut u8 {
    if zero {
        // SAFETY: layout has a non-zero size (size.max(1) rounded up).
        return unsafe { alloc_zeroed(layout) };
    }
    // SAFETY: as above.
    let p = unsafe { alloc(layout) };
    if !p.is_null() {
        // SAFETY: p is a fresh allocation of layout.size() bytes.
        unsafe { trash(p, layout.size()) };
    }
    p
}

fn host_free(b: Block) {
    let p = b.base as *mut u8;
    // SAFETY: p was allocated by host_alloc with b.layout and is freed
    // once (its Block was just removed from the table).
    unsafe {
        trash(p, b.layout.size());
        dealloc(p, b.layout);
    }
}

/// Fills `len` bytes at `p` with the INVARIANTS trash pattern.
///
/// # Safety
/// `p..p+len` is writable.
unsafe fn trash(p: *mut u8, len: usize) {
    let pat = TRASH.to_ne_bytes();
    for i in 0..len {
        // SAFETY: i < len, per the contract.
        unsafe { p.add(i).write(pat[i % 4]) };
    }
}

/// Whether `align` is one `malloc_aligned` accepts.
pub fn align_ok(align: usize) -> bool {
    align.is_power_of_two() && align <= PAGE_SIZE
}
