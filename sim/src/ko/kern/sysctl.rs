//! SYSCTLs of the loaded module: the oids of its `set_sysctl_set`, named
//! by walking their parents up to a node the emulated kernel owns
//! (`kern.geom`), read and written through their handlers as `sysctl(8)`
//! would, with `sysctl_handle_int` as `kern_sysctl.c` has it.

use std::ffi::{c_int, c_void};
use std::sync::Mutex;

use crate::ko::kstructs::{intmax_t, sysctl_oid, sysctl_req};
use crate::ko::Outcome;
use crate::util::lock;

use super::{malloc::cstr, EINVAL, ENOENT, ENOMEM, EPERM};

/// `CTLTYPE` mask and the types handled here.
const CTLTYPE: u32 = 0xf;
pub const CTLTYPE_INT: u32 = 2;
pub const CTLTYPE_UINT: u32 = 6;
const CTLFLAG_WR: u32 = 0x4000_0000;
/// The default value comes from the kernel environment (loader.conf).
const CTLFLAG_TUN: u32 = 0x0008_0000;
const CTLFLAG_NOFETCH: u32 = 0x0000_1000;
const OID_AUTO: c_int = -1;
const CTL_AUTO_START: c_int = 0x100;

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

/// One registered oid.
#[derive(Clone, Debug)]
pub struct OidInfo {
    pub addr: usize,
    /// The full dotted name (`kern.geom.multipath.debug`).
    pub name: String,
    pub kind: u32,
}

#[derive(Default)]
pub struct Sysctls {
    /// Nodes of the emulated kernel: (address of the oid, full name).
    roots: Mutex<Vec<(usize, String)>>,
    oids: Mutex<Vec<OidInfo>>,
    next_auto: Mutex<c_int>,
    /// The kernel environment's tunables (`kenv`, loader.conf).
    tunables: Mutex<Vec<(String, String)>>,
}

impl Sysctls {
    /// Declares a node the kernel owns (`sysctl___kern_geom`).
    pub fn add_root(&self, oid: usize, name: &str) {
        lock(&self.roots).push((oid, name.to_string()));
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

    /// `sysctl_register_oid`: numbers an `OID_AUTO` oid and records it.
    ///
    /// # Safety
    /// `oid` points to one of the module's `struct sysctl_oid`s, whose
    /// parents are the module's or a root's.
    pub unsafe fn register(&self, oid: *mut sysctl_oid) -> Result<OidInfo, String> {
        // SAFETY: per the contract.
        let name = unsafe { self.full_name(oid, 0)? };
        // SAFETY: per the contract.
        let kind = unsafe {
            if (*oid).oid_number == OID_AUTO {
                let mut n = lock(&self.next_auto);
                *n = (*n).max(CTL_AUTO_START) + 1;
                (*oid).oid_number = *n;
            }
            (*oid).oid_kind
        };
        let info = OidInfo {
            addr: oid as usize,
            name,
            kind,
        };
        lock(&self.oids).push(info.clone());
        Ok(info)
    }

    /// The oid's full name, from its parents.
    ///
    /// # Safety
    /// As [`Sysctls::register`].
    unsafe fn full_name(&self, oid: *const sysctl_oid, depth: u32) -> Result<String, String> {
        if let Some((_, n)) = lock(&self.roots).iter().find(|r| r.0 == oid as usize) {
            return Ok(n.clone());
        }
        // SAFETY: per the contract.
        let (parent, leaf) = unsafe { ((*oid).oid_parent, cstr((*oid).oid_name)) };
        if parent.is_null() || depth > 16 {
            return Err(format!("sysctl {leaf}: no parent the kernel knows"));
        }
        // oid_children is the first field: the parent list is the parent oid.
        // SAFETY: per the contract (a module or root oid).
        let up = unsafe { self.full_name(parent.cast(), depth + 1)? };
        Ok(format!("{up}.{leaf}"))
    }

    /// `sysctl_unregister_oid` of every oid (unload).
    pub fn unregister_all(&self) -> Vec<OidInfo> {
        std::mem::take(&mut *lock(&self.oids))
    }

    pub fn find(&self, name: &str) -> Option<OidInfo> {
        lock(&self.oids).iter().find(|o| o.name == name).cloned()
    }

    pub fn all(&self) -> Vec<OidInfo> {
        lock(&self.oids).clone()
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
