//! Taste: is a new provider a path of a labelled multipath device?
//!
//! GEOM offers every new provider to every class. We read its last sector
//! through a throw-away geom, and when it holds a GEOM::MULTIPATH label
//! written for a provider of exactly this size, the provider joins the geom
//! of the same uuid, or founds it.

use alloc::string::String;
use alloc::sync::Arc;
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
    let result = match plat.attach(cp, pp) {
        Err(e) => Err(e),
        Ok(()) => {
            let r = match plat.access(cp, Access::new(1, 0, 0)) {
                Err(e) => Err(e),
                Ok(()) => {
                    plat.topology_unlock();
                    let data = plat.read_data(cp, offset, sectorsize as usize);
                    plat.topology_lock();
                    // Closing a reader cannot fail in GEOM.
                    let _ = plat.access(cp, Access::new(-1, 0, 0));
                    data
                }
            };
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
    if extra.is_open() {
        plat.access(cp, extra)?;
    }
    plat.topology_unlock();
    let r = plat.read_data(cp, offset, length);
    plat.topology_lock();
    if extra.is_open() {
        // Closing a reader cannot fail in GEOM.
        let _ = plat.access(cp, extra.neg());
    }
    r
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
    if extra.is_open() {
        plat.access(cp, extra)?;
    }
    plat.topology_unlock();
    let r = plat.write_data(cp, offset, sector);
    plat.topology_lock();
    if extra.is_open() {
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
        let sc = match self
            .live_softcs(plat)
            .into_iter()
            .find(|sc| sc.uuid == md.uuid.as_str())
        {
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

    /// Whether `pp` is the provider of one of our own geoms.
    fn is_own_provider(&self, plat: &P, pp: P::Provider) -> bool {
        plat.class_geoms()
            .into_iter()
            .filter_map(|gp| plat.geom_softc(gp))
            .any(|sc| sc.provider() == Some(pp))
    }

    /// Creates the geom for a newly seen uuid, renaming it when another
    /// device already has its name.
    fn found_geom(&self, plat: &P, md: &Metadata) -> Option<Arc<Softc<P>>> {
        let mut name = String::from(md.name.as_str());
        if let Some(other) = self
            .live_softcs(plat)
            .into_iter()
            .find(|sc| sc.name == name)
        {
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

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_to(s: &mut String, max: usize) {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}
