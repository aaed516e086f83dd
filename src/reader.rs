//! The reader: a memory-mapped, consistent snapshot of a log (SPEC §6).
//!
//! [`Snapshot::open`] takes a shared `flock` just long enough to read the file's length (so no
//! append is half-done at that moment), map the file, find the last LF within that length and
//! copy any torn tail after it; from then on it reads the map only up to that LF, without the
//! lock: a reader that takes minutes over its snapshot never keeps a writer waiting. Appends
//! that land later are not seen; the writer never shrinks a file below a length a reader could
//! have seen, except to cut a torn tail, which lies past the last LF and is never read through
//! the map once the lock is released. A writer's lock held longer than [`LOCK_PATIENCE`] ends
//! the open with an error rather than a hang.
//!
//! [`read_record`] is the rule by which every reader tells a record from a line that is not one.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::lock::FileLock;
use crate::record::RecordView;

mod follow;
pub use follow::{Follower, Update};

/// How long a reader waits for a writer's exclusive lock before it gives up with an error.
/// Writers hold it for one write and its sync (milliseconds); anyone who can open the file
/// can hold it forever, and a reader must not hang on that.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// A consistent, read-only view of a log's complete lines.
#[derive(Debug)]
pub struct Snapshot {
    path: PathBuf,
    map: Option<Mmap>,
    /// The bytes when they are held in memory instead of mapped (a decompressed segment, or
    /// a rotated log's segments joined): see [`Snapshot::from_bytes`].
    owned: Vec<u8>,
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
            let _shared = FileLock::shared_within(&file, LOCK_PATIENCE)
                .map_err(Error::io("cannot lock", path))?
                .ok_or_else(|| {
                    Error::io("cannot lock", path)(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "another process has held its lock for {} s (a writer that hangs, or anyone who can open the file holding flock on it); nothing was read",
                            LOCK_PATIENCE.as_secs()
                        ),
                    ))
                })?;
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
            owned: Vec::new(),
            complete,
            torn,
            len,
        })
    }

    /// A snapshot of bytes held in memory, read from `path` (a decompressed segment): the
    /// complete lines and the torn tail are split as [`Snapshot::open`] splits a file's.
    #[must_use]
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        let complete = memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1);
        let torn = bytes[complete..].to_vec();
        Snapshot {
            path: path.into(),
            map: None,
            owned: bytes,
            complete,
            torn,
            len,
        }
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
            None => &self.owned[..self.complete],
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

/// Why a line is not a record. The names are those of `verify`'s problem kinds for the same
/// lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotRecord {
    /// An empty line.
    EmptyLine,
    /// Bytes that are not UTF-8.
    BadUtf8,
    /// Not one valid JSON value (RFC 8259).
    BadJson,
    /// Valid JSON, but not an object.
    NotObject,
}

impl NotRecord {
    /// The kind as `verify` reports it: `empty_line`, `bad_utf8`, `bad_json`, `not_object`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            NotRecord::EmptyLine => "empty_line",
            NotRecord::BadUtf8 => "bad_utf8",
            NotRecord::BadJson => "bad_json",
            NotRecord::NotObject => "not_object",
        }
    }
}

impl std::fmt::Display for NotRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads one line as a record, by the one rule every reader (`tail`, `query`, `stats`,
/// `export`) applies: a line is a record when it is exactly one valid JSON object (RFC 8259,
/// the check `verify` makes), whatever fields it has. Every other line is one that `verify`
/// reports as `empty_line`, `bad_utf8`, `bad_json` or `not_object`; readers skip it and count
/// it, never show half of it.
///
/// # Errors
///
/// Why the line is not a record.
pub fn read_record(line: &[u8]) -> std::result::Result<RecordView<'_>, NotRecord> {
    // NOTE: the field scanner accepts exactly the lines that are one valid JSON object (it
    // checks nested values too), so a json export of a record is valid JSON, and the check
    // costs no second pass over the line.
    RecordView::parse(line).map_err(|_| why_not_record(line))
}

fn why_not_record(line: &[u8]) -> NotRecord {
    if line.is_empty() {
        NotRecord::EmptyLine
    } else if simdutf8::basic::from_utf8(line).is_err() {
        NotRecord::BadUtf8
    } else if !crate::json::is_valid(line) {
        NotRecord::BadJson
    } else {
        NotRecord::NotObject
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

impl<'a> LinesRev<'a> {
    /// Lines of `data` (whole lines), newest first, with offsets counted from its start.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        LinesRev {
            data,
            end: data.len(),
        }
    }
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
    fn a_record_is_exactly_one_json_object() {
        assert!(read_record(br#"{"seq":0,"tool":"t","args_summary":{"a":[1,2]}}"#).is_ok());
        assert!(read_record(br#"{"tool":"legacy, unchained"}"#).is_ok());
        for (line, why) in [
            (&b""[..], NotRecord::EmptyLine),
            (b"\xff{}", NotRecord::BadUtf8),
            (b"not json", NotRecord::BadJson),
            (br#"{"tool":"t","args_summary":[1,}"#, NotRecord::BadJson),
            (br#"{"tool":"t","details":{"a" 1}}"#, NotRecord::BadJson),
            (br#"{"tool":"t"} {}"#, NotRecord::BadJson),
            (b"[1,2]", NotRecord::NotObject),
            (b"\"text\"", NotRecord::NotObject),
        ] {
            assert_eq!(
                read_record(line).err(),
                Some(why),
                "{}",
                String::from_utf8_lossy(line)
            );
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
