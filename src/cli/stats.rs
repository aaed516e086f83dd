//! `stats`: a summary of matching records for dashboards.

use std::io::{self, Write};

use crate::stats::{Interval, Stats, StatsOptions, stats_of};
use clap::{Args, ValueEnum};

use super::output::{Format, csv_io, paint, sanitize, write_value};
use super::{Context, FilterArgs, Skipped, exit, grouped, read_parts};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum IntervalArg {
    Hour,
    Day,
    Week,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Add a timeline of counts and errors per hour, day or week.
    #[arg(long, value_enum)]
    interval: Option<IntervalArg>,
    /// Only the last N records of the log.
    #[arg(long)]
    last: Option<u64>,
    /// Worker threads, 1 to 1024 [default: all cores].
    #[arg(long, value_parser = super::threads_arg)]
    threads: Option<usize>,
    /// Output format: table, json, jsonl, yaml or csv (section,key,value)
    /// [default: table on a terminal, else jsonl].
    #[arg(long, value_enum)]
    output: Option<Format>,
}

pub fn run(ctx: &Context, args: &StatsArgs) -> anyhow::Result<u8> {
    let filter = args.filter.to_filter()?;
    let matcher = filter.matcher();
    // Every part in range at once (mapped, or decompressed in memory): the summary's passes
    // read them as one sequence.
    let snapshots = read_parts(ctx, &filter)?
        .iter()
        .map(|p| p.open(ctx))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sources: Vec<&[u8]> = snapshots.iter().map(crate::Snapshot::data).collect();
    let opts = StatsOptions {
        interval: args.interval.map(|i| match i {
            IntervalArg::Hour => Interval::Hour,
            IntervalArg::Day => Interval::Day,
            IntervalArg::Week => Interval::Week,
        }),
        last: args.last,
        threads: args.threads,
        max_distinct: None,
    };
    let total: u64 = sources.iter().map(|d| d.len() as u64).sum();
    let progress = super::progress::Progress::new(ctx, total, "counting");
    let summary = stats_of(&sources, &matcher, &opts, &|done| progress.set(done))?;
    progress.finish();
    let mut out = io::stdout().lock();
    match Format::or_default(args.output, ctx) {
        Format::Table => human(&mut out, &summary, ctx.color)?,
        Format::Csv => csv_rows(&mut out, &serde_json::to_value(&summary)?)?,
        format => write_value(&mut out, format, &serde_json::to_value(&summary)?)?,
    }
    out.flush()?;
    let skipped = Skipped::default();
    let named: Vec<(u64, &'static str)> = summary
        .unreadable_first
        .iter()
        .map(|(offset, why)| (*offset, super::not_a_record(*why)))
        .collect();
    skipped.add_all(summary.unreadable_lines, &named);
    skipped.warn_in(&ctx.file, Some(&sources));
    Ok(exit::OK)
}

fn csv_rows(out: &mut impl Write, value: &serde_json::Value) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["section", "key", "value"])
        .map_err(csv_io)?;
    let serde_json::Value::Object(map) = value else {
        return Ok(());
    };
    for (section, v) in map {
        match v {
            serde_json::Value::Object(inner) => {
                for (k, v) in inner {
                    w.write_record([section.as_str(), k, &scalar(v)])
                        .map_err(csv_io)?;
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    w.write_record([section.as_str(), &i.to_string(), &scalar(item)])
                        .map_err(csv_io)?;
                }
            }
            other => w
                .write_record([section.as_str(), "", &scalar(other)])
                .map_err(csv_io)?,
        }
    }
    w.flush()
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn human(out: &mut impl Write, s: &Stats, color: bool) -> io::Result<()> {
    let bold = |t: &str| paint(color, "\x1b[1m", t);
    let pct = |n: u64| {
        if s.total_entries == 0 {
            String::new()
        } else {
            let p = n as f64 * 100.0 / s.total_entries as f64;
            format!(" ({p:.1}%)")
        }
    };
    writeln!(out, "{} {}", bold("Records:"), grouped(s.total_entries))?;
    if let (Some(a), Some(b)) = (&s.first_timestamp, &s.last_timestamp) {
        writeln!(
            out,
            "{} {} .. {}",
            bold("Period: "),
            sanitize(a),
            sanitize(b)
        )?;
    }
    writeln!(
        out,
        "{} {}{}",
        bold("Errors: "),
        grouped(s.error_count),
        pct(s.error_count)
    )?;
    writeln!(out, "{} {}", bold("Mock:   "), grouped(s.mock_mode_calls))?;
    let l = &s.latency_ms;
    if l.count > 0 {
        let f = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        writeln!(
            out,
            "{} min {}  p50 {}  p90 {}  p95 {}  p99 {}  max {}  mean {:.1} (ms, {} calls)",
            bold("Latency:"),
            f(l.min),
            f(l.p50),
            f(l.p90),
            f(l.p95),
            f(l.p99),
            f(l.max),
            l.mean.unwrap_or(0.0),
            grouped(l.count)
        )?;
    }
    let breakdown =
        |out: &mut dyn Write, title: &str, items: Vec<(&String, &u64)>| -> io::Result<()> {
            if items.is_empty() {
                return Ok(());
            }
            writeln!(out, "{}", bold(title))?;
            let width = items
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0);
            for (k, v) in items {
                writeln!(out, "  {:width$}  {:>10}", sanitize(k), grouped(*v))?;
            }
            Ok(())
        };
    breakdown(out, "Status", by_count(&s.status_breakdown))?;
    breakdown(out, "Shards", by_count(&s.shard_breakdown))?;
    breakdown(out, "Categories", by_count(&s.action_category_breakdown))?;
    let tools: Vec<(&String, &u64)> = s.top_10_tools.iter().map(|(t, c)| (t, c)).collect();
    breakdown(out, "Top tools", tools)?;
    let mut users = by_count(&s.by_user);
    users.truncate(10);
    breakdown(out, "Top users", users)?;
    if !s.recent_errors.is_empty() {
        writeln!(out, "{}", bold("Recent errors"))?;
        for e in &s.recent_errors {
            writeln!(
                out,
                "  {}  {}  {}: {}",
                sanitize(e.timestamp.as_deref().unwrap_or("")),
                sanitize(e.tool.as_deref().unwrap_or("")),
                sanitize(e.error_type.as_deref().unwrap_or("error")),
                sanitize(e.error_message.as_deref().unwrap_or(""))
            )?;
        }
    }
    for (name, t) in &s.truncated_breakdowns {
        writeln!(
            out,
            "{} {name} has too many distinct values to list: shown are the {} with more than {} records each (exact counts); {} records are under values not shown",
            bold("Note:"),
            grouped(t.values_listed),
            grouped(t.listed_when_more_than),
            grouped(t.records_not_listed)
        )?;
    }
    if let Some(timeline) = &s.timeline {
        writeln!(out, "{}", bold("Timeline"))?;
        for b in timeline {
            writeln!(
                out,
                "  {}  {:>10} calls  {:>8} errors",
                sanitize(&b.start),
                grouped(b.count),
                grouped(b.errors)
            )?;
        }
    }
    Ok(())
}

fn by_count(m: &std::collections::BTreeMap<String, u64>) -> Vec<(&String, &u64)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v
}
