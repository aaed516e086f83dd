//! The verifier state: what a verifier remembers between runs (see [`super::checkpoint`] for
//! the signed checkpoints it complements).
//!
//! The **verifier state** is the pair (size, head) of a checkpoint, kept by the verifier in a
//! file of its own, written atomically after each clean run, with (format 2) a [`Proof`] of the
//! records up to the head that an incremental run checks instead of reading them all: their byte length,
//! the head's offset, the SHA-256 of their last [`WINDOW_BYTES`], and the hashes and offsets
//! of records sampled uniformly at random. SECURITY.md gives what that catches, and with what
//! probability.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::chain::{self, Hash};
use crate::error::{Error, Result};
use crate::reader::{Lines, Snapshot};

/// How many records a verifier state samples unless told otherwise.
pub const DEFAULT_SAMPLES: usize = 1024;
/// The most records a verifier state samples (each costs about 150 bytes of state, and one
/// small read per run).
pub const MAX_SAMPLES: usize = 65_536;
/// The window: the last bytes of the verified records, hashed whole (1 MiB).
pub const WINDOW_BYTES: usize = 1 << 20;
/// The state file format this version writes.
const FORMAT: u32 = 2;

/// What a verifier remembers between runs: the size and head of the records it verified and,
/// from format 2, a [`Proof`] of the records before the head that an incremental run checks
/// without reading them all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// 1: size and head only (files written before the proof existed, without this field);
    /// 2: with a proof.
    #[serde(default = "format_1")]
    pub format: u32,
    /// Records (complete lines) verified.
    pub size: u64,
    /// SHA-256 of line `size`, hex.
    pub head: String,
    /// `seq` of line `size`.
    pub seq: u64,
    /// When the state was written.
    pub verified_at: String,
    /// Format 2: what an incremental run checks of the records before the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
}

fn format_1() -> u32 {
    1
}

/// A cheap proof of the verified records: where they end, the hash of their last window, and
/// the hashes of records sampled at random (SECURITY.md says what it catches).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Length in bytes of the verified records (the end of line `size`, its LF included).
    pub bytes: u64,
    /// Where line `size` (the head) starts.
    pub head_offset: u64,
    /// The last verified records, hashed as one.
    pub window: Window,
    /// How many records the sample keeps (fewer while the log has fewer).
    pub sample_size: usize,
    /// Records sampled at random, by line number.
    pub samples: Vec<Sample>,
}

/// The last verified records, from a line start to the end of line `size`, at most
/// [`WINDOW_BYTES`] unless the head line alone is longer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Where its first line starts.
    pub offset: u64,
    /// Its first line's number (1-based).
    pub first_line: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// A record sampled at random.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Its line number (1-based).
    pub line: u64,
    /// Where it starts.
    pub offset: u64,
    /// SHA-256 of the line, hex.
    pub sha256: String,
    /// The random number it was drawn with: the sample keeps the records with the lowest, so
    /// it is a uniform random choice among all verified records, whenever they were added.
    pub rank: u64,
}

impl State {
    /// The head as bytes.
    #[must_use]
    pub fn head_hash(&self) -> Option<Hash> {
        chain::parse_hash_hex(self.head.as_bytes())
    }

