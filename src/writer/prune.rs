//! Retention: removing the oldest closed segments (never the live file), with an optional
//! archive copy whose SHA-256 is checked before the segment goes.
//!
//! Per segment, under the directory lock: copy to the archive (synced, the copy re-read and
//! its hash compared), `segment_archived`; `segment_pruned`; remove the file; sync the
//! directory. After the last one, one `segments_pruned` record in the live log. A crash at any
//! step is finished by the next `prune`: a segment the manifest says was pruned is removed
//! without a second record, and a missing `segments_pruned` record is written.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::compress::{DirLock, Hashing};
use super::log_file::sync_parent_dir;
use super::rotate::{Manifest, file_name, refusal};
use super::{Logger, Shared};
use crate::error::{Error, Result};
use crate::record::Event;
use crate::segment::{
    self, Compression, MANIFEST_SOURCE, ManifestEvent, SEGMENTS_PRUNED_ACTION, Segment,
    SegmentArchived, SegmentPruned,
};

/// What [`Logger::prune`] removes, and where it copies it first.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    older_than: chrono::Duration,
    archive: Option<PathBuf>,
    dry_run: bool,
    now: DateTime<Utc>,
}

impl PruneOptions {
    /// Removes the closed segments whose last record is older than `older_than` (90 days is
    /// the documented default of the CLI).
    #[must_use]
    pub fn new(older_than: chrono::Duration) -> Self {
        PruneOptions {
            older_than,
            archive: None,
            dry_run: false,
            now: Utc::now(),
        }
    }

    /// Copies each segment into `dir` (which must exist and be writable) and checks the
    /// copy's SHA-256 before removing it.
    #[must_use]
    pub fn archive(mut self, dir: impl Into<PathBuf>) -> Self {
        self.archive = Some(dir.into());
        self
    }

    /// Changes nothing; reports what would be pruned.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

/// One segment pruned (or that would be).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PrunedSegment {
    /// The file, as stored.
    pub file: String,
    /// `seq` of its first record.
    pub first_seq: u64,
    /// `seq` of its last record.
    pub last_seq: u64,
    /// `timestamp` of its last record.
    pub last_timestamp: String,
    /// The archive copy's path, if archived.
    pub archive: Option<String>,
}

/// What [`Logger::prune`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// The segments pruned by this run (or that a dry run would prune), oldest first.
    pub segments: Vec<PrunedSegment>,
    /// `seq` of the `segments_pruned` record written to the live log, if one was.
    pub record_seq: Option<u64>,
}

impl Logger {
    /// Removes the closed segments whose last record is older than the options' span, oldest
    /// first, stopping at the first one that is not (the live file is never pruned); each is
    /// archived first when the options say so. See the module's documentation for the steps.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the archive directory is not a writable directory (checked before
    /// anything changes), or a copy, removal or record fails (what was done before stays
    /// done and recorded; the next run goes on from there).
    pub fn prune(&self, opts: &PruneOptions) -> Result<PruneReport> {
        self.shared.prune(opts)
    }
}

