//! Taste: is a new provider a path of a labelled multipath device?
//!
//! GEOM offers every new provider to every class. We read its last sector
//! through a throw-away geom, and when it holds a GEOM::MULTIPATH label
//! written for a provider of exactly this size, the provider joins the geom
//! of the same uuid, or founds it.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use crate::class::{Class, DestroyHow, Softc};
use crate::metadata::{label_offset, taste_label, Metadata, TasteReject, NAME_MAX};
use crate::mp_log;
use crate::platform::{Access, Errno, Platform, EINVAL, EIO};

/// Reads the last sector of `pp` (topology held on entry and on return; it
/// is dropped around the read, which sleeps). Leaves no access behind.
pub(crate) fn read_label<P: Platform>(plat: &P, pp: P::Provider) -> Result<Vec<u8>, Errno> {
    plat.topology_assert();
    let sectorsize = plat.provider_sectorsize(pp);
    let offset = label_offset(plat.provider_mediasize(pp), sectorsize).ok_or(EINVAL)?;
    let gp = plat.new_geom("multipath:taste", None)?;
    let cp = match plat.new_consumer(gp) {
        Ok(cp) => cp,
        Err(e) => {
            plat.destroy_geom(gp);
            return Err(e);
        }
    };
    plat.set_consumer_direct(cp);
    let result = match plat.attach(cp, pp) {
        Err(e) => Err(e),
        Ok(()) => {
            let r = unlocked_with_access(plat, cp, Access::new(1, 0, 0), || {
                plat.read_data(cp, offset, sectorsize as usize)
            });
            plat.detach(cp);
            r
        }
    };
    plat.destroy_consumer(cp);
    plat.destroy_geom(gp);
    result
}

/// Reads the last sector through an attached path consumer, opening it for
/// reading if needed (topology held; dropped for the read, which sleeps).
pub(crate) fn read_last_sector<P: Platform>(plat: &P, cp: P::Consumer) -> Result<Vec<u8>, Errno> {
    plat.topology_assert();
    let pp = plat.consumer_provider(cp).ok_or(EIO)?;
    let sectorsize = plat.provider_sectorsize(pp);
    let offset = label_offset(plat.provider_mediasize(pp), sectorsize).ok_or(EINVAL)?;
    let length = usize::try_from(sectorsize).map_err(|_| EINVAL)?;
    let extra = if plat.consumer_access(cp).r > 0 {
        Access::NONE
    } else {
        Access::new(1, 0, 0)
    };
    unlocked_with_access(plat, cp, extra, || plat.read_data(cp, offset, length))
}

/// Writes `sector` as the last sector through an attached path consumer,
/// opening it for writing if needed (topology held; dropped for the write).
pub(crate) fn write_last_sector<P: Platform>(
    plat: &P,
    cp: P::Consumer,
    sector: &[u8],
) -> Result<(), Errno> {
    plat.topology_assert();
    let pp = plat.consumer_provider(cp).ok_or(EIO)?;
    let offset =
        label_offset(plat.provider_mediasize(pp), plat.provider_sectorsize(pp)).ok_or(EINVAL)?;
    let held = plat.consumer_access(cp);
    let extra = if held.w > 0 {
        Access::NONE
    } else {
        Access::new(1, 1, 1)
    };
    unlocked_with_access(plat, cp, extra, || plat.write_data(cp, offset, sector))
}

/// Runs `io` (which sleeps) with the topology lock dropped and `extra`
/// access held on `cp` for its length (topology held on entry and exit).
fn unlocked_with_access<P: Platform, T>(
    plat: &P,
    cp: P::Consumer,
    extra: Access,
    io: impl FnOnce() -> Result<T, Errno>,
) -> Result<T, Errno> {
    if extra.is_open() {
        plat.access(cp, extra)?;
    }
    plat.topology_unlock();
    let r = io();
    plat.topology_lock();
    if extra.is_open() {
        // Giving access back cannot fail in GEOM.
        let _ = plat.access(cp, extra.neg());
    }
    r
}

