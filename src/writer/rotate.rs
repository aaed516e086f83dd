//! Rotation: closing the live file into a segment under the writer's lock, completing a
//! rotation a crash interrupted, and the head of a log whose live file is empty (or missing)
//! after a rotation.
//!
//! Closing the live file `LOG`, which holds seqs `[a, b]`, takes three steps, all under the
//! exclusive lock of `LOG` (the one every appender takes), so any number of writers with the
//! same options rotate once:
//!
//! 1. append `segment_closed` to the manifest (synced);
//! 2. rename `LOG` to `LOG.<a>-<b>.jsonl`;
//! 3. sync the directory.
//!
//! The next append creates a new `LOG` whose first record links to the head the manifest
//! recorded (seq `b + 1`, `prev_hash` = its `head_hash`). A crash between steps 1 and 2 leaves
//! a manifest that names a segment that is not there while `LOG` still begins at `a`: the next
//! writer finishes the rename before it writes anything.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest as _, Sha256};

use super::log_file::{Held, id_at, sync_parent_dir};
use super::tail::read_tail;
use super::{LogOptions, Logger, Shared};
use crate::chain::{self, Head};
use crate::error::{Error, Result};
use crate::segment::{
    self, Compression, MANIFEST_SOURCE, ManifestEvent, SegmentArchived, SegmentClosed,
    SegmentCompressed, SegmentPruned,
};

/// When the live file is closed into a segment, and how closed segments are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Policy {
    /// Rotate before a write once the live file holds this many bytes.
    pub(super) max_size: Option<u64>,
    /// Rotate before a write once the live file's first record is this old.
    pub(super) max_age: Option<Duration>,
    /// How a segment is stored once closed.
    pub(super) compress: Compression,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_size: None,
            max_age: None,
            compress: Compression::Zstd,
        }
    }
}

/// What a writer handle remembers between writes about rotation.
#[derive(Debug, Default)]
pub(super) struct RotationState {
    /// The manifest's length when last read (`Known(None)`: there was none).
    manifest_len: Seen<Option<u64>>,
    /// The `timestamp` of the live file's first record (`Known(None)`: it has none, or none
    /// that can be read), while the same file is open.
    first_timestamp: Seen<Option<chrono::DateTime<Utc>>>,
    /// Closed segments wait to be compressed.
    pub(super) compress_due: bool,
}

/// Something read once and remembered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Seen<T> {
    /// Not read yet (or forgotten).
    #[default]
    Unknown,
    /// As it was read.
    Known(T),
}

impl RotationState {
    /// Forgets what was known of the live file (another file is at its path now).
    pub(super) fn forget_file(&mut self) {
        self.first_timestamp = Seen::Unknown;
        self.manifest_len = Seen::Unknown;
    }
}

/// What [`Shared::before_write`] decided.
pub(super) enum Before {
    /// Write to the file as it is.
    Write,
    /// The file was closed into a segment (now, or to finish an interrupted rotation): open
    /// the new live file and start again.
    Rotated,
}

/// The manifest, read whole.
#[derive(Debug, Default)]
pub(crate) struct Manifest {
    pub(crate) closed: Vec<SegmentClosed>,
    pub(crate) compressed: Vec<SegmentCompressed>,
    pub(crate) pruned: Vec<SegmentPruned>,
    pub(crate) archived: Vec<SegmentArchived>,
}

