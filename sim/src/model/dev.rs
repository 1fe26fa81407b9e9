//! DEV: the class that gives every provider its `/dev` node, and the user
//! side of it — a process opening `/dev/NAME` and issuing bios.
//!
//! As in the kernel, DEV tastes every provider and attaches one consumer to
//! it with no access; `open(2)` adds access on that consumer
//! (`g_dev_open`), `close(2)` removes it (the last writer closing makes
//! GEOM retaste the provider), and I/O goes down through it. When the
//! provider goes away DEV drops whatever access is held and withers its
//! geom; the washer frees it once the last in-flight bio is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use geom_multipath_rs::platform::{Access, BioCmd, Errno, ENOENT, ENXIO};

use crate::bio::{Bio, BioResult, DoneTarget};
use crate::class::SimClass;
use crate::ids::{BioId, ConsumerId, GeomId, ProviderId};
use crate::sim::SimPlatform;
use crate::topology::Direct;

pub(crate) struct DevClass;

struct DevSoftc {
    /// The provider was orphaned: DEV already dropped every open's access.
    gone: AtomicBool,
}

impl SimClass for DevClass {
    fn name(&self) -> &str {
        "DEV"
    }
    fn tastes(&self) -> bool {
        true
    }
    fn taste(&self, plat: &SimPlatform, pp: ProviderId) -> Option<GeomId> {
        let name = plat.provider_name_of(pp)?;
        // The geom first: its softc needs the consumer, made right after.
        let gp = plat.g_new_geom(&name, None).ok()?;
        let cp = plat.g_new_consumer(gp).ok()?;
        // As g_dev: a process's bio goes down in its own thread and comes
        // back in the completer's.
        plat.set_consumer_direct(cp, Direct::BOTH);
        if plat.g_attach(cp, pp).is_err() {
            plat.g_destroy_consumer(cp);
            plat.g_destroy_geom(gp);
            return None;
        }
        let sc = Arc::new(DevSoftc {
            gone: AtomicBool::new(false),
        });
        if let Some(g) = plat.topo().geom.get_mut(&gp) {
            g.softc = Some(sc);
        }
        Some(gp)
    }
    fn start(&self, plat: &SimPlatform, _gp: GeomId, bp: Bio) {
        plat.g_io_deliver(bp, ENXIO);
    }
    /// g_dev_resize: the node follows the provider's new size (read from
    /// the provider on each use), so nothing is orphaned on a shrink.
    fn has_resize(&self) -> bool {
        true
    }
    fn orphan(&self, plat: &SimPlatform, cp: ConsumerId) {
        let Some(gp) = plat.consumer_geom(cp) else {
            return;
        };
        if let Some(sc) = plat.geom_softc::<DevSoftc>(gp) {
            sc.gone.store(true, Ordering::Release);
        }
        if let Some(acc) = plat.consumer_acc(cp) {
            if acc.is_open() {
                let _ = plat.g_access(cp, acc.neg());
            }
        }
        plat.g_wither_geom(gp, ENXIO);
    }
}

/// An open `/dev/NAME`, as a process holds it. Closed on drop.
pub struct Dev {
    plat: SimPlatform,
    name: String,
    cp: ConsumerId,
    pp: ProviderId,
    sc: Arc<DevSoftc>,
    acc: Access,
    closed: bool,
    /// Reads and writes go down as unmapped bios (`BIO_UNMAPPED`).
    unmapped: AtomicBool,
}

impl SimPlatform {
    /// `open("/dev/NAME", flags)`: `acc` is (FREAD, FWRITE, O_EXCL) as
    /// counts. ENOENT when the node does not exist (not tasted by DEV, or
    /// gone); g_access's error otherwise (EPERM for an exclusive conflict).
    pub fn open(&self, name: &str, acc: Access) -> Result<Dev, Errno> {
        let name = name.strip_prefix("/dev/").unwrap_or(name).to_string();
        self.with_topology(|| self.open_locked(&name, acc))
    }

