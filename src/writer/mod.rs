//! The writer: appends records to a log under an exclusive `flock`, extending one chain across
//! any number of threads and processes (SPEC §4).
//!
//! Every append goes through one pipeline. The caller's thread redacts and serialises its events
//! outside any lock; then it queues them. The first queued thread that finds no write in
//! progress becomes the *leader*: it takes everything queued so far, locks the file, reads the
//! head (from its cache when the file's length shows nobody else wrote), writes all the lines
//! with one `write`, applies the durability policy, unlocks, and hands each waiting thread its
//! `(seq, hash)`. Threads that queued meanwhile are written by the next leader, so concurrent
//! `sync` appenders share one `fdatasync` (group commit).
//!
//! A handle keeps its head cache for as long as the file's length (one `statx` under the lock)
//! shows that nobody else wrote, and, from its second write on, an inotify watch (`watch`)
//! tells it without a path lookup that the file was not rotated away or replaced and the
//! manifest did not change; when the watch saw anything, or there is none, it checks the path
//! and the manifest as before. The `flock` is still taken and released for every write: other
//! processes may append at any time.

mod announce;
mod commit;
mod compress;
mod lines;
mod log_file;
mod prune;
mod recovery;
mod rotate;
mod seal;
mod tail;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rayon::prelude::*;

use crate::chain::{self, Head};
use crate::error::{Error, Result};
use crate::lock::FileLock;
use crate::record::{Encoder, Event};
use crate::redact::{RedactionRules, Redactor};
use crate::taxonomy::Taxonomy;

pub use announce::CONFIG_LOADED;
pub use compress::ZSTD_LEVEL;
pub use lines::{LinesEnd, LinesOptions, LinesSummary};
pub use prune::{PruneOptions, PruneReport, PrunedSegment};
pub use seal::SealOptions;

use commit::Queue;
use log_file::{LogFile, open_existing_log_file};
use tail::read_tail;

/// When an append is durable.
///
/// | mode | an append returns | a crash can lose |
/// |---|---|---|
/// | `Sync` | after `fdatasync` (shared by concurrent appenders) | nothing acknowledged |
/// | `Buffered` | at once; records are written and synced every `max_records` or `max_delay`, on [`Logger::flush`], [`Logger::close`] and drop | the records of the last window |
/// | `SyncOnClose` | after `write`; synced once by [`Logger::flush`], [`Logger::close`] or drop | what was written since the last flush |
/// | `None` | after `write`; the OS decides when to sync | what the OS had not written back |
///
/// `Buffered` suits a long-running process (the proxy's `--durability buffered`); `SyncOnClose`
/// one that appends and exits (`append --durability sync-on-close`, whose older name is
/// `buffered`): each write returns its records' `(seq, hash)` at once, and one `fdatasync` at the
/// end makes them all durable. Seals are synced in every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Return after the data is on disk (`fdatasync`), with group commit.
    Sync,
    /// Queue records in memory; write and sync them in groups.
    Buffered {
        /// Write once this many records are queued (default 100).
        max_records: usize,
        /// Write at least this often while records are queued (default 1 s).
        max_delay: Duration,
    },
    /// Write at once; sync once, when the logger is flushed, closed or dropped.
    SyncOnClose,
    /// Write at once, never sync.
    None,
}

impl Durability {
    /// `Buffered` with the defaults: 100 records or 1000 ms.
    #[must_use]
    pub fn buffered() -> Self {
        Durability::Buffered {
            max_records: 100,
            max_delay: Duration::from_secs(1),
        }
    }
}

/// How to open a log.
///
/// | option | default |
/// |---|---|
/// | durability | [`Durability::Sync`] |
/// | file mode (on creation) | `0o600` |
/// | source | `"nexus-mcp"` |
/// | redaction | the built-in rules of SPEC §5 |
/// | shard and category tables | [`Taxonomy::default`] |
#[derive(Clone, Debug)]
pub struct LogOptions {
    path: PathBuf,
    durability: Durability,
    mode: u32,
    source: String,
    redaction: RedactionRules,
    taxonomy: Taxonomy,
    seal: Option<SealOptions>,
    policy: rotate::Policy,
    crash_at: Option<String>,
    config: Option<ConfigStamp>,
}

/// The configuration a writer announces with a `config_loaded` record.
#[derive(Clone, Debug)]
struct ConfigStamp {
    sha256: String,
    source: String,
}

