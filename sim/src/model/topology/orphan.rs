//! Orphaning: `g_wither_provider`, `g_orphan_provider`, and the doorstep
//! the event thread serves before any other event (`g_orphan_register`).

use geom_multipath_rs::platform::Errno;

use crate::ids::{ConsumerId, GeomId, ProviderId};
use crate::sim::SimPlatform;
use crate::util::lock;
use crate::violation::rule;

impl SimPlatform {
    /// `g_wither_provider`.
    pub fn g_wither_provider(&self, pp: ProviderId, error: Errno) {
        let orphaned = {
            let mut t = self.topo();
            let Ok(p) = self.rec(&mut t, "g_wither_provider", pp) else {
                return;
            };
            p.wither = true;
            p.orphan
        };
        if !orphaned {
            self.g_orphan_provider(pp, error);
        }
    }

    /// `g_orphan_provider`: callable from any context; the consumers'
    /// orphan methods run later on the event thread.
    pub fn g_orphan_provider(&self, pp: ProviderId, error: Errno) {
        if error == 0 {
            self.violation(
                rule::DESTROY,
                format!("g_orphan_provider({pp:?}) with error 0"),
            );
            return;
        }
        {
            let mut t = self.topo();
            let Ok(p) = self.rec(&mut t, "g_orphan_provider", pp) else {
                return;
            };
            if p.orphan {
                let msg = format!("g_orphan_provider({}) twice", p.name);
                return self.violation(rule::DESTROY, msg);
            }
            p.error = error;
            p.orphan = true;
        }
        lock(&self.sh.doorstep).push_back(pp);
        let me = self.clone();
        // The doorstep is served before any other event (g_run_events).
        self.sh
            .sched
            .post_front(&self.sh.q_event, Box::new(move || me.g_post_doorstep()));
    }

    fn g_post_doorstep(&self) {
        self.g_topology_lock();
        loop {
            let next = lock(&self.sh.doorstep).pop_front();
            let Some(pp) = next else { break };
            self.orphan_register(pp);
        }
        self.g_topology_unlock();
    }

    /// Sets `G_CF_ORPHAN` on `cp` if it is still attached to `pp` and not
    /// yet orphaned (each consumer hears of an orphaning once); its geom
    /// when it did.
    pub(super) fn mark_orphan(&self, cp: ConsumerId, pp: ProviderId) -> Option<GeomId> {
        let mut t = self.topo();
        let c = t.consumer.get_mut(&cp)?;
        if c.orphan || c.provider != Some(pp) {
            return None;
        }
        c.orphan = true;
        Some(c.geom)
    }

    /// `g_orphan_register`: tells every consumer of `pp` (once each).
    fn orphan_register(&self, pp: ProviderId) {
        let (wf, consumers) = {
            let mut t = self.topo();
            let Some(p) = t.provider.get_mut(&pp) else {
                return;
            };
            let wf = p.wither;
            p.wither = false;
            (wf, p.consumers.clone())
        };
        for cp in consumers {
            let Some(gp) = self.mark_orphan(cp, pp) else {
                continue;
            };
            if let Some((imp, plat)) = self.geom_class(gp) {
                imp.orphan(&plat, cp);
                self.g_topology_assert("return from orphan");
            }
        }
        let empty = {
            let mut t = self.topo();
            let Some(p) = t.provider.get_mut(&pp) else {
                return;
            };
            if !(p.consumers.is_empty() && wf) {
                p.wither |= wf;
                false
            } else {
                true
            }
        };
        if empty {
            self.g_destroy_provider(pp);
        }
    }
}
