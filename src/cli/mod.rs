//! Argument parsing, dispatch, exit codes and error printing.

mod append;
mod completions;
mod config;
mod export;
mod output;
mod progress;
mod proxy;
mod query;
mod rotate;
mod serve;
mod ship;
mod signals;
mod stats;
mod tail;
mod trust;
mod verify;

use std::io::{self, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::Filter;
use crate::time::parse_time;
use clap::{
    ArgMatches, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum,
};

/// Exit codes (SPEC §7).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// `verify` found an integrity problem.
    pub const INTEGRITY: u8 = 1;
    /// Usage error, unreadable or missing file, or any other failure.
    pub const FAILURE: u8 = 2;
}

/// Tamper-evident audit log for MCP tool calls.
///
/// Every record is one JSON line chained to the previous one by SHA-256, so `verify` can prove
/// the log intact or say which line was changed, deleted, inserted or torn.
///
/// Exit codes: 0 success, 1 integrity problem found (verify), 2 any other failure.
///
/// Examples:
///   nexus-audit --file /var/log/nexus/audit.jsonl verify
///   NEXUS_AUDIT_FILE=audit.jsonl nexus-audit query --status error --since 24h
#[derive(Debug, Parser)]
#[command(
    name = "nexus-audit",
    version,
    max_term_width = 100,
    verbatim_doc_comment
)]
pub struct Cli {
    /// The log file.
    #[arg(
        long,
        short = 'f',
        global = true,
        env = "NEXUS_AUDIT_FILE",
        default_value = "audit.jsonl"
    )]
    file: PathBuf,

    /// The configuration file [default: /etc/nexus-audit/config.toml if it exists]. Flags and
    /// environment variables override what it sets.
    #[arg(long, global = true, env = "NEXUS_AUDIT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,

    /// Never colour output (same as --color never, or NO_COLOR set).
    #[arg(long, global = true)]
    no_color: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing would only add noise"
)]
enum Command {
    /// Append one event (from flags or --json) or many (--stdin).
    ///
    /// Examples:
    ///   nexus-audit append --tool workday_get_worker --user alice --status success --latency-ms 42
    ///   nexus-audit append --json '{"tool":"helix_create_ticket","status":"error","error_type":"Timeout"}'
    ///   producer | nexus-audit append --stdin --durability none
    #[command(verbatim_doc_comment)]
    Append(append::AppendArgs),
    /// Print the last N matching records, oldest first.
    ///
    /// Examples:
    ///   nexus-audit tail -n 100
    ///   nexus-audit tail --status error --follow
    #[command(verbatim_doc_comment)]
    Tail(tail::TailArgs),
    /// Print matching records, newest first.
    ///
    /// Examples:
    ///   nexus-audit query --user alice --since 24h
    ///   nexus-audit query --tool 'workday_*' --status error --limit 10 --output json
    #[command(verbatim_doc_comment)]
    Query(query::QueryArgs),
    /// Summarise matching records: counts, errors, latency percentiles, timeline.
    ///
    /// Examples:
    ///   nexus-audit stats --output json
    ///   nexus-audit stats --since 7d --interval day
    #[command(verbatim_doc_comment)]
    Stats(stats::StatsArgs),
    /// Check every line and link; exit 1 and list each problem if the log was altered.
    ///
    /// Examples:
    ///   nexus-audit verify
    ///   nexus-audit verify --output json --max-problems 10
    #[command(verbatim_doc_comment)]
    Verify(verify::VerifyArgs),
    /// Write matching records as JSONL, JSON or CSV, streamed.
    ///
    /// Examples:
    ///   nexus-audit export --format csv -o calls.csv --since 2026-11-01
    ///   nexus-audit export --format json --status error | jq length
    #[command(verbatim_doc_comment)]
    Export(export::ExportArgs),
    /// Make an Ed25519 key pair for signing checkpoints (PREFIX.key, PREFIX.pub).
    ///
    /// Examples:
    ///   nexus-audit keygen --name audit.example.com/prod --out /etc/nexus-audit/checkpoint
    #[command(verbatim_doc_comment)]
    Keygen(trust::KeygenArgs),
    /// Print a signed checkpoint of the log's current end (size and head), to keep elsewhere.
    ///
    /// Examples:
    ///   nexus-audit checkpoint --key /etc/nexus-audit/checkpoint.key -o cp-2026-11-22.txt
    ///   nexus-audit verify --checkpoint cp-2026-11-22.txt --pub checkpoint.pub
    #[command(verbatim_doc_comment)]
    Checkpoint(trust::CheckpointArgs),
    /// Forward-secure sealing keys.
    ///
    /// Examples:
    ///   nexus-audit seal init --out /etc/nexus-audit/seal
    ///   nexus-audit append --stdin --seal-key /etc/nexus-audit/seal/seal.key
    ///   nexus-audit verify --seal-verify seal.verify
    #[command(verbatim_doc_comment)]
    Seal(trust::SealArgs),
    /// Run an MCP server behind an auditing proxy: every tool call is recorded, the bytes
    /// on the wire stay as they were.
    ///
    /// Examples:
    ///   nexus-audit --file audit.jsonl proxy -- npx -y @modelcontextprotocol/server-everything
    ///   nexus-audit proxy --server-id workday --fail-closed -- python workday_server.py
    #[command(verbatim_doc_comment)]
    Proxy(proxy::ProxyArgs),
    /// Serve the log over HTTP, read-only: query API, Prometheus metrics, live stream, dashboard.
    ///
    /// Examples:
    ///   nexus-audit --file audit.jsonl serve                  (then open http://127.0.0.1:8088/)
    ///   nexus-audit serve --listen 0.0.0.0:8088 --token-file /etc/nexus-audit/serve.token
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// Close the live file into a segment now (LOG.<first seq>-<last seq>.jsonl, then .zst).
    ///
    /// Examples:
    ///   nexus-audit --file /var/log/nexus/audit.jsonl rotate
    ///   nexus-audit rotate --compress none
    #[command(verbatim_doc_comment)]
    Rotate(rotate::RotateArgs),
    /// Remove closed segments older than a span (never the live file), archiving them first.
    ///
    /// Examples:
    ///   nexus-audit prune --older-than 90d --archive /mnt/archive
    ///   nexus-audit prune --older-than 30d --dry-run
    #[command(verbatim_doc_comment)]
    Prune(rotate::PruneArgs),
    /// Check the configuration file, or print an example of one.
    ///
    /// Examples:
    ///   nexus-audit config check /etc/nexus-audit/config.toml
    ///   nexus-audit config example > config.toml
    #[command(verbatim_doc_comment)]
    Config(config::ConfigArgs),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   source <(nexus-audit completions bash)
    ///   nexus-audit completions zsh > ~/.zfunc/_nexus-audit
    #[command(verbatim_doc_comment)]
    Completions(completions::CompletionsArgs),
    /// Write the man pages, one per command, into a directory.
    ///
    /// Examples:
    ///   nexus-audit man /usr/local/share/man/man1
    #[command(verbatim_doc_comment)]
    Man(completions::ManArgs),
    /// Forward the log to PostgreSQL, a SIEM or a webhook, at least once, from a cursor.
    ///
    /// Examples:
    ///   nexus-audit ship --to 'postgres://audit@db.internal/soc2?table=audit_log'
    ///   NEXUS_AUDIT_WEBHOOK_SECRET=whsec_... nexus-audit ship --to webhook+https://hooks.example.com/audit --follow
    #[command(verbatim_doc_comment)]
    Ship(ship::ShipArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The filters shared by tail, query, stats and export.
#[derive(Debug, Args, Default, Clone)]
pub struct FilterArgs {
    /// Only this user_id (a trailing * matches a prefix).
    #[arg(long)]
    user: Option<String>,
    /// Only this server_id.
    #[arg(long)]
    server: Option<String>,
    /// Only this tool (e.g. 'workday_*').
    #[arg(long)]
    tool: Option<String>,
    /// Only this action (mcp_call, server_start, …).
    #[arg(long)]
    action: Option<String>,
    /// Only this status (success, error).
    #[arg(long)]
    status: Option<String>,
    /// Only this shard (identity, workday, itsm, …).
    #[arg(long)]
    shard: Option<String>,
    /// Only this action category (READ, WRITE, AUDIT, REPORT, ADMIN).
    #[arg(long)]
    category: Option<String>,
    /// Only this session_id.
    #[arg(long)]
    session: Option<String>,
    /// Only records at or after: RFC 3339, a date, or a span back from now (15m, 24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Only records before: RFC 3339, a date, or a span back from now.
    #[arg(long)]
    until: Option<String>,
}

impl FilterArgs {
    fn to_filter(&self) -> anyhow::Result<Filter> {
        let now = chrono::Utc::now();
        let time = |s: &Option<String>| {
            s.as_deref()
                .map(|s| parse_time(s, now))
                .transpose()
                .map_err(anyhow::Error::msg)
        };
        Ok(Filter {
            user: self.user.clone(),
            server: self.server.clone(),
            tool: self.tool.clone(),
            action: self.action.clone(),
            status: self.status.clone(),
            shard: self.shard.clone(),
            category: self.category.clone(),
            session: self.session.clone(),
            since: time(&self.since)?,
            until: time(&self.until)?,
        })
    }
}

/// What the command needs from the global options.
pub struct Context {
    file: PathBuf,
    /// The configuration file, if one was found (see [`config::load`]).
    config: Option<crate::config::Loaded>,
    /// The command's own arguments, to tell a flag or variable given from a default.
    matches: ArgMatches,
    color: bool,
    stdout_tty: bool,
    stderr_tty: bool,
}

/// Runs the command line and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    signals::install_sigbus_handler();
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            use clap::error::ErrorKind;
            if !e.use_stderr() {
                // NOTE: clap prints help and version to stdout; a closed pipe is not an error.
                let _ = e.print();
                return ExitCode::from(exit::OK);
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
            } else {
                eprintln!(
                    "nexus-audit: error: {}",
                    usage_error_line(&e.render().to_string())
                );
            }
            return ExitCode::from(exit::FAILURE);
        }
    };
    let stdout_tty = io::stdout().is_terminal();
    let color = match cli.color {
        ColorChoice::Always => !cli.no_color,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            !cli.no_color && stdout_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    // These work without a configuration, so that a broken one can still be checked.
    match &cli.command {
        Command::Config(args) => {
            let file = config::given(&matches, "file").then_some(cli.file.as_path());
            return finish(config::run(cli.config.as_deref(), file, args));
        }
        Command::Completions(args) => return finish(completions::completions(args)),
        Command::Man(args) => return finish(completions::man(args)),
        _ => {}
    }
    let loaded = match config::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(err) => return finish(Err(err)),
    };
    let file = match loaded.as_ref().and_then(|l| l.config.file.clone()) {
        Some(file) if !config::given(&matches, "file") => file,
        _ => cli.file,
    };
    let ctx = Context {
        file,
        config: loaded,
        matches: matches
            .subcommand()
            .map(|(_, m)| m.clone())
            .unwrap_or_default(),
        color,
        stdout_tty,
        stderr_tty: io::stderr().is_terminal(),
    };
    let result = match cli.command {
        Command::Append(args) => append::run(&ctx, args),
        Command::Tail(args) => tail::run(&ctx, &args),
        Command::Query(args) => query::run(&ctx, &args),
        Command::Stats(args) => stats::run(&ctx, &args),
        Command::Verify(args) => verify::run(&ctx, &args),
        Command::Export(args) => export::run(&ctx, &args),
        Command::Keygen(args) => trust::keygen(&ctx, &args),
        Command::Checkpoint(args) => trust::checkpoint(&ctx, &args),
        Command::Seal(args) => trust::seal(&args),
        Command::Proxy(args) => proxy::run(&ctx, args),
        Command::Serve(args) => serve::run(&ctx, args),
        Command::Rotate(args) => rotate::rotate(&ctx, &args),
        Command::Prune(args) => rotate::prune(&ctx, &args),
        Command::Config(_) | Command::Completions(_) | Command::Man(_) => Ok(exit::OK),
        Command::Ship(args) => ship::run(&ctx, &args),
    };
    finish(result)
}

