//! gctl verbs: what the stock `gmultipath` tool asks of the kernel.
//!
//! Every request is validated completely before anything changes, so an
//! error always means "nothing was done". Error texts are FreeBSD's where
//! scripts may match them; where FreeBSD is weak (a `/dev/` prefix refused
//! by fail/restore/remove, a missing `nargs` dereferenced, a long name
//! silently truncated) this code does the right thing and says so.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use crate::class::{Class, DestroyHow, Softc};
use crate::metadata::{validate_name, validate_uuid, Mode, NAME_MAX};
use crate::mp_log;
use crate::path::st;
use crate::platform::{CtlReq, Errno, Platform, EBUSY, EINPROGRESS};
use crate::taste::write_last_sector;

/// The error was recorded in the request; the verb stops.
struct Recorded;

type R<T> = Result<T, Recorded>;

fn fail<T>(req: &mut dyn CtlReq, msg: core::fmt::Arguments<'_>) -> R<T> {
    req.error(msg);
    Err(Recorded)
}

/// An ASCII parameter: `None` when absent; an error when it is not a
/// NUL-terminated UTF-8 string.
fn ascii(req: &mut dyn CtlReq, name: &str) -> R<Option<String>> {
    let Some(raw) = req.param(name) else {
        return Ok(None);
    };
    let text = match raw.split_last() {
        Some((0, body)) if !body.contains(&0) => {
            core::str::from_utf8(body).ok().map(ToString::to_string)
        }
        _ => None,
    };
    match text {
        Some(t) => Ok(Some(t)),
        None => fail(
            req,
            format_args!("Parameter {} is not a NUL-terminated UTF-8 string", name),
        ),
    }
}

/// A required ASCII parameter, with FreeBSD's "No 'argN' argument".
fn need_ascii(req: &mut dyn CtlReq, name: &str) -> R<String> {
    match ascii(req, name)? {
        Some(s) => Ok(s),
        None => fail(req, format_args!("No '{}' argument", name)),
    }
}

/// A 4-byte int parameter (`gctl_get_paraml`).
fn int(req: &mut dyn CtlReq, name: &str) -> R<Option<i32>> {
    let Some(raw) = req.param(name) else {
        return Ok(None);
    };
    match <[u8; 4]>::try_from(raw) {
        Ok(b) => Ok(Some(i32::from_ne_bytes(b))),
        Err(_) => fail(req, format_args!("Wrong length {} argument", name)),
    }
}

/// A boolean option: geom(8) always sends them as ints; absent means unset.
fn flag(req: &mut dyn CtlReq, name: &str) -> R<bool> {
    Ok(int(req, name)?.unwrap_or(0) != 0)
}

fn strip_dev(name: &str) -> &str {
    name.strip_prefix("/dev/").unwrap_or(name)
}

impl<P: Platform> Class<P> {
    /// `g_ctl_req_t` (topology held).
    pub fn ctlreq(&self, plat: &P, req: &mut dyn CtlReq, verb: &str) {
        plat.topology_assert();
        let _ = self.dispatch(plat, req, verb);
    }

    fn dispatch(&self, plat: &P, req: &mut dyn CtlReq, verb: &str) -> R<()> {
        match int(req, "version")? {
            None => return fail(req, format_args!("No 'version' argument")),
            Some(v) if v as u32 != crate::metadata::VERSION => {
                return fail(
                    req,
                    format_args!("Userland and kernel parts are out of sync"),
                )
            }
            Some(_) => {}
        }
        match verb {
            "create" => self.ctl_create(plat, req),
            "add" => self.ctl_add(plat, req),
            "remove" => self.ctl_remove(plat, req),
            "fail" => self.ctl_fail_restore(plat, req, true),
            "restore" => self.ctl_fail_restore(plat, req, false),
            "prefer" => self.ctl_prefer(plat, req),
            "configure" => self.ctl_configure(plat, req),
            "rotate" => self.ctl_rotate(plat, req),
            "getactive" => self.ctl_getactive(plat, req),
            "stop" => self.ctl_stop(plat, req),
            "destroy" => self.ctl_destroy(plat, req),
            _ => fail(req, format_args!("Unknown verb {}", verb)),
        }
    }

    /// arg0 as an existing geom; `invalid` picks FreeBSD's wording.
    fn geom_arg(&self, plat: &P, req: &mut dyn CtlReq, invalid: bool) -> R<Arc<Softc<P>>> {
        let name = need_ascii(req, "arg0")?;
        match self.find_geom(plat, &name) {
            Some(sc) => Ok(sc),
            None if invalid => fail(req, format_args!("Device {} is invalid", name)),
            None => fail(req, format_args!("Device {} not found", name)),
        }
    }

