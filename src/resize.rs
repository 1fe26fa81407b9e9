//! Resize: a path's provider changed size (a LUN grown or shrunk on the
//! array and re-probed). GEOM calls the geom's resize method for each
//! consumer of a provider whose size changed (`g_resize_provider`); this is
//! that method for a multipath geom.
//!
//! What it does, as FreeBSD's class does:
//! - a path that shrank below the device's raw size sets the new size at
//!   once; a path that grew only counts once every path has: the new size
//!   is the smallest path;
//! - the provider is the raw size less the label sector on a device with a
//!   uuid, and is resized with `g_resize_provider`;
//! - a labelled device that shrank must still find its label in the last
//!   sector of the shrunk path (an administrator relabels for the new size);
//!   when it does not, the device is destroyed, as its paths no longer carry
//!   it;
//! - a labelled device gets a fresh label at the new end of a path, so
//!   taste finds it there after a reboot or a path's return.
//!
//! Differences: a LOST path (leaving, its teardown waiting for its I/O)
//! neither triggers a resize nor holds the new size back; the label is
//! written on a path whose size is the new size (the resized one when it
//! is), so it always sits where taste looks for it.

use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::Ordering;

use crate::class::{DestroyHow, Softc};
use crate::metadata::{Metadata, MetadataError};
use crate::mp_log;
use crate::path::st;
use crate::platform::{Errno, Platform};
use crate::taste::{read_last_sector, write_last_sector};

/// Why the label of a shrunk path no longer carries the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LabelGone {
    /// The last sector could not be read.
    Unreadable(Errno),
    /// It holds no well-formed label (magic, version, fields).
    Invalid(MetadataError),
    /// A label of another device (another uuid).
    OtherUuid,
    /// A label of this uuid under another name.
    OtherName,
    /// A label written for another size or sector size.
    Geometry(MetadataError),
}

impl fmt::Display for LabelGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelGone::Unreadable(e) => write!(f, "cannot be read (error {e})"),
            LabelGone::Invalid(e) => write!(f, "is gone: {e}"),
            LabelGone::OtherUuid => write!(f, "belongs to another device"),
            LabelGone::OtherName => write!(f, "carries another name"),
            LabelGone::Geometry(e) => write!(f, "does not match: {e}"),
        }
    }
}

impl<P: Platform> Softc<P> {
    /// `g_resize_t` (topology held): the provider under `cp` changed size.
    pub fn resize(self: &Arc<Self>, plat: &P, cp: P::Consumer) {
        plat.topology_assert();
        if self.is_stopping() {
            return;
        }
        let Some(slot) = self.slot_of(cp) else { return };
        if self.paths.has(slot, st::LOST) {
            return;
        }
        let Some(pp) = plat.consumer_provider(cp) else {
            return;
        };
        let cur = self.size.load(Ordering::SeqCst);
        let here = plat.provider_mediasize(pp);
        let (size, sectorsize) = if here < cur {
            (here, plat.provider_sectorsize(pp))
        } else {
            match self.smallest_path(plat) {
                Some((size, ss)) if size != cur => (size, ss),
                _ => return,
            }
        };
        let psize = if self.is_automatic() {
            size.saturating_sub(u64::from(sectorsize))
        } else {
            size
        };
        let old = self
            .provider()
            .map_or_else(|| self.provider_size(), |p| plat.provider_mediasize(p));
        mp_log!(plat, "{} size changed from {} to {}", self.name, old, psize);
        if self.is_labelled() && size < cur {
            // The label must still be there, written for the new size.
            self.paths.hold(slot);
            let sector = read_last_sector(plat, cp);
            let drained = self.paths.put(slot);
            let verdict = match sector {
                Ok(s) => self.label_still_ours(&s, size, sectorsize),
                Err(e) => Err(LabelGone::Unreadable(e)),
            };
            let pname = self.paths.name(slot);
            if drained {
                // Lost while we read: its teardown waited for us.
                self.teardown(plat, slot, false);
            }
            if self.is_stopping() || self.slot_of(cp) != Some(slot) {
                // Destroyed or the path gone meanwhile: nothing to resize.
                return;
            }
            if let Err(why) = verdict {
                mp_log!(
                    plat,
                    "{} shrank and its label on {} {}",
                    self.name,
                    pname,
                    why
                );
                // An error means the destroy is already on its way.
                let _ = self.destroy(plat, DestroyHow::Forced);
                return;
            }
        }
        self.size.store(size, Ordering::SeqCst);
        if let Some(mpp) = self.provider() {
            plat.resize_provider(mpp, psize);
        }
        if self.is_labelled() {
            self.relabel(plat, slot, size, sectorsize);
        }
    }

    /// The smallest path that may carry I/O (attached, not LOST), as
    /// (mediasize, sectorsize).
    fn smallest_path(&self, plat: &P) -> Option<(u64, u32)> {
        self.paths
            .newest_first()
            .into_iter()
            .filter(|&i| !self.paths.has(i, st::LOST))
            .filter_map(|i| plat.consumer_provider(self.consumer(i)))
            .map(|pp| (plat.provider_mediasize(pp), plat.provider_sectorsize(pp)))
            .min_by_key(|&(size, _)| size)
    }

    /// Whether `sector`, the last sector of a path of `size` bytes, still
    /// holds this device's label written for that size.
    fn label_still_ours(&self, sector: &[u8], size: u64, sectorsize: u32) -> Result<(), LabelGone> {
        // Read as taste reads it (C strings, zeros not compared), as
        // FreeBSD's resize compares it.
        let md = Metadata::read(sector).map_err(LabelGone::Invalid)?.metadata;
        if md.uuid.as_str() != self.uuid {
            return Err(LabelGone::OtherUuid);
        }
        if md.name.as_str() != self.name {
            return Err(LabelGone::OtherName);
        }
        md.check_provider(size, sectorsize)
            .map_err(LabelGone::Geometry)
    }

    /// Writes the label for the new `size` at the end of a path of exactly
    /// that size: the resized path `slot` when it is one, else the first
    /// such path. Topology held; dropped for the write.
    fn relabel(self: &Arc<Self>, plat: &P, slot: usize, size: u64, sectorsize: u32) {
        let fits = |i: usize| {
            !self.paths.has(i, st::LOST)
                && plat
                    .consumer_provider(self.consumer(i))
                    .is_some_and(|pp| plat.provider_mediasize(pp) == size)
        };
        let target = if fits(slot) {
            Some(slot)
        } else {
            self.paths.newest_first().into_iter().find(|&i| fits(i))
        };
        let Some(t) = target else { return };
        let pname = self.paths.name(t);
        let r = self
            .label_sector(size, sectorsize, self.mode())
            .and_then(|sector| {
                self.paths.hold(t);
                let r = write_last_sector(plat, self.consumer(t), &sector);
                if self.paths.put(t) {
                    // Lost while we wrote: its teardown waited for us.
                    self.teardown(plat, t, false);
                }
                r
            });
        if let Err(e) = r {
            mp_log!(plat, "Can't update metadata on {} ({})", pname, e);
        }
    }
}
