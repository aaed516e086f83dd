//! Verification: checks every line and every link of a log and says exactly which line was
//! changed, deleted, inserted, reordered or torn (SPEC §7).
//!
//! Work is split in two. The expensive part, hashing each line once and validating it as JSON,
//! runs in parallel over chunks of whole lines and yields one small [`LineInfo`] per line. A
//! sequential pass then walks those infos in order, checks each link, and when a link breaks
//! looks one or two records ahead to tell the cases apart:
//!
//! | what happened | reported as |
//! |---|---|
//! | a line's content changed | `hash_mismatch` at that line |
//! | a CR added before a line's LF | `hash_mismatch` at that line, the message saying so (the last line included) |
//! | records deleted | `seq_gap` at the line after the gap |
//! | a line inserted (a copy, one from elsewhere, or a forgery with the right `seq` and `prev_hash`) | `seq_out_of_order` at it when its `seq` is behind, else `hash_mismatch` |
//! | two lines swapped | `seq_out_of_order` at the second |
//! | a record after one with `seq` 18446744073709551615 (`u64::MAX`): `seq` wrapped | `seq_out_of_order` at it |
//! | first records deleted | `bad_genesis` at line 1 |
//! | the first record's `seq` or `prev_hash` changed | `bad_genesis` at line 1 |
//! | an empty, non-UTF-8, non-JSON, non-object or unchained line | `empty_line`, `bad_utf8`, `bad_json`, `not_object`, `missing_chain_fields` at it |
//! | bytes after the last LF | `torn_tail` |
//!
//! Each of these is one problem, with no follow-on problems. What the links cannot tell apart:
//! a change to the last line shows only when it adds a CR; two adjacent changed lines are one
//! `hash_mismatch` at the second, whose message says the first may have changed too; a forgery
//! inserted just before the last line looks like the genuine one, which is then blamed.
//!
//! Memory stays flat: infos are produced and consumed one window of the file at a time.

use std::collections::VecDeque;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::chain::{self, ChainError, GENESIS_HASH, Hash};
use crate::reader::{Lines, Snapshot, split_lines};
use crate::record::RecordView;
use crate::{Error, Result};

/// The kinds of problem `verify` reports (SPEC §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum ProblemKind {
    BadUtf8,
    BadJson,
    NotObject,
    MissingChainFields,
    BadGenesis,
    SeqGap,
    SeqOutOfOrder,
    HashMismatch,
    EmptyLine,
    TornTail,
    /// A checkpoint's signature by a known key does not verify, or the checkpoint is malformed.
    BadSignature,
    /// No signature on a checkpoint is by a key given with `--pub`.
    UnknownKey,
    /// The log has fewer records than a checkpoint or the verifier state says it had.
    Truncated,
    /// The line at a checkpoint's (or the state's) size no longer hashes to its head, or a
    /// record the verifier state's proof remembers (its window, a sampled record, the head's
    /// byte offset) is no longer as it was.
    CheckpointMismatch,
    /// A seal's MAC does not verify with the key of its epoch.
    SealMismatch,
    /// Seal epochs skip a number.
    SealEpochGap,
}

impl ProblemKind {
    /// The kind as written in reports: `hash_mismatch`, …
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::BadUtf8 => "bad_utf8",
            ProblemKind::BadJson => "bad_json",
            ProblemKind::NotObject => "not_object",
            ProblemKind::MissingChainFields => "missing_chain_fields",
            ProblemKind::BadGenesis => "bad_genesis",
            ProblemKind::SeqGap => "seq_gap",
            ProblemKind::SeqOutOfOrder => "seq_out_of_order",
            ProblemKind::HashMismatch => "hash_mismatch",
            ProblemKind::EmptyLine => "empty_line",
            ProblemKind::TornTail => "torn_tail",
            ProblemKind::BadSignature => "bad_signature",
            ProblemKind::UnknownKey => "unknown_key",
            ProblemKind::Truncated => "truncated",
            ProblemKind::CheckpointMismatch => "checkpoint_mismatch",
            ProblemKind::SealMismatch => "seal_mismatch",
            ProblemKind::SealEpochGap => "seal_epoch_gap",
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One integrity problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// 1-based line number of the line blamed.
    pub line: u64,
    /// Byte offset of that line's start.
    pub offset: u64,
    /// The line's `seq`, when it has one.
    pub seq: Option<u64>,
    /// One sentence for a person.
    pub message: String,
}

