//! `kern.geom.confxml`: the whole mesh as XML, with each class's dumpconf
//! output, laid out as `geom_dump.c` lays it out (what libgeom parses for
//! `geom list` and `gmultipath list/status`).

use std::fmt::Write as _;

use crate::class::{ConfNode, Dumpconf, SimClass};
use crate::ids::{ClassId, ConsumerId, GeomId, ProviderId};
use crate::sim::SimPlatform;

/// Escapes like `g_conf_cat_escaped`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' | '<' | '>' | '\'' | '"' => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c if (c as u32) > 0x7e => {
                for b in c.to_string().bytes() {
                    let _ = write!(out, "&#x{b:X};");
                }
            }
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) > 0x1f => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

fn id(v: u64) -> String {
    // Pointer-looking ids, as the kernel prints `%p`.
    format!("0x{:x}", 0xffff_f800_0000_0000_u64 | (v << 8))
}

impl SimPlatform {
    /// The mesh as XML (`sysctl -n kern.geom.confxml`). Built on the event
    /// thread with the topology lock held, like `g_confxml`.
    pub fn confxml(&self) -> String {
        self.g_waitfor_event(|p| p.confxml_locked())
            .unwrap_or_default()
    }

    /// The XML, for a caller already holding the topology lock.
    pub fn confxml_locked(&self) -> String {
        let mut sb = String::from("<mesh>\n");
        let classes: Vec<ClassId> = self.topo().classes.clone();
        for c in classes {
            let (name, geoms, imp) = {
                let t = self.topo();
                let Some(cr) = t.class.get(&c) else { continue };
                (cr.name.clone(), cr.geoms.newest_first(), cr.imp.clone())
            };
            let _ = writeln!(sb, "  <class id=\"{}\">", id(c.raw()));
            let _ = writeln!(sb, "    <name>{}</name>", escape(&name));
            let plat = self.bound(c);
            for gp in geoms {
                self.conf_geom(&mut sb, &plat, &*imp, c, gp);
            }
            sb.push_str("  </class>\n");
        }
        sb.push_str("</mesh>\n");
        sb
    }

    fn conf_geom(
        &self,
        sb: &mut String,
        plat: &SimPlatform,
        imp: &dyn SimClass,
        c: ClassId,
        gp: GeomId,
    ) {
        let Some((name, rank, wither, cons, provs)) = self.topo().geom.get(&gp).map(|g| {
            (
                g.name.clone(),
                g.rank,
                g.wither,
                g.consumers.clone(),
                g.providers.clone(),
            )
        }) else {
            return;
        };
        let _ = writeln!(sb, "    <geom id=\"{}\">", id(gp.raw()));
        let _ = writeln!(sb, "      <class ref=\"{}\"/>", id(c.raw()));
        let _ = writeln!(sb, "      <name>{}</name>", escape(&name));
        let _ = writeln!(sb, "      <rank>{rank}</rank>");
        let g = GeomXml {
            sim: self,
            plat,
            imp,
            gp,
            wither,
        };
        if wither {
            sb.push_str("      <wither/>\n");
        } else {
            g.config(sb, "      ", "\t", ConfNode::Geom);
        }
        for cp in cons {
            g.consumer(sb, cp);
        }
        for pp in provs {
            g.provider(sb, pp);
        }
        sb.push_str("    </geom>\n");
    }
}

/// One geom being written out, for its consumers and providers.
struct GeomXml<'a> {
    /// The simulator, and the same bound to the geom's class.
    sim: &'a SimPlatform,
    plat: &'a SimPlatform,
    imp: &'a dyn SimClass,
    gp: GeomId,
    wither: bool,
}

impl GeomXml<'_> {
    /// `<config>` at `outer` with the class's dumpconf of `node` at `inner`.
    fn config(&self, sb: &mut String, outer: &str, inner: &str, node: ConfNode) {
        let _ = writeln!(sb, "{outer}<config>");
        let mut d = Dumpconf {
            sb,
            indent: inner,
            gp: self.gp,
            node,
        };
        self.imp.dumpconf(self.plat, &mut d);
        let _ = writeln!(sb, "{outer}</config>");
    }

    fn consumer(&self, sb: &mut String, cp: ConsumerId) {
        let Some((prov, acc)) = self
            .sim
            .topo()
            .consumer
            .get(&cp)
            .map(|c| (c.provider, c.acc))
        else {
            return;
        };
        let _ = writeln!(sb, "\t<consumer id=\"{}\">", id(cp.raw()));
        let _ = writeln!(sb, "\t  <geom ref=\"{}\"/>", id(self.gp.raw()));
        if let Some(pp) = prov {
            let _ = writeln!(sb, "\t  <provider ref=\"{}\"/>", id(pp.raw()));
        }
        let _ = writeln!(sb, "\t  <mode>r{}w{}e{}</mode>", acc.r, acc.w, acc.e);
        if !self.wither {
            self.config(sb, "\t  ", "\t    ", ConfNode::Consumer(cp));
        }
        sb.push_str("\t</consumer>\n");
    }

    fn provider(&self, sb: &mut String, pp: ProviderId) {
        let Some(p) = self.sim.topo().provider.get(&pp).map(|p| {
            (
                p.name.clone(),
                p.acc,
                p.mediasize,
                p.sectorsize,
                p.stripesize,
                p.stripeoffset,
                p.wither,
            )
        }) else {
            return;
        };
        let (name, acc, ms, ss, stsz, stoff, pwither) = p;
        let _ = writeln!(sb, "\t<provider id=\"{}\">", id(pp.raw()));
        let _ = writeln!(sb, "\t  <geom ref=\"{}\"/>", id(self.gp.raw()));
        let _ = writeln!(sb, "\t  <mode>r{}w{}e{}</mode>", acc.r, acc.w, acc.e);
        let _ = writeln!(sb, "\t  <name>{}</name>", escape(&name));
        let _ = writeln!(sb, "\t  <mediasize>{ms}</mediasize>");
        let _ = writeln!(sb, "\t  <sectorsize>{ss}</sectorsize>");
        let _ = writeln!(sb, "\t  <stripesize>{stsz}</stripesize>");
        let _ = writeln!(sb, "\t  <stripeoffset>{stoff}</stripeoffset>");
        if pwither {
            sb.push_str("\t  <wither/>\n");
        } else if !self.wither {
            self.config(sb, "\t  ", "\t    ", ConfNode::Provider(pp));
        }
        sb.push_str("\t</provider>\n");
    }
}
