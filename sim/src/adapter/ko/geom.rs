//! The GEOM half of the emulated KPI: real `struct g_geom`, `g_provider`,
//! `g_consumer` and `bio` objects that the loaded module reads and writes,
//! kept as mirrors of the simulator's objects.
//!
//! The simulator stays the model of GEOM: every `g_*` call of the module is
//! turned into the simulator's checked operation on its ids (so its rules,
//! see [`crate::violation`], apply unchanged), and the C fields are then
//! refreshed from the simulator's state ([`GeomState::sync_out`]: access
//! counts, `G_GEOM_WITHER`, orphan flags, sizes of foreign providers,
//! objects GEOM destroyed on its own). What the module writes into its own
//! providers (`mediasize`, `sectorsize`, stripe, `G_PF_ACCEPT_UNMAPPED`,
//! the direct dispatch flags) and consumers (direct dispatch flags) is
//! copied the other way ([`GeomState::sync_in`]) at each KPI call and after
//! each callback. A few of FreeBSD's KASSERTs that the simulator does not
//! see (they are about C fields) are checked here.
//!
//! Objects GEOM frees are poisoned (`0xa5`, like FreeBSD's trash) and kept
//! until the instance goes away, so a use after free reads garbage
//! pointers instead of another object's memory.

use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr;
use std::sync::{Mutex, MutexGuard};

use crate::ids::{ClassId, ConsumerId, GeomId, ProviderId};
use crate::sim::SimPlatform;
use crate::topology::Direct;
use crate::util::lock;

use super::kstructs as k;

mod bio;
mod kpi;
#[cfg(test)]
mod tests;

pub use bio::BioEntry;
pub use kpi::symbols;
pub(crate) use kpi::{gmr_emu_g_new_geom_raw, gmr_emu_g_new_provider_raw};

/// The GEOM data objects the module imports (`M_GEOM`), of instance `kk`.
pub fn data_symbols(kk: &super::KoKernel) -> Vec<(&'static str, super::Sym)> {
    vec![("M_GEOM", super::Sym::Data(kk.geom.m_geom(kk)))]
}

/// A C object the module sees, allocated zeroed on the heap.
fn alloc_zeroed<T>() -> *mut T {
    // SAFETY: the kstructs types are plain C structures (integers, raw
    // pointers, `Option<fn>`), for which all-zero bytes are a valid value.
    let b: Box<T> = unsafe { Box::<T>::new_zeroed().assume_init() };
    Box::into_raw(b)
}

/// Sends a Rust string to C (interior NULs cut it, as C would).
pub(crate) fn c_string(s: &str) -> CString {
    let end = s.find('\0').unwrap_or(s.len());
    CString::new(&s[..end]).unwrap_or_default()
}

/// Reads a C string the module passed (lossy UTF-8); "" for NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn str_of(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Both directions of one kind of object: simulator id <-> C address.
struct Objs<I: Copy + Eq + std::hash::Hash> {
    by_id: HashMap<I, usize>,
    by_ptr: HashMap<usize, I>,
}

impl<I: Copy + Eq + std::hash::Hash> Default for Objs<I> {
    fn default() -> Self {
        Objs {
            by_id: HashMap::new(),
            by_ptr: HashMap::new(),
        }
    }
}

impl<I: Copy + Eq + std::hash::Hash> Objs<I> {
    fn insert(&mut self, id: I, p: usize) {
        self.by_id.insert(id, p);
        self.by_ptr.insert(p, id);
    }
    fn remove(&mut self, id: I) -> Option<usize> {
        let p = self.by_id.remove(&id)?;
        self.by_ptr.remove(&p);
        Some(p)
    }
    fn ids(&self) -> Vec<I> {
        self.by_id.keys().copied().collect()
    }
}

/// A freed object kept (poisoned) until the instance is dropped.
enum Dead {
    Geom(*mut k::g_geom),
    Provider(*mut k::g_provider),
    Consumer(*mut k::g_consumer),
}