    /// Reads the state file; `None` when it does not exist yet. Format 1 files (without a
    /// proof) are read too: a full run checks the head and writes format 2.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty or corrupt file, or one of a newer format;
    /// [`Error::Io`] when it cannot be read.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        // NOTE: read_small refuses a FIFO (which would block) and anything far larger than a
        // state file (the log given by mistake), instead of reading it whole. A state keeps
        // at most MAX_SAMPLES sampled records of about 150 bytes each.
        let limit = (MAX_SAMPLES as u64) * 256 + (1 << 16);
        let text = match crate::fs::read_small(path, limit, "cannot read the state file") {
            Ok(t) => t,
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let state: Option<State> = serde_json::from_slice(&text).ok();
        if let Some(newer) = state.as_ref().filter(|s| s.format > FORMAT) {
            return Err(Error::InvalidConfig(format!(
                "the state file {} has format {}, written by a newer nexus-audit: use that version, or run a full verify with a new state file",
                path.display(),
                newer.format
            )));
        }
        state.filter(State::is_sound).map(Some).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "the state file {} is empty or corrupt: it cannot vouch for the log; restore it from a backup, or delete it to start over",
                path.display()
            ))
        })
    }

    /// The fields agree with each other: hashes are hex, offsets and line numbers in order.
    fn is_sound(&self) -> bool {
        if self.head_hash().is_none() || self.size == 0 {
            return false;
        }
        match (&self.proof, self.format) {
            (None, 1) => true,
            (Some(p), 2) => {
                let hex_ok = |h: &str| chain::parse_hash_hex(h.as_bytes()).is_some();
                p.head_offset < p.bytes
                    && p.window.offset <= p.head_offset
                    && (1..=self.size).contains(&p.window.first_line)
                    && hex_ok(&p.window.sha256)
                    && (1..=MAX_SAMPLES).contains(&p.sample_size)
                    && p.samples.len() <= p.sample_size
                    && p.samples
                        .windows(2)
                        .all(|w| w[0].line < w[1].line && w[0].offset < w[1].offset)
                    && p.samples.iter().all(|s| {
                        (1..=self.size).contains(&s.line)
                            && s.offset <= p.head_offset
                            && hex_ok(&s.sha256)
                    })
            }
            _ => false,
        }
    }

    /// Writes the state file atomically and durably (a new file renamed over the old one).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_vec(self).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        text.push(b'\n');
        write_atomically(path, &text)
    }

    /// The state of a snapshot all of whose records were just verified, with a new random
    /// sample of `sample_size` of them; `None` for an empty log.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the system has no randomness or `sample_size` is out of
    /// range.
    pub fn of(snapshot: &Snapshot, sample_size: usize) -> Result<Option<Self>> {
        check_sample_size(sample_size)?;
        let data = snapshot.data();
        if data.is_empty() {
            return Ok(None);
        }
        let lines = Lines::new(data, 0)
            .zip(1..)
            .map(|((offset, line), n)| (n, offset, line));
        let samples = draw(data, Vec::new(), lines, sample_size)?;
        Ok(Some(State::ending(snapshot, 0, 0, samples, sample_size)))
    }

    /// The state after an incremental run from this one verified every record after it: the
    /// same proof moved forward (new records enter the sample at random, as if drawn with the
    /// old ones).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when this state has no proof (format 1) or the system has no
    /// randomness.
    pub fn extended(&self, snapshot: &Snapshot) -> Result<Self> {
        let Some(proof) = &self.proof else {
            return Err(Error::InvalidConfig(
                "a format 1 verifier state cannot be extended: run a full verify".into(),
            ));
        };
        let data = snapshot.data();
        let from = usize::try_from(proof.bytes)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let lines = Lines::new(&data[from..], from as u64)
            .zip(self.size + 1..)
            .map(|((offset, line), n)| (n, offset, line));
        let samples = draw(data, proof.samples.clone(), lines, proof.sample_size)?;
        Ok(State::ending(
            snapshot,
            self.size,
            from,
            samples,
            proof.sample_size,
        ))
    }

    /// A format 2 state of the snapshot's end; `lines_before` lines end at byte `counted`
    /// (only the lines after it are counted).
    fn ending(
        snapshot: &Snapshot,
        lines_before: u64,
        counted: usize,
        samples: Vec<Sample>,
        sample_size: usize,
    ) -> Self {
        let data = snapshot.data();
        let bytes = data.len();
        let size = lines_before + memchr::memchr_iter(b'\n', &data[counted..]).count() as u64;
        let head_offset = memchr::memrchr(b'\n', &data[..bytes - 1]).map_or(0, |i| i + 1);
        let head = &data[head_offset..bytes - 1];
        // The window starts at the first line that starts at most WINDOW_BYTES from the end,
        // and holds the head line whatever its length.
        let earliest = bytes.saturating_sub(WINDOW_BYTES);
        let window_offset = if earliest == 0 {
            0
        } else if earliest > head_offset {
            head_offset
        } else {
            memchr::memchr(b'\n', &data[earliest - 1..head_offset])
                .map_or(head_offset, |i| earliest + i)
        };
        let window_lines = memchr::memchr_iter(b'\n', &data[window_offset..]).count() as u64;
        State {
            format: FORMAT,
            size,
            head: hex::encode(chain::hash_line(head)),
            seq: chain::chain_prefix(head).map_or(size.saturating_sub(1), |f| f.seq),
            verified_at: crate::time::format_timestamp(chrono::Utc::now()),
            proof: Some(Proof {
                bytes: bytes as u64,
                head_offset: head_offset as u64,
                window: Window {
                    offset: window_offset as u64,
                    first_line: size + 1 - window_lines,
                    sha256: hex::encode(Sha256::digest(&data[window_offset..])),
                },
                sample_size,
                samples,
            }),
        }
    }
}

