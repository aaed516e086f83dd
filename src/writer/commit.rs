//! Group commit: appenders queue their encoded records; the first one that finds no write in
//! progress becomes the leader and writes everything queued, for all of them. No I/O happens
//! here: the leader hands the batches to [`Shared::write_batches`].
//!
//! With `sync`, a leader first *gathers*: when the previous write was shared by several
//! appenders, it waits (a bounded time: a quarter of that write's duration) until as many are
//! queued again. Without it, the appenders of one write come back while the next one, with
//! whoever queued meanwhile, is syncing, and the writes alternate between two halves of them;
//! with it, they share one `fdatasync`. One appender never waits.

use std::collections::{HashMap, VecDeque};
use std::sync::{MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Durability, Receipt, Shared, lock};
use crate::chain::Head;
use crate::error::{Error, Result};

/// The records waiting for a leader, and the results it hands back.
#[derive(Debug, Default)]
pub(super) struct Queue {
    batches: VecDeque<Batch>,
    queued_records: usize,
    next_ticket: u64,
    leader: bool,
    done: HashMap<u64, Result<Vec<Head>, Failure>>,
    background_error: Option<Failure>,
    pub(super) shutdown: bool,
    /// The appenders of the last `sync` write: those it wrote and those that queued while it
    /// ran.
    round: usize,
    /// How long the last `sync` write took (its `write` and `fdatasync`).
    last_write: Duration,
    /// A leader is gathering until this many appenders wait: the one to reach it wakes it.
    gather_target: Option<usize>,
    /// Threads asleep on `Shared::wake`: a leader with none to wake makes no system call.
    sleepers: usize,
}

impl Queue {
    /// The appenders waiting for a write (buffered records nobody waits for are not counted).
    fn waiting(&self) -> usize {
        self.batches.iter().filter(|b| b.ticket.is_some()).count()
    }
}

/// A leader gathers for at most this long, whatever the last write took.
const MAX_GATHER: Duration = Duration::from_millis(2);

/// The records of one append call, written together.
#[derive(Debug)]
pub(super) struct Batch {
    /// `None` for buffered records nobody waits for.
    ticket: Option<u64>,
    pub(super) bodies: Vec<Vec<u8>>,
}

/// A leader's error as the other appenders of its write get it: its sentence, and the kind of
/// I/O error behind it, so [`Error::io_kind`] still tells a full disk from a lost lock.
#[derive(Clone, Debug)]
struct Failure {
    message: String,
    kind: Option<std::io::ErrorKind>,
}

impl Failure {
    fn of(err: &Error) -> Self {
        Failure {
            message: err.to_string(),
            kind: err.io_kind(),
        }
    }

    fn into_error(self, path: &std::path::Path) -> Error {
        Error::GroupWrite {
            path: path.to_path_buf(),
            message: self.message,
            kind: self.kind,
        }
    }
}

impl Shared {
    pub(super) fn commit(&self, bodies: Vec<Vec<u8>>) -> Result<Receipt> {
        if let Durability::Buffered { max_records, .. } = self.durability {
            let mut q = lock(&self.queue);
            if let Some(failure) = q.background_error.take() {
                return Err(failure.into_error(&self.path));
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
    pub(super) fn wait_for(&self, bodies: Vec<Vec<u8>>) -> Result<Vec<Head>> {
        let mut q = lock(&self.queue);
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.queued_records += bodies.len();
        q.batches.push_back(Batch {
            ticket: Some(ticket),
            bodies,
        });
        if q.gather_target.is_some_and(|target| q.waiting() >= target) {
            q.gather_target = None;
            self.gathered.notify_one();
        }
        loop {
            if let Some(result) = q.done.remove(&ticket) {
                return result.map_err(|failure| failure.into_error(&self.path));
            }
            if q.leader {
                q.sleepers += 1;
                q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
                q.sleepers -= 1;
            } else {
                if self.durability == Durability::Sync {
                    q = self.gather(q);
                }
                let (guard, mine) = self.lead(q, Some(ticket));
                if let Some(result) = mine {
                    return result;
                }
                q = guard;
            }
        }
    }

    /// As the next leader, waits until as many appenders as shared the last write are queued
    /// again, for at most a quarter of that write's duration (and [`MAX_GATHER`]). Others that
    /// come meanwhile wait for this leader.
    fn gather<'a>(&'a self, mut q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        let target = q.round;
        let budget = (q.last_write / 4).min(MAX_GATHER);
        if target <= 1 || q.waiting() >= target || budget.is_zero() {
            return q;
        }
        q.leader = true;
        let start = Instant::now();
        while q.waiting() < target {
            let left = budget.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            q.gather_target = Some(target);
            q = self
                .gathered
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        q.gather_target = None;
        q.leader = false;
        q
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

        // Only `sync` gathers, so only it reads the clock.
        let started = (self.durability == Durability::Sync).then(Instant::now);
        let result = self.write_batches(&batches);
        let took = started.map(|t| t.elapsed());

        let mut q = lock(&self.queue);
        q.leader = false;
        if let Some(took) = took.filter(|_| mine.is_some()) {
            q.round = batches.iter().filter(|b| b.ticket.is_some()).count() + q.waiting();
            q.last_write = took;
        }
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
                let failure = Failure::of(&err);
                let mut err = Some(err);
                let mut unwritten = Vec::new();
                for batch in batches {
                    match batch.ticket {
                        Some(t) if Some(t) == mine => {
                            own = err.take().map(Err);
                        }
                        Some(t) => {
                            q.done.insert(t, Err(failure.clone()));
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
                    q.background_error = Some(failure);
                }
            }
        }
        if q.sleepers > 0 {
            self.wake.notify_all();
        }
        (q, own)
    }

    pub(super) fn flush_periodically(&self, every: Duration) {
        let mut q = lock(&self.queue);
        loop {
            if q.shutdown {
                return;
            }
            q.sleepers += 1;
            q = self
                .wake
                .wait_timeout(q, every)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            q.sleepers -= 1;
            if !q.leader && q.batches.iter().any(|b| b.ticket.is_none()) {
                q = self.lead(q, None).0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::path::Path;

    /// An appender whose records a leader failed to write learns the leader's sentence and the
    /// kind of I/O error behind it.
    #[test]
    fn a_follower_gets_the_leaders_error_and_its_kind() {
        let path = Path::new("/var/log/audit.jsonl");
        let leader =
            Error::io("cannot write to", path)(io::Error::from(io::ErrorKind::StorageFull));
        let follower = Failure::of(&leader).into_error(path);
        assert_eq!(follower.io_kind(), Some(io::ErrorKind::StorageFull));
        assert_eq!(
            follower.to_string(),
            "a shared write to /var/log/audit.jsonl failed: cannot write to /var/log/audit.jsonl"
        );
        let refused = Error::NotALog {
            path: path.to_path_buf(),
            len: 3,
        };
        assert_eq!(Failure::of(&refused).into_error(path).io_kind(), None);
    }
}