impl<P: Platform> Class<P> {
    /// `g_taste_t` (topology held).
    pub fn taste(&self, plat: &P, pp: P::Provider) -> Option<P::Geom> {
        plat.topology_assert();
        if self.is_own_provider(plat, pp) {
            // A manual device over a labelled disk exposes the label in its
            // last sector; taking our own provider as a path of another
            // device would stack multipath on itself.
            return None;
        }
        let pname = plat.provider_name(pp);
        let sector = read_label(plat, pp).ok()?;
        let mediasize = plat.provider_mediasize(pp);
        let sectorsize = plat.provider_sectorsize(pp);
        // FreeBSD's checks, in its order and with its console lines; a
        // label written for another size belongs to another provider
        // sharing this last sector (da0 against da0p1): silently not ours.
        let md = match taste_label(&sector, mediasize, sectorsize) {
            Ok(label) => label.metadata,
            Err(TasteReject::Version(v)) => {
                plat.log(format_args!(
                    "{} has version {} multipath id- this module is version  {}: rejecting",
                    pname,
                    // FreeBSD prints the u32 with %d.
                    v as i32,
                    crate::metadata::VERSION
                ));
                return None;
            }
            Err(TasteReject::NotMultipath(_)) => {
                if self.debug.load(Ordering::Relaxed) > 0 {
                    plat.log(format_args!("{} is not MULTIPATH", pname));
                }
                return None;
            }
            Err(TasteReject::OtherProvider(_)) => return None,
            Err(TasteReject::Unusable(e)) => {
                // FreeBSD would take this disk; say why we do not.
                mp_log!(
                    plat,
                    "{} has a label this module does not take: {}",
                    pname,
                    e
                );
                return None;
            }
        };
        if self.debug.load(Ordering::Relaxed) > 0 {
            plat.log(format_args!(
                "MULTIPATH: {}/{}",
                md.name.as_str(),
                md.uuid.as_str()
            ));
        }
        let sc = match self.index.live_by_uuid(plat, md.uuid.as_str()) {
            Some(sc) => sc,
            None => self.found_geom(plat, &md)?,
        };
        let fresh = sc.paths.all_free();
        if sc.add_disk(plat, pp).is_err() {
            if fresh {
                let _ = sc.destroy(plat, DestroyHow::Polite);
            }
            return None;
        }
        if fresh {
            if let Some(npp) = sc.provider() {
                plat.provider_announce(npp);
            }
        }
        sc.geom()
    }

    /// Whether `pp` is the provider of one of our own geoms (stopping
    /// ones included): our providers are all named `multipath/NAME`, so
    /// the index by name finds its owner without walking the class.
    fn is_own_provider(&self, plat: &P, pp: P::Provider) -> bool {
        let pname = plat.provider_name(pp);
        let Some(name) = pname.strip_prefix("multipath/") else {
            return false;
        };
        self.index
            .any_named(plat, name, |sc| sc.provider() == Some(pp))
    }

    /// Creates the geom for a newly seen uuid, renaming it when another
    /// device already has its name.
    fn found_geom(&self, plat: &P, md: &Metadata) -> Option<Arc<Softc<P>>> {
        let mut name = String::from(md.name.as_str());
        if let Some(other) = self.find_geom(plat, &name) {
            let mut tmp = String::new();
            let _ = write!(tmp, "{}-{}", name, plat.random());
            truncate_to(&mut tmp, NAME_MAX);
            mp_log!(plat, "geom {}/{} exists already", other.name, other.uuid);
            mp_log!(plat, "{} will be (temporarily) {}", md.uuid.as_str(), tmp);
            name = tmp;
        }
        match self.create_geom(
            plat,
            &name,
            md.uuid.as_str(),
            md.mode,
            md.size,
            md.sectorsize,
        ) {
            Ok(sc) => {
                sc.mark_labelled();
                Some(sc)
            }
            Err(_) => {
                mp_log!(plat, "cannot create geom {}/{}", name, md.uuid.as_str());
                None
            }
        }
    }
}

/// The class's index of its softcs by name and by uuid, so taste and
/// create find a device without walking every geom of the class (which
/// made assembling N devices quadratic in N).
///
/// Entries are added by [`Class::create_geom`] (the one place a softc is
/// made) and hold weak references: a destroyed device is invisible to the
/// lookups at once (they skip stopping softcs, as the class walk did) and
/// its entry goes when the softc is freed, at the next prune. Devices are
/// never renamed (`Softc::name` is fixed at creation), so create and destroy
/// are the only changes.
///
/// Read and changed only with the topology lock held. The spin lock only
/// makes the class `Sync`: it is held to move the maps out and back (a
/// pointer copy), never across an allocation or a free, which happen on
/// the maps while they are out, the topology lock keeping everyone else
/// away.
pub struct SoftcIndex<P: Platform> {
    maps: spin::Mutex<Maps<P>>,
}

