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

use crate::Result;
use crate::filter::Matcher;
use crate::parallel::{self, Chunk};
use crate::reader::{Lines, NotRecord, Snapshot, read_record};
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
    /// Distinct values a breakdown counts exactly before it is summarised (default
    /// [`MAX_DISTINCT`]; see the module documentation).
    pub max_distinct: Option<usize>,
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

/// The percentiles reported, in the order of [`LatencyStats`].
const PERCENTILES: [u64; 4] = [50, 90, 95, 99];

/// Latencies in whole milliseconds, bounded: exact counts below [`DENSE_LATENCY`], exact
/// counts of larger values while there are at most `cap` distinct ones, then counts per
/// log-linear bucket (256 per power of two, so at most 13,312 of them). A percentile that
/// falls in such a bucket is found exactly by [`resolve_percentiles`], which narrows the
/// bucket down with further passes over the records (each divides its width by 4,096).
#[derive(Default)]
struct Latencies {
    dense: Vec<u64>,
    sparse: BTreeMap<u64, u64>,
    /// Counts per bucket, keyed by the bucket's lowest value, once `sparse` outgrew the cap.
    coarse: Option<BTreeMap<u64, u64>>,
    sum: u128,
    min: Option<u64>,
    max: Option<u64>,
}

/// The lowest value of `v`'s log-linear bucket (`v` ≥ [`DENSE_LATENCY`]).
fn bucket_low(v: u64) -> u64 {
    let shift = (63 - v.leading_zeros()).saturating_sub(8);
    (v >> shift) << shift
}

/// The highest value of the bucket that starts at `low`.
fn bucket_last(low: u64) -> u64 {
    let shift = (63 - low.leading_zeros()).saturating_sub(8);
    low | ((1u64 << shift) - 1)
}

/// Where a percentile lies when a bucket holds it: the `k`-th smallest value (1-based) in
/// `low..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Unresolved {
    low: u64,
    last: u64,
    k: u64,
}

impl Latencies {
    fn add(&mut self, v: u64, cap: usize) {
        if self.dense.is_empty() {
            self.dense = vec![0; DENSE_LATENCY];
        }
        self.sum += u128::from(v);
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
        self.max = Some(self.max.map_or(v, |m| m.max(v)));
        match usize::try_from(v) {
            Ok(i) if i < DENSE_LATENCY => self.dense[i] += 1,
            _ => match &mut self.coarse {
                Some(coarse) => *coarse.entry(bucket_low(v)).or_insert(0) += 1,
                None => {
                    *self.sparse.entry(v).or_insert(0) += 1;
                    if self.sparse.len() > cap {
                        self.coarsen();
                    }
                }
            },
        }
    }

    /// Moves the exact large values into buckets.
    fn coarsen(&mut self) {
        let mut coarse = self.coarse.take().unwrap_or_default();
        for (v, c) in std::mem::take(&mut self.sparse) {
            *coarse.entry(bucket_low(v)).or_insert(0) += c;
        }
        self.coarse = Some(coarse);
    }

    fn merge(&mut self, later: Latencies, cap: usize) {
        if self.dense.is_empty() {
            self.dense = later.dense;
        } else {
            for (a, b) in self.dense.iter_mut().zip(later.dense) {
                *a += b;
            }
        }
        self.sum += later.sum;
        self.min = self.min.into_iter().chain(later.min).min();
        self.max = self.max.into_iter().chain(later.max).max();
        for (v, c) in later.sparse {
            *self.sparse.entry(v).or_insert(0) += c;
        }
        if let Some(later_coarse) = later.coarse {
            self.coarsen();
            if let Some(coarse) = &mut self.coarse {
                for (b, c) in later_coarse {
                    *coarse.entry(b).or_insert(0) += c;
                }
            }
        } else if self.coarse.is_some() || self.sparse.len() > cap {
            self.coarsen();
        }
    }

    fn count(&self) -> u64 {
        self.dense.iter().sum::<u64>()
            + self.sparse.values().sum::<u64>()
            + self.coarse.iter().flat_map(BTreeMap::values).sum::<u64>()
    }

    /// Each percentile's value, or the bucket that holds it.
    fn locate(&self) -> [Option<Result<u64, Unresolved>>; 4] {
        let count = self.count();
        let mut found = [None; 4];
        if count == 0 {
            return found;
        }
        // Nearest rank: the smallest value whose cumulative count reaches ceil(p/100 * n).
        let ranks = PERCENTILES.map(|p| (p * count).div_ceil(100).max(1));
        let exact = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(v, c)| (v as u64, v as u64, *c))
            .chain(self.sparse.iter().map(|(v, c)| (*v, *v, *c)));
        let buckets = self
            .coarse
            .iter()
            .flatten()
            .map(|(low, c)| (*low, bucket_last(*low), *c));
        let mut seen = 0u64;
        for (low, last, c) in exact.chain(buckets) {
            for (slot, rank) in found.iter_mut().zip(ranks) {
                if slot.is_none() && seen + c >= rank {
                    *slot = Some(if low == last {
                        Ok(low)
                    } else {
                        Err(Unresolved {
                            low,
                            last,
                            k: rank - seen,
                        })
                    });
                }
            }
            seen += c;
        }
        found
    }

    /// The summary, with the percentiles that [`resolve_percentiles`] found in buckets.
    fn stats(&self, resolved: &[Option<u64>; 4]) -> LatencyStats {
        let count = self.count();
        if count == 0 {
            return LatencyStats::default();
        }
        let located = self.locate();
        let p: [Option<u64>; 4] = std::array::from_fn(|i| match located[i] {
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => resolved[i],
            None => None,
        });
        #[expect(
            clippy::cast_precision_loss,
            reason = "a mean needs no more than f64's precision"
        )]
        let mean = (self.sum as f64 / count as f64 * 1000.0).round() / 1000.0;
        LatencyStats {
            count,
            min: self.min,
            p50: p[0],
            p90: p[1],
            p95: p[2],
            p99: p[3],
            max: self.max,
            mean: Some(mean),
        }
    }
}