impl Manifest {
    /// Reads the manifest of the log at `log`: empty when there is none. Lines that are not
    /// manifest records are skipped here (`verify` reports them).
    pub(crate) fn read(log: &Path) -> Result<Manifest> {
        let path = segment::manifest_path(log);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(Error::io("cannot read the manifest", &path)(e)),
        };
        let mut m = Manifest::default();
        for line in bytes.split(|&b| b == b'\n') {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(action), Some(details)) = (
                value.get("action").and_then(serde_json::Value::as_str),
                value.get("details"),
            ) else {
                continue;
            };
            match ManifestEvent::from_record(action, details) {
                Some(ManifestEvent::Closed(e)) => m.closed.push(e),
                Some(ManifestEvent::Compressed(e)) => m.compressed.push(e),
                Some(ManifestEvent::Pruned(e)) => m.pruned.push(e),
                Some(ManifestEvent::Archived(e)) => m.archived.push(e),
                None => {}
            }
        }
        Ok(m)
    }

    /// The `segment_closed` entry with the highest `last_seq`.
    pub(crate) fn last_closed(&self) -> Option<&SegmentClosed> {
        self.closed.iter().max_by_key(|c| c.last_seq)
    }

    /// The head the live file continues when it holds no record: that of the last segment.
    pub(crate) fn head(&self) -> Option<Head> {
        let last = self.last_closed()?;
        Some(Head {
            seq: last.last_seq,
            hash: chain::parse_hash_hex(last.head_hash.as_bytes())?,
        })
    }

    /// The `segment_closed` entry of the segment holding exactly `[first, last]`.
    pub(crate) fn closed_for(&self, first: u64, last: u64) -> Option<&SegmentClosed> {
        self.closed
            .iter()
            .rev()
            .find(|c| c.first_seq == first && c.last_seq == last)
    }

    /// Whether the plain segment `file` was recorded as compressed.
    pub(crate) fn is_compressed(&self, file: &str) -> bool {
        self.compressed.iter().any(|c| c.file == file)
    }

    /// The `segment_pruned` entry of the segment holding `[first, last]`, if it was pruned.
    pub(crate) fn pruned_for(&self, first: u64, last: u64) -> Option<&SegmentPruned> {
        self.pruned
            .iter()
            .find(|p| p.first_seq == first && p.last_seq == last)
    }

    /// The log's chain id, as the first `segment_closed` gave it.
    fn chain_id(&self) -> Option<&str> {
        self.closed
            .iter()
            .min_by_key(|c| c.first_seq)
            .map(|c| c.chain_id.as_str())
    }
}

/// The seq and timestamp of a record's line (`None` for a line that is not one).
pub(crate) fn seq_and_time(line: &[u8]) -> Option<(u64, String)> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let seq = value.get("seq")?.as_u64()?;
    let ts = value
        .get("timestamp")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((seq, ts))
}

/// The first line of `file` (without its LF), if it has a complete one.
pub(crate) fn first_line(file: &File, len: u64, path: &Path) -> Result<Option<Vec<u8>>> {
    let mut window: u64 = 16 * 1024;
    loop {
        let take = window.min(len);
        let mut buf = vec![0u8; usize::try_from(take).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, 0)
            .map_err(Error::io("cannot read the start of", path))?;
        if let Some(lf) = memchr::memchr(b'\n', &buf) {
            buf.truncate(lf);
            return Ok(Some(buf));
        }
        if take == len {
            return Ok(None);
        }
        window = window.saturating_mul(4);
    }
}

/// Whether the open file `open` is the file at `path` now (not one renamed away or replaced).
pub(super) fn is_at_path(open: &Held, path: &Path) -> Result<bool> {
    Ok(id_at(path)? == Some(open.id))
}

/// The length of the manifest of the log at `log`, `None` when there is none.
fn manifest_len(log: &Path) -> Result<Option<u64>> {
    let path = segment::manifest_path(log);
    match std::fs::metadata(&path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot stat", &path)(e)),
    }
}

/// A sentence about a rotation that cannot go on, as an [`Error::Io`] on `path`.
pub(crate) fn refusal(context: &'static str, path: &Path, why: String) -> Error {
    Error::io(context, path)(std::io::Error::other(why))
}

/// The name of `path`'s file, as text.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Hex SHA-256, byte count, LF count and first line of a file, read in 1 MiB pieces.
pub(crate) struct Scanned {
    pub(crate) sha256: String,
    pub(crate) bytes: u64,
    pub(crate) lines: u64,
    pub(crate) first_line: Vec<u8>,
}

pub(crate) fn scan(mut reader: impl std::io::Read, path: &Path) -> Result<Scanned> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    let mut lines = 0u64;
    let mut first_line = Vec::new();
    let mut first_done = false;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("cannot read", path)(e)),
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        bytes += n as u64;
        lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        if !first_done {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    first_line.extend_from_slice(&chunk[..i]);
                    first_done = true;
                }
                None => first_line.extend_from_slice(chunk),
            }
        }
    }
    Ok(Scanned {
        sha256: hex::encode(hasher.finalize()),
        bytes,
        lines,
        first_line,
    })
}

impl Shared {
    /// Aborts the process at the crash point `point` when a test asked for it (only with the
    /// `fault-injection` feature; the CLI passes the test's wish in, the library reads no
    /// environment).
    pub(super) fn crash_point(&self, point: &str) {
        #[cfg(feature = "fault-injection")]
        if self.crash_at.as_deref() == Some(point) {
            std::process::abort();
        }
        // Without the feature there are no crash points (and `crash_at` is always `None`).
        #[cfg(not(feature = "fault-injection"))]
        let _ = (&self.crash_at, point);
    }

