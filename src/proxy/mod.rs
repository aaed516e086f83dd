//! A transparent stdio proxy that audits any MCP server: `nexus-audit proxy -- COMMAND ARGS…`.
//!
//! The client's bytes go to the server and the server's back, line for line and byte for
//! byte, in order. Beside the relay, each line is read once, leniently (as the most forgiving
//! server would read it: see `lenient.rs` and `envelope.rs`): a `tools/call`, `resources/read`
//! or `prompts/get` request is remembered by its exact id, and when its answer comes back one
//! record is appended (redacted by the logger). Both protocol eras are understood: the
//! handshake era (`initialize` with `clientInfo`/`serverInfo`) and the stateless 2026-07-28
//! era, where identity travels in every request's and result's `_meta`.
//!
//! Nothing the peers send can stop the relay: a line that is not JSON, an answer to an unknown
//! id, a line of any length, a server that dies mid-call and a client that goes away are each
//! passed through or ended cleanly, and noted in the log.
//!
//! | file | job |
//! |---|---|
//! | `lenient.rs` | a JSON reader that accepts what lenient servers accept, and names each departure |
//! | `frame.rs` | where the messages are in a stream of lines (one per line, or split across lines) |
//! | `envelope.rs` | the JSON-RPC fields of one message: id, method, params, identity, arguments |
//! | `calls.rs` | the calls in flight, the records they give, the log's health |
//! | `recording.rs` | the recording thread: appends what is queued as one batch, then relays |

mod calls;
mod envelope;
mod frame;
mod lenient;
mod recording;

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use self::calls::{Answered, INVALID_REQUEST, PARSE_ERROR, Recorder, Refusal};
use self::envelope::{Id, Message};
use self::frame::{Frame, Framer, Shape};
use crate::error::{Error, Result};
use crate::record::Event;
use crate::writer::Logger;

/// How the proxy records.
///
/// ```
/// let opts = nexus_audit::ProxyOptions::new().server_id("workday-mcp").fail_closed(true);
/// assert!(opts.fail_closed);
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ProxyOptions {
    /// `server_id` of every record (default: the server's own name).
    pub server_id: Option<String>,
    /// `user_id` of every record (default: the client's name, from the request's `_meta` or
    /// the handshake). The library reads no environment: the CLI fills this from `--user`,
    /// else `NEXUS_AUDIT_USER`.
    pub user_id: Option<String>,
    /// Record the SHA-256 and size of each answer line as relayed (never its content).
    pub log_results: bool,
    /// When a record cannot be written, answer the call with a JSON-RPC error instead of the
    /// server's answer, and refuse further calls until the log can be written again. Also
    /// refuse every client line that cannot be read as one JSON-RPC message, batches, and
    /// calls without a string or number id.
    pub fail_closed: bool,
    /// Told when appends start failing and when they succeed again (the command line prints
    /// it on stderr).
    pub on_log_health: Option<HealthHook>,
}

impl ProxyOptions {
    /// The defaults: names from the server and the client, no result hashes, fail open.
    #[must_use]
    pub fn new() -> Self {
        ProxyOptions::default()
    }

    /// Sets `server_id` of every record.
    #[must_use]
    pub fn server_id(mut self, id: impl Into<String>) -> Self {
        self.server_id = Some(id.into());
        self
    }

    /// Sets `user_id` of every record.
    #[must_use]
    pub fn user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// Records the SHA-256 and size of each answer.
    #[must_use]
    pub fn log_results(mut self, on: bool) -> Self {
        self.log_results = on;
        self
    }

    /// Refuses calls that cannot be recorded (see the field).
    #[must_use]
    pub fn fail_closed(mut self, on: bool) -> Self {
        self.fail_closed = on;
        self
    }

    /// Calls `hook` when appends start failing and when they succeed again.
    #[must_use]
    pub fn on_log_health(mut self, hook: impl Fn(&LogHealth) + Send + Sync + 'static) -> Self {
        self.on_log_health = Some(HealthHook(Arc::new(hook)));
        self
    }
}

impl std::fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyOptions")
            .field("server_id", &self.server_id)
            .field("user_id", &self.user_id)
            .field("log_results", &self.log_results)
            .field("fail_closed", &self.fail_closed)
            .field("on_log_health", &self.on_log_health.is_some())
            .finish()
    }
}

