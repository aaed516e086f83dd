//! The files nexus-audit creates besides the log: exports, checkpoints, keys, verifier state,
//! ship cursors, compressed segments and archive copies, man pages.
//!
//! Every one of them goes through this module, so the rules hold everywhere:
//!
//! - A new file is opened by one function, `create_new`, with mode [`PRIVATE`] (0600) or
//!   [`PUBLIC`] (0644, for verifier keys, checkpoints and man pages), `O_CREAT|O_EXCL` and
//!   `O_NOFOLLOW`: never an existing file, never through a symbolic link.
//! - Contents reach their path atomically: written to a temporary file with an unpredictable
//!   name in the same directory, synced, then linked (a new file: fails if the path exists)
//!   or renamed (a replacement) into place, and the directory synced. A crash or a full disk
//!   leaves the old contents or none, never half a file.
//! - Before an output path is used, [`Guard::check`] refuses the log (and any hard link to
//!   it), the names of its future siblings (segments, manifest, quarantine files), key files,
//!   symbolic links, directories, devices, FIFOs and sockets, and an existing regular file
//!   unless the caller forces it. Standard output is the caller's business (`-o -`).
//!
//! Refusals are [`Error::Io`] whose source says why, so the CLI prints one sentence:
//! `refusing to write out.csv: it exists already; add --force to replace it`.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Mode of private files: exports, signer and seal keys, verifier state.
pub const PRIVATE: u32 = 0o600;
/// Mode of public files: verifier keys (`PREFIX.pub`) and checkpoints.
pub const PUBLIC: u32 = 0o644;

/// Creates a new file with `mode` ([`PRIVATE`] or [`PUBLIC`]), refusing an existing path and a
/// symbolic link (`O_EXCL`, `O_NOFOLLOW`). Every file nexus-audit writes besides the log itself
/// and its quarantine files (keys, state, checkpoints, exports, cursors, segments' temporary
/// copies, archives) is first created here, under a temporary name by [`AtomicFile`].
///
/// # Errors
///
/// The operating system's error: `AlreadyExists` when the path exists (a symbolic link
/// included).
fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    // NOTE: O_EXCL already refuses a symbolic link at the path; O_NOFOLLOW says so twice, in
    // case a future edit drops create_new.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Reads a small file that must be a regular file (a key, a checkpoint, a state file),
/// without waiting on a FIFO and without reading more than `limit` bytes.
///
/// # Errors
///
/// [`Error::Io`] when it cannot be read, [`Error::NotAFile`] for anything but a regular file,
/// and an `Io` error saying so when it is larger than `limit`.
pub fn read_small(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>> {
    use std::io::Read as _;
    // NOTE: O_NONBLOCK makes opening a FIFO return at once (it is then refused as not a
    // regular file) instead of waiting for a writer; regular files ignore the flag.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(Error::io(what, path))?;
    let meta = file.metadata().map_err(Error::io(what, path))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io(what, path))?;
    if bytes.len() as u64 > limit {
        return Err(Error::io(what, path)(io::Error::other(format!(
            "it is larger than {limit} bytes, too large to be what it should be"
        ))));
    }
    Ok(bytes)
}

/// A refusal, as an I/O error whose message is the reason.
fn refuse(path: &Path, kind: io::ErrorKind, why: impl Into<String>) -> Error {
    Error::io("refusing to write", path)(io::Error::new(kind, why.into()))
}

/// What output paths must never replace or write into.
#[derive(Debug, Default, Clone)]
pub struct Guard {
    /// `(device, inode, what it is)` of protected files.
    inodes: Vec<(u64, u64, String)>,
    /// The log's directory `(device, inode)` and file name, for its siblings' names.
    log_name: Option<((u64, u64), std::ffi::OsString)>,
}

