//! The one parallel line engine: the thread pool, whole-line chunks and windows over a
//! sequence of byte sources (one map today, a log's segments after rotation), in either order,
//! with an ordered map and reduce. `verify`'s seal scan, `stats`, `query` and `export` run on it.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::reader::{Lines, split_lines};

/// The most worker threads a reader takes (`--threads`): far above any core count that pays
/// off for a memory-bound scan, far below what would exhaust the process.
pub const MAX_THREADS: usize = 1024;

/// The first window of [`for_each_match`]: a search that stops after a few matches near its
/// starting end reads little.
const FIRST_WINDOW: usize = 256 << 10;
/// The largest window: memory stays bounded by one window's matches.
const MAX_WINDOW: usize = 64 << 20;

/// Builds a rayon pool of `threads` workers (all cores when `None`).
///
/// # Errors
///
/// [`Error::InvalidConfig`] for 0 or more than [`MAX_THREADS`] workers (asking the system
/// for a billion threads would never return), or when the pool cannot be built.
pub(crate) fn build_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        if !(1..=MAX_THREADS).contains(&n) {
            return Err(Error::InvalidConfig(format!(
                "{n} worker threads is out of range: give 1 to {MAX_THREADS}"
            )));
        }
        builder = builder.num_threads(n);
    }
    builder
        .build()
        .map_err(|e| Error::InvalidConfig(format!("cannot start {threads:?} worker threads: {e}")))
}

/// Whole lines of one source: `bytes` starts at `offset` of the concatenation of the sources.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk<'a> {
    /// Where `bytes` starts, counted over all the sources before it too.
    pub offset: u64,
    /// LF-terminated lines (the last may lack its LF), never crossing a source's end.
    pub bytes: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// The lines of the chunk with their offsets.
    pub fn lines(&self) -> Lines<'a> {
        Lines::new(self.bytes, self.offset)
    }
}

/// Cuts each of `sources` at line ends into chunks of about `size` bytes, in order.
pub(crate) fn chunks<'a>(sources: &[&'a [u8]], size: usize) -> Vec<Chunk<'a>> {
    let mut out = Vec::new();
    let mut base = 0u64;
    for data in sources {
        out.extend(cut(
            data,
            base,
            split_lines(data, data.len().div_ceil(size.max(1))),
        ));
        base += data.len() as u64;
    }
    out
}

fn cut(data: &[u8], base: u64, ranges: Vec<Range<usize>>) -> impl Iterator<Item = Chunk<'_>> {
    ranges.into_iter().map(move |r| Chunk {
        offset: base + r.start as u64,
        bytes: &data[r],
    })
}

