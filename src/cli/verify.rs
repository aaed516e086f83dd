//! `verify`: check every line and link; exit 1 when anything was altered.

use std::io::{self, Write};

use std::path::PathBuf;

use crate::chain::seal_key::KeyFile;
use crate::trust::note::VerifierKey;
use crate::trust::state::{DEFAULT_SAMPLES, MAX_SAMPLES};
use crate::{Report, Verifier};
use anyhow::{Context as _, bail};
use clap::Args;

use super::output::{Format, paint, sanitize, write_value};
use super::{Context, exit, grouped, open_snapshot};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// List at most this many problems (all are counted).
    #[arg(long, default_value_t = 100)]
    max_problems: usize,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// A signed checkpoint to check the log against (repeatable).
    #[arg(long = "checkpoint", value_name = "FILE")]
    checkpoints: Vec<PathBuf>,
    /// A verifier key file (PREFIX.pub from keygen) trusted to sign checkpoints (repeatable).
    #[arg(long = "pub", value_name = "FILE")]
    keys: Vec<PathBuf>,
    /// Remember the verified size and head in FILE, and refuse a log that no longer matches it.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// With --state: check the records appended since, their link to the remembered head, and
    /// the state's proof of the records before it (its last 1 MiB and a random sample), not
    /// every old record.
    #[arg(long, requires = "state")]
    incremental: bool,
    /// With --state: how many records a full run samples at random for later incremental
    /// runs to check (1 to 65536) [default: 1024]; incremental runs keep the state's number.
    #[arg(long, requires = "state", value_name = "N")]
    samples: Option<usize>,
    /// The initial seal key (seal.verify): check every seal record.
    #[arg(long, value_name = "FILE")]
    seal_verify: Option<PathBuf>,
    /// A rotated log: also check the archive copies of pruned segments in DIR (where
    /// `prune --archive DIR` put them), as part of the one chain.
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
    /// Output format: table (a sentence per problem), json, jsonl or yaml
    /// [default: table on a terminal, else jsonl].
    #[arg(long, value_enum)]
    output: Option<Format>,
    /// Check a shipped copy instead (postgres://…): report each record missing, extra,
    /// changed or reordered in it, else confirm it re-hashes and re-links to the log's head.
    #[arg(long, value_name = "URL")]
    against: Option<String>,
}

pub fn run(ctx: &Context, args: &VerifyArgs) -> anyhow::Result<u8> {
    if let Some(url) = &args.against {
        return against(ctx, args, url);
    }
    let verifier = verifier(args)?;
    let set = crate::LogSet::open(&ctx.file)
        .with_context(|| format!("cannot read the log {}", ctx.file.display()))?;
    let report = if set.is_rotated() {
        if let Some(dir) = &args.archive
            && !dir.is_dir()
        {
            bail!("the archive directory {} does not exist", dir.display());
        }
        let total = set
            .parts
            .iter()
            .map(|p| match &p.closed {
                Some(c) => c.bytes,
                None => std::fs::metadata(&p.path).map_or(0, |m| m.len()),
            })
            .sum();
        let progress = super::progress::Progress::new(ctx, total, "verifying");
        let report = verifier.run_log(&ctx.file, args.archive.as_deref(), &|done| {
            progress.set(done);
        });
        progress.finish();
        report.with_context(|| format!("cannot verify the log {}", ctx.file.display()))?
    } else {
        if let Some(dir) = &args.archive {
            bail!(
                "{} has no manifest and no segments, so nothing of it was archived: verify it without --archive {}",
                ctx.file.display(),
                dir.display()
            );
        }
        let snapshot = open_snapshot(ctx)?;
        let progress =
            super::progress::Progress::new(ctx, snapshot.data().len() as u64, "verifying");
        let report = verifier.run_with_progress(&snapshot, &|done| progress.set(done));
        progress.finish();
        report?
    };
    let mut out = io::stdout().lock();
    match Format::or_default(args.output, ctx) {
        Format::Table | Format::Csv => human(&mut out, &report, ctx.color)?,
        format => write_value(&mut out, format, &serde_json::to_value(&report)?)?,
    }
    out.flush()?;
    Ok(if report.ok { exit::OK } else { exit::INTEGRITY })
}

/// The verifier the arguments ask for, with the key, checkpoint and state files read (before
/// the log is opened, so a bad one is reported first).
fn verifier(args: &VerifyArgs) -> anyhow::Result<Verifier> {
    if !args.checkpoints.is_empty() && args.keys.is_empty() {
        bail!("--checkpoint needs the signer's verifier key: add --pub PREFIX.pub");
    }
    let mut verifier = Verifier::new()
        .max_problems(args.max_problems)
        .threads(args.threads)
        .incremental(args.incremental);
    for path in &args.keys {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key {}", path.display()))?;
        let key = VerifierKey::parse(&text)
            .with_context(|| format!("{} is not a verifier key", path.display()))?;
        verifier = verifier.key(key);
    }
    for path in &args.checkpoints {
        let note = std::fs::read(path)
            .with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
        verifier = verifier.checkpoint(path.display().to_string(), note);
    }
    if let Some(path) = &args.state {
        verifier = verifier.state(path)?;
    }
    let sample_size = args.samples.unwrap_or(DEFAULT_SAMPLES);
    if !(1..=MAX_SAMPLES).contains(&sample_size) {
        bail!("--samples must be between 1 and {MAX_SAMPLES}, not {sample_size}");
    }
    verifier = verifier.samples(sample_size);
    if let (Some(path), Some(state), true) =
        (&args.state, verifier.previous_state(), args.incremental)
    {
        let Some(proof) = &state.proof else {
            bail!(
                "the state file {} was written by an earlier nexus-audit and holds no proof of the records before its head, so --incremental could not check them: run verify --state {} once without --incremental (it checks the whole log and writes the new format)",
                path.display(),
                path.display()
            );
        };
        if args.samples.is_some_and(|n| n != proof.sample_size) {
            bail!(
                "--samples sets the sample a full run draws; the state {} keeps {} samples: run without --incremental to change it",
                path.display(),
                proof.sample_size
            );
        }
    }
    if let Some(path) = &args.seal_verify {
        verifier = verifier.seal_key(KeyFile::load(path)?);
    }
    Ok(verifier)
}