/// The mirror tables (behind [`GeomState`]'s mutex).
#[derive(Default)]
pub(crate) struct Mirror {
    /// The module's `struct g_class` (set by `g_modevent(MOD_LOAD)`).
    pub class: usize,
    pub class_id: Option<ClassId>,
    geoms: Objs<GeomId>,
    providers: Objs<ProviderId>,
    consumers: Objs<ConsumerId>,
    /// The name strings of the objects above, by object address.
    names: HashMap<usize, CString>,
    dead: Vec<Dead>,
    /// C bios alive, by address.
    pub bios: HashMap<usize, BioEntry>,
    pub bio_by_id: HashMap<crate::ids::BioId, usize>,
    /// Addresses of C bios completed (delivered, done or destroyed) and
    /// freed, until a new bio reuses one: a second completion is named.
    pub bios_done: HashSet<usize>,
    /// `struct sbuf`s handed to the module (dumpconf, gctl errors).
    pub sbufs: HashSet<usize>,
    /// Each provider's fields as last synced (see `refresh_provider`).
    snaps: HashMap<ProviderId, Snap>,
    /// The direct dispatch flags last seen on the module's own providers
    /// and consumers, by address (see `direct_writes`).
    direct_seen: HashMap<usize, Direct>,
}

/// (mediasize, sectorsize, stripesize, stripeoffset, accepts unmapped).
type Sizes = (u64, u32, u64, u64, bool);

/// A provider's simulator state at one sync.
#[derive(Clone, Copy)]
struct Snap {
    acc: geom_multipath_rs::platform::Access,
    error: c_int,
    orphan: bool,
    wither: bool,
    sizes: Sizes,
    direct: Direct,
}

impl Snap {
    fn of_rec(r: &crate::topology::ProviderRec) -> Snap {
        Snap {
            acc: r.acc,
            error: r.error,
            orphan: r.orphan,
            wither: r.wither,
            direct: r.direct,
            sizes: (
                r.mediasize,
                r.sectorsize,
                r.stripesize,
                r.stripeoffset,
                r.accept_unmapped,
            ),
        }
    }
    fn sizes(&self) -> Sizes {
        self.sizes
    }
    fn set_sizes(&mut self, s: Sizes) {
        self.sizes = s;
    }

    /// The size fields of a C provider.
    ///
    /// # Safety
    /// `p` is a live provider.
    unsafe fn sizes_of(p: *const k::g_provider) -> Sizes {
        // SAFETY: per the contract.
        unsafe {
            (
                (*p).mediasize as u64,
                (*p).sectorsize,
                (*p).stripesize as u64,
                (*p).stripeoffset as u64,
                (*p).flags & k::G_PF_ACCEPT_UNMAPPED != 0,
            )
        }
    }

    /// Writes the size fields into a C provider.
    ///
    /// # Safety
    /// `p` is a live provider.
    unsafe fn write_sizes(&self, p: *mut k::g_provider) {
        let (ms, ss, st, so, um) = self.sizes;
        // SAFETY: per the contract.
        unsafe {
            (*p).mediasize = ms as k::off_t;
            (*p).sectorsize = ss;
            (*p).stripesize = st as k::off_t;
            (*p).stripeoffset = so as k::off_t;
            (*p).flags &= !k::G_PF_ACCEPT_UNMAPPED;
            if um {
                (*p).flags |= k::G_PF_ACCEPT_UNMAPPED;
            }
        }
    }
}

// SAFETY: the raw pointers in `dead` are owned boxes nobody else uses; the
// tables are only touched under the GeomState mutex.
unsafe impl Send for Mirror {}

/// The GEOM side of one loaded module's emulated kernel.
#[derive(Default)]
pub struct GeomState {
    m: Mutex<Mirror>,
    /// GEOM's `M_GEOM` malloc type (a data object in low memory).
    m_geom: std::sync::OnceLock<usize>,
    /// Bios the module completed with `g_io_deliver(bp, ENOMEM)` (GEOM
    /// sends them down again).
    enomem_delivered: std::sync::atomic::AtomicU64,
}

/// `ks_shortdesc` of `M_GEOM`.
static M_GEOM_NAME: &CStr = c"GEOM";

impl GeomState {
    pub fn new() -> GeomState {
        GeomState::default()
    }