/// Maps every chunk on `pool` and folds the results in chunk order (`reduce(earlier, later)`).
pub(crate) fn map_reduce<'a, A: Send>(
    pool: &rayon::ThreadPool,
    chunks: &[Chunk<'a>],
    map: impl Fn(&Chunk<'a>) -> A + Sync + Send,
    identity: impl Fn() -> A + Sync + Send,
    reduce: impl Fn(A, A) -> A + Sync + Send,
) -> A {
    pool.install(|| chunks.par_iter().map(map).reduce(identity, reduce))
}

/// Calls `visit` with each line of `sources` (whole lines, LF-terminated, taken as one
/// sequence) for which `parse` gives a value, together with that value, in order or, with
/// `newest_first`, in reverse, until `visit` returns `Ok(false)`. `parse` runs in parallel on
/// `pool`; each line is parsed once. The sources are read in windows that grow from 256 KiB
/// to 64 MiB, so memory is bounded by one window's matches whatever the size, and a search
/// that stops early reads little. `progress` gets the number of bytes read so far.
///
/// # Errors
///
/// Whatever `visit` returns.
pub(crate) fn for_each_match<'a, T: Send, E>(
    pool: &rayon::ThreadPool,
    sources: &[&'a [u8]],
    newest_first: bool,
    parse: &(dyn Fn(&'a [u8]) -> Option<T> + Sync),
    progress: &dyn Fn(u64),
    mut visit: impl FnMut(&'a [u8], T) -> std::result::Result<bool, E>,
) -> std::result::Result<(), E> {
    let parts = pool.current_num_threads() * 4;
    let total: usize = sources.iter().map(|s| s.len()).sum();
    let mut size = FIRST_WINDOW;
    let mut before = 0usize;
    let order: Box<dyn Iterator<Item = &&'a [u8]>> = if newest_first {
        Box::new(sources.iter().rev())
    } else {
        Box::new(sources.iter())
    };
    for &data in order {
        let (mut lo, mut hi) = (0usize, data.len());
        while lo < hi {
            // The next window, cut at a line boundary, from the front or from the back.
            // NOTE: the cut is looked for inside the window first, so a huge line (a sparse
            // file's hole) beyond it is read only if the search gets that far.
            let win = if newest_first {
                let start = window_start(data, lo, hi, size);
                let w = start..hi;
                hi = start;
                w
            } else {
                let guess = (lo + size).min(hi);
                let end = if guess == hi {
                    hi
                } else if let Some(i) = memchr::memrchr(b'\n', &data[lo..guess]) {
                    lo + i + 1
                } else {
                    memchr::memchr(b'\n', &data[guess..hi]).map_or(hi, |i| guess + i + 1)
                };
                let w = lo..end;
                lo = end;
                w
            };
            let part = &data[win];
            let found: Vec<Vec<(&'a [u8], T)>> = pool.install(|| {
                split_lines(part, parts)
                    .into_par_iter()
                    .map(|c| {
                        Lines::new(&part[c], 0)
                            .filter_map(|(_, line)| parse(line).map(|v| (line, v)))
                            .collect()
                    })
                    .collect()
            });
            progress((before + data.len() - (hi - lo)).min(total) as u64);
            let mut lines = found.into_iter().flatten();
            let mut rev;
            let ordered: &mut dyn Iterator<Item = (&'a [u8], T)> = if newest_first {
                rev = lines.rev();
                &mut rev
            } else {
                &mut lines
            };
            for (line, value) in ordered {
                if !visit(line, value)? {
                    return Ok(());
                }
            }
            size = (size * 2).min(MAX_WINDOW);
        }
        before += data.len();
    }
    Ok(())
}

/// Where the newest-first window ending at `hi` (a line boundary) starts: the first line
/// boundary within its last `size` bytes, else within twice as many, and so on, else `lo`.
/// The window always holds at least one whole line.
fn window_start(data: &[u8], lo: usize, hi: usize, mut size: usize) -> usize {
    loop {
        let guess = hi.saturating_sub(size).max(lo);
        if guess == lo {
            return lo;
        }
        // The LF that ends the window's last line (at `hi - 1`) is not a place to cut.
        if let Some(i) = memchr::memchr(b'\n', &data[guess..hi - 1]) {
            return guess + i + 1;
        }
        size = size.saturating_mul(2);
    }
}

/// Maps every line of `sources` (as one sequence, oldest first) with `map(offset, line)` in
/// parallel, one window of `window` bytes at a time cut into jobs of `chunk` bytes, and hands
/// the results to `consume` in order. `consume` runs on one thread while the next window is
/// being mapped, so a sequential pass (the chain walk) overlaps the parallel work; memory is
/// bounded by two windows' results. `progress` gets the number of bytes mapped so far.
pub(crate) fn map_lines_in_order<'a, T: Send>(
    pool: &rayon::ThreadPool,
    sources: &[&'a [u8]],
    chunk: usize,
    window: usize,
    map: &(dyn Fn(u64, &'a [u8]) -> T + Sync),
    progress: &dyn Fn(u64),
    mut consume: impl FnMut(T) + Send,
) {
    let chunk = chunk.max(1);
    let map_window = |win: &Chunk<'a>| -> Vec<Vec<T>> {
        chunks(&[win.bytes], chunk)
            .par_iter()
            .map(|c| {
                Lines::new(c.bytes, win.offset + c.offset)
                    .map(|(offset, line)| map(offset, line))
                    .collect()
            })
            .collect()
    };
    let mut mapped: Option<Vec<Vec<T>>> = None;
    let mut done = 0u64;
    for win in chunks(sources, window.max(1)) {
        let (next, ()) = pool.install(|| {
            rayon::join(
                || map_window(&win),
                || {
                    mapped
                        .take()
                        .into_iter()
                        .flatten()
                        .flatten()
                        .for_each(&mut consume);
                },
            )
        });
        mapped = Some(next);
        done += win.bytes.len() as u64;
        progress(done);
    }
    mapped.into_iter().flatten().flatten().for_each(consume);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_never_reads_a_huge_line_it_does_not_reach() {
        // A sparse file's hole looks like one huge line; `tail -n 2` must not read it.
        let mut data = b"first\n".to_vec();
        data.resize(data.len() + (16 << 20), 0);
        data.extend_from_slice(b"\nb\nc\n");
        let pool = build_pool(Some(2)).expect("pool");
        let longest = std::sync::atomic::AtomicUsize::new(0);
        let parse = |l: &[u8]| {
            longest.fetch_max(l.len(), std::sync::atomic::Ordering::Relaxed);
            Some(())
        };
        let mut seen = Vec::new();
        for_each_match(&pool, &[&data], true, &parse, &|_| {}, |l, ()| {
            seen.push(l.to_vec());
            Ok::<_, ()>(seen.len() < 2)
        })
        .expect("search");
        assert_eq!(seen, [b"c".to_vec(), b"b".to_vec()]);
        assert!(longest.into_inner() < 1 << 20, "the hole was read");
    }

    /// Lines of varying length, some very long, across several windows.
    fn sample() -> Vec<u8> {
        let mut data = Vec::new();
        for i in 0..40_000u32 {
            let pad = if i % 997 == 0 {
                300_000
            } else {
                (i % 50) as usize
            };
            data.extend_from_slice(format!("{i} {}\n", "x".repeat(pad)).as_bytes());
        }
        data
    }

    fn collect(sources: &[&[u8]], newest_first: bool, stop_after: usize) -> Vec<Vec<u8>> {
        let pool = build_pool(Some(2)).expect("pool");
        let parse = |l: &[u8]| l.first().filter(|b| *b % 3 == 0).map(|_| l.len());
        let mut out = Vec::new();
        for_each_match(&pool, sources, newest_first, &parse, &|_| {}, |l, len| {
            assert_eq!(l.len(), len, "the parsed value comes with its own line");
            out.push(l.to_vec());
            Ok::<_, Error>(out.len() < stop_after)
        })
        .expect("scan");
        out
    }

    fn expected(data: &[u8]) -> Vec<Vec<u8>> {
        data.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty() && l[0] % 3 == 0)
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn finds_the_same_lines_as_a_sequential_filter_in_both_orders() {
        let data = sample();
        let expected = expected(&data);
        assert_eq!(collect(&[&data], false, usize::MAX), expected);
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(collect(&[&data], true, usize::MAX), reversed);
        assert_eq!(collect(&[&data], true, 7), reversed[..7].to_vec());
        assert_eq!(collect(&[&data], false, 7), expected[..7].to_vec());
    }

    #[test]
    fn several_sources_read_as_one_sequence_in_both_orders() {
        let data = sample();
        let cut = memchr::memchr(b'\n', &data[data.len() / 3..]).expect("a line end")
            + data.len() / 3
            + 1;
        let (a, b) = data.split_at(cut);
        let expected = expected(&data);
        assert_eq!(collect(&[a, b"", b], false, usize::MAX), expected);
        let mut reversed = expected;
        reversed.reverse();
        assert_eq!(collect(&[a, b"", b], true, usize::MAX), reversed);
    }

    #[test]
    fn lines_are_mapped_in_parallel_and_consumed_in_order_across_sources() {
        let data = sample();
        let (a, b) =
            data.split_at(memchr::memchr(b'\n', &data[5000..]).expect("a line end") + 5001);
        let pool = build_pool(Some(2)).expect("pool");
        for (chunk, window) in [(1, 1), (4 << 10, 16 << 10), (1 << 20, 8 << 20)] {
            let mut got = Vec::new();
            map_lines_in_order(
                &pool,
                &[a, b],
                chunk,
                window,
                &|offset, line| (offset, line.len()),
                &|n| assert!(n <= data.len() as u64),
                |x| got.push(x),
            );
            let want: Vec<(u64, usize)> = Lines::new(&data, 0).map(|(o, l)| (o, l.len())).collect();
            assert_eq!(got, want, "chunk {chunk}, window {window}");
        }
    }

    #[test]
    fn empty_data_visits_nothing() {
        assert!(collect(&[b""], true, usize::MAX).is_empty());
        assert!(collect(&[], false, usize::MAX).is_empty());
    }

    #[test]
    fn chunks_cover_every_source_at_line_ends_with_running_offsets() {
        let a = b"one\ntwo\nthree\n".as_slice();
        let b = b"four\nfive".as_slice();
        let chunks = chunks(&[a, b], 5);
        let lines: Vec<(u64, &[u8])> = chunks.iter().flat_map(Chunk::lines).collect();
        let want: Vec<(u64, &[u8])> = vec![
            (0, b"one"),
            (4, b"two"),
            (8, b"three"),
            (14, b"four"),
            (19, b"five"),
        ];
        assert_eq!(lines, want);
        let pool = build_pool(Some(2)).expect("pool");
        let joined = map_reduce(
            &pool,
            &chunks,
            |c| c.bytes.to_vec(),
            Vec::new,
            |mut x, y| {
                x.extend(y);
                x
            },
        );
        assert_eq!(
            joined,
            [a, b].concat(),
            "the reduce keeps the chunks' order"
        );
    }
}
