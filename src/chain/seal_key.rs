//! The keys of forward-secure sealing, after journald's: the writer holds a key that only moves
//! forward. The writer's side is in `writer/seal.rs`, the auditor's in `verify/seals.rs`.
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
use crate::error::{Error, Result};
use crate::fs::replace_atomically as write_atomically;
use crate::time::format_timestamp;

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
        if std::fs::symlink_metadata(p).is_ok() {
            return Err(Error::InvalidConfig(format!(
                "{} exists already: refusing to replace a seal key",
                p.display()
            )));
        }
    }
    let key = KeyFile::generate()?;
    let text = serde_json::to_vec_pretty(&key).map_err(|e| Error::InvalidConfig(e.to_string()))?;
    // Each file appears whole or not at all, and never over a file created meanwhile.
    crate::fs::write_new(&verify_path, &text, crate::fs::PRIVATE)?;
    crate::fs::write_new(&key_path, &text, crate::fs::PRIVATE)?;
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
