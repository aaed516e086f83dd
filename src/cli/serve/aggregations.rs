//! `GET /api/audit/aggregations?group_by=…`: counts, errors and latency percentiles per user,
//! server, action, tool, status, shard, category, or per hour, day or week.
//!
//! Groups by a field are sorted by count, largest first (then by key); time buckets by key,
//! oldest first, keyed by their start in RFC 3339 UTC (weeks start on Monday). Percentiles are
//! nearest-rank over whole milliseconds, as `stats` computes them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::RecordView;
use crate::filter::Matcher;
use crate::reader::{Lines, split_lines};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::{DateTime, Datelike as _, Duration, Timelike as _, Utc};
use rayon::prelude::*;
use serde::Serialize;

use super::App;
use super::error::{ApiError, json_body};
use super::params::Params;

const GROUPS: &[&str] = &[
    "user", "server", "action", "tool", "status", "shard", "category", "hour", "day", "week",
];
const UNKNOWN: &str = "unknown";

#[derive(Default)]
struct Group {
    count: u64,
    errors: u64,
    /// Latency in whole milliseconds → how many records had it.
    latency: BTreeMap<u64, u64>,
}

impl Group {
    fn merge(&mut self, other: Group) {
        self.count += other.count;
        self.errors += other.errors;
        for (k, v) in other.latency {
            *self.latency.entry(k).or_insert(0) += v;
        }
    }
}

#[derive(Serialize)]
struct Percentiles {
    p50: Option<u64>,
    p95: Option<u64>,
    p99: Option<u64>,
}

#[derive(Serialize)]
struct Row {
    key: String,
    count: u64,
    errors: u64,
    latency_ms: Percentiles,
}

#[derive(Serialize)]
struct Answer<'a> {
    group_by: &'a str,
    groups: Vec<Row>,
}

pub async fn handler(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(query.as_deref(), &["group_by"])?;
    let matcher = p.filter()?.matcher();
    let group_by = p.choice("group_by", GROUPS)?.ok_or_else(|| {
        ApiError::BadRequest(format!("group_by is needed: one of {}", GROUPS.join(", ")))
    })?;
    let body = app
        .scan(move |app| {
            let snapshot = app.snapshot()?;
            let data = snapshot.data();
            let chunks = split_lines(data, data.len().div_ceil(2 << 20).max(1));
            let groups = chunks
                .par_iter()
                .map(|c| {
                    let mut groups: HashMap<String, Group> = HashMap::new();
                    for (_, line) in Lines::new(&data[c.clone()], 0) {
                        let Ok(r) = RecordView::parse(line) else {
                            continue;
                        };
                        if !matcher.matches(&r) {
                            continue;
                        }
                        let Some(key) = key_of(&r, &matcher, group_by) else {
                            continue;
                        };
                        let g = groups.entry(key).or_default();
                        g.count += 1;
                        g.errors += u64::from(r.is_error());
                        if let Some(ms) = r.latency() {
                            *g.latency.entry(ms).or_insert(0) += 1;
                        }
                    }
                    groups
                })
                .reduce(HashMap::new, |mut a, b| {
                    for (k, g) in b {
                        a.entry(k).or_default().merge(g);
                    }
                    a
                });
            let mut rows: Vec<Row> = groups
                .into_iter()
                .map(|(key, g)| Row {
                    key,
                    count: g.count,
                    errors: g.errors,
                    latency_ms: percentiles(&g.latency),
                })
                .collect();
            if matches!(group_by, "hour" | "day" | "week") {
                rows.sort_by(|a, b| a.key.cmp(&b.key));
            } else {
                rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
            }
            serde_json::to_vec(&Answer {
                group_by,
                groups: rows,
            })
            .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(json_body(body))
}

/// The group a record falls in; `None` for a time bucket of a record without a readable
/// timestamp.
fn key_of(r: &RecordView<'_>, m: &Matcher, group_by: &str) -> Option<String> {
    let text = |v: Option<&str>| Some(v.unwrap_or(UNKNOWN).to_owned());
    match group_by {
        "user" => text(r.user_id.as_deref()),
        "server" => text(r.server_id.as_deref()),
        "action" => text(r.action.as_deref()),
        "tool" => text(r.tool.as_deref()),
        "status" => text(r.status.as_deref()),
        "shard" => text(m.shard_of(r).as_deref()),
        "category" => text(m.category_of(r).as_deref()),
        bucket => {
            let t = crate::time::parse_timestamp(r.timestamp.as_deref()?)?;
            Some(
                bucket_start(t, bucket)?
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
            )
        }
    }
}

fn bucket_start(t: DateTime<Utc>, bucket: &str) -> Option<DateTime<Utc>> {
    let day = t.date_naive();
    match bucket {
        "hour" => day.and_hms_opt(t.hour(), 0, 0).map(|d| d.and_utc()),
        "day" => day.and_hms_opt(0, 0, 0).map(|d| d.and_utc()),
        _ => {
            let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
            monday.and_hms_opt(0, 0, 0).map(|d| d.and_utc())
        }
    }
}

/// Nearest-rank percentiles: the smallest value whose cumulative count reaches
/// ceil(p/100 · n).
fn percentiles(latency: &BTreeMap<u64, u64>) -> Percentiles {
    let n: u64 = latency.values().sum();
    if n == 0 {
        return Percentiles {
            p50: None,
            p95: None,
            p99: None,
        };
    }
    let ranks = [50u64, 95, 99].map(|p| (p * n).div_ceil(100).max(1));
    let mut found = [None; 3];
    let mut seen = 0u64;
    for (v, c) in latency {
        seen += c;
        for (slot, rank) in found.iter_mut().zip(ranks) {
            if slot.is_none() && seen >= rank {
                *slot = Some(*v);
            }
        }
    }
    Percentiles {
        p50: found[0],
        p95: found[1],
        p99: found[2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let latency: BTreeMap<u64, u64> = (1..=100).map(|v| (v, 1)).collect();
        let p = percentiles(&latency);
        assert_eq!((p.p50, p.p95, p.p99), (Some(50), Some(95), Some(99)));
        assert!(percentiles(&BTreeMap::new()).p50.is_none());
    }

    #[test]
    fn weeks_start_on_monday_and_keys_are_rfc3339() {
        let t = crate::time::parse_timestamp("2026-11-22T09:05:04.123456Z").expect("time");
        let key = |b| bucket_start(t, b).map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        assert_eq!(key("week").as_deref(), Some("2026-11-16T00:00:00Z"));
        assert_eq!(key("day").as_deref(), Some("2026-11-22T00:00:00Z"));
        assert_eq!(key("hour").as_deref(), Some("2026-11-22T09:00:00Z"));
    }
}
