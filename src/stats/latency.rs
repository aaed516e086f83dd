//! Latencies for `stats`: exact percentiles (nearest rank) with bounded memory.

use super::{BTreeMap, Chunk, DENSE_LATENCY, LatencyStats, Matcher, read_record};
use crate::parallel;

/// The percentiles reported, in the order of [`LatencyStats`].
pub(super) const PERCENTILES: [u64; 4] = [50, 90, 95, 99];

/// Latencies in whole milliseconds, bounded: exact counts below [`DENSE_LATENCY`], exact
/// counts of larger values while there are at most `cap` distinct ones, then counts per
/// log-linear bucket (256 per power of two, so at most 13,312 of them). A percentile that
/// falls in such a bucket is found exactly by [`resolve_percentiles`], which narrows the
/// bucket down with further passes over the records (each divides its width by 4,096).
#[derive(Default)]
pub(super) struct Latencies {
    dense: Vec<u64>,
    sparse: BTreeMap<u64, u64>,
    /// Counts per bucket, keyed by the bucket's lowest value, once `sparse` outgrew the cap.
    coarse: Option<BTreeMap<u64, u64>>,
    sum: u128,
    min: Option<u64>,
    max: Option<u64>,
}

/// The lowest value of `v`'s log-linear bucket (`v` ≥ [`DENSE_LATENCY`]).
pub(super) fn bucket_low(v: u64) -> u64 {
    let shift = v.ilog2().saturating_sub(8);
    (v >> shift) << shift
}

/// The highest value of the bucket that starts at `low`.
pub(super) fn bucket_last(low: u64) -> u64 {
    let shift = low.ilog2().saturating_sub(8);
    low | ((1u64 << shift) - 1)
}

/// Where a percentile lies when a bucket holds it: the `k`-th smallest value (1-based) in
/// `low..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Unresolved {
    low: u64,
    last: u64,
    k: u64,
}

impl Latencies {
    pub(super) fn add(&mut self, v: u64, cap: usize) {
        if self.dense.is_empty() {
            self.dense = vec![0; DENSE_LATENCY];
        }
        self.sum += u128::from(v);
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
        self.max = Some(self.max.map_or(v, |m| m.max(v)));
        match usize::try_from(v) {
            Ok(i) if i < DENSE_LATENCY => self.dense[i] += 1,
            _ => {
                if let Some(coarse) = &mut self.coarse {
                    *coarse.entry(bucket_low(v)).or_insert(0) += 1;
                } else {
                    *self.sparse.entry(v).or_insert(0) += 1;
                    if self.sparse.len() > cap {
                        self.coarsen();
                    }
                }
            }
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

    pub(super) fn merge(&mut self, later: Latencies, cap: usize) {
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
    pub(super) fn locate(&self) -> [Option<Result<u64, Unresolved>>; 4] {
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
    pub(super) fn stats(&self, resolved: &[Option<u64>; 4]) -> LatencyStats {
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
pub(super) fn resolve_percentiles(
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
}
