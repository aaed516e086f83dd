//! `proxy`: audit any MCP server over stdio with no code change.

use std::ffi::OsString;

use clap::{Args, ValueEnum};
use std::sync::Arc;

use crate::config::DurabilitySetting;
use crate::proxy::{self, HealthHook, LogHealth, ProxyOptions};
use crate::{Durability, LogOptions};

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
    /// Record the SHA-256 and size of each answer line (never its content).
    #[arg(long)]
    log_results: bool,
    /// When a record cannot be written, answer the call with a JSON-RPC error (the server's
    /// answer is withheld; later calls are not forwarded until the log can be written). Client
    /// lines that are not one readable JSON-RPC message, batches, and calls without a string
    /// or number id are refused the same way.
    #[arg(long)]
    fail_closed: bool,
    /// When a record is durable.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
    durability: DurabilityArg,
    /// Rotation: --max-size, --max-age, --compress (as `append`).
    #[command(flatten)]
    rotation: super::rotate::RotationArgs,
    /// The MCP server to run, after `--`: COMMAND [ARGS…].
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

pub fn run(ctx: &Context, args: ProxyArgs) -> anyhow::Result<u8> {
    // Before the log (which may start a flusher thread) and the relay threads exist, so that
    // every thread of this process inherits the blocked set.
    let signals = block_termination_signals();
    let durability = match ctx.file_setting("durability", |c| c.durability) {
        Some(DurabilitySetting::Sync) => DurabilityArg::Sync,
        Some(DurabilitySetting::Buffered) => DurabilityArg::Buffered,
        Some(DurabilitySetting::None) => DurabilityArg::None,
        None => args.durability,
    };
    let durability = match durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Buffered => Durability::buffered(),
        DurabilityArg::None => Durability::None,
    };
    let log = args
        .rotation
        .apply(
            ctx,
            ctx.configured(LogOptions::new(&ctx.file).durability(durability)),
        )
        .open()?;
    let proxy = ctx.config.as_ref().map(|l| &l.config.proxy);
    let fail_closed = args.fail_closed
        || ctx
            .file_setting("fail_closed", |c| c.proxy.fail_closed)
            .unwrap_or(false);
    let opts = ProxyOptions {
        server_id: args.server_id.or_else(|| {
            proxy
                .and_then(|p| p.server_id.as_ref())
                .map(|t| t.0.clone())
        }),
        // Precedence: --user, then NEXUS_AUDIT_USER, then the file.
        user_id: args
            .user
            .or_else(|| std::env::var("NEXUS_AUDIT_USER").ok())
            .filter(|u| !u.is_empty())
            .or_else(|| proxy.and_then(|p| p.user.as_ref()).map(|t| t.0.clone())),
        log_results: args.log_results
            || ctx
                .file_setting("log_results", |c| c.proxy.log_results)
                .unwrap_or(false),
        fail_closed,
        on_log_health: Some(HealthHook(Arc::new(move |health| {
            eprintln!("{}", health_sentence(health, fail_closed));
        }))),
    };
    let code = proxy::run_with(
        log,
        opts,
        &args.command,
        |server| {
            if signals.is_some() {
                unblock_in_server(server);
            }
        },
        |pid| {
            if let Some(set) = signals {
                pass_signals_on(set, pid);
            }
        },
    )?;
    // The server's exit code, as the client would have seen it without the proxy.
    Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

/// What the proxy says on stderr when the log stops (or starts again) taking records: once
/// when appends start failing, once when one succeeds again, and again if they fail again.
fn health_sentence(health: &LogHealth, fail_closed: bool) -> String {
    match health {
        LogHealth::Failing { error } if fail_closed => format!(
            "nexus-audit proxy: cannot write the audit log ({error}); calls are refused until it can be written again (--fail-closed)"
        ),
        LogHealth::Failing { error } => format!(
            "nexus-audit proxy: cannot write the audit log ({error}); calls go on unrecorded until it can be written again"
        ),
        LogHealth::Recovered { unwritten } => format!(
            "nexus-audit proxy: the audit log can be written again; {unwritten} record(s) could not be written meanwhile"
        ),
    }
}

/// A copy of the signal set blocked in this thread (and in every thread it starts).
#[derive(Clone, Copy)]
struct Blocked(libc::sigset_t);

// SAFETY: a sigset_t is plain data (a bit array); it is only read.
#[allow(unsafe_code)]
unsafe impl Send for Blocked {}

/// Blocks SIGTERM, SIGINT and SIGHUP so that they reach [`pass_signals_on`]'s thread instead of
/// ending the proxy before it records the server's end. The server must not inherit the
/// blocked set: see [`unblock_in_server`].
#[allow(unsafe_code)]
fn block_termination_signals() -> Option<Blocked> {
    // SAFETY: `set` is initialised by sigemptyset before use; pthread_sigmask only changes this
    // thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&raw mut set, sig);
        }
        (libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) == 0)
            .then_some(Blocked(set))
    }
}

/// Gives the server an empty signal mask (a blocked mask is inherited across exec).
#[allow(unsafe_code)]
fn unblock_in_server(server: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the hook runs in the forked child before exec and only calls sigemptyset and
    // sigprocmask, which are async-signal-safe, on a local set.
    unsafe {
        server.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &raw const set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends each blocked signal the proxy receives on to the server: the server ends as it would
/// have without the proxy, and the proxy records `server_stop` and exits 128 + the signal.
///
/// NOTE: a signal that arrives in the instant between the server being reaped and the proxy
/// exiting is sent to a pid the system may already have given to another process; the window
/// is the time it takes to append `server_stop`.
#[allow(unsafe_code)]
fn pass_signals_on(set: Blocked, pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    std::thread::spawn(move || {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set.0` is an initialised signal set; sigwait writes one c_int; kill has
            // no memory effects.
            unsafe {
                if libc::sigwait(&raw const set.0, &raw mut sig) == 0 {
                    libc::kill(pid, sig);
                }
            }
        }
    });
}