impl Shared {
    fn prune(&self, opts: &PruneOptions) -> Result<PruneReport> {
        let path = self.path.as_path();
        if let Some(dir) = &opts.archive {
            check_archive_dir(dir)?;
        }
        let cutoff = opts.now - opts.older_than;
        let _lock = DirLock::exclusive(path)?;
        let manifest = Manifest::read(path)?;
        let earlier_through = if manifest.pruned.is_empty() {
            None
        } else {
            Some(self.last_pruned_record()?)
        };

        // The segments on disk, one per range: the stored file first, then any leftover twin.
        let mut ranges: Vec<(u64, u64, Vec<Segment>)> = Vec::new();
        for seg in segment::list_segments(path)? {
            match ranges.last_mut() {
                Some((f, l, files)) if *f == seg.name.first_seq && *l == seg.name.last_seq => {
                    files.push(seg);
                }
                _ => ranges.push((seg.name.first_seq, seg.name.last_seq, vec![seg])),
            }
        }

        let mut report = PruneReport::default();
        for (first, last, files) in ranges {
            let Some(closed) = manifest.closed_for(first, last) else {
                break;
            };
            if manifest.pruned_for(first, last).is_some() {
                // Pruned by a run that stopped before the removal: finish it.
                if !opts.dry_run {
                    remove_all(&files)?;
                }
                continue;
            }
            let old =
                crate::time::parse_timestamp(&closed.last_timestamp).is_some_and(|t| t < cutoff);
            if !old {
                break;
            }
            let stored = stored_file(&manifest, &files);
            let mut pruned = PrunedSegment {
                file: file_name(&stored.path),
                first_seq: first,
                last_seq: last,
                last_timestamp: closed.last_timestamp.clone(),
                archive: None,
            };
            if opts.dry_run {
                pruned.archive = opts
                    .archive
                    .as_ref()
                    .map(|d| d.join(&pruned.file).display().to_string());
                report.segments.push(pruned);
                continue;
            }
            if let Some(dir) = &opts.archive {
                let copy = dir.join(&pruned.file);
                let sha256 = archive_copy(&stored.path, &copy)?;
                self.crash_point("prune-after-archive");
                let archive = copy.display().to_string();
                self.record(&ManifestEvent::Archived(SegmentArchived {
                    file: pruned.file.clone(),
                    archive: archive.clone(),
                    sha256,
                }))?;
                pruned.archive = Some(archive);
            }
            self.record(&ManifestEvent::Pruned(SegmentPruned {
                file: pruned.file.clone(),
                first_seq: first,
                last_seq: last,
                last_timestamp: closed.last_timestamp.clone(),
                head_hash: closed.head_hash.clone(),
                archive: pruned.archive.clone(),
            }))?;
            self.crash_point("prune-after-manifest");
            remove_all(&files)?;
            report.segments.push(pruned);
        }
        if !opts.dry_run {
            report.record_seq = self.record_pruned(opts, earlier_through.flatten())?;
        }
        Ok(report)
    }

    /// Writes the `segments_pruned` record of everything pruned after `since` (the
    /// `through_seq` of the last such record), if anything was; returns its seq.
    fn record_pruned(&self, opts: &PruneOptions, since: Option<u64>) -> Result<Option<u64>> {
        let path = self.path.as_path();
        // One live record for everything pruned since the last one (this run's, and an
        // earlier run's that stopped before writing it).
        let manifest = Manifest::read(path)?;
        let mut unrecorded: Vec<&SegmentPruned> = manifest
            .pruned
            .iter()
            .filter(|p| since.is_none_or(|s| p.last_seq > s))
            .collect();
        unrecorded.sort_by_key(|p| p.last_seq);
        let Some(last) = unrecorded.last() else {
            return Ok(None);
        };
        self.crash_point("prune-before-live-record");
        let archive = opts
            .archive
            .as_ref()
            .map(|d| d.display().to_string())
            .or_else(|| {
                last.archive
                    .as_deref()
                    .map(|a| super::rotate::dir_of(Path::new(a)).display().to_string())
            });
        let event = Event::new(SEGMENTS_PRUNED_ACTION)
            .source(MANIFEST_SOURCE)
            .details(json!({
                "through_seq": last.last_seq,
                "head_hash": last.head_hash,
                "files": unrecorded.iter().map(|p| p.file.as_str()).collect::<Vec<_>>(),
                "archive": archive,
            }));
        let body = self.encoder.encode_own(event)?;
        self.maintaining
            .store(true, std::sync::atomic::Ordering::Release);
        let written = self.wait_for(vec![body]);
        self.maintaining
            .store(false, std::sync::atomic::Ordering::Release);
        Ok(written?.last().map(|h| h.seq))
    }

