//! Appending a stream of JSON lines ([`Logger::append_lines`]): what `append --stdin` does.
//!
//! Two stages overlap: the calling thread reads batch N+1 and parses and encodes it (in
//! parallel, on the rayon pool) while a writer thread chains and appends batch N. A batch is cut
//! as soon as no more input is ready, after [`MAX_DELAY`] of steady input, or once [`FILL`]
//! bytes are read: a slow producer's record is written at once, a fast one's in large batches.
//! A bad line stops the reading; the batches before it are still written. A failed write stops
//! both. A raised stop flag takes the input already waiting (for up to [`DRAIN`]), appends every
//! complete line read, and ends the reading.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::{Encoded, Logger, Receipt};
use crate::chain::Head;
use crate::error::{Error, Result};
use crate::record::{Event, PlainDefaults, Scratch};

/// Bytes read before a batch is cut, whatever else: grows while one line is longer.
const FILL: usize = 4 << 20;
/// Bytes asked of one read.
const READ: usize = 1 << 20;
/// The longest input waits for more before its batch is cut, while more keeps arriving.
const MAX_DELAY: Duration = Duration::from_millis(50);
/// How often a reader with nothing to read looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// After the stop flag: how long, and how many bytes of, input already waiting is still taken.
const DRAIN: Duration = Duration::from_secs(1);
const DRAIN_BYTES: usize = 64 << 20;

/// How [`Logger::append_lines`] reads its input.
///
/// | option | default |
/// |---|---|
/// | most records per write | 4096 |
/// | defaults for absent fields | none |
/// | the input's name in errors | `input` (`input line 7 is not valid UTF-8`) |
/// | stop flag | none: the input is read to its end |
#[derive(Clone, Debug)]
pub struct LinesOptions {
    batch: usize,
    defaults: Event,
    name: String,
    stop: Option<Arc<AtomicBool>>,
}

impl Default for LinesOptions {
    fn default() -> Self {
        LinesOptions {
            batch: 4096,
            defaults: Event::default(),
            name: "input".to_owned(),
            stop: None,
        }
    }
}

impl LinesOptions {
    /// The defaults above.
    #[must_use]
    pub fn new() -> Self {
        LinesOptions::default()
    }

    /// Writes at most `records` records per write (at least 1).
    #[must_use]
    pub fn batch(mut self, records: usize) -> Self {
        self.batch = records.max(1);
        self
    }

    /// Fills the fields a line lacks from `defaults` (see [`Event::fill_from`]).
    #[must_use]
    pub fn defaults(mut self, defaults: Event) -> Self {
        self.defaults = defaults;
        self
    }

    /// What errors call the input (`standard input line 7`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Stops the reading once `flag` is true (a signal handler may set it): the input already
    /// waiting is still taken, for up to a second and 64 MiB, and every complete line read is
    /// appended.
    #[must_use]
    pub fn stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }
}

/// What [`Logger::append_lines`] appended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinesSummary {
    /// Records appended (in buffered durability: handed to the logger's queue).
    pub appended: u64,
    /// `seq` of the first record written, if any (`None` in buffered durability).
    pub first_seq: Option<u64>,
    /// The head after the last record written, if any (`None` in buffered durability).
    pub last: Option<Head>,
    /// How the input ended.
    pub end: LinesEnd,
}

/// How the input of [`Logger::append_lines`] ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinesEnd {
    /// At its end: every line was appended.
    #[default]
    Eof,
    /// The stop flag was raised: every complete line read was appended; `cut_short` bytes of a
    /// line without its LF yet were not.
    Stopped {
        /// Bytes of the line being read when the flag was raised.
        cut_short: usize,
    },
}

