//! The walk: hashes and parses every line in parallel, one window of the file at a time, then
//! checks each link in order with a few records of look-ahead (the table in [`super`] says
//! what each kind of tampering is reported as).

use std::collections::VecDeque;

use rayon::prelude::*;

use crate::chain::{self, ChainError, GENESIS_HASH, Hash};
use crate::error::Result;
use crate::reader::{Lines, Snapshot, split_lines};
use crate::record::RecordView;

use super::VerifyOptions;
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

/// Verifies an open snapshot from `resume` on (only the lines after it, and the link from the
/// first of them to the resumed head), or from the start.
///
/// # Errors
///
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when the thread pool cannot be built.
pub fn verify_snapshot_from(
    snapshot: &Snapshot,
    opts: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
    resume: Option<Resume>,
) -> Result<Report> {
    let pool = crate::parallel::build_pool(opts.threads)?;
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
