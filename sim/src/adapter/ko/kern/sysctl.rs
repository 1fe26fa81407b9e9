//! SYSCTLs of the loaded module: the oids of its `set_sysctl_set`, linked
//! into their parents' child lists as `kern_sysctl.c`'s
//! `sysctl_register_oid` does (a node of the same name already there is
//! shared, a leaf of the same name is refused with the kernel's warning,
//! `OID_AUTO` numbers are handed out downwards from `0x7fffffff`, each
//! list is ordered by number), found by name through that tree, and read
//! and written through their handlers as `sysctl(8)` would, with
//! `sysctl_handle_int` as `kern_sysctl.c` has it.
//!
//! A `struct sysctl_oid_list` is an `RB_HEAD` of `sys/tree.h` (FreeBSD
//! 14 and later): `rbh_root`, and in each oid `rbe_link[0]` the parent
//! (its two low bits set where the left or right child's rank difference
//! is 2), `rbe_link[1]` the left and `rbe_link[2]` the right child. The
//! emulation keeps each list's members in number order and lays the C
//! tree out again, balanced, after each change; lookups walk the C tree.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

use crate::ko::kstructs::{intmax_t, sysctl_oid, sysctl_req};
use crate::ko::Outcome;
use crate::util::lock;

use super::{malloc::cstr, EINVAL, ENOENT, ENOMEM, EPERM};

/// `CTLTYPE` mask and the types handled here.
const CTLTYPE: u32 = 0xf;
const CTLTYPE_NODE: u32 = 1;
pub const CTLTYPE_INT: u32 = 2;
pub const CTLTYPE_UINT: u32 = 6;
const CTLFLAG_WR: u32 = 0x4000_0000;
/// The default value comes from the kernel environment (loader.conf).
const CTLFLAG_TUN: u32 = 0x0008_0000;
const CTLFLAG_NOFETCH: u32 = 0x0000_1000;
const CTL_AUTO_START: c_int = 0x100;
/// `CTL_MAXNAME`: the deepest name.
const CTL_MAXNAME: usize = 24;
/// Rank-difference bits of `rbe_link[0]` (`_RB_L`, `_RB_R`).
const RB_L: usize = 1;
const RB_R: usize = 2;

/// `struct sysctl_req` (`sys/sysctl.h`), with its fields.
#[repr(C)]
pub struct SysctlReq {
    pub td: *mut c_void,
    pub lock: c_int,
    pub oldptr: *mut c_void,
    pub oldlen: usize,
    pub oldidx: usize,
    pub oldfunc: Option<unsafe extern "C" fn(*mut SysctlReq, *const c_void, usize) -> c_int>,
    pub newptr: *const c_void,
    pub newlen: usize,
    pub newidx: usize,
    pub newfunc: Option<unsafe extern "C" fn(*mut SysctlReq, *mut c_void, usize) -> c_int>,
    pub validlen: usize,
    pub flags: c_int,
}

const _: () = assert!(std::mem::size_of::<SysctlReq>() == std::mem::size_of::<sysctl_req>());
/// An `RB_HEAD` is one pointer, `rbh_root`.
const _: () = assert!(
    std::mem::size_of::<crate::ko::kstructs::sysctl_oid_list>()
        == std::mem::size_of::<*mut sysctl_oid>()
);

/// One registered oid.
#[derive(Clone, Debug)]
pub struct OidInfo {
    pub addr: usize,
    /// The full dotted name (`kern.geom.multipath.debug`).
    pub name: String,
    pub kind: u32,
    /// Its number in its parent's list (after `OID_AUTO` was resolved).
    pub number: c_int,
}

/// What `sysctl_register_oid` did with an oid.
#[derive(Debug)]
pub enum Registered {
    /// Linked into its parent's list (with the kernel's console line
    /// when its fixed number was taken and it got another).
    Linked(OidInfo, Option<String>),
    /// A node of that name was there already: shared (its refcount
    /// raised), this one left out.
    SharedNode,
    /// A leaf of that name was there already: refused, with the kernel's
    /// console line.
    LeafReused(String),
}

#[derive(Default)]
struct Tree {
    /// Nodes of the emulated kernel: (address of the oid, full name).
    roots: Vec<(usize, String)>,
    /// The oids this registry linked, in order.
    oids: Vec<OidInfo>,
    /// Each child list (by the address of its `sysctl_oid_list`): its
    /// members by number.
    lists: HashMap<usize, BTreeMap<c_int, usize>>,
    /// `newoid` of `sysctl_register_oid` (0 until the first `OID_AUTO`).
    newoid: c_int,
}

