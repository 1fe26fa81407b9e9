//! gctl requests and sbufs for the loaded module: a real `struct gctl_req`
//! laid out as the kernel's `geom_ctl.c` hands it to a class after copying
//! in what geom(8) sent, the `gctl_*` functions the module imports, and
//! `sbuf_bcat` on the sbufs this emulation creates (dumpconf, gctl errors).
//!
//! geom(8) (libgeom's `gctl_ro_param`/`gctl_rw_param`) sends: `class` and
//! `verb` as ASCII (`GCTL_PARAM_ASCII`, length counting the NUL), `version`
//! as a u32, each boolean option as an int, `nargs` as an int, `arg0..` as
//! ASCII, and for commands without a userland handler a read-write
//! `output` buffer. The kernel copies names and values in and marks them
//! `GCTL_PARAM_NAMEKERNEL | GCTL_PARAM_VALUEKERNEL`.

use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;

use geom_multipath_rs::platform::CtlReq;

use crate::ko;
use crate::sim::SimPlatform;
use crate::violation::rule;

use super::geom::{c_string, str_of, GeomState};
use super::kstructs as k;

/// Size of the error buffer geom(8) gives the kernel (`req->lerror`).
const LERROR: usize = 2048;

/// The most `argN` parameters looked for.
const MAX_ARGS: usize = 256;

/// Where a zero-length value points: the kernel leaves `kvalue` at the
/// (non-NULL) userland address then.
static EMPTY: u8 = 0;

/// Boolean options geom(8) may send the MULTIPATH class.
const OPTIONS: &[&str] = &["active_active", "active_passive", "active_read"];

/// One argument: its name and (kernel copy of the) value.
struct Arg {
    name: CString,
    value: Vec<u8>,
    flag: c_int,
}

/// A `struct gctl_req` and everything it points to.
pub struct GctlReq {
    req: Box<k::gctl_req>,
    args: Vec<k::gctl_req_arg>,
    owned: Vec<Arg>,
    error: Vec<u8>,
    serror: Sbuf,
}

impl GctlReq {
    /// The request geom(8) sends for `req` (a simulator request), read
    /// through the parameter names geom(8) uses for MULTIPATH.
    pub fn from_ctl(geom: &GeomState, req: &dyn CtlReq) -> GctlReq {
        let mut owned = Vec::new();
        let ascii = k::GCTL_PARAM_RD as c_int | k::GCTL_PARAM_ASCII as c_int;
        let ro = k::GCTL_PARAM_RD as c_int;
        let mut add = |name: &str, flag: c_int| {
            if let Some(v) = req.param(name) {
                owned.push(Arg {
                    name: c_string(name),
                    value: v.to_vec(),
                    flag,
                });
            }
        };
        add("class", ascii);
        add("verb", ascii);
        add("version", ro);
        for o in OPTIONS {
            add(o, ro);
        }
        add("nargs", ro);
        // Every argN sent, whatever nargs says (a malformed nargs is the
        // class's to refuse). A string geom(8) sent is ASCII; bytes it
        // could not have sent (no NUL) arrive raw, for the class to judge.
        for i in 0..MAX_ARGS {
            let name = format!("arg{i}");
            let Some(v) = req.param(&name) else { break };
            add(&name, if v.last() == Some(&0) { ascii } else { ro });
        }
        add("output", k::GCTL_PARAM_RW as c_int);
        GctlReq::build(geom, owned)
    }

    fn build(geom: &GeomState, mut owned: Vec<Arg>) -> GctlReq {
        let kernel = (k::GCTL_PARAM_NAMEKERNEL | k::GCTL_PARAM_VALUEKERNEL) as c_int;
        let args: Vec<k::gctl_req_arg> = owned
            .iter_mut()
            .map(|a| k::gctl_req_arg {
                nlen: a.name.as_bytes_with_nul().len() as k::u_int,
                name: a.name.as_ptr() as *mut c_char,
                offset: 0,
                flag: a.flag | kernel,
                len: a.value.len() as c_int,
                value: ptr::null_mut(),
                kvalue: if a.value.is_empty() {
                    &EMPTY as *const u8 as *mut c_void
                } else {
                    a.value.as_mut_ptr() as *mut c_void
                },
            })
            .collect();
        let mut r = GctlReq {
            // SAFETY: gctl_req is plain C data; zero is valid.
            req: Box::new(unsafe { std::mem::zeroed() }),
            args,
            owned,
            error: vec![0; LERROR],
            serror: Sbuf::new(geom),
        };
        r.req.version = k::GCTL_VERSION;
        r.req.narg = r.args.len() as k::u_int;
        r.req.arg = r.args.as_mut_ptr();
        r.req.lerror = LERROR as k::u_int;
        r.req.error = r.error.as_mut_ptr() as *mut c_char;
        r.req.serror = r.serror.as_ptr();
        r
    }