impl Guard {
    /// A guard that protects nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Guard::default()
    }

    /// Protects the log at `path`: the file itself (and every hard link to it), and the names
    /// of its siblings: `LOG.manifest…`, `LOG.torn-…` and segments `LOG.<digits>…`.
    #[must_use]
    pub fn log(mut self, path: &Path) -> Self {
        self = self.file(path, "the log");
        if let Some(name) = path.file_name() {
            let dir = parent_of(path);
            if let Ok(meta) = fs::metadata(dir) {
                self.log_name = Some(((meta.dev(), meta.ino()), name.to_owned()));
            }
        }
        self
    }

    /// Protects the file at `path` (following a symbolic link), described as `what` ("the
    /// signer key") in refusals. A path that does not exist protects nothing.
    #[must_use]
    pub fn file(mut self, path: &Path, what: &str) -> Self {
        if let Ok(meta) = fs::metadata(path) {
            self.inodes
                .push((meta.dev(), meta.ino(), format!("{what} {}", path.display())));
        }
        self
    }

    /// Checks `target` before anything is written there. `Ok(true)`: it exists and may be
    /// replaced (`force`), `Ok(false)`: it does not exist.
    ///
    /// # Errors
    ///
    /// An [`Error::Io`] ("refusing to write PATH: why") when `target` is a protected file, is
    /// named like a sibling of the log, holds a key, is a symbolic link, a directory, a device,
    /// a FIFO or a socket, or exists and `force` is false.
    pub fn check(&self, target: &Path, force: bool) -> Result<bool> {
        use io::ErrorKind::{AlreadyExists, InvalidInput};
        self.check_sibling_name(target)?;
        let meta = match fs::symlink_metadata(target) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("cannot inspect", target)(e)),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(refuse(
                target,
                InvalidInput,
                "it is a symbolic link, which is never followed nor replaced",
            ));
        }
        if kind.is_dir() {
            return Err(refuse(target, InvalidInput, "it is a directory"));
        }
        if !kind.is_file() {
            let what = if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            return Err(refuse(
                target,
                InvalidInput,
                format!("it is {what}, not a regular file (use -o - for standard output)"),
            ));
        }
        if let Some((_, _, what)) = self
            .inodes
            .iter()
            .find(|(dev, ino, _)| *dev == meta.dev() && *ino == meta.ino())
        {
            return Err(refuse(target, AlreadyExists, format!("it is {what}")));
        }
        if let Some(what) = key_kind(target) {
            return Err(refuse(
                target,
                AlreadyExists,
                format!("it holds {what}, which is never replaced"),
            ));
        }
        if !force {
            return Err(refuse(
                target,
                AlreadyExists,
                "it exists already; add --force to replace it",
            ));
        }
        Ok(true)
    }

    fn check_sibling_name(&self, target: &Path) -> Result<()> {
        let (Some((dir, log)), Some(name)) = (&self.log_name, target.file_name()) else {
            return Ok(());
        };
        let Some(rest) = name
            .as_encoded_bytes()
            .strip_prefix(log.as_encoded_bytes())
            .and_then(|r| r.strip_prefix(b"."))
        else {
            return Ok(());
        };
        let sibling = rest.starts_with(b"manifest")
            || rest.starts_with(b"torn-")
            || rest.first().is_some_and(u8::is_ascii_digit);
        if !sibling {
            return Ok(());
        }
        let same_dir = fs::metadata(parent_of(target)).is_ok_and(|m| (m.dev(), m.ino()) == *dir);
        if same_dir {
            return Err(refuse(
                target,
                io::ErrorKind::AlreadyExists,
                format!(
                    "the name is kept for the log's own files (segments, manifest, quarantine) beside {}",
                    log.to_string_lossy()
                ),
            ));
        }
        Ok(())
    }
}

