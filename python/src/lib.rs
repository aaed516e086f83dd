//! `nexus_audit._native`: the part of the `nexus_audit` Python package written in Rust, a thin
//! layer over the `nexus_audit` library.
//!
//! The Python-facing API (defaults from the environment, the old logger's names and argument
//! handling) is `nexus_audit/__init__.py`; this module opens logs, appends records and reads
//! logs, always with the GIL released while it touches the file, and turns the library's
//! errors into Python exceptions.
//!
//! Fork safety: a child process must not use its parent's [`nexus_audit::Logger`]. The two
//! would share one open file description, and `flock` does not exclude a process from a lock
//! held through the same description, so their appends could interleave and fork the chain; the
//! parent's queued (buffered) records and its background flusher would also be copied into a
//! child where that thread does not exist. So every call compares the process id with the one
//! the logger was opened in and, in a child, opens the log anew. The parent's logger is then
//! leaked, never dropped: dropping it would join a flusher thread that is not in the child and
//! write the parent's queued records a second time.
#![deny(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nexus_audit::VerifyOptions;
use nexus_audit::{Durability, Error, Event, Filter, LogOptions, RecordView, Snapshot};
use nexus_audit::{Head, chain_prefix, hash_line};
use nexus_audit::{Stats, StatsOptions};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use serde_json::Value;

/// One open log, shared by every thread of the process that opened it.
#[pyclass(module = "nexus_audit._native", name = "Logger", frozen)]
struct PyLogger {
    path: PathBuf,
    durability: Durability,
    source: String,
    /// NOTE: locked only by a thread that holds the GIL, and never across `detach`, so no
    /// thread holds it when another calls `fork` (which Python does with the GIL held).
    state: Mutex<State>,
}

/// What belongs to the process that opened the log.
struct State {
    /// The process `open` belongs to.
    pid: u32,
    /// `None` once closed, and in a forked child until its first call opens the log.
    open: Option<Open>,
    closed: bool,
}

impl State {
    /// Forgets a parent's logger after `fork` (see the module's comment on fork safety).
    fn adopt(&mut self) {
        let pid = std::process::id();
        if self.pid != pid {
            if let Some(parent) = self.open.take() {
                std::mem::forget(parent);
            }
            self.pid = pid;
        }
    }
}

#[derive(Clone)]
struct Open {
    logger: Arc<nexus_audit::Logger>,
}

impl Drop for State {
    fn drop(&mut self) {
        // In a forked child, the parent's logger is forgotten, not dropped.
        self.adopt();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // NOTE: nothing in the critical sections can panic halfway; poisoning is ignored.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_log(path: &Path, durability: Durability, source: &str) -> nexus_audit::Result<Open> {
    let logger = LogOptions::new(path)
        .durability(durability)
        .source(source)
        .open()?;
    // Fail now, not at the first record, for a log that cannot be continued (an old
    // unchained Nexus-MCP log kept at the same path).
    logger.head()?;
    Ok(Open {
        logger: Arc::new(logger),
    })
}

impl PyLogger {
    /// The log as this process may use it: opened again in a forked child (where a failed
    /// open is tried again on the next call).
    fn current(&self, py: Python<'_>) -> PyResult<Open> {
        if let Some(open) = self.installed()? {
            return Ok(open);
        }
        // Opening reads the log's head under a shared lock: not with the GIL held.
        let fresh = py
            .detach(|| open_log(&self.path, self.durability, &self.source))
            .map_err(to_py)?;
        let mut state = lock(&self.state);
        state.adopt();
        if state.closed {
            return Err(self.closed_error());
        }
        // Another thread may have opened it meanwhile: the first one stays.
        Ok(state.open.get_or_insert(fresh).clone())
    }

    /// The log if this process has it open; an error once closed.
    fn installed(&self) -> PyResult<Option<Open>> {
        let mut state = lock(&self.state);
        state.adopt();
        if state.closed {
            return Err(self.closed_error());
        }
        Ok(state.open.clone())
    }

