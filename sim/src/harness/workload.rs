//! A user process doing random I/O on an open device, checking every read
//! against what it wrote: the data-integrity harness of the tests, the
//! scenario runner and the benchmarks.
//!
//! Requests in flight never overlap, so each sector's expected content is
//! known: never written (zeros), written with generation G (a pattern of
//! the sector number and G), or unknown (a write that failed may or may not
//! have reached the medium, so any content is accepted until the next
//! successful write).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use geom_multipath_rs::platform::{BioCmd, Errno};

use crate::bio::BioResult;
use crate::dev::Dev;
use crate::ids::BioId;
use crate::sched::Mode;
use crate::sim::SimPlatform;
use crate::util::{lock, wait_timeout, Rng};

/// What to run.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Bios to issue in all.
    pub bios: u64,
    /// At most this many in flight.
    pub queue_depth: usize,
    /// Share of reads, percent.
    pub read_percent: u32,
    /// Largest request, in sectors (each is 1..=this).
    pub max_sectors: u32,
    /// Bytes of the device to use, from offset 0 (0: all of it).
    pub span: u64,
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            bios: 1000,
            queue_depth: 8,
            read_percent: 50,
            max_sectors: 16,
            span: 0,
            seed: 1,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    pub issued: u64,
    pub completed: u64,
    pub failed: u64,
    pub reads_ok: u64,
    pub writes_ok: u64,
    /// Sectors that read back different from what was written.
    pub mismatches: u64,
    /// Completions reported twice for one bio.
    pub duplicates: u64,
    /// Bios never completed.
    pub lost: u64,
    /// Failures by errno.
    pub errors: BTreeMap<i32, u64>,
}

struct Op {
    write: bool,
    start: u64,
    nsec: u64,
    generation: u32,
}

const UNKNOWN: u32 = u32::MAX;