    fn open_locked(&self, name: &str, acc: Access) -> Result<Dev, Errno> {
        let pp = self.g_provider_by_name(name).ok_or(ENOENT)?;
        let dev_class = *crate::util::lock(&self.sh.dev_class);
        let (cp, sc) = self
            .provider_consumers(pp)
            .into_iter()
            .filter_map(|cp| {
                let gp = self.consumer_geom(cp)?;
                let is_dev = self
                    .topo()
                    .geom
                    .get(&gp)
                    .map(|g| Some(g.class) == dev_class)
                    .unwrap_or(false);
                if !is_dev {
                    return None;
                }
                let sc = self.geom_softc::<DevSoftc>(gp)?;
                (!sc.gone.load(Ordering::Acquire)).then_some((cp, sc))
            })
            .next()
            .ok_or(ENOENT)?;
        if acc.is_open() {
            self.g_access(cp, acc)?;
        }
        Ok(Dev {
            plat: self.clone(),
            name: name.to_string(),
            cp,
            pp,
            sc,
            acc,
            closed: false,
            unmapped: AtomicBool::new(false),
        })
    }
}

impl Dev {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn provider(&self) -> ProviderId {
        self.pp
    }
    /// (mediasize, sectorsize) of the provider, if it still exists.
    pub fn size(&self) -> Option<(u64, u32)> {
        self.plat.provider_size(self.pp)
    }
    /// Whether the provider takes unmapped bios (`G_PF_ACCEPT_UNMAPPED`),
    /// which a user checks before building them.
    pub fn accepts_unmapped(&self) -> bool {
        self.plat
            .provider_accepts_unmapped_of(self.pp)
            .unwrap_or(false)
    }
    /// From now on send reads and writes as unmapped bios (`BIO_UNMAPPED`),
    /// as a file system does with unmapped buffers; the data still travels
    /// (the simulator keeps it), only the flag changes. Sending them to a
    /// provider without `G_PF_ACCEPT_UNMAPPED` is a violation.
    pub fn set_unmapped_io(&self, on: bool) {
        self.unmapped.store(on, Ordering::Release);
    }
    fn unmapped_for(&self, cmd: BioCmd) -> bool {
        matches!(cmd, BioCmd::Read | BioCmd::Write) && self.unmapped.load(Ordering::Acquire)
    }
    fn alive(&self) -> bool {
        !self.closed && !self.sc.gone.load(Ordering::Acquire) && self.plat.consumer_exists(self.cp)
    }

    /// Issues one bio (`strategy`); `done` runs on g_up when it completes
    /// and must not sleep. Returns the bio id, or ENXIO once the device
    /// is gone.
    pub fn submit(
        &self,
        cmd: BioCmd,
        offset: u64,
        length: u64,
        data: Option<Vec<u8>>,
        done: impl Fn(BioId, BioResult) + Send + Sync + 'static,
    ) -> Result<BioId, Errno> {
        // Like destroy_dev(9), which waits for threads inside the driver:
        // the check and the request are one step under the topology lock,
        // so an orphan cannot destroy the consumer between them.
        self.plat.with_topology(|| {
            if !self.alive() {
                return Err(ENXIO);
            }
            let buf = match cmd {
                BioCmd::Read | BioCmd::GetAttr => Some(vec![0u8; length as usize]),
                BioCmd::Write => Some(data.unwrap_or_else(|| vec![0u8; length as usize])),
                _ => data,
            };
            let mut bp = self.plat.new_bio(
                cmd,
                offset,
                length,
                buf.map(|b| Arc::new(Mutex::new(b))),
                DoneTarget::User(Arc::new(done)),
            );
            if self.unmapped_for(cmd) {
                self.plat.set_bio_unmapped(&mut bp, true);
            }
            let id = bp.id();
            self.plat.g_io_request(bp, self.cp);
            Ok(id)
        })
    }

