//! Providers: `g_new_providerf`, `g_error_provider`, their size and
//! flags, `g_destroy_provider`, `g_provider_by_name`.

use geom_multipath_rs::platform::{Access, Errno, ENXIO};

use super::{Direct, ProviderRec};
use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::sim::{Res, SimPlatform};
use crate::violation::rule;

impl SimPlatform {
    /// `g_new_providerf` + size fields. Created with error ENXIO, as GEOM
    /// does, and its taste event is posted at once; it runs once the
    /// creator releases the topology lock.
    pub fn g_new_provider(
        &self,
        gp: GeomId,
        name: &str,
        mediasize: u64,
        sectorsize: u32,
    ) -> Res<ProviderId> {
        let mut t = self.topo_for("g_new_providerf")?;
        let id = ProviderId(self.next_id());
        self.growing_geom(&mut t, "g_new_providerf", gp, "new provider")?
            .providers
            .insert(0, id);
        t.by_name.entry(name.to_string()).or_default().push(id);
        t.provider.insert(
            id,
            ProviderRec {
                geom: gp,
                name: name.to_string(),
                mediasize,
                sectorsize,
                stripesize: 0,
                stripeoffset: 0,
                accept_unmapped: false,
                direct: Direct::default(),
                error: ENXIO,
                acc: Access::NONE,
                consumers: Vec::new(),
                orphan: false,
                wither: false,
                nstart: 0,
                nend: 0,
            },
        );
        drop(t);
        self.g_post_event(move |p| p.new_provider_event(id));
        Ok(id)
    }

    /// `g_error_provider(pp, error)`: 0 makes the provider usable.
    pub fn g_error_provider(&self, pp: ProviderId, error: Errno) {
        if let Ok(p) = self.rec(&mut self.topo(), "g_error_provider", pp) {
            p.error = error;
        }
    }

    /// Sets stripe size and offset (what `gmultipath` copies from paths).
    /// A driver sets them on its own provider before announcing it; a class
    /// changing a live provider does it under the topology lock.
    pub fn set_provider_stripe(&self, pp: ProviderId, stripesize: u64, stripeoffset: u64) {
        if let Ok(p) = self.rec(&mut self.topo(), "set stripe", pp) {
            p.stripesize = stripesize;
            p.stripeoffset = stripeoffset;
        }
    }

    /// (stripesize, stripeoffset).
    pub fn provider_stripe_of(&self, pp: ProviderId) -> Option<(u64, u64)> {
        self.peek(pp, |p| (p.stripesize, p.stripeoffset))
    }

    /// Sets or clears `G_PF_ACCEPT_UNMAPPED`.
    pub fn set_provider_accepts_unmapped(&self, pp: ProviderId, accept: bool) {
        if let Ok(p) = self.rec(&mut self.topo(), "set G_PF_ACCEPT_UNMAPPED", pp) {
            p.accept_unmapped = accept;
        }
    }

    /// Whether `G_PF_ACCEPT_UNMAPPED` is set.
    pub fn provider_accepts_unmapped_of(&self, pp: ProviderId) -> Option<bool> {
        self.peek(pp, |p| p.accept_unmapped)
    }

    /// Sets a provider's `G_PF_DIRECT_SEND` and `G_PF_DIRECT_RECEIVE`.
    pub fn set_provider_direct(&self, pp: ProviderId, direct: Direct) {
        if let Ok(p) = self.rec(&mut self.topo(), "set G_PF_DIRECT_*", pp) {
            p.direct = direct;
        }
    }

    /// A provider's direct dispatch flags.
    pub fn provider_direct_of(&self, pp: ProviderId) -> Option<Direct> {
        self.peek(pp, |p| p.direct)
    }

    /// Changes a provider's size fields (topology held): used by classes that
    /// size their provider from their first path.
    pub fn set_provider_size(&self, pp: ProviderId, mediasize: u64, sectorsize: u32) {
        let Ok(mut t) = self.topo_for("provider resize") else {
            return;
        };
        if let Some(p) = t.provider.get_mut(&pp) {
            p.mediasize = mediasize;
            p.sectorsize = sectorsize;
        }
    }

    /// `g_destroy_provider`: no consumers, no access.
    pub fn g_destroy_provider(&self, pp: ProviderId) {
        let gp = {
            let Ok(mut t) = self.topo_for("g_destroy_provider") else {
                return;
            };
            let Ok(p) = self.rec(&mut t, "g_destroy_provider", pp) else {
                return;
            };
            if !p.consumers.is_empty() || p.acc.is_open() {
                let msg = format!(
                    "g_destroy_provider({}) still attached ({} consumers) or open {:?}",
                    p.name,
                    p.consumers.len(),
                    p.acc
                );
                return self.violation(rule::DESTROY, msg);
            }
            let gp = p.geom;
            if let Some(p) = t.provider.remove(&pp) {
                if let Some(v) = t.by_name.get_mut(&p.name) {
                    v.retain(|&x| x != pp);
                    if v.is_empty() {
                        t.by_name.remove(&p.name);
                    }
                }
            }
            if let Some(g) = t.geom.get_mut(&gp) {
                g.providers.retain(|&x| x != pp);
                g.wither
            } else {
                false
            }
        };
        if gp {
            self.g_do_wither();
        }
    }

    pub fn provider_exists(&self, pp: ProviderId) -> bool {
        self.peek(pp, |_| ()).is_some()
    }

    /// `g_provider_by_name` (a leading `/dev/` is ignored).
    pub fn g_provider_by_name(&self, name: &str) -> Option<ProviderId> {
        let name = name.strip_prefix("/dev/").unwrap_or(name);
        let t = self.topo();
        match t.by_name.get(name).map(|v| v.as_slice()) {
            None | Some([]) => return None,
            Some([one]) => return Some(*one),
            // Several of that name (one withering, its successor new):
            // the first in GEOM's own order, as below.
            Some(_) => {}
        }
        for c in &t.classes {
            let Some(cr) = t.class.get(c) else { continue };
            for g in cr.geoms.iter() {
                let Some(gr) = t.geom.get(&g) else { continue };
                for p in &gr.providers {
                    if t.provider.get(p).is_some_and(|r| r.name == name) {
                        return Some(*p);
                    }
                }
            }
        }
        None
    }

    pub fn provider_name_of(&self, pp: ProviderId) -> Option<String> {
        self.peek(pp, |p| p.name.clone())
    }

    /// (mediasize, sectorsize).
    pub fn provider_size(&self, pp: ProviderId) -> Option<(u64, u32)> {
        self.peek(pp, |p| (p.mediasize, p.sectorsize))
    }

    pub fn provider_acc(&self, pp: ProviderId) -> Option<Access> {
        self.peek(pp, |p| p.acc)
    }

    pub fn provider_error(&self, pp: ProviderId) -> Option<Errno> {
        self.peek(pp, |p| p.error)
    }

    pub fn provider_geom(&self, pp: ProviderId) -> Option<GeomId> {
        self.peek(pp, |p| p.geom)
    }

    pub fn provider_consumers(&self, pp: ProviderId) -> Vec<ConsumerId> {
        self.peek(pp, |p| p.consumers.clone()).unwrap_or_default()
    }
}
