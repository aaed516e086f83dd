//! `stats`: counts for dashboards (SPEC §7), computed in parallel with flat memory.
//!
//! Each chunk of whole lines folds into an [`Acc`]; accumulators merge in file order, so
//! "recent" and "first/last" mean what they say. Latency percentiles are exact (nearest rank)
//! from a histogram of whole milliseconds; past `max_distinct` distinct values above 4,095 ms
//! the histogram keeps log-linear buckets and a percentile that falls in one is narrowed down
//! exactly by further passes (see `Latencies`), so memory stays bounded there too.
//!
//! **Breakdowns stay bounded.** Each breakdown (status, shard, category, tool, user, server,
//! action, errors by tool) counts exactly while it has at most `max_distinct` values (10,000
//! by default), which is every ordinary log. Past that it becomes a Misra–Gries summary of
//! `max_distinct` counters (deterministic, mergeable across threads): every value whose count
//! exceeds `(n − kept)/(max_distinct + 1)`, where `n` is the number counted and `kept` the sum
//! of the surviving counters, is still among them. A second pass over the same records then
//! counts those candidates exactly, and the breakdown lists every value above that threshold
//! with its exact count; [`Stats::truncated_breakdowns`] says how many records the list
//! leaves out and the threshold. Memory is `max_distinct` entries per breakdown and thread,
//! whatever the log holds.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::error::Result;
use crate::filter::Matcher;
use crate::parallel::{self, Chunk};
use crate::reader::{Lines, NotRecord, Snapshot, read_record};
use crate::record::RecordView;

mod latency;
use latency::{Latencies, resolve_percentiles};

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
///
/// ```
/// use nexus_audit::{Interval, StatsOptions};
/// let opts = StatsOptions::new().interval(Interval::Hour).last(1000);
/// assert_eq!(opts.last, Some(1000));
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StatsOptions {
    /// Add a timeline with buckets of this size.
    pub interval: Option<Interval>,
    /// Only the last N records of the file.
    pub last: Option<u64>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Distinct values a breakdown counts exactly before it is summarised (default
    /// [`MAX_DISTINCT`]; see the module documentation).
    pub max_distinct: Option<usize>,
}

impl StatsOptions {
    /// No timeline, the whole file, all cores, [`MAX_DISTINCT`] values per breakdown.
    #[must_use]
    pub fn new() -> Self {
        StatsOptions::default()
    }

    /// Adds a timeline with buckets of this size.
    #[must_use]
    pub fn interval(mut self, interval: Interval) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Summarises only the last `n` records.
    #[must_use]
    pub fn last(mut self, n: u64) -> Self {
        self.last = Some(n);
        self
    }

    /// Uses `n` worker threads (`None`: all cores).
    #[must_use]
    pub fn threads(mut self, n: impl Into<Option<usize>>) -> Self {
        self.threads = n.into();
        self
    }

    /// Counts at most `n` distinct values per breakdown exactly.
    #[must_use]
    pub fn max_distinct(mut self, n: usize) -> Self {
        self.max_distinct = Some(n);
        self
    }
}

/// Distinct values per breakdown counted exactly by default.
pub const MAX_DISTINCT: usize = 10_000;

/// What a breakdown that had more than `max_distinct` values leaves out.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Truncation {
    /// Values listed, each with its exact count.
    pub values_listed: u64,
    /// Records counted in this breakdown but not under a listed value.
    pub records_not_listed: u64,
    /// Every value with more records than this is listed; no value left out has more.
    pub listed_when_more_than: u64,
}

/// One of the most recent errors.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RecentError {
    /// The record's `timestamp`.
    pub timestamp: Option<String>,
    /// The tool that failed.
    pub tool: Option<String>,
    /// The record's `error_type`.
    pub error_type: Option<String>,
    /// The record's `error_message` (redacted when it was written).
    pub error_message: Option<String>,
}

