//! RAII guards for `flock(2)` on the log file.

use std::fs::File;
use std::io;

/// Holds an exclusive or shared `flock` on a file until dropped.
#[derive(Debug)]
pub(crate) struct FileLock<'a> {
    file: &'a File,
}

impl<'a> FileLock<'a> {
    /// Blocks until this process holds the exclusive lock.
    pub(crate) fn exclusive(file: &'a File) -> io::Result<Self> {
        retry_interrupted(|| file.lock())?;
        Ok(FileLock { file })
    }

    /// Blocks until this process holds a shared lock.
    pub(crate) fn shared(file: &'a File) -> io::Result<Self> {
        retry_interrupted(|| file.lock_shared())?;
        Ok(FileLock { file })
    }

    /// Takes a shared lock, waiting at most `patience` for a holder of the exclusive lock to
    /// let go; `Ok(None)` when it did not.
    pub(crate) fn shared_within(
        file: &'a File,
        patience: std::time::Duration,
    ) -> io::Result<Option<Self>> {
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match file.try_lock_shared() {
                Ok(()) => return Ok(Some(FileLock { file })),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            if start.elapsed() >= patience {
                return Ok(None);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }
}

/// Runs a blocking `flock` again when a signal interrupts it.
///
/// NOTE: std's `File::lock` returns `EINTR` as an error. A blocked `flock` is interrupted by
/// any signal whose handler was installed without `SA_RESTART`, which a host process (an
/// embedding runtime, a signal-handling library) may well do; an append must not fail for it.
fn retry_interrupted(mut lock: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    loop {
        match lock() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        // NOTE: unlocking an flock we hold cannot fail on Linux; closing the file would
        // release it anyway, so an error here is ignored rather than turned into a panic.
        let _ = self.file.unlock();
    }
}
