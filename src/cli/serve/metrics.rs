//! `GET /metrics`: Prometheus text exposition, version 0.0.4.
//!
//! The counters are kept by the follower ([`super::follow`]) as the log grows: a scrape only
//! renders them. Label values come from the log, which anyone who can append to it controls,
//! so each label keeps at most a fixed number of values (the most frequent when the server
//! starts, then the first newcomers) and counts the rest as `other`: the number of series stays
//! bounded, and every series only ever grows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::RecordView;
use crate::filter::Matcher;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use rayon::prelude::*;

use super::App;
use super::error::ApiError;

/// Histogram bucket bounds, in milliseconds (rendered in seconds).
const BUCKETS_MS: [u64; 13] = [
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000,
];
/// How many values each label keeps before the rest count as `other`.
const MAX_TOOLS: usize = 200;
const MAX_STATUSES: usize = 20;
const MAX_SHARDS: usize = 50;
const MAX_CATEGORIES: usize = 20;
const OTHER: &str = "other";
const UNKNOWN: &str = "unknown";

/// Exact counts of a stretch of the log, before labels are capped.
#[derive(Default)]
pub struct Tally {
    records: HashMap<(String, String, String), u64>,
    tools: HashMap<(String, String), u64>,
    buckets: [u64; BUCKETS_MS.len()],
    latency_count: u64,
    latency_sum_ms: u128,
    /// Lines that parse as records.
    pub valid: u64,
    unreadable: u64,
    last_timestamp: Option<String>,
}

impl Tally {
    /// Counts the complete lines of `data`, in parallel.
    pub fn of(data: &[u8]) -> Tally {
        let matcher = crate::Filter::default().matcher();
        let chunks = crate::reader::split_lines(data, data.len().div_ceil(4 << 20).max(1));
        chunks
            .par_iter()
            .map(|c| Tally::of_chunk(&data[c.clone()], &matcher))
            .reduce(Tally::default, Tally::merge)
    }

    fn of_chunk(data: &[u8], matcher: &Matcher) -> Tally {
        let mut t = Tally::default();
        for (_, line) in crate::reader::Lines::new(data, 0) {
            match RecordView::parse(line) {
                Ok(r) => t.add(&r, matcher),
                Err(_) => t.unreadable += 1,
            }
        }
        t
    }

    fn add(&mut self, r: &RecordView<'_>, m: &Matcher) {
        let text = |c: Option<&str>| c.unwrap_or(UNKNOWN).to_owned();
        let status = text(r.status.as_deref());
        let shard = text(m.shard_of(r).as_deref());
        let category = text(m.category_of(r).as_deref());
        if let Some(tool) = r.tool.as_deref() {
            *self
                .tools
                .entry((tool.to_owned(), status.clone()))
                .or_insert(0) += 1;
        }
        *self.records.entry((status, shard, category)).or_insert(0) += 1;
        if let Some(ms) = r.latency() {
            let at = BUCKETS_MS.partition_point(|b| *b < ms);
            if at < BUCKETS_MS.len() {
                self.buckets[at] += 1;
            }
            self.latency_count += 1;
            self.latency_sum_ms += u128::from(ms);
        }
        if let Some(ts) = r.timestamp.as_deref() {
            self.last_timestamp = Some(ts.to_owned());
        }
        self.valid += 1;
    }

    /// Merges `later` (the stretch after this one).
    fn merge(mut self, later: Tally) -> Tally {
        for (k, v) in later.records {
            *self.records.entry(k).or_insert(0) += v;
        }
        for (k, v) in later.tools {
            *self.tools.entry(k).or_insert(0) += v;
        }
        for (a, b) in self.buckets.iter_mut().zip(later.buckets) {
            *a += b;
        }
        self.latency_count += later.latency_count;
        self.latency_sum_ms += later.latency_sum_ms;
        self.valid += later.valid;
        self.unreadable += later.unreadable;
        if later.last_timestamp.is_some() {
            self.last_timestamp = later.last_timestamp;
        }
        self
    }
}

