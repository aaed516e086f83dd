//! `export`: matching records, oldest first, streamed as jsonl, json or csv.

use std::io::BufWriter;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::output::{Format, RecordWriter};
use crate::fs::{Guard, PRIVATE};
use crate::scan::for_each_match;

use super::progress::Progress;
use super::{Context, FilterArgs, Output, Skipped, exit, read_parts};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    format: ExportFormat,
    /// Write to this new file (mode 0600, put in place only when complete) instead of
    /// standard output ('-'). Never the log, its segments or a key file.
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
    /// Replace an existing regular file at -o with a new one (never the log, its segments or a
    /// key file).
    #[arg(long, requires = "out")]
    force: bool,
}

pub fn run(ctx: &Context, args: &ExportArgs) -> anyhow::Result<u8> {
    let filter = args.filter.to_filter()?;
    let matcher = filter.matcher();
    let parts = read_parts(ctx, &filter)?;
    // NOTE: the first part is opened before the output is created, so a missing log leaves
    // no empty output file behind.
    let mut first = parts.first().map(|p| p.open(ctx)).transpose()?;
    let format = match args.format {
        ExportFormat::Jsonl => Format::Jsonl,
        ExportFormat::Json => Format::Json,
        ExportFormat::Csv => Format::Csv,
    };
    let guard = Guard::new().log(&ctx.file);
    let sink = Output::open(args.out.as_deref(), &guard, args.force, PRIVATE)?;
    let mut out = RecordWriter::new(format, BufWriter::with_capacity(1 << 20, sink), false)?;
    // A part's warnings name its lines, so a part with any is kept until they are printed,
    // after the output.
    let mut warnings = Vec::new();
    for part in &parts {
        let snapshot = match first.take() {
            Some(s) => s,
            None => part.open(ctx)?,
        };
        let data = snapshot.data();
        let progress = Progress::new(ctx, data.len() as u64, "exporting");
        // Lines that are not records are kept too, to be counted in order below; each line
        // is parsed once, and the view travels with it.
        let keep = |line| super::keep(line, &matcher);
        let skipped = Skipped::default();
        for_each_match(
            data,
            false,
            None,
            &keep,
            &|done| progress.set(done),
            |line, parsed| -> anyhow::Result<bool> {
                let offset = super::offset_in(data, line);
                match parsed {
                    Ok(view) => {
                        if let Err(why) = out.record(line, &view)? {
                            skipped.add(offset, why);
                        }
                    }
                    Err(why) => skipped.add(offset, super::not_a_record(why)),
                }
                Ok(true)
            },
        )?;
        progress.finish();
        if !skipped.is_empty() {
            warnings.push((part.path(ctx).to_path_buf(), snapshot, skipped));
        }
    }
    let sink = out
        .finish()?
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    sink.finish()?;
    for (path, snapshot, skipped) in &warnings {
        skipped.warn(path, Some(snapshot.data()));
    }
    Ok(exit::OK)
}
