//! The log file: opening it (never through a link, only a regular file), the head cache, and
//! the one `write` of a group commit with its sync and, on failure, its rollback.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use super::commit::Batch;
use super::rotate::{Before, RotationState, is_at_path};
use super::seal::Sealer;
use super::tail::read_tail;
use super::watch::{Watch, Watching};
use super::{Durability, Shared, lock};
use crate::chain::{self, GENESIS_HASH, Head};
use crate::error::{Error, Result};
use crate::lock::FileLock;
use crate::record::Encoder;

/// The open log and what this handle knows of it.
#[derive(Debug)]
pub(super) struct LogFile {
    /// `None` until the file exists: the first write creates it.
    pub(super) file: Option<File>,
    /// `(file length, head)` as this handle last left the file.
    pub(super) cache: Option<(u64, Option<Head>)>,
    /// The bytes of the last write, kept so the next one reuses the memory (no page faults).
    pub(super) buf: Vec<u8>,
    /// The sealing state as this handle last left it; valid while `cache` is (no other writer
    /// can have sealed without changing the log).
    pub(super) sealer: Option<Sealer>,
    /// Records were written and not synced since ([`Durability::SyncOnClose`]).
    pub(super) unsynced: bool,
    /// What this handle knows about rotation (the manifest, the live file's first record).
    pub(super) rotation: RotationState,
    /// Tells this handle that nothing moved at the path or changed the manifest since its
    /// last check, from its second write on, where inotify is available.
    pub(super) watch: Watching,
}

impl Shared {
    /// Syncs the records written since the last sync, if any ([`Durability::SyncOnClose`]).
    pub(super) fn sync_written(&self) -> Result<()> {
        let mut log = lock(&self.log);
        if let Some(file) = log.file.as_ref().filter(|_| log.unsynced) {
            file.sync_data()
                .map_err(Error::io("cannot sync", &self.path))?;
            log.unsynced = false;
        }
        Ok(())
    }

