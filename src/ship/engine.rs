//! The shipping loop: read a batch after the cursor, send it until it is acknowledged (retrying
//! with capped exponential backoff and jitter, honouring `Retry-After`), then move the cursor.
//!
//! | situation | what the engine does |
//! |---|---|
//! | the destination acknowledged a batch | saves the cursor just past it, then reads the next |
//! | [`SendError::Retry`] | sends the same batch again after `Retry-After`, else after the backoff (`base × 2^attempt`, at most `cap`, a random part of it dropped); the cursor stays |
//! | [`SendError::Fatal`] | stops with the destination's sentence; the cursor stays at the last acknowledged record |
//! | the stop flag is raised (SIGINT, SIGTERM) | finishes or abandons the batch in flight without moving the cursor past it, and returns |
//! | caught up, without `follow` | returns |
//! | caught up, with `follow` | looks at the log again every `poll` (its live file and segments, by `seq`: see [`super::source`]), checking the record at the cursor is still in place |

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::filter::Filter;

use super::cursor::Cursor;
use super::source::{Position, Source};
use super::{Destination, SendError, Shipped};

/// The longest `Retry-After` honoured as given; a longer one waits this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Capped exponential backoff between attempts to send one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt + 1`: `base × 2^attempt` capped at `cap`, of which a
    /// random part up to half is dropped (jitter), so shippers that failed together do not
    /// come back together.
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.cap);
        let mut random = [0u8; 8];
        let fraction = if getrandom::fill(&mut random).is_ok() {
            f64::from(u32::from_le_bytes([
                random[0], random[1], random[2], random[3],
            ])) / f64::from(u32::MAX)
        } else {
            0.5
        };
        full.mul_f64(1.0 - fraction / 2.0)
    }
}

/// How to ship.
#[derive(Clone, Debug)]
pub struct ShipOptions {
    /// Records per batch (at least 1).
    pub batch: usize,
    /// Keep shipping as the log grows, until the stop flag is raised.
    pub follow: bool,
    /// Waits between attempts to send a batch.
    pub backoff: Backoff,
    /// With `follow`: how often to look for new records when caught up.
    pub poll: Duration,
    /// How often to report [`Event::Progress`].
    pub progress_every: Duration,
    /// Only records that pass it are shipped; the cursor moves past the others.
    pub filter: Filter,
}

impl Default for ShipOptions {
    fn default() -> Self {
        ShipOptions {
            batch: 500,
            follow: false,
            backoff: Backoff::default(),
            poll: Duration::from_millis(200),
            progress_every: Duration::from_secs(5),
            filter: Filter::default(),
        }
    }
}

/// What the engine reports while it runs (the CLI prints it on stderr).
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A batch was not acknowledged and will be sent again after `wait`.
    Retry {
        /// The destination's reason (no secret in it).
        reason: &'a str,
        /// How long the engine waits before sending it again.
        wait: Duration,
        /// The `seq` of the batch's first record.
        first_seq: u64,
        /// How many times this batch has failed.
        attempt: u32,
    },
    /// Where shipping stands.
    Progress {
        /// Records acknowledged in this run.
        shipped: u64,
        /// `seq` at the cursor.
        cursor_seq: Option<u64>,
        /// Records in the log after the cursor.
        behind_records: u64,
        /// Age of the oldest record not yet shipped (0 when caught up).
        behind_seconds: f64,
    },
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShipSummary {
    /// Records acknowledged in this run.
    pub shipped: u64,
    /// Batches acknowledged in this run.
    pub batches: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// `seq` at the cursor when the run ended.
    pub cursor_seq: Option<u64>,
    /// The run ended because the stop flag was raised.
    pub stopped: bool,
}

