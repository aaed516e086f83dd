//! Shipping the log off the host, at least once (`nexus-audit ship`).
//!
//! The log is the only buffer: [`source`] reads records from a position onward, a
//! [`Destination`] acknowledges batches of them, and the [`cursor`] (the last acknowledged
//! record's `seq`, byte position, segment and hash) moves only after an acknowledgement. Every
//! shipped record carries the log's `chain_id` (the hex SHA-256 of its first line), its `seq`,
//! the SHA-256 of its stored line and its `prev_hash`; `<chain_id>:<seq>` is the idempotency key
//! in every destination, so a batch sent twice (after a crash, a timeout, a lost ack) is
//! harmless.
//!
//! | scheme | destination |
//! |---|---|
//! | `postgres://`, `postgresql://` | [`postgres`]: a table, `INSERT … ON CONFLICT DO NOTHING` |
//! | `webhook+https://`, `webhook+http://` | [`webhook`]: signed JSON batches (Standard Webhooks) |
//! | `splunk-hec+https://`, `splunk-hec+http://` | `hec`: Splunk HTTP Event Collector |
//! | `elasticsearch+https://`, `elasticsearch+http://`, `opensearch+…` | `elastic`: `_bulk` |
//! | `syslog+tcp://`, `syslog+tls://` | `syslog`: RFC 5424 over RFC 6587 framing |
//!
//! The library reads no environment variable: secrets reach a destination through
//! [`DestinationOptions`], filled by the caller.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

mod against;
mod cursor;
mod elastic;
mod engine;
mod hec;
mod http;
mod postgres;
mod source;
mod syslog;
mod webhook;

pub use against::{Against, AgainstProblem, AgainstReport, check_against};
pub use cursor::{Cursor, default_cursor_path};
pub use engine::{Backoff, Event as ShipEvent, ShipOptions, ShipSummary, ship};

/// One record as shipped: the chain fields and the stored line, exactly.
#[derive(Clone, Debug)]
pub struct Shipped {
    /// Hex SHA-256 of the log's first line.
    pub chain_id: String,
    /// The record's `seq`.
    pub seq: u64,
    /// Hex SHA-256 of `line`.
    pub hash: String,
    /// The record's `prev_hash`.
    pub prev_hash: String,
    /// The stored line without its LF.
    pub line: String,
    /// The record's `timestamp` field.
    pub timestamp: String,
    /// The record's `action` field ("" if none).
    pub action: String,
}

impl Shipped {
    /// The idempotency key every destination uses: `<chain_id>:<seq>`.
    #[must_use]
    pub fn id(&self) -> String {
        format!("{}:{}", self.chain_id, self.seq)
    }
}

/// Why a batch was not acknowledged.
#[derive(Debug)]
pub enum SendError {
    /// Network error, timeout, 5xx, 429, an ack that did not come: send the same batch again
    /// after `after` (Retry-After) or the engine's backoff.
    Retry {
        /// What happened, for the progress output (no secret in it).
        reason: String,
        /// How long the destination asked to wait (`Retry-After`).
        after: Option<Duration>,
    },
    /// 400/401/403, a record the destination rejects as malformed: stop, exit non-zero.
    Fatal(String),
}

/// A place records are shipped to. `send` returns `Ok(())` only once the destination has
/// acknowledged every record of the batch; sending the same batch again must be harmless
/// (idempotency key `<chain_id>:<seq>`).
pub trait Destination: Send {
    /// Sends one batch and waits for its acknowledgement.
    ///
    /// # Errors
    ///
    /// [`SendError::Retry`] when the same batch should be sent again later,
    /// [`SendError::Fatal`] when shipping must stop.
    fn send(&mut self, batch: &[Shipped]) -> std::result::Result<(), SendError>;
    /// The URL with any secret masked, for progress and errors.
    fn describe(&self) -> String;
}

