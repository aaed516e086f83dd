//! Learning that nothing moved at the log's path, and that its manifest did not change, without
//! a path lookup per write: an inotify watch on the log's directory and on its manifest.
//!
//! Every way the live file can stop being the file at its path goes through the directory: a
//! rotation renames it (`IN_MOVED_FROM`), a replacement renames another file over it
//! (`IN_MOVED_TO`), `rm` unlinks it (`IN_DELETE`), and moving the directory itself is
//! `IN_MOVE_SELF`. A rotation also appends to the manifest (`IN_MODIFY`) before it renames,
//! so a rotation that a crash cut between the two is seen as well, and so is a manifest that
//! appears (`IN_CREATE`, `IN_MOVED_TO`). The kernel queues each event inside the system call
//! that causes it, before that call returns, and every one of those calls is made under the
//! live file's exclusive lock (or before its holder let it go), so a writer that finds the
//! queue empty once it holds the lock knows that nothing of the kind happened since it last
//! looked: it may skip the `stat` of the path and of the manifest.
//!
//! Any event at all (another file created in the directory, a queue overflow) only sends the
//! writer down the full check once. Where inotify cannot be had (the per-user limit on
//! instances, a kernel without it) the writer always takes the full check.
//!
//! NOTE: the directories above the log's own are not watched: renaming one of them moves the
//! live file with it, and the records go on to that file, chained as before. Nor is the working
//! directory: a process that changes it while a handle on a relative path is open goes on
//! writing to the file it had until the watch sees a change (the full check then resolves the
//! path again).

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;

use crate::segment;

/// The `statfs` magic numbers of the local file systems a watch is trusted on: ext2/3/4,
/// XFS, Btrfs, tmpfs, F2FS, ZFS, overlayfs, bcachefs. Anywhere else the writer stats the path.
const LOCAL_FILE_SYSTEMS: [i64; 8] = [
    0xEF53,
    0x5846_5342,
    0x9123_683E,
    0x0102_1994,
    0xF2F5_2010,
    0x2FC1_2FC1,
    0x794C_7630,
    0xCA45_1A4E,
];

/// Whether a handle watches its log.
#[derive(Debug)]
pub(super) enum Watching {
    /// Not yet: the handle has not written twice.
    NotYet,
    /// Through this watch.
    On(Watch),
    /// Never, for the life of this handle: inotify could not be had (or lost a watch), and
    /// trying again on every write would cost system calls of its own.
    Off,
}

/// An inotify instance watching one log's directory and manifest.
#[derive(Debug)]
pub(super) struct Watch {
    fd: OwnedFd,
}

impl Watch {
    /// Starts watching the directory of the log at `log` and its manifest, if it has one;
    /// `None` when inotify is not available. Any check of the path made after this returns is
    /// covered: what changes it later is queued.
    pub(super) fn start(log: &Path) -> Option<Watch> {
        let dir = super::rotate::dir_of(log);
        // IMPORTANT: inotify sees only what this machine's kernel does: on a network file
        // system another host's rotation would go unseen. Only local file systems are trusted.
        let kind = rustix::fs::statfs(dir.as_path()).ok()?.f_type;
        if !LOCAL_FILE_SYSTEMS.contains(&kind) {
            return None;
        }
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
        inotify::add_watch(
            &fd,
            dir.as_path(),
            WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
                | WatchFlags::DELETE_SELF
                | WatchFlags::MOVE_SELF
                | WatchFlags::ONLYDIR,
        )
        .ok()?;
        let watch = Watch { fd };
        watch.watch_manifest(log).then_some(watch)
    }

    /// Watches the manifest of the log at `log` for changes, if there is one now (a manifest
    /// that appears later is an event of the directory). `false` when it cannot be watched.
    pub(super) fn watch_manifest(&self, log: &Path) -> bool {
        match inotify::add_watch(
            &self.fd,
            segment::manifest_path(log).as_path(),
            WatchFlags::MODIFY
                | WatchFlags::ATTRIB
                | WatchFlags::DELETE_SELF
                | WatchFlags::MOVE_SELF
                | WatchFlags::DONT_FOLLOW,
        ) {
            Ok(_) | Err(Errno::NOENT) => true,
            Err(_) => false,
        }
    }

    /// Whether nothing was queued since the last call; reads what was.
    pub(super) fn quiet(&self) -> bool {
        // Events are 16 bytes and a name of at most 256: this holds at least one.
        let mut buf = [0u8; 4096];
        let mut quiet = true;
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(0) => return false,
                Ok(_) => quiet = false,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return quiet,
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each change that can take the live file away from its path, or change the manifest, is
    /// seen; a write to the live file is not an event.
    #[test]
    fn a_rename_a_replacement_a_removal_and_a_manifest_change_are_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("audit.jsonl");
        let manifest = segment::manifest_path(&log);
        std::fs::write(&log, b"{}\n").expect("write");
        let watch = Watch::start(&log).expect("inotify");
        assert!(watch.quiet(), "nothing happened yet");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        std::io::Write::write_all(&mut file, b"{}\n").expect("append");
        assert!(watch.quiet(), "a write to the live file is not an event");

        std::fs::rename(&log, dir.path().join("audit.jsonl.0-1.jsonl")).expect("rename");
        assert!(!watch.quiet(), "a rotation's rename");
        assert!(watch.quiet(), "the events were read");

        std::fs::write(dir.path().join("other"), b"x").expect("write");
        std::fs::rename(dir.path().join("other"), &log).expect("replace");
        assert!(!watch.quiet(), "a file renamed to the path");

        std::fs::remove_file(&log).expect("remove");
        assert!(!watch.quiet(), "the live file removed");

        std::fs::write(&manifest, b"{}\n").expect("manifest");
        assert!(!watch.quiet(), "a manifest created");
        assert!(watch.watch_manifest(&log));
        assert!(watch.quiet());
        let mut m = std::fs::OpenOptions::new()
            .append(true)
            .open(&manifest)
            .expect("open manifest");
        std::io::Write::write_all(&mut m, b"{}\n").expect("append to the manifest");
        assert!(!watch.quiet(), "a record appended to the manifest");
    }
}
