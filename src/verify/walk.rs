//! The walk: hashes and parses every line in parallel, one window of the file at a time, then
//! checks each link in order with a few records of look-ahead (the table in [`super`] says
//! what each kind of tampering is reported as).

use std::collections::VecDeque;

use crate::chain::{self, ChainError, Hash};
use crate::error::Result;
use crate::reader::Snapshot;
use crate::record::RecordView;

use super::diagnose::{Anchor, Diagnosis, Rec, diagnose};
use super::report::{Problem, ProblemKind, Report, insert_in_order};

/// Where an incremental verification starts: after the first `lines` lines, whose last line
/// (ending at byte `offset`) has `seq` and hashes to `hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// Lines already verified.
    pub lines: u64,
    /// Byte offset of the first line not yet verified.
    pub offset: usize,
    /// Byte offset of the last verified line.
    pub last_offset: usize,
    /// `seq` of the last verified line.
    pub seq: u64,
    /// SHA-256 of the last verified line.
    pub hash: Hash,
}

/// How the walk runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalkOptions {
    /// List at most this many problems; counting goes on.
    pub max_problems: usize,
    /// Worker threads (`None`: all cores).
    pub threads: Option<usize>,
    /// Bytes of whole lines one worker hashes and parses as one job (at least 1).
    pub chunk_size: usize,
}

/// Walks an open snapshot from `resume` on (only the lines after it, and the link from the
/// first of them to the resumed head), or from the start.
///
/// # Errors
///
/// [`Error::InvalidConfig`](crate::error::Error::InvalidConfig) when the thread pool cannot be built.
pub(crate) fn walk(
    snapshot: &Snapshot,
    opts: &WalkOptions,
    progress: &(dyn Fn(u64) + Sync),
    resume: Option<Resume>,
) -> Result<Report> {
    let all = snapshot.data();
    let start = resume.map_or(0, |r| r.offset.min(all.len()));
    let from = Start {
        lines: resume.map_or(0, |r| r.lines),
        base: start as u64,
        anchor: resume.map(|r| (r.seq, r.hash, r.last_offset as u64)),
    };
    let w = walk_bytes(&all[start..], snapshot.torn_tail(), from, opts, progress)?;
    Ok(Report {
        ok: w.problems_total == 0,
        file: snapshot.path().display().to_string(),
        records: w.records,
        bytes: snapshot.len(),
        first_seq: w.first.map(|r| r.seq),
        last_seq: w.last.map(|r| r.seq),
        first_timestamp: w.first_timestamp,
        last_timestamp: w.last_timestamp,
        head_hash: w.last.map(|r| hex::encode(r.hash)),
        problems: w.problems,
        problems_total: w.problems_total,
        checkpoints_checked: 0,
        sealed_through_seq: None,
        unsealed_records: None,
        anchored: None,
    })
}

/// Where a walk over some bytes starts: after `lines` lines and `base` bytes of the whole
/// log, linked to `anchor` (`seq`, hash and byte offset of the record before), or checked as
/// the log's start (genesis) without one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Start {
    pub lines: u64,
    pub base: u64,
    pub anchor: Option<(u64, Hash, u64)>,
}

/// What a walk over some bytes found.
#[derive(Clone, Debug, Default)]
pub(crate) struct Walked {
    pub lines: u64,
    pub records: u64,
    pub first: Option<WalkedRec>,
    pub last: Option<WalkedRec>,
    pub first_timestamp: Option<String>,
    pub last_timestamp: Option<String>,
    pub problems: Vec<Problem>,
    pub problems_total: u64,
}

/// A record the walk met: its `seq` and hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalkedRec {
    pub seq: u64,
    pub hash: Hash,
}

/// The jobs each chunk of [`WalkOptions::chunk_size`] is cut into.
const JOBS_PER_CHUNK: usize = 8;

