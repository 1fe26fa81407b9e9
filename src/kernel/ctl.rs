//! gctl requests ([`GctlReq`], the core's [`CtlReq`] over `struct gctl_req`)
//! and dumpconf output ([`SbufWriter`], `core::fmt::Write` over an sbuf).

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use freebsd_kpi as kpi;

use super::text::{with_cstr, LineBuf};
use crate::platform::{CtlReq, Errno, ENOMEM};

/// A `struct gctl_req` for the duration of one ctlreq call.
///
/// The lifetime ties it (and every parameter slice it hands out) to the
/// callback that received the request: GEOM frees the request when the
/// callback returns.
pub struct GctlReq<'a> {
    req: NonNull<kpi::gctl_req>,
    _call: PhantomData<&'a mut kpi::gctl_req>,
}

impl GctlReq<'_> {
    /// # Safety
    /// `req` is the request GEOM passed to the running ctlreq callback, and
    /// the value is dropped before that callback returns.
    pub unsafe fn new(req: NonNull<kpi::gctl_req>) -> Self {
        GctlReq {
            req,
            _call: PhantomData,
        }
    }
}

impl CtlReq for GctlReq<'_> {
    fn param(&self, name: &str) -> Option<&[u8]> {
        let mut len: i32 = 0;
        let p = with_cstr(name, |c| {
            // SAFETY: the request is live for 'a (see new()); `c` is a
            // NUL-terminated name valid for this call; `len` is writable.
            unsafe { kpi::gmr_ctl_param(self.req.as_ptr(), c, &mut len) }
        })
        .ok()?;
        let len = usize::try_from(len).ok()?;
        if p.is_null() {
            return None;
        }
        // SAFETY: gctl_get_param returned the kernel copy of the parameter's
        // value, `len` bytes long, owned by the request, which outlives &self
        // (the request lives for the whole callback, see new()); nothing
        // writes it while the core reads.
        Some(unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) })
    }

    fn error(&mut self, msg: fmt::Arguments<'_>) {
        let mut line = LineBuf::<256>::new();
        line.write_args(msg);
        let b = line.as_bytes();
        // SAFETY: the request is live (see new()); `b` is readable for the
        // call and gctl_error copies it ("%.*s").
        unsafe { kpi::gmr_ctl_error(self.req.as_ptr(), b.as_ptr().cast(), b.len()) }
    }

    fn has_error(&self) -> bool {
        // SAFETY: the request is live (see new()).
        unsafe { kpi::gmr_ctl_has_error(self.req.as_ptr()) != 0 }
    }

    fn set_output(&mut self, name: &str, text: &str) -> Result<(), Errno> {
        let mut value: Vec<u8> = Vec::new();
        if value.try_reserve_exact(text.len() + 1).is_err() {
            self.error(format_args!("Out of memory for the {} argument", name));
            return Err(ENOMEM);
        }
        value.extend_from_slice(text.as_bytes());
        value.push(0);
        let req = self.req;
        let r = with_cstr(name, |c| {
            // SAFETY: the request is live (see new()); `c` and `value` are
            // valid for the call; gctl_set_param copies `value`.
            unsafe { kpi::gmr_ctl_set_param(req.as_ptr(), c, value.as_ptr().cast(), value.len()) }
        });
        match r {
            Ok(0) => Ok(()),
            Ok(e) => Err(e),
            Err(e) => {
                self.error(format_args!("Invalid argument name {:?}", name));
                Err(e)
            }
        }
    }
}

/// The sbuf GEOM passes to dumpconf, as a `fmt::Write` sink (`sbuf_bcat`).
pub struct SbufWriter<'a> {
    sb: NonNull<kpi::sbuf>,
    _call: PhantomData<&'a mut kpi::sbuf>,
}

impl SbufWriter<'_> {
    /// # Safety
    /// `sb` is the sbuf GEOM passed to the running dumpconf callback, and the
    /// value is dropped before that callback returns.
    pub unsafe fn new(sb: NonNull<kpi::sbuf>) -> Self {
        SbufWriter {
            sb,
            _call: PhantomData,
        }
    }
}

impl fmt::Write for SbufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: the sbuf is live for the callback (see new()); `s` is
        // readable for the call and sbuf_bcat copies it. An sbuf that
        // overflows records the error itself (GEOM retries with a larger one).
        unsafe { kpi::gmr_sbuf_cat(self.sb.as_ptr(), s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}
