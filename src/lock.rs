//! RAII guards for `flock(2)` on the log file.

use std::fs::File;

/// Holds an exclusive or shared `flock` on a file until dropped.
#[derive(Debug)]
pub(crate) struct FileLock<'a> {
    file: &'a File,
}

impl<'a> FileLock<'a> {
    /// Blocks until this process holds the exclusive lock.
    pub(crate) fn exclusive(file: &'a File) -> std::io::Result<Self> {
        file.lock()?;
        Ok(FileLock { file })
    }

    /// Blocks until this process holds a shared lock.
    pub(crate) fn shared(file: &'a File) -> std::io::Result<Self> {
        file.lock_shared()?;
        Ok(FileLock { file })
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        // NOTE: unlocking an flock we hold cannot fail on Linux; closing the file would
        // release it anyway, so an error here is ignored rather than turned into a panic.
        let _ = self.file.unlock();
    }
}
