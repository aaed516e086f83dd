//! `config check [FILE]` and `config example`, and how every command finds its configuration
//! file: `--config FILE`, else `NEXUS_AUDIT_CONFIG`, else `/etc/nexus-audit/config.toml` when
//! it exists.
//!
//! Precedence, for every setting: a flag, then its environment variable, then the file, then
//! the built-in default. clap merges the first two (`env =`); [`given`] tells whether either
//! set a value, so the file fills only what neither did.

use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::LogOptions;
use crate::config::{Config, DurabilitySetting, Loaded};
use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Subcommand};

use super::exit;

/// Where the configuration is looked for when neither `--config` nor `NEXUS_AUDIT_CONFIG` names
/// one.
pub const SYSTEM_CONFIG: &str = "/etc/nexus-audit/config.toml";

/// The commented example configuration that `config example` prints (also
/// `contrib/config.toml`, and the Debian package's example).
pub const EXAMPLE: &str = include_str!("../../contrib/config.toml");

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a configuration file and print the configuration it gives (secrets are never in
    /// the file: only their file paths and environment variables' names).
    ///
    /// Without FILE: the one every command would use (--config, else its environment
    /// variable, else the system's file). `-` reads standard input.
    ///
    /// Examples:
    ///   nexus-audit config check /etc/nexus-audit/config.toml
    ///   nexus-audit config example | nexus-audit config check -
    #[command(verbatim_doc_comment)]
    Check {
        /// The file to check (`-` for standard input).
        #[arg(value_name = "FILE")]
        path: Option<PathBuf>,
    },
    /// Print a commented example configuration.
    ///
    /// Examples:
    ///   nexus-audit config example > /etc/nexus-audit/config.toml
    #[command(verbatim_doc_comment)]
    Example,
}

/// True when `id` was set on the command line or by its environment variable: the file must
/// not override it.
pub fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.try_get_raw(id).is_ok()
        && matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
}

/// The configuration file to use: `named` (from `--config` or `NEXUS_AUDIT_CONFIG`), else the
/// system's file when it exists, else none.
///
/// # Errors
///
/// The file's [`crate::ConfigError`]: one sentence naming the file, line and key.
pub fn load(named: Option<&Path>) -> anyhow::Result<Option<Loaded>> {
    let path = match named {
        Some(path) => path,
        None if Path::new(SYSTEM_CONFIG).exists() => Path::new(SYSTEM_CONFIG),
        None => return Ok(None),
    };
    Ok(Some(Loaded::read(path)?))
}

/// `file`: the log named by `--file` or `NEXUS_AUDIT_FILE`, which wins over the file's.
pub fn run(named: Option<&Path>, file: Option<&Path>, args: &ConfigArgs) -> anyhow::Result<u8> {
    match &args.command {
        ConfigCommand::Example => {
            io::stdout().lock().write_all(EXAMPLE.as_bytes())?;
            Ok(exit::OK)
        }
        ConfigCommand::Check { path } => {
            let loaded = match path.as_deref() {
                Some(path) if path.as_os_str() == "-" => {
                    let mut text = String::new();
                    io::stdin()
                        .read_to_string(&mut text)
                        .context("cannot read the configuration from standard input")?;
                    Loaded {
                        config: Config::parse(&text, "-")?,
                        source: "-".to_owned(),
                    }
                }
                Some(path) => Loaded::read(path)?,
                None => load(named)?.with_context(|| {
                    format!(
                        "no configuration file: give one, or set --config or NEXUS_AUDIT_CONFIG \
                         (or install {SYSTEM_CONFIG})"
                    )
                })?,
            };
            print_effective(&loaded, file)?;
            Ok(exit::OK)
        }
    }
}

/// The configuration with the built-in defaults of the settings it leaves out, as TOML.
fn print_effective(loaded: &Loaded, file: Option<&Path>) -> anyhow::Result<()> {
    let mut config = loaded.config.clone();
    if let Some(file) = file {
        config.file = Some(file.to_path_buf());
    }
    config
        .file
        .get_or_insert_with(|| PathBuf::from("audit.jsonl"));
    config.durability.get_or_insert(DurabilitySetting::Sync);
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "# {}: valid. The effective configuration (with --file or NEXUS_AUDIT_FILE applied; \
         other flags and variables override it too); secrets are never in it, only their \
         files and variables.",
        loaded.source
    )?;
    writeln!(out, "# config_sha256 = \"{}\"", loaded.config.sha256())?;
    out.write_all(config.to_toml()?.as_bytes())?;
    for (what, name) in [
        ("ship.token_env", config.ship.token_env.as_ref()),
        ("ship.secret_env", config.ship.secret_env.as_ref()),
    ] {
        if let Some(name) = name {
            let state = if std::env::var_os(name.as_str()).is_some() {
                "set (value masked)"
            } else {
                "not set"
            };
            writeln!(out, "# {what}: {} is {state}", name.as_str())?;
        }
    }
    Ok(())
}

impl super::Context {
    /// The configuration file's value for the setting of argument `id`, unless a flag or an
    /// environment variable gave that argument (they win over the file). A command wires a
    /// setting with one line, e.g. `ctx.file_setting("max_size", |c| c.rotation.max_size)`
    /// for `append --max-size`, or `ctx.file_setting("batch", |c| c.ship.batch)` for
    /// `ship --batch`.
    pub fn file_setting<T>(&self, id: &str, get: impl FnOnce(&Config) -> Option<T>) -> Option<T> {
        if given(&self.matches, id) {
            return None;
        }
        self.config.as_ref().and_then(|loaded| get(&loaded.config))
    }

    /// `opts` with the configuration's taxonomy and redaction rules, and its `config_loaded`
    /// record.
    pub fn configured(&self, opts: LogOptions) -> LogOptions {
        match &self.config {
            None => opts,
            Some(loaded) => opts
                .taxonomy(loaded.config.taxonomy())
                .redaction(loaded.config.redaction_rules())
                .config_loaded(loaded.config.sha256(), loaded.source.clone()),
        }
    }
}
