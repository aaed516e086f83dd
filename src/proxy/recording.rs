//! The recording thread: every append of the proxy goes through one queue to one thread, which
//! takes all that is queued, appends it as one batch (one write, and with `sync` one
//! `fdatasync`), and then releases in order what waited on it: the server's lines to relay
//! (under `--fail-closed`, refusals in place of the answers whose records could not be written) and the callers
//! waiting to know whether their records were written. So calls answered together share one
//! sync, and the log's order is the order in which records were queued.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};

use super::Shared;
use super::calls::unwritable;
use crate::record::Event;

/// Jobs queued at most (the relay threads wait when it is full).
pub(super) const QUEUE: usize = 1024;
/// Bytes of server lines queued at most before the relay waits for them to be relayed.
pub(super) const QUEUED_BYTES: usize = 8 << 20;
/// Jobs appended together at most.
const BATCH: usize = 4096;

/// Records to append and what waits on them.
pub(crate) struct Job {
    pub events: Vec<Event>,
    pub release: Release,
}

/// What to do once a job's records are written (or not).
pub(crate) enum Release {
    /// Tell the caller whether the records were written.
    Reply(SyncSender<bool>),
    /// Relay the server's line once its records are written; when they could not be, relay it
    /// all the same (fail-open) or refuse the calls with these ids (`--fail-closed`).
    Answer { line: Vec<u8>, ids: Vec<String> },
    /// A server line without records, relayed in its turn.
    Line(Vec<u8>),
}

impl Release {
    /// The bytes of server line it holds.
    pub(super) fn bytes(&self) -> usize {
        match self {
            Release::Reply(_) => 0,
            Release::Answer { line, .. } | Release::Line(line) => line.len(),
        }
    }
}

/// The thread's loop: runs until every sender is gone and the queue is empty.
pub(super) fn run(shared: &Shared, jobs: &Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        process(shared, batch);
    }
}

/// Appends a batch's records at once, then releases what waited on them, in order.
pub(super) fn process(shared: &Shared, mut batch: Vec<Job>) {
    let events: Vec<Event> = batch
        .iter_mut()
        .flat_map(|job| std::mem::take(&mut job.events))
        .collect();
    let written = shared.rec.write(events);
    for job in batch {
        let bytes = job.release.bytes();
        match job.release {
            Release::Reply(tx) => {
                let _ = tx.send(written);
            }
            Release::Answer { line, .. } if written || !shared.rec.opts().fail_closed => {
                shared.forward(&line);
            }
            Release::Answer { ids, .. } => {
                let refusals: Vec<u8> = ids
                    .into_iter()
                    .flat_map(|id| unwritable(Some(id), true).line())
                    .collect();
                shared.forward(&refusals);
            }
            Release::Line(line) => shared.forward(&line),
        }
        shared.queued.fetch_sub(bytes, Ordering::Relaxed);
    }
}