/// The result of verifying a log; serialises to the JSON of SPEC §7.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True when no problem was found.
    pub ok: bool,
    /// The file verified.
    pub file: String,
    /// Number of chained records.
    pub records: u64,
    /// File length in bytes, torn tail included.
    pub bytes: u64,
    /// `seq` of the first record.
    pub first_seq: Option<u64>,
    /// `seq` of the last record.
    pub last_seq: Option<u64>,
    /// `timestamp` of the first record.
    pub first_timestamp: Option<String>,
    /// `timestamp` of the last record.
    pub last_timestamp: Option<String>,
    /// SHA-256 of the last record's line: the head to compare with a checkpoint.
    pub head_hash: Option<String>,
    /// The problems found, in file order, at most `max_problems`.
    pub problems: Vec<Problem>,
    /// How many problems there were in all (more than listed when the list was cut).
    pub problems_total: u64,
    /// Signed checkpoints whose signature verified and whose head was compared with the log.
    pub checkpoints_checked: u64,
    /// With a seal key: the `seq` of the last seal that verified (it vouches for every record
    /// up to it).
    pub sealed_through_seq: Option<u64>,
    /// With a seal key: records after the last good seal, not yet sealed.
    pub unsealed_records: Option<u64>,
}

impl Report {
    /// Adds a problem found outside the line walk (a checkpoint, the state, a seal), keeping
    /// the list in file order and within `max_problems`.
    pub fn add_problem(&mut self, p: Problem, max_problems: usize) {
        self.problems_total += 1;
        self.ok = false;
        insert_in_order(&mut self.problems, p, max_problems);
    }
}

/// Inserts `p` into `problems` (kept in file order), keeping at most `max` of them.
fn insert_in_order(problems: &mut Vec<Problem>, p: Problem, max: usize) {
    let at = problems.partition_point(|q| q.line <= p.line);
    if at < max {
        problems.insert(at, p);
        problems.truncate(max);
    }
}

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

/// Options for [`verify`].
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// List at most this many problems (default 100); counting goes on.
    pub max_problems: usize,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            max_problems: 100,
            threads: None,
        }
    }
}

/// Verifies the log at `path`.
///
/// # Errors
///
/// [`Error::Io`] and friends when the file cannot be opened or mapped. Integrity problems are
/// not errors: they are in the report.
pub fn verify(path: impl AsRef<Path>, opts: &VerifyOptions) -> Result<Report> {
    let snapshot = Snapshot::open(path)?;
    verify_snapshot(&snapshot, opts, &|_| {})
}

/// Verifies an open snapshot, calling `progress` with the number of bytes done so far.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when the thread pool cannot be built.
pub fn verify_snapshot(
    snapshot: &Snapshot,
    opts: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    verify_snapshot_from(snapshot, opts, progress, None)
}

