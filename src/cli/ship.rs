//! `ship`: forward the log to a database, a SIEM or a webhook, at least once, from a cursor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Backoff, DestinationOptions, ShipEvent, ShipOptions};
use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::Args;

use super::output::sanitize;
use super::signals::{SIGINT, SIGTERM, Signals, signal_name};
use super::{Context, FilterArgs, exit, grouped};

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// Where to ship: postgres://USER@HOST:PORT/DB?table=audit_log, webhook+https://HOST/PATH,
    /// splunk-hec+https://HOST:8088, elasticsearch+https://HOST:9200/INDEX, syslog+tcp://HOST:PORT
    /// or syslog+tls://HOST:PORT.
    /// Required here or as `to` in the configuration file's `[ship]`.
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// The cursor file: the last record the destination acknowledged
    /// [default: LOG.ship-<hash of the URL>.cursor].
    #[arg(long, value_name = "FILE")]
    cursor: Option<PathBuf>,
    /// Keep shipping as the log grows, reporting progress and lag on stderr, until SIGINT or
    /// SIGTERM.
    #[arg(long)]
    follow: bool,
    /// Records per batch (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = batch_arg)]
    batch: usize,
    /// An extra HTTP header for webhook, HEC and Elasticsearch requests (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Read the destination's token or password from FILE (else NEXUS_AUDIT_HEC_TOKEN for
    /// HEC, NEXUS_AUDIT_PG_PASSWORD for PostgreSQL).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Read the webhook's signing secret from FILE (else NEXUS_AUDIT_WEBHOOK_SECRET); a
    /// `whsec_` prefix means the rest is base64.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// How long one request may take (30s, 2m).
    #[arg(long, value_name = "SPAN", default_value = "30s", value_parser = parse_span)]
    timeout: Duration,
    /// The first wait before a batch is sent again, in milliseconds.
    #[arg(long, hide = true, default_value_t = 500)]
    backoff_base_ms: u64,
    /// The longest wait before a batch is sent again, in milliseconds.
    #[arg(long, hide = true, default_value_t = 60_000)]
    backoff_cap_ms: u64,
    /// How often progress is reported, in milliseconds.
    #[arg(long, hide = true, default_value_t = 5_000)]
    progress_ms: u64,
    /// With --follow: how often the log is looked at when caught up, in milliseconds.
    #[arg(long, hide = true, default_value_t = 200)]
    poll_ms: u64,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Context, args: &ShipArgs) -> anyhow::Result<u8> {
    if !ctx.file.exists() && std::fs::symlink_metadata(&ctx.file).is_err() {
        bail!(
            "the log file {} does not exist (set --file or NEXUS_AUDIT_FILE)",
            ctx.file.display()
        );
    }
    // The flags, else the configuration file's `[ship]`, else the defaults.
    let Some(to) = args
        .to
        .clone()
        .or_else(|| ctx.file_setting("to", |c| c.ship.to.as_ref().map(|t| t.0.clone())))
    else {
        bail!(
            "ship needs a destination: give --to URL, or `to` in the configuration file's [ship]"
        );
    };
    let describe = crate::mask_url(&to);
    let cursor = args
        .cursor
        .clone()
        .or_else(|| ctx.file_setting("cursor", |c| c.ship.cursor.clone()))
        .unwrap_or_else(|| crate::default_cursor_path(&ctx.file, &describe));
    let batch = match ctx.file_setting("batch", |c| c.ship.batch) {
        Some(n) => batch_arg(&n.to_string()).map_err(|e| anyhow::anyhow!("[ship] batch {e}"))?,
        None => args.batch,
    };
    let options = destination_options(ctx, &to, &cursor, args)?;
    let mut dest = crate::open_destination(&to, &options)?;
    let opts = ShipOptions {
        batch,
        follow: args.follow,
        backoff: Backoff {
            base: Duration::from_millis(args.backoff_base_ms.max(1)),
            cap: Duration::from_millis(args.backoff_cap_ms.max(args.backoff_base_ms).max(1)),
        },
        poll: Duration::from_millis(args.poll_ms.max(1)),
        progress_every: Duration::from_millis(args.progress_ms.max(1)),
        filter: args.filter.to_filter()?,
    };
    // SIGTERM and SIGINT: the first raises the stop flag (the batch in flight ends, the cursor
    // is saved at the last acknowledged record); a second ends the process at once.
    let signals = Signals::install(&[SIGTERM, SIGINT])?;
    let shown = sanitize(&describe).into_owned();
    let mut on_event = |event: &ShipEvent<'_>| match event {
        ShipEvent::Retry {
            reason,
            wait,
            first_seq,
            attempt,
        } => eprintln!(
            "nexus-audit: ship: {shown} did not acknowledge the batch from seq {first_seq} ({}); attempt {attempt} failed, sending it again in {:.1} s",
            sanitize(reason),
            wait.as_secs_f64()
        ),
        ShipEvent::Progress {
            shipped,
            cursor_seq,
            behind_records,
            behind_seconds,
        } => eprintln!(
            "nexus-audit: ship: shipped {} records to {shown}, cursor at {}; behind: {} records, {behind_seconds:.1} s",
            grouped(*shipped),
            cursor_seq.map_or_else(|| "the start".to_owned(), |s| format!("seq {s}")),
            grouped(*behind_records)
        ),
    };
    let summary = crate::ship(
        &ctx.file,
        &cursor,
        dest.as_mut(),
        &opts,
        &signals.stop,
        &mut on_event,
    )?;
    let at = summary
        .cursor_seq
        .map_or_else(|| "the start".to_owned(), |s| format!("seq {s}"));
    let by = match signals.received() {
        0 => String::new(),
        s => format!(" (stopped by {})", signal_name(s)),
    };
    eprintln!(
        "nexus-audit: ship: shipped {} records to {shown} in {} batches{by}; cursor at {at} ({})",
        grouped(summary.shipped),
        grouped(summary.batches),
        sanitize(&cursor.display().to_string())
    );
    Ok(exit::OK)
}