/// What a destination needs besides its URL. The library reads no environment: the CLI fills
/// this from `NEXUS_AUDIT_HEC_TOKEN`, `NEXUS_AUDIT_WEBHOOK_SECRET`, `--token-file`,
/// `--secret-file`, `--header` and `--timeout`.
#[derive(Clone, Debug)]
pub struct DestinationOptions {
    /// A bearer-like token (Splunk HEC's token).
    pub token: Option<String>,
    /// A signing key (the webhook's HMAC key, already decoded from `whsec_…`).
    pub secret: Option<Vec<u8>>,
    /// Extra HTTP headers, `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// How long one request may take.
    pub timeout: Duration,
    /// Where a destination keeps state of its own (HEC's channel GUID): the cursor's folder.
    pub state_dir: PathBuf,
    /// The stem to name such state files with: the cursor file's name without `.cursor`.
    pub state_stem: String,
}

impl Default for DestinationOptions {
    fn default() -> Self {
        DestinationOptions {
            token: None,
            secret: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(30),
            state_dir: PathBuf::from("."),
            state_stem: "ship".to_owned(),
        }
    }
}

/// The schemes `--to` accepts, for the error that names them.
const SCHEMES: &str = "postgres://, webhook+https://, splunk-hec+https://, elasticsearch+https://, syslog+tcp:// or syslog+tls://";

/// Opens the destination `url` names (the whole `--to` value).
///
/// # Errors
///
/// [`Error::InvalidConfig`] for an unknown scheme or a malformed URL (the message masks any
/// secret), or the destination's own refusal.
pub fn open(url: &str, opts: &DestinationOptions) -> Result<Box<dyn Destination>> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => postgres::open(url, opts),
        "webhook+https" | "webhook+http" => webhook::open(url, opts),
        "splunk-hec+https" | "splunk-hec+http" => hec::open(url, opts),
        "elasticsearch+https" | "elasticsearch+http" | "opensearch+https" | "opensearch+http" => {
            elastic::open(url, opts)
        }
        "syslog+tcp" | "syslog+tls" => syslog::open(url, opts),
        _ => Err(Error::InvalidConfig(format!(
            "--to {} is not a destination nexus-audit ships to: use {SCHEMES}",
            mask_url(url)
        ))),
    }
}

/// `url` with the password of its userinfo (`user:password@`) and the values of query
/// parameters that look secret (`password`, `token`, `secret`, `key`) replaced by `***`.
#[must_use]
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // NOTE: not a URL (a libpq `key=value` string, a typo): every secret-looking
        // `key=value` word is masked, and nothing is taken for userinfo.
        return url
            .split(' ')
            .map(|word| match word.split_once('=') {
                Some((k, _)) if is_secret_name(k) => format!("{k}=***"),
                _ => word.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    // NOTE: the userinfo is taken to end at the last `@`, even when an unencoded `/`, `?` or
    // `#` in the password would end the authority earlier: the password is masked either way
    // (an `@` in a query after a port then masks too much, which is the safe side).
    let (user, rest) = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***@"),
                None => format!("{userinfo}@"),
            };
            (user, &rest[at + 1..])
        }
        None => (String::new(), rest),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(authority_end);
    let authority = format!("{user}{host}");
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret_name(k) => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "token",
        "secret",
        "key",
        "sslpassword",
    ]
    .iter()
    .any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_url_hides_the_password_and_secret_parameters() {
        assert_eq!(
            mask_url("postgres://alice:s3cret@db:5432/audit?table=t&password=x"),
            "postgres://alice:***@db:5432/audit?table=t&password=***"
        );
        assert_eq!(
            mask_url("webhook+https://h/p?token=abc"),
            "webhook+https://h/p?token=***"
        );
        assert_eq!(mask_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(
            mask_url("postgres://bob:p/a?s@db/x"),
            "postgres://bob:***@db/x"
        );
        assert_eq!(
            mask_url("host=db user=u password=pw"),
            "host=db user=u password=***"
        );
    }

    #[test]
    fn an_unknown_scheme_is_one_sentence_without_the_secret() {
        let Err(err) = open("ftp://u:pw@h/x", &DestinationOptions::default()) else {
            panic!("ftp is not a destination");
        };
        let text = err.to_string();
        assert!(text.contains("ftp://u:***@h/x"), "{text}");
        assert!(!text.contains("pw"), "{text}");
    }
}
