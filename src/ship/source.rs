//! Reading records to ship from a position onward: the one place that knows where records are
//! stored. A log is its live file plus closed segments (see [`crate::segment`]); the source
//! follows it **by `seq`**, not by inode, so rotation, compression and retention under a
//! running shipper are followed, and records pruned before they were shipped are refused.
//!
//! A [`Position`] is the end of a record: the file it was read from (a segment's or the live
//! file's name), the byte just past the record's LF in that file's (decompressed) bytes, and
//! that record's `seq` and line hash. On start and after each fresh look at the log the source
//! finds the part holding that `seq` (the live file, or the segment it was renamed to: the
//! offset is the same, since the live file always starts at a segment's first seq) and checks
//! that the line there still hashes to what was read; where that line was pruned, the next
//! record's `prev_hash` must be its hash. Where one part ends and the next begins, the next
//! part's first record must be `seq + 1` and link to the last one read. So a log rewritten,
//! truncated or replaced under the shipper is noticed instead of silently re-read or skipped.
//!
//! | the part holding the next `seq` | what the source does |
//! |---|---|
//! | the live file | maps it and reads on |
//! | a plain segment | maps it and reads on |
//! | a zstd segment | decompresses it in memory (never to disk) and reads on |
//! | a pruned segment (`segment_pruned` in the manifest) | stops with [`Error::Ship`] naming the seqs gone and their archive |
//! | none yet (the log has not reached it) | nothing new |
//! | none, and not pruned | stops with [`Error::Ship`] (run `nexus-audit verify`) |