/// The exit code of a command's outcome, printing its error.
fn finish(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::from(exit::OK),
        Err(err) => {
            eprintln!("nexus-audit: error: {}", one_line(&format!("{err:#}")));
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Folds clap's usage error (message, tips, usage, "for more information") into one sentence:
/// the message and its tips, then a pointer to `--help`.
fn usage_error_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    one_line(&format!("{} (see --help)", parts.join("; ")))
}

/// Keeps an error to one line, whatever its causes contain.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Thousands separators for people: 1,700,000.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Opens the log for reading, with the error a person needs when it is not there.
fn open_snapshot(ctx: &Context) -> anyhow::Result<crate::Snapshot> {
    use anyhow::Context as _;
    if !ctx.file.exists() && std::fs::symlink_metadata(&ctx.file).is_err() {
        anyhow::bail!(
            "the log file {} does not exist (set --file or NEXUS_AUDIT_FILE)",
            ctx.file.display()
        );
    }
    crate::Snapshot::open(&ctx.file)
        .with_context(|| format!("cannot read the log {}", ctx.file.display()))
}

/// One file a reader reads: the log itself when it is not rotated, else one of its parts.
pub struct ReadPart {
    /// The segment or live file; `None` for an unrotated log (opened as it always was).
    part: Option<crate::Part>,
}

impl ReadPart {
    /// Opens it: the unrotated log with [`open_snapshot`]'s errors, a part mapped or
    /// decompressed in memory.
    pub fn open(&self, ctx: &Context) -> anyhow::Result<crate::Snapshot> {
        use anyhow::Context as _;
        match &self.part {
            None => open_snapshot(ctx),
            Some(part) => part
                .open()
                .with_context(|| format!("cannot read the log segment {}", part.path.display())),
        }
    }

    /// The file to name in warnings.
    pub fn path<'a>(&'a self, ctx: &'a Context) -> &'a std::path::Path {
        self.part.as_ref().map_or(&ctx.file, |p| &p.path)
    }

    /// True for the live file (and for an unrotated log).
    pub fn is_live(&self) -> bool {
        self.part.as_ref().is_none_or(|p| p.segment.is_none())
    }
}

/// The files a reader needs, oldest first: the log alone when it is not rotated; else its
/// segments and live file, leaving out the segments whose records the manifest's timestamps
/// put outside `[since, until)` (they are never opened).
fn read_parts(ctx: &Context, filter: &Filter) -> anyhow::Result<Vec<ReadPart>> {
    use anyhow::Context as _;
    let set = crate::LogSet::open(&ctx.file)
        .with_context(|| format!("cannot read the log {}", ctx.file.display()))?;
    if !set.is_rotated() {
        return Ok(vec![ReadPart { part: None }]);
    }
    if set.parts.is_empty() {
        anyhow::bail!(
            "the log file {} and its segments do not exist (set --file or NEXUS_AUDIT_FILE)",
            ctx.file.display()
        );
    }
    Ok(set
        .parts_in(filter.since, filter.until)
        .into_iter()
        .map(|p| ReadPart {
            part: Some(p.clone()),
        })
        .collect())
}

/// The whole log as one snapshot: the file itself, or a rotated log's parts joined in memory
/// (the bytes one unrotated log would hold).
fn open_whole(ctx: &Context) -> anyhow::Result<crate::Snapshot> {
    use anyhow::Context as _;
    let set = crate::LogSet::open(&ctx.file)
        .with_context(|| format!("cannot read the log {}", ctx.file.display()))?;
    if !set.is_rotated() {
        return open_snapshot(ctx);
    }
    set.joined()
        .with_context(|| format!("cannot read the log {}", ctx.file.display()))
}

/// What the engine hands on for a line: its record when `matcher` keeps it, or why it is not
/// a record (to warn about); `None` for a record the filter drops.
pub fn keep<'a>(
    line: &'a [u8],
    matcher: &crate::filter::Matcher,
) -> Option<Result<crate::RecordView<'a>, crate::reader::NotRecord>> {
    match crate::reader::read_record(line) {
        Ok(view) if !matcher.matches(&view) => None,
        parsed => Some(parsed),
    }
}