fn human(out: &mut impl Write, r: &Report, color: bool) -> io::Result<()> {
    let span = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!(", seq {a}..{b}"),
        _ => String::new(),
    };
    let head = r
        .head_hash
        .as_deref()
        .map(|h| format!(", head {}…", &h[..16]))
        .unwrap_or_default();
    let noun = if r.records == 1 { "record" } else { "records" };
    let mut extra = String::new();
    if r.checkpoints_checked > 0 {
        let s = if r.checkpoints_checked == 1 { "" } else { "s" };
        extra.push_str(&format!(
            "; {} checkpoint{s} checked",
            r.checkpoints_checked
        ));
    }
    if let Some(unsealed) = r.unsealed_records {
        match r.sealed_through_seq {
            Some(seq) => extra.push_str(&format!(
                "; sealed through seq {seq}, {} record(s) not yet sealed",
                grouped(unsealed)
            )),
            None => extra.push_str(&format!(
                "; no seal yet, {} record(s) unsealed",
                grouped(unsealed)
            )),
        }
    }
    if let Some(anchored) = &r.anchored {
        extra.push_str(&format!("; {anchored}"));
    }
    if r.ok {
        writeln!(
            out,
            "{}: {} {noun}{span}{head}{extra}",
            paint(color, "\x1b[32m", "OK"),
            grouped(r.records)
        )?;
        return Ok(());
    }
    for p in &r.problems {
        let seq = p.seq.map(|s| format!(" (seq {s})")).unwrap_or_default();
        let place = match (&p.file, p.line) {
            (Some(file), 0) => sanitize(file).into_owned(),
            (Some(file), line) => format!("line {}{seq} in {}", grouped(line), sanitize(file)),
            (None, 0) => "checkpoint".to_owned(),
            (None, line) => format!("line {}{seq}", grouped(line)),
        };
        writeln!(
            out,
            "{place}: {}: {}",
            paint(color, "\x1b[31m", p.kind.as_str()),
            sanitize(&p.message)
        )?;
    }
    let listed = if (r.problems.len() as u64) < r.problems_total {
        format!(
            " ({} listed; raise --max-problems to see more)",
            r.problems.len()
        )
    } else {
        String::new()
    };
    let plural = if r.problems_total == 1 { "" } else { "s" };
    writeln!(
        out,
        "{}: {} problem{plural} in {}{listed}: {} {noun}{span}{head}{extra}",
        paint(color, "\x1b[31m", "FAILED"),
        grouped(r.problems_total),
        sanitize(&r.file),
        grouped(r.records)
    )
}

/// `verify --against URL`: the shipped copy checked against the log.
fn against(ctx: &Context, args: &VerifyArgs, url: &str) -> anyhow::Result<u8> {
    let _ = open_snapshot(ctx)?;
    let against = crate::Against {
        url: url.to_owned(),
        options: super::ship::against_options(),
        max_problems: args.max_problems,
    };
    let report = crate::check_against(&ctx.file, &against)?;
    let mut out = io::stdout().lock();
    match Format::or_default(args.output, ctx) {
        Format::Table | Format::Csv => against_human(&mut out, &report, ctx.color)?,
        format => write_value(&mut out, format, &serde_json::to_value(&report)?)?,
    }
    out.flush()?;
    Ok(if report.ok { exit::OK } else { exit::INTEGRITY })
}

fn against_human(out: &mut impl Write, r: &crate::AgainstReport, color: bool) -> io::Result<()> {
    let span = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!(", seq {a}..{b}"),
        _ => String::new(),
    };
    let head = r
        .head_hash
        .as_deref()
        .map(|h| format!(", head {}…", &h[..16]))
        .unwrap_or_default();
    let noun = if r.records == 1 { "record" } else { "records" };
    let copy = sanitize(&r.against);
    if r.ok {
        let same = r
            .head_hash
            .as_deref()
            .map(|h| format!(" {}…", &h[..16]))
            .unwrap_or_default();
        return writeln!(
            out,
            "{}: the copy in {copy} holds the log's {} {noun}{span} exactly; it re-hashes and re-links to the same head{same}",
            paint(color, "\x1b[32m", "OK"),
            grouped(r.records)
        );
    }
    for p in &r.problems {
        writeln!(
            out,
            "seq {}: {}: {}",
            p.seq,
            paint(color, "\x1b[31m", p.kind),
            sanitize(&p.message)
        )?;
    }
    let listed = if (r.problems.len() as u64) < r.problems_total {
        format!(
            " ({} listed; raise --max-problems to see more)",
            r.problems.len()
        )
    } else {
        String::new()
    };
    let total = r.problems_total.max(1);
    let plural = if total == 1 { "" } else { "s" };
    writeln!(
        out,
        "{}: {} problem{plural} in the copy in {copy}{listed}: the log has {} {noun}{span}{head}, the copy {} rows",
        paint(color, "\x1b[31m", "FAILED"),
        grouped(total),
        grouped(r.records),
        grouped(r.rows)
    )
}