/// Verifies an open snapshot from `resume` on (only the lines after it, and the link from the
/// first of them to the resumed head), or from the start.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when the thread pool cannot be built.
pub fn verify_snapshot_from(
    snapshot: &Snapshot,
    opts: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
    resume: Option<Resume>,
) -> Result<Report> {
    let pool = crate::pool(opts.threads)?;
    let threads = pool.current_num_threads();
    let all = snapshot.data();
    let mut walker = Walker::new(opts.max_problems, all);
    let start = resume.map_or(0, |r| r.offset.min(all.len()));
    if let Some(r) = resume {
        walker.lines = r.lines;
        walker.accept(
            Rec {
                line: r.lines,
                offset: r.last_offset as u64,
                seq: r.seq,
                prev: [0; 32],
                hash: r.hash,
                cr: false,
            },
            false,
        );
    }
    let data = &all[start..];

    // Windows of the file: each is cut into per-thread chunks, hashed and parsed in parallel,
    // then walked in order. The window bounds memory whatever the file's size.
    // Small in unit tests, so a test log spans many windows and chunks.
    const CHUNK: usize = if cfg!(test) { 4 << 10 } else { 4 << 20 };
    let window = CHUNK * threads * 2;
    let mut done = 0usize;
    let lines_of = |win: &std::ops::Range<usize>| -> Vec<Vec<LineInfo>> {
        let part = &data[win.clone()];
        let chunks = split_lines(part, part.len().div_ceil(CHUNK).max(1));
        chunks
            .par_iter()
            .map(|c| {
                Lines::new(&part[c.clone()], (start + win.start + c.start) as u64)
                    .map(|(offset, line)| LineInfo::of(offset, line))
                    .collect()
            })
            .collect()
    };
    // The walk of one window (sequential) overlaps the hashing and parsing of the next.
    let mut walked: Option<Vec<Vec<LineInfo>>> = None;
    for win in split_lines(data, data.len().div_ceil(window).max(1)) {
        let (infos, ()) = pool.install(|| {
            rayon::join(
                || lines_of(&win),
                || {
                    for info in walked.take().into_iter().flatten().flatten() {
                        walker.push(info);
                    }
                },
            )
        });
        walked = Some(infos);
        done += win.len();
        progress(done as u64);
    }
    for info in walked.take().into_iter().flatten().flatten() {
        walker.push(info);
    }
    walker.finish();

    let torn = snapshot.torn_tail();
    if !torn.is_empty() {
        walker.problem(Problem {
            kind: ProblemKind::TornTail,
            line: walker.lines + 1,
            offset: all.len() as u64,
            seq: None,
            message: format!(
                "the file ends with {} bytes after its last LF: an incomplete write (the next append quarantines them)",
                torn.len()
            ),
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
        });
        walker.problems_total = walker.problems_total - walker.unchained + 1;
        walker.problems.truncate(opts.max_problems);
    }

    let timestamp = |offset: Option<u64>| {
        let offset = usize::try_from(offset?).ok()?;
        let rest = &all[offset..];
        let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
        RecordView::parse(line)
            .ok()?
            .timestamp
            .map(|t| t.into_owned())
    };
    Ok(Report {
        ok: walker.problems_total == 0,
        file: snapshot.path().display().to_string(),
        records: walker.records,
        bytes: snapshot.len(),
        first_seq: walker.first.map(|r| r.seq),
        last_seq: walker.last_record.map(|r| r.seq),
        first_timestamp: timestamp(walker.first.map(|r| r.offset)),
        last_timestamp: timestamp(walker.last_record.map(|r| r.offset)),
        head_hash: walker.last_record.map(|r| hex::encode(r.hash)),
        problems: walker.problems,
        problems_total: walker.problems_total,
        checkpoints_checked: 0,
        sealed_through_seq: None,
        unsealed_records: None,
    })
}

/// What one line is, computed in parallel.
#[derive(Clone, Copy, Debug)]
struct LineInfo {
    offset: u64,
    kind: LineKind,
    /// SHA-256 of the line (zero for empty lines).
    hash: Hash,
    /// The line ends with CR.
    cr: bool,
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
                cr: false,
            };
        }
        let hash = chain::hash_line(line);
        let kind = match chain::chain_prefix(line) {
            Some(f) if crate::json::is_valid(line) => LineKind::Record {
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
        LineInfo {
            offset,
            kind,
            hash,
            cr: line.last() == Some(&b'\r'),
        }
    }
}

/// A record line as the walker remembers it.
#[derive(Clone, Copy, Debug)]
struct Rec {
    line: u64,
    offset: u64,
    seq: u64,
    prev: Hash,
    hash: Hash,
    cr: bool,
}

/// The sequential pass: link checks with a few lines of look-ahead.
struct Walker<'a> {
    /// The file's complete lines, to rehash a line without its CR.
    data: &'a [u8],
    pending: VecDeque<(u64, LineInfo)>,
    lines: u64,
    records: u64,
    first: Option<Rec>,
    last_record: Option<Rec>,
    /// The record the next one must link to.
    anchor: Option<Rec>,
    /// The anchor was blamed as changed: the link from it is expected to be broken.
    anchor_blamed: bool,
    expected_seq: u64,
    /// Non-record lines since the anchor.
    junk: u64,
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

const LOOKAHEAD: usize = 4;

