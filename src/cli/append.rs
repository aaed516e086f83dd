//! `append`: one event from flags or `--json`, or many from `--stdin`.

use std::io::{self, Read, Write};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use std::sync::OnceLock;

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
    #[arg(long)]
    stdin: bool,
    /// Records per write with --stdin.
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

    /// MCP tool name (e.g. workday_get_worker).
    #[arg(long)]
    tool: Option<String>,
    /// Who made the call (user_id).
    #[arg(long)]
    user: Option<String>,
    /// MCP server (server_id).
    #[arg(long)]
    server: Option<String>,
    /// session_id.
    #[arg(long)]
    session: Option<String>,
    /// correlation_id.
    #[arg(long)]
    correlation: Option<String>,
    /// action [default: mcp_call when no --json/--stdin].
    #[arg(long)]
    action: Option<String>,
    /// success or error.
    #[arg(long)]
    status: Option<String>,
    /// Wall-clock duration in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// The call's arguments as a JSON object (redacted before writing).
    #[arg(long)]
    args: Option<String>,
    /// Anything else as a JSON object (redacted before writing).
    #[arg(long)]
    details: Option<String>,
    /// Error class.
    #[arg(long)]
    error_type: Option<String>,
    /// Error message (sanitised, at most 500 characters).
    #[arg(long)]
    error_message: Option<String>,
    /// info, warn or error.
    #[arg(long)]
    level: Option<String>,
    /// What was touched [default: SERVER:TOOL].
    #[arg(long)]
    resource: Option<String>,
    /// Shard [default: inferred from the tool's prefix].
    #[arg(long)]
    shard: Option<String>,
    /// READ, WRITE, AUDIT, REPORT or ADMIN [default: inferred from the tool's prefix].
    #[arg(long)]
    category: Option<String>,
    /// Bytes returned by the upstream.
    #[arg(long)]
    response_size: Option<u64>,
    /// Bytes after filtering.
    #[arg(long)]
    filtered_size: Option<u64>,
    /// The call touched no real system.
    #[arg(long)]
    mock: bool,
    /// Emitting system [default: nexus-mcp].
    #[arg(long, env = "NEXUS_AUDIT_SOURCE")]
    source: Option<String>,
    /// RFC 3339 time of the event [default: now].
    #[arg(long)]
    timestamp: Option<String>,
}

impl AppendArgs {
    /// The flags as an event; with --json or --stdin they fill fields the input lacks.
    fn flag_event(&self) -> anyhow::Result<Event> {
        let object = |flag: &str, text: &Option<String>| -> anyhow::Result<Option<Value>> {
            text.as_deref()
                .map(|t| {
                    serde_json::from_str(t).with_context(|| format!("--{flag} is not valid JSON"))
                })
                .transpose()
        };
        Ok(Event {
            tool: self.tool.clone(),
            user_id: self.user.clone(),
            server_id: self.server.clone(),
            session_id: self.session.clone(),
            correlation_id: self.correlation.clone(),
            action: self.action.clone(),
            status: self.status.clone(),
            latency_ms: self.latency_ms,
            args_summary: object("args", &self.args)?,
            details: object("details", &self.details)?,
            error_type: self.error_type.clone(),
            error_message: self.error_message.clone(),
            level: self.level.clone(),
            resource: self.resource.clone(),
            shard: self.shard.clone(),
            action_category: self.category.clone(),
            response_size: self.response_size,
            filtered_size: self.filtered_size,
            mock_mode: self.mock.then_some(true),
            timestamp: self.timestamp.clone(),
            ..Event::default()
        })
    }
}

/// Fills the fields of `e` that are absent from `defaults`.
fn fill(mut e: Event, d: &Event) -> Event {
    macro_rules! or {
        ($($f:ident),*) => {$( if e.$f.is_none() { e.$f.clone_from(&d.$f); } )*};
    }
    or!(
        tool,
        user_id,
        server_id,
        session_id,
        correlation_id,
        action,
        status,
        latency_ms,
        args_summary,
        details,
        error_type,
        error_message,
        level,
        resource,
        shard,
        action_category,
        response_size,
        filtered_size,
        mock_mode,
        timestamp
    );
    e
}

pub fn run(ctx: &Context, args: AppendArgs) -> anyhow::Result<u8> {
    let defaults = args.flag_event()?;
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
        let mut seal = nexus_audit::seal::SealOptions::new(key);
        seal.every = args.seal_every;
        seal.interval = args.seal_interval;
        opts = opts.seal(seal);
    }
    // The log is opened (and created) only once there is a valid event to write, so bad input
    // never leaves an empty file behind.
    let log: OnceLock<Logger> = OnceLock::new();
    let summary = if args.stdin {
        append_stdin(&log, &opts, &defaults, args.batch)?
    } else {
        let event = match &args.json {
            Some(text) => fill(Event::from_json_str(text).context("--json")?, &defaults),
            None => {
                let mut e = defaults;
                e.action.get_or_insert_with(|| "mcp_call".to_owned());
                e
            }
        };
        let head = written(&opened(&log, &opts)?.append(event)?)?;
        json!({"seq": head.seq, "hash": head.hash_hex()})
    };
    if let Some(log) = log.into_inner() {
        log.close()?;
        if matches!(args.durability, DurabilityArg::Buffered) {
            std::fs::File::open(&ctx.file)
                .and_then(|f| f.sync_data())
                .with_context(|| format!("cannot sync {}", ctx.file.display()))?;
        }
    }
    writeln!(io::stdout().lock(), "{summary}")?;
    Ok(exit::OK)
}