    /// `create NAME PROV...` (modern) or `create NAME PROV0 PROV1 UUID`
    /// (the original form): a device without an on-disk label.
    fn ctl_create(&self, plat: &P, req: &mut dyn CtlReq) -> R<()> {
        // FreeBSD looks at nargs before arg0: `gmultipath create` alone
        // says "wrong number of arguments.".
        let nargs = match int(req, "nargs")? {
            Some(n) => n,
            None => return fail(req, format_args!("No 'nargs' argument")),
        };
        if nargs < 2 {
            return fail(req, format_args!("wrong number of arguments."));
        }
        let name = need_ascii(req, "arg0")?;
        if let Err(e) = validate_name(&name) {
            return fail(req, format_args!("Invalid name {}: {}", name, e));
        }
        // A stopping device (going away, still open above) no longer owns
        // its name, as in FreeBSD's find_geom.
        if self.find_geom(plat, &name).is_some() {
            return fail(req, format_args!("Device {} already exist", name));
        }
        let mut args = Vec::new();
        for i in 1..nargs {
            args.push(need_ascii(req, &format!("arg{}", i))?);
        }
        let uuid = self.uuid_arg(plat, req, &mut args)?;
        let mut provs: Vec<(String, P::Provider)> = Vec::new();
        for a in &args {
            let pname = strip_dev(a);
            let Some(pp) = plat.provider_by_name(pname) else {
                return fail(req, format_args!("Provider {} is invalid", pname));
            };
            if provs.iter().any(|(_, q)| *q == pp) {
                return fail(req, format_args!("provider {} is already there", pname));
            }
            if let Some(&(_, p0)) = provs.first() {
                let (s0, s1) = (plat.provider_mediasize(p0), plat.provider_mediasize(pp));
                if s0 != s1 {
                    return fail(
                        req,
                        format_args!("Providers size mismatch {} != {}", s0, s1),
                    );
                }
                let (z0, z1) = (plat.provider_sectorsize(p0), plat.provider_sectorsize(pp));
                if z0 != z1 {
                    return fail(
                        req,
                        format_args!("Providers sectorsize mismatch {} != {}", z0, z1),
                    );
                }
            }
            provs.push((pname.to_string(), pp));
        }
        let mode = Mode::from_flags(flag(req, "active_active")?, flag(req, "active_read")?);
        let Some(&(_, p0)) = provs.first() else {
            return fail(req, format_args!("wrong number of arguments."));
        };
        let (size, secsize) = (plat.provider_mediasize(p0), plat.provider_sectorsize(p0));
        let sc = match self.create_geom(plat, &name, &uuid, mode, size, secsize) {
            Ok(sc) => sc,
            Err(_) => {
                return fail(
                    req,
                    // FreeBSD's text ends in a newline.
                    format_args!("GEOM_MULTIPATH: cannot create geom {}/{}\n", name, uuid),
                );
            }
        };
        for (_, pp) in &provs {
            if let Err(e) = sc.add_disk(plat, *pp) {
                let _ = sc.destroy(plat, DestroyHow::Polite);
                return fail(req, format_args!("Provider addition error: {}", e));
            }
        }
        if let Some(pp) = sc.provider() {
            plat.provider_announce(pp);
        }
        Ok(())
    }

    /// The original `create` took a uuid as its last argument. It is taken
    /// as one when no provider has that name and it has the uuid shape.
    fn uuid_arg(&self, plat: &P, req: &mut dyn CtlReq, args: &mut Vec<String>) -> R<String> {
        let Some(last) = args.last() else {
            return Ok(String::new());
        };
        if args.len() < 2 || plat.provider_by_name(strip_dev(last)).is_some() {
            return Ok(String::new());
        }
        // A uuid, or something meant as one (it starts like one): an
        // administrator who mistyped it should hear that, not "Provider
        // ... is invalid". Provider names like "my-disk-a-b" are left alone.
        let hex8 = last.len() > 8
            && last.as_bytes()[..8].iter().all(u8::is_ascii_hexdigit)
            && last.as_bytes()[8] == b'-';
        if last.len() != crate::metadata::UUID_LEN && !hex8 {
            return Ok(String::new());
        }
        if validate_uuid(last).is_err() {
            return fail(req, format_args!("Malformed uuid argument"));
        }
        // Two devices with one uuid would let taste mix their LUNs.
        if let Some(other) = self
            .live_softcs(plat)
            .into_iter()
            .find(|sc| sc.uuid() == last.as_str())
        {
            return fail(
                req,
                format_args!("Device {} already has uuid {}", other.name(), last),
            );
        }
        Ok(args.pop().unwrap_or_default())
    }

