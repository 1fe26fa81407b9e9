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
        // geom(8)'s standard commands, which take no option but -v.
        "load" | "unload" => (&[], false),
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
        // geom(8) first asks whether the class can be loaded or listed: the
        // module `g_multipath` is in the kernel, or a file geom_multipath.ko
        // is on kern.module_path. The simulated machine has no such file
        // (our module is geom_multipath_rs.ko), so without the class loaded
        // every command stops here, before any verb is looked at.
        if self.class_by_name("MULTIPATH").is_none() {
            return Err("Invalid class name 'multipath'.".into());
        }
        if verb == "list" || verb == "status" {
            return self.mp_list_status(verb, rest);
        }
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
                        // geom(8) takes -v once (parse_arguments).
                        if verbose {
                            return Err("Option 'v' specified twice.".into());
                        }
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
            // `load` finds g_multipath in the kernel and does nothing.
            // `unload` looks for a kernel file named geom_multipath, which
            // ours is not (it fails as on FreeBSD, where our module is
            // unloaded with `kldunload geom_multipath_rs`).
            "load" if verbose => "Module available.\n".into(),
            "load" => String::new(),
            "unload" => return Err("Could not find module: No such file or directory.".into()),
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

/// `strerror(3)`'s text for the errnos the simulated userland can meet
/// (geom(8) here, the commands of `mpsim-serve`), as FreeBSD prints them.
pub fn strerror(e: i32) -> &'static str {
    match e {
        1 => "Operation not permitted",
        2 => "No such file or directory",
        5 => "Input/output error",
        6 => "Device not configured",
        8 => "Exec format error",
        12 => "Cannot allocate memory",
        16 => "Device busy",
        17 => "File exists",
        22 => "Invalid argument",
        28 => "No space left on device",
        _ => "Unknown error",
    }
}

/// `geom(8)`'s standard `list` and `status` commands, which read the mesh
/// from `kern.geom.confxml` through libgeom: libgeom inserts every class,
/// geom, provider, consumer and config entry at the head of its list, so
/// each comes out in the reverse of the XML's order; a `<wither/>` becomes
/// a config entry with no value.
impl SimPlatform {
    fn mp_list_status(&self, verb: &str, rest: &[&str]) -> Result<String, String> {
        let (mut all, mut geoms_only, mut script) = (false, false, false);
        let mut names: Vec<&str> = Vec::new();
        for a in rest {
            if names.is_empty() && a.len() > 1 && a.starts_with('-') {
                for ch in a[1..].chars() {
                    match (ch, verb) {
                        ('a', _) => all = true,
                        ('g', "status") => geoms_only = true,
                        ('s', "status") => script = true,
                        _ => return Err(format!("Invalid option -{ch}.")),
                    }
                }
            } else {
                names.push(a);
            }
        }
        let mesh = mesh::Mesh::parse(&self.confxml())?;
        let Some(class) = mesh.class("MULTIPATH") else {
            return Err(if verb == "list" {
                "Class 'MULTIPATH' not found.".into()
            } else {
                "Class MULTIPATH not found.".into()
            });
        };
        let mut chosen = Vec::new();
        if names.is_empty() {
            chosen.extend(
                class
                    .geoms
                    .iter()
                    .filter(|g| all || !g.providers.is_empty()),
            );
        } else {
            for n in &names {
                match class.geoms.iter().find(|g| g.name == *n) {
                    Some(g) => chosen.push(g),
                    None if verb == "list" => {
                        return Err(format!(
                            "Class 'MULTIPATH' does not have an instance named '{n}'."
                        ))
                    }
                    None => return Err(format!("No such geom: {n}.")),
                }
            }
        }
        Ok(if verb == "list" {
            chosen.iter().map(|g| mesh.list_geom(g)).collect()
        } else {
            mesh.status(&chosen, geoms_only, script)
        })
    }
}

/// libgeom's view of `kern.geom.confxml`, enough for `list` and `status`.
mod mesh {
    use std::collections::HashMap;
    use std::fmt::Write as _;

    /// One config entry: name and value (None for an empty element).
    pub type Conf = (String, Option<String>);

    pub struct Provider {
        pub name: String,
        pub mode: String,
        pub mediasize: u64,
        pub sectorsize: u32,
        pub stripesize: u64,
        pub stripeoffset: u64,
        pub config: Vec<Conf>,
    }

    pub struct Consumer {
        pub provider: Option<String>,
        pub mode: String,
        pub config: Vec<Conf>,
    }

    pub struct Geom {
        pub name: String,
        pub config: Vec<Conf>,
        pub providers: Vec<Provider>,
        pub consumers: Vec<Consumer>,
    }

