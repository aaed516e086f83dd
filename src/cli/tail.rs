//! `tail`: the last N matching records, oldest first; `--follow` keeps printing new ones.

use std::fs::File;
use std::io::{self, BufWriter, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use nexus_audit::filter::Matcher;
use nexus_audit::reader::Lines;

use super::output::{Format, RecordWriter};
use super::{Context, FilterArgs, Skipped, exit, matching, open_snapshot};

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
    let matcher = args.filter.to_filter()?.matcher();
    let snapshot = open_snapshot(ctx)?;
    let mut format = Format::or_default(args.output, ctx);
    if args.follow && format == Format::Json {
        // NOTE: an array that never ends is not JSON; follow JSON as one object per line.
        format = Format::Jsonl;
    }
    let skipped = Skipped::default();
    let mut found: Vec<_> = matching(snapshot.lines_rev(), &matcher, &skipped)
        .take(args.lines)
        .collect();
    found.reverse();
    let mut out = RecordWriter::new(format, BufWriter::new(io::stdout().lock()), ctx.color)?;
    for (line, view) in &found {
        if let Err(why) = out.record(line, view)? {
            skipped.add(super::offset_in(snapshot.data(), line), why);
        }
    }
    out.finish()?;
    skipped.warn(&ctx.file, Some(snapshot.data()));
    if !args.follow {
        return Ok(exit::OK);
    }
    let start = snapshot.data().len() as u64;
    drop(found);
    drop(snapshot);
    follow(ctx, &matcher, format, start)
}

/// Polls the file for new complete lines. A new inode at the path (rotation) or a shorter
/// file starts again from the new file's beginning.
fn follow(ctx: &Context, matcher: &Matcher, format: Format, mut pos: u64) -> anyhow::Result<u8> {
    let open =
        || File::open(&ctx.file).with_context(|| format!("cannot open {}", ctx.file.display()));
    let mut file = open()?;
    let mut ino = file.metadata()?.ino();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if let Ok(meta) = std::fs::metadata(&ctx.file) {
            if meta.ino() != ino {
                // Rotated: drain what the old file still had, then switch.
                read_new(&mut file, &mut pos, &mut pending)?;
                print_complete(&mut pending, matcher, format, ctx)?;
                file = open()?;
                ino = file.metadata()?.ino();
                pos = 0;
                pending.clear();
            } else if meta.len() < pos {
                pos = 0;
                pending.clear();
            }
        }
        if read_new(&mut file, &mut pos, &mut pending)? > 0 {
            print_complete(&mut pending, matcher, format, ctx)?;
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn read_new(file: &mut File, pos: &mut u64, pending: &mut Vec<u8>) -> io::Result<usize> {
    file.seek(SeekFrom::Start(*pos))?;
    let n = file.take(16 << 20).read_to_end(pending)?;
    *pos += n as u64;
    Ok(n)
}

fn print_complete(
    pending: &mut Vec<u8>,
    matcher: &Matcher,
    format: Format,
    ctx: &Context,
) -> io::Result<()> {
    let Some(last_lf) = memchr::memrchr(b'\n', pending) else {
        return Ok(());
    };
    let complete: Vec<u8> = pending.drain(..=last_lf).collect();
    let mut out = RecordWriter::new(format, BufWriter::new(io::stdout().lock()), ctx.color)?;
    out.headerless();
    let skipped = Skipped::default();
    for (line, view) in matching(Lines::new(&complete, 0), matcher, &skipped) {
        if let Err(why) = out.record(line, &view)? {
            skipped.add(super::offset_in(&complete, line), why);
        }
    }
    out.finish()?;
    skipped.warn(&ctx.file, None);
    Ok(())
}
