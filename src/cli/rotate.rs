//! `rotate` and `prune`, and the rotation flags `append` and `proxy` share (`--max-size`,
//! `--max-age`, `--compress`).

use std::io::Write as _;
use std::path::PathBuf;

use crate::config::{Compress, Span};
use crate::{Compression, LogOptions, PruneOptions};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{Context, exit};

/// How closed segments are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompressArg {
    /// zstd, at its default level (`….jsonl.zst`).
    Zstd,
    /// Plain JSONL.
    None,
}

impl CompressArg {
    fn compression(self) -> Compression {
        match self {
            CompressArg::Zstd => Compression::Zstd,
            CompressArg::None => Compression::None,
        }
    }
}

/// The rotation flags of `append` and `proxy`.
#[derive(Debug, Args, Clone)]
pub struct RotationArgs {
    /// Close the live file into a segment before a write once it holds SIZE bytes: a number
    /// with an optional unit, B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of
    /// 1024), e.g. 256MiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,
    /// Close the live file into a segment before a write once its first record is SPAN old
    /// (90s, 15m, 12h, 1d, 2w).
    #[arg(long, value_name = "SPAN", value_parser = parse_std_span)]
    max_age: Option<std::time::Duration>,
    /// How closed segments are stored.
    #[arg(long, value_enum, default_value_t = CompressArg::Zstd)]
    compress: CompressArg,
}

impl RotationArgs {
    /// The options with these flags applied, else the configuration file's `[rotation]` (and,
    /// in test builds, the crash point a test asked for).
    pub fn apply(&self, ctx: &Context, mut opts: LogOptions) -> LogOptions {
        let size = self
            .max_size
            .or_else(|| ctx.file_setting("max_size", |c| c.rotation.max_size.map(|s| s.0)));
        let age = self.max_age.or_else(|| {
            ctx.file_setting("max_age", |c| {
                c.rotation.max_age.as_ref().map(Span::duration)
            })
        });
        if let Some(size) = size {
            opts = opts.max_size(size);
        }
        if let Some(age) = age {
            opts = opts.max_age(age);
        }
        with_crash_point(opts.compress(compression(ctx, self.compress)))
    }
}

/// The crash point of the fault-injection tests, read here (the library reads no
/// environment); only in builds with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
pub fn with_crash_point(opts: LogOptions) -> LogOptions {
    opts.crash_at(std::env::var("NEXUS_AUDIT_TEST_CRASH_AT").ok())
}

#[cfg(not(feature = "fault-injection"))]
pub fn with_crash_point(opts: LogOptions) -> LogOptions {
    opts
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// How the closed segment (and any closed segment still plain) is stored.
    #[arg(long, value_enum, default_value_t = CompressArg::Zstd)]
    compress: CompressArg,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove the closed segments whose last record is older than SPAN (90s, 15m, 12h, 1d,
    /// 2w).
    #[arg(long, value_name = "SPAN", default_value = "90d", value_parser = parse_chrono_span)]
    older_than: chrono::Duration,
    /// First copy each segment into DIR (an existing, writable directory), synced, and check
    /// the copy's SHA-256; the manifest records where it went.
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
    /// Change nothing; print what would be pruned.
    #[arg(long)]
    dry_run: bool,
}

/// `--compress` when given, else the configuration file's `[rotation] compress`, else zstd.
fn compression(ctx: &Context, flag: CompressArg) -> Compression {
    ctx.file_setting("compress", |c| c.rotation.compress)
        .map_or(flag.compression(), |c| match c {
            Compress::Zstd => Compression::Zstd,
            Compress::None => Compression::None,
        })
}

pub fn rotate(ctx: &Context, args: &RotateArgs) -> anyhow::Result<u8> {
    let log = with_crash_point(
        ctx.configured(LogOptions::new(&ctx.file))
            .compress(compression(ctx, args.compress)),
    )
    .open()?;
    let closed = log.rotate()?;
    log.close()?;
    let summary = match closed {
        Some(c) => json!({
            "rotated": true,
            "file": c.file,
            "first_seq": c.first_seq,
            "last_seq": c.last_seq,
            "records": c.records,
        }),
        None => json!({"rotated": false, "reason": "the live file holds no record"}),
    };
    writeln!(std::io::stdout().lock(), "{summary}")?;
    Ok(exit::OK)
}

pub fn prune(ctx: &Context, args: &PruneArgs) -> anyhow::Result<u8> {
    let log = with_crash_point(ctx.configured(LogOptions::new(&ctx.file))).open()?;
    // The flags, else the configuration file's `[retention]`, else 90 days and no archive.
    let older_than = ctx
        .file_setting("older_than", |c| {
            c.retention.older_than.as_ref().map(Span::duration)
        })
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .unwrap_or(args.older_than);
    let archive = args
        .archive
        .clone()
        .or_else(|| ctx.file_setting("archive", |c| c.retention.archive.clone()));
    let mut opts = PruneOptions::new(older_than).dry_run(args.dry_run);
    if let Some(dir) = &archive {
        opts = opts.archive(dir);
    }
    let report = log.prune(&opts)?;
    log.close()?;
    let mut out = std::io::stdout().lock();
    let verb = if args.dry_run {
        "would prune"
    } else {
        "pruned"
    };
    for s in &report.segments {
        write!(
            out,
            "{verb} {} (seq {} to {}, last record {})",
            s.file, s.first_seq, s.last_seq, s.last_timestamp
        )?;
        match &s.archive {
            Some(a) if args.dry_run => writeln!(out, ", archived first to {a}")?,
            Some(a) => writeln!(out, ", archived to {a}")?,
            None => writeln!(out)?,
        }
    }
    let n = report.segments.len();
    let plural = if n == 1 { "" } else { "s" };
    match (args.dry_run, report.record_seq) {
        (true, _) => writeln!(
            out,
            "dry run: {n} segment{plural} would be pruned; nothing was changed"
        )?,
        (false, Some(seq)) => writeln!(
            out,
            "{n} segment{plural} pruned; recorded by segments_pruned at seq {seq} of the live log"
        )?,
        (false, None) => writeln!(out, "nothing to prune")?,
    }
    Ok(exit::OK)
}

/// A size with an optional unit (see [`RotationArgs`]).
fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "'{text}' is not a size like 500KB, 256MiB or 1GiB (units B, KB, MB, GB, KiB, MiB, GiB)"
        )
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "mb" | "m" => 1000 * 1000,
        "gb" | "g" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    match n.checked_mul(mult) {
        Some(0) => Err(format!("'{text}': the size must be more than 0")),
        Some(v) => Ok(v),
        None => Err(bad()),
    }
}

fn parse_chrono_span(text: &str) -> Result<chrono::Duration, String> {
    crate::time::parse_span(text.trim())
        .filter(|d| *d > chrono::Duration::zero())
        .ok_or_else(|| format!("'{text}' is not a span like 90s, 15m, 12h, 1d or 2w"))
}

fn parse_std_span(text: &str) -> Result<std::time::Duration, String> {
    parse_chrono_span(text).and_then(|d| {
        d.to_std()
            .map_err(|_| format!("'{text}' is not a span like 90s, 15m, 12h, 1d or 2w"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("500KB"), Ok(500_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1mib"), Ok(1 << 20));
        for bad in [
            "",
            "MiB",
            "1.5GiB",
            "-1MiB",
            "1TiB",
            "0",
            "99999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spans_must_be_positive() {
        assert!(parse_std_span("12h").is_ok());
        assert!(parse_chrono_span("0d").is_err());
        assert!(parse_chrono_span("1y").is_err());
    }
}