    pub struct Class {
        pub name: String,
        pub geoms: Vec<Geom>,
    }

    pub struct Mesh {
        pub classes: Vec<Class>,
        /// Every provider by its id, for consumers' references.
        by_id: HashMap<String, (usize, usize, usize)>,
    }

    /// An XML element: tag, attributes, children, trimmed text.
    struct Node {
        tag: String,
        attrs: Vec<(String, String)>,
        kids: Vec<Node>,
        text: String,
    }

    impl Node {
        fn attr(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
        fn kid(&self, tag: &str) -> Option<&Node> {
            self.kids.iter().find(|k| k.tag == tag)
        }
        fn kid_text(&self, tag: &str) -> String {
            self.kid(tag).map(|k| k.text.clone()).unwrap_or_default()
        }
        fn kids<'a>(&'a self, tag: &'a str) -> impl DoubleEndedIterator<Item = &'a Node> + 'a {
            self.kids.iter().filter(move |k| k.tag == tag)
        }
    }

    /// Decodes `&#xNN;`, `&#NN;` and the five named entities.
    fn unescape(s: &str) -> Result<String, String> {
        let mut out: Vec<u8> = Vec::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.extend_from_slice(&rest.as_bytes()[..i]);
            let end = rest[i..]
                .find(';')
                .ok_or_else(|| format!("unterminated entity in '{s}'"))?;
            let ent = &rest[i + 1..i + end];
            let code = if let Some(h) = ent.strip_prefix("#x") {
                u32::from_str_radix(h, 16).ok()
            } else if let Some(d) = ent.strip_prefix('#') {
                d.parse::<u32>().ok()
            } else {
                match ent {
                    "amp" => Some(u32::from(b'&')),
                    "lt" => Some(u32::from(b'<')),
                    "gt" => Some(u32::from(b'>')),
                    "quot" => Some(u32::from(b'"')),
                    "apos" => Some(u32::from(b'\'')),
                    _ => None,
                }
            };
            match code {
                Some(c) if c < 0x100 => out.push(c as u8),
                Some(c) => {
                    let ch = char::from_u32(c).ok_or_else(|| format!("bad entity &{ent};"))?;
                    let mut b = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                }
                None => return Err(format!("unknown entity &{ent};")),
            }
            rest = &rest[i + end + 1..];
        }
        out.extend_from_slice(rest.as_bytes());
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// A small parser for the XML `confxml` writes: elements, attributes in
    /// double quotes, text, `<?...?>` and comments skipped.
    struct Parser<'a> {
        s: &'a str,
        pos: usize,
    }

    impl Parser<'_> {
        fn err(&self, what: &str) -> String {
            format!("confxml: {what} at byte {}", self.pos)
        }
        fn skip_misc(&mut self) {
            loop {
                let r = &self.s[self.pos..];
                let t = r.trim_start();
                self.pos += r.len() - t.len();
                let skip = if t.starts_with("<?") {
                    t.find("?>").map(|e| e + 2)
                } else if t.starts_with("<!--") {
                    t.find("-->").map(|e| e + 3)
                } else {
                    None
                };
                match skip {
                    Some(n) => self.pos += n,
                    None => return,
                }
            }
        }
        fn element(&mut self) -> Result<Node, String> {
            self.skip_misc();
            let r = &self.s[self.pos..];
            if !r.starts_with('<') {
                return Err(self.err("expected '<'"));
            }
            let close = r.find('>').ok_or_else(|| self.err("unterminated tag"))?;
            let inner = &r[1..close];
            self.pos += close + 1;
            let (inner, empty) = match inner.strip_suffix('/') {
                Some(i) => (i, true),
                None => (inner, false),
            };
            let mut parts = inner.splitn(2, char::is_whitespace);
            let tag = parts.next().unwrap_or_default().to_string();
            let mut attrs = Vec::new();
            let mut a = parts.next().unwrap_or_default().trim();
            while !a.is_empty() {
                let eq = a.find("=\"").ok_or_else(|| self.err("bad attribute"))?;
                let name = a[..eq].trim().to_string();
                let vend = a[eq + 2..]
                    .find('"')
                    .ok_or_else(|| self.err("unterminated attribute"))?;
                attrs.push((name, unescape(&a[eq + 2..eq + 2 + vend])?));
                a = a[eq + 3 + vend..].trim_start();
            }
            let mut node = Node {
                tag,
                attrs,
                kids: Vec::new(),
                text: String::new(),
            };
            if empty {
                return Ok(node);
            }
            let mut text = String::new();
            loop {
                let r = &self.s[self.pos..];
                let lt = r
                    .find('<')
                    .ok_or_else(|| self.err("unterminated element"))?;
                text.push_str(&r[..lt]);
                self.pos += lt;
                let r = &self.s[self.pos..];
                if let Some(end) = r.strip_prefix("</") {
                    let gt = end
                        .find('>')
                        .ok_or_else(|| self.err("unterminated end tag"))?;
                    if end[..gt].trim() != node.tag {
                        return Err(self.err(&format!("</{}> closes <{}>", &end[..gt], node.tag)));
                    }
                    self.pos += 2 + gt + 1;
                    node.text = unescape(text.trim())?;
                    return Ok(node);
                }
                if r.starts_with("<!--") {
                    self.skip_misc();
                    continue;
                }
                node.kids.push(self.element()?);
            }
        }
    }

    /// The entries of a `<config>` element as libgeom lists them: each
    /// element that ends inside it, newest insertion first.
    fn config(n: Option<&Node>) -> Vec<Conf> {
        fn walk(n: &Node, out: &mut Vec<Conf>) {
            for k in &n.kids {
                walk(k, out);
                let v = (!k.text.is_empty()).then(|| k.text.clone());
                out.push((k.tag.clone(), v));
            }
        }
        let mut out = Vec::new();
        if let Some(n) = n {
            walk(n, &mut out);
        }
        out.reverse();
        out
    }

    /// The `<config>` of a geom or provider, led by `wither` when it is
    /// withering (its `<wither/>` stands in place of the config).
    fn config_wither(n: &Node) -> Vec<Conf> {
        let mut c = config(n.kid("config"));
        if n.kid("wither").is_some() {
            c.insert(0, ("wither".into(), None));
        }
        c
    }

    impl Mesh {
        pub fn parse(xml: &str) -> Result<Mesh, String> {
            let mut p = Parser { s: xml, pos: 0 };
            let root = p.element()?;
            if root.tag != "mesh" {
                return Err(format!("confxml: root element <{}>, not <mesh>", root.tag));
            }
            let mut classes = Vec::new();
            let mut by_id = HashMap::new();
            let mut ids: Vec<(String, (usize, usize, usize))> = Vec::new();
            for (ci, c) in root.kids("class").rev().enumerate() {
                let mut geoms = Vec::new();
                for (gi, g) in c.kids("geom").rev().enumerate() {
                    let gconf = config_wither(g);
                    let mut providers = Vec::new();
                    for (pi, pn) in g.kids("provider").rev().enumerate() {
                        if let Some(id) = pn.attr("id") {
                            ids.push((id.to_string(), (ci, gi, pi)));
                        }
                        let pconf = config_wither(pn);
                        providers.push(Provider {
                            name: pn.kid_text("name"),
                            mode: pn.kid_text("mode"),
                            mediasize: pn.kid_text("mediasize").parse().unwrap_or(0),
                            sectorsize: pn.kid_text("sectorsize").parse().unwrap_or(0),
                            stripesize: pn.kid_text("stripesize").parse().unwrap_or(0),
                            stripeoffset: pn.kid_text("stripeoffset").parse().unwrap_or(0),
                            config: pconf,
                        });
                    }
                    let consumers = g
                        .kids("consumer")
                        .rev()
                        .map(|cn| Consumer {
                            provider: cn
                                .kid("provider")
                                .and_then(|p| p.attr("ref"))
                                .map(str::to_string),
                            mode: cn.kid_text("mode"),
                            config: config(cn.kid("config")),
                        })
                        .collect();
                    geoms.push(Geom {
                        name: g.kid_text("name"),
                        config: gconf,
                        providers,
                        consumers,
                    });
                }
                classes.push(Class {
                    name: c.kid_text("name"),
                    geoms,
                });
            }
            by_id.extend(ids);
            Ok(Mesh { classes, by_id })
        }

        pub fn class(&self, name: &str) -> Option<&Class> {
            self.classes.iter().find(|c| c.name == name)
        }

        fn provider(&self, id: &str) -> Option<&Provider> {
            let &(c, g, p) = self.by_id.get(id)?;
            self.classes.get(c)?.geoms.get(g)?.providers.get(p)
        }

        /// One geom as `geom list` prints it.
        pub fn list_geom(&self, g: &Geom) -> String {
            let mut o = String::new();
            let _ = writeln!(o, "Geom name: {}", g.name);
            conf_lines(&mut o, "", &g.config);
            if !g.providers.is_empty() {
                o.push_str("Providers:\n");
                for (i, p) in g.providers.iter().enumerate() {
                    let _ = write!(o, "{}. ", i + 1);
                    prov_lines(&mut o, p, &p.mode);
                    conf_lines(&mut o, "   ", &p.config);
                }
            }
            if !g.consumers.is_empty() {
                o.push_str("Consumers:\n");
                for (i, c) in g.consumers.iter().enumerate() {
                    let _ = write!(o, "{}. ", i + 1);
                    match c.provider.as_deref().and_then(|id| self.provider(id)) {
                        Some(p) => prov_lines(&mut o, p, &c.mode),
                        None => o.push_str("[no provider]\n"),
                    }
                    conf_lines(&mut o, "   ", &c.config);
                }
            }
            o.push('\n');
            o
        }

        fn component(&self, c: &Consumer) -> Option<String> {
            let p = self.provider(c.provider.as_deref()?)?;
            let get = |k: &str| {
                c.config
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone().unwrap_or_else(|| "(null)".into()))
            };
            Some(match (get("state"), get("synchronized")) {
                (None, None) => p.name.clone(),
                (Some(s), Some(y)) => format!("{} ({s}, {y})", p.name),
                (Some(s), None) | (None, Some(s)) => format!("{} ({s})", p.name),
            })
        }

        /// `geom status`: one line per component, of each geom (`-g`) or
        /// of each of its providers, with a header unless `-s`.
        pub fn status(&self, geoms: &[&Geom], geoms_only: bool, script: bool) -> String {
            let state = |conf: &[Conf]| {
                conf.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("state"))
                    .map(|(_, v)| v.clone().unwrap_or_else(|| "(null)".into()))
            };
            // (name, status, components) rows.
            let mut rows: Vec<(String, String, Vec<String>)> = Vec::new();
            for g in geoms {
                let gstate = state(&g.config);
                let comps: Vec<String> = g
                    .consumers
                    .iter()
                    .filter_map(|c| self.component(c))
                    .collect();
                if geoms_only {
                    rows.push((
                        g.name.clone(),
                        gstate.unwrap_or_else(|| "N/A".into()),
                        comps,
                    ));
                } else {
                    for p in &g.providers {
                        let st = state(&p.config)
                            .or_else(|| gstate.clone())
                            .unwrap_or_else(|| "N/A".into());
                        rows.push((p.name.clone(), st, comps.clone()));
                    }
                }
            }
            if rows.is_empty() {
                return String::new();
            }
            let (mut nl, mut sl) = if script { (0, 0) } else { (4, 6) };
            for (n, s, _) in &rows {
                nl = nl.max(n.len());
                sl = sl.max(s.len());
            }
            let mut o = String::new();
            if !script {
                let _ = writeln!(o, "{:>nl$}  {:>sl$}  Components", "Name", "Status");
            }
            for (n, s, comps) in rows {
                let (mut n, mut s) = (n, s);
                if comps.is_empty() {
                    let _ = writeln!(o, "{n:>nl$}  {s:>sl$}  N/A");
                }
                for c in comps {
                    let _ = writeln!(o, "{n:>nl$}  {s:>sl$}  {c}");
                    if !script {
                        n.clear();
                        s.clear();
                    }
                }
            }
            o
        }
    }

    fn conf_lines(o: &mut String, prefix: &str, conf: &[Conf]) {
        for (n, v) in conf {
            let _ = writeln!(o, "{prefix}{n}: {}", v.as_deref().unwrap_or("(null)"));
        }
    }

    fn prov_lines(o: &mut String, p: &Provider, mode: &str) {
        let _ = writeln!(o, "Name: {}", p.name);
        let _ = writeln!(
            o,
            "   Mediasize: {} ({})",
            p.mediasize,
            humanize(p.mediasize)
        );
        let _ = writeln!(o, "   Sectorsize: {}", p.sectorsize);
        if p.stripesize > 0 || p.stripeoffset > 0 {
            let _ = writeln!(o, "   Stripesize: {}", p.stripesize);
            let _ = writeln!(o, "   Stripeoffset: {}", p.stripeoffset);
        }
        let _ = writeln!(o, "   Mode: {mode}");
    }

    /// A size in at most four characters, powers of 1024, one decimal
    /// below ten ("1.0M", "896K", "512B"), as `humanize_number(3)` with
    /// HN_AUTOSCALE | HN_B | HN_NOSPACE | HN_DECIMAL writes it.
    pub fn humanize(n: u64) -> String {
        const UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];
        let mut scale = 0;
        // Tenths of the scaled value, rounded.
        let mut tenths = u128::from(n) * 10;
        while tenths >= 9995 && scale + 1 < UNITS.len() {
            tenths = (tenths + 512) / 1024;
            scale += 1;
        }
        if scale > 0 && tenths < 100 {
            format!("{}.{}{}", tenths / 10, tenths % 10, UNITS[scale])
        } else {
            format!("{}{}", (tenths + 5) / 10, UNITS[scale])
        }
    }
}
