//! One log across many files: the names of a log's closed segments, finding them on disk, and
//! the events of its manifest.
//!
//! A log is its live file `LOG` plus closed segments beside it named
//! `LOG.<first seq, 20 digits>-<last seq, 20 digits>.jsonl` (`….jsonl.zst` once compressed).
//! `seq` and `prev_hash` continue across segments, so the decompressed segments in seq order
//! followed by the live file are exactly the bytes one unrotated log would hold.
//!
//! The manifest `LOG.manifest.jsonl` is itself a chained log in the same format: each of its
//! records has `action` = the event's name ([`ManifestEvent::action`]) and `details` = the
//! event's fields, written with `source` = [`MANIFEST_SOURCE`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod set;
mod source;
pub use set::{LogSet, ManifestEntry, Part, read_manifest};

/// The suffix of the manifest's file name after the log's own name.
pub const MANIFEST_SUFFIX: &str = ".manifest.jsonl";

/// The `source` of every manifest record.
pub const MANIFEST_SOURCE: &str = "nexus-audit";

/// The `action` of the record written to the live log when segments are pruned.
pub const SEGMENTS_PRUNED_ACTION: &str = "segments_pruned";

/// How a segment is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain JSONL (`.jsonl`).
    None,
    /// zstd (`.jsonl.zst`).
    Zstd,
}

impl Compression {
    /// The file name's ending for this storage.
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => ".jsonl",
            Compression::Zstd => ".jsonl.zst",
        }
    }

    /// The name used on the command line and in the manifest (`none`, `zstd`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        }
    }
}

/// What a segment's file name says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentName {
    /// `seq` of its first record.
    pub first_seq: u64,
    /// `seq` of its last record.
    pub last_seq: u64,
    /// How it is stored.
    pub compression: Compression,
}

/// The file name of a segment of the log whose file name is `log_name`.
///
/// `segment_file_name("audit.jsonl", 0, 41, Compression::Zstd)` is
/// `audit.jsonl.00000000000000000000-00000000000000000041.jsonl.zst`.
#[must_use]
pub fn segment_file_name(log_name: &str, first_seq: u64, last_seq: u64, c: Compression) -> String {
    format!("{log_name}.{first_seq:020}-{last_seq:020}{}", c.extension())
}

/// Reads `candidate` as the file name of a segment of the log named `log_name`: `None` when it
/// is not one (a different log, the manifest, a temporary file, a bad range).
#[must_use]
pub fn parse_segment_name(log_name: &str, candidate: &str) -> Option<SegmentName> {
    let rest = candidate.strip_prefix(log_name)?.strip_prefix('.')?;
    let (range, compression) = if let Some(r) = rest.strip_suffix(Compression::Zstd.extension()) {
        (r, Compression::Zstd)
    } else {
        (
            rest.strip_suffix(Compression::None.extension())?,
            Compression::None,
        )
    };
    let (first, last) = range.split_once('-')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(first) || !digits(last) {
        return None;
    }
    let first_seq = first.parse().ok()?;
    let last_seq = last.parse().ok()?;
    (first_seq <= last_seq).then_some(SegmentName {
        first_seq,
        last_seq,
        compression,
    })
}

/// The manifest's path for the log at `log`.
#[must_use]
pub fn manifest_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_owned();
    name.push(MANIFEST_SUFFIX);
    log.with_file_name(name)
}

/// A closed segment found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Its path.
    pub path: PathBuf,
    /// What its name says.
    pub name: SegmentName,
}

/// The closed segments of the log at `log` that are on disk, in `first_seq` order (ties: the
/// plain file before the compressed one, as happens for a moment while it is compressed).
///
/// # Errors
///
/// [`Error::Io`] when the log's directory cannot be listed. A directory that does not exist
/// holds no segments.
pub fn list_segments(log: &Path) -> Result<Vec<Segment>> {
    let Some(log_name) = log.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let dir = match log.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list the directory of", log)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("cannot list the directory of", log))?;
        let file_name = entry.file_name();
        let Some(candidate) = file_name.to_str() else {
            continue;
        };
        if let Some(name) = parse_segment_name(log_name, candidate) {
            out.push(Segment {
                path: log.with_file_name(candidate),
                name,
            });
        }
    }
    out.sort_by_key(|s| {
        (
            s.name.first_seq,
            s.name.last_seq,
            s.name.compression == Compression::Zstd,
        )
    });
    Ok(out)
}

/// The hex SHA-256 of a log's first line: its `chain_id`, stable, unique per log and
/// self-certifying.
#[must_use]
pub fn chain_id(first_line: &[u8]) -> String {
    hex::encode(crate::chain::hash_line(first_line))
}

/// One event of the manifest: the `details` of a manifest record whose `action` is
/// [`ManifestEvent::action`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ManifestEvent {
    /// The live file was closed and renamed to a segment.
    Closed(SegmentClosed),
    /// A segment was compressed (the plain file is removed after this record).
    Compressed(SegmentCompressed),
    /// A segment was removed by retention.
    Pruned(SegmentPruned),
    /// A segment was copied to an archive directory (before it is pruned).
    Archived(SegmentArchived),
}