    pub fn as_ptr(&mut self) -> *mut k::gctl_req {
        &mut *self.req
    }

    /// The parameters as the class sees them, in order: (name, `flag`,
    /// `len`, the kernel copy of the value).
    pub fn params(&self) -> Vec<(String, c_int, c_int, Vec<u8>)> {
        self.owned
            .iter()
            .zip(&self.args)
            .map(|(a, ka)| {
                (
                    a.name.to_string_lossy().into_owned(),
                    ka.flag,
                    ka.len,
                    a.value.clone(),
                )
            })
            .collect()
    }

    /// The verb as the kernel passes it to `ctlreq` (its kernel copy).
    pub fn verb(&self) -> *const c_char {
        self.owned
            .iter()
            .zip(&self.args)
            .find(|(a, _)| a.name.as_bytes() == b"verb")
            .map_or(ptr::null(), |(_, ka)| ka.kvalue as *const c_char)
    }

    /// Copies the outcome back (`gctl_copyout` and the error text): the
    /// first error, else every changed read-write parameter.
    pub fn finish(self, geom: &GeomState, req: &mut dyn CtlReq) {
        if self.req.nerror != 0 {
            let end = self.error.iter().position(|&b| b == 0).unwrap_or(0);
            let text = String::from_utf8_lossy(&self.error[..end]).into_owned();
            req.error(format_args!("{text}"));
        } else {
            for (a, ka) in self.owned.iter().zip(&self.args) {
                if ka.flag & k::GCTL_PARAM_CHANGED as c_int == 0 {
                    continue;
                }
                let end = a
                    .value
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(a.value.len());
                let text = String::from_utf8_lossy(&a.value[..end]).into_owned();
                let _ = req.set_output(&a.name.to_string_lossy(), &text);
            }
        }
        self.serror.free(geom);
    }
}

/// An auto-extending `struct sbuf` (as `sbuf_new_auto()`), which the
/// module fills through `sbuf_bcat`.
pub struct Sbuf {
    sb: *mut k::sbuf,
}

impl Sbuf {
    pub fn new(geom: &GeomState) -> Sbuf {
        let buf: Box<[u8]> = vec![0u8; 256].into_boxed_slice();
        let size = buf.len();
        let s = k::sbuf {
            s_buf: Box::into_raw(buf) as *mut c_char,
            s_drain_func: None,
            s_drain_arg: ptr::null_mut(),
            s_error: 0,
            s_size: size as isize,
            s_len: 0,
            s_flags: (k::SBUF_AUTOEXTEND | k::SBUF_DYNAMIC | k::SBUF_DYNSTRUCT) as c_int,
            s_sect_len: 0,
            s_rec_off: 0,
        };
        let sb = Box::into_raw(Box::new(s));
        geom.lock().sbufs.insert(sb as usize);
        Sbuf { sb }
    }

    pub fn as_ptr(&self) -> *mut k::sbuf {
        self.sb
    }

    /// The bytes written so far.
    pub fn text(&self) -> String {
        // SAFETY: `sb` is ours and `s_buf` holds `s_len` written bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((*self.sb).s_buf as *const u8, (*self.sb).s_len as usize)
        };
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// `sbuf_delete`.
    pub fn free(self, geom: &GeomState) {
        geom.lock().sbufs.remove(&(self.sb as usize));
        // SAFETY: both allocations were made in `new`/`grow` and are freed
        // once, here.
        unsafe {
            let s = Box::from_raw(self.sb);
            free_buf(s.s_buf, s.s_size as usize);
        }
    }
}

/// Frees an sbuf's buffer.
///
/// # Safety
/// `p` is a `Box<[u8]>` of `len` bytes made by this file.
unsafe fn free_buf(p: *mut c_char, len: usize) {
    // SAFETY: per the contract.
    unsafe {
        drop(Box::from_raw(ptr::slice_from_raw_parts_mut(
            p as *mut u8,
            len,
        )))
    };
}