/// Latency summary, in milliseconds; percentiles by nearest rank.
#[derive(Clone, Debug, Serialize, Default, PartialEq)]
pub struct LatencyStats {
    /// Records with a `latency_ms`.
    pub count: u64,
    /// The smallest latency.
    pub min: Option<u64>,
    /// The median.
    pub p50: Option<u64>,
    /// The 90th percentile.
    pub p90: Option<u64>,
    /// The 95th percentile.
    pub p95: Option<u64>,
    /// The 99th percentile.
    pub p99: Option<u64>,
    /// The largest latency.
    pub max: Option<u64>,
    /// The arithmetic mean.
    pub mean: Option<f64>,
}

/// One timeline bucket.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's start (`2026-11-18T07:00:00Z` by hour, `2026-11-18` by day).
    #[serde(rename = "bucket")]
    pub start: String,
    /// Records in the bucket.
    pub count: u64,
    /// Of which with status `error`.
    pub errors: u64,
}

/// The summary `stats --output json` prints.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Stats {
    /// Records that match the filter.
    pub total_entries: u64,
    /// Records by `status`.
    pub status_breakdown: BTreeMap<String, u64>,
    /// Records by `shard`.
    pub shard_breakdown: BTreeMap<String, u64>,
    /// Records by `action_category`.
    pub action_category_breakdown: BTreeMap<String, u64>,
    /// `[tool, count]`, count descending, then name ascending.
    pub top_10_tools: Vec<(String, u64)>,
    /// Records with status `error`.
    pub error_count: u64,
    /// The last 10 errors, oldest first.
    pub recent_errors: Vec<RecentError>,
    /// Records with `mock_mode` true.
    pub mock_mode_calls: u64,
    /// The earliest `timestamp`.
    pub first_timestamp: Option<String>,
    /// The latest `timestamp`.
    pub last_timestamp: Option<String>,
    /// The latency summary.
    pub latency_ms: LatencyStats,
    /// Records by `user_id`.
    pub by_user: BTreeMap<String, u64>,
    /// Records by `server_id`.
    pub by_server: BTreeMap<String, u64>,
    /// Records by `action`.
    pub by_action: BTreeMap<String, u64>,
    /// Records with status `error`, by `tool`.
    pub errors_by_tool: BTreeMap<String, u64>,
    /// Lines that are not records (skipped).
    pub unreadable_lines: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Records per hour or day, when asked for.
    pub timeline: Option<Vec<Bucket>>,
    /// The breakdowns that had more than `max_distinct` values, by their key in this object
    /// (`by_user`, `top_10_tools`, …): absent for every ordinary log.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub truncated_breakdowns: BTreeMap<String, Truncation>,
    /// The first lines (up to 10, in file order) that are not records: byte offset and why.
    #[serde(skip)]
    pub unreadable_first: Vec<(u64, NotRecord)>,
}

const UNKNOWN: &str = "unknown";
const RECENT: usize = 10;
const DENSE_LATENCY: usize = 4096;
const NAMED_UNREADABLE: usize = 10;

type Counts<'a> = HashMap<Cow<'a, str>, u64, RandomState>;

/// The breakdowns, in the order of [`Acc::tallies`].
const BREAKDOWNS: usize = 8;
/// Their keys in the JSON summary (`tool` feeds `top_10_tools`).
const BREAKDOWN_NAMES: [&str; BREAKDOWNS] = [
    "status_breakdown",
    "shard_breakdown",
    "action_category_breakdown",
    "top_10_tools",
    "by_user",
    "by_server",
    "by_action",
    "errors_by_tool",
];

/// The value a record counts under in each breakdown (`None`: not counted there).
fn keys_of<'a>(r: &RecordView<'a>, m: &Matcher) -> [Option<Cow<'a, str>>; BREAKDOWNS] {
    let or_unknown = |v: Option<Cow<'a, str>>| Some(v.unwrap_or(Cow::Borrowed(UNKNOWN)));
    let shard = m.shard_of(r).map(|c| Cow::Owned(c.into_owned()));
    let category = m.category_of(r).map(|c| Cow::Owned(c.into_owned()));
    [
        or_unknown(r.status.clone()),
        or_unknown(shard),
        or_unknown(category),
        or_unknown(r.tool.clone()),
        or_unknown(r.user_id.clone()),
        or_unknown(r.server_id.clone()),
        or_unknown(r.action.clone()),
        if r.is_error() {
            or_unknown(r.tool.clone())
        } else {
            None
        },
    ]
}