    /// Checks a provider for `add` (FreeBSD's add_name) and returns it.
    fn provider_for(
        &self,
        plat: &P,
        req: &mut dyn CtlReq,
        sc: &Softc<P>,
        arg: &str,
    ) -> R<P::Provider> {
        let pname = strip_dev(arg);
        let Some(pp) = plat.provider_by_name(pname) else {
            return fail(req, format_args!("Provider {} is invalid", pname));
        };
        if sc.has_path_to(plat, pp) {
            return fail(req, format_args!("provider {} is already there", pname));
        }
        let expect = sc.provider_size()
            + if sc.is_automatic() {
                u64::from(sc.sectorsize())
            } else {
                0
            };
        let got = plat.provider_mediasize(pp);
        if sc.provider_size() != 0 && expect != got {
            return fail(
                req,
                format_args!("Providers size mismatch {} != {}", expect, got),
            );
        }
        let (want, have) = (sc.sectorsize(), plat.provider_sectorsize(pp));
        if want != 0 && want != have {
            return fail(
                req,
                format_args!("Providers sectorsize mismatch {} != {}", want, have),
            );
        }
        Ok(pp)
    }

    fn ctl_add(&self, plat: &P, req: &mut dyn CtlReq) -> R<()> {
        let sc = self.geom_arg(plat, req, false)?;
        let arg = need_ascii(req, "arg1")?;
        let pp = self.provider_for(plat, req, &sc, &arg)?;
        match sc.add_disk(plat, pp) {
            Ok(()) => Ok(()),
            Err(e) => fail(req, format_args!("Provider addition error: {}", e)),
        }
    }

    /// The slot of a path named by arg1 (a `/dev/` prefix is accepted).
    fn path_arg(&self, req: &mut dyn CtlReq, sc: &Softc<P>) -> R<usize> {
        let arg = need_ascii(req, "arg1")?;
        let pname = strip_dev(&arg);
        match sc.paths.find_name(pname, false) {
            Some(i) => Ok(i),
            None => fail(req, format_args!("Provider {} not found", pname)),
        }
    }

    fn ctl_remove(&self, plat: &P, req: &mut dyn CtlReq) -> R<()> {
        let sc = self.geom_arg(plat, req, false)?;
        let slot = self.path_arg(req, &sc)?;
        mp_log!(plat, "removing {} from {}", sc.paths.name(slot), sc.name);
        sc.lose(plat, slot, true);
        Ok(())
    }

    fn ctl_fail_restore(&self, plat: &P, req: &mut dyn CtlReq, failing: bool) -> R<()> {
        let sc = self.geom_arg(plat, req, false)?;
        let slot = self.path_arg(req, &sc)?;
        if sc.paths.has(slot, st::FAIL) == failing {
            return Ok(());
        }
        let pname = sc.paths.name(slot);
        if failing {
            mp_log!(plat, "{} in {} is marked FAIL.", pname, sc.name);
            sc.fault(plat, slot, st::FAIL);
        } else {
            mp_log!(plat, "{} in {} is marked OK.", pname, sc.name);
            sc.restore(plat, slot);
        }
        Ok(())
    }

    fn ctl_prefer(&self, plat: &P, req: &mut dyn CtlReq) -> R<()> {
        let sc = self.geom_arg(plat, req, true)?;
        match int(req, "nargs")? {
            None => return fail(req, format_args!("No 'nargs' argument")),
            Some(2) => {}
            Some(_) => return fail(req, format_args!("missing device")),
        }
        let arg = need_ascii(req, "arg1")?;
        let pname = strip_dev(&arg);
        let Some(slot) = sc.paths.find_name(pname, true) else {
            return fail(req, format_args!("Provider {} not found", pname));
        };
        if !sc.paths.is_good(slot) {
            return fail(
                req,
                format_args!("Consumer {} is invalid", sc.paths.name(slot)),
            );
        }
        sc.prefer(plat, slot);
        Ok(())
    }