    /// How many bios the module completed with ENOMEM.
    pub fn enomem_delivered(&self) -> u64 {
        self.enomem_delivered
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// GEOM's `M_GEOM` (`MALLOC_DEFINE(M_GEOM, "GEOM", ...)` in
    /// geom_subr.c): allocated below 2 GiB on first use (the module
    /// addresses it with 32-bit relocations) and registered with the
    /// instance's malloc accounting. 0 if low memory is exhausted.
    pub fn m_geom(&self, kk: &super::KoKernel) -> usize {
        *self.m_geom.get_or_init(|| {
            let size = std::mem::size_of::<k::malloc_type>();
            let Ok(p) = kld::low_alloc(size, 16) else {
                return 0;
            };
            let mtp = p as *mut k::malloc_type;
            // SAFETY: `p` is a fresh zeroed block of `size` bytes, aligned;
            // the accounting reads the fields set here.
            unsafe {
                (*mtp).ks_version = k::M_VERSION as k::u_long;
                (*mtp).ks_shortdesc = M_GEOM_NAME.as_ptr();
                let _ = kk.kern.malloc.init_type(mtp);
            }
            p as usize
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Mirror> {
        lock(&self.m)
    }

    /// The module's class and its simulator id, once registered.
    pub fn class(&self) -> (*mut k::g_class, Option<ClassId>) {
        let m = self.lock();
        (m.class as *mut k::g_class, m.class_id)
    }

    pub(crate) fn set_class(&self, mp: *mut k::g_class, id: Option<ClassId>) {
        let mut m = self.lock();
        m.class = mp as usize;
        m.class_id = id;
    }

    /// `plat` bound to the module's class (module code may run on threads
    /// entered with an unbound handle: SYSINITs, events, its worker).
    pub fn bound(&self, plat: &SimPlatform) -> SimPlatform {
        match self.lock().class_id {
            Some(c) => plat.bound(c),
            None => plat.clone(),
        }
    }

    /// The geom behind a C pointer the module passed.
    pub fn geom_id(&self, gp: *const k::g_geom) -> Option<GeomId> {
        self.lock().geoms.by_ptr.get(&(gp as usize)).copied()
    }
    pub fn provider_id(&self, pp: *const k::g_provider) -> Option<ProviderId> {
        self.lock().providers.by_ptr.get(&(pp as usize)).copied()
    }
    pub fn consumer_id(&self, cp: *const k::g_consumer) -> Option<ConsumerId> {
        self.lock().consumers.by_ptr.get(&(cp as usize)).copied()
    }

    /// The C geom of `gp`, created (as a foreign geom, on no class list)
    /// when the module has not seen it yet.
    pub fn geom_ptr(&self, plat: &SimPlatform, gp: GeomId) -> *mut k::g_geom {
        let mut m = self.lock();
        m.geom_ptr(plat, gp)
    }
    pub fn provider_ptr(&self, plat: &SimPlatform, pp: ProviderId) -> *mut k::g_provider {
        let mut m = self.lock();
        let p = m.provider_ptr(plat, pp);
        m.refresh_provider(plat, pp);
        p
    }
    pub fn consumer_ptr(&self, plat: &SimPlatform, cp: ConsumerId) -> *mut k::g_consumer {
        let mut m = self.lock();
        let p = m.consumer_ptr(plat, cp);
        m.refresh_consumer(plat, cp);
        p
    }

    /// Differences between the C mirrors and the simulator (tests): the
    /// class's geom LIST against the simulator's class list (newest
    /// first), and each provider's and consumer's access counts. Call it
    /// with the simulator idle.
    pub fn mirror_mismatches(&self, plat: &SimPlatform) -> Vec<String> {
        let m = self.lock();
        let mut out = Vec::new();
        if let Some(cid) = m.class_id {
            let sim: Vec<GeomId> = plat
                .topo()
                .class
                .get(&cid)
                .map(|c| c.geoms.newest_first())
                .unwrap_or_default();
            let mut c_list = Vec::new();
            // SAFETY: the module's class; its list links live mirrors.
            let mut g = unsafe { (*(m.class as *mut k::g_class)).geom.lh_first };
            while !g.is_null() && c_list.len() <= sim.len() {
                c_list.push(m.geoms.by_ptr.get(&(g as usize)).copied());
                // SAFETY: as above.
                g = unsafe { (*g).geom.le_next };
            }
            let sim: Vec<Option<GeomId>> = sim.into_iter().map(Some).collect();
            if c_list != sim {
                out.push(format!("class geom LIST {c_list:?}, simulator {sim:?}"));
            }
        }
        let t = plat.topo();
        for (&pp, &addr) in &m.providers.by_id {
            let p = addr as *const k::g_provider;
            // SAFETY: a live provider mirror.
            let c = unsafe { ((*p).acr, (*p).acw, (*p).ace) };
            if let Some(r) = t.provider.get(&pp) {
                if c != acc_of(r.acc) {
                    out.push(format!(
                        "{pp:?} ({}): C counts {c:?}, simulator {:?}",
                        r.name, r.acc
                    ));
                }
            }
        }
        for (&cp, &addr) in &m.consumers.by_id {
            let c = addr as *const k::g_consumer;
            // SAFETY: a live consumer mirror.
            let a = unsafe { ((*c).acr, (*c).acw, (*c).ace) };
            if let Some(r) = t.consumer.get(&cp) {
                if a != acc_of(r.acc) {
                    out.push(format!("{cp:?}: C counts {a:?}, simulator {:?}", r.acc));
                }
            }
        }
        out
    }

    /// `pp->acr += dr` etc. on the mirror, as g_access does after a
    /// successful access method.
    pub fn add_provider_access(&self, pp: ProviderId, d: geom_multipath_rs::platform::Access) {
        let m = self.lock();
        if let Some(&addr) = m.providers.by_id.get(&pp) {
            let p = addr as *mut k::g_provider;
            // SAFETY: a live provider mirror.
            unsafe {
                (*p).acr += d.r;
                (*p).acw += d.w;
                (*p).ace += d.e;
            }
        }
    }

    /// `g_new_geomf`'s object: a geom of the module's class named `name`,
    /// linked at the head of `mp->geom`, with the class's methods copied.
    pub(crate) fn new_geom(&self, gp: GeomId, mp: *mut k::g_class, name: &str) -> *mut k::g_geom {
        let mut m = self.lock();
        let g: *mut k::g_geom = alloc_zeroed();
        let cname = c_string(name);
        // SAFETY: `g` is a fresh allocation; `mp` is the module's class
        // (checked by the caller), whose list head we link `g` into.
        unsafe {
            (*g).name = cname.as_ptr() as *mut c_char;
            (*g).class = mp;
            (*g).rank = 1;
            (*g).start = (*mp).start;
            (*g).spoiled = (*mp).spoiled;
            (*g).attrchanged = (*mp).attrchanged;
            (*g).providergone = (*mp).providergone;
            (*g).dumpconf = (*mp).dumpconf;
            (*g).access = (*mp).access;
            (*g).orphan = (*mp).orphan;
            (*g).ioctl = (*mp).ioctl;
            (*g).resize = (*mp).resize;
            class_list_insert(mp, g);
        }
        m.names.insert(g as usize, cname);
        m.geoms.insert(gp, g as usize);
        g
    }

    /// `g_new_providerf`'s object, on `gp`'s provider list.
    pub fn new_provider(&self, plat: &SimPlatform, pp: ProviderId) -> *mut k::g_provider {
        let mut m = self.lock();
        m.provider_ptr(plat, pp)
    }

    /// `g_new_consumer`'s object, on `gp`'s consumer list.
    pub fn new_consumer(&self, plat: &SimPlatform, cp: ConsumerId) -> *mut k::g_consumer {
        let mut m = self.lock();
        m.consumer_ptr(plat, cp)
    }

    /// Simulator -> C: refreshes every mirrored object and retires those
    /// GEOM destroyed. Call after anything that may change the topology.
    pub fn sync_out(&self, plat: &SimPlatform) {
        let mut m = self.lock();
        m.sync_out(plat);
    }

    /// C -> simulator: what the module wrote into its own providers. Only
    /// with the topology lock held (the module writes them under it).
    pub fn sync_in(&self, plat: &SimPlatform) {
        if !plat.topology_held() {
            return;
        }
        let (pending, direct) = {
            let mut m = self.lock();
            (m.provider_writes(), m.direct_writes())
        };
        for w in pending {
            w.apply(plat);
        }
        for w in direct {
            w.apply(plat);
        }
    }

    /// Both directions, for the edges of module code.
    pub fn sync(&self, plat: &SimPlatform) {
        self.sync_in(plat);
        self.sync_out(plat);
    }
}

impl Drop for GeomState {
    fn drop(&mut self) {
        let m = match self.m.get_mut() {
            Ok(m) => m,
            Err(e) => e.into_inner(),
        };
        m.free_all();
        if let Some(&p) = self.m_geom.get().filter(|&&p| p != 0) {
            // SAFETY: `p` came from kld::low_alloc with this size in
            // `m_geom`; the instance (and so the module using it) is gone.
            unsafe { kld::low_free(p as *mut u8, std::mem::size_of::<k::malloc_type>()) };
        }
    }
}

/// `LIST_INSERT_HEAD(head, elm, field)` on the mirrors' lists: `head`
/// points to a `LIST_HEAD`, `elm` to an element on no list. Raw pointer
/// writes: the caller's `unsafe` block vouches that both are valid and
/// that the old first element, if any, is too.
macro_rules! list_insert_head {
    ($head:expr, $elm:expr, $field:ident) => {{
        let head = $head;
        let elm = $elm;
        let first = (*head).lh_first;
        (*elm).$field.le_next = first;
        if !first.is_null() {
            (*first).$field.le_prev = &mut (*elm).$field.le_next;
        }
        (*head).lh_first = elm;
        (*elm).$field.le_prev = &mut (*head).lh_first;
    }};
}

/// `LIST_REMOVE(elm, field)` when `elm` is on a list (its `le_prev` is
/// set), then clears its links. The caller's `unsafe` block vouches that
/// `elm` is valid and its links are those `list_insert_head!` made.
macro_rules! list_remove {
    ($elm:expr, $field:ident) => {{
        let elm = $elm;
        let prev = (*elm).$field.le_prev;
        if !prev.is_null() {
            let next = (*elm).$field.le_next;
            if !next.is_null() {
                (*next).$field.le_prev = prev;
            }
            *prev = next;
            (*elm).$field.le_next = ptr::null_mut();
            (*elm).$field.le_prev = ptr::null_mut();
        }
    }};
}

/// `LIST_INSERT_HEAD(&mp->geom, gp, geom)`.
///
/// # Safety
/// `mp` and `gp` are valid; `gp` is on no list.
unsafe fn class_list_insert(mp: *mut k::g_class, gp: *mut k::g_geom) {
    // SAFETY: per the contract; the old head, if any, is a valid geom.
    unsafe { list_insert_head!(ptr::addr_of_mut!((*mp).geom), gp, geom) }
}

/// `LIST_REMOVE(gp, geom)` when `gp` is on a list.
///
/// # Safety
/// `gp` is valid and its links are those `class_list_insert` made.
unsafe fn class_list_remove(gp: *mut k::g_geom) {
    // SAFETY: per the contract.
    unsafe { list_remove!(gp, geom) }
}

/// `flags` with the two direct dispatch bits (`send`, `receive`) set as
/// `d` says.
fn with_direct(flags: u32, send: u32, receive: u32, d: Direct) -> u32 {
    let mut f = flags & !(send | receive);
    if d.send {
        f |= send;
    }
    if d.receive {
        f |= receive;
    }
    f
}

/// The direct dispatch bits of `flags`.
fn direct_of(flags: u32, send: u32, receive: u32) -> Direct {
    Direct {
        send: flags & send != 0,
        receive: flags & receive != 0,
    }
}

/// A direct dispatch flag the module set or cleared on one of its own
/// providers or consumers (`G_PF_DIRECT_*`, `G_CF_DIRECT_*`), to apply
/// to the simulator outside the mirror lock: GEOM reads them at each
/// `g_io_request` and `g_io_deliver`.
enum DirectWrite {
    Provider(ProviderId, Direct),
    Consumer(ConsumerId, Direct),
}

impl DirectWrite {
    fn apply(&self, plat: &SimPlatform) {
        match *self {
            DirectWrite::Provider(pp, d) => plat.set_provider_direct(pp, d),
            DirectWrite::Consumer(cp, d) => plat.set_consumer_direct(cp, d),
        }
    }
}

/// A write of the module to one of its providers, to apply to the
/// simulator outside the mirror lock.
struct ProviderWrite {
    pp: ProviderId,
    size: Option<(u64, u32)>,
    stripe: Option<(u64, u64)>,
    unmapped: Option<bool>,
}

impl ProviderWrite {
    fn apply(&self, plat: &SimPlatform) {
        if let Some((ms, ss)) = self.size {
            plat.set_provider_size(self.pp, ms, ss);
        }
        if let Some((s, o)) = self.stripe {
            plat.set_provider_stripe(self.pp, s, o);
        }
        if let Some(u) = self.unmapped {
            plat.set_provider_accepts_unmapped(self.pp, u);
        }
    }
}

fn acc_of(a: geom_multipath_rs::platform::Access) -> (c_int, c_int, c_int) {
    (a.r, a.w, a.e)
}

impl Mirror {
    fn geom_ptr(&mut self, plat: &SimPlatform, gp: GeomId) -> *mut k::g_geom {
        if let Some(&p) = self.geoms.by_id.get(&gp) {
            return p as *mut k::g_geom;
        }
        let g: *mut k::g_geom = alloc_zeroed();
        let cname = c_string(&plat.geom_name_of(gp).unwrap_or_default());
        // SAFETY: a fresh allocation; a foreign geom has no class here and
        // only its name and rank are meaningful to the module.
        unsafe {
            (*g).name = cname.as_ptr() as *mut c_char;
            (*g).rank = 1;
        }
        self.names.insert(g as usize, cname);
        self.geoms.insert(gp, g as usize);
        g
    }

    fn provider_ptr(&mut self, plat: &SimPlatform, pp: ProviderId) -> *mut k::g_provider {
        if let Some(&p) = self.providers.by_id.get(&pp) {
            return p as *mut k::g_provider;
        }
        let p: *mut k::g_provider = alloc_zeroed();
        let cname = c_string(&plat.provider_name_of(pp).unwrap_or_default());
        let gp = plat
            .provider_geom(pp)
            .map_or(ptr::null_mut(), |g| self.geom_ptr(plat, g));
        // SAFETY: `p` is fresh; `gp` is a mirrored geom or NULL.
        unsafe {
            (*p).name = cname.as_ptr() as *mut c_char;
            (*p).geom = gp;
            (*p).error = crate::ENXIO;
            if !gp.is_null() {
                list_insert_head!(ptr::addr_of_mut!((*gp).provider), p, provider);
            }
        }
        self.names.insert(p as usize, cname);
        self.providers.insert(pp, p as usize);
        self.refresh_provider(plat, pp);
        p
    }

    fn consumer_ptr(&mut self, plat: &SimPlatform, cp: ConsumerId) -> *mut k::g_consumer {
        if let Some(&p) = self.consumers.by_id.get(&cp) {
            return p as *mut k::g_consumer;
        }
        let c: *mut k::g_consumer = alloc_zeroed();
        let gp = plat
            .consumer_geom(cp)
            .map_or(ptr::null_mut(), |g| self.geom_ptr(plat, g));
        // SAFETY: `c` is fresh; `gp` is a mirrored geom or NULL.
        unsafe {
            (*c).geom = gp;
            if !gp.is_null() {
                list_insert_head!(ptr::addr_of_mut!((*gp).consumer), c, consumer);
            }
        }
        self.consumers.insert(cp, c as usize);
        self.refresh_consumer(plat, cp);
        c
    }

    /// Whether `pp` belongs to a geom of the module's class (the module
    /// owns its size fields) rather than to another class.
    fn owns_provider(&self, pp: ProviderId) -> bool {
        let Some(&addr) = self.providers.by_id.get(&pp) else {
            return false;
        };
        // SAFETY: a live provider mirror (it is in the table).
        self.is_ours(unsafe { (*(addr as *const k::g_provider)).geom })
    }

    /// Whether `gp` (a geom mirror or NULL) is of the module's class.
    fn is_ours(&self, gp: *const k::g_geom) -> bool {
        // SAFETY: `gp` is a live mirror's geom pointer: NULL or a geom
        // mirror, whose memory stays allocated (poisoned once retired)
        // until the instance is dropped.
        self.class != 0 && !gp.is_null() && unsafe { (*gp).class as usize == self.class }
    }

    fn refresh_provider(&mut self, plat: &SimPlatform, pp: ProviderId) {
        let Some(&addr) = self.providers.by_id.get(&pp) else {
            return;
        };
        let own = self.owns_provider(pp);
        let p = addr as *mut k::g_provider;
        let t = plat.topo();
        let Some(r) = t.provider.get(&pp) else {
            return;
        };
        let sim = Snap::of_rec(r);
        drop(t);
        // The module owns its providers' size fields: take the simulator's
        // value only where the simulator changed it since the last sync
        // (g_resize_provider's event), never over an unsynced module write.
        let last = self.snaps.insert(pp, sim);
        let (acr, acw, ace) = acc_of(sim.acc);
        // SAFETY: `p` is a live mirror (it is in the table).
        unsafe {
            (*p).acr = acr;
            (*p).acw = acw;
            (*p).ace = ace;
            (*p).error = sim.error;
            let mut fl = (*p).flags & !(k::G_PF_ORPHAN | k::G_PF_WITHER);
            if sim.orphan {
                fl |= k::G_PF_ORPHAN;
            }
            if sim.wither {
                fl |= k::G_PF_WITHER;
            }
            if !own {
                // Another class's provider (a disk): its flags as GEOM
                // has them, for the module to read.
                fl = with_direct(fl, k::G_PF_DIRECT_SEND, k::G_PF_DIRECT_RECEIVE, sim.direct);
            }
            (*p).flags = fl;
            if !own || last.is_none_or(|l| l.sizes() != sim.sizes()) {
                sim.write_sizes(p);
            }
        }
    }

    fn refresh_consumer(&mut self, plat: &SimPlatform, cp: ConsumerId) {
        let Some(&addr) = self.consumers.by_id.get(&cp) else {
            return;
        };
        let (acc, attached, orphan, nstart, nend) = {
            let t = plat.topo();
            let Some(r) = t.consumer.get(&cp) else {
                return;
            };
            (r.acc, r.provider, r.orphan, r.nstart, r.nend)
        };
        let pp = attached.map_or(ptr::null_mut(), |p| self.provider_ptr(plat, p));
        let c = addr as *mut k::g_consumer;
        let (acr, acw, ace) = acc_of(acc);
        // SAFETY: `c` is a live mirror.
        unsafe {
            (*c).acr = acr;
            (*c).acw = acw;
            (*c).ace = ace;
            (*c).provider = pp;
            (*c).nstart = nstart as k::u_int;
            (*c).nend = nend as k::u_int;
            (*c).flags &= !(k::G_CF_ORPHAN as c_int);
            if orphan {
                (*c).flags |= k::G_CF_ORPHAN as c_int;
            }
        }
    }

    fn sync_out(&mut self, plat: &SimPlatform) {
        for cp in self.consumers.ids() {
            if plat.consumer_exists(cp) {
                self.refresh_consumer(plat, cp);
            } else {
                self.retire_consumer(cp);
            }
        }
        for pp in self.providers.ids() {
            if plat.provider_exists(pp) {
                self.refresh_provider(plat, pp);
            } else {
                self.retire_provider(pp);
            }
        }
        for gp in self.geoms.ids() {
            let Some(&addr) = self.geoms.by_id.get(&gp) else {
                continue;
            };
            let g = addr as *mut k::g_geom;
            if plat.geom_exists(gp) {
                let wither = plat.geom_withering(gp);
                // SAFETY: a live mirror.
                unsafe {
                    if wither {
                        (*g).flags |= k::G_GEOM_WITHER;
                    } else {
                        (*g).flags &= !k::G_GEOM_WITHER;
                    }
                }
            } else {
                self.retire_geom(gp);
            }
        }
    }

    /// Whether consumer `cp` belongs to a geom of the module's class.
    fn owns_consumer(&self, cp: ConsumerId) -> bool {
        let Some(&addr) = self.consumers.by_id.get(&cp) else {
            return false;
        };
        // SAFETY: a live consumer mirror (it is in the table).
        self.is_ours(unsafe { (*(addr as *const k::g_consumer)).geom })
    }

    /// The direct dispatch flags the module changed on its own providers
    /// and consumers since the last sync (the C fields are the module's
    /// to write; GEOM only reads them).
    fn direct_writes(&mut self) -> Vec<DirectWrite> {
        let mut out = Vec::new();
        for (pp, addr) in self.providers.by_id.clone() {
            if !self.owns_provider(pp) {
                continue;
            }
            // SAFETY: a live mirror.
            let fl = unsafe { (*(addr as *const k::g_provider)).flags };
            let d = direct_of(fl, k::G_PF_DIRECT_SEND, k::G_PF_DIRECT_RECEIVE);
            if self.direct_seen.insert(addr, d).unwrap_or_default() != d {
                out.push(DirectWrite::Provider(pp, d));
            }
        }
        for (cp, addr) in self.consumers.by_id.clone() {
            if !self.owns_consumer(cp) {
                continue;
            }
            // SAFETY: a live mirror.
            // The consumer's flags are a C int: the bits, as unsigned.
            let fl = unsafe { (*(addr as *const k::g_consumer)).flags } as u32;
            let d = direct_of(fl, k::G_CF_DIRECT_SEND, k::G_CF_DIRECT_RECEIVE);
            if self.direct_seen.insert(addr, d).unwrap_or_default() != d {
                out.push(DirectWrite::Consumer(cp, d));
            }
        }
        out
    }

    /// The module's writes to its own providers since the last sync.
    fn provider_writes(&mut self) -> Vec<ProviderWrite> {
        let mut out = Vec::new();
        for (pp, addr) in self.providers.by_id.clone() {
            if !self.owns_provider(pp) {
                continue;
            }
            let Some(last) = self.snaps.get_mut(&pp) else {
                continue;
            };
            // SAFETY: a live mirror.
            let c = unsafe { Snap::sizes_of(addr as *const k::g_provider) };
            let l = last.sizes();
            if c == l {
                continue;
            }
            last.set_sizes(c);
            out.push(ProviderWrite {
                pp,
                size: ((c.0, c.1) != (l.0, l.1)).then_some((c.0, c.1)),
                stripe: ((c.2, c.3) != (l.2, l.3)).then_some((c.2, c.3)),
                unmapped: (c.4 != l.4).then_some(c.4),
            });
        }
        out
    }

    fn retire_geom(&mut self, gp: GeomId) {
        let Some(addr) = self.geoms.remove(gp) else {
            return;
        };
        let g = addr as *mut k::g_geom;
        // SAFETY: the mirror was live until now; it leaves every list.
        unsafe {
            class_list_remove(g);
            poison(g);
        }
        self.names.remove(&addr);
        self.dead.push(Dead::Geom(g));
    }

    fn retire_provider(&mut self, pp: ProviderId) {
        let Some(addr) = self.providers.remove(pp) else {
            return;
        };
        self.snaps.remove(&pp);
        let p = addr as *mut k::g_provider;
        // SAFETY: the mirror was live; unlink it from its geom's list.
        unsafe {
            list_remove!(p, provider);
            poison(p);
        }
        self.names.remove(&addr);
        self.dead.push(Dead::Provider(p));
    }

    fn retire_consumer(&mut self, cp: ConsumerId) {
        let Some(addr) = self.consumers.remove(cp) else {
            return;
        };
        let c = addr as *mut k::g_consumer;
        // SAFETY: the mirror was live; unlink it from its geom's list.
        unsafe {
            list_remove!(c, consumer);
            poison(c);
        }
        self.dead.push(Dead::Consumer(c));
    }

    fn free_all(&mut self) {
        for gp in self.geoms.ids() {
            self.retire_geom(gp);
        }
        for pp in self.providers.ids() {
            self.retire_provider(pp);
        }
        for cp in self.consumers.ids() {
            self.retire_consumer(cp);
        }
        for d in self.dead.drain(..) {
            // SAFETY: each was made by `alloc_zeroed` (Box::into_raw) and is
            // freed once, here.
            unsafe {
                match d {
                    Dead::Geom(p) => drop(Box::from_raw(p)),
                    Dead::Provider(p) => drop(Box::from_raw(p)),
                    Dead::Consumer(p) => drop(Box::from_raw(p)),
                }
            }
        }
        bio::free_all(self);
    }
}

/// Fills a freed object with FreeBSD's trash pattern.
///
/// # Safety
/// `p` points to a live `T` nobody may use any more.
unsafe fn poison<T>(p: *mut T) {
    // SAFETY: per the contract; any byte pattern is fine for these C types
    // as nothing reads them as Rust values again.
    unsafe { ptr::write_bytes(p as *mut u8, 0xa5, std::mem::size_of::<T>()) };
}