impl<'a> Walker<'a> {
    fn new(max_problems: usize, data: &'a [u8]) -> Self {
        Walker {
            data,
            pending: VecDeque::with_capacity(LOOKAHEAD + 1),
            lines: 0,
            records: 0,
            first: None,
            last_record: None,
            anchor: None,
            anchor_blamed: false,
            expected_seq: 0,
            junk: 0,
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
            && last.cr
            && self.last_blamed < last.line
        {
            // Nothing links to the last line, but the writer never ends a line with CR.
            self.blame(
                ProblemKind::HashMismatch,
                last,
                format!(
                    "line {} ends with a CR, which the writer never writes: it was changed (it is the last line, so no link shows what else changed)",
                    last.line
                ),
            );
        }
    }

    /// Records a problem, keeping the list in file order: a diagnosis can blame a line before
    /// ones already reported (a changed record followed by a blank line).
    fn problem(&mut self, p: Problem) {
        self.problems_total += 1;
        self.last_blamed = self.last_blamed.max(p.line);
        insert_in_order(&mut self.problems, p, self.max_problems);
    }

    /// SHA-256 of a record's line without its trailing CR.
    fn hash_without_cr(&self, rec: &Rec) -> Option<Hash> {
        let start = usize::try_from(rec.offset).ok()?;
        let rest = self.data.get(start..)?;
        let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
        Some(chain::hash_line(line.strip_suffix(b"\r")?))
    }

    /// The next record lines after the one being processed.
    fn ahead(&self) -> impl Iterator<Item = Rec> + '_ {
        self.pending
            .iter()
            .skip(1)
            .filter_map(|(line, info)| match info.kind {
                LineKind::Record { seq, prev } => Some(Rec {
                    line: *line,
                    offset: info.offset,
                    seq,
                    prev,
                    hash: info.hash,
                    cr: info.cr,
                }),
                _ => None,
            })
    }