/// Ships the log at `log` to `dest`, from the cursor at `cursor_path` (from the start when the
/// file does not exist), reporting through `on_event`.
///
/// # Errors
///
/// [`Error::Ship`] when the destination refuses a batch for good ([`SendError::Fatal`]), when
/// the cursor belongs to another log or the log changed under it, or at a line that is not a
/// record; [`Error::Io`] when the log or the cursor cannot be read or written. The cursor is
/// always left at an acknowledged record.
pub fn ship(
    log: &Path,
    cursor_path: &Path,
    dest: &mut dyn Destination,
    opts: &ShipOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(&Event<'_>),
) -> Result<ShipSummary> {
    let mut source = Source::open(log)?;
    let mut cursor = Cursor::load(cursor_path)?;
    let mut pos = cursor.as_ref().map(Cursor::position);
    if let Some(c) = &cursor {
        check_chain(&source, c, cursor_path)?;
    }
    source.start(pos.clone())?;
    let matcher = opts.filter.matcher();
    let describe = dest.describe();
    let mut summary = ShipSummary {
        cursor_seq: pos.as_ref().map(|p| p.seq),
        ..ShipSummary::default()
    };
    let mut last_progress = Instant::now();
    let mut fresh = false;
    loop {
        if stop.load(Ordering::SeqCst) {
            summary.stopped = true;
            break;
        }
        let batch = source.read(opts.batch, &matcher)?;
        let Some(end) = batch.end else {
            if !opts.follow {
                break;
            }
            // NOTE: a snapshot read to its end is first taken again at once (the log may have
            // grown while the last batch was in flight); only a fresh one with nothing new
            // means waiting.
            if fresh {
                if last_progress.elapsed() >= opts.progress_every {
                    on_event(&progress(&source, &summary, pos.as_ref()));
                    last_progress = Instant::now();
                }
                if sleep_unless_stopped(opts.poll, stop) {
                    summary.stopped = true;
                    break;
                }
            }
            source.refresh()?;
            fresh = true;
            if let Some(c) = &cursor {
                check_chain(&source, c, cursor_path)?;
            }
            continue;
        };
        fresh = false;
        if !batch.records.is_empty() {
            match send_until_acknowledged(dest, &batch.records, opts, stop, &mut summary, on_event)?
            {
                Sent::Acknowledged => {}
                Sent::Stopped => {
                    summary.stopped = true;
                    break;
                }
            }
        }
        let chain_id = source.chain_id().unwrap_or_default().to_owned();
        let next = Cursor::at(&chain_id, &end, &describe);
        next.save(cursor_path)?;
        summary.shipped += batch.records.len() as u64;
        summary.batches += u64::from(!batch.records.is_empty());
        summary.cursor_seq = Some(end.seq);
        pos = Some(end);
        cursor = Some(next);
        if last_progress.elapsed() >= opts.progress_every {
            on_event(&progress(&source, &summary, pos.as_ref()));
            last_progress = Instant::now();
        }
    }
    if opts.follow {
        on_event(&progress(&source, &summary, pos.as_ref()));
    }
    Ok(summary)
}

enum Sent {
    Acknowledged,
    Stopped,
}

fn send_until_acknowledged(
    dest: &mut dyn Destination,
    batch: &[Shipped],
    opts: &ShipOptions,
    stop: &AtomicBool,
    summary: &mut ShipSummary,
    on_event: &mut dyn FnMut(&Event<'_>),
) -> Result<Sent> {
    let first_seq = batch.first().map_or(0, |r| r.seq);
    let mut attempt = 0u32;
    loop {
        match dest.send(batch) {
            Ok(()) => return Ok(Sent::Acknowledged),
            Err(SendError::Fatal(why)) => {
                return Err(Error::Ship(format!(
                    "{} refused the batch from seq {first_seq}: {why}; the cursor stays at the last acknowledged record",
                    dest.describe()
                )));
            }
            Err(SendError::Retry { reason, after }) => {
                attempt = attempt.saturating_add(1);
                summary.retries += 1;
                let wait = after.map_or_else(
                    || opts.backoff.delay(attempt - 1),
                    |a| a.min(MAX_RETRY_AFTER),
                );
                on_event(&Event::Retry {
                    reason: &reason,
                    wait,
                    first_seq,
                    attempt,
                });
                if sleep_unless_stopped(wait, stop) {
                    return Ok(Sent::Stopped);
                }
            }
        }
    }
}

fn check_chain(source: &Source, cursor: &Cursor, cursor_path: &Path) -> Result<()> {
    match source.chain_id() {
        Some(id) if id != cursor.chain_id => Err(Error::Ship(format!(
            "the cursor {} belongs to another log (chain {}), not to {} (chain {}): give this log its own --cursor",
            cursor_path.display(),
            cursor.chain_id.get(..16).unwrap_or(&cursor.chain_id),
            source.path().display(),
            id.get(..16).unwrap_or(id)
        ))),
        _ => Ok(()),
    }
}

fn progress<'a>(source: &Source, summary: &ShipSummary, pos: Option<&Position>) -> Event<'a> {
    let (behind_records, next) = source.lag(pos);
    let behind_seconds = if behind_records == 0 {
        0.0
    } else {
        next.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map_or(0.0, |t| {
                let age = chrono::Utc::now().signed_duration_since(t);
                age.to_std().map_or(0.0, |d| d.as_secs_f64())
            })
    };
    Event::Progress {
        shipped: summary.shipped,
        cursor_seq: pos.map(|p| p.seq),
        behind_records,
        behind_seconds,
    }
}

/// Sleeps `total`, waking every 50 ms to look at `stop`; true when it was raised.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + total;
    loop {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        for attempt in 0..30 {
            let full = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(20))
                .min(Duration::from_secs(1));
            let d = b.delay(attempt);
            assert!(d <= full && d >= full / 2, "{attempt}: {d:?}");
        }
    }
}
