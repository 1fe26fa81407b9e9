//! gctl requests ([`GctlReq`], the core's [`CtlReq`] over `struct gctl_req`)
//! and dumpconf output ([`SbufWriter`], `core::fmt::Write` over an sbuf).

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use freebsd_kpi as kpi;

use super::text::{with_cstr, LineBuf};
use crate::platform::{CtlReq, Errno, ENOMEM};

/// A pointer GEOM passes to a callback (a `struct gctl_req` to ctlreq, an
/// sbuf to dumpconf), valid for the duration of that one call.
///
/// The lifetime ties it (and every slice it hands out) to the callback that
/// received it: GEOM frees or reuses the object when the callback returns.
pub struct CallArg<'a, T> {
    ptr: NonNull<T>,
    _call: PhantomData<&'a mut T>,
}

impl<T> CallArg<'_, T> {
    /// # Safety
    /// `ptr` is the object GEOM passed to the running callback, and the
    /// value is dropped before that callback returns.
    pub unsafe fn new(ptr: NonNull<T>) -> Self {
        CallArg {
            ptr,
            _call: PhantomData,
        }
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

/// A gctl request for the duration of one ctlreq call.
pub type GctlReq<'a> = CallArg<'a, kpi::gctl_req>;

/// The sbuf GEOM passes to dumpconf, as a `fmt::Write` sink (`sbuf_bcat`).
pub type SbufWriter<'a> = CallArg<'a, kpi::sbuf>;

impl CtlReq for GctlReq<'_> {
    fn param(&self, name: &str) -> Option<&[u8]> {
        let mut len: i32 = 0;
        let p = with_cstr(name, |c| {
            // SAFETY: the request is live for 'a (see new()); `c` is a
            // NUL-terminated name valid for this call; `len` is writable.
            unsafe { kpi::gmr_ctl_param(self.as_ptr(), c, &mut len) }
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
        unsafe { kpi::gmr_ctl_error(self.as_ptr(), b.as_ptr().cast(), b.len()) }
    }

    fn has_error(&self) -> bool {
        // SAFETY: the request is live (see new()).
        unsafe { kpi::gmr_ctl_has_error(self.as_ptr()) != 0 }
    }

    fn set_output(&mut self, name: &str, text: &str) -> Result<(), Errno> {
        let mut value: Vec<u8> = Vec::new();
        if value.try_reserve_exact(text.len() + 1).is_err() {
            self.error(format_args!("Out of memory for the {} argument", name));
            return Err(ENOMEM);
        }
        value.extend_from_slice(text.as_bytes());
        value.push(0);
        let req = self.as_ptr();
        let r = with_cstr(name, |c| {
            // SAFETY: the request is live (see new()); `c` and `value` are
            // valid for the call; gctl_set_param copies `value`.
            unsafe { kpi::gmr_ctl_set_param(req, c, value.as_ptr().cast(), value.len()) }
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

impl fmt::Write for SbufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: the sbuf is live for the callback (see new()); `s` is
        // readable for the call and sbuf_bcat copies it. An sbuf that
        // overflows records the error itself (GEOM retries with a larger one).
        unsafe { kpi::gmr_sbuf_cat(self.as_ptr(), s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}