/// Walks `data` (whole lines) followed by the torn bytes `torn`, from `from`.
pub(crate) fn walk_bytes(
    data: &[u8],
    torn: &[u8],
    from: Start,
    opts: &WalkOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Walked> {
    let pool = crate::parallel::build_pool(opts.threads)?;
    let threads = pool.current_num_threads();
    let mut walker = Walker::new(opts.max_problems);
    walker.lines = from.lines;
    if let Some((seq, hash, offset)) = from.anchor {
        walker.accept(
            Rec {
                line: from.lines,
                offset,
                seq,
                prev: [0; 32],
                hash,
                bare: None,
            },
            false,
        );
    }

    // Windows of the file (two chunks per thread): each is cut into jobs of an eighth of a
    // chunk, hashed and parsed in parallel, then walked in order. The window bounds memory
    // whatever the file's size. NOTE: jobs smaller than the chunk keep both cores busy up to
    // the window's end, while one of them also walks the window before: with one job per
    // chunk, a core idled at each window's end (4% of the wall time on a 1 GiB log, 2 cores).
    let window = opts.chunk_size.max(1).saturating_mul(threads * 2);
    let chunk = (opts.chunk_size / JOBS_PER_CHUNK).max(1);
    let base = from.base;
    crate::parallel::map_lines_in_order(
        &pool,
        &[data],
        chunk,
        window,
        &|offset, line| LineInfo::of(base + offset, line),
        progress,
        |info| walker.push(info),
    );
    walker.finish();

    if !torn.is_empty() {
        walker.problem(Problem {
            kind: ProblemKind::TornTail,
            line: walker.lines + 1,
            offset: base + data.len() as u64,
            seq: None,
            message: format!(
                "the file ends with {} bytes after its last LF: an incomplete write (the next append quarantines them)",
                torn.len()
            ),
            file: None,
        });
    }

    if walker.records == 0 && walker.unchained > 0 {
        // Every line is an object without chain fields: an old unchained log. One problem
        // says so, instead of one per line.
        walker
            .problems
            .retain(|p| p.kind != ProblemKind::MissingChainFields);
        walker.problems.insert(0, Problem {
            kind: ProblemKind::MissingChainFields,
            line: walker.first_unchained.0,
            offset: walker.first_unchained.1,
            seq: None,
            message: format!(
                "no line has chain fields (seq, prev_hash): this is a log in the old unchained Nexus-MCP format ({} records), which other commands read but which cannot be verified",
                walker.unchained
            ),
            file: None,
        });
        walker.problems_total = walker.problems_total - walker.unchained + 1;
        walker.problems.truncate(opts.max_problems);
    }

    let timestamp = |offset: Option<u64>| {
        let offset = usize::try_from(offset?.checked_sub(base)?).ok()?;
        let rest = data.get(offset..)?;
        let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
        RecordView::parse(line)
            .ok()?
            .timestamp
            .map(std::borrow::Cow::into_owned)
    };
    let walked = |r: Rec| WalkedRec {
        seq: r.seq,
        hash: r.hash,
    };
    Ok(Walked {
        lines: walker.lines,
        records: walker.records,
        first: walker.first.map(walked),
        last: walker.last_record.map(walked),
        first_timestamp: timestamp(walker.first.map(|r| r.offset)),
        last_timestamp: timestamp(walker.last_record.map(|r| r.offset)),
        problems: walker.problems,
        problems_total: walker.problems_total,
    })
}

/// What one line is, computed in parallel.
#[derive(Clone, Copy, Debug)]
struct LineInfo {
    offset: u64,
    kind: LineKind,
    /// SHA-256 of the line (zero for empty lines).
    hash: Hash,
    /// A record line that ends with CR: SHA-256 of the line without it.
    bare: Option<Hash>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineKind {
    Record { seq: u64, prev: Hash },
    Empty,
    Broken(ChainError),
}

impl LineInfo {
    fn of(offset: u64, line: &[u8]) -> Self {
        if line.is_empty() {
            return LineInfo {
                offset,
                kind: LineKind::Empty,
                hash: [0; 32],
                bare: None,
            };
        }
        // One pass hashes and classifies each block while it is in cache.
        let (hash, valid) = crate::json::hash_and_validate(line);
        let kind = match chain::chain_prefix(line) {
            Some(f) if valid => LineKind::Record {
                seq: f.seq,
                prev: f.prev_hash,
            },
            _ => match chain::chain_fields(line) {
                Ok(f) => LineKind::Record {
                    seq: f.seq,
                    prev: f.prev_hash,
                },
                Err(e) => LineKind::Broken(e),
            },
        };
        // Rare (the writer never ends a line with CR), and telling a CR added to an intact
        // record from a changed one needs the hash without it.
        let bare = match (kind, line.strip_suffix(b"\r")) {
            (LineKind::Record { .. }, Some(without)) => Some(chain::hash_line(without)),
            _ => None,
        };
        LineInfo {
            offset,
            kind,
            hash,
            bare,
        }
    }

    /// The record this line is, as line number `line`.
    fn rec(&self, line: u64) -> Option<Rec> {
        match self.kind {
            LineKind::Record { seq, prev } => Some(Rec {
                line,
                offset: self.offset,
                seq,
                prev,
                hash: self.hash,
                bare: self.bare,
            }),
            _ => None,
        }
    }
}

/// The sequential pass: feeds each record with the few after it to [`diagnose`] and applies
/// the verdict.
struct Walker {
    pending: VecDeque<(u64, LineInfo)>,
    lines: u64,
    records: u64,
    first: Option<Rec>,
    last_record: Option<Rec>,
    /// The record the next one must link to.
    anchor: Option<Anchor>,
    /// A line already explained by an earlier diagnosis (the second line of a swap).
    skip: Option<u64>,
    unchained: u64,
    first_unchained: (u64, u64),
    problems: Vec<Problem>,
    problems_total: u64,
    max_problems: usize,
    /// The last line a problem was reported at.
    last_blamed: u64,
}

/// How many lines after a record the walk looks at to tell the cases apart.
const LOOKAHEAD: usize = 4;

impl Walker {
    fn new(max_problems: usize) -> Self {
        Walker {
            pending: VecDeque::with_capacity(LOOKAHEAD + 1),
            lines: 0,
            records: 0,
            first: None,
            last_record: None,
            anchor: None,
            skip: None,
            unchained: 0,
            first_unchained: (0, 0),
            problems: Vec::new(),
            problems_total: 0,
            max_problems,
            last_blamed: 0,
        }
    }

    fn push(&mut self, info: LineInfo) {
        self.lines += 1;
        self.pending.push_back((self.lines, info));
        if self.pending.len() > LOOKAHEAD {
            self.step();
        }
    }

    fn finish(&mut self) {
        while !self.pending.is_empty() {
            self.step();
        }
        if let Some(last) = self.last_record
            && last.cr()
            && self.last_blamed < last.line
        {
            // Nothing links to the last line, but the writer never ends a line with CR.
            self.apply(Diagnosis::LastLineCr { rec: last });
        }
    }

    /// Records a problem, keeping the list in file order: a diagnosis can blame a line before
    /// ones already reported (a changed record followed by a blank line).
    fn problem(&mut self, p: Problem) {
        self.problems_total += 1;
        self.last_blamed = self.last_blamed.max(p.line);
        insert_in_order(&mut self.problems, p, self.max_problems);
    }

    fn step(&mut self) {
        let Some((line, info)) = self.pending.front().copied() else {
            return;
        };
        if let Some(rec) = info.rec(line) {
            self.records += 1;
            self.first.get_or_insert(rec);
            self.last_record = Some(rec);
            if self.skip == Some(line) {
                self.skip = None;
            } else {
                self.record(rec);
            }
        } else {
            if let Some(anchor) = &mut self.anchor {
                anchor.junk += 1;
            }
            let what = match info.kind {
                LineKind::Empty => Some((
                    ProblemKind::EmptyLine,
                    format!("line {line} is empty; the format has no blank lines"),
                )),
                LineKind::Broken(err) => {
                    let (kind, what) = match err {
                        ChainError::BadUtf8 => (ProblemKind::BadUtf8, "is not valid UTF-8"),
                        ChainError::BadJson => (ProblemKind::BadJson, "is not valid JSON"),
                        ChainError::NotObject => {
                            (ProblemKind::NotObject, "is JSON but not an object")
                        }
                        ChainError::MissingChainFields => {
                            if self.unchained == 0 {
                                self.first_unchained = (line, info.offset);
                            }
                            self.unchained += 1;
                            (
                                ProblemKind::MissingChainFields,
                                "has no valid chain fields (seq, prev_hash)",
                            )
                        }
                    };
                    Some((kind, format!("line {line} {what}")))
                }
                LineKind::Record { .. } => None,
            };
            if let Some((kind, message)) = what {
                self.problem(Problem {
                    kind,
                    line,
                    offset: info.offset,
                    seq: None,
                    message,
                    file: None,
                });
            }
        }
        self.pending.pop_front();
    }

    /// Diagnoses record `rec` against the anchor and the records ahead of it, and applies the
    /// verdict.
    fn record(&mut self, mut rec: Rec) {
        let mut ahead = [Rec::default(); LOOKAHEAD];
        let mut seen = 0;
        for (line, info) in self.pending.iter().skip(1) {
            if let Some(r) = info.rec(*line) {
                ahead[seen] = r;
                seen += 1;
            }
        }
        let ahead = &ahead[..seen];
        loop {
            let diagnosis = diagnose(self.anchor.as_ref(), &rec, ahead);
            self.apply(diagnosis);
            match diagnosis {
                Diagnosis::CrAdded { .. } => {
                    // Link on as if the CR were not there, so the link from the next record
                    // is not blamed again.
                    rec = rec.without_cr();
                }
                Diagnosis::Links
                | Diagnosis::AfterJunk
                | Diagnosis::StartsLate { .. }
                | Diagnosis::AnchorChanged { .. }
                | Diagnosis::Gap { .. }
                | Diagnosis::Wrapped { .. } => return self.accept(rec, false),
                Diagnosis::GenesisPrevChanged { .. } | Diagnosis::GenesisSeqChanged { .. } => {
                    // It stands for the genesis record, whose own hash is not what the next
                    // record links to either.
                    return self.accept(Rec { seq: 0, ..rec }, true);
                }
                Diagnosis::Replaced { expected, .. } => {
                    return self.accept(
                        Rec {
                            seq: expected,
                            ..rec
                        },
                        true,
                    );
                }
                Diagnosis::Swapped { first, .. } => {
                    self.skip = Some(first.line);
                    return self.accept(rec, false);
                }
                Diagnosis::OutOfOrder { relinks, .. } => {
                    if relinks {
                        self.accept(rec, false);
                    }
                    return;
                }
                Diagnosis::Forged { .. }
                | Diagnosis::Inserted { .. }
                | Diagnosis::LastLineCr { .. } => {
                    return;
                }
            }
        }
    }

    /// Reports the problem a diagnosis names, if any.
    fn apply(&mut self, diagnosis: Diagnosis) {
        if let Some((kind, at)) = diagnosis.problem() {
            self.problem(Problem {
                kind,
                line: at.line,
                offset: at.offset,
                seq: Some(at.seq),
                message: diagnosis.to_string(),
                file: None,
            });
        }
    }

    fn accept(&mut self, rec: Rec, blamed: bool) {
        self.anchor = Some(Anchor {
            rec,
            blamed,
            junk: 0,
        });
    }
}