/// Counts per value, exact up to `cap` distinct values, then a Misra–Gries summary.
#[derive(Default)]
struct Tally<'a> {
    counts: Counts<'a>,
    /// Values counted.
    seen: u64,
    /// True once counts were dropped: the counters are then lower bounds of candidates.
    summarised: bool,
}

impl<'a> Tally<'a> {
    fn bump(&mut self, key: Cow<'a, str>, cap: usize) {
        self.seen += 1;
        if let Some(c) = self.counts.get_mut(key.as_ref()) {
            *c += 1;
        } else if self.counts.len() < cap {
            self.counts.insert(key, 1);
        } else {
            // Misra–Gries: a new value with every counter taken lowers them all by one. Each
            // such pass removes `cap` counts, so the passes cost O(1) per value counted.
            self.summarised = true;
            self.counts.retain(|_, c| {
                *c -= 1;
                *c > 0
            });
        }
    }

    fn merge(&mut self, later: Tally<'a>, cap: usize) {
        self.seen += later.seen;
        self.summarised |= later.summarised;
        if self.counts.is_empty() {
            self.counts = later.counts;
        } else {
            for (k, v) in later.counts {
                *self.counts.entry(k).or_insert(0) += v;
            }
        }
        if self.counts.len() > cap {
            // The mergeable form (Agarwal et al.): lower every counter by the (cap+1)-th
            // largest, which keeps at most `cap` and the same error bound.
            self.summarised = true;
            let mut values: Vec<u64> = self.counts.values().copied().collect();
            let (_, &mut cut, _) = values.select_nth_unstable_by(cap, |a, b| b.cmp(a));
            self.counts.retain(|_, c| {
                *c = c.saturating_sub(cut);
                *c > 0
            });
        }
    }

    /// No value outside the counters has more than this many.
    fn threshold(&self, cap: usize) -> u64 {
        let kept: u64 = self.counts.values().sum();
        (self.seen - kept) / (cap as u64 + 1)
    }
}

/// Per-chunk accumulator.
#[derive(Default)]
struct Acc<'a> {
    total: u64,
    unreadable: u64,
    unreadable_first: Vec<(u64, NotRecord)>,
    /// In the order of [`BREAKDOWN_NAMES`].
    tallies: [Tally<'a>; BREAKDOWNS],
    errors: u64,
    mock: u64,
    recent: Vec<RecentError>,
    first_ts: Option<Cow<'a, str>>,
    last_ts: Option<Cow<'a, str>>,
    latency: Latencies,
    timeline: BTreeMap<String, (u64, u64)>,
}

impl<'a> Acc<'a> {
    fn add(&mut self, r: RecordView<'a>, m: &Matcher, interval: Option<Interval>, cap: usize) {
        self.total += 1;
        for (tally, key) in self.tallies.iter_mut().zip(keys_of(&r, m)) {
            if let Some(key) = key {
                tally.bump(key, cap);
            }
        }
        let error = r.is_error();
        if let Some(l) = r.latency() {
            self.latency.add(l, cap);
        }
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
    }

    fn unreadable(&mut self, offset: u64, why: NotRecord) {
        self.unreadable += 1;
        if self.unreadable_first.len() < NAMED_UNREADABLE {
            self.unreadable_first.push((offset, why));
        }
    }

