//! `verify`: check every line and link; exit 1 when anything was altered.

use std::io::{self, Write};

use clap::Args;
use nexus_audit::verify::{Report, VerifyOptions, verify_snapshot};

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
    /// Output format: table (a sentence per problem), json, jsonl or yaml
    /// [default: table on a terminal, else jsonl].
    #[arg(long, value_enum)]
    output: Option<Format>,
}

pub fn run(ctx: &Context, args: &VerifyArgs) -> anyhow::Result<u8> {
    let snapshot = open_snapshot(ctx)?;
    let opts = VerifyOptions {
        max_problems: args.max_problems,
        threads: args.threads,
    };
    let progress = super::progress::Progress::new(ctx, snapshot.data().len() as u64, "verifying");
    let report = verify_snapshot(&snapshot, &opts, &|done| progress.set(done))?;
    progress.finish();
    let mut out = io::stdout().lock();
    match Format::or_default(args.output, ctx) {
        Format::Table | Format::Csv => human(&mut out, &report, ctx.color)?,
        format => write_value(&mut out, format, &serde_json::to_value(&report)?)?,
    }
    out.flush()?;
    Ok(if report.ok { exit::OK } else { exit::INTEGRITY })
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
    if r.ok {
        writeln!(
            out,
            "{}: {} {noun}{span}{head}",
            paint(color, "\x1b[32m", "OK"),
            grouped(r.records)
        )?;
        return Ok(());
    }
    for p in &r.problems {
        let seq = p.seq.map(|s| format!(" (seq {s})")).unwrap_or_default();
        writeln!(
            out,
            "line {}{seq}: {}: {}",
            grouped(p.line),
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
        "{}: {} problem{plural} in {}{listed}: {} {noun}{span}{head}",
        paint(color, "\x1b[31m", "FAILED"),
        grouped(r.problems_total),
        sanitize(&r.file),
        grouped(r.records)
    )
}
