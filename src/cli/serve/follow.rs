//! The follower: one thread that watches the log and keeps what must not be recomputed per
//! request: the Prometheus counters, the count of records (the total of an unfiltered query),
//! the lines for the live stream, and the incremental verification.
//!
//! It polls the file every [`POLL`]. Growth is read with plain reads from where it stopped; a
//! new file at the path (rotation) is read from its start after what the old one still had;
//! a file that shrank, or changed without growing, was rewritten and is counted afresh.

use std::fs::{File, Metadata};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use super::error::ApiError;
use super::metrics::{Counters, Tally};
use super::verifier::Verifier;

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(100);
/// The most read at once.
const READ: u64 = 16 << 20;
/// Batches of new lines the stream keeps for a slow subscriber before it skips ahead.
const STREAM_BACKLOG: usize = 1024;

/// What the follower shares with the handlers.
pub struct Live {
    state: Mutex<LiveState>,
    ready: watch::Sender<bool>,
    lines: broadcast::Sender<Bytes>,
}

#[derive(Default)]
struct LiveState {
    counters: Counters,
    /// The file counted: (device, inode).
    key: Option<(u64, u64)>,
    /// Bytes of complete lines counted in that file.
    pos: u64,
    /// Lines among them that are records.
    records: u64,
}

/// Where the follower is in the file.
struct Tail {
    file: File,
    key: (u64, u64),
    pos: u64,
    len_seen: u64,
    mtime_seen: (i64, i64),
}

fn key_of(m: &Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn mtime_of(m: &Metadata) -> (i64, i64) {
    (m.mtime(), m.mtime_nsec())
}

impl Live {
    /// Starts the follower thread.
    pub fn start(path: PathBuf, verifier: Arc<Verifier>) -> anyhow::Result<Arc<Live>> {
        let (ready, _) = watch::channel(false);
        let (lines, _) = broadcast::channel(STREAM_BACKLOG);
        let live = Arc::new(Live {
            state: Mutex::new(LiveState::default()),
            ready,
            lines,
        });
        let follower = Follower {
            live: Arc::clone(&live),
            path,
            verifier,
        };
        std::thread::Builder::new()
            .name("nexus-audit-follow".into())
            .spawn(move || follower.run())
            .context("cannot start the thread that follows the log")?;
        Ok(live)
    }

    fn lock(&self) -> MutexGuard<'_, LiveState> {
        // NOTE: a panic while counting would poison the lock; the counts are still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the log has been read once (and verified), at most `limit`.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), ApiError> {
        let mut rx = self.ready.subscribe();
        match tokio::time::timeout(limit, rx.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::Unavailable(
                "the server is still reading the log; try again shortly".into(),
            )),
        }
    }

    /// Runs `f` on the counters.
    pub fn with_counters<T>(&self, f: impl FnOnce(&Counters) -> T) -> T {
        f(&self.lock().counters)
    }

    /// New complete lines as they are appended, in batches.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.lines.subscribe()
    }

    /// The number of records in the first `len` bytes of the file `key`, when the follower
    /// has counted at least that far into that very file: `(bytes counted, records)`.
    pub fn counted(&self, key: (u64, u64), len: u64) -> Option<(u64, u64)> {
        let st = self.lock();
        (st.key == Some(key) && st.pos <= len).then_some((st.pos, st.records))
    }
}

struct Follower {
    live: Arc<Live>,
    path: PathBuf,
    verifier: Arc<Verifier>,
}

impl Follower {
    fn run(self) {
        let mut tail: Option<Tail> = None;
        loop {
            self.step(&mut tail);
            // The verifier answers from its cache unless the file changed or a full
            // re-check is due.
            let _ = self.verifier.refresh();
            self.live.ready.send_replace(true);
            std::thread::sleep(POLL);
        }
    }

    fn step(&self, tail: &mut Option<Tail>) {
        let meta = std::fs::metadata(&self.path).ok();
        match (tail.as_mut(), meta) {
            (None, None) => {}
            (None, Some(_)) => *tail = self.open(false),
            (Some(t), None) => self.read_new(t),
            (Some(t), Some(m)) if key_of(&m) != t.key => {
                // Rotated: what the old file still had, then the new one from its start.
                self.read_new(t);
                *tail = self.open_rotated();
            }
            (Some(t), Some(m))
                if m.len() < t.pos || (m.len() == t.len_seen && mtime_of(&m) != t.mtime_seen) =>
            {
                // Rewritten in place: count it afresh.
                let _ = t;
                *tail = self.open(true);
            }
            (Some(t), Some(m)) => {
                if m.len() != t.len_seen || mtime_of(&m) != t.mtime_seen {
                    self.read_new(t);
                    t.len_seen = m.len();
                    t.mtime_seen = mtime_of(&m);
                }
            }
        }
    }

    /// Opens the file and counts all of it at once (in parallel), without streaming it.
    fn open(&self, afresh: bool) -> Option<Tail> {
        let file = File::open(&self.path).ok()?;
        let meta = file.metadata().ok()?;
        let snapshot = crate::Snapshot::open(&self.path).ok()?;
        if std::fs::metadata(&self.path).ok().map(|m| key_of(&m)) != Some(key_of(&meta)) {
            return None; // replaced meanwhile: try again at the next poll
        }
        let data = snapshot.data();
        let tally = Tally::of(data);
        let records = tally.valid;
        let mut st = self.live.lock();
        if afresh {
            st.counters = Counters::default();
        }
        st.counters.add(tally);
        st.key = Some(key_of(&meta));
        st.pos = data.len() as u64;
        st.records = records;
        Some(Tail {
            file,
            key: key_of(&meta),
            pos: data.len() as u64,
            len_seen: meta.len(),
            mtime_seen: mtime_of(&meta),
        })
    }

    /// A new file at the path: read from its start like an append, so its records stream.
    fn open_rotated(&self) -> Option<Tail> {
        let file = File::open(&self.path).ok()?;
        let meta = file.metadata().ok()?;
        {
            let mut st = self.live.lock();
            st.key = Some(key_of(&meta));
            st.pos = 0;
            st.records = 0;
        }
        let mut t = Tail {
            file,
            key: key_of(&meta),
            pos: 0,
            len_seen: meta.len(),
            mtime_seen: mtime_of(&meta),
        };
        self.read_new(&mut t);
        Some(t)
    }

    /// Reads the complete lines appended since `t.pos`, counts and streams them. An
    /// incomplete last line is left to be read again once it is whole.
    fn read_new(&self, t: &mut Tail) {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let start = t.pos + buf.len() as u64;
            if t.file.seek(SeekFrom::Start(start)).is_err() {
                return;
            }
            let before = buf.len();
            if (&mut t.file).take(READ).read_to_end(&mut buf).is_err() {
                return;
            }
            let got = buf.len() - before;
            let Some(last_lf) = memchr::memrchr(b'\n', &buf) else {
                if got == 0 {
                    return;
                }
                continue; // one line longer than READ: read on
            };
            let complete = Bytes::copy_from_slice(&buf[..=last_lf]);
            buf.drain(..=last_lf);
            let tally = Tally::of(&complete);
            {
                let mut st = self.live.lock();
                st.records += tally.valid;
                st.pos += complete.len() as u64;
                st.counters.add(tally);
            }
            t.pos += complete.len() as u64;
            // NOTE: no subscriber is not an error.
            let _ = self.live.lines.send(complete);
            if got == 0 {
                return;
            }
        }
    }
}
