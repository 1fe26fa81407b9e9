//! The end-of-run check: bios never completed, access counts that do not
//! add up or are still held, geoms still withering.

use geom_multipath_rs::platform::Access;

use super::add;
use crate::sim::SimPlatform;
use crate::violation::rule;

impl SimPlatform {
    /// The sim-wide leak check: bios never completed, access counts that do
    /// not add up or are still held, geoms still withering.
    pub fn leak_check(&self) {
        let mut found: Vec<String> = Vec::new();
        {
            let t = self.topo();
            // In id order (creation order), whatever the tables' order.
            let mut providers: Vec<_> = t.provider.iter().collect();
            providers.sort_by_key(|(id, _)| **id);
            let mut consumers: Vec<_> = t.consumer.iter().collect();
            consumers.sort_by_key(|(id, _)| **id);
            let mut geoms: Vec<_> = t.geom.iter().collect();
            geoms.sort_by_key(|(id, _)| **id);
            for (id, p) in providers {
                let mut sum = Access::NONE;
                for c in p.consumers.iter().filter_map(|c| t.consumer.get(c)) {
                    sum = add(sum, c.acc);
                }
                if sum != p.acc {
                    found.push(format!(
                        "provider {} {id:?}: access {:?} but its consumers hold {:?}",
                        p.name, p.acc, sum
                    ));
                }
            }
            for (id, c) in consumers {
                if c.acc.is_open() {
                    let g = t
                        .geom
                        .get(&c.geom)
                        .map(|g| g.name.clone())
                        .unwrap_or_default();
                    let pn = c
                        .provider
                        .and_then(|p| t.provider.get(&p))
                        .map(|p| p.name.clone())
                        .unwrap_or_default();
                    found.push(format!(
                        "consumer {id:?} of geom {g} still holds access {:?} on {pn}",
                        c.acc
                    ));
                }
            }
            for (id, g) in geoms {
                if g.wither {
                    found.push(format!("geom {} {id:?} withering but never freed", g.name));
                }
            }
        }
        for b in self.bios_outstanding() {
            found.push(format!("bio never completed: {b}"));
        }
        for f in found {
            self.violation(rule::LEAK, f);
        }
    }
}
