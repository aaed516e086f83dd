//! Forward-secure sealing, after journald's: the writer holds a key that only moves forward.
//!
//! Every `every` records (and at least every `interval` while records arrive) the writer appends
//! a `seal` record whose MAC is `HMAC-SHA256(key of epoch e, LABEL ‖ e ‖ seq ‖ prev_hash)`
//! (`e` and `seq` as 8-byte big-endian integers, `prev_hash` the 32 raw bytes the record links
//! to). Since `prev_hash` is the hash of the line before, which links to the one before it, the
//! seal vouches for every record up to it. Right after writing a seal the writer replaces the
//! key with `SHA-256(LABEL ‖ key)` and bumps the epoch, atomically and durably: whoever takes
//! the host later holds only the newest key and cannot forge or redo a seal already written.
//! The auditor keeps the initial key (`seal.verify`) away from the host and derives every
//! epoch's key from it.
//!
//! Key files are small JSON documents, mode 0600, written with [`write_atomically`]. A writer
//! about to write seals first records them as `pending` in the key file; if it dies between
//! writing the seals and moving the key forward, the next writer (under the log's lock) sees
//! the seals in the log and finishes the move.

use std::path::{Path, PathBuf};

use chrono::Utc;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chain::{self, Hash};
use crate::checkpoint::write_atomically;
use crate::reader::Snapshot;
use crate::record::{RecordView, format_timestamp};
use crate::verify::{Problem, ProblemKind, Report};
use crate::{Error, Result};

// NOTE: kept at its old path; the writer's sealing options live with the writer.
pub use crate::writer::SealOptions;

/// The domain-separation label of MACs and key steps.
pub const LABEL: &[u8] = b"nexus-audit seal v1";

/// Seals written but not yet followed by the key's move forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// How many seals the write holds.
    pub count: u64,
    /// `seq` of the last of them.
    pub last_seq: u64,
}

/// A key file: the key of `epoch`, and what the writer needs to know when the next seal is due.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// The epoch this key seals.
    pub epoch: u64,
    /// The key, hex.
    pub key: String,
    /// `seq` of the last seal written, if any.
    pub last_seal_seq: Option<u64>,
    /// When the last seal was written (or the key made).
    pub last_seal_time: Option<String>,
    /// Seals being written (see the module documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFile(epoch {})", self.epoch)
    }
}

impl KeyFile {
    /// A new random key at epoch 0.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the system has no randomness.
    pub fn generate() -> Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|_| Error::InvalidConfig("the system has no randomness".into()))?;
        let k = KeyFile {
            epoch: 0,
            key: hex::encode(key),
            last_seal_seq: None,
            last_seal_time: Some(format_timestamp(Utc::now())),
            pending: None,
        };
        key.fill(0);
        Ok(k)
    }

    /// Reads a key file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or [`Error::InvalidConfig`] for a file that is not a seal key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(Error::io("cannot read the seal key", path))?;
        serde_json::from_slice::<KeyFile>(&text)
            .ok()
            .filter(|k| k.key_bytes().is_some())
            .ok_or_else(|| {
                Error::InvalidConfig(format!("{} is not a seal key file", path.display()))
            })
    }

    /// Writes the key file atomically and durably.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        write_atomically(path, &text)
    }

    pub(crate) fn key_bytes(&self) -> Option<Hash> {
        chain::parse_hash_hex(self.key.as_bytes())
    }

    /// The key moved forward `steps` epochs.
    pub(crate) fn advanced(&self, steps: u64) -> Option<KeyFile> {
        let mut key = self.key_bytes()?;
        for _ in 0..steps {
            key = next_key(&key);
        }
        Some(KeyFile {
            epoch: self.epoch + steps,
            key: hex::encode(key),
            last_seal_seq: self.last_seal_seq,
            last_seal_time: self.last_seal_time.clone(),
            pending: None,
        })
    }
}

/// The key of the next epoch: `SHA-256(LABEL ‖ key)`.
#[must_use]
pub fn next_key(key: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(LABEL);
    h.update(key);
    h.finalize().into()
}

/// `HMAC-SHA256(key, LABEL ‖ epoch ‖ seq ‖ prev_hash)`.
#[must_use]
pub fn mac(key: &Hash, epoch: u64, seq: u64, prev_hash: &Hash) -> Hash {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(LABEL);
    m.update(&epoch.to_be_bytes());
    m.update(&seq.to_be_bytes());
    m.update(prev_hash);
    m.finalize().into_bytes().into()
}

/// What the seals of a log say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Problems found, in file order.
    pub problems: Vec<Problem>,
    /// `seq` of the last seal that verified.
    pub sealed_through_seq: Option<u64>,
    /// Records after the last good seal.
    pub unsealed_records: u64,
}