/// `sbuf_bcat(s, buf, len)`.
pub(crate) extern "C" fn sbuf_bcat(s: *mut k::sbuf, buf: *const c_void, len: usize) -> c_int {
    let kk = ko::current();
    if !kk.geom.lock().sbufs.contains(&(s as usize)) {
        ko::current_plat().violation(
            rule::CLASS,
            format!("sbuf_bcat({s:p}): not an sbuf GEOM handed to the module"),
        );
        return -1;
    }
    // SAFETY: `s` is one of our sbufs (checked); the module passes `len`
    // readable bytes at `buf`.
    unsafe {
        if (*s).s_error != 0 {
            return -1;
        }
        let need = (*s).s_len as usize + len;
        if need > (*s).s_size as usize {
            grow(s, need);
        }
        ptr::copy_nonoverlapping(
            buf as *const u8,
            ((*s).s_buf as *mut u8).add((*s).s_len as usize),
            len,
        );
        (*s).s_len += len as isize;
    }
    0
}

/// Doubles an sbuf's buffer until `need` bytes fit.
///
/// # Safety
/// `s` is one of this file's sbufs.
unsafe fn grow(s: *mut k::sbuf, need: usize) {
    // SAFETY: per the contract; the old buffer is copied and freed once.
    unsafe {
        let mut size = (*s).s_size as usize;
        while size < need {
            size *= 2;
        }
        let mut nb = vec![0u8; size].into_boxed_slice();
        ptr::copy_nonoverlapping(
            (*s).s_buf as *const u8,
            nb.as_mut_ptr(),
            (*s).s_len as usize,
        );
        free_buf((*s).s_buf, (*s).s_size as usize);
        (*s).s_buf = Box::into_raw(nb) as *mut c_char;
        (*s).s_size = size as isize;
    }
}

/// The arguments of a request as a slice.
///
/// # Safety
/// `req` is a request built by [`GctlReq`].
unsafe fn args<'a>(req: *mut k::gctl_req) -> &'a mut [k::gctl_req_arg] {
    // SAFETY: per the contract `arg` holds `narg` entries.
    unsafe {
        if (*req).arg.is_null() {
            return &mut [];
        }
        std::slice::from_raw_parts_mut((*req).arg, (*req).narg as usize)
    }
}

/// The argument named `name`.
///
/// # Safety
/// As [`args`]; `name` is a C string.
unsafe fn find<'a>(req: *mut k::gctl_req, name: *const c_char) -> Option<&'a mut k::gctl_req_arg> {
    // SAFETY: per the contract; argument names are NUL-terminated.
    unsafe {
        let name = std::ffi::CStr::from_ptr(name);
        args(req)
            .iter_mut()
            .find(|a| std::ffi::CStr::from_ptr(a.name) == name)
    }
}

fn bad_req(req: *mut k::gctl_req, what: &str) -> bool {
    if req.is_null() {
        ko::current_plat().violation(rule::CLASS, format!("{what} with a NULL request"));
        return true;
    }
    false
}

/// `gctl_get_param(req, name, &len)`: the kernel copy of a readable
/// argument.
pub(crate) extern "C" fn gctl_get_param(
    req: *mut k::gctl_req,
    name: *const c_char,
    len: *mut c_int,
) -> *mut c_void {
    if bad_req(req, "gctl_get_param") || name.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `req` is the request the module was called with.
    let Some(a) = (unsafe { find(req, name) }).filter(|a| a.flag & k::GCTL_PARAM_RD as c_int != 0)
    else {
        return ptr::null_mut();
    };
    if !len.is_null() {
        // SAFETY: the module's int.
        unsafe { *len = a.len };
    }
    a.kvalue
}

