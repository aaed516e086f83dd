//! `stats`: counts for dashboards (SPEC §7), computed in parallel with flat memory.
//!
//! Each chunk of whole lines folds into an [`Acc`]; accumulators merge in file order, so
//! "recent" and "first/last" mean what they say. Latency percentiles are exact (nearest rank)
//! from a histogram of whole milliseconds: memory grows with the number of distinct latencies,
//! not with the file.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState;

use chrono::{Datelike, NaiveDate};
use rayon::prelude::*;
use serde::Serialize;

use crate::Result;
use crate::filter::Matcher;
use crate::reader::{Lines, Snapshot, split_lines};
use crate::record::RecordView;

/// Time buckets for the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    /// `2026-11-22T09:00:00Z`
    Hour,
    /// `2026-11-22`
    Day,
    /// The ISO week's Monday: `2026-11-16`
    Week,
}

/// Options for [`stats`].
#[derive(Clone, Debug, Default)]
pub struct StatsOptions {
    /// Add a timeline with buckets of this size.
    pub interval: Option<Interval>,
    /// Only the last N records of the file.
    pub last: Option<u64>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
}

/// One of the most recent errors.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RecentError {
    pub timestamp: Option<String>,
    pub tool: Option<String>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
}

/// Latency summary, in milliseconds; percentiles by nearest rank.
#[derive(Clone, Debug, Serialize, Default, PartialEq)]
#[allow(missing_docs)]
pub struct LatencyStats {
    pub count: u64,
    pub min: Option<u64>,
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
    pub mean: Option<f64>,
}

/// One timeline bucket.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Bucket {
    pub bucket: String,
    pub count: u64,
    pub errors: u64,
}

/// The summary `stats --output json` prints.
#[derive(Clone, Debug, Serialize, Default)]
#[allow(missing_docs)]
pub struct Stats {
    pub total_entries: u64,
    pub status_breakdown: BTreeMap<String, u64>,
    pub shard_breakdown: BTreeMap<String, u64>,
    pub action_category_breakdown: BTreeMap<String, u64>,
    /// `[tool, count]`, count descending, then name ascending.
    pub top_10_tools: Vec<(String, u64)>,
    pub error_count: u64,
    /// The last 10 errors, oldest first.
    pub recent_errors: Vec<RecentError>,
    pub mock_mode_calls: u64,
    pub first_timestamp: Option<String>,
    pub last_timestamp: Option<String>,
    pub latency_ms: LatencyStats,
    pub by_user: BTreeMap<String, u64>,
    pub by_server: BTreeMap<String, u64>,
    pub by_action: BTreeMap<String, u64>,
    pub errors_by_tool: BTreeMap<String, u64>,
    /// Lines that are not records (skipped).
    pub unreadable_lines: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Bucket>>,
}

const UNKNOWN: &str = "unknown";
const RECENT: usize = 10;
const DENSE_LATENCY: usize = 4096;

type Counts<'a> = HashMap<Cow<'a, str>, u64, RandomState>;

/// Per-chunk accumulator.
#[derive(Default)]
struct Acc<'a> {
    total: u64,
    unreadable: u64,
    status: Counts<'a>,
    shard: Counts<'a>,
    category: Counts<'a>,
    tool: Counts<'a>,
    user: Counts<'a>,
    server: Counts<'a>,
    action: Counts<'a>,
    errors_by_tool: Counts<'a>,
    errors: u64,
    mock: u64,
    recent: Vec<RecentError>,
    first_ts: Option<Cow<'a, str>>,
    last_ts: Option<Cow<'a, str>>,
    lat_dense: Vec<u64>,
    lat_sparse: BTreeMap<u64, u64>,
    lat_sum: u128,
    timeline: BTreeMap<String, (u64, u64)>,
}

fn bump<'a>(map: &mut Counts<'a>, key: Option<Cow<'a, str>>) {
    *map.entry(key.unwrap_or(Cow::Borrowed(UNKNOWN)))
        .or_insert(0) += 1;
}

fn merge_counts<'a>(into: &mut Counts<'a>, from: Counts<'a>) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}

