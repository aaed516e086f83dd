//! `keygen`, `checkpoint` and `seal init`: the keys and signed checkpoints that let an auditor
//! catch a log cut short or rewritten (see SECURITY.md).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::fs::{Guard, PUBLIC, read_small};
use crate::reader::read_record;
use crate::scan::for_each_match;
use crate::trust::checkpoint::Checkpoint;
use crate::trust::note::SignerKey;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use super::{Context, Output, Skipped, exit, open_whole};

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The signer's name, e.g. audit.example.com/prod (no spaces, no '+').
    #[arg(long)]
    name: String,
    /// Write PREFIX.key (the signer key, mode 0600) and PREFIX.pub (the verifier key).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// The signer key file (PREFIX.key from keygen).
    #[arg(long)]
    key: PathBuf,
    /// The first line of the checkpoint: which log this is [default: nexus-audit:FILE NAME].
    #[arg(long)]
    origin: Option<String>,
    /// Write the checkpoint to this new file (mode 0644, put in place only when complete)
    /// instead of standard output ('-'). Never the log, its segments or a key file.
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
    /// Replace an existing regular file at -o with a new one (never the log, its segments or a
    /// key file).
    #[arg(long, requires = "out")]
    force: bool,
}

#[derive(Debug, Args)]
pub struct SealArgs {
    #[command(subcommand)]
    command: SealCommand,
}

#[derive(Debug, Subcommand)]
enum SealCommand {
    /// Make a sealing key: DIR/seal.key for the writer, DIR/seal.verify for the auditor.
    ///
    /// Keep seal.verify away from the host that writes the log (it can derive every key).
    Init {
        /// The directory for the two key files (created with mode 0700).
        #[arg(long)]
        out: PathBuf,
    },
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn keygen(ctx: &Context, args: &KeygenArgs) -> anyhow::Result<u8> {
    let signer = SignerKey::generate(&args.name).context("cannot make a key")?;
    let key_path = with_suffix(&args.out, ".key");
    let pub_path = with_suffix(&args.out, ".pub");
    let guard = Guard::new().log(&ctx.file);
    for p in [&key_path, &pub_path] {
        if std::fs::symlink_metadata(p).is_ok() {
            bail!("{} exists already: refusing to replace a key", p.display());
        }
        guard.check(p, false)?;
    }
    signer.save(&key_path, &pub_path)?;
    writeln!(io::stdout().lock(), "{}", signer.verifier().encode())?;
    Ok(exit::OK)
}

pub fn checkpoint(ctx: &Context, args: &CheckpointArgs) -> anyhow::Result<u8> {
    let not_a_key = || format!("{} is not a signer key", args.key.display());
    let text = String::from_utf8(read_small(&args.key, 4096, "cannot read the key")?)
        .with_context(not_a_key)?;
    let signer = SignerKey::parse(&text).with_context(not_a_key)?;
    let snapshot = open_whole(ctx)?;
    let origin = args.origin.clone().unwrap_or_else(|| {
        let name = ctx.file.file_name().map_or_else(
            || ctx.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        format!("nexus-audit:{name}")
    });
    let cp = Checkpoint::of(&snapshot, &origin)?;
    let note = cp.sign(&signer).context("cannot sign the checkpoint")?;
    let guard = Guard::new()
        .log(&ctx.file)
        .file(&args.key, "the signer key");
    let mut out = Output::open(args.out.as_deref(), &guard, args.force, PUBLIC)?;
    out.write_all(note.as_bytes())?;
    out.finish()?;
    // The checkpoint covers lines as stored, whatever they hold; a line that is not a record
    // is named like every reader names it, so nobody signs one without knowing.
    let covered = Skipped::covered();
    let data = snapshot.data();
    for_each_match(
        data,
        false,
        None,
        &|line| read_record(line).err(),
        &|_| {},
        |line, why| -> anyhow::Result<bool> {
            covered.add(super::offset_in(data, line), super::not_a_record(why));
            Ok(true)
        },
    )?;
    covered.warn(&ctx.file, Some(data));
    Ok(exit::OK)
}

pub fn seal(args: &SealArgs) -> anyhow::Result<u8> {
    match &args.command {
        SealCommand::Init { out } => {
            let (key, verify) = crate::chain::seal_key::init(out)?;
            writeln!(
                io::stdout().lock(),
                "{}\n{}",
                serde_json::json!({"writer_key": key.display().to_string()}),
                serde_json::json!({"verification_key": verify.display().to_string(), "keep": "offline, away from the log's host"})
            )?;
            Ok(exit::OK)
        }
    }
}