#[derive(Default)]
pub struct Sysctls {
    tree: Mutex<Tree>,
    /// The kernel environment's tunables (`kenv`, loader.conf).
    tunables: Mutex<Vec<(String, String)>>,
}

impl Sysctls {
    /// Declares a node the kernel owns (`sysctl___kern_geom`).
    pub fn add_root(&self, oid: usize, name: &str) {
        lock(&self.tree).roots.push((oid, name.to_string()));
    }

    /// Sets the kernel environment the tunables are read from.
    pub fn set_tunables(&self, t: &[(String, String)]) {
        *lock(&self.tunables) = t.to_vec();
    }

    /// The tunable for oid `o`, if it is one and the environment has it.
    pub fn tunable_for(&self, o: &OidInfo) -> Option<String> {
        if o.kind & CTLFLAG_TUN == 0 || o.kind & CTLFLAG_NOFETCH != 0 {
            return None;
        }
        let t = lock(&self.tunables);
        t.iter().find(|(n, _)| *n == o.name).map(|(_, v)| v.clone())
    }

    /// `sysctl_register_oid`.
    ///
    /// # Safety
    /// `oid` points to one of the module's `struct sysctl_oid`s, whose
    /// parents are the module's or a root's, all mapped until
    /// [`Sysctls::unregister_all`].
    pub unsafe fn register(&self, oid: *mut sysctl_oid) -> Result<Registered, String> {
        let mut t = lock(&self.tree);
        // SAFETY: per the contract.
        let name = unsafe { full_name(&t, oid, 0)? };
        // SAFETY: per the contract.
        let (parent, leaf, number, kind) = unsafe {
            (
                (*oid).oid_parent as usize,
                cstr((*oid).oid_name),
                (*oid).oid_number,
                (*oid).oid_kind,
            )
        };
        // SAFETY: the parent list and its members are mapped (contract).
        if let Some(p) = unsafe { find_child(parent, &leaf) } {
            // SAFETY: p is a member of the parent's list.
            unsafe {
                if (*p).oid_kind & CTLTYPE == CTLTYPE_NODE {
                    (*p).oid_refcnt += 1;
                    return Ok(Registered::SharedNode);
                }
            }
            return Ok(Registered::LeafReused(format!(
                "sysctl_register_oid: can't re-use a leaf ({name})!"
            )));
        }
        let mut n = number;
        if n < 0 {
            t.newoid -= 1;
            if t.newoid < CTL_AUTO_START {
                t.newoid = 0x7fff_ffff;
            }
            n = t.newoid;
        }
        let list = t.lists.entry(parent).or_default();
        let mut wrapped = 0;
        while list.contains_key(&n) {
            if n < CTL_AUTO_START || n == 0x7fff_ffff {
                n = CTL_AUTO_START;
                wrapped += 1;
                if wrapped > 2 {
                    return Err(format!("sysctl: Out of OID numbers ({name})"));
                }
                continue;
            }
            n += 1;
        }
        let collision = ((0..CTL_AUTO_START).contains(&number) && n >= CTL_AUTO_START)
            .then(|| format!("sysctl: OID number({number}) is already in use for '{leaf}'"));
        list.insert(n, oid as usize);
        // SAFETY: per the contract; the list's members are mapped.
        unsafe {
            (*oid).oid_number = n;
            relink(parent, list);
        }
        let info = OidInfo {
            addr: oid as usize,
            name,
            kind,
            number: n,
        };
        t.oids.push(info.clone());
        Ok(Registered::Linked(info, collision))
    }

    /// `sysctl_unregister_oid` of every oid this registry linked, last
    /// first (unload, before the module is unmapped).
    pub fn unregister_all(&self) -> Vec<OidInfo> {
        let mut t = lock(&self.tree);
        let oids = std::mem::take(&mut t.oids);
        for o in oids.iter().rev() {
            let oid = o.addr as *mut sysctl_oid;
            // SAFETY: a linked oid of the still-mapped module.
            let parent = unsafe { (*oid).oid_parent } as usize;
            if let Some(list) = t.lists.get_mut(&parent) {
                list.retain(|_, a| *a != o.addr);
                // SAFETY: the list and its remaining members are mapped;
                // the removed oid is unlinked from them.
                unsafe {
                    relink(parent, list);
                    (*oid).oid_link.rbe_link = [std::ptr::null_mut(); 3];
                }
            }
        }
        t.lists.retain(|_, l| !l.is_empty());
        oids
    }

