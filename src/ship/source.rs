//! Reading records to ship from a position onward: the one place that knows where records are
//! stored, so segment-aware reading (rotation) replaces this file alone.
//!
//! A [`Position`] is the end of a record: the segment (the file's name), the byte just past
//! the record's LF, and that record's `seq` and line hash. Reading after a position first
//! checks that the line ending there still hashes to what was read, so a log rewritten,
//! truncated or replaced under the shipper is noticed instead of silently re-read or skipped.

use std::path::{Path, PathBuf};

use crate::chain::{self, Hash};
use crate::error::{Error, Result};
use crate::filter::Matcher;
use crate::reader::{Lines, Snapshot, read_record};

use super::Shipped;

/// Just past one record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    /// The file the offset refers to (the live log's file name until segments exist).
    pub segment: String,
    /// The byte just past the record's LF.
    pub offset: u64,
    /// The record's `seq`.
    pub seq: u64,
    /// SHA-256 of the record's line.
    pub hash: Hash,
}

/// What one [`Source::read`] found.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The records to ship, in log order (those the filter passes).
    pub records: Vec<Shipped>,
    /// Just past the last record read (shipped or filtered out); `None` when nothing was new.
    pub end: Option<Position>,
}

/// The log being shipped, as of its latest snapshot.
#[derive(Debug)]
pub(crate) struct Source {
    path: PathBuf,
    segment: String,
    snapshot: Snapshot,
    chain_id: Option<String>,
}

