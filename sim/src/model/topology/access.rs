//! `g_access`: GEOM's refusals, the provider's access method, and the
//! retaste and washer run a close can start.

use geom_multipath_rs::platform::{Access, ENXIO, EPERM};

use super::add;
use crate::ids::ConsumerId;
use crate::sim::{Res, SimPlatform};
use crate::violation::rule;

impl SimPlatform {
    /// `g_access(cp, dr, dw, de)`.
    pub fn g_access(&self, cp: ConsumerId, d: Access) -> Res<()> {
        let (pp, pgeom, cur, pacc, perror, pwither_geom) = {
            let mut t = self.topo_for("g_access")?;
            let c = self.rec(&mut t, "g_access", cp)?;
            let cur = c.acc;
            let Some(pp) = c.provider else {
                self.violation(
                    rule::ACCESS,
                    format!("g_access({cp:?}): access but not attached"),
                );
                return Err(ENXIO);
            };
            let p = self.rec(&mut t, "g_access provider", pp)?;
            let (pgeom, pacc, perror) = (p.geom, p.acc, p.error);
            let gw = t.geom.get(&pgeom).is_some_and(|g| g.wither);
            (pp, pgeom, cur, pacc, perror, gw)
        };
        let next = add(cur, d);
        if next.r < 0 || next.w < 0 || next.e < 0 {
            self.violation(
                rule::ACCESS,
                format!(
                    "g_access({cp:?}, {}, {}, {}): access resulting in negative counts (had {:?})",
                    d.r, d.w, d.e, cur
                ),
            );
            return Err(EPERM);
        }
        if !d.is_open() {
            self.violation(
                rule::ACCESS,
                format!("g_access({cp:?}, 0, 0, 0): NOP access request"),
            );
            return Ok(());
        }
        let (pr, pw, pe) = (pacc.r - cur.r, pacc.w - cur.w, pacc.e - cur.e);
        let _ = pr;
        let opening = d.r > 0 || d.w > 0 || d.e > 0;
        if d.e > 0 && pw > 0 {
            return Err(EPERM);
        }
        if d.w > 0 && pe > 0 {
            return Err(EPERM);
        }
        if opening && perror != 0 {
            return Err(perror);
        }
        let error = match self.geom_class(pgeom) {
            Some((imp, plat)) => imp.access(&plat, pp, d),
            None => Err(ENXIO),
        };
        self.g_topology_assert("return from access method");
        if let Err(e) = error {
            if !opening {
                self.violation(rule::ACCESS, format!("access method of provider {pp:?} failed closing ({e}): a close cannot fail"));
            }
            return Err(e);
        }
        let (retaste, washer) = {
            let mut t = self.topo();
            let mut retaste = false;
            if let Some(p) = t.provider.get_mut(&pp) {
                // Last writer closing on a healthy provider: retaste it.
                retaste = p.acc.w != 0 && p.acc.w == -d.w && p.error == 0 && !pwither_geom;
                p.acc = add(p.acc, d);
            }
            let mut washer = false;
            if let Some(c) = t.consumer.get_mut(&cp) {
                c.acc = add(c.acc, d);
                let g = c.geom;
                washer = !c.acc.is_open() && t.geom.get(&g).is_some_and(|g| g.wither);
            }
            (retaste, washer)
        };
        if retaste {
            self.g_post_event(move |p| p.new_provider_event(pp));
        }
        if washer {
            self.g_do_wither();
        }
        Ok(())
    }
}