/// The warning's reason for a line that is not a record.
pub fn not_a_record(why: crate::reader::NotRecord) -> &'static str {
    use crate::reader::NotRecord;
    match why {
        NotRecord::EmptyLine => "not a record (empty_line)",
        NotRecord::BadUtf8 => "not a record (bad_utf8)",
        NotRecord::NotObject => "not a record (not_object)",
        _ => "not a record (bad_json)",
    }
}

/// The byte offset of `line`, a slice of `data`, within `data`.
fn offset_in(data: &[u8], line: &[u8]) -> u64 {
    (line.as_ptr() as usize).saturating_sub(data.as_ptr() as usize) as u64
}

/// How many skipped lines a reader names one by one; the rest are counted.
const NAMED_SKIPS: usize = 10;

/// The lines a reader skipped because they are not records (the decision of
/// [`crate::reader::read_record`], the same in every reader), or because the output
/// format cannot hold them. They are counted, and the first few named on stderr after the
/// output, so the output itself stays whole and valid.
#[derive(Debug, Default)]
pub struct Skipped(std::cell::RefCell<SkippedLines>);

#[derive(Debug, Default)]
struct SkippedLines {
    total: u64,
    /// `(byte offset, why)` of the first lines met.
    named: Vec<(u64, &'static str)>,
    /// The lines were not skipped but covered as they are (a checkpoint).
    covered: bool,
}

impl Skipped {
    /// For a command that covers every line as stored (`checkpoint`): the warnings say the
    /// lines are not records, not that they were skipped.
    pub fn covered() -> Self {
        let s = Skipped::default();
        s.0.borrow_mut().covered = true;
        s
    }

