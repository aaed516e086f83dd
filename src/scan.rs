//! Parallel filtering of whole lines, oldest first or newest first, for `query` and `export`.
//!
//! The data is read in windows that grow from 256 KiB to 64 MiB: a query that stops after a
//! few matches near its starting end reads little, a full scan runs on every core. Within a
//! window, chunks of lines are tested in parallel; the matches are then handed over in order.
//! Memory is bounded by one window's matches, whatever the file's size.

use rayon::prelude::*;

use crate::reader::{Lines, split_lines};

const FIRST_WINDOW: usize = 256 << 10;
const MAX_WINDOW: usize = 64 << 20;

/// Calls `visit` with each line of `data` (whole lines, LF-terminated) that `keep` accepts, in
/// file order or, with `newest_first`, in reverse, until `visit` returns `Ok(false)`.
/// `progress` gets the number of bytes read so far.
///
/// # Errors
///
/// [`crate::Error::InvalidConfig`] when the thread pool cannot be built, and whatever `visit`
/// returns.
pub fn for_each_match<'a, E: From<crate::Error>>(
    data: &'a [u8],
    newest_first: bool,
    threads: Option<usize>,
    keep: &(dyn Fn(&[u8]) -> bool + Sync),
    progress: &dyn Fn(u64),
    mut visit: impl FnMut(&'a [u8]) -> Result<bool, E>,
) -> Result<(), E> {
    let pool = crate::parallel::build_pool(threads)?;
    let parts = pool.current_num_threads() * 4;
    let mut size = FIRST_WINDOW;
    let (mut lo, mut hi) = (0usize, data.len());
    while lo < hi {
        // The next window, cut at a line boundary, from the front or from the back.
        let win = if newest_first {
            let guess = hi.saturating_sub(size).max(lo);
            let start = if guess == lo {
                lo
            } else {
                memchr::memrchr(b'\n', &data[lo..guess]).map_or(lo, |i| lo + i + 1)
            };
            let w = start..hi;
            hi = start;
            w
        } else {
            let guess = (lo + size).min(hi);
            let end = if guess == hi {
                hi
            } else {
                memchr::memchr(b'\n', &data[guess..hi]).map_or(hi, |i| guess + i + 1)
            };
            let w = lo..end;
            lo = end;
            w
        };
        let part = &data[win.clone()];
        let chunks = split_lines(part, parts);
        let found: Vec<Vec<(usize, usize)>> = pool.install(|| {
            chunks
                .par_iter()
                .map(|c| {
                    Lines::new(&part[c.clone()], (win.start + c.start) as u64)
                        .filter(|(_, line)| keep(line))
                        .map(|(offset, line)| (offset as usize, line.len()))
                        .collect()
                })
                .collect()
        });
        progress((data.len() - (hi - lo)) as u64);
        let mut lines = found.iter().flatten();
        let mut rev;
        let ordered: &mut dyn Iterator<Item = &(usize, usize)> = if newest_first {
            rev = lines.rev();
            &mut rev
        } else {
            &mut lines
        };
        for &(offset, len) in ordered {
            if !visit(&data[offset..offset + len])? {
                return Ok(());
            }
        }
        size = (size * 2).min(MAX_WINDOW);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn collect(data: &[u8], newest_first: bool, stop_after: usize) -> Vec<Vec<u8>> {
        let keep = |l: &[u8]| l.first().is_some_and(|b| b % 3 == 0);
        let mut out = Vec::new();
        for_each_match(data, newest_first, Some(2), &keep, &|_| {}, |l| {
            out.push(l.to_vec());
            Ok::<_, crate::Error>(out.len() < stop_after)
        })
        .expect("scan");
        out
    }

    #[test]
    fn finds_the_same_lines_as_a_sequential_filter_in_both_orders() {
        let data = sample();
        let expected: Vec<Vec<u8>> = data
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty() && l[0] % 3 == 0)
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(collect(&data, false, usize::MAX), expected);
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(collect(&data, true, usize::MAX), reversed);
        assert_eq!(collect(&data, true, 7), reversed[..7].to_vec());
        assert_eq!(collect(&data, false, 7), expected[..7].to_vec());
    }

    #[test]
    fn empty_data_visits_nothing() {
        assert!(collect(b"", true, usize::MAX).is_empty());
        assert!(collect(b"", false, usize::MAX).is_empty());
    }
}