    fn step(&mut self) {
        let Some((line, info)) = self.pending.front().copied() else {
            return;
        };
        match info.kind {
            LineKind::Record { seq, prev } => {
                let rec = Rec {
                    line,
                    offset: info.offset,
                    seq,
                    prev,
                    hash: info.hash,
                    cr: info.cr,
                };
                self.records += 1;
                self.first.get_or_insert(rec);
                self.last_record = Some(rec);
                if self.skip == Some(line) {
                    self.skip = None;
                } else {
                    self.record(rec);
                }
            }
            LineKind::Empty => {
                self.junk += 1;
                self.problem(Problem {
                    kind: ProblemKind::EmptyLine,
                    line,
                    offset: info.offset,
                    seq: None,
                    message: format!("line {line} is empty; the format has no blank lines"),
                });
            }
            LineKind::Broken(err) => {
                self.junk += 1;
                let (kind, what) = match err {
                    ChainError::BadUtf8 => (ProblemKind::BadUtf8, "is not valid UTF-8"),
                    ChainError::BadJson => (ProblemKind::BadJson, "is not valid JSON"),
                    ChainError::NotObject => (ProblemKind::NotObject, "is JSON but not an object"),
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
                self.problem(Problem {
                    kind,
                    line,
                    offset: info.offset,
                    seq: None,
                    message: format!("line {line} {what}"),
                });
            }
        }
        self.pending.pop_front();
    }

    fn accept(&mut self, rec: Rec, blamed: bool) {
        self.anchor = Some(rec);
        self.anchor_blamed = blamed;
        self.expected_seq = rec.seq.wrapping_add(1);
        self.junk = 0;
    }

    fn blame(&mut self, kind: ProblemKind, rec: Rec, message: String) {
        self.problem(Problem {
            kind,
            line: rec.line,
            offset: rec.offset,
            seq: Some(rec.seq),
            message,
        });
    }

    /// A record inserted with the right `seq` and `prev_hash`: the next record claims the same
    /// place (same `seq`, same `prev_hash`, other bytes) and the chain goes on from that one.
    /// Returns the genuine record and the one that links to it.
    fn forked_past(&self, n: &Rec) -> Option<(Rec, Rec)> {
        let mut ahead = self.ahead();
        let a1 = ahead.next()?;
        if a1.seq != n.seq || a1.prev != n.prev || a1.hash == n.hash {
            return None;
        }
        let a2 = ahead.next()?;
        (a2.prev == a1.hash).then_some((a1, a2))
    }

    fn blame_forged(&mut self, n: Rec, (a1, a2): (Rec, Rec)) {
        self.blame(
            ProblemKind::HashMismatch,
            n,
            format!(
                "line {} (seq {}) does not belong to the chain: it was inserted, line {} has the same seq and prev_hash and line {} links to line {}",
                n.line, n.seq, a1.line, a2.line, a1.line
            ),
        );
    }

    fn record(&mut self, mut n: Rec) {
        if n.cr
            && let Some(bare) = self.hash_without_cr(&n)
            && self.ahead().any(|a| a.prev == bare)
        {
            // Only a CR was added (a CRLF line ending): say so here, and link on as if it
            // were not there, so the link from the next record is not blamed again.
            let next = self.ahead().find(|a| a.prev == bare).map_or(0, |a| a.line);
            self.blame(
                ProblemKind::HashMismatch,
                n,
                format!(
                    "line {} was changed: a CR was added before its LF (line {next} links to it without the CR)",
                    n.line
                ),
            );
            n.hash = bare;
            n.cr = false;
        }
        let Some(anchor) = self.anchor else {
            // The first record: the genesis rule.
            if n.seq == 0
                && n.prev == GENESIS_HASH
                && let Some(fork) = self.forked_past(&n)
            {
                self.blame_forged(n, fork);
                return;
            }
            let (why, blamed) = match (n.seq == 0, n.prev == GENESIS_HASH) {
                (true, true) => {
                    self.accept(n, false);
                    return;
                }
                // A genesis record with another seq, or seq 0 with another prev_hash, was
                // changed: its own hash is not what the next record links to either.
                (true, false) => (
                    "the first record's prev_hash is not 64 zeros: it was changed".to_owned(),
                    true,
                ),
                (false, true) => (
                    format!(
                        "the first record has the genesis prev_hash but seq {}, not 0: its seq was changed",
                        n.seq
                    ),
                    true,
                ),
                (false, false) => (
                    format!(
                        "the log starts at seq {}, not 0: its first records were deleted, or this is not the log's first file",
                        n.seq
                    ),
                    false,
                ),
            };
            self.blame(
                ProblemKind::BadGenesis,
                n,
                format!("line {}: {why}", n.line),
            );
            let mut first = n;
            if blamed {
                first.seq = 0;
            }
            self.accept(first, blamed);
            return;
        };
        if anchor.seq == u64::MAX {
            // Nothing can follow the largest seq: the writer refuses, so this record was made
            // by something else, and its seq has wrapped (or was never in order).
            self.blame(
                ProblemKind::SeqOutOfOrder,
                n,
                format!(
                    "line {} (seq {}) follows line {}, whose seq {} is the largest a record can have: seq wrapped around",
                    n.line,
                    n.seq,
                    anchor.line,
                    u64::MAX
                ),
            );
            self.accept(n, false);
            return;
        }
        let expected = self.expected_seq;
        let seq_ok = n.seq == expected;
        let link_ok = n.prev == anchor.hash;
        if seq_ok && (link_ok || self.anchor_blamed) {
            if let Some(fork) = self.forked_past(&n) {
                self.blame_forged(n, fork);
                return;
            }
            self.accept(n, false);
            return;
        }
        if self.junk > 0 && n.seq > expected && n.seq - expected <= self.junk {
            // The lines between replaced records; they were reported as what they are.
            self.accept(n, false);
            return;
        }

        let mut ahead = self.ahead();
        let a1 = ahead.next();
        drop(ahead);
        let cr_note = if n.cr { " (it ends with a CR)" } else { "" };

        if let Some(a1) = a1 {
            // Swap: the next record is the one expected here and this one follows it.
            if a1.prev == anchor.hash
                && a1.seq == expected
                && n.prev == a1.hash
                && n.seq == expected + 1
            {
                self.blame(
                    ProblemKind::SeqOutOfOrder,
                    a1,
                    format!(
                        "lines {} and {} are swapped: seq {} comes after seq {}",
                        n.line, a1.line, a1.seq, n.seq
                    ),
                );
                self.skip = Some(a1.line);
                self.accept(n, false);
                return;
            }
            // Insertion: the next record links past this one to the anchor.
            if a1.prev == anchor.hash && a1.seq == expected {
                let (kind, what) = if n.hash == anchor.hash {
                    (
                        ProblemKind::SeqOutOfOrder,
                        format!("is a copy of line {}", anchor.line),
                    )
                } else if n.seq < expected {
                    (
                        ProblemKind::SeqOutOfOrder,
                        format!("(seq {}) does not belong here", n.seq),
                    )
                } else {
                    (
                        ProblemKind::HashMismatch,
                        format!("(seq {}) does not belong to the chain", n.seq),
                    )
                };
                self.blame(
                    kind,
                    n,
                    format!(
                        "line {} {what}: it was inserted, line {} links to line {}",
                        n.line, a1.line, anchor.line
                    ),
                );
                return;
            }
            // Replacement: the next record continues from where this one should have been,
            // but not from this line's bytes.
            if a1.seq == expected.wrapping_add(1) && a1.prev != n.hash {
                let detail = if n.seq != expected && !link_ok {
                    format!(
                        "its seq reads {}, expected {expected}, and its prev_hash does not match line {} (a record moved or copied here)",
                        n.seq, anchor.line
                    )
                } else if n.seq != expected {
                    format!("its seq reads {}, expected {expected}", n.seq)
                } else if !link_ok {
                    format!(
                        "its prev_hash does not match line {} (or line {} was changed too)",
                        anchor.line, anchor.line
                    )
                } else {
                    format!("line {}'s prev_hash does not match it", a1.line)
                };
                self.blame(
                    ProblemKind::HashMismatch,
                    n,
                    format!("line {} was changed or replaced{cr_note}: {detail}", n.line),
                );
                let mut as_expected = n;
                as_expected.seq = expected;
                self.accept(as_expected, true);
                return;
            }
        }
        if seq_ok {
            // Only the link is broken, and what follows links to this line: the anchor changed.
            let (line, offset, seq) = (anchor.line, anchor.offset, anchor.seq);
            let cr_note = if anchor.cr {
                " (it ends with a CR)"
            } else {
                ""
            };
            let message = if a1.is_some() {
                format!(
                    "line {line} was changed{cr_note}: its SHA-256 no longer matches the prev_hash of line {}",
                    n.line
                )
            } else {
                format!(
                    "line {line} was changed{cr_note}, or the prev_hash of line {} (the last line): they no longer link",
                    n.line
                )
            };
            self.problem(Problem {
                kind: ProblemKind::HashMismatch,
                line,
                offset,
                seq: Some(seq),
                message,
            });
            self.accept(n, false);
            return;
        }
        if n.seq > expected {
            let missing = n.seq - expected;
            let range = if missing == 1 {
                format!("seq {expected}")
            } else {
                format!("seq {expected}..{}", n.seq - 1)
            };
            let (plural, verb) = if missing == 1 {
                ("", "is")
            } else {
                ("s", "are")
            };
            self.blame(
                ProblemKind::SeqGap,
                n,
                format!(
                    "{missing} record{plural} ({range}) {verb} missing before line {}{}",
                    n.line,
                    if link_ok {
                        ""
                    } else {
                        ", and its prev_hash does not link to the line before"
                    }
                ),
            );
            self.accept(n, false);
            return;
        }
        self.blame(
            ProblemKind::SeqOutOfOrder,
            n,
            format!(
                "line {} has seq {}, but seq {expected} was expected after line {}",
                n.line, n.seq, anchor.line
            ),
        );
        if a1.is_some_and(|a| a.prev == n.hash) {
            self.accept(n, false);
        }
    }
}

/// Builds a rayon pool of `threads` workers (all cores when `None`).
pub(crate) fn build_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n.max(1));
    }
    builder
        .build()
        .map_err(|e| Error::InvalidConfig(format!("cannot start {threads:?} worker threads: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, Event, LogOptions};

    fn write_log(path: &Path, n: u64) -> Vec<Vec<u8>> {
        let log = LogOptions::new(path)
            .durability(Durability::None)
            .open()
            .expect("open");
        log.append_batch(
            (0..n)
                .map(|i| {
                    Event::new("mcp_call")
                        .tool("ad_get_user")
                        .correlation(format!("req-{i}"))
                })
                .collect(),
        )
        .expect("append");
        log.close().expect("close");
        std::fs::read(path)
            .expect("read")
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn problems(path: &Path, threads: usize) -> Vec<(ProblemKind, u64)> {
        let report = verify(
            path,
            &VerifyOptions {
                max_problems: 100,
                threads: Some(threads),
            },
        )
        .expect("verify");
        report.problems.iter().map(|p| (p.kind, p.line)).collect()
    }

    /// With 4 KiB chunks the log spans hundreds of windows: links across window and chunk
    /// borders are checked, and problems on either side of a border are each found once.
    #[test]
    fn problems_are_found_across_many_windows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let mut lines = write_log(&path, 3000);
        for threads in [1, 2, 3] {
            assert_eq!(problems(&path, threads), vec![], "clean, {threads} threads");
        }
        // Line 700: a changed byte in the content (not in prev_hash, where a flipped bit can
        // leave a non-hex digit and make the line unchained instead).
        let at = lines[699].len() - 10;
        lines[699][at] ^= 1;
        lines.remove(1799); // line 1800: the next record is one seq ahead
        let dup = lines[2499].clone();
        lines.insert(2500, dup); // line 2501 repeats line 2500
        std::fs::write(&path, lines.concat()).expect("write");
        for threads in [1, 2, 3] {
            assert_eq!(
                problems(&path, threads),
                vec![
                    (ProblemKind::HashMismatch, 700),
                    (ProblemKind::SeqGap, 1800),
                    (ProblemKind::SeqOutOfOrder, 2501),
                ],
                "{threads} threads"
            );
        }
    }
}
