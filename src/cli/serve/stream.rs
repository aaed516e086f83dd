//! `GET /api/audit/stream`: Server-Sent Events, one `data:` line per new record that matches
//! the filters, as the follower reads it (also from a new file after rotation).
//!
//! Each subscriber has its own queue of batches; one that falls too far behind skips ahead
//! (and is told so in a comment) instead of holding up the follower or anyone else.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::RecordView;
use crate::filter::Matcher;
use crate::reader::Lines;
use axum::extract::{RawQuery, State};
use axum::response::IntoResponse as _;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::App;
use super::error::ApiError;
use super::params::Params;

struct Subscriber {
    rx: broadcast::Receiver<Bytes>,
    matcher: Matcher,
    ready: VecDeque<Event>,
}

pub async fn handler(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(query.as_deref(), &[])?;
    let matcher = p.filter()?.matcher();
    if std::fs::symlink_metadata(&app.file).is_err() {
        return Err(ApiError::Unavailable(format!(
            "the log file {} does not exist",
            app.file.display()
        )));
    }
    // Subscribed before answering: nothing appended after the answer starts is missed.
    let mut ready = VecDeque::new();
    ready.push_back(Event::default().comment("connected"));
    let sub = Subscriber {
        rx: app.live.subscribe(),
        matcher,
        ready,
    };
    let events = stream::unfold(sub, |mut sub| async move {
        loop {
            if let Some(event) = sub.ready.pop_front() {
                return Some((Ok::<_, Infallible>(event), sub));
            }
            match sub.rx.recv().await {
                Ok(batch) => {
                    for (_, line) in Lines::new(&batch, 0) {
                        if let Some(event) = event_for(line, &sub.matcher) {
                            sub.ready.push_back(event);
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => sub.ready.push_back(
                    Event::default()
                        .comment(format!("fell behind: {n} batches of records skipped")),
                ),
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The event for a line, when it is a record the filters keep: the stored line itself, or,
/// for a line that is not plain one-line JSON, its compact re-serialisation.
fn event_for(line: &[u8], matcher: &Matcher) -> Option<Event> {
    let view = RecordView::parse(line).ok()?;
    if !matcher.matches(&view) {
        return None;
    }
    let plain = !line.iter().any(|b| matches!(b, b'\r' | b'\n'));
    match std::str::from_utf8(line) {
        Ok(text) if plain && crate::json::is_valid(line) => Some(Event::default().data(text)),
        _ => {
            let value: serde_json::Value = serde_json::from_slice(line).ok()?;
            Some(Event::default().data(value.to_string()))
        }
    }
}
