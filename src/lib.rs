//! nexus-audit: a tamper-evident, hash-chained JSONL audit log for MCP tool calls.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]

pub mod error;
pub mod redact;

pub use error::{Error, Result};
