//! Withering: `g_wither_geom`, and the washer that frees, once idle, what
//! has withered.

use std::sync::atomic::Ordering;

use geom_multipath_rs::platform::Errno;

use crate::ids::GeomId;
use crate::sim::SimPlatform;

impl SimPlatform {
    /// `g_wither_geom`: orphans the geom's providers, then the washer
    /// detaches and destroys idle consumers and frees the geom (and softc).
    pub fn g_wither_geom(&self, gp: GeomId, error: Errno) {
        let to_orphan = {
            let Ok(mut t) = self.topo_for("g_wither_geom") else {
                return;
            };
            let Ok(g) = self.rec(&mut t, "g_wither_geom", gp) else {
                return;
            };
            if g.wither {
                Vec::new()
            } else {
                g.wither = true;
                let provs = g.providers.clone();
                provs
                    .into_iter()
                    .filter(|p| t.provider.get(p).is_some_and(|p| !p.orphan))
                    .collect()
            }
        };
        for pp in to_orphan {
            self.g_orphan_provider(pp, error);
        }
        self.g_do_wither();
    }

    /// `g_do_wither`: schedules one washer run.
    pub(crate) fn g_do_wither(&self) {
        if !self.sh.washer_pending.swap(true, Ordering::AcqRel) {
            self.g_post_event(|p| {
                p.sh.washer_pending.store(false, Ordering::Release);
                p.g_wither_washer();
            });
        }
    }

    /// `g_wither_washer`. A consumer is idle when it holds no access and,
    /// beyond GEOM's own test, has no I/O in flight (GEOM would KASSERT in
    /// g_detach; the simulator waits for the last completion instead).
    fn g_wither_washer(&self) {
        let geoms: Vec<GeomId> = {
            let t = self.topo();
            t.classes
                .iter()
                .filter_map(|c| t.class.get(c))
                .flat_map(|c| c.geoms.iter())
                .collect()
        };
        for gp in geoms {
            let (wither, provs, cons) = {
                let t = self.topo();
                let Some(g) = t.geom.get(&gp) else { continue };
                (g.wither, g.providers.clone(), g.consumers.clone())
            };
            for pp in &provs {
                let gone = {
                    let t = self.topo();
                    t.provider
                        .get(pp)
                        .is_some_and(|p| (p.wither || wither) && p.consumers.is_empty())
                };
                if gone {
                    self.g_destroy_provider(*pp);
                }
            }
            if !wither {
                continue;
            }
            for cp in cons {
                let (idle, attached) = {
                    let t = self.topo();
                    match t.consumer.get(&cp) {
                        Some(c) => (!c.acc.is_open() && c.nstart == c.nend, c.provider.is_some()),
                        None => continue,
                    }
                };
                if !idle {
                    continue;
                }
                if attached {
                    self.g_detach(cp);
                }
                self.g_destroy_consumer(cp);
            }
            let empty = self
                .topo()
                .geom
                .get(&gp)
                .is_some_and(|g| g.providers.is_empty() && g.consumers.is_empty());
            if empty {
                self.g_destroy_geom(gp);
            }
        }
    }
}
