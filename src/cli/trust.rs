//! `keygen`, `checkpoint` and `seal init`: the keys and signed checkpoints that let an auditor
//! catch a log cut short or rewritten (see SECURITY.md).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use nexus_audit::checkpoint::Checkpoint;
use nexus_audit::note::SignerKey;

use super::{Context, exit, open_snapshot};

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
    /// Write the checkpoint to this file instead of standard output.
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
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

/// Creates `path` with mode 0600, refusing to replace an existing file.
fn create_new(path: &Path, mode: u32, text: &str) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn keygen(args: &KeygenArgs) -> anyhow::Result<u8> {
    let signer = SignerKey::generate(&args.name).context("cannot make a key")?;
    let key_path = with_suffix(&args.out, ".key");
    let pub_path = with_suffix(&args.out, ".pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!("{} exists already: refusing to replace a key", p.display());
        }
    }
    let vkey = signer.verifier().encode();
    create_new(&key_path, 0o600, &format!("{}\n", signer.encode_secret()))?;
    create_new(&pub_path, 0o644, &format!("{vkey}\n"))?;
    writeln!(io::stdout().lock(), "{vkey}")?;
    Ok(exit::OK)
}

pub fn checkpoint(ctx: &Context, args: &CheckpointArgs) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read the key {}", args.key.display()))?;
    let signer = SignerKey::parse(&text)
        .with_context(|| format!("{} is not a signer key", args.key.display()))?;
    let snapshot = open_snapshot(ctx)?;
    let origin = args.origin.clone().unwrap_or_else(|| {
        let name = ctx.file.file_name().map_or_else(
            || ctx.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        format!("nexus-audit:{name}")
    });
    let cp = Checkpoint::of(&snapshot, &origin)?;
    let note = cp.sign(&signer).context("cannot sign the checkpoint")?;
    match &args.out {
        Some(path) => {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            f.write_all(note.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => io::stdout().lock().write_all(note.as_bytes())?,
    }
    Ok(exit::OK)
}

pub fn seal(args: &SealArgs) -> anyhow::Result<u8> {
    match &args.command {
        SealCommand::Init { out } => {
            let (key, verify) = nexus_audit::seal::init(out)?;
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
