//! A transparent stdio proxy that audits any MCP server: `nexus-audit proxy -- COMMAND ARGS…`.
//!
//! The client's bytes go to the server and the server's back, line for line and byte for
//! byte, in order. Beside the relay, each line that is a JSON-RPC message is read once: a
//! `tools/call`, `resources/read` or `prompts/get` request is remembered by its id, and when its
//! answer comes back one record is appended (redacted by the logger). Both protocol eras are
//! understood: the handshake era (`initialize` with `clientInfo`/`serverInfo`) and the
//! stateless 2026-07-28 era, where identity travels in every request's and result's `_meta`.
//!
//! Nothing the peers send can stop the relay: a line that is not JSON, an answer to an unknown
//! id, a line of any length, a server that dies mid-call and a client that goes away are each
//! passed through or ended cleanly, and noted in the log.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{Error, Event, Logger, Result};

const CLIENT_INFO_META: &str = "io.modelcontextprotocol/clientInfo";
const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// How the proxy records.
#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    /// `server_id` of every record (default: the server's own name).
    pub server_id: Option<String>,
    /// `user_id` of every record (default: `NEXUS_AUDIT_USER`, else the client's name).
    pub user_id: Option<String>,
    /// Record the SHA-256 and size of each answer line as relayed (never its content).
    pub log_results: bool,
    /// When a record cannot be written, answer the call with a JSON-RPC error instead of the
    /// server's answer, and refuse further calls until the log can be written again.
    pub fail_closed: bool,
}

/// A call waiting for its answer.
#[derive(Debug)]
struct Call {
    method: String,
    tool: Option<String>,
    resource: Option<String>,
    args: Option<Value>,
    client: Option<String>,
    started: Instant,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<String, Call>,
    /// Ids of the client's other requests (initialize, tools/list, …) awaiting an answer.
    outstanding: HashSet<String>,
    cancelled: HashSet<String>,
    client_name: Option<String>,
    server_name: Option<String>,
    /// The last append failed (fail-closed mode refuses calls until one succeeds).
    log_failed: bool,
}

struct Shared {
    log: Logger,
    opts: ProxyOptions,
    env_user: Option<String>,
    state: Mutex<State>,
    /// The client's side of the wire (our stdout), shared by both directions in fail-closed
    /// mode, when the proxy answers a call itself.
    to_client: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a record; notes a failure for fail-closed mode.
    fn append(&self, event: Event) -> bool {
        let ok = self.log.append(event).is_ok();
        self.state().log_failed = !ok;
        ok
    }

    fn notice(&self, kind: &str, details: Value) {
        let mut d = json!({ "kind": kind });
        if let (Some(d), Value::Object(more)) = (d.as_object_mut(), details) {
            d.extend(more);
        }
        let mut e = Event::new("proxy_notice").level("warn").details(d);
        if let Some(s) = self.server_id() {
            e = e.server(s);
        }
        self.append(e);
    }

    fn server_id(&self) -> Option<String> {
        self.opts
            .server_id
            .clone()
            .or_else(|| self.state().server_name.clone())
    }
}

/// The JSON-RPC id as text: numbers as written, strings as they are.
fn id_key(id: &Value) -> Option<String> {
    match id {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a line that may be a JSON-RPC message (an object); anything else is `None`.
fn message(line: &[u8]) -> Option<Map<String, Value>> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn meta_name(container: Option<&Value>, key: &str) -> Option<String> {
    container?
        .get("_meta")?
        .get(key)?
        .get("name")?
        .as_str()
        .map(str::to_owned)
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
        log,
        env_user: std::env::var("NEXUS_AUDIT_USER")
            .ok()
            .filter(|u| !u.is_empty()),
        opts,
        state: Mutex::new(State::default()),
        to_client: Mutex::new(Box::new(io::stdout())),
    });
    let command_line: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut start = Event::new("server_start").details(json!({
        "command": command_line,
        "pid": child.id(),
    }));
    if let Some(s) = &shared.opts.server_id {
        start = start.server(s.clone());
    }
    shared.append(start);

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
    let open: Vec<(String, Call)> = shared.state().pending.drain().collect();
    for (id, call) in open {
        let e = call_event(&shared, &id, &call, None)
            .status("error")
            .failed("no_response", "the server exited before answering");
        shared.append(e);
    }
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
    if let Some(s) = shared.server_id() {
        stop = stop.server(s);
    }
    shared.append(stop);
    // NOTE: the upstream thread may still be blocked reading a client that keeps its end
    // open, holding the logger, so it may never be dropped: write buffered records now.
    let _ = shared.log.flush();
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

/// Relays the client's lines to the server, remembering the calls.
fn client_to_server(shared: &Shared, input: impl BufRead, child_in: Option<ChildStdin>) {
    let Some(mut child_in) = child_in else {
        return;
    };
    let mut input = input;
    let mut line = Vec::with_capacity(64 << 10);
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break, // the client closed its end: close the server's stdin
            Ok(_) => {}
        }
        if let Some(m) = message(&line) {
            if let Some(answer) = on_client_message(shared, &m) {
                // Fail-closed: the proxy answers; the call is not forwarded.
                let mut out = shared
                    .to_client
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let _ = out.write_all(&answer).and_then(|()| out.flush());
                continue;
            }
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            shared.notice(
                "not_json",
                json!({"direction": "client_to_server", "bytes": line.len()}),
            );
        }
        if child_in
            .write_all(&line)
            .and_then(|()| child_in.flush())
            .is_err()
        {
            shared.notice("server_gone", json!({"direction": "client_to_server"}));
            break;
        }
    }
    // Dropping child_in closes the server's stdin.
}

