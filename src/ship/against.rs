//! `verify --against URL`: reads a shipped copy back and checks it against the log, record by
//! record, in `seq` order.
//!
//! | the copy | reported as |
//! |---|---|
//! | has no row for a record of the log | `missing` |
//! | has a row for a `seq` the log does not have (a record duplicated under another `seq`, an invented one) | `extra` |
//! | holds another line, hash or `prev_hash` than the log at that `seq` | `changed` |
//! | holds, at one `seq`, the line of another record | `reordered` |
//!
//! With none of these, the copy's rows are re-hashed and re-linked on their own (each row's
//! `prev_hash` is the SHA-256 of the row before) and must end at the log's head.

use std::path::Path;

use serde::Serialize;

use crate::chain;
use crate::error::{Error, Result};
use crate::reader::Snapshot;

use super::source::{Source, records};
use super::{DestinationOptions, mask_url, postgres};
use crate::segment::LogSet;

/// Where a copy is read back from.
#[derive(Clone, Debug)]
pub struct Against {
    /// The destination URL (`postgres://…`).
    pub url: String,
    /// Its secrets and timeout.
    pub options: DestinationOptions,
    /// The most problems listed (all are counted).
    pub max_problems: usize,
}

/// One difference between the log and its copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgainstProblem {
    /// The `seq` concerned.
    pub seq: u64,
    /// `missing`, `extra`, `changed`, `reordered` or `unlinked`.
    pub kind: &'static str,
    /// One sentence.
    pub message: String,
}

/// The outcome of [`check_against`].
#[derive(Clone, Debug, Serialize)]
pub struct AgainstReport {
    /// The copy matches the log.
    pub ok: bool,
    /// The log's path.
    pub file: String,
    /// The copy, with secrets masked.
    pub against: String,
    /// The log's chain id.
    pub chain_id: Option<String>,
    /// Records in the log.
    pub records: u64,
    /// Rows of this chain in the copy.
    pub rows: u64,
    /// The log's first `seq`.
    pub first_seq: Option<u64>,
    /// The log's last `seq`.
    pub last_seq: Option<u64>,
    /// The log's head (hex SHA-256 of its last record).
    pub head_hash: Option<String>,
    /// The head the copy re-links to (hex SHA-256 of its last row's line).
    pub copy_head_hash: Option<String>,
    /// Problems listed (at most `max_problems`).
    pub problems: Vec<AgainstProblem>,
    /// Problems found in all.
    pub problems_total: u64,
}

impl AgainstReport {
    fn add(&mut self, max: usize, seq: u64, kind: &'static str, message: String) {
        self.problems_total += 1;
        if self.problems.len() < max {
            self.problems.push(AgainstProblem { seq, kind, message });
        }
    }
}

/// A row of the copy, as read back.
struct CopyRow {
    seq: u64,
    hash: String,
    prev_hash: String,
    line: String,
}