    fn ctl_configure(&self, plat: &P, req: &mut dyn CtlReq) -> R<()> {
        let sc = self.geom_arg(plat, req, true)?;
        let (aa, ap, ar) = (
            flag(req, "active_active")?,
            flag(req, "active_passive")?,
            flag(req, "active_read")?,
        );
        // FreeBSD's precedence: passive beats read beats active.
        let mode = if ap {
            Mode::ActivePassive
        } else if ar {
            Mode::ActiveRead
        } else if aa {
            Mode::ActiveActive
        } else {
            sc.mode()
        };
        if sc.is_labelled() {
            if let Some(slot) = sc.paths.active() {
                if let Err(e) = self.rewrite_label(plat, &sc, slot, mode) {
                    return fail(
                        req,
                        format_args!("Can't update metadata on {} ({})", sc.paths.name(slot), e),
                    );
                }
            }
        }
        sc.set_mode(mode);
        Ok(())
    }

    /// Writes the label again on `slot`'s provider with a new mode.
    fn rewrite_label(&self, plat: &P, sc: &Softc<P>, slot: usize, mode: Mode) -> Result<(), Errno> {
        let cp = sc.consumer(slot);
        let pp = plat.consumer_provider(cp).ok_or(crate::platform::ENXIO)?;
        let (size, secsize) = (plat.provider_mediasize(pp), plat.provider_sectorsize(pp));
        let sector = sc.label_sector(size, secsize, mode)?;
        write_last_sector(plat, cp, &sector)
    }

    fn ctl_rotate(&self, plat: &P, req: &mut dyn CtlReq) -> R<()> {
        let sc = self.geom_arg(plat, req, true)?;
        sc.rotate(plat);
        Ok(())
    }

    fn ctl_getactive(&self, plat: &P, req: &mut dyn CtlReq) -> R<()> {
        let sc = self.geom_arg(plat, req, true)?;
        let mut text = sc.active_names().join(" ");
        if text.is_empty() {
            text.push_str("none");
        }
        text.push('\n');
        // set_output records its own error ("Missing output argument"...).
        let _ = req.set_output("output", &text);
        Ok(())
    }

    fn ctl_stop(&self, plat: &P, req: &mut dyn CtlReq) -> R<()> {
        let sc = self.geom_arg(plat, req, true)?;
        self.finish_destroy(req, &sc, plat, "stop")
    }

    fn ctl_destroy(&self, plat: &P, req: &mut dyn CtlReq) -> R<()> {
        let sc = self.geom_arg(plat, req, true)?;
        if sc.opened() != 0 {
            return self.finish_destroy(req, &sc, plat, "destroy");
        }
        // Only a sector that holds our label is wiped: a device made by
        // the original create form never wrote one, and the last sector of
        // its paths may be someone else's (a GPT backup header).
        if sc.is_labelled() {
            if let Some(slot) = sc.paths.active() {
                let secsize = sc.sectorsize() as usize;
                if let Err(e) = write_last_sector(plat, sc.consumer(slot), &vec![0u8; secsize]) {
                    return fail(
                        req,
                        format_args!("Can't erase metadata on {} ({})", sc.paths.name(slot), e),
                    );
                }
            }
        }
        self.finish_destroy(req, &sc, plat, "destroy")
    }

    fn finish_destroy(
        &self,
        req: &mut dyn CtlReq,
        sc: &Arc<Softc<P>>,
        plat: &P,
        what: &str,
    ) -> R<()> {
        match sc.destroy(plat, DestroyHow::Polite) {
            Ok(()) | Err(EINPROGRESS) => Ok(()),
            Err(EBUSY) => fail(
                req,
                format_args!(
                    "failed to {} {} (err={}): device is open ({} opens), close it first",
                    what,
                    sc.name,
                    EBUSY,
                    sc.opened()
                ),
            ),
            Err(e) => fail(
                req,
                format_args!("failed to {} {} (err={})", what, sc.name, e),
            ),
        }
    }
}

impl<P: Platform> Softc<P> {
    /// `getactive`'s answer: in active/active every good path, newest
    /// first; otherwise the active path.
    pub fn active_names(&self) -> Vec<String> {
        if self.mode() == Mode::ActiveActive {
            self.paths
                .newest_first()
                .into_iter()
                .filter(|&i| self.paths.is_good(i))
                .map(|i| self.paths.name(i))
                .collect()
        } else {
            self.paths
                .active()
                .map(|i| self.paths.name(i))
                .into_iter()
                .collect()
        }
    }
}

const _: () = assert!(NAME_MAX == 15);
