//! `append`: one event from flags or `--json`, or many from `--stdin`.

use std::io::{self, Write};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Arg, ArgAction, ArgMatches, Args, ValueEnum};

use crate::chain::{FIELDS, Field, Flag, Kind};
use crate::config::DurabilitySetting;
use crate::{
    Durability, Event, Head, LinesEnd, LinesOptions, LinesSummary, LogOptions, Logger, Receipt,
};
use serde_json::{Value, json};

use super::signals::{SIGHUP, SIGINT, SIGTERM, Signals, signal_name};
use super::{Context, exit};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DurabilityArg {
    /// Return after fdatasync.
    Sync,
    /// Write each batch at once and sync once, after the last (its older name, buffered, still
    /// works).
    #[value(alias = "buffered")]
    SyncOnClose,
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
    /// Rotation: --max-size, --max-age, --compress.
    #[command(flatten)]
    rotation: super::rotate::RotationArgs,

    /// A flag for each field of the record that has one (`--tool`, `--user`, …).
    #[command(flatten)]
    fields: FieldFlags,
    /// Emitting system [default: nexus-mcp].
    #[arg(long, env = "NEXUS_AUDIT_SOURCE")]
    source: Option<String>,
}

/// The flags of the record's fields, made from the field table
/// ([`crate::chain::FIELDS`]): each field with a flag gets one, typed by its kind.
#[derive(Debug, Default)]
struct FieldFlags {
    /// The fields given, each with what its flag was given.
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
    // withhold each record's (seq, hash) from the receipt: it writes at once and syncs once at
    // the end instead.
    let durability = match ctx.file_setting("durability", |c| c.durability) {
        Some(DurabilitySetting::Sync) => DurabilityArg::Sync,
        Some(DurabilitySetting::Buffered) => DurabilityArg::SyncOnClose,
        Some(DurabilitySetting::None) => DurabilityArg::None,
        None => args.durability,
    };
    let durability = match durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::SyncOnClose => Durability::SyncOnClose,
        DurabilityArg::None => Durability::None,
    };
    let mut opts = args.rotation.apply(
        ctx,
        ctx.configured(LogOptions::new(&ctx.file).durability(durability)),
    );
    if let Some(source) = &args.source {
        opts = opts.source(source.clone());
    }
    if let Some(key) = &args.seal_key {
        let mut seal = crate::writer::SealOptions::new(key);
        seal.every = args.seal_every;
        seal.interval = args.seal_interval;
        opts = opts.seal(seal);
    }
    let single = if args.stdin {
        None
    } else {
        Some(if let Some(text) = &args.json {
            let mut event = Event::from_json_str(text).context("--json")?;
            event.fill_from(&defaults);
            event
        } else {
            let mut e = defaults.clone();
            e.action.get_or_insert_with(|| "mcp_call".to_owned());
            e
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
        None => append_stdin(&log, defaults, args.batch)?,
    };
    log.close()?;
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

/// "3 records (seq 4 to 6)".
fn describe(s: &LinesSummary) -> String {
    match (s.first_seq, s.last) {
        (Some(first), Some(last)) if first != last.seq => {
            format!("{} (seq {first} to {})", records(s.appended), last.seq)
        }
        (Some(first), _) => format!("{} (seq {first})", records(s.appended)),
        _ => records(s.appended),
    }
}

/// How `append --stdin` ended early on a signal.
struct Stopped {
    /// The sentence for stderr.
    message: String,
    /// 128 + the signal's number.
    exit_code: u8,
}

/// Appends every object on standard input (see [`Logger::append_lines`]); returns the summary
/// to print and, when a signal ended the input, what to say about it.
fn append_stdin(
    log: &Logger,
    defaults: Event,
    batch: u64,
) -> anyhow::Result<(Value, Option<Stopped>)> {
    // SIGTERM, SIGINT and SIGHUP: the first raises the stop flag the library reads; a second,
    // should the flush hang, ends the process at once.
    let signals = Signals::install(&[SIGTERM, SIGINT, SIGHUP])?;
    let options = LinesOptions::new()
        .batch(usize::try_from(batch).unwrap_or(usize::MAX))
        .defaults(defaults)
        .name("standard input")
        .stop_flag(Arc::clone(&signals.stop));
    let summary = log.append_lines(io::stdin(), &options)?;
    let stopped = match summary.end {
        LinesEnd::Eof => None,
        LinesEnd::Stopped { cut_short } => {
            let signal = signals.received();
            let mut message = format!(
                "stopped by {}: wrote {} read from standard input",
                signal_name(signal),
                describe(&summary)
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
    let summary = json!({
        "appended": summary.appended,
        "first_seq": summary.first_seq,
        "last_seq": summary.last.map(|h| h.seq),
        "head_hash": summary.last.map(|h| h.hash_hex()),
    });
    Ok((summary, stopped))
}

/// A span for --seal-interval (see [`crate::time::parse_span`]).
fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    crate::time::parse_span(text)
        .and_then(|d| d.to_std().ok())
        .ok_or_else(|| format!("'{text}' is not a span like 30s, 15m, 1h or 1d"))
}