/// Checks the copy at `against` of the log at `log`.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for a URL that cannot be read back (only `postgres://` can),
/// [`Error::Ship`] when the copy cannot be read, [`Error::Io`] for the log.
pub fn check_against(log: &Path, against: &Against) -> Result<AgainstReport> {
    let scheme = against.url.split_once("://").map_or("", |(s, _)| s);
    if !matches!(scheme, "postgres" | "postgresql") {
        return Err(Error::InvalidConfig(format!(
            "verify --against reads a copy back from postgres:// only, not {}",
            mask_url(&against.url)
        )));
    }
    // NOTE: a rotated log is read across its segments (the bytes one unrotated log would
    // hold, less what was pruned); its chain id comes from the manifest once its first line
    // was pruned.
    let set = LogSet::open(log)?;
    let snapshot = if set.is_rotated() {
        set.joined()?
    } else {
        Snapshot::open(log)?
    };
    let source = Source::open(log)?;
    let chain_id = source.chain_id().map(str::to_owned);
    let first_on_disk = records(&snapshot).next().map(|(seq, _, _)| seq);
    let mut report = AgainstReport {
        ok: false,
        file: log.display().to_string(),
        against: mask_url(&against.url),
        chain_id: chain_id.clone(),
        records: 0,
        rows: 0,
        first_seq: None,
        last_seq: None,
        head_hash: None,
        copy_head_hash: None,
        problems: Vec::new(),
        problems_total: 0,
    };
    let mut rows = Vec::new();
    if let Some(id) = &chain_id {
        postgres::read_rows(&against.url, &against.options, id, &mut |row| {
            rows.push(CopyRow {
                seq: u64::try_from(row.seq).unwrap_or(u64::MAX),
                hash: row.hash,
                prev_hash: row.prev_hash,
                line: row.line,
            });
        })?;
    }
    // Rows of records pruned from the log cannot be compared with it: they are counted and
    // re-linked with the rest, but neither missing nor extra.
    report.rows = rows.len() as u64;
    let kept = |r: &CopyRow| !(first_on_disk.is_some_and(|f| r.seq < f) && source.is_pruned(r.seq));
    let max = against.max_problems;
    let mut log_records = records(&snapshot).peekable();
    let mut copy = rows.iter().filter(|r| kept(r)).peekable();
    loop {
        match (log_records.peek(), copy.peek()) {
            (None, None) => break,
            (Some(&(seq, _, line)), row) if row.is_none_or(|r| seq < r.seq) => {
                note_record(&mut report, seq, line);
                report.add(
                    max,
                    seq,
                    "missing",
                    format!("the copy has no row for the record seq {seq}"),
                );
                log_records.next();
            }
            (Some(&(seq, prev, line)), Some(row)) if seq == row.seq => {
                note_record(&mut report, seq, line);
                compare(&mut report, max, seq, &prev, line, row);
                log_records.next();
                copy.next();
            }
            (_, Some(row)) => {
                let claims = chain::chain_prefix(row.line.as_bytes()).map(|f| f.seq);
                let message = match claims {
                    Some(other) if other != row.seq => format!(
                        "the copy has a row seq {} that the log does not have: it holds the record seq {other} (a duplicate under another seq)",
                        row.seq
                    ),
                    _ => format!(
                        "the copy has a row seq {} that the log does not have",
                        row.seq
                    ),
                };
                report.add(max, row.seq, "extra", message);
                copy.next();
            }
            (Some(_), None) => unreachable!("handled by the missing arm"),
        }
    }
    relink(&mut report, max, &rows);
    report.ok = report.problems_total == 0 && report.copy_head_hash == report.head_hash;
    Ok(report)
}

fn note_record(report: &mut AgainstReport, seq: u64, line: &[u8]) {
    report.records += 1;
    report.first_seq.get_or_insert(seq);
    report.last_seq = Some(seq);
    report.head_hash = Some(hex::encode(chain::hash_line(line)));
}

fn compare(
    report: &mut AgainstReport,
    max: usize,
    seq: u64,
    prev: &chain::Hash,
    line: &[u8],
    row: &CopyRow,
) {
    if row.line.as_bytes() != line {
        let claims = chain::chain_prefix(row.line.as_bytes()).map(|f| f.seq);
        match claims {
            Some(other) if other != seq => report.add(
                max,
                seq,
                "reordered",
                format!("the copy's row seq {seq} holds the record seq {other}"),
            ),
            _ => report.add(
                max,
                seq,
                "changed",
                format!("the copy's line for seq {seq} differs from the log's"),
            ),
        }
    } else if row.hash != hex::encode(chain::hash_line(line)) {
        report.add(
            max,
            seq,
            "changed",
            format!("the copy's hash for seq {seq} is not the SHA-256 of its line"),
        );
    } else if row.prev_hash != hex::encode(prev) {
        report.add(
            max,
            seq,
            "changed",
            format!("the copy's prev_hash for seq {seq} differs from the log's"),
        );
    }
}

/// Re-hashes and re-links the copy on its own; reports a break only when nothing else was
/// reported (the other problems explain it).
fn relink(report: &mut AgainstReport, max: usize, rows: &[CopyRow]) {
    let mut prev: Option<chain::Hash> = None;
    let mut first_break = None;
    for row in rows {
        let hash = chain::hash_line(row.line.as_bytes());
        let expected = prev.map(hex::encode);
        let links = match &expected {
            Some(e) => &row.prev_hash == e,
            // NOTE: the first row links to whatever preceded it (the genesis hash, or records
            // pruned before shipping began): the comparison with the log checks it.
            None => true,
        };
        if (!links || row.hash != hex::encode(hash)) && first_break.is_none() {
            first_break = Some(row.seq);
        }
        prev = Some(hash);
    }
    report.copy_head_hash = prev.map(hex::encode);
    if let Some(seq) = first_break
        && report.problems_total == 0
    {
        report.add(
            max,
            seq,
            "unlinked",
            format!("the copy's rows do not re-link at seq {seq}"),
        );
    }
}
