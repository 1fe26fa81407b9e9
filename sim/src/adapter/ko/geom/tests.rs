//! The GEOM side's own checks, without a module: FreeBSD's rules the
//! emulation enforces on the C side (g_modevent's version check, bios it
//! never handed out, gctl parameter access, sbufs).

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use crate::ko::gctl::{self, GctlReq, Sbuf};
use crate::ko::{class, enter, kstructs as k, KoKernel};
use crate::{Sim, SimCtlReq};

fn with_instance(f: impl FnOnce(&Sim, &Arc<KoKernel>)) {
    let sim = Sim::deterministic(1);
    let kk = Arc::new(KoKernel::new(&sim.plat(), None));
    enter(&kk, &sim.plat(), || f(&sim, &kk));
}

#[test]
fn modevent_refuses_another_geom_version() {
    with_instance(|sim, _| {
        // SAFETY: g_class is plain C data.
        let mut mp: Box<k::g_class> = Box::new(unsafe { std::mem::zeroed() });
        mp.name = c"FAKE".as_ptr();
        mp.version = k::G_VERSION + 1;
        let data = &mut *mp as *mut k::g_class as *mut c_void;
        let e = class::g_modevent(ptr::null_mut(), k::MOD_LOAD as c_int, data);
        assert_eq!(e, crate::EINVAL);
        let want = format!("GEOM class FAKE has Wrong version {:x}", k::G_VERSION + 1);
        assert!(sim.log_lines().contains(&want), "{:?}", sim.log_lines());
        mp.version = k::G_VERSION;
        let e = class::g_modevent(ptr::null_mut(), k::MOD_SHUTDOWN as c_int, data);
        assert_eq!(e, crate::EOPNOTSUPP);
    });
}

#[test]
fn bios_not_handed_out_are_violations() {
    with_instance(|sim, _| {
        // SAFETY: bio is plain C data.
        let mut bp: Box<k::bio> = Box::new(unsafe { std::mem::zeroed() });
        let b = &mut *bp as *mut k::bio;
        super::kpi::g_destroy_bio(b);
        super::kpi::g_io_deliver(b, 0);
        super::kpi::g_std_done(b);
        assert!(super::kpi::g_clone_bio(b).is_null());
        let v = sim.violations();
        assert_eq!(v.iter().filter(|v| v.rule == "once").count(), 3, "{v:?}");
        assert!(v
            .iter()
            .any(|v| v.rule == "io" && v.message.contains("g_clone_bio")));
        drop(sim.plat().take_violations());
    });
}

fn request() -> SimCtlReq {
    SimCtlReq::geom_cmd("MULTIPATH", "getactive", &[], &["mp0"], true)
}

/// Hands the kernel's copy of [`request`] to `f`, as a class's ctlreq
/// gets it, then returns the request with what `finish` copied back.
fn round_trip(f: impl FnOnce(*mut k::gctl_req)) -> SimCtlReq {
    let mut back = request();
    with_instance(|_, kk| {
        let sreq = request();
        let mut g = GctlReq::from_ctl(&kk.geom, &sreq);
        f(g.as_ptr());
        g.finish(&kk.geom, &mut back);
    });
    back
}

#[test]
fn gctl_req_is_laid_out_as_the_kernel_hands_it() {
    let back = round_trip(|r| {
        // SAFETY: a request GctlReq built.
        let (version, narg) = unsafe { ((*r).version, (*r).narg) };
        assert_eq!(version, k::GCTL_VERSION);
        assert_eq!(narg, 6, "class verb version nargs arg0 output");
        let mut len: c_int = 0;
        let verb = gctl::gctl_get_param(r, c"verb".as_ptr(), &mut len);
        assert_eq!(len, 10, "\"getactive\" and its NUL");
        // SAFETY: the kernel copy of an ASCII argument.
        let s = unsafe { std::ffi::CStr::from_ptr(verb as *const std::ffi::c_char) };
        assert_eq!(s.to_str(), Ok("getactive"));
        assert!(gctl::gctl_get_param(r, c"nosuch".as_ptr(), &mut len).is_null());
        // SAFETY: as above.
        let a = unsafe { std::slice::from_raw_parts((*r).arg, 6) };
        let kernel = (k::GCTL_PARAM_NAMEKERNEL | k::GCTL_PARAM_VALUEKERNEL) as c_int;
        assert!(a.iter().all(|a| a.flag & kernel == kernel));
        assert_eq!(a[0].nlen, 6, "\"class\" and its NUL");
        assert_eq!(
            a[5].flag & k::GCTL_PARAM_RW as c_int,
            k::GCTL_PARAM_RW as c_int
        );
    });
    assert_eq!(back.error_text(), None);
}

#[test]
fn gctl_set_param_answers_as_geom_ctl_c() {
    let back = round_trip(|r| {
        let put = |name: &std::ffi::CStr, v: &[u8]| {
            gctl::gctl_set_param(
                r,
                name.as_ptr(),
                v.as_ptr() as *const c_void,
                v.len() as c_int,
            )
        };
        assert_eq!(put(c"verb", b"x\0"), crate::EPERM);
        assert_eq!(put(c"nosuch", b"x\0"), crate::EINVAL);
        assert_eq!(put(c"output", &vec![b'a'; 5000]), 28, "ENOSPC, truncated");
        assert_eq!(put(c"output", b"da1\n\0"), 0);
        let v = b"x\0";
        gctl::gctl_set_param_err(r, c"verb".as_ptr(), v.as_ptr() as *const c_void, 2);
        gctl::gctl_set_param_err(r, c"nosuch".as_ptr(), v.as_ptr() as *const c_void, 2);
        // SAFETY: a request GctlReq built.
        assert_eq!(unsafe { (*r).nerror }, crate::EINVAL);
    });
    assert_eq!(
        back.error_text(),
        Some("No write access verb argument"),
        "only the first error is kept"
    );
}

#[test]
fn gctl_output_comes_back() {
    let back = round_trip(|r| {
        let v = b"da1\n\0";
        let e = gctl::gctl_set_param(r, c"output".as_ptr(), v.as_ptr() as *const c_void, 5);
        assert_eq!(e, 0);
    });
    assert_eq!(back.text("output").as_deref(), Some("da1\n"));
}

#[test]
fn sbuf_bcat_extends_and_refuses_foreign_sbufs() {
    with_instance(|sim, kk| {
        let s = Sbuf::new(&kk.geom);
        let chunk = [b'x'; 100];
        for _ in 0..10 {
            assert_eq!(
                gctl::sbuf_bcat(s.as_ptr(), chunk.as_ptr() as *const c_void, 100),
                0
            );
        }
        assert_eq!(s.text().len(), 1000);
        s.free(&kk.geom);
        // SAFETY: sbuf is plain C data.
        let mut other: Box<k::sbuf> = Box::new(unsafe { std::mem::zeroed() });
        let e = gctl::sbuf_bcat(&mut *other, chunk.as_ptr() as *const c_void, 1);
        assert_eq!(e, -1);
        assert!(sim.has_violation("class"));
        drop(sim.plat().take_violations());
    });
}
