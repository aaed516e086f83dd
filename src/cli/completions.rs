//! `completions SHELL` and `man OUTDIR`: generated from the same clap definitions as `--help`.

use std::io::{self, Write as _};
use std::path::PathBuf;

use crate::fs::{AtomicFile, PUBLIC};
use anyhow::Context as _;
use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

use super::{Cli, exit};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages in (nexus-audit.1, nexus-audit-append.1, …); it must
    /// exist.
    outdir: PathBuf,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<u8> {
    let mut out = io::stdout().lock();
    clap_complete::generate(args.shell, &mut Cli::command(), "nexus-audit", &mut out);
    out.flush()?;
    Ok(exit::OK)
}

/// Writes one page per command and subcommand, each atomically, mode 0644 (they are public
/// documentation), replacing older pages.
pub fn man(args: &ManArgs) -> anyhow::Result<u8> {
    if !args.outdir.is_dir() {
        anyhow::bail!(
            "the directory {} does not exist; create it first",
            args.outdir.display()
        );
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect(cmd, &mut pages);
    let count = pages.len();
    for page in pages {
        let man = clap_mangen::Man::new(page);
        let path = args.outdir.join(man.get_filename());
        let mut bytes = Vec::new();
        man.render(&mut bytes)
            .with_context(|| format!("cannot render {}", path.display()))?;
        let mut file = AtomicFile::create(&path, PUBLIC)?;
        file.write_all(&bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.commit(true)?;
    }
    eprintln!(
        "nexus-audit: wrote {count} man pages to {}",
        args.outdir.display()
    );
    Ok(exit::OK)
}

/// `cmd` and every visible subcommand below it.
fn collect(cmd: clap::Command, pages: &mut Vec<clap::Command>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub.clone(), pages);
    }
    pages.push(cmd);
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_that_completions_and_man_pages_come_from_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
