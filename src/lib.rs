//! nexus-audit: a tamper-evident, hash-chained JSONL audit log for MCP tool calls.
//!
//! Every record is one JSON line whose `prev_hash` is the SHA-256 of the line before, so
//! changing, removing or reordering a line breaks a link that [`verify`] finds. The crate is
//! layered, bottom to top (each layer imports only from those below it):
//!
//! | layer | modules |
//! |---|---|
//! | format | `error`, `chain` (the chain rule, the one field table, the seal keys), `time`, `fs`, `json`, `lock` |
//! | records | `record` (events, views, the encoder), `redact`, `taxonomy` |
//! | files | `writer` (the [`Logger`], rotation, pruning), `reader` ([`Snapshot`], [`Follower`]), `segment` (segment names, the manifest) |
//! | queries | `parallel` (the one window engine), `filter`, `scan`, `stats`, `trust` (notes, checkpoints, state) |
//! | proof | `verify` (the [`Verifier`]) |
//! | programs | `config` (the operator's configuration file), `ship` (forwarding, feature `ship`), `proxy` (the MCP stdio proxy), `cli` (the `nexus-audit` command, feature `cli`) |
//!
//! The modules are private; what a program (or the Python binding) calls is listed below.
//!
//! Write records with a [`Logger`]:
//!
//! ```
//! use nexus_audit::{Event, LogOptions};
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("audit.jsonl");
//! let log = LogOptions::new(&path).open()?;
//! log.append(Event::new("mcp_call").tool("ad_get_user").user("alice@example.com"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! and prove the chain with a [`Verifier`]:
//!
//! ```
//! # use nexus_audit::{Event, LogOptions};
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("audit.jsonl");
//! # LogOptions::new(&path).open()?.append(Event::new("server_start"))?;
//! let snapshot = nexus_audit::Snapshot::open(&path)?;
//! let report = nexus_audit::Verifier::new().run(&snapshot)?;
//! assert!(report.ok);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

// Offsets and lengths are u64 in the format and usize in memory; casting between them is exact
// only on 64-bit targets (see the lints in Cargo.toml), and whole logs are memory-mapped.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("nexus-audit supports 64-bit targets only: it memory-maps whole logs");

mod chain;
#[cfg(feature = "cli")]
mod cli;
// The configuration file's schema serves the command line; the library keeps only the
// `config_loaded` search. A build without the `cli` feature leaves the rest unused.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod config;
mod error;
mod filter;
// Parts of it serve only the command line (output guards, `--since` parsing, the search
// `query` runs); a build without the `cli` feature leaves them unused.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod fs;
mod json;
mod lock;
mod parallel;
mod proxy;
mod reader;
mod record;
mod redact;
// Parts of it serve only the command line (output guards, `--since` parsing, the search
// `query` runs); a build without the `cli` feature leaves them unused.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod scan;
mod segment;
#[cfg(feature = "ship")]
mod ship;
mod stats;
mod taxonomy;
// Parts of it serve only the command line (output guards, `--since` parsing, the search
// `query` runs); a build without the `cli` feature leaves them unused.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod time;
mod trust;
mod verify;
mod writer;

pub use chain::seal_key::{KeyFile, init as init_seal_keys};
pub use chain::{ChainFields, FIELD_ORDER, GENESIS_HASH_HEX, Hash, Head, chain_prefix, hash_line};
pub use config::{Config, ConfigError, Loaded};
pub use error::{Error, Result};
pub use filter::{Filter, Matcher};
pub use json::is_valid as is_valid_json;
pub use parallel::MAX_THREADS;
pub use proxy::{HealthHook, LogHealth, ProxyOptions};
pub use reader::{Follower, NotRecord, Snapshot, Update, read_record};
pub use record::{Event, NotARecord, RecordView};
pub use redact::{MAX_ERROR_MESSAGE_CHARS, REDACTED, RedactionRules, Redactor};
pub use segment::{
    Compression, LogSet, ManifestEntry, ManifestEvent, Part, SEGMENTS_PRUNED_ACTION,
    SegmentArchived, SegmentClosed, SegmentCompressed, SegmentPruned, chain_id, manifest_path,
    segment_file_name,
};
pub use stats::{Interval, MAX_DISTINCT, Stats, StatsOptions, stats, stats_of};
pub use taxonomy::Taxonomy;
pub use trust::checkpoint::Checkpoint;
pub use trust::note::{NoteError, SignerKey, VerifierKey};
pub use trust::state::{DEFAULT_SAMPLES, MAX_SAMPLES, Proof, Sample, State, WINDOW_BYTES, Window};
pub use verify::{
    Anchored, DEFAULT_CHUNK_SIZE, Problem, ProblemKind, Report, Resume, Verifier, VerifyOptions,
    verify,
};
pub use writer::{
    CONFIG_LOADED, Durability, Encoded, LinesEnd, LinesOptions, LinesSummary, LogOptions, Logger,
    PruneOptions, PruneReport, PrunedSegment, Receipt, SealOptions, ZSTD_LEVEL,
};

/// Runs the MCP stdio proxy: see [`ProxyOptions`].
pub use proxy::run as run_proxy;
#[cfg(feature = "ship")]
pub use ship::{
    Against, AgainstProblem, AgainstReport, Backoff, Cursor, Destination, DestinationOptions,
    SendError, ShipEvent, ShipOptions, ShipSummary, Shipped, check_against, default_cursor_path,
    mask_url, open as open_destination, ship,
};

/// Runs the `nexus-audit` command line with the process's arguments and returns its exit
/// code: what `main` of the `nexus-audit` binary does. Needs the `cli` feature (on by default).
#[cfg(feature = "cli")]
#[must_use]
pub fn run_cli() -> std::process::ExitCode {
    cli::main()
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