/// What key a file holds, judged by its first bytes: a signer key, a seal key.
fn key_kind(path: &Path) -> Option<&'static str> {
    use std::io::Read as _;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let mut head = Vec::with_capacity(64);
    file.take(64).read_to_end(&mut head).ok()?;
    if head.starts_with(b"PRIVATE+KEY+") {
        return Some("a signer key");
    }
    let compact: Vec<u8> = head
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    compact.starts_with(br#"{"epoch":"#).then_some("a seal key")
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A file being written under a temporary name beside its target; [`AtomicFile::commit`] puts
/// it in place. Dropped without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file (mode `mode`, an unpredictable name, `O_EXCL`,
    /// `O_NOFOLLOW`) in the directory of `target`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot hold it.
    pub fn create(target: &Path, mode: u32) -> Result<Self> {
        let dir = parent_of(target);
        let name = target
            .file_name()
            .unwrap_or_else(|| OsStr::new("out"))
            .to_string_lossy()
            .into_owned();
        let mut last = None;
        for _ in 0..16 {
            let mut random = [0u8; 12];
            getrandom::fill(&mut random).map_err(|_| {
                Error::io("cannot name a temporary file for", target)(io::Error::other(
                    "the system has no randomness",
                ))
            })?;
            let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(random)));
            match create_new(&tmp, mode) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file: Some(file),
                        tmp,
                        target: target.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(Error::io("cannot create a temporary file beside", target)(
                        e,
                    ));
                }
            }
        }
        Err(Error::io("cannot create a temporary file beside", target)(
            last.unwrap_or_else(|| io::Error::other("no free name")),
        ))
    }

    /// Syncs the contents and puts them at the target path: replacing what is there when
    /// `replace`, else only if nothing is (a file created meanwhile is not touched). Then
    /// syncs the directory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`]; the temporary file is removed.
    pub fn commit(mut self, replace: bool) -> Result<()> {
        let target = self.target.clone();
        let file = self.file.take();
        let result = (|| -> Result<()> {
            if let Some(mut file) = file {
                file.flush()
                    .and_then(|()| file.sync_all())
                    .map_err(Error::io("cannot write", &target))?;
            }
            if replace {
                fs::rename(&self.tmp, &target).map_err(Error::io("cannot write", &target))?;
            } else {
                link_new(&self.tmp, &target)?;
                // NOTE: the contents are in place under their name; a temporary name left
                // behind is only clutter, so an error here is not the command's failure.
                let _ = fs::remove_file(&self.tmp);
            }
            sync_dir(parent_of(&target)).map_err(Error::io("cannot sync the directory of", &target))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        // Nothing left for Drop to remove: the temporary name is gone either way.
        self.tmp = PathBuf::new();
        result
    }
}

/// Gives `tmp`'s file the name `target`, failing if `target` exists. A hard link does that
/// atomically; on a file system without hard links, a rename after a last check.
fn link_new(tmp: &Path, target: &Path) -> Result<()> {
    match fs::hard_link(tmp, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(refuse(
            target,
            io::ErrorKind::AlreadyExists,
            "it was created by someone else while it was being written",
        )),
        Err(_) if fs::symlink_metadata(target).is_err() => {
            fs::rename(tmp, target).map_err(Error::io("cannot write", target))
        }
        Err(e) => Err(Error::io("cannot write", target)(e)),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("the file was committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` as a new file at `target` (mode `mode`), atomically, never replacing
/// anything: it fails if `target` exists, even when it appeared while the bytes were written.
///
/// # Errors
///
/// [`Error::Io`].
pub fn write_new(target: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if fs::symlink_metadata(target).is_ok() {
        return Err(refuse(
            target,
            io::ErrorKind::AlreadyExists,
            "it exists already, and a key is never replaced",
        ));
    }
    let mut file = AtomicFile::create(target, mode)?;
    file.write_all(bytes)
        .map_err(Error::io("cannot write", target))?;
    file.commit(false)
}

/// Replaces the contents of `target` with `bytes` atomically and durably, through a private
/// (0600) temporary file renamed over it. `target` must be absent or a regular file.
///
/// # Errors
///
/// [`Error::Io`], including a refusal for a symbolic link, directory, device, FIFO or socket.
pub fn replace_atomically(target: &Path, bytes: &[u8]) -> Result<()> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(refuse(
                target,
                io::ErrorKind::InvalidInput,
                "it is a symbolic link, which is never followed nor replaced",
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(refuse(
                target,
                io::ErrorKind::InvalidInput,
                "it is not a regular file",
            ));
        }
        _ => {}
    }
    let mut file = AtomicFile::create(target, PRIVATE)?;
    file.write_all(bytes)
        .map_err(Error::io("cannot write", target))?;
    file.commit(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(p).map_or(0, |m| m.permissions().mode() & 0o777)
    }

    #[test]
    fn new_files_are_private_and_never_replace_anything() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("k");
        write_new(&p, b"one", PRIVATE)?;
        assert_eq!(fs::read(&p)?, b"one");
        assert_eq!(mode(&p), 0o600);
        assert!(write_new(&p, b"two", PRIVATE).is_err());
        assert_eq!(fs::read(&p)?, b"one");
        let leftovers = fs::read_dir(dir.path())?.count();
        assert_eq!(leftovers, 1, "no temporary file left");
        Ok(())
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing_behind() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("out.csv");
        {
            let mut f = AtomicFile::create(&p, PRIVATE)?;
            f.write_all(b"half")?;
        }
        assert_eq!(fs::read_dir(dir.path())?.count(), 0);
        Ok(())
    }

    #[test]
    fn replacing_keeps_a_symlink_target_untouched() -> TestResult {
        let dir = tempfile::tempdir()?;
        let real = dir.path().join("real");
        fs::write(&real, b"keep")?;
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link)?;
        assert!(replace_atomically(&link, b"x").is_err());
        assert_eq!(fs::read(&real)?, b"keep");
        Ok(())
    }

    #[test]
    fn the_guard_knows_the_logs_siblings_and_keys() -> TestResult {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("audit.jsonl");
        fs::write(&log, b"{}\n")?;
        let guard = Guard::new().log(&log);
        for name in [
            "audit.jsonl.manifest.jsonl",
            "audit.jsonl.torn-12-ab",
            "audit.jsonl.00000000000000000001-00000000000000000009.jsonl",
        ] {
            assert!(guard.check(&dir.path().join(name), true).is_err(), "{name}");
        }
        assert!(guard.check(&log, true).is_err());
        assert!(!guard.check(&dir.path().join("audit.csv"), false)?);
        let key = dir.path().join("k");
        fs::write(&key, b"PRIVATE+KEY+x+0000+AAAA\n")?;
        assert!(guard.check(&key, true).is_err());
        let seal = dir.path().join("s");
        fs::write(&seal, b"{\n  \"epoch\": 0,\n  \"key\": \"00\"\n}")?;
        assert!(guard.check(&seal, true).is_err());
        let other = dir.path().join("other.csv");
        fs::write(&other, b"a,b\n")?;
        assert!(guard.check(&other, false).is_err());
        assert!(guard.check(&other, true)?);
        Ok(())
    }
}