impl Source {
    /// Takes a snapshot of the log at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let snapshot = Snapshot::open(path)?;
        let segment = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let chain_id = first_line_hash(&snapshot);
        Ok(Source {
            path: path.to_path_buf(),
            segment,
            snapshot,
            chain_id,
        })
    }

    /// Takes a new snapshot, to see records appended since.
    pub fn refresh(&mut self) -> Result<()> {
        self.snapshot = Snapshot::open(&self.path)?;
        let chain_id = first_line_hash(&self.snapshot);
        if let (Some(old), Some(new)) = (&self.chain_id, &chain_id)
            && old != new
        {
            return Err(self.changed(&format!(
                "its first line changed (chain {} became {})",
                short(old),
                short(new)
            )));
        }
        self.chain_id = chain_id;
        Ok(())
    }

    /// The log's chain id (hex SHA-256 of its first line), `None` while it has no line.
    pub fn chain_id(&self) -> Option<&str> {
        self.chain_id.as_deref()
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How far the log, as it is now (a fresh snapshot, not the one being shipped from), is
    /// ahead of `after`: the records after it, and the `timestamp` of the first of them.
    pub fn lag(&self, after: Option<&Position>) -> (u64, Option<String>) {
        let Ok(now) = Snapshot::open(&self.path) else {
            return (0, None);
        };
        let last = now.lines_rev().find_map(|(_, line)| seq_of(line).ok());
        let behind = match (last, after) {
            (Some(last), Some(p)) => last.saturating_sub(p.seq),
            (Some(last), None) => last + 1,
            _ => 0,
        };
        let start = usize::try_from(after.map_or(0, |p| p.offset)).unwrap_or(usize::MAX);
        let next = now
            .data()
            .get(start..)
            .and_then(|data| Lines::new(data, 0).next())
            .and_then(|(_, line)| read_record(line).ok()?.timestamp)
            .map(std::borrow::Cow::into_owned);
        (behind, next)
    }

    /// Checks that the record ending at `pos` is still the one read there: same segment, same
    /// `seq`, same line hash.
    pub fn check(&self, pos: &Position) -> Result<()> {
        if pos.segment != self.segment {
            return Err(self.changed(&format!(
                "the cursor refers to {}, and only the live file {} is read in this version",
                pos.segment, self.segment
            )));
        }
        let data = self.snapshot.data();
        let end = usize::try_from(pos.offset).unwrap_or(usize::MAX);
        if end == 0 || end > data.len() || data[end - 1] != b'\n' {
            return Err(self.changed(&format!(
                "it no longer has a complete line ending at byte {} (it was truncated or rewritten)",
                pos.offset
            )));
        }
        let start = memchr::memrchr(b'\n', &data[..end - 1]).map_or(0, |i| i + 1);
        let line = &data[start..end - 1];
        let seq = seq_of(line).ok();
        if chain::hash_line(line) != pos.hash || seq != Some(pos.seq) {
            return Err(self.changed(&format!(
                "the line ending at byte {} is no longer the record seq {} that was shipped (it was rewritten, truncated or rotated)",
                pos.offset, pos.seq
            )));
        }
        Ok(())
    }

    /// Reads the records after `after` (from the start when `None`): at most `max` that
    /// `matcher` passes, and at most `16 × max` lines in all.
    ///
    /// # Errors
    ///
    /// [`Error::Ship`] for a line that is not a record: shipping stops there, so nothing is
    /// skipped (run `verify`).
    pub fn read(&self, after: Option<&Position>, max: usize, matcher: &Matcher) -> Result<Batch> {
        let Some(chain_id) = self.chain_id.clone() else {
            return Ok(Batch::default());
        };
        let start = after.map_or(0, |p| p.offset);
        let data = self.snapshot.data();
        let Some(rest) = usize::try_from(start).ok().and_then(|s| data.get(s..)) else {
            return Err(self.changed(&format!(
                "it is shorter than byte {start}, where shipping stopped"
            )));
        };
        let mut batch = Batch::default();
        let max = max.max(1);
        for (n, (offset, line)) in Lines::new(rest, start).enumerate() {
            if batch.records.len() >= max || n >= max.saturating_mul(16) {
                break;
            }
            let view = read_record(line).map_err(|why| {
                Error::Ship(format!(
                    "the line at byte {offset} of {} is not a record ({}): shipping stops before it so that nothing is skipped; run `nexus-audit verify`",
                    self.path.display(),
                    why.as_str()
                ))
            })?;
            let fields = match chain::chain_prefix(line) {
                Some(fields) => fields,
                None => chain::chain_fields(line).map_err(|_| {
                    Error::Ship(format!(
                        "the record at byte {offset} of {} has no valid seq or prev_hash: shipping stops before it; run `nexus-audit verify`",
                        self.path.display()
                    ))
                })?,
            };
            let hash = chain::hash_line(line);
            if matcher.matches(&view) {
                batch.records.push(Shipped {
                    chain_id: chain_id.clone(),
                    seq: fields.seq,
                    hash: hex::encode(hash),
                    prev_hash: hex::encode(fields.prev_hash),
                    // NOTE: read_record refuses a line that is not UTF-8.
                    line: String::from_utf8_lossy(line).into_owned(),
                    timestamp: view.timestamp.as_deref().unwrap_or_default().to_owned(),
                    action: view.action.as_deref().unwrap_or_default().to_owned(),
                });
            }
            batch.end = Some(Position {
                segment: self.segment.clone(),
                offset: offset + line.len() as u64 + 1,
                seq: fields.seq,
                hash,
            });
        }
        Ok(batch)
    }

    fn changed(&self, why: &str) -> Error {
        Error::Ship(format!(
            "the log {} changed under the ship cursor: {why}; nothing more was shipped (ship a new or rotated log with a new --cursor)",
            self.path.display()
        ))
    }
}

/// The records of a log with their chain fields, in file order: `(seq, prev_hash, line)`.
/// Lines that are not records are left out (`verify` reports them).
pub(crate) fn records(snapshot: &Snapshot) -> impl Iterator<Item = (u64, Hash, &[u8])> {
    snapshot.lines().filter_map(|(_, line)| {
        let fields = chain::chain_prefix(line).or_else(|| chain::chain_fields(line).ok())?;
        Some((fields.seq, fields.prev_hash, line))
    })
}

/// The hex SHA-256 of the first line of the log: its chain id.
pub(crate) fn first_line_hash(snapshot: &Snapshot) -> Option<String> {
    snapshot
        .lines()
        .next()
        .map(|(_, line)| hex::encode(chain::hash_line(line)))
}

fn seq_of(line: &[u8]) -> std::result::Result<u64, chain::ChainError> {
    chain::chain_prefix(line)
        .map_or_else(|| chain::chain_fields(line), Ok)
        .map(|f| f.seq)
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}
