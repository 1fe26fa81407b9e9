//! `gmultipath(8)` (geom(8) with the multipath class library) as a
//! function: option parsing from the class's command table, the userland
//! `label`, `clear` and `prefer` handlers, and kernel requests built the way
//! geom(8) builds them (see [`crate::ctl::SimCtlReq::geom_cmd`]).

use geom_multipath_rs::metadata::{Metadata, Mode, Name, Uuid, MAGIC, MAGIC_LEN};
use geom_multipath_rs::platform::Access;

use crate::sim::SimPlatform;

/// (short option, parameter name) of a command's boolean options.
fn options(verb: &str) -> Option<(&'static [(char, &'static str)], bool)> {
    // (options, sent to the kernel with an `output` buffer)
    const AR: &[(char, &str)] = &[('A', "active_active"), ('R', "active_read")];
    const APR: &[(char, &str)] = &[
        ('A', "active_active"),
        ('P', "active_passive"),
        ('R', "active_read"),
    ];
    Some(match verb {
        "create" => (AR, true),
        "label" => (AR, false),
        "configure" => (APR, true),
        "add" | "remove" | "fail" | "restore" | "rotate" | "getactive" | "destroy" | "stop" => {
            (&[], true)
        }
        "prefer" | "clear" => (&[], false),
        _ => return None,
    })
}

impl SimPlatform {
    /// Runs `gmultipath ARGS...` (e.g. `["create", "-A", "mp0", "da0",
    /// "da1"]`). Ok(stdout) or Err(the error geom(8) prints before exiting
    /// with status 1).
    pub fn gmultipath(&self, argv: &[&str]) -> Result<String, String> {
        let Some((&verb, rest)) = argv.split_first() else {
            return Err("usage: gmultipath verb ...".into());
        };
        let Some((opts, with_output)) = options(verb) else {
            return Err(format!("Unknown command: {verb}."));
        };
        let mut flags: Vec<(&str, bool)> = opts.iter().map(|&(_, n)| (n, false)).collect();
        let mut verbose = false;
        let mut args: Vec<&str> = Vec::new();
        let mut only_args = false;
        for a in rest {
            if !only_args && *a == "--" {
                only_args = true;
            } else if !only_args && a.len() > 1 && a.starts_with('-') && args.is_empty() {
                for ch in a[1..].chars() {
                    if ch == 'v' {
                        verbose = true;
                        continue;
                    }
                    match opts.iter().position(|&(c, _)| c == ch) {
                        Some(i) => flags[i].1 = true,
                        None => return Err(format!("Invalid option -{ch}.")),
                    }
                }
            } else {
                args.push(a);
            }
        }
        let out = match verb {
            "label" => self.mp_label(&flags, &args)?,
            "clear" => self.mp_clear(&args)?,
            "prefer" => {
                if args.len() != 2 {
                    return Err("Usage: prefer GEOM PROVIDER".into());
                }
                self.gctl_run("MULTIPATH", verb, &flags, &args, false)
                    .map_err(|e| {
                        format!(
                            "Can't set {} preferred provider to {}: {e}.",
                            args[0], args[1]
                        )
                    })?
            }
            _ => self.gctl_run("MULTIPATH", verb, &flags, &args, with_output)?,
        };
        Ok(if verbose {
            format!("{out}Done.\n")
        } else {
            out
        })
    }

