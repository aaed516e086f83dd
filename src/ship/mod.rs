//! Shipping the log to other systems (issue 12). In this branch, only the interface that the
//! destinations implement: the ship engine's branch replaces this file at the merge.
#![allow(
    dead_code,
    reason = "the ship command, merged from the engine's branch, uses these"
)]

mod elastic;
mod hec;
mod http;
mod syslog;

/// One record to ship.
#[derive(Clone, Debug)]
pub struct Shipped {
    pub chain_id: String,
    pub seq: u64,
    pub hash: String,
    pub prev_hash: String,
    /// The stored line, without its LF.
    pub line: String,
    pub timestamp: String,
    pub action: String,
}

/// Why a batch was not acknowledged.
#[derive(Debug)]
pub enum SendError {
    Retry {
        reason: String,
        after: Option<std::time::Duration>,
    },
    Fatal(String),
}

/// A place records are shipped to.
pub trait Destination: Send {
    /// Ok only once every record of the batch is acknowledged; resending is harmless.
    fn send(&mut self, batch: &[Shipped]) -> Result<(), SendError>;
    /// The URL with secrets masked.
    fn describe(&self) -> String;
}

/// What a destination is opened with.
pub struct DestinationOptions {
    pub token: Option<String>,
    pub secret: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
    pub timeout: std::time::Duration,
    pub state_dir: std::path::PathBuf,
    pub state_stem: String,
}