/// A function told of changes in the log's health.
#[derive(Clone)]
pub struct HealthHook(pub Arc<dyn Fn(&LogHealth) + Send + Sync>);

/// A change in whether the proxy can write the log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogHealth {
    /// An append failed, the first since the start or since the log last recovered.
    Failing {
        /// What went wrong (the I/O error and the log's path).
        error: String,
    },
    /// An append succeeded after failures.
    Recovered {
        /// Records that could not be written meanwhile.
        unwritten: u64,
    },
}

struct Shared {
    rec: Recorder,
    /// The client's side of the wire (our stdout), shared by both directions, since the proxy
    /// answers some client lines itself in fail-closed mode.
    to_client: Mutex<Box<dyn Write + Send>>,
    /// Writing to the client failed: the server's lines are drained, not relayed.
    client_gone: AtomicBool,
    /// Bytes of server lines queued for the recording thread and not yet relayed.
    queued: AtomicUsize,
}

impl Shared {
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut out = self
            .to_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        out.write_all(bytes)?;
        out.flush()
    }

    /// Relays server bytes to the client until that fails once, which is noted (written at
    /// once: this runs on the recording thread, or after it has stopped).
    fn forward(&self, bytes: &[u8]) {
        if self.client_gone.load(Ordering::Relaxed) || self.send(bytes).is_ok() {
            return;
        }
        if !self.client_gone.swap(true, Ordering::Relaxed) {
            let details = json!({"direction": "server_to_client"});
            self.rec
                .write(vec![self.rec.notice_event("client_gone", details)]);
        }
    }

    /// Hands a job to the recording thread, or does it now when the thread has stopped. When
    /// more than [`recording::QUEUED_BYTES`] of lines wait to be relayed (a server sending long
    /// lines), waits until they are, so the queue's memory stays bounded.
    fn record(&self, job: recording::Job) {
        let bytes = job.release.bytes();
        self.queued.fetch_add(bytes, Ordering::Relaxed);
        if let Err(job) = self.rec.enqueue(job) {
            recording::process(self, vec![job]);
            return;
        }
        if self.queued.load(Ordering::Relaxed) > recording::QUEUED_BYTES {
            self.rec.wait_for_queue();
        }
    }
}

/// Runs the proxy until the server exits; returns the exit code to give (the server's, or
/// 128 + the signal that ended it).
///
/// # Errors
///
/// [`Error::Io`] when the server cannot be started.
pub fn run(log: Logger, opts: ProxyOptions, command: &[OsString]) -> Result<i32> {
    run_with(log, opts, command, |_| {}, |_| {})
}

/// Like [`run`], with two hooks: `prepare` adjusts the server's [`Command`] before it starts,
/// and `started` gets its process id as soon as it runs (the command line uses them to pass
/// the signals it receives on to the server).
///
/// # Errors
///
/// [`Error::Io`] when the server cannot be started.
pub fn run_with(
    log: Logger,
    opts: ProxyOptions,
    command: &[OsString],
    prepare: impl FnOnce(&mut Command),
    started: impl FnOnce(u32),
) -> Result<i32> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| Error::InvalidConfig("no server command after --".into()))?;
    let mut server = Command::new(program);
    prepare(&mut server);
    let mut child = server
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(Error::io(
            "cannot start the server",
            std::path::Path::new(program),
        ))?;
    started(child.id());
    let shared = Arc::new(Shared {
        rec: Recorder::new(log, opts),
        to_client: Mutex::new(Box::new(io::stdout())),
        client_gone: AtomicBool::new(false),
        queued: AtomicUsize::new(0),
    });
    let command_line: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut start = Event::new("server_start").details(json!({
        "command": command_line,
        "pid": child.id(),
    }));
    if let Some(s) = &shared.rec.opts().server_id {
        start = start.server(s.clone());
    }
    shared.rec.append(vec![start]);
    let recorder = {
        let jobs = shared.rec.open_queue();
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || recording::run(&shared, &jobs))
    };

    let child_in = child.stdin.take();
    let child_out = child.stdout.take();
    let upstream = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || client_to_server(&shared, io::stdin().lock(), child_in))
    };
    if let Some(out) = child_out {
        server_to_client(&shared, out);
    }
    // The server closed its stdout: it is exiting. Calls still open get no answer.
    let status = wait(&mut child);
    shared.rec.unanswered();
    let code = match status {
        Some((code, _)) => code,
        None => 1,
    };
    let mut stop = Event::new("server_stop")
        .status(if code == 0 { "success" } else { "error" })
        .details(json!({
            "pid": child.id(),
            "exit_code": status.and_then(|(_, c)| c),
            "signal": status.and_then(|(c, s)| s.is_none().then(|| c - 128)),
        }));
    if let Some(s) = shared.rec.server_id() {
        stop = stop.server(s);
    }
    shared.rec.append(vec![stop]);
    // Every queued record is written and every answer released before the proxy ends; later
    // appends (from a client still sending) are written by their caller.
    shared.rec.close_queue();
    let _ = recorder.join();
    // NOTE: the upstream thread may still be blocked reading a client that keeps its end
    // open, holding the logger, so it may never be dropped: write buffered records now.
    let _ = shared.rec.log().flush();
    drop(upstream);
    Ok(code)
}

