//! `query`: matching records, newest first.

use std::io::{self, BufWriter};

use clap::Args;

use super::output::{Format, RecordWriter};
use nexus_audit::RecordView;
use nexus_audit::scan::for_each_match;

use super::progress::Progress;
use super::{Context, FilterArgs, exit, open_snapshot};

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// At most this many records (0: no limit).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Skip this many matching records first.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Oldest first instead of newest first.
    #[arg(long)]
    asc: bool,
    /// Output format [default: table on a terminal, else jsonl].
    #[arg(long, value_enum)]
    output: Option<Format>,
}

pub fn run(ctx: &Context, args: &QueryArgs) -> anyhow::Result<u8> {
    let matcher = args.filter.to_filter()?.matcher();
    let snapshot = open_snapshot(ctx)?;
    let format = Format::or_default(args.output, ctx);
    let limit = if args.limit == 0 {
        usize::MAX
    } else {
        args.limit
    };
    let mut out = RecordWriter::new(format, BufWriter::new(io::stdout().lock()), ctx.color)?;
    let data = snapshot.data();
    let progress = Progress::new(ctx, data.len() as u64, "searching");
    let keep = |line: &[u8]| RecordView::parse(line).is_ok_and(|v| matcher.matches(&v));
    let (mut skipped, mut shown) = (0usize, 0usize);
    for_each_match(
        data,
        !args.asc,
        None,
        &keep,
        &|done| progress.set(done),
        |line| -> anyhow::Result<bool> {
            if skipped < args.offset {
                skipped += 1;
                return Ok(true);
            }
            if let Ok(view) = RecordView::parse(line) {
                out.record(line, &view)?;
                shown += 1;
            }
            Ok(shown < limit)
        },
    )?;
    progress.finish();
    out.finish()?;
    Ok(exit::OK)
}
