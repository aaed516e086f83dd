//! `proxy`: audit any MCP server over stdio with no code change.

use std::ffi::OsString;

use clap::{Args, ValueEnum};
use nexus_audit::proxy::{self, ProxyOptions};
use nexus_audit::{Durability, LogOptions};

use super::Context;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DurabilityArg {
    /// Each record is synced before the answer goes on (fail-closed) or right after it.
    Sync,
    /// Records are synced every 100 records or 1 s.
    Buffered,
    /// Records are written at once, never synced.
    None,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// server_id of the records [default: the server's own name].
    #[arg(long)]
    server_id: Option<String>,
    /// user_id of the records [default: NEXUS_AUDIT_USER, else the client's name].
    #[arg(long)]
    user: Option<String>,
    /// Record each result's SHA-256 and size (never its content).
    #[arg(long)]
    log_results: bool,
    /// When a record cannot be written, answer the call with a JSON-RPC error instead.
    #[arg(long)]
    fail_closed: bool,
    /// When a record is durable.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
    durability: DurabilityArg,
    /// The MCP server to run, after `--`: COMMAND [ARGS…].
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

pub fn run(ctx: &Context, args: ProxyArgs) -> anyhow::Result<u8> {
    let durability = match args.durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Buffered => Durability::buffered(),
        DurabilityArg::None => Durability::None,
    };
    let log = LogOptions::new(&ctx.file).durability(durability).open()?;
    let opts = ProxyOptions {
        server_id: args.server_id,
        user_id: args.user,
        log_results: args.log_results,
        fail_closed: args.fail_closed,
    };
    let code = proxy::run(log, opts, &args.command)?;
    // The server's exit code, as the client would have seen it without the proxy.
    Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}
