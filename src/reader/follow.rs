//! Following a log as it grows (`tail --follow`): [`Follower`] hands out each complete line
//! once, in file order, and only lines that are in the file when it reads them.
//!
//! | what happens to the file | what the follower does |
//! |---|---|
//! | lines appended | hands out each complete line once; bytes after the last LF are read again on the next poll, never kept |
//! | a half-written line, finished later | hands it out when its LF is there |
//! | a torn tail cut off by the next writer (and a `log_recovered` record appended) | the torn bytes were never handed out; the records after them are |
//! | cut shorter than what was read, or its last line read rewritten | goes back to the newest line read that is still in place ([`Update::Changed`]); lines read before that come back unchanged are not handed out again, the first one that differs ends that ([`Update::Gone`]) |
//! | cut back further than the lines it remembers (65,536) | goes on from the file's end ([`Update::Skipped`]): it cannot tell which lines it has handed out |
//! | a new file at the path (rotation: another inode) | reads what the old file still had, then the new file from its start ([`Update::Rotated`]) |
//! | rotated more than once between two polls (a log with segments) | reads what the old file still had, then, by `seq`, the segments closed since (decompressed in memory when compressed), then the new file |
//!
//! A change that keeps the last line read where it was (an edit of an older line) is not seen:
//! the follower is not a verifier, `verify` is.
//!
//! Each read happens under a shared `flock`, so a nexus-audit writer is never seen halfway
//! through cutting a torn tail and appending after it.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use crate::chain::{self, Hash};
use crate::error::{Error, Result};
use crate::lock::FileLock;
use crate::reader::{Lines, Snapshot};

/// Lines handed out that the follower remembers, to find its place again after a change
/// (few in unit tests, so they can go past it).
const REMEMBERED: usize = if cfg!(test) { 16 } else { 1 << 16 };
/// Lines of the starting snapshot remembered (hashing more would slow the start on big logs).
const SEEDED: usize = if cfg!(test) { 8 } else { 4096 };
/// The most bytes one [`Follower::poll`] reads, so memory stays flat when far behind.
const CHUNK: usize = 16 << 20;

/// What one [`Follower::poll`] found, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Update {
    /// New complete lines, each followed by its LF.
    Lines(Vec<u8>),
    /// The file changed under the follower (it is shorter than what was read, or the last line
    /// read was rewritten): reading goes on after byte `offset`, the end of the newest line
    /// read that is still in place. `unconfirmed` lines read earlier lie after it: those that
    /// come back unchanged are not handed out again.
    Changed {
        /// Where reading goes on.
        offset: u64,
        /// Lines read earlier that are not (yet) where they were.
        unconfirmed: u64,
    },
    /// Lines read earlier are no longer in the file: at byte `offset` the file now has another
    /// line, handed out next.
    Gone {
        /// Where the file now differs.
        offset: u64,
        /// How many lines read earlier are gone.
        lines: u64,
    },
    /// The file was cut back further than the lines the follower remembers, and later bytes
    /// differ: it cannot tell which lines it has handed out, so it goes on from the file's end.
    /// The complete lines between `from` and `to` were not handed out.
    Skipped {
        /// Where the remembered lines began.
        from: u64,
        /// Where reading goes on.
        to: u64,
    },
    /// A new file is at the path: what the old one still had was handed out, and reading goes
    /// on from the new file's start.
    Rotated,
}

/// A line handed out: where it starts, its length without the LF, and its SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    offset: u64,
    len: u64,
    hash: Hash,
}

impl Seen {
    fn of(offset: u64, line: &[u8]) -> Self {
        Seen {
            offset,
            len: line.len() as u64,
            hash: chain::hash_line(line),
        }
    }

    /// Just past this line's LF.
    fn end(&self) -> u64 {
        self.offset + self.len + 1
    }
}

/// Whether a remembered line is still where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// The same bytes, at the same offset, between two line ends.
    Same,
    /// The file is too short to hold it.
    Absent,
    /// Other bytes are there.
    Different,
}