/// The sample size is within 1..=[`MAX_SAMPLES`].
///
/// # Errors
///
/// [`Error::InvalidConfig`] with a sentence.
pub fn check_sample_size(n: usize) -> Result<()> {
    if (1..=MAX_SAMPLES).contains(&n) {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "the sample size must be between 1 and {MAX_SAMPLES}, not {n}"
        )))
    }
}

/// `at` is the start of a line of `data`.
pub(crate) fn starts_line(data: &[u8], at: usize) -> bool {
    at == 0 || data.get(at - 1) == Some(&b'\n')
}

/// The complete line that starts at `at` and ends before `end`, without its LF.
pub(crate) fn line_at(data: &[u8], at: usize, end: usize) -> Option<&[u8]> {
    if !starts_line(data, at) || at >= end || end > data.len() {
        return None;
    }
    let len = memchr::memchr(b'\n', &data[at..end])?;
    Some(&data[at..at + len])
}

/// The `m` records with the lowest random ranks among the `kept` samples and the new `lines`
/// (line number, offset, line), in line order. Each new line gets a fresh random rank, so
/// the result is a uniform random choice among all of them; only the chosen lines are hashed.
fn draw<'a>(
    data: &[u8],
    kept: Vec<Sample>,
    lines: impl Iterator<Item = (u64, u64, &'a [u8])>,
    m: usize,
) -> Result<Vec<Sample>> {
    use std::collections::BinaryHeap;
    // The heap keeps the m lowest ranks seen, the highest on top: (rank, line, offset, hash).
    let mut heap: BinaryHeap<(u64, u64, u64, Option<String>)> = kept
        .into_iter()
        .map(|s| (s.rank, s.line, s.offset, Some(s.sha256)))
        .collect();
    while heap.len() > m {
        heap.pop();
    }
    let mut ranks = Ranks::new();
    for (line, offset, _) in lines {
        let rank = ranks.next()?;
        if heap.len() < m {
            heap.push((rank, line, offset, None));
        } else if heap.peek().is_some_and(|top| rank < top.0) {
            heap.pop();
            heap.push((rank, line, offset, None));
        }
    }
    let mut samples: Vec<Sample> = heap
        .into_iter()
        .map(|(rank, line, offset, sha256)| {
            let sha256 = sha256.unwrap_or_else(|| {
                let at = usize::try_from(offset).unwrap_or(usize::MAX);
                let body = line_at(data, at, data.len()).unwrap_or_default();
                hex::encode(chain::hash_line(body))
            });
            Sample {
                line,
                offset,
                sha256,
                rank,
            }
        })
        .collect();
    samples.sort_unstable_by_key(|s| s.line);
    Ok(samples)
}

/// Random 64-bit numbers from the operating system, read 64 KiB at a time.
struct Ranks {
    buf: Vec<u8>,
    used: usize,
}

