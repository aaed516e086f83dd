//! The writer's side of forward-secure sealing (see [`crate::chain::seal_key`] for the scheme): when a seal
//! falls due, its record, and moving the key file forward around the write that holds it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use crate::chain::Hash;
use crate::chain::seal_key::{KeyFile, Pending, mac, next_key};
use crate::error::{Error, Result};
use crate::record::{Encoder, Event};
use crate::time::{format_timestamp, parse_timestamp};

/// How a writer seals.
///
/// ```
/// let seal = nexus_audit::SealOptions::new("seal.key").every(500);
/// assert_eq!(seal.every, 500);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SealOptions {
    /// The writer's key file (`seal.key`).
    pub key_path: PathBuf,
    /// Seal after this many records (default 1000).
    pub every: u64,
    /// Seal at least this often while records arrive (default 15 minutes).
    pub interval: Duration,
}

impl SealOptions {
    /// Sealing with the key at `key_path` and the default cadence.
    pub fn new(key_path: impl Into<PathBuf>) -> Self {
        SealOptions {
            key_path: key_path.into(),
            every: 1000,
            interval: Duration::from_secs(15 * 60),
        }
    }

    /// Seals after this many records.
    #[must_use]
    pub fn every(mut self, records: u64) -> Self {
        self.every = records;
        self
    }

    /// Seals at least this often while records arrive.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

/// The writer's side, used under the log's lock.
#[derive(Debug)]
pub(crate) struct Sealer {
    opts: SealOptions,
    secret: Hash,
    since_last: u64,
    due_by_time: bool,
    /// Seals added to the write being built: (count, last seq).
    added: Option<Pending>,
    /// The key file as it is on disk: the epoch and key at the start of the write being built.
    start: KeyFile,
}

impl Sealer {
    /// Loads the key file and finishes an interrupted key move. `head` is the log's head
    /// under the lock (`None` for an empty log).
    pub(crate) fn load(opts: &SealOptions, head: Option<u64>) -> Result<Self> {
        let path = opts.key_path.as_path();
        let mut key = KeyFile::load(path)?;
        if let Some(p) = key.pending {
            // Were the pending seals written? A write is all or nothing, so the head says.
            let written = head.is_some_and(|h| h >= p.last_seq);
            key = if written {
                let mut k = key.advanced(p.count).ok_or_else(|| bad_key(path))?;
                k.last_seal_seq = Some(p.last_seq);
                k
            } else {
                KeyFile {
                    pending: None,
                    ..key
                }
            };
            key.save(path)?;
        }
        let secret = key.key_bytes().ok_or_else(|| bad_key(path))?;
        let since_last = match (head, key.last_seal_seq) {
            (Some(h), Some(s)) => h.saturating_sub(s),
            (Some(h), None) => h + 1,
            (None, _) => 0,
        };
        let due_by_time = key
            .last_seal_time
            .as_deref()
            .and_then(parse_timestamp)
            .is_none_or(|t| {
                Utc::now()
                    .signed_duration_since(t)
                    .to_std()
                    .unwrap_or_default()
                    >= opts.interval
            });
        Ok(Sealer {
            opts: opts.clone(),
            start: key,
            secret,
            since_last,
            due_by_time,
            added: None,
        })
    }

    /// Counts one record written; true when a seal should follow it.
    pub(crate) fn count(&mut self) -> bool {
        self.since_last += 1;
        self.since_last >= self.opts.every
    }

    /// True when records were written since the last seal and the interval has passed.
    pub(crate) fn due_at_end(&self) -> bool {
        self.since_last > 0 && self.due_by_time
    }

    /// The body (after the chain prefix) of a seal record at `seq` linking to `prev`, encoded
    /// by `encoder` like any record but unredacted, and the key moved forward in memory.
    pub(crate) fn seal_body(
        &mut self,
        seq: u64,
        prev: &Hash,
        encoder: &Encoder,
    ) -> Result<Vec<u8>> {
        // The epoch of this seal: the key file's, plus the seals already added to this write.
        let epoch = self.start.epoch + self.added.map_or(0, |p| p.count);
        let tag = mac(&self.secret, epoch, seq, prev);
        let body = encoder.encode_own(Event::new("seal").level("info").details(json!({
            "epoch": epoch,
            "mac": hex::encode(tag),
            "records": self.since_last,
        })))?;
        self.secret = next_key(&self.secret);
        self.since_last = 0;
        self.due_by_time = false;
        let count = self.added.map_or(0, |p| p.count) + 1;
        self.added = Some(Pending {
            count,
            last_seq: seq,
        });
        Ok(body)
    }

