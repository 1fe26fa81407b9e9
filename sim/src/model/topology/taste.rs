//! Tasting and retasting: `g_new_provider_event` (a new provider, or one
//! whose last writer closed) and `g_resize_provider` with its event.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::class::SimClass;
use crate::ids::{ClassId, ConsumerId, GeomId, ProviderId};
use crate::sim::SimPlatform;

impl SimPlatform {
    /// `g_new_provider_event`: every class with a taste method, except those
    /// already attached to `pp` (by a consumer not orphaned), tastes it.
    pub(crate) fn new_provider_event(&self, pp: ProviderId) {
        {
            let t = self.topo();
            match t.provider.get(&pp) {
                // Destroyed meanwhile: g_cancel_event would have dropped it.
                None => return,
                // Orphaned before its taste ran (its geom withered in the
                // same event): FreeBSD's washer runs right after that event
                // and destroys the unconsumed provider, cancelling this one.
                Some(p) if p.wither || p.orphan => return,
                _ => {}
            }
        }
        if self.sh.notaste.load(Ordering::Acquire) {
            return;
        }
        let classes: Vec<ClassId> = self.topo().classes.clone();
        for c in classes {
            let imp = {
                let t = self.topo();
                let Some(rec) = t.class.get(&c) else { continue };
                if rec.unloading || !rec.imp.tastes() {
                    continue;
                }
                let Some(p) = t.provider.get(&pp) else { return };
                let attached = p.consumers.iter().any(|cp| {
                    t.consumer.get(cp).is_some_and(|r| {
                        !r.orphan && t.geom.get(&r.geom).is_some_and(|g| g.class == c)
                    })
                });
                if attached {
                    continue;
                }
                rec.imp.clone()
            };
            self.timed_taste(c, &*imp, pp);
            self.g_topology_assert("return from taste");
        }
    }

    /// `g_resize_provider(pp, size)`: posts the resize event, unless the
    /// provider is withering or already that size. Callable from any
    /// context that may allocate (the event is posted, not run).
    pub fn g_resize_provider(&self, pp: ProviderId, size: u64) {
        {
            match self.rec(&mut self.topo(), "g_resize_provider", pp) {
                Err(_) => return,
                Ok(p) if p.wither || p.mediasize == size => return,
                Ok(_) => {}
            }
        }
        self.g_post_event(move |p| p.resize_provider_event(pp, size));
    }

    /// `g_resize_provider_event`: on a shrink, consumers of geoms without a
    /// resize method are orphaned (once); then the new size is set, each
    /// consumer's geom that has one and is not withering gets its resize
    /// method called, and the provider is retasted (metadata that did not
    /// fit before may now).
    fn resize_provider_event(&self, pp: ProviderId, size: u64) {
        let (old, consumers) = {
            let t = self.topo();
            match t.provider.get(&pp) {
                // Gone meanwhile, or on its way out: nothing to resize.
                None => return,
                Some(p) if p.wither || p.orphan => return,
                Some(p) => (p.mediasize, p.consumers.clone()),
            }
        };
        let class_of = |cp: ConsumerId| -> Option<(GeomId, Arc<dyn SimClass>, SimPlatform)> {
            let gp = self.consumer_geom(cp)?;
            let (imp, plat) = self.geom_class(gp)?;
            Some((gp, imp, plat))
        };
        if size < old {
            for &cp in &consumers {
                let Some((_, imp, plat)) = class_of(cp) else {
                    continue;
                };
                if imp.has_resize() {
                    continue;
                }
                if self.mark_orphan(cp, pp).is_none() {
                    continue;
                }
                imp.orphan(&plat, cp);
                self.g_topology_assert("return from orphan");
            }
        }
        {
            let mut t = self.topo();
            let Some(p) = t.provider.get_mut(&pp) else {
                return;
            };
            p.mediasize = size;
        }
        for cp in self.provider_consumers(pp) {
            // An earlier resize method may have torn this one down.
            if self.consumer_attached_to(cp) != Some(pp) {
                continue;
            }
            let Some((gp, imp, plat)) = class_of(cp) else {
                continue;
            };
            if imp.has_resize() && !self.geom_withering(gp) {
                imp.resize(&plat, cp);
                self.g_topology_assert("return from resize");
            }
        }
        self.new_provider_event(pp);
    }

    /// Runs class `c`'s taste of `pp`, adding its time to the class's.
    pub(super) fn timed_taste(&self, c: ClassId, imp: &dyn SimClass, pp: ProviderId) {
        let t0 = std::time::Instant::now();
        imp.taste(&self.bound(c), pp);
        let ns = t0.elapsed().as_nanos() as u64;
        let mut t = self.topo();
        let e = t.taste_time.entry(c).or_default();
        e.0 += 1;
        e.1 += ns;
    }

    /// Tastes class `class` ran and the wall time they took (seconds):
    /// its own code and the platform calls it made.
    pub fn taste_time(&self, class: &str) -> (u64, f64) {
        let Some(c) = self.class_by_name(class) else {
            return (0, 0.0);
        };
        let (n, ns) = self.topo().taste_time.get(&c).copied().unwrap_or_default();
        (n, ns as f64 * 1e-9)
    }
}
