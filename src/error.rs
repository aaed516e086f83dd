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
    /// A line given to [`Logger::append_lines`](crate::Logger::append_lines) is not an event.
    #[error("{input} line {line}")]
    BadLine {
        /// What the input is called (`standard input`).
        input: String,
        /// The line's number, from 1.
        line: u64,
        /// Why it is not an event.
        #[source]
        source: Box<Error>,
    },
    /// A line given to [`Logger::append_lines`](crate::Logger::append_lines) is not UTF-8.
    #[error("{input} line {line} is not valid UTF-8")]
    LineNotUtf8 {
        /// What the input is called (`standard input`).
        input: String,
        /// The line's number, from 1.
        line: u64,
    },
    /// The input of [`Logger::append_lines`](crate::Logger::append_lines) cannot be read.
    #[error("cannot read {input}")]
    Read {
        /// What the input is called (`standard input`).
        input: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// [`Logger::append_lines`](crate::Logger::append_lines) stopped at a line it could not
    /// read or take; the records before it were written.
    #[error("wrote {}, then stopped", records(*appended))]
    LinesStopped {
        /// Records written before.
        appended: u64,
        /// What stopped it.
        #[source]
        source: Box<Error>,
    },
    /// A write of [`Logger::append_lines`](crate::Logger::append_lines) failed; the records
    /// before it were written, none after.
    #[error("wrote {} before a write failed", records(*appended))]
    LinesWriteFailed {
        /// Records written before.
        appended: u64,
        /// The write's error.
        #[source]
        source: Box<Error>,
    },
    /// Shipping the log failed: a destination refused it, or the cursor no longer matches the
    /// log. The message names the destination with any secret masked.
    #[error("{0}")]
    Ship(String),
    /// A write shared with other appenders (group commit) failed.
    #[error("a shared write to {path} failed: {message}")]
    GroupWrite {
        /// The log path.
        path: PathBuf,
        /// The leader's error, as text.
        message: String,
        /// The kind of I/O error behind it, if it was one.
        kind: Option<io::ErrorKind>,
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

    /// The `io::ErrorKind` behind this error, if it is (or was caused by) an I/O error.
    #[must_use]
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } | Error::Read { source, .. } => Some(source.kind()),
            Error::GroupWrite { kind, .. } => *kind,
            Error::BadLine { source, .. }
            | Error::LinesStopped { source, .. }
            | Error::LinesWriteFailed { source, .. } => source.io_kind(),
            _ => None,
        }
    }
}

/// "1 record", "2 records".
pub(crate) fn records(n: u64) -> String {
    format!("{n} record{}", if n == 1 { "" } else { "s" })
}
