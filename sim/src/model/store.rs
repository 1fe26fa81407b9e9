//! Backing stores for LUNs: memory (sparse, allocated on first write) and a
//! sparse file for runs larger than memory should hold.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::util::lock;

/// The medium behind every path of a LUN.
pub trait Store: Send + Sync {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// The LUN grew to `size` bytes: the medium must hold them. Never
    /// shrinks (a path that shrank only stops reaching the bytes past it).
    fn grow(&self, size: u64) -> io::Result<()> {
        let _ = size;
        Ok(())
    }
    /// BIO_DELETE: the range reads back as zeros.
    fn zero(&self, offset: u64, len: u64) -> io::Result<()> {
        let chunk = vec![0u8; len.min(1 << 20) as usize];
        let mut off = offset;
        let end = offset + len;
        while off < end {
            let n = ((end - off) as usize).min(chunk.len());
            self.write(off, &chunk[..n])?;
            off += n as u64;
        }
        Ok(())
    }
}

/// 4 KiB: a LUN holding only its label (one sector) costs one page, which
/// keeps an idle LUN of `mpsim scale` well under 64 KiB.
const CHUNK: u64 = 4 * 1024;

/// Memory, in 4 KiB chunks made on first write: a 1 TiB LUN costs
/// nothing until written.
#[derive(Default)]
pub struct MemStore {
    chunks: Mutex<BTreeMap<u64, Box<[u8]>>>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

impl Store for MemStore {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let chunks = lock(&self.chunks);
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset + done as u64;
            let (ci, co) = (off / CHUNK, (off % CHUNK) as usize);
            let n = (buf.len() - done).min(CHUNK as usize - co);
            match chunks.get(&ci) {
                Some(c) => buf[done..done + n].copy_from_slice(&c[co..co + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut chunks = lock(&self.chunks);
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset + done as u64;
            let (ci, co) = (off / CHUNK, (off % CHUNK) as usize);
            let n = (buf.len() - done).min(CHUNK as usize - co);
            let c = chunks
                .entry(ci)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            c[co..co + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }
}

/// A sparse file of the LUN's size; removed on drop when the simulator
/// created it.
pub struct FileStore {
    file: File,
    path: PathBuf,
    remove: bool,
}

impl FileStore {
    /// Creates (truncating) a sparse file of `size` bytes at `path`.
    pub fn create(path: &Path, size: u64, remove_on_drop: bool) -> io::Result<FileStore> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(size)?;
        Ok(FileStore {
            file,
            path: path.to_path_buf(),
            remove: remove_on_drop,
        })
    }
}

impl Store for FileStore {
    fn grow(&self, size: u64) -> io::Result<()> {
        if self.file.metadata()?.len() < size {
            self.file.set_len(size)?;
        }
        Ok(())
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