    fn closed_error(&self) -> PyErr {
        to_py(Error::Closed {
            path: self.path.clone(),
        })
    }
}

#[pymethods]
impl PyLogger {
    /// Opens (creating it 0600 if needed) the log at `path`.
    #[new]
    fn new(py: Python<'_>, path: PathBuf, durability: &str, source: String) -> PyResult<Self> {
        let durability = match durability {
            "sync" => Durability::Sync,
            "none" => Durability::None,
            "buffered" => Durability::buffered(),
            other => {
                return Err(PyValueError::new_err(format!(
                    "durability must be \"sync\", \"buffered\" or \"none\", not {other:?}"
                )));
            }
        };
        let open = py
            .detach(|| open_log(&path, durability, &source))
            .map_err(to_py)?;
        Ok(PyLogger {
            path,
            durability,
            source,
            state: Mutex::new(State {
                pid: std::process::id(),
                open: Some(open),
                closed: false,
            }),
        })
    }

    /// The log's path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// True once `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Appends one event given as a UTF-8 JSON object with the record's field names.
    ///
    /// Returns `None` when the record was queued (buffered durability), else `(seq, line)`
    /// where `line` is the stored line (without its LF) when `want_line` is true.
    fn append(
        &self,
        py: Python<'_>,
        event: &[u8],
        want_line: bool,
    ) -> PyResult<Option<(u64, Option<String>)>> {
        let open = self.current(py)?;
        py.detach(|| {
            let text = std::str::from_utf8(event)
                .map_err(|_| Error::InvalidEvent("the event is not UTF-8".into()))?;
            let receipt = open.logger.append(Event::from_json_str(text)?)?;
            let Some(head) = receipt.last() else {
                return Ok(None);
            };
            let line = if want_line {
                // NOTE: opened per record, after the write: the library creates the file at
                // its first write, and a reader opened before that would have no file.
                File::open(&self.path)
                    .and_then(|file| stored_line(&file, head))
                    .map_err(|source| Error::Io {
                        context: "cannot read back the record just written to",
                        path: self.path.clone(),
                        source,
                    })?
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
            } else {
                None
            };
            Ok(Some((head.seq, line)))
        })
        .map_err(to_py)
    }

    /// Writes queued records now (buffered durability) and returns once they are synced.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let open = self.current(py)?;
        py.detach(|| open.logger.flush()).map_err(to_py)
    }

    /// Flushes and closes the log; later appends raise `ValueError`. Closing twice is fine.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let open = {
            let mut state = lock(&self.state);
            // In a forked child this forgets the parent's logger: nothing of it is this
            // process's to flush.
            state.adopt();
            state.closed = true;
            state.open.take()
        };
        let Some(Open { logger }) = open else {
            return Ok(());
        };
        py.detach(|| match Arc::try_unwrap(logger) {
            Ok(logger) => logger.close(),
            // Another thread is still appending; the last one out drops (and flushes) it.
            Err(shared) => shared.flush(),
        })
        .map_err(to_py)
    }
}

/// The stored line of the record `head`, found by reading back from the end of the log: the
/// line that starts with `{"seq":N,` and hashes to `head.hash`. Other writers may have
/// appended after it, so the window doubles until the line, or an older record, is found.
fn stored_line(file: &File, head: Head) -> io::Result<Option<Vec<u8>>> {
    let len = file.metadata()?.len();
    let mut window: u64 = 8 * 1024;
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0u8; usize::try_from(len - start).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, start)?;
        // Only whole lines: up to the last LF, and after the first one unless at the start.
        let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let first = if start == 0 {
            0
        } else {
            buf.iter().position(|&b| b == b'\n').map_or(end, |i| i + 1)
        };
        for line in buf[first.min(end)..end]
            .strip_suffix(b"\n")
            .unwrap_or_default()
            .rsplit(|&b| b == b'\n')
        {
            match chain_prefix(line) {
                Some(f) if f.seq == head.seq && hash_line(line) == head.hash => {
                    return Ok(Some(line.to_vec()));
                }
                Some(f) if f.seq < head.seq => return Ok(None),
                _ => {}
            }
        }
        if start == 0 || window >= 64 << 20 {
            return Ok(None);
        }
        window *= 2;
    }
}