    /// A logger on this log's manifest: records go through the library's writer, synced, with
    /// `source` = `nexus-audit`, unredacted (they hold only file names, numbers and hex).
    pub(super) fn manifest_logger(&self) -> Result<Logger> {
        LogOptions::new(segment::manifest_path(&self.path))
            .mode(self.mode)
            .source(MANIFEST_SOURCE)
            .compress(Compression::None)
            .open()
    }

    /// Appends one event to the manifest.
    pub(super) fn record(&self, event: &ManifestEvent) -> Result<()> {
        let manifest = self.manifest_logger()?;
        manifest.append_own(event.to_event())?;
        manifest.close()
    }

    /// Under the exclusive lock of the live file `file` (of length `len`): finishes a rotation
    /// a crash interrupted, then rotates if the policy says the file is due.
    /// `known` says whether this handle's cached head still holds for the file; `settled`,
    /// that the manifest did not change since this handle last read its length.
    pub(super) fn before_write(
        &self,
        file: &File,
        len: u64,
        known: bool,
        settled: bool,
        state: &mut RotationState,
    ) -> Result<Before> {
        let path = self.path.as_path();
        let mlen = match state.manifest_len {
            Seen::Known(mlen) if settled => mlen,
            _ => manifest_len(path)?,
        };
        let mut manifest = None;
        if !known || state.manifest_len != Seen::Known(mlen) {
            if mlen.is_some() {
                let m = Manifest::read(path)?;
                if self.complete_interrupted(file, len, &m)? {
                    return Ok(Before::Rotated);
                }
                // A plain segment still on disk: closed by a writer with compression off, or a
                // compression a crash interrupted (with or without its manifest record).
                if self.policy.compress == Compression::Zstd
                    && m.closed.iter().any(|c| {
                        m.pruned_for(c.first_seq, c.last_seq).is_none()
                            && path.with_file_name(&c.file).symlink_metadata().is_ok()
                    })
                {
                    state.compress_due = true;
                }
                manifest = Some(m);
            }
            state.manifest_len = Seen::Known(mlen);
        }
        if len == 0 {
            return Ok(Before::Write);
        }
        let size_due = self.policy.max_size.is_some_and(|max| len >= max);
        let age_due = match self.policy.max_age {
            Some(max_age) if !size_due => {
                let first = if let Seen::Known(t) = state.first_timestamp {
                    t
                } else {
                    let t = first_line(file, len, path)?
                        .and_then(|l| seq_and_time(&l))
                        .and_then(|(_, ts)| crate::time::parse_timestamp(&ts));
                    state.first_timestamp = Seen::Known(t);
                    t
                };
                first.is_some_and(|t| {
                    Utc::now()
                        .signed_duration_since(t)
                        .to_std()
                        .is_ok_and(|age| age >= max_age)
                })
            }
            _ => false,
        };
        if !(size_due || age_due) {
            return Ok(Before::Write);
        }
        let manifest = match manifest {
            Some(m) => m,
            None => Manifest::read(path)?,
        };
        if self.close_segment(file, len, &manifest)?.is_some() {
            state.compress_due |= self.policy.compress == Compression::Zstd;
            Ok(Before::Rotated)
        } else {
            Ok(Before::Write)
        }
    }

    /// Finishes a rotation that a crash cut between the manifest's `segment_closed` and the
    /// rename: the manifest's last segment is not on disk, and the live file still begins at
    /// its first seq. Renames the live file to it; `true` when it did.
    fn complete_interrupted(&self, file: &File, len: u64, m: &Manifest) -> Result<bool> {
        let path = self.path.as_path();
        let Some(last) = m.last_closed() else {
            return Ok(false);
        };
        if len == 0 || m.pruned_for(last.first_seq, last.last_seq).is_some() {
            return Ok(false);
        }
        let log_name = file_name(path);
        let plain = path.with_file_name(&last.file);
        let zst = path.with_file_name(segment::segment_file_name(
            &log_name,
            last.first_seq,
            last.last_seq,
            Compression::Zstd,
        ));
        if plain.symlink_metadata().is_ok() || zst.symlink_metadata().is_ok() {
            return Ok(false);
        }
        let first = first_line(file, len, path)?.and_then(|l| seq_and_time(&l));
        if first.map(|(seq, _)| seq) != Some(last.first_seq) {
            return Ok(false);
        }
        let tail = read_tail(file, len, path)?;
        let head = tail.last_line.as_deref().map(chain::hash_line);
        if len != last.bytes || head.map(hex::encode).as_deref() != Some(last.head_hash.as_str()) {
            return Err(refusal(
                "cannot finish the interrupted rotation of",
                path,
                format!(
                    "the manifest closed seqs {} to {} into {} ({} bytes), but the live file that should become it holds {len} bytes or ends with another record; nothing was changed (run verify)",
                    last.first_seq, last.last_seq, last.file, last.bytes
                ),
            ));
        }
        self.rename_into(path, &plain)?;
        Ok(true)
    }