/// Looks at one client message; returns the proxy's own answer when the call is refused.
fn on_client_message(shared: &Shared, m: &Map<String, Value>) -> Option<Vec<u8>> {
    let method = m.get("method").and_then(Value::as_str)?;
    if !matches!(method, "tools/call" | "resources/read" | "prompts/get")
        && let Some(id) = m.get("id").and_then(id_key)
    {
        shared.state().outstanding.insert(id);
    }
    let params = m.get("params");
    let client = meta_name(params, CLIENT_INFO_META);
    match method {
        "initialize" => {
            let name = params
                .and_then(|p| p.get("clientInfo"))
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            shared.state().client_name = name;
            None
        }
        "notifications/cancelled" => {
            let id = params.and_then(|p| p.get("requestId")).and_then(id_key)?;
            let call = {
                let mut st = shared.state();
                let call = st.pending.remove(&id);
                if call.is_some() {
                    st.cancelled.insert(id.clone());
                }
                call
            }?;
            let reason = params
                .and_then(|p| p.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or("cancelled by the client")
                .to_owned();
            let e = call_event(shared, &id, &call, None).failed("cancelled", reason);
            shared.append(e);
            None
        }
        "tools/call" | "resources/read" | "prompts/get" => {
            let id = m.get("id").and_then(id_key)?;
            let p = params.cloned().unwrap_or(Value::Null);
            let (tool, resource, args) = match method {
                "tools/call" => (
                    p.get("name").and_then(Value::as_str).map(str::to_owned),
                    None,
                    p.get("arguments").cloned(),
                ),
                "resources/read" => (
                    None,
                    p.get("uri").and_then(Value::as_str).map(str::to_owned),
                    None,
                ),
                _ => (
                    None,
                    p.get("name").and_then(Value::as_str).map(str::to_owned),
                    p.get("arguments").cloned(),
                ),
            };
            let refuse = shared.opts.fail_closed && shared.state().log_failed;
            let call = Call {
                method: method.to_owned(),
                tool,
                resource,
                args,
                client,
                started: Instant::now(),
            };
            if refuse {
                // Try the log once more: a record of the refusal.
                let e = call_event(shared, &id, &call, None).failed(
                    "audit_unavailable",
                    "refused: the audit log cannot be written (--fail-closed)",
                );
                if !shared.append(e) {
                    return Some(refusal(m.get("id"), false));
                }
            }
            shared.state().pending.insert(id, call);
            None
        }
        _ => None,
    }
}

/// A JSON-RPC error answer for a call the proxy refuses (`made`: the server did run it, its
/// answer is withheld).
fn refusal(id: Option<&Value>, made: bool) -> Vec<u8> {
    let message = if made {
        "the audit log cannot be written; the answer is withheld (nexus-audit proxy --fail-closed)"
    } else {
        "the audit log cannot be written; the call was not made (nexus-audit proxy --fail-closed)"
    };
    let mut v = serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": { "code": -32603, "message": message },
    }))
    .unwrap_or_default();
    v.push(b'\n');
    v
}

/// The record of a call, without its outcome.
fn call_event(shared: &Shared, id: &str, call: &Call, response_size: Option<u64>) -> Event {
    let st = shared.state();
    let user = shared
        .opts
        .user_id
        .clone()
        .or_else(|| shared.env_user.clone())
        .or_else(|| call.client.clone())
        .or_else(|| st.client_name.clone());
    let server = shared
        .opts
        .server_id
        .clone()
        .or_else(|| st.server_name.clone());
    drop(st);
    let mut e = Event::new("mcp_call").correlation(id.to_owned());
    if let Some(t) = &call.tool {
        e = e.tool(t.clone());
    }
    if let Some(r) = &call.resource {
        e = e.resource(r.clone());
    }
    if let Some(a) = &call.args {
        e = e.args(a.clone());
    }
    if let Some(u) = user {
        e = e.user(u);
    }
    if let Some(s) = server {
        e = e.server(s);
    }
    if call.method != "tools/call" {
        e = e.details(json!({"method": call.method}));
    }
    let mut e = e.latency_ms(u64::try_from(call.started.elapsed().as_millis()).unwrap_or(u64::MAX));
    e.response_size = response_size;
    e
}

