//! Checkpoints and verifier state: what catches a log cut short or rewritten whole, which the
//! chain alone cannot (see SECURITY.md).
//!
//! A **checkpoint** is a signed note (see [`crate::note`]) whose text is
//!
//! ```text
//! ORIGIN
//! SIZE
//! BASE64(HEAD_HASH)
//! time RFC3339
//! ```
//!
//! SIZE is the number of records (complete lines) when it was made and HEAD_HASH the SHA-256 of
//! line SIZE, the chain head. It is not a Merkle root: proving it needs the log up to SIZE.
//! A log matches the checkpoint when it still has at least SIZE lines and its line SIZE hashes
//! to HEAD_HASH; since every line links to the one before, that vouches for lines 1..=SIZE.
//!
//! The **verifier state** is the same pair (size, head) kept by the verifier in a file of its
//! own, written atomically after each clean run.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::chain::{self, Hash};
use crate::note::{self, NoteError, SignerKey, VerifierKey};
use crate::reader::Snapshot;
use crate::verify::{Problem, ProblemKind, Report, Resume};
use crate::{Error, Result};

/// The contents of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which log this is (free text, one line).
    pub origin: String,
    /// Number of records (complete lines).
    pub size: u64,
    /// SHA-256 of line `size`.
    pub head: Hash,
    /// When it was made (RFC 3339), from the `time` extension line.
    pub time: Option<String>,
}

impl Checkpoint {
    /// The checkpoint of a snapshot's current end.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty log or a bad origin.
    pub fn of(snapshot: &Snapshot, origin: &str) -> Result<Self> {
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(Error::InvalidConfig(
                "the origin must be one line of text".into(),
            ));
        }
        let Some((size, last)) = end_of(snapshot) else {
            return Err(Error::InvalidConfig(format!(
                "{} has no complete record to checkpoint",
                snapshot.path().display()
            )));
        };
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            head: chain::hash_line(last),
            time: Some(crate::record::format_timestamp(chrono::Utc::now())),
        })
    }

    /// The note text: origin, size, base64 head, and the `time` extension line.
    #[must_use]
    pub fn text(&self) -> String {
        let mut t = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.head)
        );
        if let Some(time) = &self.time {
            t.push_str(&format!("time {time}\n"));
        }
        t
    }

    /// Signs the checkpoint.
    ///
    /// # Errors
    ///
    /// [`NoteError::Malformed`] for an origin that cannot be in a note.
    pub fn sign(&self, key: &SignerKey) -> std::result::Result<String, NoteError> {
        key.sign(&self.text())
    }

    /// Parses a checkpoint's text (after its signature was checked).
    ///
    /// # Errors
    ///
    /// A sentence saying what is wrong.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or("no origin line")?;
        let size = lines
            .next()
            .and_then(|s| s.parse::<u64>().ok().filter(|_| !s.starts_with('+')))
            .ok_or("the second line is not a size")?;
        let head = lines
            .next()
            .and_then(|h| B64.decode(h).ok())
            .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
            .ok_or("the third line is not a base64 SHA-256")?;
        let time = lines
            .filter_map(|l| l.strip_prefix("time "))
            .next()
            .map(str::to_owned);
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            head,
            time,
        })
    }
}

/// The number of complete lines of a snapshot and its last line, unless it is empty.
fn end_of(snapshot: &Snapshot) -> Option<(u64, &[u8])> {
    let (_, last) = snapshot.lines_rev().next()?;
    let size = memchr::memchr_iter(b'\n', snapshot.data()).count() as u64;
    Some((size, last))
}

/// Line `n` (1-based) of `data` with the byte offset where it starts; when the data has fewer
/// complete lines, how many it has.
///
/// # Errors
///
/// The number of complete lines, when it is below `n` (or `n` is 0).
pub fn nth_line(data: &[u8], n: u64) -> std::result::Result<(usize, &[u8]), u64> {
    let mut start = 0usize;
    let mut seen = 0u64;
    for end in memchr::memchr_iter(b'\n', data) {
        seen += 1;
        if seen == n {
            return Ok((start, &data[start..end]));
        }
        start = end + 1;
    }
    Err(seen)
}

/// Finds line `size` and checks that it hashes to `head`, in one pass over the data.
fn locate<'a>(
    snapshot: &'a Snapshot,
    size: u64,
    head: &Hash,
    source: &str,
) -> std::result::Result<Option<(usize, &'a [u8])>, Problem> {
    if size == 0 {
        return Ok(None);
    }
    let data = snapshot.data();
    match nth_line(data, size) {
        Err(lines) => Err(Problem {
            kind: ProblemKind::Truncated,
            line: lines + 1,
            offset: data.len() as u64,
            seq: None,
            message: format!(
                "{source} says the log had {size} records, but it has only {lines}: records were removed from its end"
            ),
        }),
        Ok((offset, line)) if chain::hash_line(line) != *head => Err(Problem {
            kind: ProblemKind::CheckpointMismatch,
            line: size,
            offset: offset as u64,
            seq: chain::chain_prefix(line).map(|f| f.seq),
            message: format!(
                "line {size} no longer hashes to the head in {source}: the log was rewritten up to there"
            ),
        }),
        Ok(found) => Ok(Some(found)),
    }
}