    /// The oid `name` names, found through the tree from a root.
    pub fn find(&self, name: &str) -> Option<OidInfo> {
        let t = lock(&self.tree);
        let (root, rest) = t.roots.iter().find_map(|(a, n)| {
            let rest = name.strip_prefix(n.as_str())?.strip_prefix('.')?;
            Some((*a, rest))
        })?;
        let mut at = root as *mut sysctl_oid;
        for part in rest.split('.') {
            // SAFETY: `at` is a root or a linked oid; its child list and
            // members are mapped while linked.
            at = unsafe { find_child(at as usize, part)? };
        }
        // SAFETY: a linked oid.
        let (kind, number) = unsafe { ((*at).oid_kind, (*at).oid_number) };
        Some(OidInfo {
            addr: at as usize,
            name: name.to_string(),
            kind,
            number,
        })
    }

    /// Every oid linked under the roots, depth first in number order, as
    /// (full name, number): what `sysctl -a` walks.
    pub fn walk(&self) -> Vec<(String, c_int)> {
        let t = lock(&self.tree);
        let mut out = Vec::new();
        for (a, n) in &t.roots {
            // SAFETY: roots and linked oids are mapped.
            unsafe { walk_list(*a, n, 0, &mut out) };
        }
        out
    }

    /// The oids this registry linked.
    pub fn all(&self) -> Vec<OidInfo> {
        lock(&self.tree).oids.clone()
    }
}

/// The oid's full name, from its parents.
///
/// # Safety
/// As [`Sysctls::register`].
unsafe fn full_name(t: &Tree, oid: *const sysctl_oid, depth: usize) -> Result<String, String> {
    if let Some((_, n)) = t.roots.iter().find(|r| r.0 == oid as usize) {
        return Ok(n.clone());
    }
    // SAFETY: per the contract.
    let (parent, leaf) = unsafe { ((*oid).oid_parent, cstr((*oid).oid_name)) };
    if parent.is_null() || depth > CTL_MAXNAME {
        return Err(format!("sysctl {leaf}: no parent the kernel knows"));
    }
    // oid_children is the first field: the parent list is the parent oid.
    // SAFETY: per the contract (a module or root oid).
    let up = unsafe { full_name(t, parent.cast(), depth + 1)? };
    Ok(format!("{up}.{leaf}"))
}

/// Strips the rank bits off a link.
fn ptr_of(p: *mut sysctl_oid) -> *mut sysctl_oid {
    (p as usize & !(RB_L | RB_R)) as *mut sysctl_oid
}

/// The members of the list at `list`, in order (an in-order walk of the
/// C tree).
///
/// # Safety
/// `list` is a mapped `sysctl_oid_list` whose members are mapped.
unsafe fn members(list: usize) -> Vec<*mut sysctl_oid> {
    fn inorder(n: *mut sysctl_oid, out: &mut Vec<*mut sysctl_oid>, depth: usize) {
        if n.is_null() || depth > 64 {
            return;
        }
        // SAFETY: a member of a mapped list (caller's contract).
        let (l, r) = unsafe { ((*n).oid_link.rbe_link[1], (*n).oid_link.rbe_link[2]) };
        inorder(ptr_of(l), out, depth + 1);
        out.push(n);
        inorder(ptr_of(r), out, depth + 1);
    }
    // SAFETY: per the contract: an RB_HEAD is its root pointer.
    let root = unsafe { *(list as *const *mut sysctl_oid) };
    let mut out = Vec::new();
    inorder(ptr_of(root), &mut out, 0);
    out
}

/// `sysctl_find_oidname`: the member of `list` named `name`.
///
/// # Safety
/// As [`members`].
unsafe fn find_child(list: usize, name: &str) -> Option<*mut sysctl_oid> {
    // SAFETY: per the contract.
    unsafe { members(list) }
        .into_iter()
        // SAFETY: members are mapped oids with C-string names.
        .find(|&o| unsafe { cstr((*o).oid_name) } == name)
}

