//! gctl requests (`struct gctl_req`), built the way geom(8) builds them and
//! run the way `geom_ctl.c` runs them: the class's ctlreq on the event
//! thread with the topology lock held (g_waitfor_event).

use std::fmt;

use geom_multipath_rs::platform::{CtlReq, Errno, EINVAL};

use crate::sim::SimPlatform;

/// One parameter: raw bytes as userland sent them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlParam {
    pub name: String,
    pub value: Vec<u8>,
    /// A read-write parameter (`GCTL_PARAM_RW`), e.g. `output`.
    pub writable: bool,
}

/// A gctl request.
#[derive(Clone, Debug, Default)]
pub struct SimCtlReq {
    pub params: Vec<CtlParam>,
    error: Option<String>,
}

/// Size geom(8) gives the `output` buffer.
pub const OUTPUT_LEN: usize = 4096;

impl SimCtlReq {
    pub fn new() -> SimCtlReq {
        SimCtlReq::default()
    }

    /// An ASCII parameter (NUL added, as `gctl_ro_param(req, name, -1, s)`).
    pub fn add_str(&mut self, name: &str, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.add_raw(name, &v, false)
    }

    /// A 4-byte native-endian int.
    pub fn add_int(&mut self, name: &str, v: i32) -> &mut Self {
        self.add_raw(name, &v.to_ne_bytes(), false)
    }

    /// A 4-byte native-endian unsigned int.
    pub fn add_u32(&mut self, name: &str, v: u32) -> &mut Self {
        self.add_raw(name, &v.to_ne_bytes(), false)
    }

    /// Raw bytes: what the other `add_*` build on, and what
    /// malformed-request tests use directly.
    pub fn add_raw(&mut self, name: &str, v: &[u8], writable: bool) -> &mut Self {
        self.params.push(CtlParam {
            name: name.into(),
            value: v.to_vec(),
            writable,
        });
        self
    }

    /// A zeroed read-write buffer of `len` bytes.
    pub fn add_output(&mut self, name: &str, len: usize) -> &mut Self {
        self.add_raw(name, &vec![0; len], true)
    }

    /// A request as geom(8) sends it for `class verb`: `class`, `verb`,
    /// `version` (u32 = 1), the boolean options (always sent, 4-byte ints),
    /// `nargs`, `arg0..`, and a 4096-byte `output` when the command has no
    /// userland handler.
    pub fn geom_cmd(
        class: &str,
        verb: &str,
        bools: &[(&str, bool)],
        args: &[&str],
        with_output: bool,
    ) -> SimCtlReq {
        let mut r = SimCtlReq::new();
        r.add_str("class", class)
            .add_str("verb", verb)
            .add_u32("version", 1);
        for (name, on) in bools {
            r.add_int(name, i32::from(*on));
        }
        r.add_int("nargs", args.len() as i32);
        for (i, a) in args.iter().enumerate() {
            r.add_str(&format!("arg{i}"), a);
        }
        if with_output {
            r.add_output("output", OUTPUT_LEN);
        }
        r
    }

    /// The error text, if any.
    pub fn error_text(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// A string parameter's text up to its first NUL (e.g. `output`).
    pub fn text(&self, name: &str) -> Option<String> {
        self.params.iter().find(|p| p.name == name).map(|p| {
            let end = p
                .value
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(p.value.len());
            String::from_utf8_lossy(&p.value[..end]).into_owned()
        })
    }
}

impl CtlReq for SimCtlReq {
    fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_slice())
    }
    fn error(&mut self, msg: fmt::Arguments<'_>) {
        if self.error.is_none() {
            self.error = Some(msg.to_string());
        }
    }
    fn has_error(&self) -> bool {
        self.error.is_some()
    }
    fn set_output(&mut self, name: &str, text: &str) -> Result<(), Errno> {
        let err = match self.params.iter_mut().find(|p| p.name == name) {
            None => Some(format!("Missing {name} argument")),
            Some(p) if !p.writable => Some(format!("No write access {name} argument")),
            Some(p) if p.value.len() < text.len() + 1 => {
                Some(format!("Wrong length {name} argument"))
            }
            Some(p) => {
                p.value[..text.len()].copy_from_slice(text.as_bytes());
                p.value[text.len()] = 0;
                None
            }
        };
        match err {
            None => Ok(()),
            Some(e) => {
                self.error(format_args!("{e}"));
                Err(EINVAL)
            }
        }
    }
}

/// `gctl_get_asciiparam`: the text before the NUL; None when absent or
/// not NUL-terminated.
pub fn param_str(req: &dyn CtlReq, name: &str) -> Option<String> {
    let v = req.param(name)?;
    let end = v.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&v[..end]).into_owned())
}

/// A 4-byte int parameter.
pub fn param_int(req: &dyn CtlReq, name: &str) -> Option<i32> {
    let v = req.param(name)?;
    let b: [u8; 4] = v.try_into().ok()?;
    Some(i32::from_ne_bytes(b))
}

impl SimPlatform {
    /// Issues `req` (the GEOM_CTL ioctl): finds the class named by `class`,
    /// and runs its ctlreq on the event thread under the topology lock.
    /// Returns the request with its error and outputs filled in.
    pub fn gctl(&self, req: SimCtlReq) -> SimCtlReq {
        let r = self.g_waitfor_event(move |p| {
            let mut req = req;
            let Some(class) = param_str(&req, "class") else {
                req.error(format_args!("Class not found"));
                return req;
            };
            let Some(cid) = p.class_by_name(&class) else {
                req.error(format_args!("Class not found"));
                return req;
            };
            let Some(verb) = param_str(&req, "verb") else {
                req.error(format_args!("Verb missing"));
                return req;
            };
            let imp = p.topo().class.get(&cid).map(|c| c.imp.clone());
            if let Some(imp) = imp {
                imp.ctlreq(&p.bound(cid), &mut req, &verb);
                p.g_topology_assert("return from ctlreq");
            }
            req
        });
        r.unwrap_or_else(|| {
            let mut e = SimCtlReq::new();
            e.error(format_args!("the event thread did not run the request"));
            e
        })
    }

    /// `geom CLASS VERB [-opts] args...` for a kernel-handled command:
    /// Ok(output text) or Err(error text), as geom(8) prints them.
    pub fn gctl_run(
        &self,
        class: &str,
        verb: &str,
        bools: &[(&str, bool)],
        args: &[&str],
        with_output: bool,
    ) -> Result<String, String> {
        let req = self.gctl(SimCtlReq::geom_cmd(class, verb, bools, args, with_output));
        match req.error_text() {
            Some(e) => Err(e.to_string()),
            None => Ok(req.text("output").unwrap_or_default()),
        }
    }
}