    /// The `through_seq` of the newest `segments_pruned` record in the live file or the
    /// remaining segments (searched newest first); `None` when there is none.
    fn last_pruned_record(&self) -> Result<Option<u64>> {
        let path = self.path.as_path();
        let mut sources: Vec<(PathBuf, Compression)> =
            vec![(path.to_path_buf(), Compression::None)];
        for seg in segment::list_segments(path)?.into_iter().rev() {
            sources.push((seg.path, seg.name.compression));
        }
        let needle = format!("\"action\":\"{SEGMENTS_PRUNED_ACTION}\"");
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        for (source, compression) in sources {
            let file = match File::open(&source) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("cannot open", &source)(e)),
            };
            let reader: Box<dyn std::io::Read> = match compression {
                Compression::None => Box::new(file),
                Compression::Zstd => Box::new(
                    zstd::stream::read::Decoder::new(file)
                        .map_err(Error::io("cannot read", &source))?,
                ),
            };
            let mut reader = BufReader::with_capacity(1 << 20, reader);
            let mut line = Vec::new();
            let mut found = None;
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(Error::io("cannot read", &source))?;
                if n == 0 {
                    break;
                }
                if finder.find(&line).is_some()
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line)
                    && let Some(t) = v
                        .get("details")
                        .and_then(|d| d.get("through_seq"))
                        .and_then(serde_json::Value::as_u64)
                {
                    found = Some(t);
                }
            }
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

/// The file of a range that the manifest says is current: the `.zst` once its compression is
/// recorded, else the plain file.
fn stored_file<'a>(manifest: &Manifest, files: &'a [Segment]) -> &'a Segment {
    let plain = files
        .iter()
        .find(|s| s.name.compression == Compression::None);
    let zst = files
        .iter()
        .find(|s| s.name.compression == Compression::Zstd);
    match (plain, zst) {
        (Some(p), Some(z)) => {
            if manifest.is_compressed(&file_name(&p.path)) {
                z
            } else {
                p
            }
        }
        (Some(p), None) => p,
        (None, Some(z)) => z,
        (None, None) => &files[0],
    }
}

fn remove_all(files: &[Segment]) -> Result<()> {
    for seg in files {
        match std::fs::remove_file(&seg.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot remove the pruned segment", &seg.path)(e)),
        }
    }
    if let Some(seg) = files.first() {
        sync_parent_dir(&seg.path)?;
    }
    Ok(())
}

/// Refuses an archive directory that is not a writable directory, before anything changes.
fn check_archive_dir(dir: &Path) -> Result<()> {
    let why = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            use rustix::fs::{Access, AtFlags, CWD, accessat};
            match accessat(
                CWD,
                dir,
                Access::WRITE_OK | Access::EXEC_OK,
                AtFlags::EACCESS,
            ) {
                Ok(()) => return Ok(()),
                Err(_) => "it is not writable".to_owned(),
            }
        }
        Ok(_) => "it is not a directory".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "it does not exist".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(refusal(
        "cannot archive to",
        dir,
        format!("{why}; nothing was pruned"),
    ))
}

/// Copies `src` to `copy` (0600, synced, atomically), re-reads the copy and checks its SHA-256
/// against the source's; returns that hex SHA-256.
fn archive_copy(src: &Path, copy: &Path) -> Result<String> {
    let mut input = File::open(src).map_err(Error::io("cannot open", src))?;
    let out = crate::fs::AtomicFile::create(copy, crate::fs::PRIVATE)?;
    let mut out = Hashing::new(out);
    std::io::copy(&mut input, &mut out).map_err(Error::io("cannot archive", src))?;
    let sha256 = out.digest();
    out.inner.commit(true)?;
    let check = super::rotate::scan(
        File::open(copy).map_err(Error::io("cannot open", copy))?,
        copy,
    )?;
    if check.sha256 != sha256 {
        return Err(refusal(
            "cannot archive",
            src,
            format!(
                "the copy {} does not have the segment's SHA-256; the segment was kept",
                copy.display()
            ),
        ));
    }
    Ok(sha256)
}