impl Logger {
    /// Appends one event per line of `input` (blank lines are skipped), each a JSON object with
    /// the record's field names, until its end or until the stop flag is raised. See the module
    /// documentation for how lines are batched.
    ///
    /// `input` is read through its file descriptor (a pipe, a file, standard input), so whether
    /// more is ready can be asked of it; anything a buffered reader around it holds is not seen.
    ///
    /// # Errors
    ///
    /// [`Error::LinesStopped`] when a line is not an event ([`Error::BadLine`],
    /// [`Error::LineNotUtf8`]) or the input cannot be read ([`Error::Read`]): the lines before
    /// it were appended. [`Error::LinesWriteFailed`] when a write failed: nothing after it was
    /// written. Both say how many records were appended.
    pub fn append_lines(&self, input: impl AsFd, options: &LinesOptions) -> Result<LinesSummary> {
        let mut input = Input::open(input, &options.name)?;
        let stop = || {
            options
                .stop
                .as_ref()
                .is_some_and(|flag| flag.load(Ordering::SeqCst))
        };
        let (tx, rx) = sync_channel::<Vec<Encoded>>(1);
        let (read, progress) = std::thread::scope(|scope| {
            let writer = std::thread::Builder::new()
                .name("nexus-audit-append".into())
                .spawn_scoped(scope, move || self.write_each(&rx))
                .map_err(Error::io("cannot start the writer thread for", self.path()))?;
            let read = read_lines(&mut input, &stop, options.batch, |lines| {
                let encoded = self.encode_lines(options, lines)?;
                // A send fails only when the writer stopped on an error, reported below.
                Ok(tx.send(encoded).is_ok())
            });
            drop(tx);
            let progress = writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, Error>((read, progress))
        })?;
        let appended = progress.summary.appended;
        if let Some(err) = progress.failed {
            return Err(Error::LinesWriteFailed {
                appended,
                source: Box::new(err),
            });
        }
        let end = read.map_err(|err| Error::LinesStopped {
            appended,
            source: Box::new(err),
        })?;
        Ok(LinesSummary {
            end,
            ..progress.summary
        })
    }

    /// Parses, completes and encodes numbered input lines in parallel. An error names the
    /// first bad line.
    fn encode_lines(&self, options: &LinesOptions, lines: &[(u64, &[u8])]) -> Result<Vec<Encoded>> {
        let encoder = &self.shared.encoder;
        let plain = PlainDefaults::new(&options.defaults);
        // NOTE: asked once per batch, not per record (a system call): see `event_id_into`.
        let pid = std::process::id();
        let encoded: Vec<Result<Encoded>> = lines
            .par_iter()
            .map(|&(line, text)| {
                let bad = |source| Error::BadLine {
                    input: options.name.clone(),
                    line,
                    source: Box::new(source),
                };
                let Ok(text) = std::str::from_utf8(text) else {
                    return Err(Error::LineNotUtf8 {
                        input: options.name.clone(),
                        line,
                    });
                };
                if let Some(defaults) = &plain
                    && let Some(body) =
                        Scratch::with(|scratch| encoder.encode_plain(text, defaults, scratch, pid))
                {
                    return Ok(Encoded(body));
                }
                let mut event = Event::from_json_str(text).map_err(bad)?;
                event.fill_from(&options.defaults);
                self.encode(event).map_err(bad)
            })
            .collect();
        encoded.into_iter().collect()
    }

    /// The writer thread: appends each batch received until the channel closes or a write
    /// fails.
    fn write_each(&self, rx: &Receiver<Vec<Encoded>>) -> Progress {
        let mut p = Progress::default();
        for records in rx {
            let count = records.len() as u64;
            match self.append_encoded(records) {
                Ok(Receipt::Written { records }) => {
                    let s = &mut p.summary;
                    s.appended += count;
                    if s.first_seq.is_none() {
                        s.first_seq = records.first().map(|h| h.seq);
                    }
                    s.last = records.last().copied().or(s.last);
                }
                Ok(Receipt::Queued) => p.summary.appended += count,
                Err(err) => {
                    p.failed = Some(err);
                    break;
                }
            }
        }
        p
    }
}

/// What the writer thread has done.
#[derive(Default)]
struct Progress {
    summary: LinesSummary,
    /// The write that failed; nothing after it was written.
    failed: Option<Error>,
}

/// The input, read without a buffer of its own, so "nothing more is ready" can be asked of the
/// pipe itself.
struct Input<'a> {
    file: File,
    buf: Vec<u8>,
    eof: bool,
    name: &'a str,
}