/// The destination's options: secrets from files or the environment (never from the command
/// line, where other users could read them), headers, timeout, the cursor's folder.
fn destination_options(
    ctx: &Context,
    url: &str,
    cursor: &Path,
    args: &ShipArgs,
) -> anyhow::Result<DestinationOptions> {
    let ship = ctx.config.as_ref().map(|l| &l.config.ship);
    let scheme = url
        .split_once("://")
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    let token_env = if scheme.starts_with("splunk-hec") {
        Some("NEXUS_AUDIT_HEC_TOKEN")
    } else if scheme.starts_with("postgres") {
        Some("NEXUS_AUDIT_PG_PASSWORD")
    } else {
        None
    };
    // A file named by the flag, else by the configuration; else the variable the
    // configuration names, else the standard one.
    let token_file = args
        .token_file
        .clone()
        .or_else(|| ctx.file_setting("token_file", |c| c.ship.token_file.clone()));
    let token_env = ship
        .and_then(|s| s.token_env.as_ref())
        .map_or(token_env, |e| Some(e.as_str()));
    let token = match &token_file {
        Some(path) => Some(read_secret(path, "token")?),
        None => token_env
            .and_then(|name| std::env::var(name).ok())
            .filter(|t| !t.is_empty()),
    };
    let secret_file = args
        .secret_file
        .clone()
        .or_else(|| ctx.file_setting("secret_file", |c| c.ship.secret_file.clone()));
    let secret_env = ship
        .and_then(|s| s.secret_env.as_ref())
        .map_or("NEXUS_AUDIT_WEBHOOK_SECRET", |e| e.as_str());
    let secret = match &secret_file {
        Some(path) => Some(read_secret(path, "secret")?),
        None => std::env::var(secret_env).ok().filter(|t| !t.is_empty()),
    };
    let secret = secret.map(|s| decode_secret(&s)).transpose()?;
    let headers = args
        .headers
        .iter()
        .map(|h| {
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            let name = name.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                || value.chars().any(char::is_control)
            {
                bail!("--header must be 'Name: value' with a token for a name and no control characters");
            }
            Ok((name.to_owned(), value.trim().to_owned()))
        })
        .chain(
            ship.filter(|_| args.headers.is_empty())
                .into_iter()
                .flat_map(|s| s.header.iter())
                .map(|h| Ok((h.name().to_owned(), h.value().to_owned()))),
        )
        .collect::<anyhow::Result<Vec<_>>>()?;
    let state_dir = cursor
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = cursor
        .file_name()
        .map_or_else(|| "ship".to_owned(), |n| n.to_string_lossy().into_owned());
    let state_stem = name.strip_suffix(".cursor").unwrap_or(&name).to_owned();
    Ok(DestinationOptions {
        token,
        secret,
        headers,
        timeout: args.timeout,
        state_dir,
        state_stem,
    })
}

/// The password `verify --against` uses: `NEXUS_AUDIT_PG_PASSWORD`.
pub fn against_options() -> DestinationOptions {
    DestinationOptions {
        token: std::env::var("NEXUS_AUDIT_PG_PASSWORD")
            .ok()
            .filter(|t| !t.is_empty()),
        ..DestinationOptions::default()
    }
}

fn read_secret(path: &Path, what: &'static str) -> anyhow::Result<String> {
    let bytes = crate::fs::read_small(path, 64 * 1024, what)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the {what} file {} is not UTF-8", path.display()))?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(text)
}

/// A Standard Webhooks secret `whsec_<base64>` is its decoded bytes; any other text is used as
/// it is.
fn decode_secret(text: &str) -> anyhow::Result<Vec<u8>> {
    match text.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| {
                anyhow::anyhow!("the webhook secret starts with whsec_ but the rest is not base64")
            }),
        None => Ok(text.as_bytes().to_vec()),
    }
}

fn batch_arg(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| "the batch size must be 1 to 10000 records".to_owned())
}

fn parse_span(text: &str) -> Result<Duration, String> {
    crate::time::parse_span(text)
        .and_then(|d| d.to_std().ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{text}' is not a span like 30s, 2m or 1h"))
}