    /// `pread(2)`: sleeps until done; the bytes transferred. Out-of-range
    /// requests follow `g_io_check`, which the simulator applies on the
    /// way down (`SimPlatform::io_check`): an offset past the end is EIO,
    /// a request running past the end is cut at it, and one starting at
    /// the end moves nothing. So, as pread(2) on a disk device, a read
    /// running past the end returns the part before it (a short read) and
    /// one at the end returns nothing.
    pub fn read(&self, offset: u64, length: usize) -> Result<Vec<u8>, Errno> {
        let r = self.transfer("read", BioCmd::Read, offset, vec![0; length])?;
        let mut data = r.data;
        data.truncate(usize::try_from(r.completed).unwrap_or(usize::MAX));
        Ok(data)
    }

    /// `pwrite(2)`: sleeps until done; the bytes written, fewer than
    /// `data` when the request runs past the end of the device (cut there
    /// by `g_io_check`, see [`Dev::read`]).
    pub fn pwrite(&self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        let r = self.transfer("write", BioCmd::Write, offset, data.to_vec())?;
        Ok(usize::try_from(r.completed)
            .unwrap_or(usize::MAX)
            .min(data.len()))
    }

    /// The BIO_READ or BIO_WRITE `cmd` of `data` at `offset` for
    /// [`Dev::read`] and [`Dev::pwrite`]: ENXIO once the device is gone;
    /// otherwise sleeps until done.
    fn transfer(
        &self,
        what: &str,
        cmd: BioCmd,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<BioResult, Errno> {
        if !self.alive() {
            return Err(ENXIO);
        }
        let unmapped = self.unmapped_for(cmd);
        self.plat
            .sync_io_full(what, self.cp, cmd, None, unmapped, offset, data)
    }

    /// Writes all of `data` at `offset` ([`Dev::pwrite`]) or fails. A write
    /// the end of the device cuts short fails with EIO: the kernel would
    /// return the short count, which [`Dev::pwrite`] gives; a caller of
    /// this one asked for every byte.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), Errno> {
        match self.pwrite(offset, data)? {
            n if n == data.len() => Ok(()),
            _ => Err(geom_multipath_rs::platform::EIO),
        }
    }

    /// A BIO_GETATTR for `attr` with a buffer of `len` bytes, as
    /// `g_io_getattr` issues it for `ioctl(2)` (DIOCGPHYSPATH: `diskinfo
    /// -p`): the first `bio_completed` bytes of the buffer. Sleeps until
    /// done; needs read access.
    pub fn getattr(&self, attr: &str, len: usize) -> Result<Vec<u8>, Errno> {
        if !self.alive() {
            return Err(ENXIO);
        }
        self.plat.g_io_getattr(self.cp, attr, len)
    }

    /// [`Dev::getattr`] of a string attribute: the text before its NUL.
    pub fn getattr_str(&self, attr: &str, len: usize) -> Result<String, Errno> {
        let b = self.getattr(attr, len)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(String::from_utf8_lossy(&b[..end]).into_owned())
    }

    /// `fsync(2)`: BIO_FLUSH.
    pub fn flush(&self) -> Result<(), Errno> {
        if !self.alive() {
            return Err(ENXIO);
        }
        self.plat
            .sync_io("flush", self.cp, BioCmd::Flush, 0, Vec::new())
            .map(|_| ())
    }

    /// `close(2)`: gives back the access (a last writer closing makes
    /// GEOM retaste the provider).
    pub fn close(mut self) -> Result<(), Errno> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<(), Errno> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if !self.acc.is_open() {
            return Ok(());
        }
        self.plat.with_topology(|| {
            if self.sc.gone.load(Ordering::Acquire) || !self.plat.consumer_exists(self.cp) {
                Ok(())
            } else {
                self.plat.g_access(self.cp, self.acc.neg())
            }
        })
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}
