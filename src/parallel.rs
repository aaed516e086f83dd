//! The thread pool that the parallel passes (verify, stats, scan) run on.

use crate::error::{Error, Result};

/// The most worker threads a reader takes (`--threads`): far above any core count that pays
/// off for a memory-bound scan, far below what would exhaust the process.
pub const MAX_THREADS: usize = 1024;

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