/// Waits for the child: (exit code to give, its own exit code when it exited normally).
fn wait(child: &mut Child) -> Option<(i32, Option<i32>)> {
    use std::os::unix::process::ExitStatusExt as _;
    let status = child.wait().ok()?;
    Some(match (status.code(), status.signal()) {
        (Some(c), _) => (c, Some(c)),
        (None, Some(sig)) => (128 + sig, None),
        (None, None) => (1, None),
    })
}

/// Calls `f` with each message of a frame once, with the text whose size and hash an answer
/// record gives (the line without its LF when the message is the whole line, else the
/// message) and its length as a notice counts it; returns how many messages there were.
fn each_message(
    frame: &Frame<'_>,
    line: &[u8],
    mut f: impl FnMut(&Message<'_>, &[u8], usize),
) -> usize {
    let mut found = Vec::new();
    for (n, part) in frame.parts.iter().enumerate() {
        for (value, framing) in &part.values {
            for m in envelope::messages(part.text, &part.scan, value, *framing) {
                found.push((n, m));
            }
        }
    }
    let whole = found.len() == 1
        && found[0].0 == 0
        && frame::shape(&frame.parts[0].scan) == Shape::One
        && found[0].1.span() == &frame.parts[0].scan.values[0];
    for (n, m) in &found {
        if frame.parts[*n].seen.contains(m.span()) {
            continue; // read line by line already
        }
        if whole {
            f(m, line.strip_suffix(b"\n").unwrap_or(line), line.len());
        } else {
            f(m, m.text(), m.text().len());
        }
    }
    found.len()
}

/// Notes a line nothing could be read from (that is not inside a value still open), and a
/// carried value given up on.
fn note_unreadable(
    shared: &Shared,
    direction: &str,
    line: &[u8],
    found: usize,
    dropped: usize,
    open: bool,
) {
    let blank = line.iter().all(u8::is_ascii_whitespace);
    let line_bytes = if found == 0 && !open && !blank {
        line.len()
    } else {
        0
    };
    if line_bytes + dropped > 0 {
        shared.rec.notice(
            "not_json",
            json!({"direction": direction, "bytes": line_bytes + dropped}),
        );
    }
}

/// Notes a value the stream ended inside.
fn note_unfinished(shared: &Shared, direction: &str, framer: &Framer) {
    if framer.unfinished() > 0 {
        shared.rec.notice(
            "not_json",
            json!({"direction": direction, "bytes": framer.unfinished(), "unfinished": true}),
        );
    }
}

/// Relays the client's lines to the server, remembering the calls.
fn client_to_server(shared: &Shared, input: impl BufRead, child_in: Option<ChildStdin>) {
    const DIRECTION: &str = "client_to_server";
    let Some(mut child_in) = child_in else {
        return;
    };
    let mut input = input;
    let mut framer = Framer::default();
    let mut line = Vec::with_capacity(64 << 10);
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break, // the client closed its end: close the server's stdin
            Ok(_) => {}
        }
        let alone = lenient::scan(&line);
        if shared.rec.opts().fail_closed
            && let Some(answer) = refuse_line(shared, &line, &alone)
        {
            let _ = shared.send(&answer);
            continue;
        }
        let mut refusal: Option<Refusal> = None;
        let frame = framer.feed(&line, alone);
        let found = each_message(&frame, &line, |m, _, _| {
            if let Some(r) = shared.rec.client_message(m) {
                refusal = Some(r);
            }
        });
        let dropped = frame.dropped;
        note_unreadable(
            shared,
            DIRECTION,
            &line,
            found,
            dropped,
            framer.unfinished() > 0,
        );
        if let Some(r) = refusal {
            // Fail-closed: the proxy answers; the call is not forwarded.
            let _ = shared.send(&r.line());
            continue;
        }
        if child_in
            .write_all(&line)
            .and_then(|()| child_in.flush())
            .is_err()
        {
            shared
                .rec
                .notice("server_gone", json!({"direction": DIRECTION}));
            break;
        }
    }
    note_unfinished(shared, DIRECTION, &framer);
    // Dropping child_in closes the server's stdin.
}