/// The values one label keeps: once admitted, a value keeps its own series.
struct Cap {
    kept: HashSet<String>,
    max: usize,
}

impl Cap {
    fn new(max: usize) -> Cap {
        Cap {
            kept: HashSet::new(),
            max,
        }
    }

    /// Admits values, most frequent first, while there is room.
    fn admit<'a>(&mut self, counts: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut totals: HashMap<&str, u64> = HashMap::new();
        for (v, n) in counts {
            *totals.entry(v).or_insert(0) += n;
        }
        let mut order: Vec<(&str, u64)> = totals.into_iter().collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        for (v, _) in order {
            if self.kept.len() >= self.max {
                break;
            }
            if !self.kept.contains(v) {
                self.kept.insert(v.to_owned());
            }
        }
    }

    fn label(&self, v: &str) -> String {
        if self.kept.contains(v) {
            v.to_owned()
        } else {
            OTHER.to_owned()
        }
    }
}

/// The counters a scrape renders.
pub struct Counters {
    statuses: Cap,
    shards: Cap,
    categories: Cap,
    tool_names: Cap,
    records: BTreeMap<(String, String, String), u64>,
    tools: BTreeMap<(String, String), u64>,
    buckets: [u64; BUCKETS_MS.len()],
    latency_count: u64,
    latency_sum_ms: u128,
    unreadable: u64,
    last_timestamp: Option<f64>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            statuses: Cap::new(MAX_STATUSES),
            shards: Cap::new(MAX_SHARDS),
            categories: Cap::new(MAX_CATEGORIES),
            tool_names: Cap::new(MAX_TOOLS),
            records: BTreeMap::new(),
            tools: BTreeMap::new(),
            buckets: [0; BUCKETS_MS.len()],
            latency_count: 0,
            latency_sum_ms: 0,
            unreadable: 0,
            last_timestamp: None,
        }
    }
}

impl Counters {
    /// Adds a stretch of the log that follows what was counted so far.
    pub fn add(&mut self, t: Tally) {
        self.statuses
            .admit(t.records.iter().map(|((s, _, _), n)| (s.as_str(), *n)));
        self.shards
            .admit(t.records.iter().map(|((_, s, _), n)| (s.as_str(), *n)));
        self.categories
            .admit(t.records.iter().map(|((_, _, c), n)| (c.as_str(), *n)));
        self.tool_names
            .admit(t.tools.iter().map(|((tool, _), n)| (tool.as_str(), *n)));
        for ((status, shard, category), n) in t.records {
            let key = (
                self.statuses.label(&status),
                self.shards.label(&shard),
                self.categories.label(&category),
            );
            *self.records.entry(key).or_insert(0) += n;
        }
        for ((tool, status), n) in t.tools {
            let key = (self.tool_names.label(&tool), self.statuses.label(&status));
            *self.tools.entry(key).or_insert(0) += n;
        }
        for (a, b) in self.buckets.iter_mut().zip(t.buckets) {
            *a += b;
        }
        self.latency_count += t.latency_count;
        self.latency_sum_ms += t.latency_sum_ms;
        self.unreadable += t.unreadable;
        if let Some(ts) = t
            .last_timestamp
            .as_deref()
            .and_then(crate::time::parse_timestamp)
        {
            let secs = ts.timestamp() as f64 + f64::from(ts.timestamp_subsec_micros()) / 1e6;
            self.last_timestamp = Some(secs);
        }
    }

