//! The calls in flight and the records they give: what a client message starts, what a server
//! message ends, and the log's health.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::envelope::{Args, Id, Message, Obj};
use super::recording::{Job, QUEUE, Release};
use super::{LogHealth, ProxyOptions};
use crate::record::Event;
use crate::writer::Logger;

const CLIENT_INFO_META: &str = "io.modelcontextprotocol/clientInfo";
const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// The methods recorded, one `mcp_call` record per request.
const RECORDED: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

/// A call waiting for its answer.
#[derive(Debug)]
struct Call {
    method: String,
    /// The id as sent (`correlation_id`), absent for a notification.
    id: Option<String>,
    tool: Option<String>,
    resource: Option<String>,
    args: Option<Args>,
    client: Option<String>,
    /// `details.json_quirks` of the request.
    quirks: Vec<&'static str>,
    /// Another call with this id was still waiting when this one came.
    id_reused: bool,
    started: Instant,
}

/// Why a call was recorded before its answer came.
#[derive(Clone, Copy, Debug)]
enum Early {
    Cancelled,
    DuplicateId,
}

impl Early {
    fn name(self) -> &'static str {
        match self {
            Early::Cancelled => "cancelled",
            Early::DuplicateId => "duplicate_id",
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Calls waiting for their answer, by id key.
    pending: HashMap<String, Call>,
    /// Ids of the client's other requests (initialize, tools/list, …) awaiting an answer.
    outstanding: HashSet<String>,
    /// Calls already recorded (cancelled, or superseded by a call reusing their id) whose
    /// answer may still come, oldest first.
    early: HashMap<String, VecDeque<(Call, Early)>>,
    client_name: Option<String>,
    server_name: Option<String>,
    /// The last append failed.
    log_failed: bool,
    /// Records that could not be written since the log started failing.
    unwritten: u64,
}

/// The proxy's own answer to a client line it does not forward (`--fail-closed`).
pub(crate) struct Refusal {
    /// The id to answer (its JSON text), `null` when there is none.
    pub id: Option<String>,
    pub code: i32,
    pub message: &'static str,
}

impl Refusal {
    /// The JSON-RPC error line.
    pub(crate) fn line(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(160);
        v.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        v.extend_from_slice(self.id.as_deref().unwrap_or("null").as_bytes());
        v.extend_from_slice(br#","error":{"code":"#);
        v.extend_from_slice(self.code.to_string().as_bytes());
        v.extend_from_slice(br#","message":"#);
        v.extend_from_slice(
            serde_json::to_string(self.message)
                .unwrap_or_default()
                .as_bytes(),
        );
        v.extend_from_slice(b"}}\n");
        v
    }
}

/// JSON-RPC "internal error", the code of every refusal for an unwritable log.
pub(crate) const INTERNAL_ERROR: i32 = -32603;
/// JSON-RPC "invalid request".
pub(crate) const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC "parse error".
pub(crate) const PARSE_ERROR: i32 = -32700;

/// The refusal of a call because the log cannot be written; `made`: the server did run it and
/// its answer is withheld.
pub(crate) fn unwritable(id: Option<String>, made: bool) -> Refusal {
    Refusal {
        id,
        code: INTERNAL_ERROR,
        message: if made {
            "the audit log cannot be written; the answer is withheld (nexus-audit proxy --fail-closed)"
        } else {
            "the audit log cannot be written; the call was not made (nexus-audit proxy --fail-closed)"
        },
    }
}

/// The recorder: the calls in flight and the log.
pub(crate) struct Recorder {
    log: Logger,
    opts: ProxyOptions,
    state: Mutex<State>,
    /// The recording thread's queue, while it runs (see `recording.rs`).
    queue: Mutex<Option<SyncSender<Job>>>,
}

/// A record to append for a server message, and the id to refuse with (`--fail-closed`) when
/// it cannot be written.
pub(crate) struct Answered {
    pub event: Event,
    pub id: String,
}

impl Recorder {
    pub(crate) fn new(log: Logger, opts: ProxyOptions) -> Self {
        Recorder {
            log,
            opts,
            state: Mutex::new(State::default()),
            queue: Mutex::new(None),
        }
    }

    pub(crate) fn opts(&self) -> &ProxyOptions {
        &self.opts
    }

    pub(crate) fn log(&self) -> &Logger {
        &self.log
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the queue to the recording thread, which takes the receiver.
    pub(crate) fn open_queue(&self) -> Receiver<Job> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        *self.queue.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
        rx
    }

    /// Closes the queue: the recording thread ends once it has written what is queued, and
    /// later appends are written by their caller.
    pub(crate) fn close_queue(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Queues a job for the recording thread; gives it back when the queue is closed.
    pub(crate) fn enqueue(&self, job: Job) -> Result<(), Job> {
        let tx = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match tx {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Appends records through the recording thread (so they share its sync), waiting until
    /// they are written; returns whether they were.
    pub(crate) fn append(&self, events: Vec<Event>) -> bool {
        if events.is_empty() {
            return true;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        match self.enqueue(Job {
            events,
            release: Release::Reply(tx),
        }) {
            Ok(()) => rx.recv().unwrap_or(false),
            Err(job) => self.write(job.events),
        }
    }

    /// Waits until the recording thread has done every job queued before this call.
    pub(crate) fn wait_for_queue(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self
            .enqueue(Job {
                events: Vec::new(),
                release: Release::Reply(tx),
            })
            .is_ok()
        {
            let _ = rx.recv();
        }
    }

    /// Appends records now, on this thread (one write for several); returns whether they were
    /// written. Tells the health hook when the log starts failing and when it recovers.
    pub(crate) fn write(&self, events: Vec<Event>) -> bool {
        let n = events.len() as u64;
        let result = match events.len() {
            0 => return true,
            1 => self
                .log
                .append(events.into_iter().next().unwrap_or_default()),
            _ => self.log.append_batch(events),
        };
        let change = {
            let mut st = self.state();
            match &result {
                Ok(_) if st.log_failed => {
                    st.log_failed = false;
                    Some(LogHealth::Recovered {
                        unwritten: std::mem::take(&mut st.unwritten),
                    })
                }
                Ok(_) => None,
                Err(e) => {
                    st.unwritten += n;
                    (!std::mem::replace(&mut st.log_failed, true)).then(|| LogHealth::Failing {
                        error: with_causes(e),
                    })
                }
            }
        };
        if let (Some(change), Some(hook)) = (change, &self.opts.on_log_health) {
            (hook.0)(&change);
        }
        result.is_ok()
    }

    pub(crate) fn log_failed(&self) -> bool {
        self.state().log_failed
    }

    /// A `proxy_notice` record.
    pub(crate) fn notice(&self, kind: &str, details: Value) {
        self.append(vec![self.notice_event(kind, details)]);
    }

    /// The event of a `proxy_notice` record.
    pub(crate) fn notice_event(&self, kind: &str, details: Value) -> Event {
        let mut d = json!({ "kind": kind });
        if let (Some(d), Value::Object(more)) = (d.as_object_mut(), details) {
            d.extend(more);
        }
        let mut e = Event::new("proxy_notice").level("warn").details(d);
        if let Some(s) = self.server_id() {
            e = e.server(s);
        }
        e
    }

    pub(crate) fn server_id(&self) -> Option<String> {
        self.opts
            .server_id
            .clone()
            .or_else(|| self.state().server_name.clone())
    }

    /// Records every call still waiting as `no_response` (the server has exited).
    pub(crate) fn unanswered(&self) {
        let open: Vec<Call> = self.state().pending.drain().map(|(_, c)| c).collect();
        for call in open {
            let e = self
                .call_event("mcp_call", &call)
                .status("error")
                .failed("no_response", "the server exited before answering");
            self.append(vec![finish(e, &call, None, Map::new())]);
        }
    }

    /// Looks at one client message. Returns the proxy's own answer when the message is
    /// refused (`--fail-closed`): the line is then not forwarded.
    pub(crate) fn client_message(&self, m: &Message<'_>) -> Option<Refusal> {
        let root = m.root();
        let main = root.str("method");
        // A request is a call when any of its `method` keys names one (parsers differ on
        // which key they take).
        let method = match &main {
            Some(x) if RECORDED.contains(&x.as_str()) => main.clone(),
            _ => m
                .methods()
                .into_iter()
                .find(|x| RECORDED.contains(&x.as_str()))
                .or(main),
        }?;
        let id = root.id();
        let params = root.obj("params");
        if RECORDED.contains(&method.as_str()) {
            return self.call(m, method, id, params.as_ref());
        }
        if let Id::Key { key, .. } = &id {
            self.state().outstanding.insert(key.clone());
        }
        match method.as_str() {
            "initialize" => {
                let name = params
                    .as_ref()
                    .and_then(|p| p.obj("clientInfo"))
                    .and_then(|c| c.str("name"));
                self.state().client_name = name;
            }
            "notifications/cancelled" => {
                let params = params.as_ref()?;
                let Id::Key { key, .. } = params.get("requestId")?.id() else {
                    return None;
                };
                let call = self.state().pending.remove(&key)?;
                let reason = params
                    .str("reason")
                    .unwrap_or_else(|| "cancelled by the client".to_owned());
                let e = self
                    .call_event("mcp_call", &call)
                    .failed(Early::Cancelled.name(), reason);
                self.append(vec![finish(e, &call, None, Map::new())]);
                self.state()
                    .early
                    .entry(key)
                    .or_default()
                    .push_back((call, Early::Cancelled));
            }
            _ => {}
        }
        None
    }

    /// A request of a recorded method.
    fn call(
        &self,
        m: &Message<'_>,
        method: String,
        id: Id,
        params: Option<&Obj<'_>>,
    ) -> Option<Refusal> {
        let str_param = |name| params.and_then(|p| p.str(name));
        let args = || {
            params
                .and_then(|p| p.get("arguments"))
                .map(|a| m.args(a, self.log.redactor()))
        };
        let (tool, resource, args) = match method.as_str() {
            "tools/call" => (str_param("name"), None, args()),
            "resources/read" => (None, str_param("uri"), None),
            _ => (None, str_param("name"), args()),
        };
        let client = params.and_then(|p| p.meta_name(CLIENT_INFO_META));
        let mut call = Call {
            method,
            id: None,
            tool,
            resource,
            args,
            client,
            // NOTE: after every lookup above, which may have found duplicate or folded keys.
            quirks: m.quirks().names(),
            id_reused: false,
            started: Instant::now(),
        };
        let (key, text) = match id {
            Id::Key { key, text } => (key, text),
            Id::Unusable(text) => {
                call.id = Some(text);
                return self.notification_call(&call);
            }
            Id::Absent => return self.notification_call(&call),
        };
        call.id = Some(text.clone());
        if self.opts.fail_closed && self.log_failed() {
            // Try the log once more: a record of the refusal.
            let e = self.call_event("mcp_call", &call).failed(
                "audit_unavailable",
                "refused: the audit log cannot be written (--fail-closed)",
            );
            if !self.append(vec![finish(e, &call, None, Map::new())]) {
                return Some(unwritable(Some(text), false));
            }
        }
        let first = self.state().pending.remove(&key);
        if let Some(first) = first {
            // NOTE: the first call is recorded now, never overwritten: the answers to the two
            // cannot be told apart, so the next answer goes to the later call and another one
            // after it is recorded as an `mcp_answer` to this one.
            call.id_reused = true;
            let e = self.call_event("mcp_call", &first).failed(
                Early::DuplicateId.name(),
                "another call reused this id before it was answered; its answer cannot be told apart",
            );
            self.append(vec![finish(e, &first, None, Map::new())]);
            self.state()
                .early
                .entry(key.clone())
                .or_default()
                .push_back((first, Early::DuplicateId));
        }
        self.state().pending.insert(key, call);
        None
    }

    /// A call without a string or number id: no answer can be matched to it. Recorded at once;
    /// refused under `--fail-closed`.
    fn notification_call(&self, call: &Call) -> Option<Refusal> {
        let refused = self.opts.fail_closed;
        let message = if refused {
            "refused (--fail-closed): a call without a string or number id cannot be matched with its answer; it was not forwarded"
        } else {
            "a call without a string or number id: the server may run it, but its answer cannot be matched"
        };
        let e = self
            .call_event("mcp_call", call)
            .failed("notification_call", message);
        let mut extra = Map::new();
        if refused {
            extra.insert("refused".into(), Value::Bool(true));
        }
        self.append(vec![finish(e, call, None, extra)]);
        refused.then_some(Refusal {
            id: None,
            code: INVALID_REQUEST,
            message: "nexus-audit proxy --fail-closed: a call needs a string or number id to be recorded with its answer; it was not forwarded",
        })
    }

    /// Looks at one server message: the record of the call it answers, if any. `answer` is the
    /// text whose size and hash are recorded: the line without its LF when the message is the
    /// whole line, else the message's own bytes.
    pub(crate) fn server_message(
        &self,
        m: &Message<'_>,
        answer: &[u8],
        bytes: usize,
    ) -> Option<Answered> {
        let root = m.root();
        if root.get("method").is_some() {
            return None; // a request or notification from the server: passed through
        }
        let Id::Key { key, text } = root.id() else {
            return None;
        };
        let result = root.get("result");
        let result_obj = result.and_then(super::envelope::Val::obj);
        if let Some(name) = result_obj.as_ref().and_then(|r| {
            r.meta_name(SERVER_INFO_META)
                .or_else(|| r.obj("serverInfo").and_then(|s| s.str("name")))
        }) {
            self.state().server_name = Some(name);
        }
        let (call, early) = {
            let mut st = self.state();
            if let Some(call) = st.pending.remove(&key) {
                (call, None)
            } else if let Some((call, why)) = st.early.get_mut(&key).and_then(VecDeque::pop_front) {
                if st.early.get(&key).is_some_and(VecDeque::is_empty) {
                    st.early.remove(&key);
                }
                (call, Some(why))
            } else {
                let known = st.outstanding.remove(&key);
                drop(st);
                if !known {
                    self.notice("unknown_id", json!({"id": unquoted(&text), "bytes": bytes}));
                }
                return None;
            }
        };
        let size = answer.len() as u64;
        let mut extra = Map::new();
        let mut e = match early {
            None => self.call_event("mcp_call", &call),
            Some(why) => {
                extra.insert("call_recorded_as".into(), Value::String(why.name().into()));
                self.call_event("mcp_answer", &call)
            }
        };
        e.response_size = Some(size);
        let mut hash = None;
        if let Some(err) = root.get("error") {
            let err = err.obj();
            let code = err
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(super::envelope::Val::i64)
                .unwrap_or(0);
            let text = err
                .as_ref()
                .and_then(|e| e.str("message"))
                .unwrap_or_default();
            e = e.failed("rpc_error", format!("JSON-RPC error {code}: {text}"));
        } else if result.is_some() {
            let r = result_obj.as_ref();
            if r.and_then(|r| r.str("resultType")).as_deref() == Some("input_required") {
                e = e.failed(
                    "input_required",
                    "the server asked the client for more input",
                );
            } else if r
                .and_then(|r| r.get("isError"))
                .and_then(super::envelope::Val::bool)
                == Some(true)
            {
                let text = r
                    .and_then(|r| r.get("content"))
                    .and_then(|c| {
                        c.elements()
                            .into_iter()
                            .find_map(|part| part.obj().and_then(|p| p.str("text")))
                    })
                    .unwrap_or_else(|| "the tool reported an error".to_owned());
                e = e.failed("tool_error", text);
            } else {
                e = e.status_success();
            }
            if self.opts.log_results {
                // The answer as the client received it: anyone holding a capture of the wire
                // can match it; the content itself is never stored.
                hash = Some((hex::encode(Sha256::digest(answer)), answer.len()));
            }
        } else {
            e = e.failed("bad_response", "the answer has neither result nor error");
        }
        if early.is_some() {
            e.args_summary = None;
        }
        let event = finish(e, &call, hash, extra);
        Some(Answered { event, id: text })
    }

    /// The record of a call, without its outcome.
    fn call_event(&self, action: &str, call: &Call) -> Event {
        let st = self.state();
        let user = self
            .opts
            .user_id
            .clone()
            .or_else(|| call.client.clone())
            .or_else(|| st.client_name.clone());
        let server = self
            .opts
            .server_id
            .clone()
            .or_else(|| st.server_name.clone());
        drop(st);
        let mut e = Event::new(action);
        if let Some(id) = &call.id {
            e = e.correlation(id.clone());
        }
        if let Some(t) = &call.tool {
            e = e.tool(t.clone());
        }
        if let Some(r) = &call.resource {
            e = e.resource(r.clone());
        }
        if let Some(Args::Value(a)) = &call.args {
            e = e.args(a.clone());
        }
        if let Some(u) = user {
            e = e.user(u);
        }
        if let Some(s) = server {
            e = e.server(s);
        }
        e.latency_ms(u64::try_from(call.started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

/// Sets a call record's `details`, in a fixed key order: `response_sha256` and
/// `response_size` (`hash`, with `--log-results`), `method` (other than `tools/call`),
/// `json_quirks`, `args_raw`, `id_reused`, then `extra`.
fn finish(
    mut e: Event,
    call: &Call,
    hash: Option<(String, usize)>,
    extra: Map<String, Value>,
) -> Event {
    let mut d = Map::new();
    if let Some((sha, size)) = hash {
        d.insert("response_sha256".into(), Value::String(sha));
        d.insert("response_size".into(), size.into());
    }
    if call.method != "tools/call" {
        d.insert("method".into(), Value::String(call.method.clone()));
    }
    if e.action.as_deref() == Some("mcp_call") {
        if !call.quirks.is_empty() {
            d.insert("json_quirks".into(), call.quirks.clone().into());
        }
        if let Some(Args::Raw(text)) = &call.args {
            d.insert("args_raw".into(), Value::String(text.clone()));
        }
        if call.id_reused {
            d.insert("id_reused".into(), Value::Bool(true));
        }
    }
    d.extend(extra);
    if !d.is_empty() {
        e = e.details(Value::Object(d));
    }
    e
}

/// An error and its causes in one line (`cannot write to LOG: No space left on device`).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A string id's text without its quotes (for notices, as before ids kept their type).
fn unquoted(text: &str) -> Value {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_string)
        .unwrap_or_else(|| Value::String(text.to_owned()))
}