impl ManifestEvent {
    /// The manifest record's `action` for this event.
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            ManifestEvent::Closed(_) => "segment_closed",
            ManifestEvent::Compressed(_) => "segment_compressed",
            ManifestEvent::Pruned(_) => "segment_pruned",
            ManifestEvent::Archived(_) => "segment_archived",
        }
    }

    /// The event of a manifest record with this `action` and `details`; `None` for an unknown
    /// action or details that do not fit it.
    #[must_use]
    pub fn from_record(action: &str, details: &serde_json::Value) -> Option<ManifestEvent> {
        let d = details.clone();
        match action {
            "segment_closed" => serde_json::from_value(d).ok().map(ManifestEvent::Closed),
            "segment_compressed" => serde_json::from_value(d)
                .ok()
                .map(ManifestEvent::Compressed),
            "segment_pruned" => serde_json::from_value(d).ok().map(ManifestEvent::Pruned),
            "segment_archived" => serde_json::from_value(d).ok().map(ManifestEvent::Archived),
            _ => None,
        }
    }

    /// The event as a record to append to the manifest.
    #[must_use]
    pub fn to_event(&self) -> crate::record::Event {
        let details = match self {
            ManifestEvent::Closed(e) => serde_json::to_value(e),
            ManifestEvent::Compressed(e) => serde_json::to_value(e),
            ManifestEvent::Pruned(e) => serde_json::to_value(e),
            ManifestEvent::Archived(e) => serde_json::to_value(e),
        }
        .unwrap_or_default();
        crate::record::Event::new(self.action()).details(details)
    }
}

/// `segment_closed`: the live file became the segment `file`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentClosed {
    /// The segment's file name (no directory), as first written (`.jsonl`).
    pub file: String,
    /// The log's chain id (hex SHA-256 of the log's first line).
    pub chain_id: String,
    /// `seq` of its first record.
    pub first_seq: u64,
    /// `seq` of its last record.
    pub last_seq: u64,
    /// `timestamp` of its first record.
    pub first_timestamp: String,
    /// `timestamp` of its last record.
    pub last_timestamp: String,
    /// How many records it holds.
    pub records: u64,
    /// Hex SHA-256 of its last line: the head the next file links to.
    pub head_hash: String,
    /// Its size in bytes, as stored.
    pub bytes: u64,
    /// Hex SHA-256 of the file as stored.
    pub sha256: String,
}

/// `segment_compressed`: `file` was compressed into `compressed_file`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentCompressed {
    /// The plain segment's file name.
    pub file: String,
    /// The compressed file's name.
    pub compressed_file: String,
    /// `zstd`.
    pub algorithm: Compression,
    /// The compressed file's size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the compressed file.
    pub sha256: String,
}

/// `segment_pruned`: the segment `file` was removed by retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentPruned {
    /// The removed file's name (as stored: `.jsonl` or `.jsonl.zst`).
    pub file: String,
    /// `seq` of its first record.
    pub first_seq: u64,
    /// `seq` of its last record.
    pub last_seq: u64,
    /// `timestamp` of its last record.
    pub last_timestamp: String,
    /// Hex SHA-256 of its last line: what the remaining chain is anchored on.
    pub head_hash: String,
    /// Where a copy was archived (the archive file's path), if it was.
    pub archive: Option<String>,
}

/// `segment_archived`: `file` was copied to `archive` and the copy's hash checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentArchived {
    /// The segment's file name.
    pub file: String,
    /// The archive copy's path.
    pub archive: String,
    /// Hex SHA-256 of the copy (equal to the segment's).
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        let n = segment_file_name("a.jsonl", 5, 9, Compression::None);
        assert_eq!(
            parse_segment_name("a.jsonl", &n),
            Some(SegmentName {
                first_seq: 5,
                last_seq: 9,
                compression: Compression::None
            })
        );
        let z = segment_file_name("a.jsonl", 0, u64::MAX, Compression::Zstd);
        assert_eq!(
            parse_segment_name("a.jsonl", &z).map(|s| s.last_seq),
            Some(u64::MAX)
        );
        for bad in [
            "a.jsonl",
            "a.jsonl.manifest.jsonl",
            "b.jsonl.00000000000000000000-00000000000000000001.jsonl",
            "a.jsonl.00000000000000000002-00000000000000000001.jsonl",
            "a.jsonl.0-1.jsonl",
            "a.jsonl.00000000000000000000-00000000000000000001.jsonl.gz",
            "a.jsonl.00000000000000000000-00000000000000000001.jsonl.tmp",
            "a.jsonl.99999999999999999999-99999999999999999999.jsonl",
        ] {
            assert_eq!(parse_segment_name("a.jsonl", bad), None, "{bad}");
        }
    }

    #[test]
    fn manifest_events_round_trip_through_records() {
        let e = ManifestEvent::Compressed(SegmentCompressed {
            file: "x".into(),
            compressed_file: "x.zst".into(),
            algorithm: Compression::Zstd,
            bytes: 3,
            sha256: "00".into(),
        });
        let event = e.to_event();
        assert_eq!(event.action.as_deref(), Some("segment_compressed"));
        let details = event.details.clone().expect("details");
        assert_eq!(ManifestEvent::from_record(e.action(), &details), Some(e));
        assert_eq!(ManifestEvent::from_record("segment_closed", &details), None);
    }

    #[test]
    fn segments_are_listed_in_seq_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("a.jsonl");
        for (f, l, c) in [
            (10, 19, Compression::Zstd),
            (0, 9, Compression::None),
            (20, 20, Compression::None),
        ] {
            std::fs::write(dir.path().join(segment_file_name("a.jsonl", f, l, c)), b"")
                .expect("write");
        }
        std::fs::write(manifest_path(&log), b"").expect("write");
        let firsts: Vec<u64> = list_segments(&log)
            .expect("list")
            .iter()
            .map(|s| s.name.first_seq)
            .collect();
        assert_eq!(firsts, [0, 10, 20]);
    }
}
