//! Recovery from a torn tail: the bytes after the log's last LF (a write cut short by a crash)
//! are copied to a quarantine file beside the log, cut from the log, and recorded by a
//! `log_recovered` record chained before the next records.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};

use serde_json::json;

use super::Shared;
use super::log_file::{roll_back, sync_parent_dir};
use super::tail::Tail;
use crate::chain;
use crate::error::{Error, Result};
use crate::record::Event;

impl Shared {
    /// Reads the torn tail of a log whose complete lines end at `tail.complete_len`, and makes
    /// the `log_recovered` record for it. Changes nothing.
    ///
    /// A file with no complete line is the log's first record torn only when its bytes begin
    /// like one; anything else is a file that is not a log, refused with [`Error::NotALog`].
    pub(super) fn torn_tail(&self, file: &File, tail: &Tail, len: u64) -> Result<Recovered> {
        let path = self.path.as_path();
        let torn_len = len - tail.complete_len;
        let mut torn = vec![0u8; usize::try_from(torn_len).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut torn, tail.complete_len)
            .map_err(Error::io("cannot read the torn tail of", path))?;
        if tail.last_line.is_none() && !chain::starts_like_a_record(&torn) {
            return Err(Error::NotALog {
                path: path.to_path_buf(),
                len,
            });
        }
        let digest = hex::encode(chain::hash_line(&torn));
        let name = format!(
            "{}.torn-{}-{}",
            path.file_name()
                .map_or_else(|| "audit.jsonl".into(), |n| n.to_string_lossy()),
            tail.complete_len,
            &digest[..16]
        );
        let body = self.encoder.encode(
            Event::new("log_recovered")
                .level("warn")
                .status("error")
                .error_type("torn_tail")
                .details(json!({
                    "torn_bytes": torn_len,
                    "torn_sha256": digest,
                    "torn_offset": tail.complete_len,
                    "quarantine_file": name,
                })),
        )?;
        Ok(Recovered {
            body,
            torn,
            offset: tail.complete_len,
            name,
        })
    }

    /// Copies a torn tail to its quarantine file beside the log, synced, then truncates the log
    /// to its last LF. A quarantine file that cannot be written whole is removed again: the
    /// torn bytes stay in the log until a later append can move them.
    pub(super) fn quarantine(&self, file: &File, r: &Recovered) -> Result<()> {
        let path = self.path.as_path();
        let qpath = path.with_file_name(&r.name);
        let mut qfile = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&qpath)
            .map_err(Error::io("cannot create the quarantine file", &qpath))?;
        if let Err(err) = qfile.write_all(&r.torn).and_then(|()| qfile.sync_all()) {
            drop(qfile);
            // NOTE: the file is ours (just created or truncated); an empty or partial copy
            // must not stay behind looking like evidence.
            let _ = std::fs::remove_file(&qpath);
            return Err(Error::io("cannot write the quarantine file", &qpath)(err));
        }
        sync_parent_dir(&qpath)?;
        file.set_len(r.offset)
            .map_err(Error::io("cannot truncate the torn tail of", path))?;
        if let Err(err) = file.sync_data() {
            roll_back(file, r.offset, Some(&r.torn));
            return Err(Error::io("cannot truncate the torn tail of", path)(err));
        }
        Ok(())
    }
}

/// A torn tail, to be moved to its quarantine file, and the record that says so.
pub(super) struct Recovered {
    /// The body of the `log_recovered` record.
    pub(super) body: Vec<u8>,
    /// The torn bytes, as cut from the log.
    pub(super) torn: Vec<u8>,
    /// Where they start: the length of the log's complete lines.
    pub(super) offset: u64,
    /// The quarantine file's name, beside the log.
    pub(super) name: String,
}
