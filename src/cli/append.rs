//! `append`: one event from flags or `--json`, or many from `--stdin`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Arg, ArgAction, ArgMatches, Args, ValueEnum};

use nexus_audit::chain::{FIELDS, Field, Flag, Kind};
use nexus_audit::{Durability, Encoded, Event, Head, LogOptions, Logger, Receipt};
use rayon::prelude::*;
use serde_json::{Value, json};

use super::{Context, exit};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DurabilityArg {
    /// Return after fdatasync.
    Sync,
    /// Write each batch at once and sync once, after the last.
    Buffered,
    /// Write without syncing.
    None,
}

#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The event as one JSON object with the record's field names.
    #[arg(long, conflicts_with = "stdin")]
    json: Option<String>,
    /// Read JSON objects from standard input, one per line, and append them in batches.
    ///
    /// A batch is written as soon as no more input is ready, or after 50 ms of steady input,
    /// so a record from a slow producer is in the file within a few milliseconds. SIGTERM,
    /// SIGINT and SIGHUP write every complete line read (and any already waiting), print the
    /// count on stderr and exit 143, 130 or 129; only a line cut short is not written.
    #[arg(long)]
    stdin: bool,
    /// The most records per write with --stdin.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// When an append is durable.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
    durability: DurabilityArg,
    /// Seal the log with this forward-secure key file (from `seal init`).
    #[arg(long, env = "NEXUS_AUDIT_SEAL_KEY")]
    seal_key: Option<std::path::PathBuf>,
    /// With --seal-key: a seal record after this many records.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    seal_every: u64,
    /// With --seal-key: a seal at least this often while records arrive (30s, 15m, 1h, 1d).
    #[arg(long, default_value = "15m", value_parser = parse_span)]
    seal_interval: std::time::Duration,

    /// A flag for each field of the record that has one (`--tool`, `--user`, …).
    #[command(flatten)]
    fields: FieldFlags,
    /// Emitting system [default: nexus-mcp].
    #[arg(long, env = "NEXUS_AUDIT_SOURCE")]
    source: Option<String>,
}

/// The flags of the record's fields, made from the field table
/// ([`nexus_audit::chain::FIELDS`]): each field with a flag gets one, typed by its kind.
#[derive(Debug, Default)]
struct FieldFlags {
    /// The fields given, with their text (`true` for a switch).
    given: Vec<(&'static Field, FlagValue)>,
}

/// What a field's flag was given.
#[derive(Debug)]
enum FlagValue {
    Text(String),
    Count(u64),
    Switch,
}

impl FieldFlags {
    fn flags() -> impl Iterator<Item = (&'static Field, Flag)> {
        FIELDS.iter().filter_map(|f| Some((f, f.flag?)))
    }

    /// The flags as an event; with --json or --stdin they fill fields the input lacks.
    fn event(&self) -> anyhow::Result<Event> {
        let mut event = Event::default();
        for (field, value) in &self.given {
            let value = match (field.kind, value) {
                (Kind::Json, FlagValue::Text(text)) => serde_json::from_str(text)
                    .with_context(|| format!("--{} is not valid JSON", flag_name(field)))?,
                (_, FlagValue::Text(text)) => Value::String(text.clone()),
                (_, FlagValue::Count(n)) => Value::from(*n),
                (_, FlagValue::Switch) => Value::Bool(true),
            };
            event
                .set_field(field.name, value)
                .with_context(|| format!("--{}", flag_name(field)))?;
        }
        Ok(event)
    }
}

fn flag_name(field: &Field) -> &'static str {
    field.flag.map_or(field.name, |f| f.name)
}

