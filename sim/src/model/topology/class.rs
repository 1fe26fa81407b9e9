//! Classes: loading (`g_load_class`: init, then taste what exists) and
//! unloading (`g_unload_class`: refuse while open, destroy every geom,
//! wait for withering, fini).

use std::sync::Arc;

use geom_multipath_rs::platform::{EBUSY, EEXIST, ENXIO, EPERM};

use super::{ClassRec, GeomList};
use crate::class::SimClass;
use crate::ids::{ClassId, GeomId, ProviderId};
use crate::sched::{current, Ctx};
use crate::sim::{Res, SimPlatform};
use crate::violation::rule;

impl SimPlatform {
    /// The class implementation behind geom `gp`, with a handle bound to it.
    pub(crate) fn geom_class(&self, gp: GeomId) -> Option<(Arc<dyn SimClass>, SimPlatform)> {
        let t = self.topo();
        let g = t.geom.get(&gp)?;
        let c = t.class.get(&g.class)?;
        Some((c.imp.clone(), self.bound(g.class)))
    }

    pub fn class_name(&self, c: ClassId) -> Option<String> {
        self.peek(c, |c| c.name.clone())
    }

    /// Loaded class by name.
    pub fn class_by_name(&self, name: &str) -> Option<ClassId> {
        let t = self.topo();
        t.classes
            .iter()
            .copied()
            .find(|c| t.class.get(c).is_some_and(|r| r.name == name))
    }

    /// Loads a class (`g_load_class` via `g_waitfor_event`): init, then it
    /// tastes every existing provider.
    pub fn load_class(&self, imp: Arc<dyn SimClass>) -> Res<ClassId> {
        let id = ClassId(self.next_id());
        let r = self.g_waitfor_event(move |p| -> Res<ClassId> {
            {
                let mut t = p.topo();
                let name = imp.name().to_string();
                if t.class.values().any(|c| c.name == name) {
                    drop(t);
                    p.console(format!("A GEOM class {name} is already loaded."));
                    return Err(EEXIST);
                }
                t.classes.insert(0, id);
                t.class.insert(
                    id,
                    ClassRec {
                        name,
                        imp: imp.clone(),
                        geoms: GeomList::default(),
                        unloading: false,
                    },
                );
            }
            let bound = p.bound(id);
            if let Err(e) = imp.init(&bound) {
                p.console(format!("GEOM class {}: init failed: {e}", imp.name()));
            }
            if !imp.tastes() {
                return Ok(id);
            }
            let provs: Vec<ProviderId> = {
                let t = p.topo();
                t.classes
                    .iter()
                    .filter(|&&c| c != id)
                    .filter_map(|c| t.class.get(c))
                    .flat_map(|c| c.geoms.iter())
                    .filter_map(|g| t.geom.get(&g))
                    .flat_map(|g| g.providers.clone())
                    .collect()
            };
            for pp in provs {
                if p.provider_exists(pp) {
                    p.timed_taste(id, &*imp, pp);
                    p.g_topology_assert("return from taste");
                }
            }
            Ok(id)
        });
        r.unwrap_or(Err(ENXIO))
    }

    /// `g_unload_class`: EBUSY while anything of the class is open;
    /// otherwise destroy_geom on every geom, wait for withering, then fini.
    pub fn unload_class(&self, id: ClassId) -> Res<()> {
        if current().1 != Ctx::User {
            self.violation(rule::NOSLEEP, "unload_class outside user context".into());
            return Err(EPERM);
        }
        let imp = match self.topo().class.get(&id) {
            Some(c) => c.imp.clone(),
            None => return Err(ENXIO),
        };
        let bound = self.bound(id);
        let deadline = std::time::Instant::now() + self.sh.cfg.wait_timeout;
        self.g_topology_lock();
        // Refuse while open; wait for withering geoms.
        loop {
            let (open, withering) = self.class_open_state(id);
            if open {
                self.g_topology_unlock();
                return Err(EBUSY);
            }
            if !withering {
                break;
            }
            if self.unload_stuck(deadline) {
                self.violation(rule::LEAK, format!("unload of class {}: a geom never finished withering (I/O or access still held below it)", imp.name()));
                self.g_topology_unlock();
                return Err(EBUSY);
            }
            self.topology_sleep();
        }
        if let Some(c) = self.topo().class.get_mut(&id) {
            c.unloading = true;
        }
        for gp in self.class_geoms_of(id) {
            if !self.geom_exists(gp) || self.geom_withering(gp) {
                continue;
            }
            if let Err(e) = imp.destroy_geom(&bound, gp) {
                if let Some(c) = self.topo().class.get_mut(&id) {
                    c.unloading = false;
                }
                self.g_topology_unlock();
                return Err(e);
            }
        }
        loop {
            let left = self.peek(id, |c| c.geoms.len()).unwrap_or(0);
            if left == 0 {
                break;
            }
            let stuck = self.unload_stuck(deadline);
            if stuck {
                self.violation(
                    rule::LEAK,
                    format!(
                        "unload of class {}: {left} geom(s) never finished withering",
                        imp.name()
                    ),
                );
                self.g_topology_unlock();
                return Err(EBUSY);
            }
            self.topology_sleep();
        }
        imp.fini(&bound);
        {
            let mut t = self.topo();
            t.classes.retain(|&c| c != id);
            t.class.remove(&id);
        }
        self.g_topology_unlock();
        Ok(())
    }

    /// Calls the class's destroy_geom on each of its live geoms (topology
    /// lock taken here), as an administrator stopping them all would.
    pub fn destroy_class_geoms(&self, id: ClassId) {
        let Some(imp) = self.peek(id, |c| c.imp.clone()) else {
            return;
        };
        let bound = self.bound(id);
        self.g_topology_lock();
        for gp in self.class_geoms_of(id) {
            if self.geom_exists(gp) && !self.geom_withering(gp) {
                let _ = imp.destroy_geom(&bound, gp);
            }
        }
        self.g_topology_unlock();
    }

    /// Class `id`'s geoms, newest first, withering ones included.
    fn class_geoms_of(&self, id: ClassId) -> Vec<GeomId> {
        let t = self.topo();
        t.class
            .get(&id)
            .map(|c| c.geoms.newest_first())
            .unwrap_or_default()
    }

    /// Whether waiting for withering can still end: in deterministic mode
    /// nothing left to run means never; threaded, the wait timeout.
    fn unload_stuck(&self, deadline: std::time::Instant) -> bool {
        match self.mode() {
            crate::sched::Mode::Deterministic => self.sh.sched.is_idle(),
            crate::sched::Mode::Threaded => std::time::Instant::now() > deadline,
        }
    }

    fn class_open_state(&self, id: ClassId) -> (bool, bool) {
        let t = self.topo();
        let Some(c) = t.class.get(&id) else {
            return (false, false);
        };
        let mut open = false;
        let mut withering = false;
        for g in c.geoms.iter().filter_map(|g| t.geom.get(&g)) {
            open |= g
                .providers
                .iter()
                .any(|p| t.provider.get(p).is_some_and(|p| p.acc.is_open()));
            open |= g
                .consumers
                .iter()
                .any(|cp| t.consumer.get(cp).is_some_and(|c| c.acc.is_open()));
            withering |= g.wither;
        }
        (open, withering)
    }

    /// `g_topology_sleep`: drops the lock, lets the rest run, retakes it.
    pub(crate) fn topology_sleep(&self) {
        self.g_topology_unlock();
        match self.mode() {
            crate::sched::Mode::Deterministic => {
                self.sh.sched.det_step();
            }
            crate::sched::Mode::Threaded => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
        self.g_topology_lock();
    }
}