impl LogOptions {
    /// Options for the log at `path`, with the defaults above.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LogOptions {
            path: path.into(),
            durability: Durability::Sync,
            mode: 0o600,
            source: chain::DEFAULT_SOURCE.to_owned(),
            redaction: RedactionRules::default(),
            taxonomy: Taxonomy::default(),
            seal: None,
            policy: rotate::Policy::default(),
            crash_at: None,
            config: None,
        }
    }

    /// Closes the live file into a segment before a write once it holds `bytes` bytes or
    /// more (checked under the writer's lock, so writers with the same options rotate once).
    #[must_use]
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.policy.max_size = Some(bytes);
        self
    }

    /// Closes the live file into a segment before a write once its first record is `age`
    /// old or older.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.policy.max_age = Some(age);
        self
    }

    /// How closed segments are stored (default [`Compression::Zstd`](crate::segment::Compression)):
    /// with zstd, a segment is compressed after it is closed, outside the writer's lock.
    #[must_use]
    pub fn compress(mut self, compression: crate::segment::Compression) -> Self {
        self.policy.compress = compression;
        self
    }

    /// Test hook (feature `fault-injection` only): aborts the process at the named crash
    /// point of rotation, compression or pruning.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    #[must_use]
    pub fn crash_at(mut self, point: Option<String>) -> Self {
        self.crash_at = point;
        self
    }

    /// Sets the durability policy.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the permission bits used when the file is created.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the `source` written when an event does not give one.
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Adds redaction rules to the built-in ones.
    #[must_use]
    pub fn redaction(mut self, rules: RedactionRules) -> Self {
        self.redaction = rules;
        self
    }

    /// Replaces the shard and category tables.
    #[must_use]
    pub fn taxonomy(mut self, taxonomy: Taxonomy) -> Self {
        self.taxonomy = taxonomy;
        self
    }

    /// Seals the log with the forward-secure key in `seal.key_path` (see [`KeyFile`](crate::KeyFile) and [`init_seal_keys`](crate::init_seal_keys)).
    #[must_use]
    pub fn seal(mut self, seal: SealOptions) -> Self {
        self.seal = Some(seal);
        self
    }

    /// Records the configuration in use: before its first record, this logger writes a
    /// `config_loaded` record (`details`: `config_sha256`, `source`) unless the last one in the
    /// log's final 16 MiB has the same hash (see [`crate::Config::sha256`]). The record goes
    /// in the same write as the first records, so a failed first append leaves no trace.
    #[must_use]
    pub fn config_loaded(mut self, sha256: impl Into<String>, source: impl Into<String>) -> Self {
        self.config = Some(ConfigStamp {
            sha256: sha256.into(),
            source: source.into(),
        });
        self
    }

    /// Opens the log. A log that does not exist yet is created by the first write, never
    /// before: an append that fails (an invalid event, a missing seal key) leaves no file.
    ///
    /// # Errors
    ///
    /// [`Error::Symlink`] if the path is a symbolic link, [`Error::NotAFile`] if it is not a
    /// regular file, [`Error::Io`] when it cannot be opened or its directory does not exist,
    /// [`Error::InvalidConfig`] for a bad redaction pattern or a seal key file that is not one,
    /// [`Error::Io`] for a seal key file that cannot be read.
    pub fn open(self) -> Result<Logger> {
        Logger::open(self)
    }
}

/// A record redacted and serialised by [`Logger::encode`], ready for
/// [`Logger::append_encoded`]. Encoding does not depend on the log's head, so it can run on any
/// thread, ahead of the append; only chaining and writing happen under the lock.
#[derive(Clone, Debug)]
pub struct Encoded(Vec<u8>);

/// What an append gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// The records were written; the head after the last one.
    Written {
        /// `(seq, hash)` of each record, in order.
        records: Vec<Head>,
    },
    /// Buffered durability: the records are queued and will be written by a later flush.
    Queued,
}

impl Receipt {
    /// The `(seq, hash)` of the last record written, if the records were written.
    #[must_use]
    pub fn last(&self) -> Option<Head> {
        match self {
            Receipt::Written { records } => records.last().copied(),
            Receipt::Queued => None,
        }
    }
}

/// A handle on one log, shared by any number of threads (it is `Send + Sync`; wrap it in an
/// `Arc`). Other processes may append to the same file at the same time.
///
/// ```
/// use nexus_audit::{Durability, Event, LogOptions};
/// # fn main() -> nexus_audit::Result<()> {
/// # let dir = tempfile::tempdir().expect("tempdir");
/// let log = LogOptions::new(dir.path().join("audit.jsonl"))
///     .durability(Durability::Sync)
///     .open()?;
/// let receipt = log.append(Event::new("mcp_call").tool("workday_get_worker").status_success())?;
/// assert_eq!(receipt.last().map(|h| h.seq), Some(0));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Logger {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