/// Compares a log with a remembered `(size, head)`: `truncated` when it has fewer lines,
/// `checkpoint_mismatch` when its line `size` hashes to something else.
#[must_use]
pub fn compare(snapshot: &Snapshot, size: u64, head: &Hash, source: &str) -> Option<Problem> {
    locate(snapshot, size, head, source).err()
}

/// Checks signed checkpoints against `keys` and then against the log, adding each problem to
/// `report` and counting the checkpoints checked.
pub fn check_checkpoints(
    snapshot: &Snapshot,
    checkpoints: &[(String, Vec<u8>)],
    keys: &[VerifierKey],
    report: &mut Report,
    max_problems: usize,
) {
    for (name, msg) in checkpoints {
        let problem = |kind, message: String| Problem {
            kind,
            line: 0,
            offset: 0,
            seq: None,
            message,
        };
        let note = match note::open(msg, keys) {
            Ok(note) => note,
            Err(NoteError::UnknownKey(who)) => {
                report.add_problem(
                    problem(
                        ProblemKind::UnknownKey,
                        format!(
                            "checkpoint {name} is signed by {who}, not by a key given with --pub"
                        ),
                    ),
                    max_problems,
                );
                continue;
            }
            Err(e) => {
                report.add_problem(
                    problem(
                        ProblemKind::BadSignature,
                        format!("checkpoint {name} cannot be trusted: {e}"),
                    ),
                    max_problems,
                );
                continue;
            }
        };
        match Checkpoint::parse(&note.text) {
            Ok(cp) => {
                report.checkpoints_checked += 1;
                if let Some(p) = compare(snapshot, cp.size, &cp.head, &format!("checkpoint {name}"))
                {
                    report.add_problem(p, max_problems);
                }
            }
            Err(why) => report.add_problem(
                problem(
                    ProblemKind::BadSignature,
                    format!("checkpoint {name} is signed but is not a checkpoint: {why}"),
                ),
                max_problems,
            ),
        }
    }
}

/// What a verifier remembers between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Records (complete lines) verified.
    pub size: u64,
    /// SHA-256 of line `size`, hex.
    pub head: String,
    /// `seq` of line `size`.
    pub seq: u64,
    /// When the state was written.
    pub verified_at: String,
}

impl State {
    /// The head as bytes.
    #[must_use]
    pub fn head_hash(&self) -> Option<Hash> {
        chain::parse_hash_hex(self.head.as_bytes())
    }

    /// Reads the state file; `None` when it does not exist yet.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty or corrupt file, [`Error::Io`] when it cannot be
    /// read.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        // NOTE: read_small refuses a FIFO (which would block) and anything far larger than a
        // state file (the log given by mistake), instead of reading it whole.
        let text = match crate::fs::read_small(path, 1 << 16, "cannot read the state file") {
            Ok(t) => t,
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let state: State = serde_json::from_slice(&text)
            .ok()
            .filter(|s: &State| s.head_hash().is_some())
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "the state file {} is empty or corrupt: it cannot vouch for the log; restore it from a backup, or delete it to start over",
                    path.display()
                ))
            })?;
        Ok(Some(state))
    }

    /// Writes the state file atomically and durably (a new file renamed over the old one).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        write_atomically(path, &text)
    }

    /// The state of a snapshot's current end, unless it is empty.
    #[must_use]
    pub fn of(snapshot: &Snapshot) -> Option<Self> {
        let (size, last) = end_of(snapshot)?;
        Some(State {
            size,
            head: hex::encode(chain::hash_line(last)),
            seq: chain::chain_prefix(last).map_or(size.saturating_sub(1), |f| f.seq),
            verified_at: crate::record::format_timestamp(chrono::Utc::now()),
        })
    }

    /// Compares the snapshot with this state: where to resume an incremental run (after line
    /// `size`), or the problem (`truncated`, `checkpoint_mismatch`) when it no longer matches.
    ///
    /// # Errors
    ///
    /// The problem found.
    pub fn check(&self, snapshot: &Snapshot) -> std::result::Result<Option<Resume>, Problem> {
        let Some(hash) = self.head_hash() else {
            return Ok(None);
        };
        let found = locate(snapshot, self.size, &hash, "the verifier state")?;
        Ok(found.map(|(offset, line)| Resume {
            lines: self.size,
            offset: offset + line.len() + 1,
            last_offset: offset,
            seq: self.seq,
            hash,
        }))
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