/// Follows a log file: each [`poll`](Follower::poll) returns the complete lines appended since
/// the last one, and says when the file changed under it or was rotated.
///
/// ```no_run
/// # fn main() -> nexus_audit::Result<()> {
/// use nexus_audit::{Follower, Update};
///
/// let snapshot = nexus_audit::Snapshot::open("audit.jsonl")?;
/// let mut follower = Follower::after(&snapshot)?;
/// loop {
///     for update in follower.poll()? {
///         if let Update::Lines(bytes) = update {
///             print!("{}", String::from_utf8_lossy(&bytes));
///         }
///     }
///     std::thread::sleep(std::time::Duration::from_millis(100));
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: File,
    /// Device and inode of `file`, to see a new file at the path.
    id: (u64, u64),
    /// Just past the last complete line read; bytes after it are read again each time.
    pos: u64,
    /// Lines read, ending at `pos`, oldest first (at most [`REMEMBERED`]).
    read: VecDeque<Seen>,
    /// Lines read before a change that now lie after `pos`: not handed out again if they come
    /// back as they were.
    unconfirmed: VecDeque<Seen>,
    /// The file's first line, to tell a file that started over from one cut back.
    first: Option<Seen>,
    /// `seq` of the last record handed out: after a rotation, the log's closed segments
    /// after it are handed out before the new live file (see [`Follower::poll`]).
    last_seq: Option<u64>,
}

impl Follower {
    /// Follows the file a snapshot was taken of, from the snapshot's end: lines appended after
    /// it are handed out. If the file at the path is no longer the snapshot's (it was rotated
    /// in between), the first poll finds out and reads the new file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be opened, [`Error::NotAFile`] when the path is no
    /// longer a regular file.
    pub fn after(snapshot: &Snapshot) -> Result<Self> {
        let (file, id) = open(snapshot.path())?;
        let data = snapshot.data();
        let mut read: VecDeque<Seen> = snapshot
            .lines_rev()
            .take(SEEDED)
            .map(|(offset, line)| Seen::of(offset, line))
            .collect();
        read.make_contiguous().reverse();
        Ok(Follower {
            path: snapshot.path().to_path_buf(),
            file,
            id,
            pos: data.len() as u64,
            read,
            unconfirmed: VecDeque::new(),
            first: snapshot.lines().next().map(|(o, l)| Seen::of(o, l)),
            last_seq: snapshot
                .lines_rev()
                .take(SEEDED)
                .find_map(|(_, l)| chain::chain_prefix(l))
                .map(|f| f.seq),
        })
    }

    /// Follows the file at `path` from its start: every complete line is handed out.
    ///
    /// # Errors
    ///
    /// As [`Follower::after`].
    pub fn from_start(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (file, id) = open(path)?;
        Ok(Follower {
            path: path.to_path_buf(),
            file,
            id,
            pos: 0,
            read: VecDeque::new(),
            unconfirmed: VecDeque::new(),
            first: None,
            last_seq: None,
        })
    }

