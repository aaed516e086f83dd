//! Parallel filtering of whole lines, oldest first or newest first, for `query` and `export`:
//! the public face of the window engine in [`crate::parallel`].

/// Calls `visit` with each line of `data` (whole lines, LF-terminated) for which `parse` gives
/// a value, together with that value, in file order or, with `newest_first`, in reverse, until
/// `visit` returns `Ok(false)`. Each line is parsed once, in parallel. `progress` gets the
/// number of bytes read so far.
///
/// # Errors
///
/// [`crate::error::Error::InvalidConfig`] when the thread pool cannot be built, and whatever `visit`
/// returns.
pub fn for_each_match<'a, T: Send, E: From<crate::error::Error>>(
    data: &'a [u8],
    newest_first: bool,
    threads: Option<usize>,
    parse: &(dyn Fn(&'a [u8]) -> Option<T> + Sync),
    progress: &dyn Fn(u64),
    visit: impl FnMut(&'a [u8], T) -> Result<bool, E>,
) -> Result<(), E> {
    let pool = crate::parallel::build_pool(threads)?;
    crate::parallel::for_each_match(&pool, &[data], newest_first, parse, progress, visit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_over_each_kept_line_with_its_parsed_value() {
        let data = b"1 a\n2 b\n3 c\n4 d\n";
        let parse = |l: &[u8]| {
            std::str::from_utf8(&l[..1])
                .ok()?
                .parse::<u32>()
                .ok()
                .filter(|n| n % 2 == 0)
        };
        let mut seen = Vec::new();
        for_each_match(data, true, Some(1), &parse, &|_| {}, |line, n| {
            seen.push((line.to_vec(), n));
            Ok::<_, crate::error::Error>(true)
        })
        .expect("scan");
        assert_eq!(seen, vec![(b"4 d".to_vec(), 4), (b"2 b".to_vec(), 2)]);
    }

    #[test]
    fn a_bad_thread_count_is_an_error_not_a_panic() {
        let r = for_each_match(b"x\n", false, Some(0), &|_| Some(()), &|_| {}, |_, ()| {
            Ok::<_, crate::error::Error>(true)
        });
        assert!(matches!(r, Err(crate::error::Error::InvalidConfig(_))));
    }
}
