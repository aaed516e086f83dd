//! Verification: checks every line and every link of a log and says exactly which line was
//! changed, deleted, inserted, reordered or torn (SPEC §7).
//!
//! Work is split in two. The expensive part, hashing each line once and validating it as JSON,
//! runs in parallel over chunks of whole lines and yields one small `LineInfo` per line. A
//! sequential pass then walks those infos in order, checks each link, and when a link breaks
//! looks one or two records ahead to tell the cases apart:
//!
//! | what happened | reported as |
//! |---|---|
//! | a line's content changed | `hash_mismatch` at that line |
//! | a CR added before a line's LF | `hash_mismatch` at that line, the message saying so (the last line included) |
//! | records deleted | `seq_gap` at the line after the gap |
//! | a line inserted (a copy, one from elsewhere, or a forgery with the right `seq` and `prev_hash`) | `seq_out_of_order` at it when its `seq` is behind, else `hash_mismatch` |
//! | two lines swapped | `seq_out_of_order` at the second |
//! | first records deleted | `bad_genesis` at line 1 |
//! | the first record's `seq` or `prev_hash` changed | `bad_genesis` at line 1 |
//! | an empty, non-UTF-8, non-JSON, non-object or unchained line | `empty_line`, `bad_utf8`, `bad_json`, `not_object`, `missing_chain_fields` at it |
//! | bytes after the last LF | `torn_tail` |
//!
//! Each of these is one problem, with no follow-on problems. What the links cannot tell apart:
//! a change to the last line shows only when it adds a CR; two adjacent changed lines are one
//! `hash_mismatch` at the second, whose message says the first may have changed too; a forgery
//! inserted just before the last line looks like the genuine one, which is then blamed.
//!
//! Memory stays flat: infos are produced and consumed one window of the file at a time.
//!
//! The files: `report.rs` holds what is found ([`Report`], [`Problem`], [`ProblemKind`]),
//! `walk.rs` the parallel line checks and the walk over the links, `checkpoints.rs` the check
//! against signed checkpoints, `state.rs` the check against the verifier state of an earlier
//! run, `seals.rs` the check of seal records.

mod checkpoints;
mod diagnose;
mod report;
mod seals;
mod state;
mod walk;

use std::path::Path;

use crate::error::Result;
use crate::reader::Snapshot;

pub use checkpoints::{check_checkpoints, compare, nth_line};
pub use report::{Problem, ProblemKind, Report};
pub use seals::{SealReport, add_to_report, verify_seals};
pub use state::check_state;
pub use walk::{Resume, verify_snapshot_from};

/// Options for [`verify`].
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// List at most this many problems (default 100); counting goes on.
    pub max_problems: usize,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            max_problems: 100,
            threads: None,
        }
    }
}

/// Verifies the log at `path`.
///
/// # Errors
///
/// [`Error::Io`](crate::Error::Io) and friends when the file cannot be opened or mapped.
/// Integrity problems are not errors: they are in the report.
pub fn verify(path: impl AsRef<Path>, opts: &VerifyOptions) -> Result<Report> {
    let snapshot = Snapshot::open(path)?;
    verify_snapshot(&snapshot, opts, &|_| {})
}

/// Verifies an open snapshot, calling `progress` with the number of bytes done so far.
///
/// # Errors
///
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when the thread pool cannot be built.
pub fn verify_snapshot(
    snapshot: &Snapshot,
    opts: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    verify_snapshot_from(snapshot, opts, progress, None)
}

#[cfg(test)]
mod tests;