    /// The exposition text; `chain_ok` and `log_bytes` come from outside the counters.
    pub fn render(&self, chain_ok: Option<bool>, log_bytes: Option<u64>) -> String {
        let mut out = String::with_capacity(4096 + self.tools.len() * 96);
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        family(
            "nexus_audit_records_total",
            "counter",
            "Records in the log, by status, shard and action category (at most 20 statuses, 50 shards and 20 categories; the rest as other).",
        );
        for ((status, shard, category), n) in &self.records {
            let _ = writeln!(
                out,
                "nexus_audit_records_total{{status=\"{}\",shard=\"{}\",action_category=\"{}\"}} {n}",
                escape(status),
                escape(shard),
                escape(category)
            );
        }
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "nexus_audit_tool_calls_total",
            "counter",
            "Records that name a tool, by tool (the 200 most called; the rest as other) and status.",
        );
        for ((tool, status), n) in &self.tools {
            let _ = writeln!(
                out,
                "nexus_audit_tool_calls_total{{tool=\"{}\",status=\"{}\"}} {n}",
                escape(tool),
                escape(status)
            );
        }
        family(
            &mut out,
            "nexus_audit_call_duration_seconds",
            "histogram",
            "Call latency (the records' latency_ms), in seconds.",
        );
        let mut cumulative = 0u64;
        for (bound, n) in BUCKETS_MS.iter().zip(self.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "nexus_audit_call_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                seconds(u128::from(*bound))
            );
        }
        let _ = writeln!(
            out,
            "nexus_audit_call_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            self.latency_count
        );
        let _ = writeln!(
            out,
            "nexus_audit_call_duration_seconds_sum {}",
            seconds(self.latency_sum_ms)
        );
        let _ = writeln!(
            out,
            "nexus_audit_call_duration_seconds_count {}",
            self.latency_count
        );
        family(
            &mut out,
            "nexus_audit_unreadable_lines_total",
            "counter",
            "Lines of the log that are not records (skipped by every reader).",
        );
        let _ = writeln!(
            out,
            "nexus_audit_unreadable_lines_total {}",
            self.unreadable
        );
        family(
            &mut out,
            "nexus_audit_last_record_timestamp_seconds",
            "gauge",
            "Timestamp of the newest record, in seconds since 1970.",
        );
        if let Some(ts) = self.last_timestamp {
            let _ = writeln!(out, "nexus_audit_last_record_timestamp_seconds {ts:.6}");
        }
        family(
            &mut out,
            "nexus_audit_chain_ok",
            "gauge",
            "1 when the hash chain verifies (checked incrementally as the log grows), else 0.",
        );
        if let Some(ok) = chain_ok {
            let _ = writeln!(out, "nexus_audit_chain_ok {}", u8::from(ok));
        }
        family(
            &mut out,
            "nexus_audit_log_bytes",
            "gauge",
            "Size of the log file, in bytes.",
        );
        if let Some(bytes) = log_bytes {
            let _ = writeln!(out, "nexus_audit_log_bytes {bytes}");
        }
        out
    }
}

/// Milliseconds as decimal seconds, exactly: 2500 → 2.5.
fn seconds(ms: u128) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

/// A label value as the text format wants it: backslash, quote and LF escaped.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

pub async fn handler(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if query.as_deref().is_some_and(|q| !q.is_empty()) {
        return Err(ApiError::BadRequest(
            "/metrics takes no parameters: filter in PromQL instead".into(),
        ));
    }
    app.live.wait_ready(Duration::from_secs(60)).await?;
    let log_bytes = std::fs::metadata(&app.file).map(|m| m.len()).map_err(|_| {
        ApiError::Unavailable(format!(
            "the log file {} does not exist",
            app.file.display()
        ))
    })?;
    let chain_ok = app.verifier.last_ok();
    let text = app
        .live
        .with_counters(|c| c.render(chain_ok, Some(log_bytes)));
    let mut response = Response::new(text.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(5), "0.005");
        assert_eq!(seconds(2500), "2.5");
        assert_eq!(seconds(60_000), "60");
        assert_eq!(seconds(1234), "1.234");
    }

    #[test]
    fn labels_past_the_cap_count_as_other() {
        let mut cap = Cap::new(2);
        cap.admit([("a", 5), ("b", 9), ("c", 1)]);
        assert_eq!(cap.label("b"), "b");
        assert_eq!(cap.label("a"), "a");
        assert_eq!(cap.label("c"), OTHER);
        cap.admit([("c", 100)]);
        assert_eq!(cap.label("c"), OTHER, "admitted values keep their place");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