    /// True when nothing was skipped.
    pub fn is_empty(&self) -> bool {
        self.0.borrow().total == 0
    }

    /// Counts the line at byte `offset` as skipped, for the reason `why` (a phrase: "not a
    /// record (bad_json)").
    pub fn add(&self, offset: u64, why: &'static str) {
        let mut s = self.0.borrow_mut();
        s.total += 1;
        if s.named.len() < NAMED_SKIPS {
            s.named.push((offset, why));
        }
    }

    /// Counts lines skipped elsewhere (a library pass), `named` being the first few of them.
    pub fn add_all(&self, total: u64, named: &[(u64, &'static str)]) {
        for &(offset, why) in named {
            self.add(offset, why);
        }
        self.0.borrow_mut().total += total.saturating_sub(named.len() as u64);
    }

    /// Prints one warning per named line (its line number counted in `data`, the complete
    /// lines of `file` from byte 0; without `data`, as "a new line") and one for the rest.
    /// Nothing when nothing was skipped.
    pub fn warn(&self, file: &std::path::Path, data: Option<&[u8]>) {
        match data {
            Some(data) => self.warn_in(file, Some(&[data])),
            None => self.warn_in(file, None),
        }
    }

    /// [`warn`](Skipped::warn) with line numbers counted over `sources` taken as one sequence
    /// (a rotated log's parts).
    pub fn warn_in(&self, file: &std::path::Path, sources: Option<&[&[u8]]>) {
        let s = self.0.borrow();
        if s.total == 0 {
            return;
        }
        let mut named = s.named.clone();
        named.sort_unstable();
        let (mut counted_to, mut lines_before) = (0usize, 0u64);
        let mut err = io::stderr().lock();
        for (offset, why) in &named {
            let place = match sources {
                Some(sources) => {
                    let total: usize = sources.iter().map(|d| d.len()).sum();
                    let at = usize::try_from(*offset)
                        .unwrap_or(usize::MAX)
                        .clamp(counted_to, total.max(counted_to));
                    lines_before += newlines_in(sources, counted_to..at);
                    counted_to = at;
                    format!("line {}", grouped(lines_before + 1))
                }
                None => "a new line".to_owned(),
            };
            let file = sanitize_path(file);
            let _ = if s.covered {
                writeln!(
                    err,
                    "nexus-audit: warning: {place} of {file} is {why}; the checkpoint covers it as stored (verify reports it)"
                )
            } else {
                writeln!(
                    err,
                    "nexus-audit: warning: skipped {place} of {file}: {why}"
                )
            };
        }
        if s.total > named.len() as u64 {
            let verb = if s.covered { "found" } else { "skipped" };
            let _ = writeln!(
                err,
                "nexus-audit: warning: {verb} {} lines in all that are not records; `nexus-audit verify` lists every one",
                grouped(s.total)
            );
        }
    }
}

/// The LFs within `range` of the concatenation of `sources`.
fn newlines_in(sources: &[&[u8]], range: std::ops::Range<usize>) -> u64 {
    let mut base = 0usize;
    let mut n = 0u64;
    for data in sources {
        let (lo, hi) = (
            range.start.clamp(base, base + data.len()),
            range.end.clamp(base, base + data.len()),
        );
        n += memchr::memchr_iter(b'\n', &data[lo - base..hi - base]).count() as u64;
        base += data.len();
    }
    n
}

fn sanitize_path(path: &std::path::Path) -> String {
    output::sanitize(&path.display().to_string()).into_owned()
}

/// Parses `--threads`: 1 to [`crate::MAX_THREADS`].
pub fn threads_arg(s: &str) -> Result<usize, String> {
    let max = crate::MAX_THREADS;
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("the number of worker threads must be 1 to {max}"))
}

/// Where `export -o` and `checkpoint -o` write: standard output, or a file written under a
/// temporary name and put in place only when complete.
pub enum Output {
    /// Standard output (no `-o`, or `-o -`).
    Stdout(io::StdoutLock<'static>),
    /// A file; `replace` when an existing file is being replaced (`--force`).
    File {
        /// The temporary file.
        file: crate::fs::AtomicFile,
        /// Replace an existing file at the target.
        replace: bool,
    },
}

impl Output {
    /// Standard output for `None` or `-`; else the checked file at `path`, created with `mode`.
    pub fn open(
        path: Option<&std::path::Path>,
        guard: &crate::fs::Guard,
        force: bool,
        mode: u32,
    ) -> anyhow::Result<Self> {
        match path {
            None => Ok(Output::Stdout(io::stdout().lock())),
            Some(p) if p.as_os_str() == "-" => Ok(Output::Stdout(io::stdout().lock())),
            Some(p) => {
                let replace = guard.check(p, force)?;
                let file = crate::fs::AtomicFile::create(p, mode)?;
                Ok(Output::File { file, replace })
            }
        }
    }

    /// Flushes standard output, or puts the complete file in place.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::Stdout(mut out) => Ok(out.flush()?),
            Output::File { file, replace } => Ok(file.commit(replace)?),
        }
    }
}

impl io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(out) => out.write(buf),
            Output::File { file, .. } => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::File { file, .. } => file.flush(),
        }
    }
}
