//! `gmultipath(8)` (geom(8) with the multipath class library) as a
//! function: option parsing from the class's command table, the userland
//! `label`, `clear` and `prefer` handlers, and kernel requests built the way
//! geom(8) builds them (see [`crate::ctl::SimCtlReq::geom_cmd`]).

use geom_multipath_rs::platform::Access;

use crate::sim::SimPlatform;
use crate::util::errno_name;

/// `G_MULTIPATH_MAGIC`.
pub const MAGIC: &[u8; 16] = b"GEOM::MULTIPATH\0";

/// The on-disk label (89 meaningful bytes at the start of the last sector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub uuid: String,
    pub name: String,
    pub sectorsize: u32,
    pub size: u64,
    /// 0 Active/Passive, 1 Active/Active, 2 Active/Read.
    pub mode: u8,
}

impl Label {
    /// Encodes into one zero-filled sector of `sectorsize` bytes.
    pub fn encode(&self, sectorsize: usize) -> Vec<u8> {
        let mut s = vec![0u8; sectorsize.max(89)];
        s[..16].copy_from_slice(MAGIC);
        let u = self.uuid.as_bytes();
        let n = u.len().min(39);
        s[16..16 + n].copy_from_slice(&u[..n]);
        let nm = self.name.as_bytes();
        let n = nm.len().min(15);
        s[56..56 + n].copy_from_slice(&nm[..n]);
        s[72..76].copy_from_slice(&1u32.to_le_bytes());
        s[76..80].copy_from_slice(&self.sectorsize.to_le_bytes());
        s[80..88].copy_from_slice(&self.size.to_le_bytes());
        s[88] = self.mode;
        s
    }
}

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
            return Err("Too few arguments.".into());
        }
        let name = args[0];
        let provs = &args[1..];
        let mut sizes = Vec::new();
        for p in provs {
            let pp = self.g_provider_by_name(p).ok_or_else(|| {
                format!("Cannot get information about {p}: No such file or directory.")
            })?;
            sizes.push(
                self.provider_size(pp)
                    .ok_or_else(|| format!("Cannot get information about {p}."))?,
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
        let mode = if flag("active_read") {
            2
        } else if flag("active_active") {
            1
        } else {
            0
        };
        let r = self.rand_u64();
        let r2 = self.rand_u64();
        let uuid = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            r >> 32,
            (r >> 16) & 0xffff,
            r & 0xfff,
            0x8000 | (r2 >> 48) & 0x3fff,
            r2 & 0xffff_ffff_ffff
        );
        let label = Label {
            uuid,
            name: name.to_string(),
            sectorsize: ss,
            size: ms,
            mode,
        };
        let sector = label.encode(ss as usize);
        let off = ms - ss as u64;
        let dev = self
            .open(provs[0], Access::new(0, 1, 0))
            .map_err(|e| format!("Can't store metadata on {}: {}.", provs[0], errno_name(e)))?;
        dev.write(off, &sector)
            .map_err(|e| format!("Can't store metadata on {}: {}.", provs[0], errno_name(e)))?;
        let _ = dev.flush();
        dev.close()
            .map_err(|e| format!("Can't store metadata on {}: {}.", provs[0], errno_name(e)))?;
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
                    "Cannot read metadata from {p}: {}.\n",
                    errno_name(e)
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
                if cur.get(..16) != Some(&MAGIC[..]) {
                    return Err(geom_multipath_rs::platform::EINVAL);
                }
                dev.write(off, &vec![0u8; ss as usize])?;
                let _ = dev.flush();
                dev.close()
            })();
            if let Err(e) = r {
                errors.push_str(&format!(
                    "Can't clear metadata on {p}: {}.\n",
                    errno_name(e)
                ));
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