/// The content a sector written with `generation` holds.
pub fn pattern(sector: u64, generation: u32, out: &mut [u8]) {
    let mut r = Rng::new(sector.wrapping_mul(0x9e37_79b9) ^ ((generation as u64) << 40));
    for chunk in out.chunks_mut(8) {
        let v = r.next_u64().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    // Stamp the sector number and generation so a misplaced sector shows.
    if out.len() >= 12 {
        out[..8].copy_from_slice(&sector.to_le_bytes());
        out[8..12].copy_from_slice(&generation.to_le_bytes());
    }
}

type Inbox = Arc<(Mutex<VecDeque<(BioId, BioResult)>>, Condvar)>;

/// Runs `cfg` on `dev`. `hook(issued, completed)` runs before each bio is
/// issued (fault timelines, progress lines); it may inject faults or send
/// gctl requests.
pub fn run_workload(
    plat: &SimPlatform,
    dev: &Dev,
    cfg: &WorkloadConfig,
    hook: &mut dyn FnMut(u64, u64),
) -> WorkloadStats {
    let mut st = WorkloadStats::default();
    let Some((mediasize, ss)) = dev.size() else {
        st.lost = 0;
        st.failed = cfg.bios;
        return st;
    };
    let ss = ss.max(1) as u64;
    let span = if cfg.span == 0 {
        mediasize
    } else {
        cfg.span.min(mediasize)
    };
    let nsectors = span / ss;
    if nsectors == 0 {
        return st;
    }
    let mut state: Vec<u32> = vec![0; nsectors as usize];
    let mut rng = Rng::new(cfg.seed);
    let mut generation: u32 = 0;
    let inbox: Inbox = Arc::new((Mutex::new(VecDeque::new()), Condvar::new()));
    let mut pending: BTreeMap<BioId, Op> = BTreeMap::new();
    let mut seen: std::collections::BTreeSet<BioId> = std::collections::BTreeSet::new();
    let qd = cfg.queue_depth.max(1);
    let timeout = plat.sh.cfg.wait_timeout;

    while st.completed < cfg.bios {
        while st.issued < cfg.bios && pending.len() < qd {
            hook(st.issued, st.completed);
            // Pick a range that overlaps nothing in flight.
            let mut pick = None;
            for _ in 0..64 {
                let nsec = 1 + rng.below(cfg.max_sectors.max(1) as u64).min(nsectors - 1);
                let start = rng.below(nsectors - nsec + 1);
                if pending
                    .values()
                    .all(|o| start + nsec <= o.start || o.start + o.nsec <= start)
                {
                    pick = Some((start, nsec));
                    break;
                }
            }
            let Some((start, nsec)) = pick else { break };
            let write = rng.below(100) >= cfg.read_percent as u64;
            let (cmd, data) = if write {
                generation = generation.wrapping_add(1).max(1);
                if generation == UNKNOWN {
                    generation = 1;
                }
                let mut buf = vec![0u8; (nsec * ss) as usize];
                for (i, chunk) in buf.chunks_mut(ss as usize).enumerate() {
                    pattern(start + i as u64, generation, chunk);
                }
                (BioCmd::Write, Some(buf))
            } else {
                (BioCmd::Read, None)
            };
            let ib = inbox.clone();
            let r = dev.submit(cmd, start * ss, nsec * ss, data, move |id, res| {
                lock(&ib.0).push_back((id, res));
                ib.1.notify_all();
            });
            st.issued += 1;
            match r {
                Ok(id) => {
                    // Completed within the submission (direct dispatch: a
                    // start that failed it at once): as for an error at
                    // submission below, let the other threads' queued
                    // work run meanwhile.
                    if plat.mode() == Mode::Deterministic
                        && lock(&inbox.0).iter().any(|(i, _)| *i == id)
                    {
                        plat.run_until_idle();
                    }
                    pending.insert(
                        id,
                        Op {
                            write,
                            start,
                            nsec,
                            generation,
                        },
                    );
                }
                Err(e) => {
                    st.completed += 1;
                    st.failed += 1;
                    *st.errors.entry(e).or_default() += 1;
                    if write {
                        for s in start..start + nsec {
                            state[s as usize] = UNKNOWN;
                        }
                    }
                    // The process got its error at once and never sleeps:
                    // in deterministic mode nothing else would run until
                    // the workload ends, so let the queued work (events,
                    // a revived path's taste, completions) run, as the
                    // other threads of a real machine would meanwhile.
                    if plat.mode() == Mode::Deterministic {
                        plat.run_until_idle();
                    }
                }
            }
        }
        if st.completed >= cfg.bios {
            break;
        }
        // Wait for at least one completion.
        let got = match plat.mode() {
            Mode::Deterministic => plat.run_until(|| !lock(&inbox.0).is_empty()),
            Mode::Threaded => {
                let deadline = Instant::now() + timeout;
                let mut q = lock(&inbox.0);
                while q.is_empty() && Instant::now() < deadline {
                    q = wait_timeout(&inbox.1, q, Duration::from_millis(20));
                }
                !q.is_empty()
            }
        };
        if !got {
            st.lost += pending.len() as u64;
            break;
        }
        let batch: Vec<(BioId, BioResult)> = lock(&inbox.0).drain(..).collect();
        for (id, res) in batch {
            let Some(op) = pending.remove(&id) else {
                if seen.contains(&id) {
                    st.duplicates += 1;
                }
                continue;
            };
            seen.insert(id);
            st.completed += 1;
            check(&mut st, &mut state, &op, &res, ss);
        }
    }
    // Late completions (duplicates) that arrived after the last one.
    plat.run_until_idle();
    for (id, _) in lock(&inbox.0).drain(..) {
        if seen.contains(&id) || !pending.contains_key(&id) {
            st.duplicates += 1;
        }
    }
    st
}

fn check(st: &mut WorkloadStats, state: &mut [u32], op: &Op, res: &BioResult, ss: u64) {
    let err: Errno = res.error;
    if err != 0 {
        st.failed += 1;
        *st.errors.entry(err).or_default() += 1;
        if op.write {
            for s in op.start..op.start + op.nsec {
                state[s as usize] = UNKNOWN;
            }
        }
        return;
    }
    if op.write {
        st.writes_ok += 1;
        for s in op.start..op.start + op.nsec {
            state[s as usize] = op.generation;
        }
        return;
    }
    st.reads_ok += 1;
    let mut expect = vec![0u8; ss as usize];
    for i in 0..op.nsec {
        let s = op.start + i;
        let got = res.data.get((i * ss) as usize..((i + 1) * ss) as usize);
        let g = state[s as usize];
        if g == UNKNOWN {
            continue;
        }
        if g == 0 {
            expect.fill(0);
        } else {
            pattern(s, g, &mut expect);
        }
        if got != Some(&expect[..]) {
            st.mismatches += 1;
        }
    }
}
