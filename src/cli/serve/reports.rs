//! `GET /api/stats` and `GET /api/verify`: the objects `stats --output json` and
//! `verify --output json` print.

use std::sync::Arc;

use crate::stats::{Interval, StatsOptions, stats as summarise};
use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::App;
use super::error::{ApiError, json_body};
use super::params::Params;

pub async fn stats(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(query.as_deref(), &["interval", "last"])?;
    let matcher = p.filter()?.matcher();
    let interval = p
        .choice("interval", &["hour", "day", "week"])?
        .map(|i| match i {
            "hour" => Interval::Hour,
            "day" => Interval::Day,
            _ => Interval::Week,
        });
    let last = p.get("last").map(|_| p.number("last", 0)).transpose()?;
    let body = app
        .scan(move |app| {
            let snapshot = app.snapshot()?;
            let opts = StatsOptions {
                interval,
                last,
                threads: None,
                max_distinct: None,
            };
            let summary = summarise(&snapshot, &matcher, &opts, &|_| {})
                .map_err(|e| ApiError::Internal(format!("cannot count the log: {e}")))?;
            serde_json::to_vec(&summary).map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(json_body(body))
}

pub async fn verify(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(query.as_deref(), &[])?;
    if !p.filter()?.is_empty() {
        return Err(ApiError::BadRequest(
            "/api/verify takes no filters: it checks the whole chain".into(),
        ));
    }
    let verifier = Arc::clone(&app.verifier);
    let report = tokio::task::spawn_blocking(move || verifier.refresh())
        .await
        .map_err(|e| ApiError::Internal(format!("a worker failed: {e}")))?
        .map_err(ApiError::Unavailable)?;
    let body = serde_json::to_vec(&*report).map_err(|e| ApiError::Internal(e.to_string()))?;
    // NOTE: a broken chain is still 200: the request succeeded, the log did not.
    Ok(json_body(body))
}