    fn mp_label(&self, flags: &[(&str, bool)], args: &[&str]) -> Result<String, String> {
        if args.len() < 2 {
            return Err("wrong number of arguments.".into());
        }
        let name = args[0];
        let provs = &args[1..];
        let mut sizes = Vec::new();
        for p in provs {
            let pp = self.g_provider_by_name(p).ok_or_else(|| {
                format!("cannot get information about {p}: No such file or directory.")
            })?;
            sizes.push(
                self.provider_size(pp).ok_or_else(|| {
                    format!("cannot get information about {p}: Invalid argument.")
                })?,
            );
        }
        let (ms, ss) = sizes[0];
        for (p, (m, s)) in provs.iter().zip(&sizes).skip(1) {
            if *s != ss {
                return Err(format!("{p} sector size {s} different."));
            }
            if *m != ms {
                return Err(format!("{p} media size {m} different."));
            }
        }
        let flag = |n: &str| flags.iter().any(|&(f, on)| f == n && on);
        // The userland label and the kernel's taste share one codec, as
        // geom(8) and the class share g_multipath.h.
        let mode = Mode::from_flags(flag("active_active"), flag("active_read"));
        let mut rb = [0u8; 16];
        rb[..8].copy_from_slice(&self.rand_u64().to_le_bytes());
        rb[8..].copy_from_slice(&self.rand_u64().to_le_bytes());
        let name = Name::new_truncated(name).map_err(|e| format!("Invalid name {name}: {e}."))?;
        let md = Metadata::new(name, Uuid::from_random_bytes(rb), ss, ms, mode)
            .map_err(|e| format!("Cannot label {}: {e}.", provs[0]))?;
        let mut sector = vec![0u8; ss as usize];
        md.encode_sector(&mut sector)
            .map_err(|e| format!("Cannot label {}: {e}.", provs[0]))?;
        let off = ms - ss as u64;
        let dev = self
            .open(provs[0], Access::new(0, 1, 0))
            .map_err(|e| format!("cannot store metadata on {}: {}.", provs[0], strerror(e)))?;
        dev.write(off, &sector)
            .map_err(|e| format!("cannot store metadata on {}: {}.", provs[0], strerror(e)))?;
        let _ = dev.flush();
        dev.close()
            .map_err(|e| format!("cannot store metadata on {}: {}.", provs[0], strerror(e)))?;
        let mut out = String::new();
        for p in &provs[1..] {
            let seen = self
                .open(p, Access::new(1, 1, 0))
                .and_then(|d| d.read(off, ss as usize));
            match seen {
                Ok(s) if s == sector => {}
                Ok(_) => out.push_str(&format!(
                    "No metadata found on {p}. It is not a path of {}.\n",
                    provs[0]
                )),
                Err(e) => out.push_str(&format!(
                    "Unable to read metadata from {p}: {}.\n",
                    strerror(e)
                )),
            }
        }
        self.run_until_idle();
        Ok(out)
    }

    fn mp_clear(&self, args: &[&str]) -> Result<String, String> {
        if args.is_empty() {
            return Err("Too few arguments.".into());
        }
        let mut errors = String::new();
        for p in args {
            let r = (|| {
                let pp = self
                    .g_provider_by_name(p)
                    .ok_or(geom_multipath_rs::platform::ENOENT)?;
                let (ms, ss) = self
                    .provider_size(pp)
                    .ok_or(geom_multipath_rs::platform::ENOENT)?;
                let dev = self.open(p, Access::new(1, 1, 0))?;
                let off = ms - ss as u64;
                let cur = dev.read(off, ss as usize)?;
                if cur.get(..MAGIC_LEN) != Some(&MAGIC[..]) {
                    return Err(geom_multipath_rs::platform::EINVAL);
                }
                dev.write(off, &vec![0u8; ss as usize])?;
                let _ = dev.flush();
                dev.close()
            })();
            if let Err(e) = r {
                errors.push_str(&format!("Can't clear metadata on {p}: {}.\n", strerror(e)));
            }
        }
        self.run_until_idle();
        if errors.is_empty() {
            Ok(String::new())
        } else {
            Err(format!("{errors}Not fully done."))
        }
    }
}

/// `strerror(3)`'s text for the errnos the userland can meet, as geom(8)
/// prints them.
fn strerror(e: i32) -> &'static str {
    match e {
        1 => "Operation not permitted",
        2 => "No such file or directory",
        5 => "Input/output error",
        6 => "Device not configured",
        12 => "Cannot allocate memory",
        16 => "Device busy",
        22 => "Invalid argument",
        28 => "No space left on device",
        _ => "Unknown error",
    }
}