    /// Writes the batches as consecutive records under the exclusive lock, with one `write`.
    ///
    /// Everything that can refuse the write (the head, the seal key, `seq` running out) is
    /// checked before the file is changed; a torn tail is quarantined only once the records
    /// that follow it are ready.
    pub(super) fn write_batches(&self, batches: &[Batch]) -> Result<Vec<Vec<Head>>> {
        let path = self.path.as_path();
        let mut held = lock(&self.log);
        let log = &mut *held;
        let (file, guard, len) = loop {
            if log.file.is_none() {
                log.file = Some(create_log_file(path, self.mode)?);
                log.cache = None;
                log.sealer = None;
                log.rotation.forget_file();
            }
            let Some(file) = log.file.as_ref() else {
                return Err(Error::Closed {
                    path: path.to_path_buf(),
                });
            };
            let guard = FileLock::exclusive(file).map_err(Error::io("cannot lock", path))?;
            let open = Held::stat(file, path)?;
            let len = open.len;
            let known = log.cache.is_some_and(|(cached_len, _)| cached_len == len);
            // Nothing moved at the path and the manifest is as this handle last read it, when
            // the watch saw no change since (see `watch`); otherwise check both.
            let settled = match &log.watch {
                Watching::On(watch) => {
                    let quiet = watch.quiet();
                    if !quiet && !watch.watch_manifest(path) {
                        log.watch = Watching::Off;
                    }
                    quiet && open.nlink > 0
                }
                // From this handle's second write on (a handle that writes once saves the
                // set-up): started before the checks below, so it covers what they saw.
                Watching::NotYet if log.cache.is_some() => {
                    log.watch = Watch::start(path).map_or(Watching::Off, Watching::On);
                    false
                }
                Watching::NotYet | Watching::Off => false,
            };
            // Another writer may have rotated the file away (or someone replaced it) while
            // this one waited for the lock: write to the file at the path, never to a segment.
            let moved = !settled && !is_at_path(&open, path)?;
            let len = if moved { 0 } else { len };
            if moved
                || matches!(
                    self.before_write(file, len, known, settled, &mut log.rotation)?,
                    Before::Rotated
                )
            {
                drop(guard);
                log.file = None;
                continue;
            }
            break (file, guard, len);
        };

        // What this handle knows of the file holds only if nobody else wrote since.
        let cached = log
            .cache
            .take()
            .filter(|(cached_len, _)| *cached_len == len);
        let cached_sealer = log.sealer.take().filter(|_| cached.is_some());
        let (mut start_len, mut head, recovered) = if let Some((_, head)) = cached {
            (len, head, None)
        } else {
            let tail = read_tail(file, len, path)?;
            let head = match tail.head(path)? {
                Some(head) => Some(head),
                // A new live file after a rotation continues the last segment's head.
                None => self.head_after_segments()?,
            };
            if tail.complete_len < len {
                let recovered = self.torn_tail(file, &tail, len)?;
                (tail.complete_len, head, Some(recovered))
            } else {
                (len, head, None)
            }
        };
        let mut sealer = match (&self.seal, cached_sealer) {
            (Some(_), Some(s)) => Some(s),
            (Some(opts), None) => Some(Sealer::load(opts, head.map(|h| h.seq))?),
            (None, _) => None,
        };

        let total: usize = batches
            .iter()
            .flat_map(|b| &b.bodies)
            .map(|b| b.len() + 100)
            .sum();
        let mut buf = std::mem::take(&mut log.buf);
        buf.clear();
        buf.reserve(total + 1024);
        let last_before = head.map_or(0, |h| h.seq);
        let recovered_body = recovered.as_ref().map(|r| r.body.as_slice());
        let per_batch = match chain_all(
            &mut buf,
            recovered_body,
            batches,
            &mut head,
            &mut sealer,
            &self.encoder,
        ) {
            Ok(per_batch) => per_batch,
            Err(Unchainable::SeqOverflow) => {
                return Err(Error::SeqExhausted {
                    path: path.to_path_buf(),
                    last: last_before,
                });
            }
            Err(Unchainable::Seal(err)) => return Err(err),
        };
        let sealing = sealer.as_ref().is_some_and(Sealer::sealed);
        if let Some(s) = sealer.as_ref().filter(|_| sealing) {
            s.before_write()?;
        }
        if let Some(recovered) = &recovered {
            self.quarantine(file, recovered)?;
        }

        let torn = recovered.as_ref().map(|r| r.torn.as_slice());
        if let Err(err) = (&*file).write_all(&buf) {
            roll_back(file, start_len, torn);
            return Err(Error::io("cannot write to", path)(err));
        }
        // Seals are always synced: the key must not move past seals a crash could lose.
        let sync = match self.durability {
            Durability::Sync | Durability::Buffered { .. } => true,
            Durability::SyncOnClose | Durability::None => sealing,
        };
        if sync && let Err(err) = file.sync_data() {
            roll_back(file, start_len, torn);
            return Err(Error::io("cannot sync", path)(err));
        }
        log.unsynced = !sync && self.durability == Durability::SyncOnClose;
        start_len += buf.len() as u64;
        log.cache = Some((start_len, head));
        if let Some(mut s) = sealer {
            // NOTE: if the key file cannot be moved forward now, the records are written all
            // the same; it still says the seals are pending and the next write finishes that.
            if s.after_write().is_ok() {
                log.sealer = Some(s);
            }
        }
        // Keep up to 16 MiB for the next write; a rare larger batch gives its memory back.
        if buf.capacity() <= 16 << 20 {
            log.buf = buf;
        }
        drop(guard);
        let compress = !self.maintaining.load(std::sync::atomic::Ordering::Acquire)
            && std::mem::take(&mut log.rotation.compress_due);
        drop(held);
        if compress {
            // NOTE: outside the writer's lock (and this handle's, so no thread of this
            // process waits on the directory lock while holding it). The records are written;
            // a compression that fails is retried by the next rotation, `rotate` or `prune`,
            // and a plain segment loses nothing meanwhile.
            let _ = self.compress_pending();
        }
        Ok(per_batch)
    }
}

/// The next record would need a `seq` past `u64::MAX`.
#[derive(Debug)]
struct SeqOverflow;

/// Why the records of a write cannot be chained.
#[derive(Debug)]
enum Unchainable {
    /// A record would need a `seq` past `u64::MAX`.
    SeqOverflow,
    /// A seal record could not be encoded.
    Seal(Error),
}

impl From<SeqOverflow> for Unchainable {
    fn from(SeqOverflow: SeqOverflow) -> Self {
        Unchainable::SeqOverflow
    }
}

