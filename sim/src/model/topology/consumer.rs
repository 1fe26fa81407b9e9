//! Consumers: `g_new_consumer`, `g_attach`, `g_detach`,
//! `g_destroy_consumer`, and what a class reads of them.

use geom_multipath_rs::platform::{Access, EEXIST};

use super::{ConsumerRec, Direct, Topology};
use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::sim::{Res, SimPlatform};
use crate::violation::rule;

impl SimPlatform {
    /// `g_new_consumer`.
    pub fn g_new_consumer(&self, gp: GeomId) -> Res<ConsumerId> {
        let mut t = self.topo_for("g_new_consumer")?;
        let id = ConsumerId(self.next_id());
        self.growing_geom(&mut t, "g_new_consumer", gp, "g_new_consumer")?
            .consumers
            .insert(0, id);
        t.consumer.insert(
            id,
            ConsumerRec {
                geom: gp,
                provider: None,
                acc: Access::NONE,
                orphan: false,
                direct: Direct::default(),
                nstart: 0,
                nend: 0,
            },
        );
        Ok(id)
    }

    /// Sets a consumer's `G_CF_DIRECT_SEND` and `G_CF_DIRECT_RECEIVE`.
    pub fn set_consumer_direct(&self, cp: ConsumerId, direct: Direct) {
        if let Ok(c) = self.rec(&mut self.topo(), "set G_CF_DIRECT_*", cp) {
            c.direct = direct;
        }
    }

    /// A consumer's direct dispatch flags.
    pub fn consumer_direct_of(&self, cp: ConsumerId) -> Option<Direct> {
        self.peek(cp, |c| c.direct)
    }

    /// Whether geom `target` is `from` or (transitively) under it.
    fn reaches(t: &Topology, from: GeomId, target: GeomId) -> bool {
        let mut stack = vec![from];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(g) = stack.pop() {
            if g == target {
                return true;
            }
            if !seen.insert(g) {
                continue;
            }
            if let Some(gr) = t.geom.get(&g) {
                for c in &gr.consumers {
                    if let Some(p) = t.consumer.get(c).and_then(|c| c.provider) {
                        if let Some(pr) = t.provider.get(&p) {
                            stack.push(pr.geom);
                        }
                    }
                }
            }
        }
        false
    }

    /// `g_attach`: ELOOP when it would close a loop in the mesh.
    pub fn g_attach(&self, cp: ConsumerId, pp: ProviderId) -> Res<()> {
        let mut t = self.topo_for("g_attach")?;
        let c = self.rec(&mut t, "g_attach consumer", cp)?;
        if c.provider.is_some() {
            self.violation(
                rule::ATTACH,
                format!("g_attach({cp:?}): attach but attached"),
            );
            return Err(EEXIST);
        }
        let cgeom = c.geom;
        let pgeom = self.rec(&mut t, "g_attach provider", pp)?.geom;
        if Self::reaches(&t, pgeom, cgeom) {
            return Err(40); // ELOOP
        }
        let prank = t.geom.get(&pgeom).map_or(1, |g| g.rank);
        if let Some(p) = t.provider.get_mut(&pp) {
            p.consumers.insert(0, cp);
        }
        if let Some(c) = t.consumer.get_mut(&cp) {
            c.provider = Some(pp);
        }
        if let Some(g) = t.geom.get_mut(&cgeom) {
            g.rank = g.rank.max(prank + 1);
        }
        Ok(())
    }

    /// `g_detach`: no access counts, no I/O in flight.
    pub fn g_detach(&self, cp: ConsumerId) {
        let wither = {
            let Ok(mut t) = self.topo_for("g_detach") else {
                return;
            };
            let Ok(c) = self.rec(&mut t, "g_detach", cp) else {
                return;
            };
            let Some(pp) = c.provider else {
                return self.violation(
                    rule::ATTACH,
                    format!("g_detach({cp:?}): detach but not attached"),
                );
            };
            if c.acc.is_open() {
                let msg = format!("g_detach({cp:?}): detach but nonzero access {:?}", c.acc);
                return self.violation(rule::ATTACH, msg);
            }
            if c.nstart != c.nend {
                let msg = format!(
                    "g_detach({cp:?}): detach with active requests ({} in flight)",
                    c.nstart - c.nend
                );
                return self.violation(rule::ATTACH, msg);
            }
            let cgeom = c.geom;
            if let Some(c) = t.consumer.get_mut(&cp) {
                c.provider = None;
            }
            let mut wither = t.geom.get(&cgeom).is_some_and(|g| g.wither);
            if let Some(p) = t.provider.get_mut(&pp) {
                p.consumers.retain(|&x| x != cp);
                wither |= p.wither;
                let pg = p.geom;
                wither |= t.geom.get(&pg).is_some_and(|g| g.wither);
            }
            wither
        };
        if wither {
            self.g_do_wither();
        }
    }

    /// `g_destroy_consumer`: detached, no access.
    pub fn g_destroy_consumer(&self, cp: ConsumerId) {
        let wither = {
            let Ok(mut t) = self.topo_for("g_destroy_consumer") else {
                return;
            };
            let Ok(c) = self.rec(&mut t, "g_destroy_consumer", cp) else {
                return;
            };
            if c.provider.is_some() {
                return self.violation(
                    rule::DESTROY,
                    format!("g_destroy_consumer({cp:?}) but attached"),
                );
            }
            if c.acc.is_open() {
                let msg = format!(
                    "g_destroy_consumer({cp:?}) with access {:?} (leaked access count)",
                    c.acc
                );
                return self.violation(rule::ACCESS, msg);
            }
            let gp = c.geom;
            t.consumer.remove(&cp);
            match t.geom.get_mut(&gp) {
                Some(g) => {
                    g.consumers.retain(|&x| x != cp);
                    g.wither
                }
                None => false,
            }
        };
        if wither {
            self.g_do_wither();
        }
    }

    pub fn consumer_exists(&self, cp: ConsumerId) -> bool {
        self.peek(cp, |_| ()).is_some()
    }

    pub fn consumer_geom(&self, cp: ConsumerId) -> Option<GeomId> {
        self.peek(cp, |c| c.geom)
    }

    pub fn consumer_attached_to(&self, cp: ConsumerId) -> Option<ProviderId> {
        self.peek(cp, |c| c.provider).flatten()
    }

    pub fn consumer_acc(&self, cp: ConsumerId) -> Option<Access> {
        self.peek(cp, |c| c.acc)
    }

    /// I/O requested through `cp` and not yet delivered.
    pub fn consumer_inflight(&self, cp: ConsumerId) -> u64 {
        self.peek(cp, |c| c.nstart - c.nend).unwrap_or(0)
    }

    pub fn consumer_orphaned(&self, cp: ConsumerId) -> bool {
        self.peek(cp, |c| c.orphan).unwrap_or(false)
    }
}