    /// Steps 2 and 3 of a rotation: the rename, and the directory's sync.
    fn rename_into(&self, path: &Path, segment: &Path) -> Result<()> {
        std::fs::rename(path, segment).map_err(Error::io("cannot rename the live file", path))?;
        self.crash_point("rotate-after-rename");
        sync_parent_dir(path)
    }

    /// Closes the live file `file` (length `len`, locked) into a segment: the manifest's
    /// `segment_closed`, the rename, the directory's sync. `None` when there is nothing to
    /// close (no complete record, or a torn tail the next write recovers first).
    pub(super) fn close_segment(
        &self,
        file: &File,
        len: u64,
        manifest: &Manifest,
    ) -> Result<Option<SegmentClosed>> {
        let path = self.path.as_path();
        let tail = read_tail(file, len, path)?;
        let Some(last_line) = tail.last_line.as_deref() else {
            return Ok(None);
        };
        if tail.complete_len != len {
            return Ok(None);
        }
        file.sync_all().map_err(Error::io("cannot sync", path))?;
        let scanned = scan(std::io::BufReader::new(SeqReader::new(file)), path)?;
        let bad = |what: &str| {
            refusal(
                "cannot rotate",
                path,
                format!("its {what} record is not a chained record with a seq"),
            )
        };
        let (first_seq, first_timestamp) =
            seq_and_time(&scanned.first_line).ok_or_else(|| bad("first"))?;
        let (last_seq, last_timestamp) = seq_and_time(last_line).ok_or_else(|| bad("last"))?;
        if last_seq < first_seq {
            return Err(bad("last"));
        }
        let log_name = file_name(path);
        let chain_id = match manifest.chain_id() {
            Some(id) => id.to_owned(),
            None if first_seq == 0 => segment::chain_id(&scanned.first_line),
            None => self.chain_id_from_segments()?.unwrap_or_default(),
        };
        let name = segment::segment_file_name(&log_name, first_seq, last_seq, Compression::None);
        let target = path.with_file_name(&name);
        if target.symlink_metadata().is_ok() {
            return Err(refusal(
                "cannot rotate",
                path,
                format!("a segment named {name} is there already; nothing was changed"),
            ));
        }
        let closed = SegmentClosed {
            file: name,
            chain_id,
            first_seq,
            last_seq,
            first_timestamp,
            last_timestamp,
            records: scanned.lines,
            head_hash: hex::encode(chain::hash_line(last_line)),
            bytes: scanned.bytes,
            sha256: scanned.sha256,
        };
        self.record(&ManifestEvent::Closed(closed.clone()))?;
        self.crash_point("rotate-after-manifest");
        self.rename_into(path, &target)?;
        Ok(Some(closed))
    }

    /// The chain id from the first line of the log's oldest segment on disk, if it is seq 0.
    fn chain_id_from_segments(&self) -> Result<Option<String>> {
        let Some(first) = segment::list_segments(&self.path)?.into_iter().next() else {
            return Ok(None);
        };
        if first.name.first_seq != 0 {
            return Ok(None);
        }
        let file = File::open(&first.path).map_err(Error::io("cannot open", &first.path))?;
        let mut reader: Box<dyn std::io::Read> = match first.name.compression {
            Compression::None => Box::new(file),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(file)
                    .map_err(Error::io("cannot read", &first.path))?,
            ),
        };
        let mut line = Vec::new();
        let mut byte = [0u8; 4096];
        loop {
            let n = reader
                .read(&mut byte)
                .map_err(Error::io("cannot read", &first.path))?;
            if n == 0 {
                return Ok(None);
            }
            if let Some(i) = memchr::memchr(b'\n', &byte[..n]) {
                line.extend_from_slice(&byte[..i]);
                return Ok(Some(segment::chain_id(&line)));
            }
            line.extend_from_slice(&byte[..n]);
        }
    }

    /// The head a live file that holds no complete record continues: that of the last
    /// segment, from the manifest. `None` for a new log. A log whose segments are on disk but
    /// whose manifest says nothing of them is refused: the chain cannot be continued blindly.
    pub(super) fn head_after_segments(&self) -> Result<Option<Head>> {
        let m = Manifest::read(&self.path)?;
        if let Some(head) = m.head() {
            return Ok(Some(head));
        }
        if !segment::list_segments(&self.path)?.is_empty() {
            return Err(refusal(
                "cannot append to",
                &self.path,
                format!(
                    "its live file is empty and closed segments are beside it, but its manifest {} records none, so the chain's head is unknown; nothing was written",
                    segment::manifest_path(&self.path).display()
                ),
            ));
        }
        Ok(None)
    }
}