    /// Merges `later` (the chunk after this one) into `self`.
    fn merge(mut self, later: Acc<'a>, cap: usize) -> Acc<'a> {
        self.total += later.total;
        self.unreadable += later.unreadable;
        self.unreadable_first.extend(later.unreadable_first);
        self.unreadable_first.truncate(NAMED_UNREADABLE);
        for (tally, from) in self.tallies.iter_mut().zip(later.tallies) {
            tally.merge(from, cap);
        }
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
        self.latency.merge(later.latency, cap);
        for (k, (c, e)) in later.timeline {
            let slot = self.timeline.entry(k).or_insert((0, 0));
            slot.0 += c;
            slot.1 += e;
        }
        self
    }

    /// The summary. `exact` holds, for each summarised breakdown, the exact counts of its
    /// candidates from the second pass; `exact_latencies` the percentiles resolved by
    /// [`resolve_percentiles`].
    fn finish(
        self,
        exact: &[Option<Vec<(String, u64)>>; BREAKDOWNS],
        exact_latencies: &[Option<u64>; 4],
        cap: usize,
    ) -> Stats {
        let mut truncated = BTreeMap::new();
        let mut lists = self.tallies.into_iter().enumerate().map(|(i, tally)| {
            let Some(exact) = &exact[i] else {
                return tally
                    .counts
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v))
                    .collect::<Vec<_>>();
            };
            let threshold = tally.threshold(cap);
            let listed: Vec<(String, u64)> = exact
                .iter()
                .filter(|(_, n)| *n > threshold)
                .cloned()
                .collect();
            let in_list: u64 = listed.iter().map(|(_, n)| n).sum();
            truncated.insert(
                BREAKDOWN_NAMES[i].to_owned(),
                Truncation {
                    values_listed: listed.len() as u64,
                    records_not_listed: tally.seen - in_list,
                    listed_when_more_than: threshold,
                },
            );
            listed
        });
        let mut next = || lists.next().unwrap_or_default();
        let sorted = |v: Vec<(String, u64)>| -> BTreeMap<String, u64> { v.into_iter().collect() };
        let status = sorted(next());
        let shard = sorted(next());
        let category = sorted(next());
        let mut tools = next();
        let by_user = sorted(next());
        let by_server = sorted(next());
        let by_action = sorted(next());
        let errors_by_tool = sorted(next());
        drop(lists);
        tools.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tools.truncate(10);
        if let Some(t) = truncated.get_mut("top_10_tools") {
            t.values_listed = tools.len() as u64;
        }
        let latency = self.latency.stats(exact_latencies);
        Stats {
            total_entries: self.total,
            status_breakdown: status,
            shard_breakdown: shard,
            action_category_breakdown: category,
            top_10_tools: tools,
            error_count: self.errors,
            recent_errors: self.recent,
            mock_mode_calls: self.mock,
            first_timestamp: self.first_ts.map(Cow::into_owned),
            last_timestamp: self.last_ts.map(Cow::into_owned),
            latency_ms: latency,
            by_user,
            by_server,
            by_action,
            errors_by_tool,
            unreadable_lines: self.unreadable,
            timeline: None,
            truncated_breakdowns: truncated,
            unreadable_first: self.unreadable_first,
        }
    }
}