impl Ranks {
    fn new() -> Self {
        Ranks {
            buf: vec![0; 64 << 10],
            used: usize::MAX,
        }
    }

    fn next(&mut self) -> Result<u64> {
        if self.used >= self.buf.len() {
            getrandom::fill(&mut self.buf)
                .map_err(|_| Error::InvalidConfig("the system has no randomness".into()))?;
            self.used = 0;
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&self.buf[self.used..self.used + 8]);
        self.used += 8;
        Ok(u64::from_le_bytes(n))
    }
}

/// Writes `bytes` to `path` through a private (0600) temporary file with an unpredictable
/// name in the same directory (created with `O_EXCL` and `O_NOFOLLOW`), synced, renamed over
/// `path`, and the directory synced: a crash leaves the old or the new contents, never a mix.
/// A symbolic link, directory, device, FIFO or socket at `path` is refused, never replaced.
/// See [`crate::fs::replace_atomically`].
///
/// # Errors
///
/// [`Error::Io`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fs::replace_atomically(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn snapshot_of(dir: &Path, bytes: &[u8]) -> Result<Snapshot> {
        let path = dir.join("log");
        fs::write(&path, bytes).map_err(Error::io("cannot write", &path))?;
        Snapshot::open(&path)
    }

    fn tempdir() -> Result<tempfile::TempDir> {
        tempfile::tempdir().map_err(Error::io("cannot create", Path::new("tempdir")))
    }

    #[test]
    fn a_small_log_is_all_window_and_all_sampled() -> Result<()> {
        let dir = tempdir()?;
        let snap = snapshot_of(dir.path(), b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n")?;
        let state = State::of(&snap, 10)?.ok_or(Error::InvalidConfig("empty".into()))?;
        let proof = state
            .proof
            .as_ref()
            .ok_or(Error::InvalidConfig("no proof".into()))?;
        assert_eq!((state.size, proof.bytes, proof.head_offset), (3, 24, 16));
        assert_eq!((proof.window.offset, proof.window.first_line), (0, 1));
        let lines: Vec<u64> = proof.samples.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![1, 2, 3]);
        assert!(state.is_sound());
        assert!(crate::verify::check_state(&state, &snap).is_ok());
        Ok(())
    }

    #[test]
    fn a_head_line_longer_than_the_window_is_the_window() -> Result<()> {
        let dir = tempdir()?;
        let mut bytes = b"{\"a\":1}\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', WINDOW_BYTES + 5));
        bytes.push(b'\n');
        let snap = snapshot_of(dir.path(), &bytes)?;
        let state = State::of(&snap, 10)?.ok_or(Error::InvalidConfig("empty".into()))?;
        let proof = state
            .proof
            .as_ref()
            .ok_or(Error::InvalidConfig("no proof".into()))?;
        assert_eq!((proof.window.offset, proof.window.first_line), (8, 2));
        assert!(crate::verify::check_state(&state, &snap).is_ok());
        Ok(())
    }

    #[test]
    fn a_window_starts_at_the_first_line_within_its_size() -> Result<()> {
        let dir = tempdir()?;
        // Lines of 100 bytes (99 and an LF): the window is the last whole lines in 1 MiB.
        let line = [vec![b'y'; 99], vec![b'\n']].concat();
        let bytes = line.repeat(WINDOW_BYTES / 100 + 50);
        let snap = snapshot_of(dir.path(), &bytes)?;
        let state = State::of(&snap, 10)?.ok_or(Error::InvalidConfig("empty".into()))?;
        let proof = state
            .proof
            .as_ref()
            .ok_or(Error::InvalidConfig("no proof".into()))?;
        let offset = usize::try_from(proof.window.offset).unwrap_or(usize::MAX);
        assert_eq!(offset % 100, 0);
        assert!(bytes.len() - offset <= WINDOW_BYTES && bytes.len() - offset > WINDOW_BYTES - 100);
        assert_eq!(
            proof.window.first_line,
            (offset / 100) as u64 + 1,
            "the first line's number"
        );
        Ok(())
    }
}
