//! The `nexus-audit` command: a thin layer over the library. See `nexus-audit --help`.
#![deny(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