impl<'a> Input<'a> {
    fn open(input: impl AsFd, name: &'a str) -> Result<Self> {
        let fd = input
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| read_error(name, source))?;
        Ok(Input {
            file: File::from(fd),
            buf: Vec::with_capacity(FILL + READ),
            eof: false,
            name,
        })
    }

    /// Waits up to `timeout` for input (or its end); true when a read would not block.
    fn ready(&self, timeout: Duration) -> Result<bool> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        if self.eof {
            return Ok(false);
        }
        let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
        let timeout = Timespec::try_from(timeout)
            .map_err(|e| read_error(self.name, io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        match poll(&mut fds, Some(&timeout)) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(read_error(self.name, e.into())),
        }
    }

    /// Reads what is there, once.
    fn read_some(&mut self) -> Result<()> {
        let filled = self.buf.len();
        self.buf.resize(filled + READ, 0);
        let n = loop {
            match self.file.read(&mut self.buf[filled..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        self.buf.truncate(filled + *n.as_ref().unwrap_or(&0));
        if n.map_err(|e| read_error(self.name, e))? == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

fn read_error(name: &str, source: io::Error) -> Error {
    Error::Read {
        input: name.to_owned(),
        source,
    }
}

/// Reads the input and hands its non-blank lines, numbered, to `send` in groups of at most
/// `batch`; `send` returns false to stop.
fn read_lines(
    input: &mut Input<'_>,
    stop: &impl Fn() -> bool,
    batch: usize,
    mut send: impl FnMut(&[(u64, &[u8])]) -> Result<bool>,
) -> Result<LinesEnd> {
    let mut line_no: u64 = 0;
    let mut want = FILL;
    // When the input not yet handed on began to wait.
    let mut since: Option<Instant> = None;
    loop {
        if stop() {
            let deadline = Instant::now() + DRAIN;
            while Instant::now() < deadline
                && input.buf.len() < DRAIN_BYTES
                && input.ready(Duration::ZERO)?
            {
                input.read_some()?;
            }
            let end = if input.eof {
                input.buf.len()
            } else {
                memchr::memrchr(b'\n', &input.buf).map_or(0, |i| i + 1)
            };
            hand_on(&input.buf[..end], &mut line_no, batch, &mut send)?;
            return Ok(LinesEnd::Stopped {
                cut_short: input.buf.len() - end,
            });
        }
        if input.eof {
            hand_on(&input.buf, &mut line_no, batch, &mut send)?;
            return Ok(LinesEnd::Eof);
        }
        let ready = input.ready(if since.is_some() {
            Duration::ZERO
        } else {
            TICK
        })?;
        if ready {
            input.read_some()?;
            since.get_or_insert_with(Instant::now);
        }
        let Some(started) = since else {
            continue;
        };
        if input.eof {
            continue;
        }
        if ready && started.elapsed() < MAX_DELAY && input.buf.len() < want {
            continue;
        }
        let Some(last_lf) = memchr::memrchr(b'\n', &input.buf) else {
            // One line, not whole yet: wait for the rest of it, reading it whole however long.
            if input.buf.len() >= want {
                want = input.buf.len().saturating_mul(2);
            }
            since = None;
            continue;
        };
        want = FILL;
        since = None;
        let end = last_lf + 1;
        if !hand_on(&input.buf[..end], &mut line_no, batch, &mut send)? {
            return Ok(LinesEnd::Eof);
        }
        input.buf.drain(..end);
    }
}

/// Numbers the lines of `text` and hands the non-blank ones to `send` in groups of `batch`;
/// false when `send` asked to stop.
fn hand_on(
    text: &[u8],
    line_no: &mut u64,
    batch: usize,
    send: &mut impl FnMut(&[(u64, &[u8])]) -> Result<bool>,
) -> Result<bool> {
    if text.is_empty() {
        return Ok(true);
    }
    // The lines (a final LF ends the last one, it does not start an empty one).
    let lines: Vec<(u64, &[u8])> = crate::reader::Lines::new(text, 0)
        .map(|(_, l)| l)
        .map(|l| {
            *line_no += 1;
            (*line_no, l)
        })
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    for group in lines.chunks(batch) {
        if !send(group)? {
            return Ok(false);
        }
    }
    Ok(true)
}
