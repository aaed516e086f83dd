//! `query`: matching records, newest first.

use std::io::{self, BufWriter};

use clap::Args;

use super::output::{Format, RecordWriter};
use crate::scan::for_each_match;

use super::progress::Progress;
use super::{Context, FilterArgs, Skipped, exit, read_parts};

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
    let filter = args.filter.to_filter()?;
    let matcher = filter.matcher();
    let mut parts = read_parts(ctx, &filter)?;
    if !args.asc {
        parts.reverse();
    }
    let format = Format::or_default(args.output, ctx);
    let limit = if args.limit == 0 {
        usize::MAX
    } else {
        args.limit
    };
    let mut out = RecordWriter::new(format, BufWriter::new(io::stdout().lock()), ctx.color)?;
    let (mut passed, mut shown) = (0usize, 0usize);
    // A part's warnings name its lines, so a part with any is kept until they are printed,
    // after the output.
    let mut warnings = Vec::new();
    for part in &parts {
        if shown >= limit {
            break;
        }
        let snapshot = part.open(ctx)?;
        let data = snapshot.data();
        let progress = Progress::new(ctx, data.len() as u64, "searching");
        let skipped = Skipped::default();
        // Lines that are not records are kept too, to be counted in order below; each line is
        // parsed once, and the view travels with it.
        let keep = |line| super::keep(line, &matcher);
        for_each_match(
            data,
            !args.asc,
            None,
            &keep,
            &|done| progress.set(done),
            |line, parsed| -> anyhow::Result<bool> {
                let offset = super::offset_in(data, line);
                let view = match parsed {
                    Ok(view) => view,
                    Err(why) => {
                        skipped.add(offset, super::not_a_record(why));
                        return Ok(true);
                    }
                };
                if passed < args.offset {
                    passed += 1;
                    return Ok(true);
                }
                match out.record(line, &view)? {
                    Ok(()) => shown += 1,
                    Err(why) => skipped.add(offset, why),
                }
                Ok(shown < limit)
            },
        )?;
        progress.finish();
        if !skipped.is_empty() {
            warnings.push((part.path(ctx).to_path_buf(), snapshot, skipped));
        }
    }
    out.finish()?;
    for (path, snapshot, skipped) in &warnings {
        skipped.warn(path, Some(snapshot.data()));
    }
    Ok(exit::OK)
}
