//! The reader: a memory-mapped, consistent snapshot of a log (SPEC §6).
//!
//! [`Snapshot::open`] takes a shared `flock` just long enough to read the file's length (so no
//! append is half-done at that moment), map the file, find the last LF within that length and
//! copy any torn tail after it; from then on it reads the map only up to that LF. Appends that
//! land later are not seen; the writer never shrinks a file below a length a reader could have
//! seen, except to cut a torn tail, which lies past the last LF and is never read through the
//! map once the lock is released.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::lock::FileLock;
use crate::{Error, Result};

mod follow;
pub use follow::{Follower, Update};

/// A consistent, read-only view of a log's complete lines.
#[derive(Debug)]
pub struct Snapshot {
    path: PathBuf,
    map: Option<Mmap>,
    /// Bytes up to and including the last LF.
    complete: usize,
    /// The bytes after the last LF, copied (a writer may cut them off the file).
    torn: Vec<u8>,
    /// Bytes in the file when the snapshot was taken.
    len: usize,
}

impl Snapshot {
    /// Maps the log at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file is missing or unreadable, [`Error::NotAFile`] for a
    /// directory or device.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        // NOTE: O_NONBLOCK makes opening a FIFO return at once instead of waiting for a
        // writer, so it is refused below as not a regular file; regular files ignore the flag.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(Error::io("cannot open", path))?;
        let meta = file.metadata().map_err(Error::io("cannot stat", path))?;
        if !meta.is_file() {
            return Err(Error::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let (map, complete, torn, len) = {
            let _shared = FileLock::shared(&file).map_err(Error::io("cannot lock", path))?;
            let len = file
                .metadata()
                .map_err(Error::io("cannot stat", path))?
                .len();
            let len = usize::try_from(len).map_err(|_| {
                Error::io("cannot map", path)(std::io::Error::other("file too large to map"))
            })?;
            let map = if len == 0 {
                None
            } else {
                Some(map_file(&file, len, path)?)
            };
            let bytes = map.as_deref().unwrap_or(&[]);
            let bytes = &bytes[..len.min(bytes.len())];
            // IMPORTANT: the last LF is found, and a torn tail copied, while the shared lock
            // keeps writers out. Once it is released a writer may cut the torn bytes off, and
            // touching their pages through the map would then raise SIGBUS.
            let complete = memchr::memrchr(b'\n', bytes).map_or(0, |i| i + 1);
            let torn = bytes[complete..].to_vec();
            (map, complete, torn, len)
        };
        Ok(Snapshot {
            path: path.to_path_buf(),
            map,
            complete,
            torn,
            len,
        })
    }

    /// The path the snapshot was taken of.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines, each followed by its LF.
    #[must_use]
    pub fn data(&self) -> &[u8] {
        match &self.map {
            Some(m) => &m[..self.complete],
            None => &[],
        }
    }

    /// The bytes after the last LF: a torn tail, empty for a healthy log.
    #[must_use]
    pub fn torn_tail(&self) -> &[u8] {
        &self.torn
    }

    /// File length when the snapshot was taken, torn tail included.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// True for an empty file.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Complete lines, oldest first, as `(byte offset, line without LF)`.
    #[must_use]
    pub fn lines(&self) -> Lines<'_> {
        Lines::new(self.data(), 0)
    }

    /// Complete lines, newest first, as `(byte offset, line without LF)`.
    #[must_use]
    pub fn lines_rev(&self) -> LinesRev<'_> {
        LinesRev {
            data: self.data(),
            end: self.data().len(),
        }
    }

    /// Splits the complete lines into about `parts` ranges of whole lines, for parallel work.
    #[must_use]
    pub fn chunks(&self, parts: usize) -> Vec<Range<usize>> {
        split_lines(self.data(), parts)
    }
}

/// Splits `data` (whole lines) into about `parts` ranges that start and end at line boundaries.
#[must_use]
pub fn split_lines(data: &[u8], parts: usize) -> Vec<Range<usize>> {
    let parts = parts.max(1);
    let target = data.len().div_ceil(parts).max(1);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    while start < data.len() {
        let guess = (start + target).min(data.len());
        let end = if guess >= data.len() {
            data.len()
        } else {
            memchr::memchr(b'\n', &data[guess - 1..]).map_or(data.len(), |i| guess + i)
        };
        out.push(start..end);
        start = end;
    }
    out
}

#[expect(
    unsafe_code,
    reason = "memory mapping is the one place the reader needs unsafe"
)]
fn map_file(file: &File, len: usize, path: &Path) -> Result<Mmap> {
    // SAFETY: the map is read-only and private to this process. Its one risk is a file
    // truncated by another program while mapped: touching a page past the new end raises
    // SIGBUS. nexus-audit's writers never cut below a length a reader saw (only a torn tail
    // past the last LF, which readers never touch), and the CLI turns SIGBUS into a clear
    // error; see `install_sigbus_handler` in the binary.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }.map_err(Error::io("cannot map", path))
}

/// Forward iterator over `(offset, line)` of a buffer of whole lines.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Lines<'a> {
    /// Lines of `data`, with offsets counted from `base`.
    #[must_use]
    pub fn new(data: &'a [u8], base: u64) -> Self {
        Lines { data, pos: 0, base }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.pos..];
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let item = (self.base + self.pos as u64, &rest[..end]);
        self.pos += end + 1;
        Some(item)
    }
}

/// Backward iterator over `(offset, line)` of a buffer of whole lines.
#[derive(Debug, Clone)]
pub struct LinesRev<'a> {
    data: &'a [u8],
    end: usize,
}

impl<'a> Iterator for LinesRev<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.end == 0 {
            return None;
        }
        // `end` points just past an LF.
        let body_end = self.end - 1;
        let start = memchr::memrchr(b'\n', &self.data[..body_end]).map_or(0, |i| i + 1);
        self.end = start;
        Some((start as u64, &self.data[start..body_end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_cuts_only_at_line_ends() {
        let data = b"aaa\nbb\nc\ndddd\ne\n";
        for parts in 1..8 {
            let chunks = split_lines(data, parts);
            let mut pos = 0;
            for c in &chunks {
                assert_eq!(c.start, pos);
                assert_eq!(data[c.end - 1], b'\n');
                pos = c.end;
            }
            assert_eq!(pos, data.len());
        }
    }

    #[test]
    fn lines_forward_and_backward_agree() {
        let data = b"a\n\nccc\n";
        let fwd: Vec<_> = Lines::new(data, 0).collect();
        let mut back: Vec<_> = LinesRev {
            data,
            end: data.len(),
        }
        .collect();
        back.reverse();
        assert_eq!(fwd, back);
        assert_eq!(fwd, vec![(0, &b"a"[..]), (2, &b""[..]), (3, &b"ccc"[..])]);
    }
}
