//! Compression of closed segments with zstd, streamed (a segment is never read whole into
//! memory), and the directory lock that keeps two processes from compressing or pruning the
//! same segments at once.
//!
//! A segment `NAME` is compressed in four steps: `NAME.zst` is written under a temporary name
//! and synced; it is renamed to its final name; `segment_compressed` is appended to the
//! manifest; the plain file is removed and the directory synced. A reader that finds both
//! files uses the plain one, so a crash at any step loses nothing: the next run writes the
//! `.zst` again (when the manifest does not have it yet) or only removes the plain file.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::Shared;
use super::log_file::sync_parent_dir;
use super::rotate::{Manifest, dir_of, refusal};
use crate::error::{Error, Result};
use crate::fs::AtomicFile;
use crate::segment::{self, Compression, ManifestEvent, SegmentClosed, SegmentCompressed};

/// The zstd level segments are compressed with: zstd's default.
pub const ZSTD_LEVEL: i32 = zstd::DEFAULT_COMPRESSION_LEVEL;

/// An exclusive `flock` on the log's directory, held while segments are compressed or pruned
/// (never while records are appended: appenders take only the live file's lock).
pub(crate) struct DirLock {
    _dir: File,
}

impl DirLock {
    pub(crate) fn exclusive(log: &Path) -> Result<DirLock> {
        let dir = dir_of(log);
        let file = File::open(&dir).map_err(Error::io("cannot open the directory", &dir))?;
        loop {
            match file.lock() {
                Ok(()) => return Ok(DirLock { _dir: file }),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("cannot lock the directory", &dir)(e)),
            }
        }
    }
}

/// A writer that hashes and counts what goes through it.
pub(crate) struct Hashing<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Sha256,
    pub(crate) bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The hex SHA-256 of what was written.
    pub(crate) fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what it reads.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl Shared {
    /// Compresses every closed plain segment the manifest knows (and finishes compressions a
    /// crash interrupted), under the directory lock. Returns the names of the files written.
    pub(super) fn compress_pending(&self) -> Result<Vec<String>> {
        let path = self.path.as_path();
        let _lock = DirLock::exclusive(path)?;
        let manifest = Manifest::read(path)?;
        let log_name = super::rotate::file_name(path);
        let mut done = Vec::new();
        for seg in segment::list_segments(path)? {
            if seg.name.compression != Compression::None {
                continue;
            }
            let Some(closed) = manifest.closed_for(seg.name.first_seq, seg.name.last_seq) else {
                continue;
            };
            if manifest
                .pruned_for(seg.name.first_seq, seg.name.last_seq)
                .is_some()
            {
                continue;
            }
            let zst = path.with_file_name(segment::segment_file_name(
                &log_name,
                seg.name.first_seq,
                seg.name.last_seq,
                Compression::Zstd,
            ));
            if !(manifest.is_compressed(&closed.file) && zst.symlink_metadata().is_ok()) {
                if !self.compress_one(&seg.path, &zst, closed)? {
                    continue;
                }
                done.push(super::rotate::file_name(&zst));
            }
            std::fs::remove_file(&seg.path)
                .map_err(Error::io("cannot remove the compressed segment", &seg.path))?;
            sync_parent_dir(&seg.path)?;
        }
        Ok(done)
    }

    /// Writes `zst` from the plain segment `plain` and records it in the manifest. `false`
    /// (and nothing written) when the plain file is not the one the manifest closed: `verify`
    /// reports that, compression must not bless it.
    fn compress_one(&self, plain: &Path, zst: &Path, closed: &SegmentClosed) -> Result<bool> {
        let src = File::open(plain).map_err(Error::io("cannot open", plain))?;
        let mut reader = HashingReader {
            inner: BufReader::with_capacity(1 << 20, src),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let out = AtomicFile::create(zst, crate::fs::PRIVATE)?;
        let mut out = Hashing::new(out);
        {
            let mut encoder = zstd::stream::write::Encoder::new(&mut out, ZSTD_LEVEL)
                .map_err(Error::io("cannot compress", plain))?;
            std::io::copy(&mut reader, &mut encoder)
                .map_err(Error::io("cannot compress", plain))?;
            encoder
                .finish()
                .map_err(Error::io("cannot compress", plain))?;
        }
        let read_sha = hex::encode(reader.hasher.finalize());
        if read_sha != closed.sha256 || reader.bytes != closed.bytes {
            return Ok(false);
        }
        let sha256 = out.digest();
        let bytes = out.bytes;
        out.inner.commit(true)?;
        self.crash_point("compress-after-zst");
        let compressed_file = super::rotate::file_name(zst);
        if compressed_file.is_empty() {
            return Err(refusal("cannot compress", plain, "no file name".into()));
        }
        self.record(&ManifestEvent::Compressed(SegmentCompressed {
            file: closed.file.clone(),
            compressed_file,
            algorithm: Compression::Zstd,
            bytes,
            sha256,
        }))?;
        self.crash_point("compress-after-manifest");
        Ok(true)
    }
}
