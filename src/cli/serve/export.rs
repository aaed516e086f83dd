//! `GET /api/audit/export?format=csv|json|jsonl`: matching records, oldest first, streamed
//! with the CLI's own writer, so the bytes equal `export --format …`.
//!
//! The scan runs on a blocking thread and hands the body over in 64 KiB pieces through a
//! channel of a few pieces: memory stays constant, and a client that stops reading stalls
//! only its own export (which gives up after [`STALL`]). Each client address may start
//! `--export-rate` exports a minute; over that the answer is 429 with `Retry-After`.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::RecordView;
use crate::scan::for_each_match;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::App;
use super::error::ApiError;
use super::params::Params;
use crate::cli::output::{Format, RecordWriter};

/// The size of the pieces handed to the connection.
const PIECE: usize = 64 << 10;
/// Pieces waiting for the connection at most.
const QUEUE: usize = 4;
/// A client that reads nothing for this long loses its export.
const STALL: Duration = Duration::from_secs(300);
/// Addresses remembered at most; the oldest are forgotten first.
const MAX_CLIENTS: usize = 100_000;

/// `--export-rate`: exports per window.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    count: u32,
    window: Duration,
}

/// Reads `N/min`, `N/s` or `N/h`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let bad = || format!("cannot read the rate {s:?}: write N/min (or N/s, N/h), such as 6/min");
    let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = n.trim().parse().map_err(|_| bad())?;
    if count == 0 {
        return Err("the export rate must allow at least 1 export".into());
    }
    let window = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    Ok(Rate { count, window })
}

/// Export starts per client address, in a sliding window.
pub struct Limiter {
    rate: Rate,
    starts: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            rate,
            starts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an export by `ip`, or says how many seconds until it may start one.
    fn admit(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut starts = self
            .starts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if starts.len() >= MAX_CLIENTS {
            let window = self.rate.window;
            starts.retain(|_, s| s.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let mine = starts.entry(ip).or_default();
        while mine
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.rate.window)
        {
            mine.pop_front();
        }
        if mine.len() >= self.rate.count as usize {
            let oldest = mine.front().copied().unwrap_or(now);
            let wait = self.rate.window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        mine.push_back(now);
        Ok(())
    }
}

pub async fn handler(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(query.as_deref(), &["format"])?;
    let matcher = p.filter()?.matcher();
    let (format, content_type, extension) = match p
        .choice("format", &["jsonl", "json", "csv"])?
        .unwrap_or("jsonl")
    {
        "json" => (Format::Json, "application/json", "json"),
        "csv" => (Format::Csv, "text/csv; charset=utf-8", "csv"),
        _ => (Format::Jsonl, "application/x-ndjson", "jsonl"),
    };
    app.exports
        .admit(peer.ip())
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let snapshot = app.snapshot()?;
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(QUEUE);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let sink = Pipe {
            tx: tx.clone(),
            runtime,
            buf: Vec::with_capacity(PIECE),
        };
        let result = (|| -> anyhow::Result<()> {
            let mut out = RecordWriter::new(format, sink, false)?;
            let keep = |line| RecordView::parse(line).ok().filter(|v| matcher.matches(v));
            for_each_match(
                snapshot.data(),
                false,
                None,
                &keep,
                &|_| {},
                |line, view| {
                    // A record csv cannot decode is left out whole, as `export` does (which
                    // names it on stderr; a download has no stderr).
                    let _left_out = out.record(line, &view)?;
                    Ok::<_, anyhow::Error>(true)
                },
            )?;
            out.finish()?;
            Ok(())
        })();
        if let Err(e) = result {
            // The body ends without its last chunk, so the client sees a failed download.
            let _ = tx.blocking_send(Err(io::Error::other(format!("{e:#}"))));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename=\"audit-export.{extension}\""
        ))
        .map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(response)
}

/// A writer that hands 64 KiB pieces to the connection, waiting while it is behind.
struct Pipe {
    tx: mpsc::Sender<io::Result<Bytes>>,
    runtime: tokio::runtime::Handle,
    buf: Vec<u8>,
}

impl Pipe {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.runtime
            .block_on(self.tx.send_timeout(Ok(piece), STALL))
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the client stopped reading the export",
                )
            })
    }
}

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_in_three_units() {
        let r = parse_rate("6/min").expect("rate");
        assert_eq!((r.count, r.window), (6, Duration::from_secs(60)));
        assert_eq!(
            parse_rate("2/s").expect("rate").window,
            Duration::from_secs(1)
        );
        assert_eq!(
            parse_rate("100/h").expect("rate").window,
            Duration::from_secs(3600)
        );
        for bad in ["6", "0/min", "x/min", "6/fortnight", "-1/min"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_limiter_refuses_past_the_rate_and_says_when_to_retry() {
        let limiter = Limiter::new(parse_rate("2/min").expect("rate"));
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(limiter.admit(ip).is_ok());
        assert!(limiter.admit(ip).is_ok());
        let wait = limiter.admit(ip).expect_err("third refused");
        assert!((59..=60).contains(&wait), "{wait}");
        assert!(limiter.admit([127, 0, 0, 2].into()).is_ok(), "per address");
    }
}