    /// Before the write: records the seals it holds as pending, durably.
    pub(crate) fn before_write(&self) -> Result<()> {
        let Some(p) = self.added else {
            return Ok(());
        };
        KeyFile {
            pending: Some(p),
            ..self.start.clone()
        }
        .save(&self.opts.key_path)?;
        crash_if("NEXUS_AUDIT_TEST_CRASH_BEFORE_SEAL");
        Ok(())
    }

    /// After the write is durable: moves the key file forward past the seals written.
    pub(crate) fn after_write(&mut self) -> Result<()> {
        let Some(p) = self.added.take() else {
            return Ok(());
        };
        // Die here, between writing the seals and moving the key forward, when a test asks.
        crash_if("NEXUS_AUDIT_TEST_CRASH_AFTER_SEAL");
        let path = self.opts.key_path.as_path();
        let mut k = self.start.advanced(p.count).ok_or_else(|| bad_key(path))?;
        k.last_seal_seq = Some(p.last_seq);
        k.last_seal_time = Some(format_timestamp(Utc::now()));
        k.save(path)?;
        self.start = k;
        Ok(())
    }

    /// Whether this write holds seals.
    pub(crate) fn sealed(&self) -> bool {
        self.added.is_some()
    }
}

/// Fault injection for the crash tests: aborts the process when the environment variable
/// `name` is set. Compiled only with the `fault-injection` feature, which only the tests enable
/// (Cargo.toml): a library built otherwise reads no environment variable here.
#[cfg(feature = "fault-injection")]
fn crash_if(name: &str) {
    if std::env::var_os(name).is_some() {
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
fn crash_if(_name: &str) {}

fn bad_key(path: &Path) -> Error {
    Error::InvalidConfig(format!("{} is not a seal key file", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::{RedactionRules, Redactor};
    use crate::taxonomy::Taxonomy;

    /// Seals go through the encoder, unredacted: rules that would redact every part of a seal
    /// (its source, its action, the names and hex of its details) leave it as the sealer wrote
    /// it by hand before, byte for byte, and its MAC is the one the key gives.
    #[test]
    fn redaction_leaves_a_seal_and_its_mac_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = dir.path().join("seal.key");
        let key = KeyFile::generate().expect("key");
        key.save(&key_path).expect("save key");
        let secret = key.key_bytes().expect("key bytes");
        let rules = RedactionRules {
            extra_keys: vec!["mac".into(), "epoch".into(), "records".into()],
            extra_patterns: vec!["[0-9a-f]{8,}".into(), "seal".into(), "info".into()],
            allow_keys: Vec::new(),
        };
        let source = "ingest-0123456789abcdef";
        let encoder = Encoder::new(
            Redactor::new(&rules).expect("rules"),
            Taxonomy::default(),
            source.into(),
        );
        let mut sealer = Sealer::load(&SealOptions::new(&key_path), Some(40)).expect("sealer");

        for (seq, epoch, secret, records) in [(41, 0, secret, 41), (43, 1, next_key(&secret), 0)] {
            let prev = [u8::try_from(seq).expect("small"); 32];
            let body = sealer.seal_body(seq, &prev, &encoder).expect("seal");
            let text = String::from_utf8(body).expect("UTF-8");
            let line: serde_json::Value =
                serde_json::from_str(&format!("{{{text}")).expect("a JSON object");
            let mac = hex::encode(mac(&secret, epoch, seq, &prev));
            let expected = format!(
                r#""event_id":"{}","timestamp":"{}","schema_version":"1","source":"{source}","level":"info","action":"seal","details":{{"epoch":{epoch},"mac":"{mac}","records":{records}}}}}"#,
                line["event_id"].as_str().expect("event_id"),
                line["timestamp"].as_str().expect("timestamp"),
            );
            assert_eq!(text, expected);
        }

        // The same rules on a caller's record take all of it: they are not idle.
        let caller = encoder
            .encode(
                Event::new("seal")
                    .level("info")
                    .details(json!({"mac": "0123456789abcdef"})),
            )
            .expect("encode");
        let caller = String::from_utf8(caller).expect("UTF-8");
        assert!(!caller.contains("0123456789abcdef"), "{caller}");
        assert!(!caller.contains("\"seal\""), "{caller}");
    }
}
