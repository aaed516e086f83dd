//! `query`: matching records, newest first.

use std::io::{self, BufWriter};

use clap::Args;

use super::output::{Format, RecordWriter};
use super::{Context, FilterArgs, exit, matching, open_snapshot};

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
    let lines: Box<dyn Iterator<Item = (u64, &[u8])>> = if args.asc {
        Box::new(snapshot.lines())
    } else {
        Box::new(snapshot.lines_rev())
    };
    for (line, view) in matching(lines, &matcher).skip(args.offset).take(limit) {
        out.record(line, &view)?;
    }
    out.finish()?;
    Ok(exit::OK)
}
