//! nexus-audit: a tamper-evident, hash-chained JSONL audit log for MCP tool calls.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]

pub mod error;
pub mod filter;
pub mod fs;
pub mod json;
pub mod proxy;
pub mod redact;

pub use error::{Error, Result};
pub mod chain;
mod lock;
mod parallel;
pub mod reader;
pub mod record;
pub mod scan;
mod ship;
pub mod stats;
pub mod taxonomy;
pub mod time;
pub mod trust;
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
pub use writer::{
    Durability, Encoded, LinesEnd, LinesOptions, LinesSummary, LogOptions, Logger, Receipt,
};

pub use parallel::MAX_THREADS;

// The trust modules at their old paths.
pub use trust::note;

/// Checkpoints and the verifier state, at their old path: see [`trust::checkpoint`] and
/// [`trust::state`].
pub mod checkpoint {
    pub use crate::trust::checkpoint::*;
    pub use crate::trust::state::{
        DEFAULT_SAMPLES, MAX_SAMPLES, Proof, Sample, State, WINDOW_BYTES, Window,
        check_sample_size, write_atomically,
    };
}

/// Forward-secure sealing, at its old path: the keys are in [`trust::seal_key`], the writer's
/// options in [`writer`].
pub mod seal {
    pub use crate::trust::seal_key::*;
    pub use crate::writer::SealOptions;
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