    /// Reads what changed since the last poll. Returns no update when nothing did; call again
    /// at once when it returned lines (a poll reads at most 16 MiB), else after a pause.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read, [`Error::NotAFile`] when a rotation put
    /// something other than a regular file at the path.
    pub fn poll(&mut self) -> Result<Vec<Update>> {
        let mut out = Vec::new();
        let now = std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino()));
        if let Ok(id) = now
            && id != self.id
        {
            // Rotated: hand out what the old file still has (up to 1 GiB, in case a writer
            // still appends to it), then switch.
            for _ in 0..64 {
                if !self.read_new(&mut out)? {
                    break;
                }
            }
            let (file, id) = open(&self.path)?;
            // By seq, not inode: the log may have been rotated more than once since the last
            // poll; the segments closed in between are handed out before the new file.
            self.catch_up(&file, &mut out);
            self.file = file;
            self.id = id;
            self.pos = 0;
            self.read.clear();
            self.unconfirmed.clear();
            self.first = None;
            out.push(Update::Rotated);
        }
        // NOTE: a path that is missing (renamed away, the new file not created yet) keeps the
        // open file followed.
        self.read_new(&mut out)?;
        Ok(out)
    }

    /// Hands out the records of the log's closed segments that come after the last record
    /// handed out and before the new live file `file` starts (segments of a rotated log, see
    /// [`crate::segment`]); a segment that cannot be read (pruned meanwhile) is passed over.
    fn catch_up(&mut self, file: &File, out: &mut Vec<Update>) {
        let Some(mut last) = self.last_seq else {
            return;
        };
        let head = read_at_most(file, 0, 64 << 10).unwrap_or_default();
        let live_first = Lines::new(&head, 0)
            .next()
            .and_then(|(_, l)| chain::chain_prefix(l))
            .map(|f| f.seq);
        let Ok(set) = crate::segment::LogSet::open(&self.path) else {
            return;
        };
        for part in &set.parts {
            let Some(name) = part.segment else { continue };
            if name.last_seq <= last {
                continue;
            }
            if live_first.is_some_and(|f| name.first_seq >= f) {
                break;
            }
            let Ok(snap) = part.open() else { continue };
            let mut fresh = Vec::new();
            for (_, line) in snap.lines() {
                if let Some(f) = chain::chain_prefix(line) {
                    if f.seq <= last {
                        continue;
                    }
                    last = f.seq;
                }
                fresh.extend_from_slice(line);
                fresh.push(b'\n');
            }
            if !fresh.is_empty() {
                out.push(Update::Lines(fresh));
            }
        }
        self.last_seq = Some(last);
    }

    /// One read under the shared lock: checks the last line read is still in place (else finds
    /// its place again), then reads the complete lines after it. True when it read lines.
    fn read_new(&mut self, out: &mut Vec<Update>) -> Result<bool> {
        let path = self.path.clone();
        // NOTE: a second handle of the same open file, so the guard does not borrow `self`; a
        // lock taken through it is the same lock.
        let handle = self
            .file
            .try_clone()
            .map_err(Error::io("cannot lock", &path))?;
        let _shared = FileLock::shared(&handle).map_err(Error::io("cannot lock", &path))?;
        let len = self
            .file
            .metadata()
            .map_err(Error::io("cannot stat", &path))?
            .len();
        let last_in_place = match self.read.back() {
            Some(last) => {
                self.place(last, len)
                    .map_err(Error::io("cannot read", &path))?
                    == Place::Same
            }
            None => self.pos <= len,
        };
        if !last_in_place {
            self.find_place(len, out)
                .map_err(Error::io("cannot read", &path))?;
        }
        if len <= self.pos {
            return Ok(false);
        }
        let mut buf = Vec::new();
        let mut at = self.pos;
        // A line longer than a chunk: read on until its LF or the file's end.
        while at < len && (buf.is_empty() || memchr::memrchr(b'\n', &buf).is_none()) {
            let want = usize::try_from(len - at).unwrap_or(usize::MAX).min(CHUNK);
            let got =
                read_at_most(&self.file, at, want).map_err(Error::io("cannot read", &path))?;
            if got.is_empty() {
                break;
            }
            at += got.len() as u64;
            buf.extend_from_slice(&got);
        }
        let Some(last_lf) = memchr::memrchr(b'\n', &buf) else {
            return Ok(false);
        };
        buf.truncate(last_lf + 1);
        self.take(&buf, out);
        Ok(true)
    }

    /// Hands out the complete lines of `buf` (read at `pos`), except those read before a
    /// change that came back as they were.
    fn take(&mut self, buf: &[u8], out: &mut Vec<Update>) {
        let mut fresh = Vec::new();
        for (offset, line) in Lines::new(buf, self.pos) {
            let seen = Seen::of(offset, line);
            if let Some(f) = chain::chain_prefix(line) {
                self.last_seq = Some(f.seq);
            }
            if let Some(expected) = self.unconfirmed.front() {
                if *expected == seen {
                    self.unconfirmed.pop_front();
                    self.remember(seen);
                    continue;
                }
                out.push(Update::Gone {
                    offset,
                    lines: self.unconfirmed.len() as u64,
                });
                self.unconfirmed.clear();
            }
            fresh.extend_from_slice(line);
            fresh.push(b'\n');
            self.remember(seen);
        }
        self.pos += buf.len() as u64;
        if !fresh.is_empty() {
            out.push(Update::Lines(fresh));
        }
    }

    fn remember(&mut self, seen: Seen) {
        if seen.offset == 0 {
            self.first = Some(seen);
        }
        if self.read.len() == REMEMBERED {
            self.read.pop_front();
        }
        self.read.push_back(seen);
    }

    /// After a change: goes back to the newest line read that is still in place.
    fn find_place(&mut self, len: u64, out: &mut Vec<Update>) -> io::Result<()> {
        // NOTE: a binary search: the file is taken to be what was read up to some line and
        // different after it (cut back, rewritten from there, refilled). An edit of an older
        // line alone is not a change the follower sees.
        let (mut lo, mut hi) = (0, self.read.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.place(&self.read[mid], len)? == Place::Same {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let front = self.read.front().map_or(0, |s| s.offset);
        if lo > 0 || front == 0 {
            // Lines read after the newest one in place wait to be confirmed or replaced.
            let mut moved = self.read.split_off(lo);
            moved.extend(self.unconfirmed.drain(..));
            self.unconfirmed = moved;
            self.pos = self.read.back().map_or(0, Seen::end);
            out.push(Update::Changed {
                offset: self.pos,
                unconfirmed: self.unconfirmed.len() as u64,
            });
            return Ok(());
        }
        // None of the remembered lines is in place, and lines before them were read too.
        let first = match self.first {
            Some(first) => self.place(&first, len)?,
            None => Place::Different,
        };
        let oldest = self.read[0];
        match (first, self.place(&oldest, len)?) {
            (Place::Different, _) => {
                // The file starts with another line: it started over.
                let lines = (self.read.len() + self.unconfirmed.len()) as u64;
                self.read.clear();
                self.unconfirmed.clear();
                self.pos = 0;
                self.first = None;
                out.push(Update::Changed {
                    offset: 0,
                    unconfirmed: 0,
                });
                out.push(Update::Gone { offset: 0, lines });
            }
            (_, Place::Absent) | (Place::Absent, _) => {
                // Shorter than the oldest remembered line: wait (with `pos` past the end, so
                // nothing is read) for the file to come back to it, the same lines written
                // again, or to differ there.
            }
            (Place::Same, _) => {
                // Cut back further than remembered, and written again differently: which of
                // the lines now there were read cannot be told.
                let end = self.last_complete_end(len)?;
                self.read.clear();
                self.unconfirmed.clear();
                if let Some(last) = self.line_before(end)? {
                    self.read.push_back(last);
                }
                self.pos = end;
                out.push(Update::Skipped {
                    from: oldest.offset,
                    to: end,
                });
            }
        }
        Ok(())
    }

    /// Whether `seen` is still where it was in the file of length `len`.
    fn place(&self, seen: &Seen, len: u64) -> io::Result<Place> {
        if seen.end() > len {
            return Ok(Place::Absent);
        }
        let start = seen.offset.saturating_sub(1);
        let want = usize::try_from(seen.end() - start).unwrap_or(usize::MAX);
        let bytes = read_at_most(&self.file, start, want)?;
        if bytes.len() < want {
            return Ok(Place::Absent);
        }
        let (before, line) = if seen.offset == 0 {
            (b'\n', &bytes[..])
        } else {
            (bytes[0], &bytes[1..])
        };
        let same = before == b'\n'
            && line.last() == Some(&b'\n')
            && chain::hash_line(&line[..line.len() - 1]) == seen.hash;
        Ok(if same { Place::Same } else { Place::Different })
    }

    /// Just past the last LF within the first `len` bytes (0 when there is none).
    fn last_complete_end(&self, len: u64) -> io::Result<u64> {
        let mut end = len;
        while end > 0 {
            let start = end.saturating_sub(CHUNK as u64);
            let buf = read_at_most(&self.file, start, (end - start) as usize)?;
            if let Some(i) = memchr::memrchr(b'\n', &buf) {
                return Ok(start + i as u64 + 1);
            }
            end = start;
        }
        Ok(0)
    }

    /// The complete line that ends at `end` (just past its LF).
    fn line_before(&self, end: u64) -> io::Result<Option<Seen>> {
        if end == 0 {
            return Ok(None);
        }
        let body_end = end - 1;
        let mut start = body_end;
        let mut buf = Vec::new();
        while start > 0 {
            let from = start.saturating_sub(64 << 10);
            let mut chunk = read_at_most(&self.file, from, (start - from) as usize)?;
            let found = memchr::memrchr(b'\n', &chunk);
            chunk.extend_from_slice(&buf);
            buf = chunk;
            start = from;
            if let Some(i) = found {
                buf.drain(..=i);
                start = from + i as u64 + 1;
                break;
            }
        }
        let line = &buf[..usize::try_from(body_end - start)
            .unwrap_or(buf.len())
            .min(buf.len())];
        Ok(Some(Seen::of(start, line)))
    }
}

/// Opens the log for following: a regular file, with its device and inode.
fn open(path: &Path) -> Result<(File, (u64, u64))> {
    let file = File::open(path).map_err(Error::io("cannot open", path))?;
    let meta = file.metadata().map_err(Error::io("cannot stat", path))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Ok((file, (meta.dev(), meta.ino())))
}

/// Up to `len` bytes at `offset`; fewer at the file's end.
fn read_at_most(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> Vec<u8> {
        format!("{{\"seq\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 7)).into_bytes()
    }

    fn lines(range: std::ops::Range<usize>) -> Vec<u8> {
        range.flat_map(line).collect()
    }

    /// Polls until nothing more comes, and returns everything that came.
    fn drain(f: &mut Follower) -> Result<Vec<Update>> {
        let mut all = Vec::new();
        loop {
            let got = f.poll()?;
            if got.is_empty() {
                return Ok(all);
            }
            all.extend(got);
        }
    }

    fn handed_out(updates: &[Update]) -> Vec<u8> {
        updates
            .iter()
            .filter_map(|u| match u {
                Update::Lines(b) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn lines_are_handed_out_once_and_partial_bytes_are_not_kept() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir", Path::new(".")))?;
        let path = dir.path().join("log");
        std::fs::write(&path, lines(0..3)).map_err(Error::io("write", &path))?;
        let mut f = Follower::after(&Snapshot::open(&path)?)?;
        assert_eq!(drain(&mut f)?, vec![]);
        let mut bytes = lines(0..3);
        bytes.extend_from_slice(b"{\"torn");
        std::fs::write(&path, &bytes).map_err(Error::io("write", &path))?;
        assert_eq!(drain(&mut f)?, vec![]);
        // The torn bytes are replaced (as the writer's recovery does): only whole new lines.
        let mut bytes = lines(0..3);
        bytes.extend(lines(3..5));
        std::fs::write(&path, &bytes).map_err(Error::io("write", &path))?;
        assert_eq!(drain(&mut f)?, vec![Update::Lines(lines(3..5))]);
        Ok(())
    }

    #[test]
    fn a_file_started_over_is_read_from_its_start() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir", Path::new(".")))?;
        let path = dir.path().join("log");
        // More lines than remembered, so the first line tells what happened.
        std::fs::write(&path, lines(0..40)).map_err(Error::io("write", &path))?;
        let mut f = Follower::after(&Snapshot::open(&path)?)?;
        std::fs::write(&path, lines(100..102)).map_err(Error::io("write", &path))?;
        let got = drain(&mut f)?;
        assert_eq!(handed_out(&got), lines(100..102));
        assert!(
            got.contains(&Update::Gone {
                offset: 0,
                lines: 8
            }),
            "{got:?}"
        );
        Ok(())
    }

    #[test]
    fn a_file_cut_back_further_than_remembered_waits_then_goes_on_from_its_end() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir", Path::new(".")))?;
        let path = dir.path().join("log");
        std::fs::write(&path, lines(0..10)).map_err(Error::io("write", &path))?;
        let mut f = Follower::from_start(&path)?;
        assert_eq!(handed_out(&drain(&mut f)?), lines(0..10));
        std::fs::write(&path, lines(0..60)).map_err(Error::io("write", &path))?;
        assert_eq!(handed_out(&drain(&mut f)?), lines(10..60));
        // Cut back to line 20: the remembered lines (44..60) are gone, the first line is the
        // same. Nothing is handed out while the file is shorter than the oldest remembered.
        std::fs::write(&path, lines(0..20)).map_err(Error::io("write", &path))?;
        assert_eq!(drain(&mut f)?, vec![]);
        // Written again up to there with the same lines: nothing twice, and on from there.
        std::fs::write(&path, lines(0..62)).map_err(Error::io("write", &path))?;
        assert_eq!(
            handed_out(&drain(&mut f)?),
            lines(60..62),
            "lines that came back are not handed out again"
        );
        // Cut back again, then other lines written past the remembered ones: skipped, said so.
        let mut other = lines(0..20);
        other.extend(lines(200..260));
        std::fs::write(&path, &other).map_err(Error::io("write", &path))?;
        let got = drain(&mut f)?;
        assert_eq!(handed_out(&got), Vec::<u8>::new());
        assert!(
            matches!(got.as_slice(), [Update::Skipped { to, .. }] if *to == other.len() as u64),
            "{got:?}"
        );
        other.extend(lines(300..302));
        std::fs::write(&path, &other).map_err(Error::io("write", &path))?;
        assert_eq!(handed_out(&drain(&mut f)?), lines(300..302));
        Ok(())
    }

    #[test]
    fn a_line_longer_than_a_read_is_handed_out_whole() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir", Path::new(".")))?;
        let path = dir.path().join("log");
        std::fs::write(&path, b"").map_err(Error::io("write", &path))?;
        let mut f = Follower::from_start(&path)?;
        let mut long = vec![b'a'; CHUNK + 10];
        long.push(b'\n');
        long.extend(lines(0..2));
        std::fs::write(&path, &long).map_err(Error::io("write", &path))?;
        assert_eq!(handed_out(&drain(&mut f)?), long);
        Ok(())
    }
}