/// What every thread appending through one [`Logger`] shares.
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// Permission bits for the file when the first write creates it.
    mode: u32,
    encoder: Encoder,
    durability: Durability,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Wakes a gathering leader once enough appenders are queued (see `commit`).
    gathered: Condvar,
    log: Mutex<LogFile>,
    seal: Option<SealOptions>,
    policy: rotate::Policy,
    /// Set while this handle prunes under the directory lock: its own `segments_pruned`
    /// write must not try to compress (that lock is taken already).
    maintaining: std::sync::atomic::AtomicBool,
    /// The crash point a test asked for (feature `fault-injection`).
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    crash_at: Option<String>,
    /// The `config_loaded` record still to write before the first records.
    announce: Mutex<Option<Vec<u8>>>,
    /// Whether `announce` may still hold a record: every commit reads it, only the first locks.
    announcing: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // NOTE: a panic while holding one of these locks leaves plain data behind, never a
    // half-written file (the file is protected by flock and rollback), so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Logger {
    fn open(opts: LogOptions) -> Result<Self> {
        let file = open_existing_log_file(&opts.path)?;
        if let Some(seal) = &opts.seal {
            // Read now, so a missing or broken key fails the open, before any file is created.
            crate::chain::seal_key::KeyFile::load(&seal.key_path)?;
        }
        let encoder = Encoder::new(Redactor::new(&opts.redaction)?, opts.taxonomy, opts.source);
        let announce = match &opts.config {
            Some(stamp)
                if file.is_some()
                    && announce::last_recorded_sha256(&opts.path)?
                        == Some(stamp.sha256.clone()) =>
            {
                None
            }
            Some(stamp) => Some(encoder.encode_own(
                Event::new(announce::CONFIG_LOADED).details(serde_json::json!({
                    "config_sha256": stamp.sha256,
                    "source": stamp.source,
                })),
            )?),
            None => None,
        };
        let shared = Arc::new(Shared {
            path: opts.path,
            mode: opts.mode,
            encoder,
            durability: opts.durability,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            gathered: Condvar::new(),
            log: Mutex::new(LogFile {
                file,
                cache: None,
                buf: Vec::new(),
                sealer: None,
                unsynced: false,
                rotation: rotate::RotationState::default(),
                watch: watch::Watching::NotYet,
            }),
            seal: opts.seal,
            policy: opts.policy,
            maintaining: std::sync::atomic::AtomicBool::new(false),
            crash_at: opts.crash_at,
            announcing: std::sync::atomic::AtomicBool::new(announce.is_some()),
            announce: Mutex::new(announce),
        });
        let flusher = match opts.durability {
            Durability::Buffered { max_delay, .. } => {
                let flushed = Arc::clone(&shared);
                Some(
                    std::thread::Builder::new()
                        .name("nexus-audit-flush".into())
                        .spawn(move || flushed.flush_periodically(max_delay))
                        .map_err(Error::io("cannot start the flush thread for", &shared.path))?,
                )
            }
            _ => None,
        };
        Ok(Logger { shared, flusher })
    }

    /// The log's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The redactor every record goes through (for a caller that must redact text the
    /// record's fields cannot hold as JSON, such as the proxy's undecodable arguments).
    #[must_use]
    pub fn redactor(&self) -> &Redactor {
        self.shared.encoder.redactor()
    }

    /// Appends one event. See [`Logger::append_batch`].
    ///
    /// # Errors
    ///
    /// As [`Logger::append_batch`].
    pub fn append(&self, event: Event) -> Result<Receipt> {
        let body = self.shared.encoder.encode(event)?;
        self.shared.commit_first(vec![body])
    }

    /// Appends events as consecutive records, written with one `write` under one lock.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] for an event that cannot be encoded (nothing is written then),
    /// [`Error::Io`] when the write or sync fails (the file is rolled back to its previous
    /// length, so no partial line is left), [`Error::BadHead`] when the log's last line is not
    /// a chained record, [`Error::GroupWrite`] when a write shared with other threads failed,
    /// and, in buffered mode, the error of an earlier background write.
    pub fn append_batch(&self, events: Vec<Event>) -> Result<Receipt> {
        let encoder = &self.shared.encoder;
        let bodies = if events.len() >= 64 {
            events
                .into_par_iter()
                .map(|e| encoder.encode(e))
                .collect::<Result<Vec<_>>>()?
        } else {
            events
                .into_iter()
                .map(|e| encoder.encode(e))
                .collect::<Result<Vec<_>>>()?
        };
        if bodies.is_empty() {
            return Ok(Receipt::Written {
                records: Vec::new(),
            });
        }
        self.shared.commit_first(bodies)
    }

    /// Redacts and serialises an event with this log's rules, without writing it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] for an event that cannot be encoded.
    pub fn encode(&self, event: Event) -> Result<Encoded> {
        self.shared.encoder.encode(event).map(Encoded)
    }

    /// Appends records encoded by [`Logger::encode`] (of this logger: another logger's
    /// redaction rules may differ), as [`Logger::append_batch`] does.
    ///
    /// # Errors
    ///
    /// As [`Logger::append_batch`].
    pub fn append_encoded(&self, records: Vec<Encoded>) -> Result<Receipt> {
        if records.is_empty() {
            return Ok(Receipt::Written {
                records: Vec::new(),
            });
        }
        self.shared
            .commit_first(records.into_iter().map(|Encoded(body)| body).collect())
    }

    /// Makes every record appended so far durable: in buffered mode writes the queued records
    /// and returns once they are synced; with [`Durability::SyncOnClose`] syncs what was
    /// written since the last flush. Nothing to do in the other modes.
    ///
    /// # Errors
    ///
    /// The write's or sync's error, or that of an earlier background write.
    pub fn flush(&self) -> Result<()> {
        match self.shared.durability {
            Durability::Buffered { .. } => self.shared.wait_for(Vec::new()).map(drop),
            Durability::SyncOnClose => self.shared.sync_written(),
            Durability::Sync | Durability::None => Ok(()),
        }
    }

    /// Flushes and stops the background writer.
    ///
    /// # Errors
    ///
    /// As [`Logger::flush`].
    pub fn close(mut self) -> Result<()> {
        self.stop_flusher();
        self.flush()
    }

    fn stop_flusher(&mut self) {
        if let Some(handle) = self.flusher.take() {
            lock(&self.shared.queue).shutdown = true;
            self.shared.wake.notify_all();
            // NOTE: the flush thread only returns or panics on a bug; either way we go on.
            let _ = handle.join();
        }
    }

    /// The current head of the log, read under a shared lock: `None` for an empty log.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read, [`Error::BadHead`] when its last line is
    /// not a chained record.
    pub fn head(&self) -> Result<Option<Head>> {
        let path = self.shared.path.as_path();
        let mut log = lock(&self.shared.log);
        loop {
            if log.file.is_none() {
                // Another process may have created it since.
                log.file = open_existing_log_file(path)?;
                log.cache = None;
                log.sealer = None;
                log.rotation.forget_file();
            }
            let Some(file) = &log.file else {
                return self.shared.head_after_segments();
            };
            let guard = FileLock::shared(file).map_err(Error::io("cannot lock", path))?;
            let open = log_file::Held::stat(file, path)?;
            if !rotate::is_at_path(&open, path)? {
                // Rotated away meanwhile.
                drop(guard);
                log.file = None;
                continue;
            }
            let tail = read_tail(file, open.len, path)?;
            return match tail.head(path)? {
                Some(head) => Ok(Some(head)),
                None => self.shared.head_after_segments(),
            };
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.stop_flusher();
        // NOTE: nothing can report an error from drop; call `close` to see it.
        let _ = self.flush();
    }
}

impl Shared {
    /// Commits `bodies`, after the `config_loaded` record if it is still to be written.
    fn commit_first(&self, mut bodies: Vec<Vec<u8>>) -> Result<Receipt> {
        use std::sync::atomic::Ordering;
        if !self.announcing.load(Ordering::Acquire) {
            return self.commit(bodies);
        }
        // NOTE: the lock is held through the first write, so no other thread's records get
        // ahead of the announcement.
        let mut announce = lock(&self.announce);
        let Some(record) = announce.take() else {
            drop(announce);
            return self.commit(bodies);
        };
        bodies.insert(0, record.clone());
        let result = self.commit(bodies);
        self.announcing.store(result.is_err(), Ordering::Release);
        match result {
            Ok(Receipt::Written { mut records }) => {
                if !records.is_empty() {
                    records.remove(0);
                }
                Ok(Receipt::Written { records })
            }
            Ok(Receipt::Queued) => Ok(Receipt::Queued),
            Err(e) => {
                *announce = Some(record);
                Err(e)
            }
        }
    }
}