impl<'a> Acc<'a> {
    fn add(&mut self, r: RecordView<'a>, m: &Matcher, interval: Option<Interval>) {
        self.total += 1;
        let error = r.is_error();
        if let Some(l) = r.latency() {
            if self.lat_dense.is_empty() {
                self.lat_dense = vec![0; DENSE_LATENCY];
            }
            match usize::try_from(l) {
                Ok(i) if i < DENSE_LATENCY => self.lat_dense[i] += 1,
                _ => *self.lat_sparse.entry(l).or_insert(0) += 1,
            }
            self.lat_sum += u128::from(l);
        }
        let shard = m.shard_of(&r).map(|c| Cow::Owned(c.into_owned()));
        let category = m.category_of(&r).map(|c| Cow::Owned(c.into_owned()));
        bump(&mut self.shard, shard);
        bump(&mut self.category, category);
        if r.mock_mode == Some(true) {
            self.mock += 1;
        }
        if let (Some(iv), Some(ts)) = (interval, r.timestamp.as_deref())
            && let Some(key) = bucket_of(ts, iv)
        {
            let e = self.timeline.entry(key).or_insert((0, 0));
            e.0 += 1;
            e.1 += u64::from(error);
        }
        if self.first_ts.is_none() {
            self.first_ts.clone_from(&r.timestamp);
        }
        if r.timestamp.is_some() {
            self.last_ts.clone_from(&r.timestamp);
        }
        if error {
            self.errors += 1;
            bump(&mut self.errors_by_tool, r.tool.clone());
            if self.recent.len() == RECENT {
                self.recent.remove(0);
            }
            self.recent.push(RecentError {
                timestamp: r.timestamp.as_deref().map(str::to_owned),
                tool: r.tool.as_deref().map(str::to_owned),
                error_type: r.error_type.as_deref().map(str::to_owned),
                error_message: r.error_message.as_deref().map(str::to_owned),
            });
        }
        bump(&mut self.status, r.status);
        bump(&mut self.tool, r.tool);
        bump(&mut self.user, r.user_id);
        bump(&mut self.server, r.server_id);
        bump(&mut self.action, r.action);
    }

    /// Merges `later` (the chunk after this one) into `self`.
    fn merge(mut self, later: Acc<'a>) -> Acc<'a> {
        self.total += later.total;
        self.unreadable += later.unreadable;
        merge_counts(&mut self.status, later.status);
        merge_counts(&mut self.shard, later.shard);
        merge_counts(&mut self.category, later.category);
        merge_counts(&mut self.tool, later.tool);
        merge_counts(&mut self.user, later.user);
        merge_counts(&mut self.server, later.server);
        merge_counts(&mut self.action, later.action);
        merge_counts(&mut self.errors_by_tool, later.errors_by_tool);
        self.errors += later.errors;
        self.mock += later.mock;
        self.recent.extend(later.recent);
        if self.recent.len() > RECENT {
            self.recent.drain(..self.recent.len() - RECENT);
        }
        if self.first_ts.is_none() {
            self.first_ts = later.first_ts;
        }
        if later.last_ts.is_some() {
            self.last_ts = later.last_ts;
        }
        if self.lat_dense.is_empty() {
            self.lat_dense = later.lat_dense;
        } else {
            for (a, b) in self.lat_dense.iter_mut().zip(later.lat_dense) {
                *a += b;
            }
        }
        for (k, v) in later.lat_sparse {
            *self.lat_sparse.entry(k).or_insert(0) += v;
        }
        self.lat_sum += later.lat_sum;
        for (k, (c, e)) in later.timeline {
            let slot = self.timeline.entry(k).or_insert((0, 0));
            slot.0 += c;
            slot.1 += e;
        }
        self
    }

    fn finish(self) -> Stats {
        let sorted = |m: Counts<'_>| -> BTreeMap<String, u64> {
            m.into_iter().map(|(k, v)| (k.into_owned(), v)).collect()
        };
        let mut tools: Vec<(String, u64)> = self
            .tool
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v))
            .collect();
        tools.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tools.truncate(10);
        let latency = latency_stats(&self.lat_dense, &self.lat_sparse, self.lat_sum);
        Stats {
            total_entries: self.total,
            status_breakdown: sorted(self.status),
            shard_breakdown: sorted(self.shard),
            action_category_breakdown: sorted(self.category),
            top_10_tools: tools,
            error_count: self.errors,
            recent_errors: self.recent,
            mock_mode_calls: self.mock,
            first_timestamp: self.first_ts.map(Cow::into_owned),
            last_timestamp: self.last_ts.map(Cow::into_owned),
            latency_ms: latency,
            by_user: sorted(self.user),
            by_server: sorted(self.server),
            by_action: sorted(self.action),
            errors_by_tool: sorted(self.errors_by_tool),
            unreadable_lines: self.unreadable,
            timeline: None,
        }
    }
}