/// Lays the C tree of `list` out again from its members in number order:
/// balanced, each `rbe_link[0]` the parent with the rank bits of its
/// children.
///
/// # Safety
/// `list` and every oid in `by_number` are mapped and writable.
unsafe fn relink(list: usize, by_number: &BTreeMap<c_int, usize>) {
    /// Links `nodes` under `parent`; returns (subtree root, its rank).
    fn build(nodes: &[usize], parent: usize) -> (*mut sysctl_oid, i32) {
        if nodes.is_empty() {
            return (std::ptr::null_mut(), -1);
        }
        let mid = nodes.len() / 2;
        let me = nodes[mid] as *mut sysctl_oid;
        let (l, lr) = build(&nodes[..mid], me as usize);
        let (r, rr) = build(&nodes[mid + 1..], me as usize);
        let rank = 1 + lr.max(rr);
        let mut bits = 0;
        if rank - lr == 2 {
            bits |= RB_L;
        }
        if rank - rr == 2 {
            bits |= RB_R;
        }
        // SAFETY: every node is a mapped, writable oid (caller's contract).
        unsafe {
            (*me).oid_link.rbe_link = [(parent | bits) as *mut sysctl_oid, l, r];
        }
        (me, rank)
    }
    let nodes: Vec<usize> = by_number.values().copied().collect();
    let (root, _) = build(&nodes, 0);
    // SAFETY: per the contract: an RB_HEAD is its root pointer.
    unsafe { *(list as *mut *mut sysctl_oid) = root };
}

/// Appends every oid under the list at `list` (named `prefix`).
///
/// # Safety
/// As [`members`], recursively.
unsafe fn walk_list(list: usize, prefix: &str, depth: usize, out: &mut Vec<(String, c_int)>) {
    if depth > CTL_MAXNAME {
        return;
    }
    // SAFETY: per the contract.
    for o in unsafe { members(list) } {
        // SAFETY: a mapped member.
        let (name, number, kind) = unsafe { (cstr((*o).oid_name), (*o).oid_number, (*o).oid_kind) };
        let full = format!("{prefix}.{name}");
        out.push((full.clone(), number));
        if kind & CTLTYPE == CTLTYPE_NODE {
            // SAFETY: a node's oid_children (its first field) is its list.
            unsafe { walk_list(o as usize, &full, depth + 1, out) };
        }
    }
}

/// `SYSCTL_OUT` into a kernel buffer (`sysctl_old_kernel`).
unsafe extern "C" fn old_kernel(req: *mut SysctlReq, p: *const c_void, l: usize) -> c_int {
    // SAFETY: req is the request built by `read`/`write` below.
    let r = unsafe { &mut *req };
    let mut i = 0;
    if !r.oldptr.is_null() {
        i = l.min(r.oldlen.saturating_sub(r.oldidx));
        // SAFETY: oldptr has oldlen bytes; i fits after oldidx.
        unsafe {
            std::ptr::copy_nonoverlapping(p.cast::<u8>(), r.oldptr.cast::<u8>().add(r.oldidx), i)
        };
    }
    r.oldidx += l;
    if !r.oldptr.is_null() && i != l {
        return ENOMEM;
    }
    0
}

/// `SYSCTL_IN` from a kernel buffer (`sysctl_new_kernel`).
unsafe extern "C" fn new_kernel(req: *mut SysctlReq, p: *mut c_void, l: usize) -> c_int {
    // SAFETY: req is the request built by `write` below.
    let r = unsafe { &mut *req };
    if r.newptr.is_null() {
        return 0;
    }
    if r.newlen - r.newidx < l {
        return EINVAL;
    }
    // SAFETY: newptr has newlen bytes; l fits after newidx; p has l bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(r.newptr.cast::<u8>().add(r.newidx), p.cast::<u8>(), l)
    };
    r.newidx += l;
    0
}

/// `sysctl_handle_int(oidp, arg1, arg2, req)`.
pub(super) unsafe extern "C" fn kpi_sysctl_handle_int(
    _oidp: *mut sysctl_oid,
    arg1: *mut c_void,
    arg2: intmax_t,
    req: *mut SysctlReq,
) -> c_int {
    let tmpout: c_int = if arg1.is_null() {
        arg2 as c_int
    } else {
        // SAFETY: arg1 is the oid's int variable.
        unsafe { *arg1.cast::<c_int>() }
    };
    // SAFETY: req is a request built by the caller (sysctl(8) or ours).
    let (oldf, newf, newptr) = unsafe { ((*req).oldfunc, (*req).newfunc, (*req).newptr) };
    let Some(oldf) = oldf else { return EINVAL };
    // SAFETY: oldfunc with a valid source of 4 bytes.
    let e = unsafe { oldf(req, (&tmpout as *const c_int).cast(), 4) };
    if e != 0 || newptr.is_null() {
        return e;
    }
    match (arg1.is_null(), newf) {
        (true, _) | (_, None) => EPERM,
        // SAFETY: arg1 is the oid's int variable (4 bytes).
        (false, Some(nf)) => unsafe { nf(req, arg1, 4) },
    }
}