impl clap::FromArgMatches for FieldFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for (field, flag) in Self::flags() {
            let value = match field.kind {
                Kind::Flag => matches.get_flag(flag.name).then_some(FlagValue::Switch),
                Kind::Count => matches
                    .get_one::<u64>(flag.name)
                    .copied()
                    .map(FlagValue::Count),
                _ => matches
                    .get_one::<String>(flag.name)
                    .cloned()
                    .map(FlagValue::Text),
            };
            given.extend(value.map(|v| (field, v)));
        }
        Ok(FieldFlags { given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for FieldFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Self::flags().fold(cmd, |cmd, (field, flag)| {
            let arg = Arg::new(flag.name).long(flag.name).help(flag.help);
            cmd.arg(match field.kind {
                Kind::Flag => arg.action(ArgAction::SetTrue),
                kind => {
                    let arg = arg.value_name(flag.name.to_ascii_uppercase().replace('-', "_"));
                    if kind == Kind::Count {
                        arg.value_parser(clap::value_parser!(u64))
                    } else {
                        arg
                    }
                }
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

pub fn run(ctx: &Context, args: AppendArgs) -> anyhow::Result<u8> {
    let defaults = args.fields.event()?;
    // NOTE: this process appends and exits, so the library's background buffering would only
    // withhold each record's (seq, hash) from the receipt: `buffered` writes at once and syncs
    // once at the end instead.
    let durability = match args.durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Buffered | DurabilityArg::None => Durability::None,
    };
    let mut opts = LogOptions::new(&ctx.file).durability(durability);
    if let Some(source) = &args.source {
        opts = opts.source(source.clone());
    }
    if let Some(key) = &args.seal_key {
        let mut seal = nexus_audit::writer::SealOptions::new(key);
        seal.every = args.seal_every;
        seal.interval = args.seal_interval;
        opts = opts.seal(seal);
    }
    let single = if args.stdin {
        None
    } else {
        Some(match &args.json {
            Some(text) => {
                let mut event = Event::from_json_str(text).context("--json")?;
                event.fill_from(&defaults);
                event
            }
            None => {
                let mut e = defaults.clone();
                e.action.get_or_insert_with(|| "mcp_call".to_owned());
                e
            }
        })
    };
    // NOTE: the library creates the file with the first write, so an append that fails
    // before it (bad input, a missing seal key) leaves no file behind.
    let log = opts.open()?;
    let (summary, stopped) = match single {
        Some(event) => {
            let head = written(&log.append(event)?)?;
            (json!({"seq": head.seq, "hash": head.hash_hex()}), None)
        }
        None => append_stdin(&log, &defaults, args.batch)?,
    };
    log.close()?;
    if matches!(args.durability, DurabilityArg::Buffered) && ctx.file.exists() {
        File::open(&ctx.file)
            .and_then(|f| f.sync_data())
            .with_context(|| format!("cannot sync {}", ctx.file.display()))?;
    }
    let printed = writeln!(io::stdout().lock(), "{summary}");
    if let Some(stop) = stopped {
        // NOTE: the signal decides the exit code, even when stdout is gone.
        eprintln!("nexus-audit: {}", stop.message);
        return Ok(stop.exit_code);
    }
    printed?;
    Ok(exit::OK)
}

fn written(receipt: &Receipt) -> anyhow::Result<Head> {
    receipt
        .last()
        .context("the record was queued but not written")
}

/// "1 record", "2 records".
fn records(n: u64) -> String {
    format!("{n} record{}", if n == 1 { "" } else { "s" })
}

/// What the thread that writes `--stdin` batches has done.
#[derive(Default)]
struct Progress {
    appended: u64,
    first: Option<u64>,
    last: Option<Head>,
    /// The write that failed; nothing after it was written.
    failed: Option<anyhow::Error>,
}

impl Progress {
    /// "3 records (seq 4 to 6)".
    fn describe(&self) -> String {
        match (self.first, self.last) {
            (Some(first), Some(last)) if first != last.seq => {
                format!("{} (seq {first} to {})", records(self.appended), last.seq)
            }
            (Some(first), _) => format!("{} (seq {first})", records(self.appended)),
            _ => records(self.appended),
        }
    }
}

/// How `append --stdin` ended early on a signal.
struct Stopped {
    /// The sentence for stderr.
    message: String,
    /// 128 + the signal's number.
    exit_code: u8,
}

/// Appends every object on standard input; returns the summary to print and, when a signal
/// ended the input, what to say about it.
///
/// Two stages overlap: this thread reads batch N+1 and parses and encodes it (in parallel, on
/// the rayon pool) while a writer thread chains and appends batch N. A bad line stops the
/// reading; the batches before it are still written, then the error names the line and says
/// what was kept. A failed write stops both; the error says how many records were written.
fn append_stdin(
    log: &Logger,
    defaults: &Event,
    batch: u64,
) -> anyhow::Result<(Value, Option<Stopped>)> {
    let signals = Signals::install()?;
    let batch = usize::try_from(batch).unwrap_or(usize::MAX);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Encoded>>(1);
    let (read, progress) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || write_batches(log, &rx));
        let read = read_stdin(&signals, batch, |lines| {
            let encoded = encode_lines(log, defaults, lines)?;
            // A send fails only when the writer stopped on an error, reported below.
            Ok(tx.send(encoded).is_ok())
        });
        drop(tx);
        let progress = writer.join().unwrap_or_else(|_| Progress {
            failed: Some(anyhow::anyhow!("the writer thread panicked")),
            ..Progress::default()
        });
        (read, progress)
    });
    if let Some(err) = progress.failed {
        return Err(err.context(format!(
            "wrote {} before a write failed",
            records(progress.appended)
        )));
    }
    let end =
        read.with_context(|| format!("wrote {}, then stopped", records(progress.appended)))?;
    let summary = json!({
        "appended": progress.appended,
        "first_seq": progress.first,
        "last_seq": progress.last.map(|h| h.seq),
        "head_hash": progress.last.map(|h| h.hash_hex()),
    });
    let stopped = match end {
        InputEnd::Eof => None,
        InputEnd::Signal { signal, cut_short } => {
            let mut message = format!(
                "stopped by {}: wrote {} read from standard input",
                signal_name(signal),
                progress.describe()
            );
            if cut_short > 0 {
                message.push_str(&format!(
                    "; the line being read when it came ({cut_short} bytes, no line feed yet) was not written"
                ));
            }
            Some(Stopped {
                message,
                exit_code: u8::try_from(128 + signal).unwrap_or(exit::FAILURE),
            })
        }
    };
    Ok((summary, stopped))
}

/// Parses, completes and encodes numbered input lines in parallel. An error names the first
/// bad line.
fn encode_lines(
    log: &Logger,
    defaults: &Event,
    lines: &[(u64, &[u8])],
) -> anyhow::Result<Vec<Encoded>> {
    let encoded: Vec<anyhow::Result<Encoded>> = lines
        .par_iter()
        .map(|(n, l)| {
            let mut event = parse_line(*n, l)?;
            event.fill_from(defaults);
            log.encode(event)
                .with_context(|| format!("standard input line {n}"))
        })
        .collect();
    encoded.into_iter().collect()
}

/// The writer thread of `append --stdin`.
fn write_batches(log: &Logger, rx: &std::sync::mpsc::Receiver<Vec<Encoded>>) -> Progress {
    let mut p = Progress::default();
    for records in rx {
        let records = match log.append_encoded(records) {
            Ok(Receipt::Written { records }) => records,
            Ok(Receipt::Queued) => {
                p.failed = Some(anyhow::anyhow!("the records were queued but not written"));
                break;
            }
            Err(err) => {
                p.failed = Some(err.into());
                break;
            }
        };
        p.appended += records.len() as u64;
        if p.first.is_none() {
            p.first = records.first().map(|h| h.seq);
        }
        p.last = records.last().copied().or(p.last);
    }
    p
}

/// Bytes read before a batch is cut, whatever else: grows while one line is longer.
const FILL: usize = 4 << 20;
/// Bytes asked of one read.
const READ: usize = 1 << 20;
/// The longest input waits for more before its batch is cut, while more keeps arriving.
const MAX_DELAY: Duration = Duration::from_millis(50);
/// How often a reader with nothing to read looks for a signal.
const TICK: Duration = Duration::from_millis(50);
/// After a signal: how long, and how many bytes of, input already waiting is still taken.
const DRAIN: Duration = Duration::from_secs(1);
const DRAIN_BYTES: usize = 64 << 20;

/// How the input ended.
enum InputEnd {
    /// End of file: every line was handed on.
    Eof,
    /// A signal: every complete line read was handed on; `cut_short` bytes of a line without
    /// its LF were not.
    Signal { signal: usize, cut_short: usize },
}

/// Standard input, read without a buffer of its own, so "nothing more is ready" can be asked
/// of the pipe itself.
struct Input {
    file: File,
    buf: Vec<u8>,
    eof: bool,
}

impl Input {
    fn open() -> anyhow::Result<Self> {
        let fd = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot read standard input")?;
        Ok(Input {
            file: File::from(fd),
            buf: Vec::with_capacity(FILL + READ),
            eof: false,
        })
    }

    /// Waits up to `timeout` for input (or its end); true when a read would not block.
    fn ready(&self, timeout: Duration) -> anyhow::Result<bool> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        if self.eof {
            return Ok(false);
        }
        let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
        let timeout = Timespec::try_from(timeout).context("a poll timeout out of range")?;
        match poll(&mut fds, Some(&timeout)) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(io::Error::from(e)).context("cannot read standard input"),
        }
    }

    /// Reads what is there, once.
    fn read_some(&mut self) -> anyhow::Result<()> {
        let filled = self.buf.len();
        self.buf.resize(filled + READ, 0);
        let n = loop {
            match self.file.read(&mut self.buf[filled..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        self.buf.truncate(filled + *n.as_ref().unwrap_or(&0));
        if n.context("cannot read standard input")? == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

/// Reads standard input and hands its non-blank lines, numbered, to `send` in groups of at
/// most `batch`; `send` returns false to stop.
///
/// Lines are handed on as soon as no more input is ready, after [`MAX_DELAY`] of steady input,
/// or once [`FILL`] bytes are read: a slow producer's record is written at once, a fast one's
/// in large batches. On a signal, the input already waiting is taken too (for up to
/// [`DRAIN`]), every complete line is handed on, and the reading stops.
fn read_stdin(
    signals: &Signals,
    batch: usize,
    mut send: impl FnMut(&[(u64, &[u8])]) -> anyhow::Result<bool>,
) -> anyhow::Result<InputEnd> {
    let mut input = Input::open()?;
    let mut line_no: u64 = 0;
    let mut want = FILL;
    // When the input not yet handed on began to wait.
    let mut since: Option<Instant> = None;
    loop {
        if let Some(signal) = signals.received() {
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
            return Ok(InputEnd::Signal {
                signal,
                cut_short: input.buf.len() - end,
            });
        }
        if input.eof {
            hand_on(&input.buf, &mut line_no, batch, &mut send)?;
            return Ok(InputEnd::Eof);
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
            return Ok(InputEnd::Eof);
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
    send: &mut impl FnMut(&[(u64, &[u8])]) -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    if text.is_empty() {
        return Ok(true);
    }
    // The lines, without the empty piece after a final LF.
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let lines: Vec<(u64, &[u8])> = text
        .split(|b| *b == b'\n')
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

/// SIGTERM, SIGINT and SIGHUP, caught while `append --stdin` runs: the first asks the reader
/// to stop; a second, should the flush hang, ends the process at once (exit 128 + signal).
struct Signals {
    received: Arc<AtomicUsize>,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let received = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGINT, SIGHUP] {
            // NOTE: the order matters: the shutdown is armed by the first signal, for the next.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                Arc::clone(&armed),
            )
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&armed)))
            .and_then(|_| {
                signal_hook::flag::register_usize(
                    signal,
                    Arc::clone(&received),
                    usize::try_from(signal).unwrap_or(0),
                )
            })
            .with_context(|| {
                format!(
                    "cannot catch {}",
                    signal_name(usize::try_from(signal).unwrap_or(0))
                )
            })?;
        }
        Ok(Signals { received })
    }

    /// The signal received, if any.
    fn received(&self) -> Option<usize> {
        Some(self.received.load(Ordering::SeqCst)).filter(|s| *s != 0)
    }
}

fn signal_name(signal: usize) -> &'static str {
    match i32::try_from(signal) {
        Ok(signal_hook::consts::SIGTERM) => "SIGTERM",
        Ok(signal_hook::consts::SIGINT) => "SIGINT",
        Ok(signal_hook::consts::SIGHUP) => "SIGHUP",
        _ => "a signal",
    }
}

fn parse_line(n: u64, line: &[u8]) -> anyhow::Result<Event> {
    let Ok(text) = std::str::from_utf8(line) else {
        bail!("standard input line {n} is not valid UTF-8");
    };
    Event::from_json_str(text).with_context(|| format!("standard input line {n}"))
}

/// A span for --seal-interval (see [`nexus_audit::filter::parse_span`]).
fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    nexus_audit::filter::parse_span(text)
        .and_then(|d| d.to_std().ok())
        .ok_or_else(|| format!("'{text}' is not a span like 30s, 15m, 1h or 1d"))
}