/// Finds exactly the percentiles that lie in buckets: each pass over the matching records
/// counts the values of each unresolved bucket in 4,096 equal parts and keeps the part that
/// holds the wanted rank, until a part is one value wide (at most six passes for 64-bit
/// values; none for an ordinary log).
fn resolve_percentiles(
    pool: &rayon::ThreadPool,
    chunks: &[Chunk<'_>],
    matcher: &Matcher,
    located: [Option<Result<u64, Unresolved>>; 4],
) -> [Option<u64>; 4] {
    const PARTS: u64 = 4096;
    let mut open: [Option<Unresolved>; 4] = located.map(|l| l.and_then(std::result::Result::err));
    let mut done = [None; 4];
    while open.iter().any(Option::is_some) {
        let width = |u: &Unresolved| (u.last - u.low) / PARTS + 1;
        let zero = || -> [Vec<u64>; 4] {
            std::array::from_fn(|i| vec![0; if open[i].is_some() { PARTS as usize } else { 0 }])
        };
        let counts = parallel::map_reduce(
            pool,
            chunks,
            |c| {
                let mut counts = zero();
                for (_, line) in c.lines() {
                    let Ok(r) = read_record(line) else { continue };
                    let Some(v) = r.latency() else { continue };
                    if !matcher.matches(&r) {
                        continue;
                    }
                    for (u, hist) in open.iter().zip(counts.iter_mut()) {
                        if let Some(u) = u
                            && (u.low..=u.last).contains(&v)
                        {
                            #[expect(
                                clippy::cast_possible_truncation,
                                reason = "below PARTS by construction"
                            )]
                            let part = ((v - u.low) / width(u)) as usize;
                            hist[part] += 1;
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
        for i in 0..4 {
            let Some(u) = open[i] else { continue };
            let w = width(&u);
            let mut seen = 0u64;
            let mut next = None;
            for (part, c) in counts[i].iter().enumerate() {
                if seen + c >= u.k {
                    let low = u.low + part as u64 * w;
                    next = Some(Unresolved {
                        low,
                        last: (low + (w - 1)).min(u.last),
                        k: u.k - seen,
                    });
                    break;
                }
                seen += c;
            }
            open[i] = match next {
                Some(n) if n.low == n.last => {
                    done[i] = Some(n.low);
                    None
                }
                // NOTE: None only if the file changed under the map, which the snapshot rules
                // out; give up on this percentile rather than loop.
                other => other,
            };
        }
    }
    done
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
/// [`crate::Error::InvalidConfig`] when the thread pool cannot be built.
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
                bucket: k.clone(),
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

    fn latencies(values: &[u64], cap: usize) -> Latencies {
        let mut l = Latencies::default();
        for v in values {
            l.add(*v, cap);
        }
        l
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        let s = latencies(&values, 10).stats(&[None; 4]);
        assert_eq!(
            (s.p50, s.p90, s.p95, s.p99),
            (Some(50), Some(90), Some(95), Some(99))
        );
        assert_eq!((s.min, s.max, s.mean), (Some(1), Some(100), Some(50.5)));
    }

    #[test]
    fn large_latencies_land_in_the_sparse_map() {
        let s = latencies(&[10_000, 90_000], 10).stats(&[None; 4]);
        assert_eq!((s.p50, s.max), (Some(10_000), Some(90_000)));
    }

    #[test]
    fn buckets_cover_every_large_value_once() {
        for v in [
            4096u64,
            4097,
            8191,
            8192,
            123_456_789,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let low = bucket_low(v);
            assert!(low <= v && v <= bucket_last(low), "{v}");
            assert_eq!(bucket_low(bucket_last(low)), low, "{v}");
        }
        assert_eq!(bucket_last(4096), 4111);
        assert_eq!(bucket_low(4112), 4112);
    }

    #[test]
    fn past_the_cap_percentiles_are_located_in_buckets_and_counts_stay_exact() {
        // 5,000 distinct large values, a cap of 100: bucketed, in one or two merged halves.
        let values: Vec<u64> = (0..5_000u64)
            .map(|i| 5_000 + i * 7_919 % 1_000_003)
            .collect();
        let whole = latencies(&values, 100);
        let mut halves = latencies(&values[..2_500], 100);
        halves.merge(latencies(&values[2_500..], 100), 100);
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for l in [&whole, &halves] {
            assert!(l.coarse.is_some() && l.sparse.is_empty());
            assert!(l.coarse.as_ref().is_some_and(|c| c.len() <= 13_312));
            assert_eq!(l.count(), 5_000);
            assert_eq!(
                (l.min, l.max),
                (sorted.first().copied(), sorted.last().copied())
            );
            for (p, found) in PERCENTILES.iter().zip(l.locate()) {
                let want = sorted[usize::try_from((p * 5_000).div_ceil(100) - 1).unwrap_or(0)];
                match found {
                    Some(Ok(v)) => assert_eq!(v, want),
                    Some(Err(u)) => assert!(u.low <= want && want <= u.last && u.k >= 1),
                    None => panic!("p{p} not located"),
                }
            }
        }
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