fn blank_req() -> SysctlReq {
    SysctlReq {
        td: std::ptr::null_mut(),
        lock: 0,
        oldptr: std::ptr::null_mut(),
        oldlen: 0,
        oldidx: 0,
        oldfunc: Some(old_kernel),
        newptr: std::ptr::null(),
        newlen: 0,
        newidx: 0,
        newfunc: Some(new_kernel),
        validlen: 0,
        flags: 0,
    }
}

/// Calls the oid's handler with `req` (under a guard: module code).
fn call_handler(o: &OidInfo, req: &mut SysctlReq) -> c_int {
    let oid = o.addr as *mut sysctl_oid;
    // SAFETY: o is a registered oid of the loaded module.
    let (h, a1, a2) = unsafe { ((*oid).oid_handler, (*oid).oid_arg1, (*oid).oid_arg2) };
    let Some(h) = h else { return EINVAL };
    let rp: *mut SysctlReq = req;
    let mut r = 0;
    let out = crate::ko::guarded(&mut || {
        // SAFETY: the handler's own oid and arguments, and a request whose
        // buffers outlive the call.
        r = unsafe { h(oid, a1, a2, rp.cast()) };
    });
    match out {
        Outcome::Returned => r,
        _ => super::ENXIO_PANICKED,
    }
}

fn int_oid(s: &Sysctls, name: &str) -> Result<OidInfo, c_int> {
    let o = s.find(name).ok_or(ENOENT)?;
    match o.kind & CTLTYPE {
        CTLTYPE_INT | CTLTYPE_UINT => Ok(o),
        _ => Err(EINVAL),
    }
}

/// Reads an integer sysctl.
pub fn read_int(s: &Sysctls, name: &str) -> Result<i64, c_int> {
    let o = int_oid(s, name)?;
    let mut v: c_int = 0;
    let mut req = blank_req();
    req.oldptr = (&mut v as *mut c_int).cast();
    req.oldlen = 4;
    match call_handler(&o, &mut req) {
        0 if o.kind & CTLTYPE == CTLTYPE_UINT => Ok(i64::from(v as u32)),
        0 => Ok(i64::from(v)),
        e => Err(e),
    }
}

/// Writes an integer sysctl (EPERM when it is read-only).
pub fn write_int(s: &Sysctls, name: &str, value: i64) -> Result<(), c_int> {
    let o = int_oid(s, name)?;
    if o.kind & CTLFLAG_WR == 0 {
        return Err(EPERM);
    }
    set_through_handler(&o, value)
}

/// `sysctl_load_tunable_by_oid`: an integer tunable's value from the
/// environment, written through the oid's handler (read-only ones too).
pub fn load_tunable(o: &OidInfo, value: &str) -> Result<(), String> {
    match o.kind & CTLTYPE {
        CTLTYPE_INT | CTLTYPE_UINT => {}
        _ => return Err("only integer tunables are emulated".into()),
    }
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("'{value}' is not an integer"))?;
    set_through_handler(o, v).map_err(|e| format!("error {e}"))
}