fn latency_stats(dense: &[u64], sparse: &BTreeMap<u64, u64>, sum: u128) -> LatencyStats {
    let count: u64 = dense.iter().sum::<u64>() + sparse.values().sum::<u64>();
    if count == 0 {
        return LatencyStats::default();
    }
    let values = dense
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(v, c)| (v as u64, *c))
        .chain(sparse.iter().map(|(v, c)| (*v, *c)));
    // Nearest rank: the smallest value whose cumulative count reaches ceil(p/100 * n).
    let ranks = [50u64, 90, 95, 99].map(|p| (p * count).div_ceil(100).max(1));
    let mut found = [None; 4];
    let (mut min, mut max, mut seen) = (None, None, 0u64);
    for (v, c) in values {
        min.get_or_insert(v);
        max = Some(v);
        seen += c;
        for (slot, rank) in found.iter_mut().zip(ranks) {
            if slot.is_none() && seen >= rank {
                *slot = Some(v);
            }
        }
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "a mean needs no more than f64's precision"
    )]
    let mean = (sum as f64 / count as f64 * 1000.0).round() / 1000.0;
    LatencyStats {
        count,
        min,
        p50: found[0],
        p90: found[1],
        p95: found[2],
        p99: found[3],
        max,
        mean: Some(mean),
    }
}

fn bucket_of(ts: &str, interval: Interval) -> Option<String> {
    let canonical = if ts.len() >= 19 && ts.as_bytes()[10] == b'T' && ts.ends_with('Z') {
        Cow::Borrowed(ts)
    } else {
        Cow::Owned(crate::record::format_timestamp(
            crate::record::parse_timestamp(ts)?,
        ))
    };
    match interval {
        Interval::Hour => Some(format!("{}:00:00Z", canonical.get(..13)?)),
        Interval::Day => Some(canonical.get(..10)?.to_owned()),
        Interval::Week => {
            let d = NaiveDate::parse_from_str(canonical.get(..10)?, "%Y-%m-%d").ok()?;
            let monday = d - chrono::Days::new(u64::from(d.weekday().num_days_from_monday()));
            Some(monday.format("%Y-%m-%d").to_string())
        }
    }
}

/// Computes the summary of the records of `snapshot` that `matcher` keeps.
///
/// # Errors
///
/// [`crate::Error::InvalidConfig`] when the thread pool cannot be built.
pub fn stats(
    snapshot: &Snapshot,
    matcher: &Matcher,
    opts: &StatsOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Stats> {
    let pool = crate::pool(opts.threads)?;
    let mut data = snapshot.data();
    if let Some(n) = opts.last {
        let start = snapshot
            .lines_rev()
            .take(usize::try_from(n).unwrap_or(usize::MAX))
            .last();
        let start = start.map_or(data.len(), |(offset, _)| {
            usize::try_from(offset).unwrap_or(0)
        });
        data = &data[start..];
    }
    let chunks = split_lines(data, data.len().div_ceil(2 << 20).max(1));
    let interval = opts.interval;
    let done = std::sync::atomic::AtomicU64::new(0);
    let acc = pool.install(|| {
        chunks
            .par_iter()
            .map(|c| {
                let mut acc = Acc::default();
                for (_, line) in Lines::new(&data[c.clone()], 0) {
                    match RecordView::parse(line) {
                        Ok(r) if matcher.matches(&r) => acc.add(r, matcher, interval),
                        Ok(_) => {}
                        Err(_) => acc.unreadable += 1,
                    }
                }
                let bytes = (c.end - c.start) as u64;
                progress(done.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes);
                acc
            })
            .reduce(Acc::default, Acc::merge)
    });
    let timeline = interval.map(|_| {
        acc.timeline
            .iter()
            .map(|(k, (c, e))| Bucket {
                bucket: k.clone(),
                count: *c,
                errors: *e,
            })
            .collect()
    });
    let mut stats = acc.finish();
    stats.timeline = timeline;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut dense = vec![0u64; DENSE_LATENCY];
        for slot in &mut dense[1..=100] {
            *slot += 1;
        }
        let s = latency_stats(&dense, &BTreeMap::new(), (1..=100u128).sum());
        assert_eq!(
            (s.p50, s.p90, s.p95, s.p99),
            (Some(50), Some(90), Some(95), Some(99))
        );
        assert_eq!((s.min, s.max, s.mean), (Some(1), Some(100), Some(50.5)));
    }

    #[test]
    fn large_latencies_land_in_the_sparse_map() {
        let dense = vec![0u64; DENSE_LATENCY];
        let sparse = BTreeMap::from([(10_000u64, 1u64), (90_000, 1)]);
        let s = latency_stats(&dense, &sparse, 100_000);
        assert_eq!((s.p50, s.max), (Some(10_000), Some(90_000)));
    }

    #[test]
    fn week_buckets_start_on_monday() {
        assert_eq!(
            bucket_of("2026-11-22T09:05:04.123456Z", Interval::Week).as_deref(),
            Some("2026-11-16")
        );
        assert_eq!(
            bucket_of("2026-11-22T09:05:04.123456Z", Interval::Hour).as_deref(),
            Some("2026-11-22T09:00:00Z")
        );
        assert_eq!(
            bucket_of("2026-11-22T10:05:04+01:00", Interval::Day).as_deref(),
            Some("2026-11-22")
        );
    }
}