/// Fail-closed: the proxy's answer to a client line that is not exactly one JSON-RPC message
/// it can read (not JSON, cut short, several values, a batch), which is then not forwarded.
fn refuse_line(shared: &Shared, line: &[u8], alone: &lenient::Scan) -> Option<Vec<u8>> {
    let reason = match frame::shape(alone) {
        Shape::Blank => return None,
        Shape::One if line.get(alone.values[0].start) != Some(&b'[') => return None,
        Shape::One => "batch",
        Shape::Several => "several_values",
        Shape::Incomplete => "incomplete",
        Shape::Invalid => "not_json",
    };
    shared.rec.notice(
        "refused",
        json!({"direction": "client_to_server", "reason": reason, "bytes": line.len()}),
    );
    if reason != "batch" {
        return Some(
            Refusal {
                id: None,
                code: PARSE_ERROR,
                message: "nexus-audit proxy --fail-closed: the line is not one JSON-RPC message the proxy can read and record; it was not forwarded",
            }
            .line(),
        );
    }
    let message = "nexus-audit proxy --fail-closed refuses JSON-RPC batches (send one message per line); the batch was not forwarded";
    let ids: Vec<String> =
        envelope::messages(line, alone, &alone.values[0], lenient::Quirks::default())
            .iter()
            .filter_map(|m| match m.root().id() {
                Id::Key { text, .. } => Some(text),
                _ => None,
            })
            .collect();
    if ids.is_empty() {
        return Some(
            Refusal {
                id: None,
                code: INVALID_REQUEST,
                message,
            }
            .line(),
        );
    }
    let mut out = vec![b'['];
    for (n, id) in ids.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let mut one = Refusal {
            id: Some(id),
            code: INVALID_REQUEST,
            message,
        }
        .line();
        one.pop(); // its LF
        out.extend_from_slice(&one);
    }
    out.extend_from_slice(b"]\n");
    Some(out)
}

/// Relays the server's lines to the client, recording the answers to calls.
fn server_to_client(shared: &Shared, out: impl Read) {
    const DIRECTION: &str = "server_to_client";
    let mut input = BufReader::with_capacity(64 << 10, out);
    let mut framer = Framer::default();
    let mut line = Vec::with_capacity(64 << 10);
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let alone = lenient::scan(&line);
        let mut answered: Vec<Answered> = Vec::new();
        let frame = framer.feed(&line, alone);
        let found = each_message(&frame, &line, |m, answer, bytes| {
            answered.extend(shared.rec.server_message(m, answer, bytes));
        });
        let dropped = frame.dropped;
        note_unreadable(
            shared,
            DIRECTION,
            &line,
            found,
            dropped,
            framer.unfinished() > 0,
        );
        // Every line goes on through the recording thread, in its turn: an answer after its
        // record is written (with those of the other answers queued meanwhile: one sync for
        // all), so with `sync` no answer reaches the client before its record is on disk.
        // NOTE: when the client is gone, the server is still drained so it is not blocked on
        // a full pipe.
        let release = if answered.is_empty() {
            recording::Release::Line(line.clone())
        } else {
            recording::Release::Answer {
                line: line.clone(),
                ids: answered.iter().map(|a| a.id.clone()).collect(),
            }
        };
        shared.record(recording::Job {
            events: answered.into_iter().map(|a| a.event).collect(),
            release,
        });
    }
    note_unfinished(shared, DIRECTION, &framer);
}
