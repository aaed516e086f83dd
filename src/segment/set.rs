//! A rotated log as one log: the live file and its closed segments in `seq` order, with what
//! the manifest says of each, so a reader can tell which files a time range needs without
//! opening the others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::reader::{Snapshot, read_record};

use super::{Compression, ManifestEvent, SegmentClosed, list_segments, manifest_path};

/// One file of a log: a closed segment or the live file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Its path.
    pub path: PathBuf,
    /// `None` for the live file; else the segment's range and storage.
    pub segment: Option<super::SegmentName>,
    /// What the manifest's `segment_closed` says of its range, when it has an entry.
    pub closed: Option<SegmentClosed>,
}

impl Part {
    /// How the file is stored.
    #[must_use]
    pub fn compression(&self) -> Compression {
        self.segment.map_or(Compression::None, |s| s.compression)
    }

    /// The file's name, without its directory.
    #[must_use]
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Opens the part: mapped when plain, decompressed in memory when compressed.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Io`] when it cannot be read or decompressed.
    pub fn open(&self) -> Result<Snapshot> {
        super::source::open_part(&self.path, self.compression())
    }

    /// False when the manifest's timestamps show that no record of this segment lies in
    /// `[since, until)`; true for the live file, and for a segment the manifest does not
    /// describe (it must be read to know).
    #[must_use]
    pub fn may_hold(&self, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> bool {
        let Some(c) = &self.closed else {
            return true;
        };
        let (Some(first), Some(last)) = (
            crate::time::parse_timestamp(&c.first_timestamp),
            crate::time::parse_timestamp(&c.last_timestamp),
        ) else {
            return true;
        };
        since.is_none_or(|s| last >= s) && until.is_none_or(|u| first < u)
    }
}

/// One record of the manifest, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Its 1-based line number in the manifest.
    pub line: u64,
    /// Its `action`, when it has one.
    pub action: Option<String>,
    /// The event, when the action is one and the details fit it.
    pub event: Option<ManifestEvent>,
}

/// The manifest's records, in order (unreadable lines are entries without an event).
///
/// # Errors
///
/// [`crate::Error::Io`] when the manifest exists but cannot be read. No manifest: `None`.
pub fn read_manifest(log: &Path) -> Result<Option<(Snapshot, Vec<ManifestEntry>)>> {
    let path = manifest_path(log);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let snapshot = Snapshot::open(&path)?;
    let entries = snapshot
        .lines()
        .enumerate()
        .map(|(i, (_, line))| {
            let view = read_record(line).ok();
            let action = view
                .as_ref()
                .and_then(|v| v.action.as_deref().map(str::to_owned));
            let event = action.as_deref().and_then(|a| {
                let value: serde_json::Value = serde_json::from_slice(line).ok()?;
                ManifestEvent::from_record(a, value.get("details")?)
            });
            ManifestEntry {
                line: i as u64 + 1,
                action,
                event,
            }
        })
        .collect();
    Ok(Some((snapshot, entries)))
}

/// A log and its segments, oldest first, the live file last.
#[derive(Clone, Debug)]
pub struct LogSet {
    /// The live file's path.
    pub log: PathBuf,
    /// Its parts in `seq` order; the live file last when it exists.
    pub parts: Vec<Part>,
    /// The manifest is there.
    pub has_manifest: bool,
}

impl LogSet {
    /// Finds the log's segments and reads its manifest. When a range is on disk both plain
    /// and compressed, the plain file is used (the compressed one may still be incomplete).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Io`] when the directory or the manifest cannot be read.
    pub fn open(log: &Path) -> Result<Self> {
        let manifest = read_manifest(log)?;
        let has_manifest = manifest.is_some();
        let mut closed: HashMap<(u64, u64), SegmentClosed> = HashMap::new();
        for entry in manifest.iter().flat_map(|(_, e)| e) {
            if let Some(ManifestEvent::Closed(c)) = &entry.event {
                closed.insert((c.first_seq, c.last_seq), c.clone());
            }
        }
        let segments = match list_segments(log) {
            Ok(s) => s,
            // NOTE: a log in a directory this process may not list (search permission only)
            // is read as the one file it is, as it always was; with a manifest the segments
            // matter, and the error stands.
            Err(_) if !has_manifest => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut parts: Vec<Part> = Vec::new();
        for seg in segments {
            let range = (seg.name.first_seq, seg.name.last_seq);
            // NOTE: list_segments puts the plain file of a range before the compressed one.
            if parts
                .last()
                .and_then(|p| p.segment)
                .is_some_and(|s| (s.first_seq, s.last_seq) == range)
            {
                continue;
            }
            parts.push(Part {
                path: seg.path,
                segment: Some(seg.name),
                closed: closed.get(&range).cloned(),
            });
        }
        if std::fs::symlink_metadata(log).is_ok() {
            parts.push(Part {
                path: log.to_path_buf(),
                segment: None,
                closed: None,
            });
        }
        Ok(LogSet {
            log: log.to_path_buf(),
            parts,
            has_manifest,
        })
    }

    /// True when the log has segments or a manifest: false for a plain single-file log, which
    /// every reader reads as it always did.
    #[must_use]
    pub fn is_rotated(&self) -> bool {
        self.has_manifest || self.parts.iter().any(|p| p.segment.is_some())
    }

    /// The parts that may hold records in `[since, until)`, oldest first.
    #[must_use]
    pub fn parts_in(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Vec<&Part> {
        self.parts
            .iter()
            .filter(|p| p.may_hold(since, until))
            .collect()
    }

    /// The parts joined into one snapshot in memory: the bytes one unrotated log would hold.
    /// For the commands that need the log's whole byte stream at once (a checkpoint's size).
    ///
    /// # Errors
    ///
    /// As [`Part::open`].
    pub fn joined(&self) -> Result<Snapshot> {
        let mut bytes = Vec::new();
        for part in &self.parts {
            let snap = part.open()?;
            bytes.extend_from_slice(snap.data());
            bytes.extend_from_slice(snap.torn_tail());
        }
        Ok(Snapshot::from_bytes(self.log.clone(), bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::segment_file_name;

    #[test]
    fn a_range_on_disk_twice_is_read_from_its_plain_file_and_the_live_file_comes_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("a.jsonl");
        for (f, l, c) in [
            (0, 9, Compression::Zstd),
            (10, 19, Compression::None),
            (10, 19, Compression::Zstd),
        ] {
            std::fs::write(dir.path().join(segment_file_name("a.jsonl", f, l, c)), b"")
                .expect("write");
        }
        std::fs::write(&log, b"").expect("write");
        let set = LogSet::open(&log).expect("open");
        assert!(set.is_rotated());
        let kinds: Vec<(Option<u64>, Compression)> = set
            .parts
            .iter()
            .map(|p| (p.segment.map(|s| s.first_seq), p.compression()))
            .collect();
        assert_eq!(
            kinds,
            [
                (Some(0), Compression::Zstd),
                (Some(10), Compression::None),
                (None, Compression::None)
            ]
        );
    }
}
