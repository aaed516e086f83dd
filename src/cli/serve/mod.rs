//! `serve`: the log over HTTP, read-only: the query API, Prometheus metrics, a live stream and
//! a dashboard page.
//!
//! A thin layer like the rest of the CLI: every answer comes from the library's filter, scan,
//! stats and verify code and the CLI's own renderers, so `/api/audit` pages equal `query`,
//! exports equal `export` byte for byte, `/api/stats` equals `stats --output json` and
//! `/api/verify` equals `verify --output json`. One thread follows the log as it grows
//! ([`follow`]): it keeps the Prometheus counters, feeds the stream and re-verifies what was
//! appended. Scans run on blocking threads, so a slow request or client never holds up others.

mod aggregations;
mod audit;
mod auth;
mod dashboard;
mod error;
mod export;
mod follow;
mod metrics;
mod params;
mod reports;
mod stream;
mod verifier;

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use clap::Args;
use tokio::sync::Semaphore;

use super::{Context, exit};
use error::ApiError;

/// Scans (query, stats, aggregations) running at once; more wait their turn.
const SCANS_AT_ONCE: usize = 8;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on. Anything but loopback needs --token-file.
    #[arg(long, default_value = "127.0.0.1:8088", value_name = "ADDR:PORT")]
    listen: String,
    /// A file holding the token every request must carry (Authorization: Bearer TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Exports allowed per client address: N/min (or N/s, N/h).
    #[arg(long, default_value = "6/min", value_name = "N/min", value_parser = export::parse_rate)]
    export_rate: export::Rate,
    /// Re-check the whole chain at most this often; in between only what was appended is
    /// checked (90s, 15m, 1h, 1d).
    #[arg(long, default_value = "1h", value_name = "SPAN", value_parser = parse_every)]
    full_verify_every: Duration,
}

fn parse_every(s: &str) -> Result<Duration, String> {
    crate::time::parse_span(s.trim())
        .and_then(|d| d.to_std().ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!(
                "cannot read the span {s:?}: use a whole number and s, m, h, d or w (90s, 15m, 1h)"
            )
        })
}

/// What every handler shares.
pub struct App {
    /// The log, as given with --file.
    file: PathBuf,
    token: Option<auth::Token>,
    exports: export::Limiter,
    live: Arc<follow::Live>,
    verifier: Arc<verifier::Verifier>,
    scans: Semaphore,
}

impl App {
    /// Opens the log for one request: 503 with a sentence when it is missing or unreadable.
    fn snapshot(&self) -> Result<crate::Snapshot, ApiError> {
        if std::fs::symlink_metadata(&self.file).is_err() {
            return Err(ApiError::Unavailable(format!(
                "the log file {} does not exist",
                self.file.display()
            )));
        }
        crate::Snapshot::open(&self.file).map_err(|e| {
            ApiError::Unavailable(format!("cannot read the log {}: {e}", self.file.display()))
        })
    }

    /// Runs a scan on a blocking thread, at most [`SCANS_AT_ONCE`] at a time.
    async fn scan<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&App) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .scans
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("the server is shutting down".into()))?;
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&app))
            .await
            .map_err(|e| ApiError::Internal(format!("a worker failed: {e}")))?
    }
}

pub fn run(ctx: &Context, mut args: ServeArgs) -> anyhow::Result<u8> {
    // The configuration file fills what no flag set.
    if let Some(listen) = ctx.file_setting("listen", |c| c.serve.listen.clone()) {
        args.listen = listen.0;
    }
    if args.token_file.is_none() {
        args.token_file = ctx.file_setting("token_file", |c| c.serve.token_file.clone());
    }
    if let Some(rate) = ctx.file_setting("export_rate", |c| c.serve.export_rate.clone()) {
        args.export_rate = export::parse_rate(&rate.0).map_err(anyhow::Error::msg)?;
    }
    let addr = listen_addr(&args.listen)?;
    let token = match &args.token_file {
        Some(path) => Some(auth::Token::load(path)?),
        None => None,
    };
    if token.is_none() && !addr.ip().is_loopback() {
        bail!(
            "refusing to listen on {addr} without --token-file: anyone who can reach it could read the audit log (add --token-file FILE, or listen on 127.0.0.1)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nexus-audit-serve")
        .build()
        .context("cannot start the server's threads")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("cannot listen on {addr}"))?;

    let verifier = Arc::new(verifier::Verifier::new(
        ctx.file.clone(),
        args.full_verify_every,
    ));
    let live = follow::Live::start(ctx.file.clone(), Arc::clone(&verifier))?;
    let app = Arc::new(App {
        file: ctx.file.clone(),
        token,
        exports: export::Limiter::new(args.export_rate),
        live,
        verifier,
        scans: Semaphore::new(SCANS_AT_ONCE),
    });

    if std::fs::symlink_metadata(&ctx.file).is_err() {
        eprintln!(
            "nexus-audit: warning: the log file {} does not exist yet; requests get 503 until it does",
            ctx.file.display()
        );
    }
    eprintln!(
        "nexus-audit: serving {} read-only on http://{bound}/ (Ctrl-C to stop)",
        ctx.file.display()
    );
    println!("http://{bound}/");

    let router = router(app);
    runtime.block_on(async move {
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        );
        tokio::select! {
            result = server => result.context("the server stopped"),
            () = shutdown_signal() => Ok(()),
        }
    })?;
    // NOTE: an export to a client that stopped reading may still hold a blocking thread;
    // waiting for it would hang the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(exit::OK)
}

/// `--listen`: an address and port, or `localhost:PORT`.
fn listen_addr(listen: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let cannot = || {
        format!("cannot read --listen {listen:?}: give an address and port, such as 127.0.0.1:8088")
    };
    let addrs: Vec<SocketAddr> = listen.to_socket_addrs().with_context(cannot)?.collect();
    // A name that resolves to anything but loopback counts as not loopback.
    match addrs
        .iter()
        .find(|a| !a.ip().is_loopback())
        .or(addrs.first())
    {
        Some(a) => Ok(*a),
        None => bail!("{}", cannot()),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{name}", get(dashboard::asset))
        .route("/api/audit", get(audit::list))
        .route("/api/audit/aggregations", get(aggregations::handler))
        .route("/api/audit/export", get(export::handler))
        .route("/api/audit/stream", get(stream::handler))
        .route("/api/stats", get(reports::stats))
        .route("/api/verify", get(reports::verify))
        .route("/metrics", get(metrics::handler))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            auth::require_token,
        ))
        .layer(middleware::from_fn(common_headers))
        .with_state(app)
}

/// Headers on every answer: nothing is cached, nothing is sniffed, the page is never framed.
async fn common_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
