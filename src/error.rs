//! The library's error type.
//!
//! Every variant carries enough context for one clear sentence: what was being done and to
//! which path. Messages never contain record contents, so no secret can leak through an error.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a file failed.
    /// The operating system's error is the [`source`](std::error::Error::source), not part of
    /// the message, so a report that prints the whole chain names it once.
    #[error("{context} {path}")]
    Io {
        /// What was being done, e.g. "cannot open".
        context: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The log path is a symbolic link, which the writer refuses to follow.
    #[error("refusing to open {path}: it is a symbolic link (the log must be a regular file)")]
    Symlink {
        /// The log path.
        path: PathBuf,
    },
    /// The log path exists but is not a regular file (a directory, a device, …).
    #[error("cannot use {path}: it is not a regular file")]
    NotAFile {
        /// The log path.
        path: PathBuf,
    },
    /// The last complete line of the log cannot be continued: it is not a chained record.
    #[error("cannot append to {path}: its last line (at byte {offset}) {reason}")]
    BadHead {
        /// The log path.
        path: PathBuf,
        /// Byte offset of the last line.
        offset: u64,
        /// Why it cannot be continued.
        reason: String,
    },
    /// The file at the log's path holds bytes but no complete line, and they do not begin like a
    /// record: it is some other file, which the writer neither extends nor moves aside.
    #[error(
        "refusing to append to {path}: it is not an audit log (its {len} bytes hold no complete line and do not begin like a record); nothing was changed"
    )]
    NotALog {
        /// The log path.
        path: PathBuf,
        /// The file's length.
        len: u64,
    },
    /// The records would take `seq` past `u64::MAX`; `seq` never wraps.
    #[error(
        "cannot append to {path}: its last record has seq {last}, and seq cannot go past {max} (it never wraps); start a new log",
        max = u64::MAX
    )]
    SeqExhausted {
        /// The log path.
        path: PathBuf,
        /// `seq` of the log's last record.
        last: u64,
    },
    /// An event given to the writer is not acceptable (wrong field type, not an object, …).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// A configuration value (a redaction pattern, a table entry, …) is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The logger was closed, or a previous background write failed.
    #[error("the logger for {path} is closed")]
    Closed {
        /// The log path.
        path: PathBuf,
    },
    /// A write shared with other appenders (group commit) failed.
    #[error("a shared write to {path} failed: {message}")]
    GroupWrite {
        /// The log path.
        path: PathBuf,
        /// The leader's error, as text.
        message: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A closure for `map_err` that wraps an [`io::Error`] with what was being done and where.
    pub(crate) fn io<'a>(
        context: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The `io::ErrorKind` behind this error, if it is an I/O error.
    #[must_use]
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}