/// Undoes a failed append: cuts the log back to `len`, where the append began, so no half line
/// is left for the next append to merge with. When the append had cut a torn tail (already
/// copied to its quarantine file), the torn bytes are put back too: otherwise the quarantine
/// would never be recorded in the chain. The next append quarantines them again, to the same
/// file name, and writes the `log_recovered` record then.
pub(super) fn roll_back(file: &File, len: u64, torn: Option<&[u8]>) {
    // NOTE: errors are ignored: the append's own error is what the caller needs. If the cut
    // fails, the next writer finds the partial line as a torn tail and quarantines it.
    if file.set_len(len).is_err() {
        return;
    }
    // The file is opened with O_APPEND: this write lands at `len`, the new end.
    if let Some(torn) = torn
        && (&*file).write_all(torn).is_err()
    {
        let _ = file.set_len(len);
    }
}

/// Opens the log if it exists: `None` when it does not yet, but its directory does.
pub(super) fn open_existing_log_file(path: &Path) -> Result<Option<File>> {
    match open_log_file(path, OpenOptions::new().read(true).append(true)) {
        Ok(file) => Ok(Some(file)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            // The directory must be there, and writable, so a wrong path fails at once, not at
            // the first write (a fail-closed caller wants to know before it starts).
            let dir = parent_dir(path);
            if !dir.is_dir() {
                return Err(Error::io("cannot open", path)(source));
            }
            rustix::fs::accessat(
                rustix::fs::CWD,
                dir,
                rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
                rustix::fs::AtFlags::EACCESS,
            )
            .map_err(|e| Error::io("cannot create", path)(e.into()))?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Opens the log, creating it with `mode` if needed.
fn create_log_file(path: &Path, mode: u32) -> Result<File> {
    let file = open_log_file(
        path,
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(mode),
    )?;
    // IMPORTANT: the file may have just been created; sync its directory so the entry itself
    // survives a crash, or a synced record could vanish with the file.
    sync_parent_dir(path)?;
    Ok(file)
}

/// Opens the log with `options`, never through a symbolic link, and only if it is a regular
/// file.
fn open_log_file(path: &Path, options: &mut OpenOptions) -> Result<File> {
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::Symlink {
                path: path.to_path_buf(),
            },
            Some(libc::EISDIR) => Error::NotAFile {
                path: path.to_path_buf(),
            },
            _ => Error::io("cannot open", path)(e),
        })?;
    let meta = file.metadata().map_err(Error::io("cannot stat", path))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// What one `statx` of the open log says: its length, link count and identity.
///
/// NOTE: only these are asked for. Asking for the change time makes the kernel stamp the next
/// write with a fine-grained time (multigrain timestamps, Linux 6.13 on), which costs an inode
/// update on every append.
#[derive(Clone, Copy, Debug)]
pub(super) struct Held {
    pub(super) len: u64,
    pub(super) nlink: u32,
    pub(super) id: FileId,
}

/// A file's device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileId {
    dev: (u32, u32),
    ino: u64,
}

impl Held {
    pub(super) fn stat(file: &File, path: &Path) -> Result<Held> {
        use rustix::fs::{AtFlags, StatxFlags, statx};
        let st = statx(
            file,
            "",
            AtFlags::EMPTY_PATH,
            StatxFlags::SIZE | StatxFlags::NLINK | StatxFlags::INO,
        )
        .map_err(|e| Error::io("cannot stat", path)(e.into()))?;
        Ok(Held {
            len: st.stx_size,
            nlink: st.stx_nlink,
            id: FileId {
                dev: (st.stx_dev_major, st.stx_dev_minor),
                ino: st.stx_ino,
            },
        })
    }
}

/// The device and inode of the file at `path` (not following a link); `None` when there is
/// none.
pub(super) fn id_at(path: &Path) -> Result<Option<FileId>> {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    match statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::INO) {
        Ok(st) => Ok(Some(FileId {
            dev: (st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
        })),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io("cannot stat", path)(e.into())),
    }
}

pub(super) fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("cannot sync the directory", dir))
}

