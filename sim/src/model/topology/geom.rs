//! Geoms: `g_new_geomf`, `g_destroy_geom`, and what a class reads of
//! them.

use std::any::Any;
use std::sync::Arc;

use geom_multipath_rs::platform::EPERM;

use super::{AnySoftc, GeomRec};
use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::sim::{Res, SimPlatform};
use crate::violation::rule;

impl SimPlatform {
    /// `g_new_geomf`: a geom of the bound class with softc `softc`.
    pub fn g_new_geom(&self, name: &str, softc: Option<AnySoftc>) -> Res<GeomId> {
        let mut t = self.topo_for("g_new_geom")?;
        let Some(cid) = self.class else {
            self.violation(
                rule::CLASS,
                "g_new_geom through a handle bound to no class".into(),
            );
            return Err(EPERM);
        };
        let id = GeomId(self.next_id());
        self.rec(&mut t, "g_new_geom: class", cid)?
            .geoms
            .push_newest(id);
        t.geom.insert(
            id,
            GeomRec {
                class: cid,
                name: name.to_string(),
                softc,
                providers: Vec::new(),
                consumers: Vec::new(),
                wither: false,
                rank: 1,
            },
        );
        Ok(id)
    }

    /// `g_destroy_geom`: only a geom without consumers and providers.
    pub fn g_destroy_geom(&self, gp: GeomId) {
        let Ok(mut t) = self.topo_for("g_destroy_geom") else {
            return;
        };
        let Ok(g) = self.rec(&mut t, "g_destroy_geom", gp) else {
            return;
        };
        if !g.consumers.is_empty() || !g.providers.is_empty() {
            let msg = format!(
                "g_destroy_geom({}) with {} consumer(s) and {} provider(s)",
                g.name,
                g.consumers.len(),
                g.providers.len()
            );
            return self.violation(rule::DESTROY, msg);
        }
        let Some(g) = t.geom.remove(&gp) else { return };
        if let Some(c) = t.class.get_mut(&g.class) {
            c.geoms.remove(gp);
        }
        drop(t);
        // The softc is dropped here, outside the data lock: its destructor
        // is the class's code.
        drop(g);
    }

    /// The geoms of the bound class, newest first, skipping withering ones.
    pub fn g_class_geoms(&self) -> Vec<GeomId> {
        let Some(cid) = self.class else {
            return Vec::new();
        };
        let t = self.topo();
        t.class
            .get(&cid)
            .map(|c| {
                c.geoms
                    .iter()
                    .filter(|g| t.geom.get(g).is_some_and(|g| !g.wither))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn geom_name_of(&self, gp: GeomId) -> Option<String> {
        self.peek(gp, |g| g.name.clone())
    }

    /// `gp->softc`.
    pub fn geom_softc_any(&self, gp: GeomId) -> Option<AnySoftc> {
        let mut t = self.topo();
        self.rec(&mut t, "gp->softc", gp).ok()?.softc.clone()
    }

    /// `gp->softc` as the class's own type.
    pub fn geom_softc<T: Any + Send + Sync>(&self, gp: GeomId) -> Option<Arc<T>> {
        self.geom_softc_any(gp).and_then(|s| s.downcast::<T>().ok())
    }

    pub fn geom_exists(&self, gp: GeomId) -> bool {
        self.peek(gp, |_| ()).is_some()
    }

    pub fn geom_providers(&self, gp: GeomId) -> Vec<ProviderId> {
        self.peek(gp, |g| g.providers.clone()).unwrap_or_default()
    }

    pub fn geom_consumers(&self, gp: GeomId) -> Vec<ConsumerId> {
        self.peek(gp, |g| g.consumers.clone()).unwrap_or_default()
    }

    pub fn geom_withering(&self, gp: GeomId) -> bool {
        self.peek(gp, |g| g.wither).unwrap_or(false)
    }

    /// Every geom of the class named `class` (newest first), withering ones
    /// included.
    pub fn geoms_of_class(&self, class: &str) -> Vec<GeomId> {
        let t = self.topo();
        t.class
            .values()
            .filter(|c| c.name == class)
            .flat_map(|c| c.geoms.iter())
            .collect()
    }

    /// Sets `gp->softc` after creation (topology held): for classes that
    /// build the softc from objects made after the geom.
    pub fn topo_set_softc(&self, gp: GeomId, softc: AnySoftc) {
        let Ok(mut t) = self.topo_for("set gp->softc") else {
            return;
        };
        if let Some(g) = t.geom.get_mut(&gp) {
            g.softc = Some(softc);
        }
    }
}