/// Checks every seal of the log against the keys derived from the initial key file.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for a bad key file or thread pool.
pub fn verify_seals(
    snapshot: &Snapshot,
    initial: &KeyFile,
    threads: Option<usize>,
) -> Result<SealReport> {
    let mut key = initial.key_bytes().ok_or_else(|| {
        Error::InvalidConfig("the seal verification key file is not valid".into())
    })?;
    let mut epoch = initial.epoch;
    let data = snapshot.data();
    let mut report = SealReport::default();
    // The seal lines, found in parallel with the same scanner as `stats`.
    let mut seals: Vec<usize> = Vec::new();
    let is_seal =
        |line: &[u8]| RecordView::parse(line).is_ok_and(|v| v.action.as_deref() == Some("seal"));
    crate::scan::for_each_match(data, false, threads, &is_seal, &|_| {}, |line| {
        seals.push(line.as_ptr() as usize - data.as_ptr() as usize);
        Ok::<_, Error>(true)
    })?;
    let mut line_no = 0u64;
    let mut counted_to = 0usize;
    let mut good_end: Option<usize> = None;
    for offset in seals {
        line_no += memchr::memchr_iter(b'\n', &data[counted_to..offset]).count() as u64 + 1;
        counted_to = offset;
        let rest = &data[offset..];
        let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
        let problem = |kind, message: String| Problem {
            kind,
            line: line_no,
            offset: offset as u64,
            seq: chain::chain_prefix(line).map(|f| f.seq),
            message,
        };
        let Some((seq, prev, seal_epoch, tag)) = seal_fields(line) else {
            report.problems.push(problem(
                ProblemKind::SealMismatch,
                format!("line {line_no} is a seal record without a readable epoch and MAC"),
            ));
            continue;
        };
        if seal_epoch < epoch {
            report.problems.push(problem(
                ProblemKind::SealMismatch,
                format!(
                    "line {line_no} is a seal of epoch {seal_epoch}, but epoch {epoch} was expected: an old seal was copied here"
                ),
            ));
            continue;
        }
        if seal_epoch > epoch {
            report.problems.push(problem(
                ProblemKind::SealEpochGap,
                format!(
                    "line {line_no} is a seal of epoch {seal_epoch}, but epoch {epoch} was expected: seals of epochs {epoch}..{} are missing",
                    seal_epoch - 1
                ),
            ));
            while epoch < seal_epoch {
                key = next_key(&key);
                epoch += 1;
            }
        }
        if mac(&key, epoch, seq, &prev) == tag {
            report.sealed_through_seq = Some(seq);
            good_end = Some(offset + line.len() + 1);
        } else {
            report.problems.push(problem(
                ProblemKind::SealMismatch,
                format!(
                    "the seal at line {line_no} (epoch {epoch}) does not verify: the records before it were changed, or the seal was forged"
                ),
            ));
        }
        key = next_key(&key);
        epoch += 1;
    }
    let after = &data[good_end.unwrap_or(0).min(data.len())..];
    report.unsealed_records = memchr::memchr_iter(b'\n', after).count() as u64;
    Ok(report)
}

/// `seq`, `prev_hash`, `details.epoch` and `details.mac` of a seal line.
fn seal_fields(line: &[u8]) -> Option<(u64, Hash, u64, Hash)> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let seq = v.get("seq")?.as_u64()?;
    let prev = chain::parse_hash_hex(v.get("prev_hash")?.as_str()?.as_bytes())?;
    let d = v.get("details")?;
    let epoch = d.get("epoch")?.as_u64()?;
    let tag = chain::parse_hash_hex(d.get("mac")?.as_str()?.as_bytes())?;
    Some((seq, prev, epoch, tag))
}

/// Adds the seal findings to a verify report.
pub fn add_to_report(seals: SealReport, report: &mut Report, max_problems: usize) {
    for p in seals.problems {
        report.add_problem(p, max_problems);
    }
    report.sealed_through_seq = seals.sealed_through_seq;
    report.unsealed_records = Some(seals.unsealed_records);
}

/// Seal files: `seal.key` for the writer, `seal.verify` for the auditor.
///
/// # Errors
///
/// [`Error::Io`], or [`Error::InvalidConfig`] when the files exist already.
pub fn init(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(Error::io("cannot create", dir))?;
    let key_path = dir.join("seal.key");
    let verify_path = dir.join("seal.verify");
    for p in [&key_path, &verify_path] {
        if p.exists() {
            return Err(Error::InvalidConfig(format!(
                "{} exists already: refusing to replace a seal key",
                p.display()
            )));
        }
    }
    let key = KeyFile::generate()?;
    key.save(&verify_path)?;
    key.save(&key_path)?;
    Ok((key_path, verify_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_move_forward_and_macs_depend_on_every_input() {
        let k0 = [7u8; 32];
        let k1 = next_key(&k0);
        assert_ne!(k0, k1);
        assert_eq!(next_key(&k0), k1, "deterministic");
        let m = mac(&k0, 0, 10, &[1; 32]);
        assert_ne!(m, mac(&k1, 0, 10, &[1; 32]));
        assert_ne!(m, mac(&k0, 1, 10, &[1; 32]));
        assert_ne!(m, mac(&k0, 0, 11, &[1; 32]));
        assert_ne!(m, mac(&k0, 0, 10, &[2; 32]));
    }
}