/// `gctl_set_param(req, name, ptr, len)`: 0, EPERM (not writable), ENOSPC
/// (too long: truncated) or EINVAL (missing).
pub(crate) extern "C" fn gctl_set_param(
    req: *mut k::gctl_req,
    name: *const c_char,
    data: *const c_void,
    len: c_int,
) -> c_int {
    if bad_req(req, "gctl_set_param") || name.is_null() {
        return crate::EINVAL;
    }
    // SAFETY: `req` is the request the module was called with.
    let Some(a) = (unsafe { find(req, name) }) else {
        return crate::EINVAL;
    };
    if a.flag & k::GCTL_PARAM_WR as c_int == 0 {
        return crate::EPERM;
    }
    a.flag |= k::GCTL_PARAM_CHANGED as c_int;
    let n = len.min(a.len).max(0) as usize;
    if n > 0 && !data.is_null() && !a.kvalue.is_null() {
        // SAFETY: `kvalue` has `a.len` bytes; the module passes `len`.
        unsafe { ptr::copy_nonoverlapping(data as *const u8, a.kvalue as *mut u8, n) };
    }
    if a.len < len {
        return ENOSPC;
    }
    0
}

const ENOSPC: c_int = 28;

/// `gctl_set_param_err`: `gctl_set_param` reporting its failure.
pub(crate) extern "C" fn gctl_set_param_err(
    req: *mut k::gctl_req,
    name: *const c_char,
    data: *const c_void,
    len: c_int,
) {
    // SAFETY: the module passes a C string.
    let n = unsafe { str_of(name) };
    let msg = match gctl_set_param(req, name, data, len) {
        e if e == crate::EPERM => format!("No write access {n} argument"),
        ENOSPC => format!("Wrong length {n} argument"),
        e if e == crate::EINVAL => format!("Missing {n} argument"),
        _ => return,
    };
    record_error(req, &msg);
}

/// `gctl_error`'s backend with C's `void *` types, for kprintf.c.
pub(crate) unsafe extern "C" fn gmr_emu_gctl_error_raw(req: *mut c_void, msg: *const c_char) {
    gmr_emu_gctl_error(req as *mut k::gctl_req, msg);
}

/// `gctl_error`'s backend (the C wrapper formats the message).
pub(crate) extern "C" fn gmr_emu_gctl_error(req: *mut k::gctl_req, msg: *const c_char) -> c_int {
    if req.is_null() {
        return crate::EINVAL;
    }
    // SAFETY: the C wrapper passes its formatted message.
    let msg = unsafe { str_of(msg) };
    record_error(req, &msg)
}

/// Keeps the first error: into `serror`, and copied out to `req->error`.
fn record_error(req: *mut k::gctl_req, msg: &str) -> c_int {
    if req.is_null() {
        return crate::EINVAL;
    }
    // SAFETY: a request built by GctlReq: `error` has `lerror` bytes.
    unsafe {
        if (*req).nerror != 0 {
            return (*req).nerror;
        }
        if !(*req).serror.is_null() {
            sbuf_bcat((*req).serror, msg.as_ptr() as *const c_void, msg.len());
        }
        let room = ((*req).lerror as usize).saturating_sub(1).min(msg.len());
        if !(*req).error.is_null() && (*req).lerror > 0 {
            ptr::copy_nonoverlapping(msg.as_ptr(), (*req).error as *mut u8, room);
            *(*req).error.add(room) = 0;
        }
        (*req).nerror = crate::EINVAL;
        (*req).nerror
    }
}

/// The gctl and sbuf functions above, for the symbol table.
pub fn symbols() -> Vec<(&'static str, crate::ko::Sym)> {
    funcs![
        "gctl_get_param" => gctl_get_param,
        "gctl_set_param" => gctl_set_param,
        "gctl_set_param_err" => gctl_set_param_err,
        "sbuf_bcat" => sbuf_bcat,
    ]
}

/// Runs the module's ctlreq for a simulator request (the class's
/// `ctlreq(req, mp, verb)` as `g_ctl_req` calls it) and copies the result
/// back.
pub(crate) fn run_ctlreq(
    geom: &GeomState,
    plat: &SimPlatform,
    mp: *mut k::g_class,
    req: &mut dyn CtlReq,
) {
    let mut g = GctlReq::from_ctl(geom, req);
    // SAFETY: `mp` is the module's registered class.
    match unsafe { (*mp).ctlreq } {
        None => {
            req.error(format_args!("Class takes no requests"));
        }
        Some(f) => {
            let verb = g.verb();
            geom.sync_out(plat);
            let r = g.as_ptr();
            // SAFETY: the module's ctlreq with a request laid out as the
            // kernel's, on the event thread with the topology lock held.
            let _ = super::class::guard(&mut || unsafe { f(r, mp, verb) });
            geom.sync(plat);
        }
    }
    g.finish(geom, req);
}
