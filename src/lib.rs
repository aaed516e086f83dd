//! nexus-audit: a tamper-evident, hash-chained JSONL audit log for MCP tool calls.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]

pub mod error;
pub mod filter;
pub mod fs;
pub mod json;
pub mod note;
pub mod proxy;
pub mod redact;

pub use error::{Error, Result};
pub mod chain;
pub mod checkpoint;
mod lock;
mod parallel;
pub mod reader;
pub mod record;
pub mod scan;
pub mod seal;
pub mod stats;
pub mod taxonomy;
pub mod verify;
pub mod writer;

pub use chain::Head;
pub use filter::Filter;
pub use reader::Snapshot;
pub use record::{Event, RecordView};
pub use redact::{RedactionRules, Redactor};
pub use stats::{Stats, StatsOptions, stats};
pub use taxonomy::Taxonomy;
pub use verify::{Problem, ProblemKind, Report, Verifier, VerifyOptions, verify};
pub use writer::{Durability, Encoded, LogOptions, Logger, Receipt};

/// The most worker threads a reader takes (`--threads`): far above any core count that pays
/// off for a memory-bound scan, far below what would exhaust the process.
pub const MAX_THREADS: usize = 1024;

/// A rayon pool with `threads` workers, or all cores.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for 0 or more than [`MAX_THREADS`] workers (asking the system
/// for a billion threads would never return), or when the pool cannot be built.
pub(crate) fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    if let Some(n) = threads
        && !(1..=MAX_THREADS).contains(&n)
    {
        return Err(Error::InvalidConfig(format!(
            "{n} worker threads is out of range: give 1 to {MAX_THREADS}"
        )));
    }
    parallel::build_pool(threads)
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