struct Maps<P: Platform> {
    by_name: BTreeMap<String, Vec<Weak<Softc<P>>>>,
    by_uuid: BTreeMap<String, Vec<Weak<Softc<P>>>>,
    /// Entries (weak references) held, and how many there were after the
    /// last prune: pruning when they double keeps it O(1) per insert.
    entries: usize,
    pruned_at: usize,
}

impl<P: Platform> Maps<P> {
    const fn new() -> Self {
        Maps {
            by_name: BTreeMap::new(),
            by_uuid: BTreeMap::new(),
            entries: 0,
            pruned_at: 0,
        }
    }
}

impl<P: Platform> Default for SoftcIndex<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> SoftcIndex<P> {
    pub const fn new() -> Self {
        SoftcIndex {
            maps: spin::Mutex::new(Maps::new()),
        }
    }

    /// Runs `f` on the maps, moved out of the spin lock (see the type).
    fn with<R>(&self, plat: &P, f: impl FnOnce(&mut Maps<P>) -> R) -> R {
        plat.topology_assert();
        let mut maps = core::mem::replace(&mut *self.maps.lock(), Maps::new());
        let r = f(&mut maps);
        let empty = core::mem::replace(&mut *self.maps.lock(), maps);
        drop(empty);
        r
    }

    /// Adds a new softc (topology held).
    pub(crate) fn insert(&self, plat: &P, sc: &Arc<Softc<P>>) {
        self.with(plat, |m| {
            let w = Arc::downgrade(sc);
            m.by_name
                .entry(String::from(sc.name()))
                .or_default()
                .push(w.clone());
            m.entries += 1;
            if sc.is_automatic() {
                m.by_uuid
                    .entry(String::from(sc.uuid()))
                    .or_default()
                    .push(w);
                m.entries += 1;
            }
            if m.entries > 64 && m.entries >= 2 * m.pruned_at {
                let mut left = 0;
                for map in [&mut m.by_name, &mut m.by_uuid] {
                    map.retain(|_, v| {
                        v.retain(|w| w.strong_count() > 0);
                        left += v.len();
                        !v.is_empty()
                    });
                }
                m.entries = left;
                m.pruned_at = left;
            }
        });
    }

    /// The live (not stopping) softc of `key` in `map`, newest first.
    fn live(map: &BTreeMap<String, Vec<Weak<Softc<P>>>>, key: &str) -> Option<Arc<Softc<P>>> {
        map.get(key)?
            .iter()
            .rev()
            .filter_map(Weak::upgrade)
            .find(|sc| !sc.is_stopping())
    }

    /// The live device named `name` (topology held).
    pub fn live_by_name(&self, plat: &P, name: &str) -> Option<Arc<Softc<P>>> {
        self.with(plat, |m| Self::live(&m.by_name, name))
    }

    /// The live device of uuid `uuid` (topology held).
    pub fn live_by_uuid(&self, plat: &P, uuid: &str) -> Option<Arc<Softc<P>>> {
        self.with(plat, |m| Self::live(&m.by_uuid, uuid))
    }

    /// Whether a device named `name`, stopping ones included, passes `f`.
    fn any_named(&self, plat: &P, name: &str, f: impl Fn(&Softc<P>) -> bool) -> bool {
        self.with(plat, |m| {
            m.by_name
                .get(name)
                .is_some_and(|v| v.iter().filter_map(Weak::upgrade).any(|sc| f(&sc)))
        })
    }

    /// Empties the index (class fini, topology held), freeing its maps.
    pub(crate) fn clear(&self, plat: &P) {
        let old = self.with(plat, |m| core::mem::replace(m, Maps::new()));
        drop(old);
    }

    /// Weak references held (for tests: pruning keeps this bounded).
    pub fn entries(&self, plat: &P) -> usize {
        self.with(plat, |m| m.entries)
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_to(s: &mut String, max: usize) {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}
