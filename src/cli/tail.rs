//! `tail`: the last N matching records, oldest first; `--follow` keeps printing new ones.

use std::io::{self, BufWriter};
use std::time::Duration;

use crate::Snapshot;
use crate::filter::Matcher;
use crate::reader::{Follower, Lines, Update, read_record};
use crate::scan::for_each_match;
use anyhow::Context as _;
use clap::Args;

use super::output::{Format, RecordWriter};
use super::{
    Context, FilterArgs, Skipped, exit, grouped, keep, not_a_record, offset_in, read_parts,
};

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// How many records.
    #[arg(short = 'n', long = "lines", default_value_t = 10)]
    lines: usize,
    /// Keep printing new records as they are appended (also after the file is rotated).
    #[arg(long, short = 'F')]
    follow: bool,
    /// Output format [default: table on a terminal, else jsonl].
    #[arg(long, value_enum)]
    output: Option<Format>,
}

pub fn run(ctx: &Context, args: &TailArgs) -> anyhow::Result<u8> {
    let filter = args.filter.to_filter()?;
    let matcher = filter.matcher();
    let parts = read_parts(ctx, &filter)?;
    let mut format = Format::or_default(args.output, ctx);
    if args.follow && format == Format::Json {
        // NOTE: an array that never ends is not JSON; follow JSON as one object per line.
        format = Format::Jsonl;
    }
    // The last N matching records, newest first, from the newest part back: (part, offset in it, line).
    let mut found: Vec<(usize, u64, Vec<u8>)> = Vec::new();
    let mut opened: Vec<(usize, Snapshot, Skipped)> = Vec::new();
    let mut follower = None;
    for (i, part) in parts.iter().enumerate().rev() {
        if found.len() >= args.lines && !(args.follow && part.is_live()) {
            break;
        }
        let snapshot = part.open(ctx)?;
        let skipped = Skipped::default();
        let want = args.lines - found.len().min(args.lines);
        if want > 0 {
            // The window engine, newest first: parallel parsing, and a first window of 256
            // KiB, so a tail of a few records reads little of a large file.
            let data = snapshot.data();
            let mut taken = 0;
            for_each_match(
                data,
                true,
                None,
                &|line| keep(line, &matcher),
                &|_| {},
                |line, parsed| -> anyhow::Result<bool> {
                    let offset = offset_in(data, line);
                    match parsed {
                        Ok(_) => {
                            found.push((i, offset, line.to_vec()));
                            taken += 1;
                        }
                        Err(why) => skipped.add(offset, not_a_record(why)),
                    }
                    Ok(taken < want)
                },
            )?;
        }
        // NOTE: the follower remembers the snapshot's last lines before they are printed:
        // once printed, the map is not read again, so a file cut back under it cannot fault a
        // read.
        if args.follow && part.is_live() {
            follower = Some(
                Follower::after(&snapshot)
                    .with_context(|| format!("cannot follow {}", ctx.file.display()))?,
            );
        }
        opened.push((i, snapshot, skipped));
    }
    if args.follow && follower.is_none() {
        anyhow::bail!(
            "cannot follow {}: the live file does not exist (its segments were read; start tail --follow again once a record is appended)",
            ctx.file.display()
        );
    }
    found.reverse();
    let mut out = RecordWriter::new(format, BufWriter::new(io::stdout().lock()), ctx.color)?;
    for (i, offset, line) in &found {
        let Ok(view) = read_record(line) else {
            continue;
        };
        if let Err(why) = out.record(line, &view)?
            && let Some((_, _, skipped)) = opened.iter().find(|(j, _, _)| j == i)
        {
            skipped.add(*offset, why);
        }
    }
    out.finish()?;
    opened.reverse();
    for (i, snapshot, skipped) in &opened {
        skipped.warn(parts[*i].path(ctx), Some(snapshot.data()));
    }
    drop(found);
    drop(opened);
    match follower {
        Some(follower) => follow(ctx, &matcher, format, follower),
        None => Ok(exit::OK),
    }
}

/// Prints the lines the follower hands out, and says on stderr when the file changed under it.
fn follow(
    ctx: &Context,
    matcher: &Matcher,
    format: Format,
    mut follower: Follower,
) -> anyhow::Result<u8> {
    let name = ctx.file.display();
    loop {
        let updates = follower
            .poll()
            .with_context(|| format!("cannot follow {name}"))?;
        let mut read_lines = false;
        for update in updates {
            match update {
                Update::Lines(bytes) => {
                    read_lines = true;
                    print_lines(&bytes, matcher, format, ctx)?;
                }
                Update::Changed {
                    offset,
                    unconfirmed,
                } => eprintln!(
                    "nexus-audit: {name} changed under tail --follow (it is shorter, or its last line was rewritten): reading again after byte {offset}; {} record(s) read before are not where they were, and are not printed again if they come back unchanged",
                    grouped(unconfirmed)
                ),
                Update::Gone { offset, lines } => eprintln!(
                    "nexus-audit: {} record(s) read before are no longer in {name}: it has other records from byte {offset} on",
                    grouped(lines)
                ),
                Update::Skipped { from, to } => eprintln!(
                    "nexus-audit: {name} was cut back further than tail --follow remembers and written again: the records from byte {from} to byte {to} were not printed (some may have been read before)"
                ),
                Update::Rotated => {
                    eprintln!("nexus-audit: {name} was replaced by a new file; following it");
                }
            }
        }
        if !read_lines {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn print_lines(bytes: &[u8], matcher: &Matcher, format: Format, ctx: &Context) -> io::Result<()> {
    let mut out = RecordWriter::new(format, BufWriter::new(io::stdout().lock()), ctx.color)?;
    out.headerless();
    let skipped = Skipped::default();
    // NOTE: the few lines of one poll are filtered here, with the engine's `keep`, rather than
    // on a thread pool started for each poll.
    for (offset, line) in Lines::new(bytes, 0) {
        match keep(line, matcher) {
            Some(Ok(view)) => {
                if let Err(why) = out.record(line, &view)? {
                    skipped.add(offset, why);
                }
            }
            Some(Err(why)) => skipped.add(offset, not_a_record(why)),
            None => {}
        }
    }
    out.finish()?;
    skipped.warn(&ctx.file, None);
    Ok(())
}