fn set_through_handler(o: &OidInfo, value: i64) -> Result<(), c_int> {
    let v = value as c_int;
    let mut req = blank_req();
    req.newptr = (&v as *const c_int).cast();
    req.newlen = 4;
    match call_handler(o, &mut req) {
        0 => Ok(()),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zeroed oid named `name` under the list at `parent`.
    fn oid(
        name: &'static std::ffi::CStr,
        parent: usize,
        number: c_int,
        kind: u32,
    ) -> Box<sysctl_oid> {
        // SAFETY: sysctl_oid is plain C data; all-zero is a valid value.
        let mut o: Box<sysctl_oid> = Box::new(unsafe { std::mem::zeroed() });
        o.oid_name = name.as_ptr();
        o.oid_parent = parent as *mut _;
        o.oid_number = number;
        o.oid_kind = kind;
        o.oid_refcnt = 1;
        o
    }

    /// Checks the C tree of `list`: a binary search tree by number whose
    /// parent links point back, with rank bits that give every missing
    /// child rank -1 (a valid rank-balanced layout). Returns the numbers
    /// in order.
    fn check_tree(list: usize) -> Vec<c_int> {
        fn visit(n: *mut sysctl_oid, up: usize, rank: i32, out: &mut Vec<c_int>) {
            if n.is_null() {
                assert_eq!(rank, -1, "a missing child has rank -1");
                return;
            }
            // SAFETY: members of the test's live list.
            let [p, l, r] = unsafe { (*n).oid_link.rbe_link };
            assert_eq!(p as usize & !(RB_L | RB_R), up, "parent link");
            let bits = p as usize & (RB_L | RB_R);
            let dl = if bits & RB_L != 0 { 2 } else { 1 };
            let dr = if bits & RB_R != 0 { 2 } else { 1 };
            visit(l, n as usize, rank - dl, out);
            // SAFETY: as above.
            out.push(unsafe { (*n).oid_number });
            visit(r, n as usize, rank - dr, out);
        }
        fn height(n: *mut sysctl_oid) -> i32 {
            if n.is_null() {
                return -1;
            }
            // SAFETY: as above.
            let [_, l, r] = unsafe { (*n).oid_link.rbe_link };
            1 + height(l).max(height(r))
        }
        // SAFETY: the test's list head.
        let root = unsafe { *(list as *const *mut sysctl_oid) };
        let mut out = Vec::new();
        visit(root, 0, height(root), &mut out);
        assert!(out.windows(2).all(|w| w[0] < w[1]), "ordered: {out:?}");
        out
    }

    #[test]
    fn register_links_orders_numbers_and_refuses_reused_leaves() {
        let s = Sysctls::default();
        let mut root = oid(c"geom", 0, 0, CTLTYPE_NODE);
        let r = &mut *root as *mut sysctl_oid as usize;
        s.add_root(r, "kern.geom");
        let names = [
            c"a", c"b", c"c", c"d", c"e", c"f", c"g", c"h", c"i", c"j", c"k",
        ];
        let mut oids: Vec<Box<sysctl_oid>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| oid(n, r, if i % 3 == 0 { 7 } else { -1 }, CTLTYPE_INT))
            .collect();
        let mut lines = Vec::new();
        for o in &mut oids {
            // SAFETY: live test oids under a live root.
            match unsafe { s.register(&mut **o) } {
                Ok(Registered::Linked(_, w)) => lines.extend(w),
                other => panic!("{other:?}"),
            }
        }
        // Fixed number 7 is taken after its first use: the next ones get
        // another number and the kernel's line.
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("OID number(7) is already in use for 'd'"));
        let nums = check_tree(r);
        assert_eq!(nums.len(), names.len());
        assert_eq!(nums[0], 7);
        assert_eq!(*nums.last().expect("numbers"), 0x7fff_ffff);
        // A second leaf "c": refused; a node of an existing name: shared.
        let mut again = oid(c"c", r, -1, CTLTYPE_INT);
        // SAFETY: as above.
        match unsafe { s.register(&mut *again) } {
            Ok(Registered::LeafReused(l)) => {
                assert_eq!(l, "sysctl_register_oid: can't re-use a leaf (kern.geom.c)!")
            }
            other => panic!("{other:?}"),
        }
        let mut node = oid(c"n", r, -1, CTLTYPE_NODE);
        let mut node2 = oid(c"n", r, -1, CTLTYPE_NODE);
        // SAFETY: as above.
        unsafe {
            assert!(matches!(s.register(&mut *node), Ok(Registered::Linked(..))));
            assert!(matches!(
                s.register(&mut *node2),
                Ok(Registered::SharedNode)
            ));
        }
        assert_eq!(node.oid_refcnt, 2);
        let leaf_in_node = &mut *node as *mut sysctl_oid as usize;
        let mut x = oid(c"x", leaf_in_node, -1, CTLTYPE_INT);
        // SAFETY: as above.
        unsafe { assert!(matches!(s.register(&mut *x), Ok(Registered::Linked(..)))) };
        assert_eq!(
            s.find("kern.geom.n.x").map(|o| o.addr),
            Some(&mut *x as *mut _ as usize)
        );
        assert!(s.find("kern.geom.c").is_some() && s.find("kern.geom.z").is_none());
        assert_eq!(check_tree(r).len(), names.len() + 1);
        s.unregister_all();
        assert!(check_tree(r).is_empty() && check_tree(leaf_in_node).is_empty());
        assert!(s.find("kern.geom.c").is_none());
    }
}
