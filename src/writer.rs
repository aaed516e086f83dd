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

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rayon::prelude::*;
use serde_json::json;

use crate::chain::{self, GENESIS_HASH, Head};
use crate::lock::FileLock;
use crate::record::{Encoder, Event};
use crate::redact::{RedactionRules, Redactor};
use crate::seal::{SealOptions, Sealer};
use crate::taxonomy::Taxonomy;
use crate::{Error, Result};

/// When an append is durable.
///
/// | mode | an append returns | a crash can lose |
/// |---|---|---|
/// | `Sync` | after `fdatasync` (shared by concurrent appenders) | nothing acknowledged |
/// | `Buffered` | at once; records are written and synced every `max_records` or `max_delay`, on [`Logger::flush`], [`Logger::close`] and drop | the records of the last window |
/// | `None` | after `write`; the OS decides when to sync | what the OS had not written back |
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
    /// Write at once, never sync.
    None,
}

impl Durability {
    /// `Buffered` with the defaults: 100 records or 1000 ms.
    #[must_use]
    pub fn buffered() -> Self {
        Durability::Buffered {
            max_records: 100,
            max_delay: Duration::from_millis(1000),
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
        }
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

    /// Seals the log with the forward-secure key in `seal.key_path` (see [`crate::seal`]).
    #[must_use]
    pub fn seal(mut self, seal: SealOptions) -> Self {
        self.seal = Some(seal);
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

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// Permission bits for the file when the first write creates it.
    mode: u32,
    encoder: Encoder,
    durability: Durability,
    queue: Mutex<Queue>,
    wake: Condvar,
    log: Mutex<LogFile>,
    seal: Option<SealOptions>,
}

#[derive(Debug, Default)]
struct Queue {
    batches: VecDeque<Batch>,
    queued_records: usize,
    next_ticket: u64,
    leader: bool,
    done: HashMap<u64, Result<Vec<Head>, String>>,
    background_error: Option<String>,
    shutdown: bool,
}

#[derive(Debug)]
struct Batch {
    /// `None` for buffered records nobody waits for.
    ticket: Option<u64>,
    bodies: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct LogFile {
    /// `None` until the file exists: the first write creates it.
    file: Option<File>,
    /// `(file length, head)` as this handle last left the file.
    cache: Option<(u64, Option<Head>)>,
    /// The bytes of the last write, kept so the next one reuses the memory (no page faults).
    buf: Vec<u8>,
    /// The sealing state as this handle last left it; valid while `cache` is (no other writer
    /// can have sealed without changing the log).
    sealer: Option<Sealer>,
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
            crate::seal::KeyFile::load(&seal.key_path)?;
        }
        let encoder = Encoder {
            redactor: Redactor::new(&opts.redaction)?,
            taxonomy: opts.taxonomy,
            source: opts.source,
        };
        let shared = Arc::new(Shared {
            path: opts.path,
            mode: opts.mode,
            encoder,
            durability: opts.durability,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            log: Mutex::new(LogFile {
                file,
                cache: None,
                buf: Vec::new(),
                sealer: None,
            }),
            seal: opts.seal,
        });
        let flusher = match opts.durability {
            Durability::Buffered { max_delay, .. } => {
                let shared = Arc::clone(&shared);
                Some(
                    std::thread::Builder::new()
                        .name("nexus-audit-flush".into())
                        .spawn(move || shared.flush_periodically(max_delay))
                        .map_err(Error::io(
                            "cannot start the flush thread for",
                            Path::new(""),
                        ))?,
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
        &self.shared.encoder.redactor
    }

    /// Appends one event. See [`Logger::append_batch`].
    ///
    /// # Errors
    ///
    /// As [`Logger::append_batch`].
    pub fn append(&self, event: Event) -> Result<Receipt> {
        let body = self.shared.encoder.encode(event)?;
        self.shared.commit(vec![body])
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
        self.shared.commit(bodies)
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
            .commit(records.into_iter().map(|Encoded(body)| body).collect())
    }

    /// Writes every queued record now (buffered mode) and returns once they are synced.
    ///
    /// # Errors
    ///
    /// The write's error, or that of an earlier background write.
    pub fn flush(&self) -> Result<()> {
        if matches!(self.shared.durability, Durability::Buffered { .. }) {
            self.shared.wait_for(Vec::new()).map(drop)
        } else {
            Ok(())
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
        if log.file.is_none() {
            // Another process may have created it since.
            log.file = open_existing_log_file(path)?;
        }
        let Some(file) = &log.file else {
            return Ok(None);
        };
        let _guard = FileLock::shared(file).map_err(Error::io("cannot lock", path))?;
        let len = file_len(file, path)?;
        let tail = read_tail(file, len, path)?;
        tail.head(path)
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
    fn commit(&self, bodies: Vec<Vec<u8>>) -> Result<Receipt> {
        if let Durability::Buffered { max_records, .. } = self.durability {
            let mut q = lock(&self.queue);
            if let Some(message) = q.background_error.take() {
                return Err(Error::GroupWrite {
                    path: self.path.clone(),
                    message,
                });
            }
            if q.shutdown && q.batches.is_empty() && !q.leader {
                // Dropped logger's flusher is gone; write synchronously.
                drop(q);
                return self
                    .wait_for(bodies)
                    .map(|records| Receipt::Written { records });
            }
            q.queued_records += bodies.len();
            q.batches.push_back(Batch {
                ticket: None,
                bodies,
            });
            if q.queued_records >= max_records && !q.leader {
                let _ = self.lead(q, None);
            }
            return Ok(Receipt::Queued);
        }
        self.wait_for(bodies)
            .map(|records| Receipt::Written { records })
    }

    /// Queues `bodies` with a ticket and returns once a leader (perhaps this thread) wrote them.
    fn wait_for(&self, bodies: Vec<Vec<u8>>) -> Result<Vec<Head>> {
        let mut q = lock(&self.queue);
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.queued_records += bodies.len();
        q.batches.push_back(Batch {
            ticket: Some(ticket),
            bodies,
        });
        loop {
            if let Some(result) = q.done.remove(&ticket) {
                return result.map_err(|message| Error::GroupWrite {
                    path: self.path.clone(),
                    message,
                });
            }
            if q.leader {
                q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            } else {
                let (guard, mine) = self.lead(q, Some(ticket));
                if let Some(result) = mine {
                    return result;
                }
                q = guard;
            }
        }
    }

    /// Writes everything queued, as leader. Returns the queue lock again and, when `mine` was
    /// among the batches, its own result (with the original error, not its text).
    fn lead<'a>(
        &'a self,
        mut q: MutexGuard<'a, Queue>,
        mine: Option<u64>,
    ) -> (MutexGuard<'a, Queue>, Option<Result<Vec<Head>>>) {
        let batches: Vec<Batch> = q.batches.drain(..).collect();
        q.queued_records = 0;
        q.leader = true;
        drop(q);

        let result = self.write_batches(&batches);

        let mut q = lock(&self.queue);
        q.leader = false;
        let mut own = None;
        match result {
            Ok(per_batch) => {
                for (batch, heads) in batches.iter().zip(per_batch) {
                    match batch.ticket {
                        Some(t) if Some(t) == mine => own = Some(Ok(heads)),
                        Some(t) => {
                            q.done.insert(t, Ok(heads));
                        }
                        None => {}
                    }
                }
            }
            Err(err) => {
                let message = err.to_string();
                let mut err = Some(err);
                let mut unwritten = Vec::new();
                for batch in batches {
                    match batch.ticket {
                        Some(t) if Some(t) == mine => {
                            own = err.take().map(Err);
                        }
                        Some(t) => {
                            q.done.insert(t, Err(message.clone()));
                        }
                        // NOTE: buffered records nobody waits for are kept for the next write,
                        // and the error is reported to the next caller.
                        None => unwritten.push(batch),
                    }
                }
                if !unwritten.is_empty() {
                    q.queued_records += unwritten.iter().map(|b| b.bodies.len()).sum::<usize>();
                    for batch in unwritten.into_iter().rev() {
                        q.batches.push_front(batch);
                    }
                    q.background_error = Some(message);
                }
            }
        }
        self.wake.notify_all();
        (q, own)
    }

    fn flush_periodically(&self, every: Duration) {
        let mut q = lock(&self.queue);
        loop {
            if q.shutdown {
                return;
            }
            q = self
                .wake
                .wait_timeout(q, every)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if !q.leader && q.batches.iter().any(|b| b.ticket.is_none()) {
                q = self.lead(q, None).0;
            }
        }
    }

    /// Writes the batches as consecutive records under the exclusive lock, with one `write`.
    ///
    /// Everything that can refuse the write (the head, the seal key, `seq` running out) is
    /// checked before the file is changed; a torn tail is quarantined only once the records
    /// that follow it are ready.
    fn write_batches(&self, batches: &[Batch]) -> Result<Vec<Vec<Head>>> {
        let path = self.path.as_path();
        let mut log = lock(&self.log);
        let log = &mut *log;
        if log.file.is_none() {
            log.file = Some(create_log_file(path, self.mode)?);
        }
        let Some(file) = log.file.as_ref() else {
            return Err(Error::Closed {
                path: path.to_path_buf(),
            });
        };
        let _guard = FileLock::exclusive(file).map_err(Error::io("cannot lock", path))?;
        let len = file_len(file, path)?;

        // What this handle knows of the file holds only if nobody else wrote since.
        let cached = log
            .cache
            .take()
            .filter(|(cached_len, _)| *cached_len == len);
        let cached_sealer = log.sealer.take().filter(|_| cached.is_some());
        let (mut start_len, mut head, recovered) = match cached {
            Some((_, head)) => (len, head, None),
            None => {
                let tail = read_tail(file, len, path)?;
                let head = tail.head(path)?;
                if tail.complete_len < len {
                    let recovered = self.torn_tail(file, &tail, len)?;
                    (tail.complete_len, head, Some(recovered))
                } else {
                    (len, head, None)
                }
            }
        };
        let mut sealer = match (&self.seal, cached_sealer) {
            (Some(_), Some(s)) => Some(s),
            (Some(opts), None) => Some(Sealer::load(opts, head.map(|h| h.seq))?),
            (None, _) => None,
        };

        let total: usize = batches
            .iter()
            .flat_map(|b| &b.bodies)
            .map(|b| b.len() + 100)
            .sum();
        let mut buf = std::mem::take(&mut log.buf);
        buf.clear();
        buf.reserve(total + 1024);
        let last_before = head.map_or(0, |h| h.seq);
        let recovered_body = recovered.as_ref().map(|r| r.body.as_slice());
        let source = self.encoder.source.as_str();
        let Ok(per_batch) = chain_all(
            &mut buf,
            recovered_body,
            batches,
            &mut head,
            &mut sealer,
            source,
        ) else {
            return Err(Error::SeqExhausted {
                path: path.to_path_buf(),
                last: last_before,
            });
        };
        let sealing = sealer.as_ref().is_some_and(Sealer::sealed);
        if let Some(s) = sealer.as_ref().filter(|_| sealing) {
            s.before_write()?;
        }
        if let Some(recovered) = &recovered {
            self.quarantine(file, recovered)?;
        }

        let torn = recovered.as_ref().map(|r| r.torn.as_slice());
        if let Err(err) = (&*file).write_all(&buf) {
            roll_back(file, start_len, torn);
            return Err(Error::io("cannot write to", path)(err));
        }
        // Seals are always synced: the key must not move past seals a crash could lose.
        if (sealing || !matches!(self.durability, Durability::None))
            && let Err(err) = file.sync_data()
        {
            roll_back(file, start_len, torn);
            return Err(Error::io("cannot sync", path)(err));
        }
        start_len += buf.len() as u64;
        log.cache = Some((start_len, head));
        if let Some(mut s) = sealer {
            // NOTE: if the key file cannot be moved forward now, the records are written all
            // the same; it still says the seals are pending and the next write finishes that.
            if s.after_write().is_ok() {
                log.sealer = Some(s);
            }
        }
        // Keep up to 16 MiB for the next write; a rare larger batch gives its memory back.
        if buf.capacity() <= 16 << 20 {
            log.buf = buf;
        }
        Ok(per_batch)
    }

    /// Reads the torn tail of a log whose complete lines end at `tail.complete_len`, and makes
    /// the `log_recovered` record for it. Changes nothing.
    ///
    /// A file with no complete line is the log's first record torn only when its bytes begin
    /// like one; anything else is a file that is not a log, refused with [`Error::NotALog`].
    fn torn_tail(&self, file: &File, tail: &Tail, len: u64) -> Result<Recovered> {
        let path = self.path.as_path();
        let torn_len = len - tail.complete_len;
        let mut torn = vec![0u8; usize::try_from(torn_len).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut torn, tail.complete_len)
            .map_err(Error::io("cannot read the torn tail of", path))?;
        if tail.last_line.is_none() && !chain::starts_like_a_record(&torn) {
            return Err(Error::NotALog {
                path: path.to_path_buf(),
                len,
            });
        }
        let digest = hex::encode(chain::hash_line(&torn));
        let name = format!(
            "{}.torn-{}-{}",
            path.file_name()
                .map_or_else(|| "audit.jsonl".into(), |n| n.to_string_lossy()),
            tail.complete_len,
            &digest[..16]
        );
        let body = self.encoder.encode(
            Event::new("log_recovered")
                .level("warn")
                .status("error")
                .error_type("torn_tail")
                .details(json!({
                    "torn_bytes": torn_len,
                    "torn_sha256": digest,
                    "torn_offset": tail.complete_len,
                    "quarantine_file": name,
                })),
        )?;
        Ok(Recovered {
            body,
            torn,
            offset: tail.complete_len,
            name,
        })
    }

    /// Copies a torn tail to its quarantine file beside the log, synced, then truncates the log
    /// to its last LF. A quarantine file that cannot be written whole is removed again: the
    /// torn bytes stay in the log until a later append can move them.
    fn quarantine(&self, file: &File, r: &Recovered) -> Result<()> {
        let path = self.path.as_path();
        let qpath = path.with_file_name(&r.name);
        let mut qfile = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&qpath)
            .map_err(Error::io("cannot create the quarantine file", &qpath))?;
        if let Err(err) = qfile.write_all(&r.torn).and_then(|()| qfile.sync_all()) {
            drop(qfile);
            // NOTE: the file is ours (just created or truncated); an empty or partial copy
            // must not stay behind looking like evidence.
            let _ = std::fs::remove_file(&qpath);
            return Err(Error::io("cannot write the quarantine file", &qpath)(err));
        }
        sync_parent_dir(&qpath)?;
        file.set_len(r.offset)
            .map_err(Error::io("cannot truncate the torn tail of", path))?;
        if let Err(err) = file.sync_data() {
            roll_back(file, r.offset, Some(&r.torn));
            return Err(Error::io("cannot truncate the torn tail of", path)(err));
        }
        Ok(())
    }
}

/// A torn tail, to be moved to its quarantine file, and the record that says so.
struct Recovered {
    /// The body of the `log_recovered` record.
    body: Vec<u8>,
    /// The torn bytes, as cut from the log.
    torn: Vec<u8>,
    /// Where they start: the length of the log's complete lines.
    offset: u64,
    /// The quarantine file's name, beside the log.
    name: String,
}

/// The next record would need a `seq` past `u64::MAX`.
#[derive(Debug)]
struct SeqOverflow;

/// Undoes a failed append: cuts the log back to `len`, where the append began, so no half line
/// is left for the next append to merge with. When the append had cut a torn tail (already
/// copied to its quarantine file), the torn bytes are put back too: otherwise the quarantine
/// would never be recorded in the chain. The next append quarantines them again, to the same
/// file name, and writes the `log_recovered` record then.
fn roll_back(file: &File, len: u64, torn: Option<&[u8]>) {
    // NOTE: errors are ignored: the append's own error is what the caller needs. If the cut
    // fails, the next writer finds the partial line as a torn tail and quarantines it.
    if file.set_len(len).is_err() {
        return;
    }
    // The file is opened with O_APPEND: this write lands at `len`, the new end.
    if let Some(torn) = torn
        && (&*file).write_all(torn).is_err()
    {
        let _ = file.set_len(len);
    }
}

/// Opens the log if it exists: `None` when it does not yet, but its directory does.
fn open_existing_log_file(path: &Path) -> Result<Option<File>> {
    match open_log_file(path, OpenOptions::new().read(true).append(true)) {
        Ok(file) => Ok(Some(file)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            // The directory must be there, and writable, so a wrong path fails at once, not at
            // the first write (a fail-closed caller wants to know before it starts).
            let dir = parent_dir(path);
            if !dir.is_dir() {
                return Err(Error::io("cannot open", path)(source));
            }
            use rustix::fs::{Access, AtFlags, CWD, accessat};
            accessat(
                CWD,
                dir,
                Access::WRITE_OK | Access::EXEC_OK,
                AtFlags::EACCESS,
            )
            .map_err(|e| Error::io("cannot create", path)(e.into()))?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Opens the log, creating it with `mode` if needed.
fn create_log_file(path: &Path, mode: u32) -> Result<File> {
    let file = open_log_file(
        path,
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(mode),
    )?;
    // IMPORTANT: the file may have just been created; sync its directory so the entry itself
    // survives a crash, or a synced record could vanish with the file.
    sync_parent_dir(path)?;
    Ok(file)
}

/// Opens the log with `options`, never through a symbolic link, and only if it is a regular
/// file.
fn open_log_file(path: &Path, options: &mut OpenOptions) -> Result<File> {
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::Symlink {
                path: path.to_path_buf(),
            },
            Some(libc::EISDIR) => Error::NotAFile {
                path: path.to_path_buf(),
            },
            _ => Error::io("cannot open", path)(e),
        })?;
    let meta = file.metadata().map_err(Error::io("cannot stat", path))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("cannot sync the directory", dir))
}

fn file_len(file: &File, path: &Path) -> Result<u64> {
    Ok(file
        .metadata()
        .map_err(Error::io("cannot stat", path))?
        .len())
}

/// The end of a log, read backwards from its length.
#[derive(Debug)]
pub(crate) struct Tail {
    /// Length up to and including the last LF (0 if none).
    pub complete_len: u64,
    /// Offset of the last complete line.
    pub last_line_offset: u64,
    /// The last complete line, without LF; `None` for a log with no complete line.
    pub last_line: Option<Vec<u8>>,
}

impl Tail {
    /// The head this tail ends with.
    pub(crate) fn head(&self, path: &Path) -> Result<Option<Head>> {
        let Some(line) = &self.last_line else {
            return Ok(None);
        };
        let bad = |reason: &str| Error::BadHead {
            path: path.to_path_buf(),
            offset: self.last_line_offset,
            reason: reason.to_owned(),
        };
        let fields = match chain::chain_prefix(line) {
            Some(f) => f,
            None => chain::chain_fields(line).map_err(|e| match e {
                chain::ChainError::BadUtf8 => bad("is not valid UTF-8"),
                chain::ChainError::BadJson if line.is_empty() => bad("is empty"),
                chain::ChainError::BadJson => bad("is not valid JSON"),
                chain::ChainError::NotObject => bad("is not a JSON object"),
                chain::ChainError::MissingChainFields => bad(
                    "has no chain fields (seq, prev_hash): an old unchained Nexus-MCP log cannot be extended; start a new file",
                ),
            })?,
        };
        Ok(Some(Head {
            seq: fields.seq,
            hash: chain::hash_line(line),
        }))
    }
}

/// Reads the last complete line of a file of length `len` without reading the whole file:
/// 64 KiB from the end, doubling until the line's start is found.
pub(crate) fn read_tail(file: &File, len: u64, path: &Path) -> Result<Tail> {
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0u8; usize::try_from(len - start).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, start)
            .map_err(Error::io("cannot read the end of", path))?;
        let last_lf = memchr::memrchr(b'\n', &buf);
        let Some(last_lf) = last_lf else {
            if start == 0 {
                return Ok(Tail {
                    complete_len: 0,
                    last_line_offset: 0,
                    last_line: None,
                });
            }
            window = window.saturating_mul(2);
            continue;
        };
        match memchr::memrchr(b'\n', &buf[..last_lf]) {
            Some(prev_lf) => {
                return Ok(Tail {
                    complete_len: start + last_lf as u64 + 1,
                    last_line_offset: start + prev_lf as u64 + 1,
                    last_line: Some(buf[prev_lf + 1..last_lf].to_vec()),
                });
            }
            None if start == 0 => {
                return Ok(Tail {
                    complete_len: last_lf as u64 + 1,
                    last_line_offset: 0,
                    last_line: Some(buf[..last_lf].to_vec()),
                });
            }
            None => window = window.saturating_mul(2),
        }
    }
}

/// Chains the `log_recovered` record (if any) and every batch onto `head` into `buf`, with the
/// seals that fall due; returns each batch's `(seq, hash)`s.
fn chain_all(
    buf: &mut Vec<u8>,
    recovered: Option<&[u8]>,
    batches: &[Batch],
    head: &mut Option<Head>,
    sealer: &mut Option<Sealer>,
    source: &str,
) -> Result<Vec<Vec<Head>>, SeqOverflow> {
    // Chains one body onto `head`; with sealing, a seal follows every `every` records.
    let mut push = |body: &[u8], head: &mut Option<Head>| {
        let written = chain_onto(buf, body, head)?;
        if let Some(s) = sealer.as_mut()
            && s.count()
        {
            let seq = written.seq.checked_add(1).ok_or(SeqOverflow)?;
            let seal = s.seal_body(seq, &written.hash, source);
            chain_onto(buf, &seal, head)?;
        }
        Ok(written)
    };
    if let Some(body) = recovered {
        push(body, head)?;
    }
    let per_batch = batches
        .iter()
        .map(|b| {
            b.bodies
                .iter()
                .map(|body| push(body, head))
                .collect::<Result<Vec<Head>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(s) = sealer.as_mut()
        && s.due_at_end()
        && let Some(h) = *head
    {
        let seq = h.seq.checked_add(1).ok_or(SeqOverflow)?;
        let seal = s.seal_body(seq, &h.hash, source);
        chain_onto(buf, &seal, head)?;
    }
    Ok(per_batch)
}

/// Appends `{"seq":N,"prev_hash":"…",` + `body` + LF to `buf`, chained onto `head`, and
/// moves `head` to the new line. Refuses to go past `seq` `u64::MAX`.
fn chain_onto(
    buf: &mut Vec<u8>,
    body: &[u8],
    head: &mut Option<Head>,
) -> Result<Head, SeqOverflow> {
    let (seq, prev) = match *head {
        Some(h) => (h.seq.checked_add(1).ok_or(SeqOverflow)?, h.hash),
        None => (0, GENESIS_HASH),
    };
    let start = buf.len();
    chain::write_prefix(buf, seq, &prev);
    buf.extend_from_slice(body);
    let hash = chain::hash_line(&buf[start..]);
    buf.push(b'\n');
    *head = Some(Head { seq, hash });
    Ok(Head { seq, hash })
}