/// The log, opened on first use.
fn opened<'a>(log: &'a OnceLock<Logger>, opts: &LogOptions) -> anyhow::Result<&'a Logger> {
    if log.get().is_none() {
        // Only this thread opens the log, so `set` cannot lose a race.
        let _ = log.set(opts.clone().open()?);
    }
    log.get().context("the log could not be opened")
}

fn written(receipt: &Receipt) -> anyhow::Result<Head> {
    receipt
        .last()
        .context("the record was queued but not written")
}

/// What the thread that writes `--stdin` batches has done.
#[derive(Default)]
struct Progress {
    appended: u64,
    first: Option<u64>,
    last: Option<Head>,
}

/// Appends every object on standard input; returns the summary to print.
///
/// Two stages overlap: this thread reads batch N+1 and parses and encodes it (in parallel, on
/// the rayon pool) while a writer thread chains and appends batch N. A bad line stops the
/// reading; the batches before it are still written, then the error names the line and says
/// what was kept.
fn append_stdin(
    log: &OnceLock<Logger>,
    opts: &LogOptions,
    defaults: &Event,
    batch: u64,
) -> anyhow::Result<Value> {
    let batch = usize::try_from(batch).unwrap_or(usize::MAX);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Encoded>>(1);
    let (read, progress) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || write_batches(log, &rx));
        let read = read_stdin(batch, |lines| {
            let encoded = encode_lines(log, opts, defaults, lines)?;
            // A send fails only when the writer stopped on an error, reported below.
            Ok(tx.send(encoded).is_ok())
        });
        drop(tx);
        let progress = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the writer thread panicked")));
        (read, progress)
    });
    let progress = progress?;
    read.with_context(|| {
        format!(
            "stopped with {} record(s) appended before the bad line",
            progress.appended
        )
    })?;
    Ok(json!({
        "appended": progress.appended,
        "first_seq": progress.first,
        "last_seq": progress.last.map(|h| h.seq),
        "head_hash": progress.last.map(|h| h.hash_hex()),
    }))
}

/// Parses, completes and encodes numbered input lines in parallel. The log is opened once the
/// first batch has parsed.
fn encode_lines(
    log: &OnceLock<Logger>,
    opts: &LogOptions,
    defaults: &Event,
    lines: &[(u64, &[u8])],
) -> anyhow::Result<Vec<Encoded>> {
    let parse = |(n, l): &(u64, &[u8])| parse_line(*n, l).map(|e| fill(e, defaults));
    let encoded: Vec<anyhow::Result<Encoded>> = match log.get() {
        Some(log) => lines
            .par_iter()
            .map(|l| Ok(log.encode(parse(l)?)?))
            .collect(),
        None => {
            let events: Vec<anyhow::Result<Event>> = lines.par_iter().map(parse).collect();
            let events = events.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
            let log = opened(log, opts)?;
            events.into_par_iter().map(|e| Ok(log.encode(e)?)).collect()
        }
    };
    encoded.into_iter().collect()
}

/// The writer thread of `append --stdin`.
fn write_batches(
    log: &OnceLock<Logger>,
    rx: &std::sync::mpsc::Receiver<Vec<Encoded>>,
) -> anyhow::Result<Progress> {
    let mut p = Progress::default();
    for records in rx {
        let log = log.get().context("the log is not open")?;
        let Receipt::Written { records } = log.append_encoded(records)? else {
            bail!("the records were queued but not written");
        };
        p.appended += records.len() as u64;
        if p.first.is_none() {
            p.first = records.first().map(|h| h.seq);
        }
        p.last = records.last().copied().or(p.last);
    }
    Ok(p)
}

/// Reads standard input and hands its non-blank lines, numbered, to `send` in groups of
/// `batch`; `send` returns false to stop.
fn read_stdin(
    batch: usize,
    mut send: impl FnMut(&[(u64, &[u8])]) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    const FILL: usize = 4 << 20;
    let mut stdin = io::stdin().lock();
    let mut buf: Vec<u8> = Vec::with_capacity(FILL + (1 << 16));
    let mut line_no: u64 = 0;
    let mut eof = false;
    // How full the buffer must be before it is cut at its last LF: grows while one line is
    // longer than the buffer, so a record of any size is read whole.
    let mut want = FILL;
    while !eof {
        while buf.len() < want {
            let filled = buf.len();
            buf.resize(filled + (1 << 16), 0);
            let n = loop {
                match stdin.read(&mut buf[filled..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other.context("cannot read standard input")?,
                }
            };
            buf.truncate(filled + n);
            if n == 0 {
                eof = true;
                break;
            }
        }
        let end = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => {
                    want = buf.len().saturating_mul(2);
                    continue;
                }
            }
        };
        want = FILL;
        // The lines in buf[..end], without the empty piece after a final LF.
        let text = buf[..end].strip_suffix(b"\n").unwrap_or(&buf[..end]);
        let lines: Vec<(u64, &[u8])> = if end == 0 {
            Vec::new()
        } else {
            text.split(|b| *b == b'\n')
                .map(|l| {
                    line_no += 1;
                    (line_no, l)
                })
                .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
                .collect()
        };
        for group in lines.chunks(batch) {
            if !send(group)? {
                return Ok(());
            }
        }
        buf.drain(..end);
    }
    Ok(())
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