/// Relays the server's lines to the client, recording the answers to calls.
fn server_to_client(shared: &Shared, out: impl Read) {
    let mut input = BufReader::with_capacity(64 << 10, out);
    let mut line = Vec::with_capacity(64 << 10);
    let mut client_gone = false;
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let m = message(&line);
        let outcome = m.as_ref().and_then(|m| on_server_message(shared, m, &line));
        let forward = match outcome {
            Some((event, refuse_id)) => {
                if shared.opts.fail_closed {
                    // Write the record first; without it the answer is not given.
                    if shared.append(event) {
                        None
                    } else {
                        Some(refusal(refuse_id.as_ref(), true))
                    }
                } else {
                    // Forward first (no added latency), then record.
                    if !client_gone && send(shared, &line).is_err() {
                        client_gone = true;
                        shared.notice("client_gone", json!({"direction": "server_to_client"}));
                    }
                    shared.append(event);
                    continue;
                }
            }
            None => {
                if m.is_none() && !line.iter().all(u8::is_ascii_whitespace) {
                    shared.notice(
                        "not_json",
                        json!({"direction": "server_to_client", "bytes": line.len()}),
                    );
                }
                None
            }
        };
        if client_gone {
            continue; // keep draining the server so it is not blocked on a full pipe
        }
        let bytes = forward.as_deref().unwrap_or(&line);
        if send(shared, bytes).is_err() {
            client_gone = true;
            shared.notice("client_gone", json!({"direction": "server_to_client"}));
        }
    }
}

fn send(shared: &Shared, bytes: &[u8]) -> io::Result<()> {
    let mut out = shared
        .to_client
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    out.write_all(bytes)?;
    out.flush()
}

/// Looks at one server message: the record of the call it answers, if any, with the id to
/// refuse in fail-closed mode.
fn on_server_message(
    shared: &Shared,
    m: &Map<String, Value>,
    line: &[u8],
) -> Option<(Event, Option<Value>)> {
    if m.contains_key("method") {
        return None; // a request or notification from the server: passed through
    }
    let id_value = m.get("id")?;
    let id = id_key(id_value)?;
    let result = m.get("result");
    if let Some(name) = meta_name(result, SERVER_INFO_META).or_else(|| {
        result
            .and_then(|r| r.get("serverInfo"))
            .and_then(|s| s.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }) {
        shared.state().server_name = Some(name);
    }
    let call = {
        let mut st = shared.state();
        match st.pending.remove(&id) {
            Some(call) => call,
            None => {
                let known = st.outstanding.remove(&id) || st.cancelled.remove(&id);
                drop(st);
                if !known {
                    shared.notice("unknown_id", json!({"id": id, "bytes": line.len()}));
                }
                return None;
            }
        }
    };
    // The line without its LF, as SPEC §1 counts a line.
    let size = line.strip_suffix(b"\n").unwrap_or(line).len() as u64;
    let mut e = call_event(shared, &id, &call, Some(size));
    if let Some(err) = m.get("error") {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        let text = err.get("message").and_then(Value::as_str).unwrap_or("");
        e = e.failed("rpc_error", format!("JSON-RPC error {code}: {text}"));
    } else if let Some(r) = result {
        if r.get("resultType").and_then(Value::as_str) == Some("input_required") {
            e = e.failed(
                "input_required",
                "the server asked the client for more input",
            );
        } else if r.get("isError").and_then(Value::as_bool) == Some(true) {
            let text = r
                .get("content")
                .and_then(Value::as_array)
                .and_then(|c| {
                    c.iter()
                        .find_map(|part| part.get("text").and_then(Value::as_str))
                })
                .unwrap_or("the tool reported an error");
            e = e.failed("tool_error", text.to_owned());
        } else {
            e = e.status_success();
        }
        if shared.opts.log_results {
            // The response line as the client received it, without its LF: anyone holding a
            // capture of the wire can match it; the content itself is never stored.
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let mut d = json!({
                "response_sha256": hex::encode(Sha256::digest(body)),
                "response_size": body.len(),
            });
            if call.method != "tools/call"
                && let Some(d) = d.as_object_mut()
            {
                d.insert("method".into(), Value::String(call.method.clone()));
            }
            e = e.details(d);
        }
    } else {
        e = e.failed("bad_response", "the answer has neither result nor error");
    }
    Some((e, Some(id_value.clone())))
}