/// The last `n` records of the log, oldest first, as dicts. Lines that are not records are
/// skipped, as `nexus-audit tail` skips them.
#[pyfunction]
fn tail(py: Python<'_>, path: PathBuf, n: usize) -> PyResult<Bound<'_, PyAny>> {
    let records = py
        .detach(|| -> nexus_audit::Result<Vec<Value>> {
            let snapshot = Snapshot::open(&path)?;
            let mut found: Vec<Value> = snapshot
                .lines_rev()
                .filter(|(_, line)| RecordView::parse(line).is_ok())
                .filter_map(|(_, line)| {
                    serde_json::from_slice::<Value>(line)
                        .ok()
                        .filter(Value::is_object)
                })
                .take(n)
                .collect();
            found.reverse();
            Ok(found)
        })
        .map_err(to_py)?;
    let list = pyo3::types::PyList::empty(py);
    for r in &records {
        list.append(json_to_python(py, r)?)?;
    }
    Ok(list.into_any())
}

/// The summary `nexus-audit stats --output json` prints, over the whole log or its last
/// `last` records. With `missing_ok`, a log that does not exist counts as empty.
#[pyfunction]
#[pyo3(signature = (path, last, missing_ok))]
fn stats(
    py: Python<'_>,
    path: PathBuf,
    last: Option<u64>,
    missing_ok: bool,
) -> PyResult<Bound<'_, PyAny>> {
    let summary = py
        .detach(|| -> nexus_audit::Result<Stats> {
            let snapshot = match Snapshot::open(&path) {
                Err(e) if missing_ok && e.io_kind() == Some(io::ErrorKind::NotFound) => {
                    return Ok(Stats::default());
                }
                other => other?,
            };
            let mut opts = StatsOptions::new();
            opts.last = last;
            nexus_audit::stats(&snapshot, &Filter::default().matcher(), &opts, &|_| {})
        })
        .map_err(to_py)?;
    to_python(py, &summary)
}

/// The report `nexus-audit verify --output json` prints. Integrity problems are in the
/// report, not raised.
#[pyfunction]
fn verify(py: Python<'_>, path: PathBuf, max_problems: usize) -> PyResult<Bound<'_, PyAny>> {
    let report = py
        .detach(|| nexus_audit::verify(&path, &VerifyOptions::new().max_problems(max_problems)))
        .map_err(to_py)?;
    to_python(py, &report)
}

/// Converts through `serde_json::Value`, so the object is exactly what the CLI prints as JSON
/// (a tuple becomes a list, as `json.loads` would give it).
fn to_python<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(value)
        .map_err(|e| PyValueError::new_err(format!("cannot convert the answer: {e}")))?;
    json_to_python(py, &value)
}

/// A JSON value as the object `json.loads` gives: numbers keep every digit (`serde_json` keeps
/// them as text, `arbitrary_precision`), integers become `int` however large, objects keep
/// their key order.
fn json_to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::types::{PyDict, PyList, PyString};
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                let text = n.to_string();
                let integral = !text.contains(['.', 'e', 'E']);
                let builtins = py.import("builtins")?;
                let kind = if integral { "int" } else { "float" };
                builtins.getattr(kind)?.call1((text,))?
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_python(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// The library's error as the Python exception a caller expects: an `OSError` subclass with
/// `errno` for I/O (`FileNotFoundError`, `PermissionError`, `IsADirectoryError`, …), and
/// `ValueError` for bad arguments, bad events and a log that cannot be continued. The message
/// is the library's one sentence, with the operating system's reason after a colon.
fn to_py(err: Error) -> PyErr {
    let errno = |e: &io::Error| e.raw_os_error();
    match &err {
        Error::Io { source, .. } => {
            let message = format!("{err}: {}", os_reason(source));
            match errno(source) {
                Some(code) => PyOSError::new_err((code, message)),
                // Not from the operating system: std refused the path itself (a NUL byte).
                None if source.kind() == io::ErrorKind::InvalidInput => {
                    PyValueError::new_err(message)
                }
                None => PyOSError::new_err(message),
            }
        }
        Error::NotAFile { path } if path.is_dir() => {
            PyOSError::new_err((libc::EISDIR, err.to_string()))
        }
        Error::Symlink { .. } => PyOSError::new_err((libc::ELOOP, err.to_string())),
        Error::NotAFile { .. } | Error::GroupWrite { .. } => PyOSError::new_err(err.to_string()),
        _ => PyValueError::new_err(err.to_string()),
    }
}

/// The operating system's reason, without std's " (os error N)" (the errno is on the
/// exception).
fn os_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

/// The native part of `nexus_audit`; use the `nexus_audit` package, not this module.
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{PyLogger, stats, tail, verify};
}