fn bucket_of(ts: &str, interval: Interval) -> Option<String> {
    let canonical = if ts.len() >= 19 && ts.as_bytes()[10] == b'T' && ts.ends_with('Z') {
        Cow::Borrowed(ts)
    } else {
        Cow::Owned(crate::time::format_timestamp(crate::time::parse_timestamp(
            ts,
        )?))
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

/// The size of the chunks the passes over the records are cut into.
const CHUNK: usize = 2 << 20;

/// Computes the summary of the records of `snapshot` that `matcher` keeps.
///
/// # Errors
///
/// [`crate::error::Error::InvalidConfig`] when the thread pool cannot be built.
pub fn stats(
    snapshot: &Snapshot,
    matcher: &Matcher,
    opts: &StatsOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Stats> {
    stats_of(&[snapshot.data()], matcher, opts, progress)
}

/// Computes the summary of the records in `sources` (whole lines, read as one sequence: a
/// rotated log's parts, oldest first) that `matcher` keeps. Byte offsets in
/// [`Stats::unreadable_first`] count over the sources together.
///
/// # Errors
///
/// [`crate::Error::InvalidConfig`] when the thread pool cannot be built.
pub fn stats_of(
    sources: &[&[u8]],
    matcher: &Matcher,
    opts: &StatsOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Stats> {
    let pool = crate::parallel::build_pool(opts.threads)?;
    // With `last`, the sources are cut to their last N lines, from the newest one back.
    let mut kept: Vec<&[u8]> = sources.to_vec();
    let mut base = 0u64;
    if let Some(n) = opts.last {
        let mut left = n;
        let mut from = kept.len();
        let mut cut_at = 0usize;
        while from > 0 && left > 0 {
            from -= 1;
            let data = kept[from];
            let mut start = data.len();
            for (offset, _) in crate::reader::LinesRev::new(data) {
                if left == 0 {
                    break;
                }
                left -= 1;
                start = usize::try_from(offset).unwrap_or(0);
            }
            cut_at = start;
        }
        if left == 0 || from == 0 {
            base = kept[..from].iter().map(|d| d.len() as u64).sum::<u64>() + cut_at as u64;
            if n == 0 {
                kept.clear();
            } else {
                kept = std::iter::once(&kept[from][cut_at..])
                    .chain(kept[from + 1..].iter().copied())
                    .collect();
            }
        }
    }
    let chunks = parallel::chunks(&kept, CHUNK);
    let interval = opts.interval;
    let cap = opts.max_distinct.unwrap_or(MAX_DISTINCT).max(1);
    let done = std::sync::atomic::AtomicU64::new(0);
    let acc = parallel::map_reduce(
        &pool,
        &chunks,
        |c| {
            let mut acc = Acc::default();
            for (offset, line) in Lines::new(c.bytes, base + c.offset) {
                match read_record(line) {
                    Ok(r) if matcher.matches(&r) => acc.add(r, matcher, interval, cap),
                    Ok(_) => {}
                    Err(why) => acc.unreadable(offset, why),
                }
            }
            let bytes = c.bytes.len() as u64;
            progress(done.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes);
            acc
        },
        Acc::default,
        |a, b| a.merge(b, cap),
    );
    let timeline = interval.map(|_| {
        acc.timeline
            .iter()
            .map(|(k, (c, e))| Bucket {
                start: k.clone(),
                count: *c,
                errors: *e,
            })
            .collect()
    });
    let exact = if acc.tallies.iter().any(|t| t.summarised) {
        exact_counts(&pool, &chunks, matcher, &acc.tallies)
    } else {
        Default::default()
    };
    let located = acc.latency.locate();
    let exact_latencies = if located.iter().flatten().any(std::result::Result::is_err) {
        resolve_percentiles(&pool, &chunks, matcher, located)
    } else {
        [None; 4]
    };
    let mut stats = acc.finish(&exact, &exact_latencies, cap);
    stats.timeline = timeline;
    Ok(stats)
}

/// The second pass, for summarised breakdowns only: the exact count of each candidate that
/// survived in the summary.
fn exact_counts(
    pool: &rayon::ThreadPool,
    chunks: &[Chunk<'_>],
    matcher: &Matcher,
    tallies: &[Tally<'_>; BREAKDOWNS],
) -> [Option<Vec<(String, u64)>>; BREAKDOWNS] {
    let index: [Option<HashMap<&str, usize, RandomState>>; BREAKDOWNS] = std::array::from_fn(|i| {
        tallies[i].summarised.then(|| {
            tallies[i]
                .counts
                .keys()
                .enumerate()
                .map(|(n, k)| (k.as_ref(), n))
                .collect()
        })
    });
    let zero = || -> [Vec<u64>; BREAKDOWNS] {
        std::array::from_fn(|i| vec![0; index[i].as_ref().map_or(0, HashMap::len)])
    };
    let counts = parallel::map_reduce(
        pool,
        chunks,
        |c| {
            let mut counts = zero();
            for (_, line) in c.lines() {
                let Ok(r) = read_record(line) else { continue };
                if !matcher.matches(&r) {
                    continue;
                }
                for (i, key) in keys_of(&r, matcher).into_iter().enumerate() {
                    if let (Some(idx), Some(key)) = (&index[i], key)
                        && let Some(&n) = idx.get(key.as_ref())
                    {
                        counts[i][n] += 1;
                    }
                }
            }
            counts
        },
        zero,
        |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                for (p, q) in x.iter_mut().zip(y) {
                    *p += q;
                }
            }
            a
        },
    );
    std::array::from_fn(|i| {
        index[i].as_ref().map(|idx| {
            idx.iter()
                .map(|(k, &n)| ((*k).to_owned(), counts[i][n]))
                .collect()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
