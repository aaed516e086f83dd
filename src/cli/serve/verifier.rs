//! Incremental verification for `/api/verify` and `nexus_audit_chain_ok`.
//!
//! After a clean run the verifier remembers the end it proved (the last line's offset, `seq`
//! and hash). When the file has only grown since, it checks that the remembered line is still
//! there unchanged and verifies only what follows, linked to it; the report is then the one a
//! full run would give. It re-checks the whole file when the file was replaced, shrank or
//! changed without growing, when the appended part has a problem (so the report is exactly the
//! full one), and in any case once every `--full-verify-every`.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Verifier as ChainVerifier;
use crate::chain::{self, Hash};
use crate::verify::{Report, Resume};

/// While a failed log only grows, it is re-checked whole after waiting this many times as long
/// as the last full run took: at most a fifth of the time goes to re-checking it.
const FAILED_BACKOFF: u32 = 4;

/// What identifies one state of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The end of a clean run.
struct Proved {
    id: FileId,
    /// Complete lines (all records: the run was clean).
    lines: u64,
    /// Bytes of complete lines.
    end: usize,
    /// Where the last line starts.
    last_offset: usize,
    seq: u64,
    hash: Hash,
    report: Report,
}

#[derive(Default)]
struct State {
    last: Option<(FileId, Arc<Report>)>,
    proved: Option<Proved>,
    last_full: Option<Instant>,
    last_full_took: Duration,
}

pub struct Verifier {
    path: PathBuf,
    every: Duration,
    state: Mutex<State>,
}

impl Verifier {
    pub fn new(path: PathBuf, every: Duration) -> Verifier {
        Verifier {
            path,
            every,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether the chain verified at the last check; `None` before the first.
    pub fn last_ok(&self) -> Option<bool> {
        let st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.last.as_ref().map(|(_, r)| r.ok)
    }

    /// The report for the log as it is now: from the cache when the file did not change,
    /// incrementally when it only grew, else by a full run.
    ///
    /// # Errors
    ///
    /// A sentence when the log is missing or unreadable.
    pub fn refresh(&self) -> Result<Arc<Report>, String> {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let meta = std::fs::metadata(&self.path)
            .map_err(|_| format!("the log file {} does not exist", self.path.display()))?;
        let id = FileId::of(&meta);
        let due = st.last_full.is_none_or(|t| t.elapsed() >= self.every);
        if let Some((seen, report)) = &st.last
            && !due
        {
            if *seen == id {
                return Ok(Arc::clone(report));
            }
            // A broken log that only keeps growing stays broken: re-checking a large one whole
            // at every append would keep the cores busy. A rewrite is re-checked at once.
            let only_grew = seen.dev == id.dev && seen.ino == id.ino && id.len > seen.len;
            if !report.ok
                && only_grew
                && st
                    .last_full
                    .is_some_and(|t| t.elapsed() < st.last_full_took * FAILED_BACKOFF)
            {
                return Ok(Arc::clone(report));
            }
        }
        let snapshot = crate::Snapshot::open(&self.path)
            .map_err(|e| format!("cannot read the log {}: {e}", self.path.display()))?;
        let incremental = match &st.proved {
            Some(p) if !due && grew_from(p, &id) => resume(p, snapshot.data()).and_then(|r| {
                let tail = ChainVerifier::new().resume_from(r).run(&snapshot).ok()?;
                tail.ok.then(|| joined(&p.report, tail))
            }),
            _ => None,
        };
        let report = if let Some(r) = incremental {
            r
        } else {
            let started = Instant::now();
            let r = ChainVerifier::new()
                .run(&snapshot)
                .map_err(|e| format!("cannot verify the log: {e}"))?;
            st.last_full = Some(Instant::now());
            st.last_full_took = started.elapsed();
            r
        };
        st.proved = proved(&snapshot, id, &report);
        let report = Arc::new(report);
        st.last = Some((id, Arc::clone(&report)));
        Ok(report)
    }
}

/// True when the file is the one proved and has only grown since.
fn grew_from(p: &Proved, now: &FileId) -> bool {
    p.id.dev == now.dev && p.id.ino == now.ino && now.len > p.id.len
}

/// Where to resume: after the proved end, if the line there is still the one proved.
fn resume(p: &Proved, data: &[u8]) -> Option<Resume> {
    let line = data.get(p.last_offset..p.end.checked_sub(1)?)?;
    if data.get(p.end - 1) != Some(&b'\n') || chain::hash_line(line) != p.hash {
        return None;
    }
    Some(Resume {
        lines: p.lines,
        offset: p.end,
        last_offset: p.last_offset,
        seq: p.seq,
        hash: p.hash,
    })
}

/// The report of a full run, from the report up to the proved end and the one of the rest.
fn joined(base: &Report, tail: Report) -> Report {
    let grew = tail.records > 0;
    Report {
        ok: tail.ok,
        file: tail.file,
        records: base.records + tail.records,
        bytes: tail.bytes,
        first_seq: base.first_seq.or(tail.first_seq),
        last_seq: if grew { tail.last_seq } else { base.last_seq },
        first_timestamp: base.first_timestamp.clone().or(tail.first_timestamp),
        last_timestamp: if grew {
            tail.last_timestamp
        } else {
            base.last_timestamp.clone()
        },
        head_hash: if grew {
            tail.head_hash
        } else {
            base.head_hash.clone()
        },
        problems: tail.problems,
        problems_total: tail.problems_total,
        checkpoints_checked: 0,
        sealed_through_seq: None,
        unsealed_records: None,
        anchored: None,
    }
}

/// The end a clean report proves, to resume from next time.
fn proved(snapshot: &crate::Snapshot, id: FileId, report: &Report) -> Option<Proved> {
    if !report.ok || report.records == 0 {
        return None;
    }
    let data = snapshot.data();
    let (last_offset, line) = snapshot.lines_rev().next()?;
    let last_offset = usize::try_from(last_offset).ok()?;
    Some(Proved {
        // NOTE: the id is from before the snapshot; a record appended in between is simply
        // checked again next time.
        id: FileId {
            len: id.len.min(data.len() as u64),
            ..id
        },
        lines: report.records,
        end: data.len(),
        last_offset,
        seq: report.last_seq?,
        hash: chain::hash_line(line),
        report: report.clone(),
    })
}