/// Chains the `log_recovered` record (if any) and every batch onto `head` into `buf`, with the
/// seals that fall due; returns each batch's `(seq, hash)`s.
fn chain_all(
    buf: &mut Vec<u8>,
    recovered: Option<&[u8]>,
    batches: &[Batch],
    head: &mut Option<Head>,
    sealer: &mut Option<Sealer>,
    encoder: &Encoder,
) -> Result<Vec<Vec<Head>>, Unchainable> {
    // Chains one body onto `head`; with sealing, a seal follows every `every` records.
    let mut push = |body: &[u8], head: &mut Option<Head>| {
        let written = chain_onto(buf, body, head)?;
        if let Some(s) = sealer.as_mut()
            && s.count()
        {
            let seq = written.seq.checked_add(1).ok_or(SeqOverflow)?;
            let seal = s
                .seal_body(seq, &written.hash, encoder)
                .map_err(Unchainable::Seal)?;
            chain_onto(buf, &seal, head)?;
        }
        Ok::<_, Unchainable>(written)
    };
    if let Some(body) = recovered {
        push(body, head)?;
    }
    let per_batch = batches
        .iter()
        .map(|b| {
            b.bodies
                .iter()
                .map(|body| push(body, head))
                .collect::<Result<Vec<Head>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(s) = sealer.as_mut()
        && s.due_at_end()
        && let Some(h) = *head
    {
        let seq = h.seq.checked_add(1).ok_or(SeqOverflow)?;
        let seal = s
            .seal_body(seq, &h.hash, encoder)
            .map_err(Unchainable::Seal)?;
        chain_onto(buf, &seal, head)?;
    }
    Ok(per_batch)
}

/// Appends `{"seq":N,"prev_hash":"…",` + `body` + LF to `buf`, chained onto `head`, and
/// moves `head` to the new line. Refuses to go past `seq` `u64::MAX`.
fn chain_onto(
    buf: &mut Vec<u8>,
    body: &[u8],
    head: &mut Option<Head>,
) -> Result<Head, SeqOverflow> {
    let (seq, prev) = match *head {
        Some(h) => (h.seq.checked_add(1).ok_or(SeqOverflow)?, h.hash),
        None => (0, GENESIS_HASH),
    };
    let start = buf.len();
    chain::write_prefix(buf, seq, &prev);
    buf.extend_from_slice(body);
    let hash = chain::hash_line(&buf[start..]);
    buf.push(b'\n');
    *head = Some(Head { seq, hash });
    Ok(Head { seq, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"{\"seq\":0}\n{\"seq\":1}\n";

    fn open_append(path: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .expect("open")
    }

    /// Without a watch (inotify not available), a handle checks the path and the manifest on
    /// every write: another handle's rotation between two of its appends is followed to the
    /// new live file, and the handle does not try to start a watch again.
    #[test]
    fn without_a_watch_a_rotation_by_another_handle_is_followed() {
        use super::super::{Durability, LogOptions};
        use crate::record::Event;
        use crate::segment::Compression;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let open = || {
            LogOptions::new(&path)
                .durability(Durability::None)
                .compress(Compression::None)
                .open()
                .expect("open")
        };
        let event = |id: &str| Event::new("mcp_call").correlation(id).status_success();
        let a = open();
        a.append(event("a0")).expect("append");
        a.append(event("a1")).expect("append");
        assert!(matches!(lock(&a.shared.log).watch, Watching::On(_)));
        lock(&a.shared.log).watch = Watching::Off;
        a.append(event("a2")).expect("append");
        open().rotate().expect("rotate").expect("a segment closed");
        let receipt = a.append(event("a3")).expect("append");
        assert_eq!(receipt.last().map(|h| h.seq), Some(3));
        let live = std::fs::read_to_string(&path).expect("read the live file");
        assert_eq!(live.lines().count(), 1, "{live}");
        assert!(live.starts_with("{\"seq\":3,"), "{live}");
        assert!(matches!(lock(&a.shared.log).watch, Watching::Off));
    }

    /// A write that failed halfway leaves no part of its lines behind.
    #[test]
    fn roll_back_cuts_a_failed_write_back_to_where_it_began() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, LOG).expect("write");
        let file = open_append(&path);
        (&file)
            .write_all(b"{\"seq\":2}\n{\"seq\":3,\"prev_h")
            .expect("append");
        roll_back(&file, LOG.len() as u64, None);
        assert_eq!(std::fs::read(&path).expect("read"), LOG);
    }

    /// When the failed write had first cut a torn tail (already copied to its quarantine file),
    /// the torn bytes are put back, so the next append finds and records them again.
    #[test]
    fn roll_back_puts_a_cut_torn_tail_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let torn = b"{\"seq\":2,\"prev_ha";
        std::fs::write(&path, [LOG, torn].concat()).expect("write");
        let file = open_append(&path);
        file.set_len(LOG.len() as u64).expect("cut the torn tail");
        (&file)
            .write_all(b"{\"seq\":2,\"action\":\"log_recovered\"}\n{\"seq\":3")
            .expect("append");
        roll_back(&file, LOG.len() as u64, Some(torn));
        assert_eq!(
            std::fs::read(&path).expect("read"),
            [LOG, torn].concat(),
            "the log as it was before the append"
        );
    }
}
