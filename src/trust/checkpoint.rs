//! Checkpoints: what catches a log cut short or rewritten whole, which the chain alone cannot
//! (see SECURITY.md). The verifier state, the same pair kept by the verifier itself, is in
//! [`super::state`].
//!
//! A **checkpoint** is a signed note (see [`super::note`]) whose text is
//!
//! ```text
//! ORIGIN
//! SIZE
//! BASE64(HEAD_HASH)
//! time RFC3339
//! ```
//!
//! SIZE is the number of records (complete lines) when it was made and `HEAD_HASH` the SHA-256 of
//! line SIZE, the chain head. It is not a Merkle root: proving it needs the log up to SIZE.
//! A log matches the checkpoint when it still has at least SIZE lines and its line SIZE hashes
//! to `HEAD_HASH`; since every line links to the one before, that vouches for lines 1..=SIZE.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::chain::{self, Hash};
use crate::error::{Error, Result};
use crate::reader::Snapshot;

use super::note::{NoteError, SignerKey};

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
            time: Some(crate::time::format_timestamp(chrono::Utc::now())),
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
            .find_map(|l| l.strip_prefix("time "))
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
