//! The ship cursor: where shipping to one destination stands, in a small JSON file beside the
//! log (`LOG.ship-<hash of the URL>.cursor` by default).
//!
//! It names the last record the destination acknowledged (or the filter passed over): the
//! log's chain id, the record's `seq`, the byte just past it, the segment (file) that byte
//! refers to, and the SHA-256 of its line. It is replaced atomically and durably (a private
//! temporary file with an unpredictable name, fsync, rename, fsync of the directory), only
//! after an acknowledgement, so a crash leaves it at an acknowledged record: at worst the
//! batch after it is sent again, which the idempotency key makes harmless.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::chain;
use crate::error::{Error, Result};

use super::source::Position;

/// The largest cursor file read.
const MAX_CURSOR_BYTES: u64 = 64 * 1024;

/// The contents of a cursor file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// Format version: 1.
    pub version: u32,
    /// The shipped log's chain id (hex SHA-256 of its first line).
    pub chain_id: String,
    /// `seq` of the last record acknowledged or passed over by the filter.
    pub seq: u64,
    /// The byte just past that record's LF.
    pub offset: u64,
    /// The file `offset` refers to: the live log's file name, or a segment's; the record is
    /// looked up by `seq` in whichever file holds it now.
    pub segment: String,
    /// Hex SHA-256 of that record's line.
    pub hash: String,
    /// The destination, with secrets masked (for people reading the file).
    pub destination: String,
}

impl Cursor {
    /// Reads the cursor at `path`; `None` when there is no file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when it cannot be read, [`Error::Ship`] when it is not a cursor.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(None);
        }
        let bytes = crate::fs::read_small(path, MAX_CURSOR_BYTES, "ship cursor")?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Ship(format!(
                "{} is not a ship cursor ({e}); move it away to ship from the start",
                path.display()
            ))
        })?;
        if cursor.version != 1 || chain::parse_hash_hex(cursor.hash.as_bytes()).is_none() {
            return Err(Error::Ship(format!(
                "{} is not a ship cursor this nexus-audit reads (version {}); move it away to ship from the start",
                path.display(),
                cursor.version
            )));
        }
        Ok(Some(cursor))
    }

    /// Replaces the cursor file at `path` with this one, atomically and durably (mode 0600).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec(self).map_err(|e| Error::Ship(e.to_string()))?;
        bytes.push(b'\n');
        crate::fs::replace_atomically(path, &bytes)
    }

    pub(crate) fn at(chain_id: &str, pos: &Position, destination: &str) -> Self {
        Cursor {
            version: 1,
            chain_id: chain_id.to_owned(),
            seq: pos.seq,
            offset: pos.offset,
            segment: pos.segment.clone(),
            hash: hex::encode(pos.hash),
            destination: destination.to_owned(),
        }
    }

    pub(crate) fn position(&self) -> Position {
        Position {
            segment: self.segment.clone(),
            offset: self.offset,
            seq: self.seq,
            hash: chain::parse_hash_hex(self.hash.as_bytes()).unwrap_or_default(),
        }
    }
}

/// The default cursor path for shipping `log` to `destination` (its URL with secrets masked):
/// `LOG.ship-<first 16 hex digits of the URL's SHA-256>.cursor`, beside the log.
#[must_use]
pub fn default_cursor_path(log: &Path, destination: &str) -> PathBuf {
    let digest = hex::encode(Sha256::digest(destination.as_bytes()));
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".ship-{}.cursor", &digest[..16]));
    log.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_a_round_trip_and_is_private()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.cursor");
        assert_eq!(Cursor::load(&path)?, None);
        let pos = Position {
            segment: "audit.jsonl".into(),
            offset: 10,
            seq: 3,
            hash: [7; 32],
        };
        let cursor = Cursor::at("ab", &pos, "postgres://x");
        cursor.save(&path)?;
        assert_eq!(Cursor::load(&path)?, Some(cursor.clone()));
        assert_eq!(cursor.position(), pos);
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        Ok(())
    }

    #[test]
    fn the_default_path_sits_beside_the_log_and_depends_on_the_url() {
        let a = default_cursor_path(Path::new("/var/log/audit.jsonl"), "postgres://a");
        let b = default_cursor_path(Path::new("/var/log/audit.jsonl"), "postgres://b");
        assert_ne!(a, b);
        assert!(a.starts_with("/var/log"));
        let name = a.file_name().unwrap_or_default().to_string_lossy();
        assert!(name.starts_with("audit.jsonl.ship-") && name.ends_with(".cursor"));
    }
}