/// Reads a file from its start with `pread`, whatever its offset (the log is opened
/// `O_APPEND`).
pub(crate) struct SeqReader<'a> {
    file: &'a File,
    offset: u64,
}

impl<'a> SeqReader<'a> {
    pub(crate) fn new(file: &'a File) -> Self {
        SeqReader { file, offset: 0 }
    }
}

impl std::io::Read for SeqReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Logger {
    /// Closes the live file into a segment now, whatever its size or age, as `append` does
    /// when `max_size` or `max_age` is reached; then compresses closed segments when the
    /// options say so. `None` when the live file holds no record (nothing to close).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a file cannot be read, written, renamed or synced, or a rotation
    /// cannot go on (the sentence says why); nothing is lost then.
    pub fn rotate(&self) -> Result<Option<SegmentClosed>> {
        let closed = self.shared.rotate_now()?;
        if self.shared.policy.compress == Compression::Zstd {
            self.shared.compress_pending()?;
        }
        Ok(closed)
    }

    /// Appends a record the library makes itself (a manifest record): not redacted.
    pub(crate) fn append_own(&self, event: crate::record::Event) -> Result<super::Receipt> {
        let body = self.shared.encoder.encode_own(event)?;
        self.shared.commit(vec![body])
    }
}

impl Shared {
    fn rotate_now(&self) -> Result<Option<SegmentClosed>> {
        let path = self.path.as_path();
        let mut log = super::lock(&self.log);
        let log = &mut *log;
        loop {
            if log.file.is_none() {
                log.file = super::log_file::open_existing_log_file(path)?;
                log.cache = None;
                log.sealer = None;
                log.rotation.forget_file();
            }
            let Some(file) = log.file.as_ref() else {
                return Ok(None);
            };
            let guard =
                crate::lock::FileLock::exclusive(file).map_err(Error::io("cannot lock", path))?;
            let open = Held::stat(file, path)?;
            if !is_at_path(&open, path)? {
                drop(guard);
                log.file = None;
                continue;
            }
            let len = open.len;
            let m = Manifest::read(path)?;
            if self.complete_interrupted(file, len, &m)? {
                drop(guard);
                log.file = None;
                continue;
            }
            let closed = self.close_segment(file, len, &m)?;
            drop(guard);
            if closed.is_some() {
                log.file = None;
                log.cache = None;
                log.sealer = None;
                log.rotation.forget_file();
            }
            return Ok(closed);
        }
    }
}

/// Directory of a log.
pub(crate) fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest is read whole; lines that are not manifest records (a torn tail, another
    /// action, details that do not fit) are skipped, and the head is the highest segment's.
    #[test]
    fn the_manifest_is_read_past_lines_that_are_not_its_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("a.jsonl");
        let closed = |first: u64, last: u64, head: &str| {
            serde_json::json!({"seq": 0, "action": "segment_closed", "details": {
                "file": segment::segment_file_name("a.jsonl", first, last, Compression::None),
                "chain_id": "c", "first_seq": first, "last_seq": last,
                "first_timestamp": "t", "last_timestamp": "t", "records": last - first + 1,
                "head_hash": head, "bytes": 1, "sha256": "s"}})
            .to_string()
        };
        let text = [
            closed(0, 4, &"ab".repeat(32)),
            r#"{"seq":1,"action":"something_else","details":{}}"#.to_owned(),
            r#"{"seq":2,"action":"segment_closed","details":{"file":1}}"#.to_owned(),
            closed(5, 9, &"cd".repeat(32)),
            r#"{"seq":4,"action":"segment_pru"#.to_owned(),
        ]
        .join("\n");
        std::fs::write(segment::manifest_path(&log), text).expect("write");
        let m = Manifest::read(&log).expect("read");
        assert_eq!(m.closed.len(), 2);
        let head = m.head().expect("a head");
        assert_eq!(head.seq, 9);
        assert_eq!(hex::encode(head.hash), "cd".repeat(32));
        assert!(m.closed_for(0, 4).is_some());
        assert!(m.closed_for(0, 9).is_none());
        assert!(
            Manifest::read(&dir.path().join("none.jsonl"))
                .expect("absent")
                .closed
                .is_empty()
        );
    }
}
