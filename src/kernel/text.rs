//! Text helpers that never allocate where they must not (log lines, panic
//! messages) and never panic on what the kernel hands over (C strings).

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, CStr};
use core::fmt;

use crate::platform::{Errno, EINVAL, ENOMEM};

/// A fixed-size, stack-allocated text buffer. Writes past its end are
/// dropped (the text is truncated), never reported as errors, so formatting
/// into it cannot fail or allocate: usable in start, done and the panic
/// handler.
pub(crate) struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> LineBuf<N> {
    pub(crate) const fn new() -> Self {
        LineBuf {
            buf: [0; N],
            len: 0,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends `args`, in place (the buffer is not moved: callers on the
    /// kernel stack keep one copy of it, not two).
    pub(crate) fn write_args(&mut self, args: fmt::Arguments<'_>) {
        // Writing into a LineBuf never fails: it truncates instead.
        let _ = fmt::write(self, args);
    }
}

impl<const N: usize> fmt::Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        // Do not cut a UTF-8 sequence in half.
        while take > 0 && !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Whether the C string at `p` equals `s`. Compared in place, byte by byte:
/// no strlen, no copy (usable in done), and no byte read past the first
/// difference or the string's NUL.
///
/// # Safety
/// `p` points to a NUL-terminated string that stays readable for the call.
pub(crate) unsafe fn cstr_eq(p: *const c_char, s: &str) -> bool {
    let want = s.as_bytes();
    let mut i = 0;
    loop {
        // SAFETY: bytes 0..i of the string all matched `want` and none was
        // its NUL (else the loop ended), so byte i lies within the string or
        // is its NUL: readable per this function's contract.
        let c = unsafe { p.add(i).read() } as u8;
        match want.get(i) {
            Some(&w) if w == c && c != 0 => i += 1,
            Some(_) => return false,
            None => return c == 0,
        }
    }
}

/// Longest string [`with_cstr`] converts on the stack; longer ones go to the
/// heap.
const CSTR_STACK: usize = 128;

/// Calls `f` with a NUL-terminated copy of `s`.
///
/// Fails with EINVAL when `s` holds a NUL (C would see a shorter string) and
/// with ENOMEM when a long string cannot be copied.
pub(crate) fn with_cstr<R>(s: &str, f: impl FnOnce(*const c_char) -> R) -> Result<R, Errno> {
    let bytes = s.as_bytes();
    if bytes.contains(&0) {
        return Err(EINVAL);
    }
    if bytes.len() < CSTR_STACK {
        let mut buf = [0u8; CSTR_STACK];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(f(buf.as_ptr().cast()))
    } else {
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(bytes.len() + 1).map_err(|_| ENOMEM)?;
        v.extend_from_slice(bytes);
        v.push(0);
        Ok(f(v.as_ptr().cast()))
    }
}

/// Borrows a C string as `&str`; `None` for NULL or for bytes that are not
/// UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
pub(crate) unsafe fn cstr_as_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is non-NULL and, by this function's contract, NUL-terminated
    // and valid for 'a.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().ok()
}

/// Copies a C string (a geom or provider name) into a `String`, replacing
/// bytes that are not UTF-8 with U+FFFD. NULL gives an empty string, and so
/// does an allocation failure: the callers' signatures cannot report one, and
/// a name is never worth a panic.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn cstr_to_string(p: *const c_char) -> String {
    let mut s = String::new();
    if p.is_null() {
        return s;
    }
    // SAFETY: `p` is non-NULL and, by this function's contract,
    // NUL-terminated and valid for this call.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if s.try_reserve_exact(bytes.len()).is_err() {
        return s;
    }
    for chunk in bytes.utf8_chunks() {
        s.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            // Room may run out here only for invalid input; then the name is
            // cut short rather than risking an infallible allocation.
            if s.try_reserve(3).is_err() {
                break;
            }
            s.push(char::REPLACEMENT_CHARACTER);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn linebuf_truncates_on_char_boundary() {
        let mut b = LineBuf::<5>::new();
        write!(b, "abcé€").unwrap();
        assert_eq!(b.as_bytes(), "abcé".as_bytes());
        write!(b, "more").unwrap();
        assert_eq!(b.as_bytes(), "abcé".as_bytes());
    }

    #[test]
    fn linebuf_write_args_appends_in_place_and_truncates() {
        let mut b = LineBuf::<12>::new();
        b.write_args(format_args!("{} in {}", "da0", "mp0"));
        assert_eq!(b.as_bytes(), b"da0 in mp0");
        b.write_args(format_args!(": {}", 12345));
        assert_eq!(b.as_bytes(), b"da0 in mp0: ");
    }

    #[test]
    fn cstr_roundtrip() {
        let r = with_cstr("da0", |p| {
            // SAFETY: `p` is the NUL-terminated copy with_cstr made.
            unsafe { cstr_to_string(p) }
        });
        assert_eq!(r.unwrap(), "da0");
        let long = "x".repeat(300);
        let r = with_cstr(&long, |p| {
            // SAFETY: as above.
            unsafe { cstr_as_str(p) }.map(|s| s.len())
        });
        assert_eq!(r.unwrap(), Some(300));
        assert_eq!(with_cstr("a\0b", |_| ()), Err(EINVAL));
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { cstr_to_string(core::ptr::null()) }, "");
        let bad = b"a\xffb\0";
        // SAFETY: `bad` is NUL-terminated and lives for the call.
        assert_eq!(unsafe { cstr_to_string(bad.as_ptr().cast()) }, "a\u{fffd}b");
    }

    #[test]
    fn cstr_eq_compares_whole_strings() {
        let attr = b"GEOM::physpath\0";
        let eq = |name: &str| {
            // SAFETY: `attr` is NUL-terminated and outlives the call.
            unsafe { cstr_eq(attr.as_ptr().cast(), name) }
        };
        assert!(eq("GEOM::physpath"));
        assert!(!eq("GEOM::physpat"), "a prefix");
        assert!(!eq("GEOM::physpath2"), "longer");
        assert!(!eq("GEOM::ident"));
        assert!(!eq("GEOM::physpath\0"), "NUL in the name");
        assert!(!eq(""));
        let empty = b"\0";
        // SAFETY: `empty` is a NUL-terminated (empty) string.
        assert!(unsafe { cstr_eq(empty.as_ptr().cast(), "") });
    }
}
