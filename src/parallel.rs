//! The thread pool that the parallel passes (verify, stats, scan) run on.

use crate::error::{Error, Result};

/// Builds a rayon pool of `threads` workers (all cores when `None`).
pub(crate) fn build_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n.max(1));
    }
    builder
        .build()
        .map_err(|e| Error::InvalidConfig(format!("cannot start {threads:?} worker threads: {e}")))
}
