//! `export`: matching records, oldest first, streamed as jsonl, json or csv.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::output::{Format, RecordWriter};
use super::{Context, FilterArgs, exit, matching, open_snapshot};

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
    /// Write to this file (created 0600) instead of standard output.
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: &ExportArgs) -> anyhow::Result<u8> {
    let matcher = args.filter.to_filter()?.matcher();
    let snapshot = open_snapshot(ctx)?;
    let format = match args.format {
        ExportFormat::Jsonl => Format::Jsonl,
        ExportFormat::Json => Format::Json,
        ExportFormat::Csv => Format::Csv,
    };
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = RecordWriter::new(format, BufWriter::with_capacity(1 << 20, sink), false)?;
    for (line, view) in matching(snapshot.lines(), &matcher) {
        out.record(line, &view)?;
    }
    out.finish()?;
    Ok(exit::OK)
}