use std::io::{BufRead as _, Read as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::chain::{self, Hash};
use crate::error::{Error, Result};
use crate::filter::Matcher;
use crate::reader::{Lines, Snapshot, read_record};
use crate::segment::{
    Compression, LogSet, ManifestEvent, Part, SegmentClosed, SegmentPruned, read_manifest,
};

use super::Shipped;

/// The longest first line read to compute a chain id from a compressed segment.
const MAX_FIRST_LINE: u64 = 64 * 1024 * 1024;

/// How many times the log's files are listed again when they look inconsistent (a rotation
/// or compression happened between listing them and opening one).
const RELISTS: u32 = 5;

/// Just past one record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    /// The file the offset refers to: a segment's file name, or the live file's.
    pub segment: String,
    /// The byte just past the record's LF, in that file's (decompressed) bytes.
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

/// One part of the log, opened.
#[derive(Debug)]
struct Open {
    /// Its file name.
    name: String,
    /// `(first seq, last seq)` of a segment; `None` for the live file.
    range: Option<(u64, u64)>,
    snapshot: Snapshot,
}

/// Where the part holding a `seq` is.
enum Found {
    /// In this closed segment, opened.
    Segment(Open),
    /// In the live file, whose first record is at most that seq.
    Live(Open),
    /// In a segment the manifest says was pruned.
    Pruned(Vec<SegmentPruned>),
    /// Beyond the log's last record: not written yet.
    NotYet,
    /// Nowhere, though the log is past it.
    Missing,
}

/// The log being shipped: its files as last listed, and where reading stands.
#[derive(Debug)]
pub(crate) struct Source {
    path: PathBuf,
    live_name: String,
    set: LogSet,
    closed: Vec<SegmentClosed>,
    pruned: Vec<SegmentPruned>,
    chain_id: Option<String>,
    /// The chain id computed from a segment's first line, by its first seq (segments do not
    /// change, so it is not decompressed again).
    first_line_cache: Option<(u64, String)>,
    /// The part being read (kept after its end while it is a segment: it does not change).
    current: Option<Open>,
    /// Where the next line starts in `current`.
    offset: usize,
    /// The next line read from `current` is the first of its part: it must follow `last`.
    boundary: bool,
    /// The last record read.
    last: Option<Position>,
}

impl Source {
    /// Lists the log at `path`: its live file, its segments and its manifest.
    pub fn open(path: &Path) -> Result<Self> {
        let live_name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut source = Source {
            path: path.to_path_buf(),
            live_name,
            set: LogSet {
                log: path.to_path_buf(),
                parts: Vec::new(),
                has_manifest: false,
            },
            closed: Vec::new(),
            pruned: Vec::new(),
            chain_id: None,
            first_line_cache: None,
            current: None,
            offset: 0,
            boundary: true,
            last: None,
        };
        source.list()?;
        source.chain_id = source.chain_id_now()?;
        Ok(source)
    }

    /// Starts reading just after `pos` (from the log's first record when `None`), checking
    /// that the record at `pos` is still the one that was read there.
    pub fn start(&mut self, pos: Option<Position>) -> Result<()> {
        self.last = pos;
        self.relocate()
    }

    /// Looks at the log again, to see records appended, rotated, compressed or pruned since,
    /// and checks that the record read last is still in place (or, pruned, linked to).
    pub fn refresh(&mut self) -> Result<()> {
        self.list()?;
        let chain_id = self.chain_id_now()?;
        if let (Some(old), Some(new)) = (&self.chain_id, &chain_id)
            && old != new
        {
            return Err(self.changed(&format!(
                "its first line changed (chain {} became {})",
                short(old),
                short(new)
            )));
        }
        if chain_id.is_some() {
            self.chain_id = chain_id;
        }
        self.relocate()
    }

    /// The log's chain id (hex SHA-256 of its first line, from the manifest once that line
    /// was pruned), `None` while it has no line.
    pub fn chain_id(&self) -> Option<&str> {
        self.chain_id.as_deref()
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the records with `seq` were pruned (the manifest says so).
    pub fn is_pruned(&self, seq: u64) -> bool {
        self.pruned
            .iter()
            .any(|p| p.first_seq <= seq && seq <= p.last_seq)
    }

    /// How far the log, as it is now, is ahead of `after`: the records after it, and the
    /// `timestamp` of the first of them.
    pub fn lag(&self, after: Option<&Position>) -> (u64, Option<String>) {
        let live = Snapshot::open(&self.path).ok();
        let live_last = live
            .as_ref()
            .and_then(|s| s.lines_rev().find_map(|(_, line)| seq_of(line).ok()));
        let segments_last = self
            .set
            .parts
            .iter()
            .filter_map(|p| p.segment.map(|s| s.last_seq))
            .chain(self.closed.iter().map(|c| c.last_seq))
            .max();
        let last = live_last.or(segments_last);
        let behind = match (last, after) {
            (Some(last), Some(p)) => last.saturating_sub(p.seq),
            (Some(last), None) => last + 1 - self.first_seq().unwrap_or(0).min(last),
            _ => 0,
        };
        if behind == 0 {
            return (0, None);
        }
        // The next record: in the part being read, else in the live file.
        let in_current = self.current.as_ref().and_then(|c| {
            let data = c.snapshot.data().get(self.offset..)?;
            Lines::new(data, 0).next().map(|(_, line)| line.to_vec())
        });
        let in_live = || {
            let live = live.as_ref()?;
            let start = match after {
                Some(p) if p.segment == self.live_name => usize::try_from(p.offset).ok()?,
                _ => 0,
            };
            let data = live.data().get(start..)?;
            Lines::new(data, 0).next().map(|(_, line)| line.to_vec())
        };
        let next = in_current.or_else(in_live).and_then(|line| {
            read_record(&line)
                .ok()?
                .timestamp
                .map(std::borrow::Cow::into_owned)
        });
        (behind, next)
    }

    /// Reads the records after the last one read: at most `max` that `matcher` passes, and at
    /// most `16 × max` lines in all, going on from one part into the next.
    ///
    /// # Errors
    ///
    /// [`Error::Ship`] for a line that is not a record (shipping stops there, so nothing is
    /// skipped: run `verify`), for a next record that was pruned, or a part that does not
    /// follow the one before.
    pub fn read(&mut self, max: usize, matcher: &Matcher) -> Result<Batch> {
        let mut batch = Batch::default();
        let Some(chain_id) = self.chain_id.clone() else {
            return Ok(batch);
        };
        let max = max.max(1);
        let mut lines = 0usize;
        loop {
            let at_end = self
                .current
                .as_ref()
                .is_none_or(|c| self.offset >= c.snapshot.data().len());
            if at_end {
                let live = self.current.as_ref().is_some_and(|c| c.range.is_none());
                if live || !self.open_next()? {
                    break;
                }
                continue;
            }
            if batch.records.len() >= max || lines >= max.saturating_mul(16) {
                break;
            }
            let Some(current) = &self.current else { break };
            let data = &current.snapshot.data()[self.offset..];
            let end = memchr::memchr(b'\n', data).unwrap_or(data.len());
            let line = &data[..end];
            let offset = self.offset as u64;
            lines += 1;
            let view = read_record(line).map_err(|why| {
                Error::Ship(format!(
                    "the line at byte {offset} of {} is not a record ({}): shipping stops before it so that nothing is skipped; run `nexus-audit verify`",
                    current.snapshot.path().display(),
                    why.as_str()
                ))
            })?;
            let fields = match chain::chain_prefix(line) {
                Some(fields) => fields,
                None => chain::chain_fields(line).map_err(|_| {
                    Error::Ship(format!(
                        "the record at byte {offset} of {} has no valid seq or prev_hash: shipping stops before it; run `nexus-audit verify`",
                        current.snapshot.path().display()
                    ))
                })?,
            };
            if self.boundary {
                if let Some(last) = &self.last
                    && (fields.seq != last.seq + 1 || fields.prev_hash != last.hash)
                {
                    return Err(self.changed(&format!(
                        "{} begins with seq {}, which does not follow the record seq {} read before it (a segment is missing, or was replaced); run `nexus-audit verify`",
                        current.name, fields.seq, last.seq
                    )));
                }
                self.boundary = false;
            }
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
            let name = current.name.clone();
            self.offset += end + 1;
            let pos = Position {
                segment: name,
                offset: self.offset as u64,
                seq: fields.seq,
                hash,
            };
            self.last = Some(pos.clone());
            batch.end = Some(pos);
        }
        Ok(batch)
    }

    /// Lists the log's parts and reads its manifest.
    fn list(&mut self) -> Result<()> {
        self.set = LogSet::open(&self.path)?;
        self.closed.clear();
        self.pruned.clear();
        if let Some((_, entries)) = read_manifest(&self.path)? {
            for entry in entries {
                match entry.event {
                    Some(ManifestEvent::Closed(c)) => self.closed.push(c),
                    Some(ManifestEvent::Pruned(p)) => self.pruned.push(p),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// [`Source::compute_chain_id`], listing the log again when a file it reads was renamed
    /// or removed since it was listed (a rotation, compression or pruning in between).
    fn chain_id_now(&mut self) -> Result<Option<String>> {
        let mut tries = 0;
        loop {
            match self.compute_chain_id() {
                Err(Error::Io { .. }) if tries < RELISTS => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20 * u64::from(tries)));
                    self.list()?;
                }
                other => return other,
            }
        }
    }

    /// The hex SHA-256 of the log's first line: read from the first segment while it is on
    /// disk (or the live file when there is none), else the manifest's record of it.
    fn compute_chain_id(&mut self) -> Result<Option<String>> {
        let first_closed = self.closed.iter().min_by_key(|c| c.first_seq);
        let first_part = self.set.parts.first();
        match (first_closed, first_part) {
            (Some(c), Some(part)) if part.segment.is_none_or(|s| s.first_seq > c.first_seq) => {
                Ok(Some(c.chain_id.clone()))
            }
            (Some(c), None) => Ok(Some(c.chain_id.clone())),
            (_, None) => Ok(None),
            (_, Some(part)) => {
                let Some(seg) = part.segment else {
                    let snapshot = Snapshot::open(&part.path)?;
                    return Ok(first_line_hash(&snapshot));
                };
                if let Some((first, id)) = &self.first_line_cache
                    && *first == seg.first_seq
                {
                    return Ok(Some(id.clone()));
                }
                let id = first_line_of(part)?;
                if let Some(id) = &id {
                    self.first_line_cache = Some((seg.first_seq, id.clone()));
                }
                Ok(id)
            }
        }
    }

    /// The log's first `seq`: the first segment's (closed, pruned or on disk), else the live
    /// file's first record's.
    fn first_seq(&self) -> Option<u64> {
        let recorded = self
            .closed
            .iter()
            .map(|c| c.first_seq)
            .chain(self.pruned.iter().map(|p| p.first_seq))
            .chain(
                self.set
                    .parts
                    .iter()
                    .filter_map(|p| p.segment.map(|s| s.first_seq)),
            )
            .min();
        recorded.or_else(|| {
            let live = Snapshot::open(&self.path).ok()?;
            live.lines().next().and_then(|(_, line)| seq_of(line).ok())
        })
    }

    /// Finds the part holding the last record read, checks the record is still there, and
    /// reads on just after it.
    fn relocate(&mut self) -> Result<()> {
        let Some(last) = self.last.clone() else {
            self.current = None;
            self.offset = 0;
            self.boundary = true;
            return Ok(());
        };
        // NOTE: a segment already read is kept: its bytes do not change, even once it is
        // compressed or pruned.
        if let Some(c) = &self.current
            && let Some((first, end)) = c.range
            && first <= last.seq
            && last.seq <= end
        {
            return Ok(());
        }
        match self.find(last.seq, true)? {
            Found::Segment(open) | Found::Live(open) => {
                self.offset = self.check_line(&open, &last)?;
                self.current = Some(open);
            }
            Found::Pruned(pruned) => {
                // The line is gone: the manifest's head of its segment, or the next record's
                // prev_hash (checked where the next part begins), must be its hash.
                if let Some(p) = pruned.iter().find(|p| p.last_seq == last.seq)
                    && chain::parse_hash_hex(p.head_hash.as_bytes()) != Some(last.hash)
                {
                    return Err(self.changed(&format!(
                        "the manifest's head hash of the pruned segment {} is not the hash of the record seq {} that was shipped",
                        p.file, last.seq
                    )));
                }
                self.current = None;
                self.offset = 0;
                self.boundary = true;
            }
            Found::NotYet | Found::Missing => {
                return Err(self.changed(&format!(
                    "it no longer holds the record seq {} that was shipped (it was truncated or rewritten)",
                    last.seq
                )));
            }
        }
        Ok(())
    }

    /// Opens the part holding the record after the last one read. False when the log has not
    /// reached it yet.
    fn open_next(&mut self) -> Result<bool> {
        let next = match &self.last {
            Some(p) => p.seq + 1,
            None => match self.first_seq() {
                Some(first) => first,
                // NOTE: a live file whose first line is not a record is read from its start,
                // so that the line stops shipping with its sentence instead of being passed
                // over in silence.
                None => return self.open_live_from_start(),
            },
        };
        let open = match self.find(next, false)? {
            Found::NotYet => return Ok(false),
            Found::Segment(open) => {
                if open.range.is_some_and(|(first, _)| first != next) {
                    return Err(self.changed(&format!(
                        "the record seq {next} lies inside {}, not at its start",
                        open.name
                    )));
                }
                open
            }
            Found::Live(open) => {
                let first = open
                    .snapshot
                    .lines()
                    .next()
                    .and_then(|(_, line)| seq_of(line).ok());
                if first != Some(next) {
                    return Err(self.changed(&format!(
                        "the live file {} does not begin with the record seq {next} that follows the last one read",
                        open.name
                    )));
                }
                open
            }
            Found::Pruned(pruned) => return Err(self.pruned_error(next, &pruned)),
            Found::Missing => {
                return Err(self.changed(&format!(
                    "no file holds the record seq {next}, and the manifest does not say it was pruned (a segment is missing); run `nexus-audit verify`"
                )));
            }
        };
        self.current = Some(open);
        self.offset = 0;
        self.boundary = true;
        Ok(true)
    }

    /// Opens the live file at its start; false when it has no complete line.
    fn open_live_from_start(&mut self) -> Result<bool> {
        let snapshot = match Snapshot::open(&self.path) {
            Ok(s) => s,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if snapshot.data().is_empty() {
            return Ok(false);
        }
        self.current = Some(Open {
            name: self.live_name.clone(),
            range: None,
            snapshot,
        });
        self.offset = 0;
        self.boundary = true;
        Ok(true)
    }

    /// The part holding `seq`, listing the log again when what is on disk looks inconsistent
    /// (a rotation or compression between listing and opening). `was_read`: the record was
    /// read before, so a log that seems not to have reached it is listed again too.
    fn find(&mut self, seq: u64, was_read: bool) -> Result<Found> {
        let mut tries = 0;
        loop {
            let found = self.find_once(seq);
            let retry = match &found {
                Ok(Found::Missing) | Err(Error::Io { .. }) => true,
                Ok(Found::NotYet) => was_read,
                _ => false,
            };
            if !retry || tries >= RELISTS {
                return found;
            }
            tries += 1;
            std::thread::sleep(Duration::from_millis(20 * u64::from(tries)));
            self.list()?;
        }
    }

    fn find_once(&self, seq: u64) -> Result<Found> {
        for part in &self.set.parts {
            if let Some(s) = part.segment
                && s.first_seq <= seq
                && seq <= s.last_seq
            {
                // NOTE: the file may be gone since it was listed (compressed, pruned): the
                // error makes `find` list again.
                return open_segment(part).map(Found::Segment);
            }
        }
        let pruned: Vec<SegmentPruned> = self
            .pruned
            .iter()
            .filter(|p| p.last_seq >= seq)
            .cloned()
            .collect();
        if pruned.iter().any(|p| p.first_seq <= seq) {
            return Ok(Found::Pruned(pruned));
        }
        let live_part = self.set.parts.iter().find(|p| p.segment.is_none());
        let live = match live_part {
            Some(part) => match Snapshot::open(&part.path) {
                Ok(snapshot) => Some(snapshot),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let live_first = live
            .as_ref()
            .and_then(|s| s.lines().next())
            .and_then(|(_, line)| seq_of(line).ok());
        if let (Some(snapshot), Some(first)) = (live, live_first) {
            if first <= seq {
                return Ok(Found::Live(Open {
                    name: self.live_name.clone(),
                    range: None,
                    snapshot,
                }));
            }
            return Ok(Found::Missing);
        }
        // No record in the live file: the log ends with its last segment.
        let last = self
            .set
            .parts
            .iter()
            .filter_map(|p| p.segment.map(|s| s.last_seq))
            .chain(self.closed.iter().map(|c| c.last_seq))
            .max();
        match last {
            Some(last) if seq <= last => Ok(Found::Missing),
            _ => Ok(Found::NotYet),
        }
    }

    /// The offset just past the record `pos` in `open`: at `pos.offset` when it is still
    /// there, else found by its `seq`; either way its line must hash to `pos.hash`.
    fn check_line(&self, open: &Open, pos: &Position) -> Result<usize> {
        let data = open.snapshot.data();
        if let Ok(end) = usize::try_from(pos.offset)
            && end > 0
            && end <= data.len()
            && data[end - 1] == b'\n'
        {
            let start = memchr::memrchr(b'\n', &data[..end - 1]).map_or(0, |i| i + 1);
            let line = &data[start..end - 1];
            if seq_of(line).ok() == Some(pos.seq) && chain::hash_line(line) == pos.hash {
                return Ok(end);
            }
        }
        for (offset, line) in open.snapshot.lines() {
            if seq_of(line).ok() == Some(pos.seq) {
                if chain::hash_line(line) == pos.hash {
                    return Ok(usize::try_from(offset).unwrap_or(usize::MAX) + line.len() + 1);
                }
                break;
            }
        }
        Err(self.changed(&format!(
            "the record seq {} in {} is no longer the one that was shipped (it was rewritten or truncated)",
            pos.seq, open.name
        )))
    }

    fn pruned_error(&self, next: u64, pruned: &[SegmentPruned]) -> Error {
        // The run of pruned segments from `next` on.
        let mut sorted: Vec<&SegmentPruned> = pruned.iter().collect();
        sorted.sort_by_key(|p| p.first_seq);
        let mut through = next.saturating_sub(1);
        let mut archives = Vec::new();
        for p in sorted {
            if p.first_seq > through.saturating_add(1) {
                break;
            }
            through = through.max(p.last_seq);
            archives.push(p.archive.clone().map_or_else(
                || format!("{} was not archived", p.file),
                |a| format!("archived to {a}"),
            ));
        }
        let at = self
            .last
            .as_ref()
            .map_or_else(|| "the start".to_owned(), |p| format!("seq {}", p.seq));
        Error::Ship(format!(
            "the records seq {next} to {through} of {} were pruned before they were shipped (the manifest says: {}): nothing was skipped or shipped after them, and the cursor stays at {at}",
            self.path.display(),
            archives.join("; ")
        ))
    }

    fn changed(&self, why: &str) -> Error {
        Error::Ship(format!(
            "the log {} changed under the ship cursor: {why}; nothing more was shipped (ship a new log with a new --cursor)",
            self.path.display()
        ))
    }
}

/// Opens a closed segment: mapped when plain, decompressed in memory when zstd.
fn open_segment(part: &Part) -> Result<Open> {
    let snapshot = part.open()?;
    Ok(Open {
        name: part.file_name(),
        range: part.segment.map(|s| (s.first_seq, s.last_seq)),
        snapshot,
    })
}

/// The hex SHA-256 of a segment's first line, streamed (a zstd segment is decompressed only
/// as far as its first LF).
fn first_line_of(part: &Part) -> Result<Option<String>> {
    let file = std::fs::File::open(&part.path).map_err(Error::io("cannot open", &part.path))?;
    let mut reader: Box<dyn std::io::BufRead> = match part.compression() {
        Compression::None => Box::new(std::io::BufReader::new(file.take(MAX_FIRST_LINE))),
        Compression::Zstd => Box::new(std::io::BufReader::new(
            zstd::stream::read::Decoder::new(file)
                .map_err(Error::io("cannot decompress", &part.path))?
                .take(MAX_FIRST_LINE),
        )),
    };
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .map_err(Error::io("cannot read", &part.path))?;
    if line.pop() != Some(b'\n') {
        return Ok(None);
    }
    Ok(Some(hex::encode(chain::hash_line(&line))))
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
