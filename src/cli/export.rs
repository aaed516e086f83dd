//! `export`: matching records, oldest first, streamed as jsonl, json or csv.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

use super::output::{Format, RecordWriter};
use nexus_audit::RecordView;
use nexus_audit::scan::for_each_match;

use super::progress::Progress;
use super::{Context, FilterArgs, exit, open_snapshot};

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
    /// Write to this file (mode 0600; never the log itself) instead of standard output.
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
        Some(path) => Box::new(create_private(path, ctx)?),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = RecordWriter::new(format, BufWriter::with_capacity(1 << 20, sink), false)?;
    let data = snapshot.data();
    let progress = Progress::new(ctx, data.len() as u64, "exporting");
    let keep = |line: &[u8]| RecordView::parse(line).is_ok_and(|v| matcher.matches(&v));
    for_each_match(
        data,
        false,
        None,
        &keep,
        &|done| progress.set(done),
        |line| -> anyhow::Result<bool> {
            if let Ok(view) = RecordView::parse(line) {
                out.record(line, &view)?;
            }
            Ok(true)
        },
    )?;
    progress.finish();
    out.finish()?;
    Ok(exit::OK)
}

/// Creates (or truncates) the export file with mode 0600, refusing the log itself: truncating
/// it would destroy the records being exported.
fn create_private(path: &Path, ctx: &Context) -> anyhow::Result<File> {
    if let (Ok(out), Ok(log)) = (std::fs::metadata(path), std::fs::metadata(&ctx.file))
        && out.dev() == log.dev()
        && out.ino() == log.ino()
    {
        bail!(
            "refusing to export into {}: it is the log being read",
            path.display()
        );
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // NOTE: `mode` applies only on creation; an existing file gets the same protection.
    file.set_permissions(Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    Ok(file)
}
