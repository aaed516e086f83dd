//! The proxy test harness shared by `tests/proxy.rs`, `tests/proxy_sdk.rs` and
//! `tests/proxy_ts.rs`: a running `nexus-audit proxy` in front of some server, with the test
//! playing the client byte by byte, the log's records, and the hostile lines that lenient
//! servers act on.
#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The real Python interpreter, not a version manager's shim script (which may write files,
/// and so fail under the file-size limit of the fail-closed tests).
pub fn system_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed for the proxy tests: install Python 3");
        assert!(out.status.success(), "python3 does not run");
        PathBuf::from(String::from_utf8(out.stdout).expect("path").trim())
    })
}

/// The scripted raw server, `tests/mcp/peer.py`, on the system Python.
pub fn peer() -> Vec<OsString> {
    vec![
        system_python().into(),
        root().join("tests/mcp/peer.py").into(),
    ]
}

/// The Python of `target/mcp-venv`, with the official MCP Python SDK, set up once per test
/// process by `tests/mcp/setup-venv.sh`.
pub fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("tests/mcp/setup-venv.sh"))
            .status()
            .expect("bash runs tests/mcp/setup-venv.sh");
        assert!(
            status.success(),
            "could not install the MCP Python SDK (mcp==2.3.0) into target/mcp-venv: run tests/mcp/setup-venv.sh (it needs PyPI once)"
        );
        root().join("target/mcp-venv/bin/python")
    })
}

/// The MCP Python SDK's test server, `tests/mcp/server.py`.
pub fn python_sdk_server() -> Vec<OsString> {
    vec![
        venv_python().into(),
        root().join("tests/mcp/server.py").into(),
    ]
}

/// `node` with the official MCP TypeScript SDK installed in `target/mcp-node`, set up once
/// per test process by `tests/mcp/setup-node.sh`.
pub fn node() -> &'static Path {
    static NODE: OnceLock<PathBuf> = OnceLock::new();
    NODE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("tests/mcp/setup-node.sh"))
            .status()
            .expect("bash runs tests/mcp/setup-node.sh");
        assert!(
            status.success(),
            "could not install the MCP TypeScript SDK into target/mcp-node: run tests/mcp/setup-node.sh (it needs node, npm and the npm registry once)"
        );
        PathBuf::from("node")
    })
}

/// The MCP TypeScript SDK's test server, `tests/mcp/server.mjs`.
pub fn ts_sdk_server() -> Vec<OsString> {
    vec![
        node().into(),
        root().join("tests/mcp/server.mjs").into(),
        root().join("target/mcp-node").into(),
    ]
}

/// `nexus-audit --file LOG proxy FLAGS -- SERVER…`, with a clean environment.
pub fn proxy_command(log: &Path, flags: &[&str], server: &[OsString]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--file").arg(log).arg("proxy").args(flags);
    cmd.arg("--").args(server);
    cmd
}

/// A running proxy in front of a server; the test plays the client.
pub struct Session {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: Receiver<Vec<u8>>,
    pub log: PathBuf,
    /// What the proxy (and the server) wrote on stderr so far.
    pub stderr: Arc<Mutex<Vec<u8>>>,
    pub dir: tempfile::TempDir,
}

impl Session {
    pub fn start(flags: &[&str], server: &[OsString]) -> Self {
        Self::start_with(flags, server, |_| {})
    }

    pub fn start_with(
        flags: &[&str],
        server: &[OsString],
        setup: impl FnOnce(&mut Command),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("audit.jsonl");
        let mut cmd = proxy_command(&log, flags, server);
        setup(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("proxy starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("stderr").extend_from_slice(&buf[..n]);
                // Show it too, for a failing test's output.
                let _ = std::io::stderr().write_all(&buf[..n]);
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            log,
            stderr,
            dir,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to proxy");
        stdin.flush().expect("flush");
    }

    pub fn send(&mut self, v: &Value) {
        let mut line = serde_json::to_vec(v).expect("json");
        line.push(b'\n');
        self.send_raw(&line);
    }

    pub fn recv_raw(&self) -> Vec<u8> {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("an answer from the proxy in time")
    }

    /// The next line from the proxy, parsed leniently enough for answers to hostile calls
    /// (which may hold a lone surrogate or `NaN`): only the envelope is needed.
    pub fn recv(&self) -> Value {
        let raw = self.recv_raw();
        parse_loose(&raw).unwrap_or_else(|| {
            panic!(
                "the answer is not JSON: {:?}",
                String::from_utf8_lossy(&raw)
            )
        })
    }

    /// Answers until one has this id (others are returned too), in arrival order.
    pub fn recv_until_id(&self, id: &Value) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let v = self.recv();
            let done = v["id"] == *id;
            got.push(v);
            if done {
                return got;
            }
        }
    }

    /// No line from the proxy for a while.
    pub fn assert_silent(&self, wait: Duration) {
        if let Ok(line) = self.lines.recv_timeout(wait) {
            panic!("the proxy answered: {:?}", String::from_utf8_lossy(&line));
        }
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr")).into_owned()
    }

    /// Closes the client's side and waits for the proxy: its status and the log's records,
    /// after checking that the log verifies clean.
    pub fn finish(mut self) -> (ExitStatus, Vec<Value>) {
        drop(self.stdin.take());
        let status = wait_timeout(&mut self.child);
        let recs = records(&self.log);
        if !recs.is_empty() {
            verify_clean(&self.log);
        }
        (status, recs)
    }
}

/// JSON as a lenient client reads it: `serde_json` after replacing what it refuses (lone
/// surrogate escapes, `NaN`, `Infinity`) with harmless stand-ins.
pub fn parse_loose(raw: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice(raw) {
        return Some(v);
    }
    let text = String::from_utf8_lossy(raw)
        .replace("\\ud", "\\u00d")
        .replace("NaN", "null")
        .replace("-Infinity", "null")
        .replace("Infinity", "null");
    serde_json::from_str(&text).ok()
}

pub fn wait_timeout(child: &mut Child) -> ExitStatus {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the proxy did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn records(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

pub fn verify_clean(log: &Path) {
    let out = Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"))
        .env_remove("NEXUS_AUDIT_FILE")
        .arg("--file")
        .arg(log)
        .arg("verify")
        .output()
        .expect("verify runs");
    assert!(
        out.status.success(),
        "the log does not verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn calls(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["action"] == "mcp_call")
        .collect()
}

/// The one `mcp_call` record whose `correlation_id` is `id`.
pub fn call_record<'a>(records: &'a [Value], id: &str) -> &'a Value {
    let found: Vec<_> = calls(records)
        .into_iter()
        .filter(|r| r["correlation_id"] == id)
        .collect();
    assert_eq!(found.len(), 1, "one record for call {id}: {records:#?}");
    found[0]
}

pub fn notices<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["action"] == "proxy_notice" && r["details"]["kind"] == kind)
        .collect()
}

/// `details.json_quirks` of a record.
pub fn quirks(record: &Value) -> Vec<String> {
    record["details"]["json_quirks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|q| q.as_str().expect("a quirk name").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn tool_call(id: i64, tool: &str, args: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": args}})
}

pub fn initialize(id: i64, client: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": client, "version": "1"}}})
}

/// The legacy handshake, answered: `initialize` (id 0) and `notifications/initialized`.
pub fn handshake(s: &mut Session, client: &str) {
    s.send(&initialize(0, client));
    let answer = s.recv();
    assert!(
        answer.get("result").is_some(),
        "initialize failed: {answer}"
    );
    s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
}

/// One kind of `tools/call` line that `serde_json` refuses (or reads otherwise than a server
/// may) and some server acts on.
pub struct Hostile {
    /// The quirk the proxy must name in `details.json_quirks`.
    pub quirk: &'static str,
    /// The line, LF included.
    pub line: Vec<u8>,
    /// Whether the arguments can still be decoded (`args_summary`), else `details.args_raw`.
    pub decodable_args: bool,
}

/// A `tools/call` of `tool` with id `id`, with `args` (the JSON text of an object with at
/// least one member), in each hostile form. `args` goes in as its text, so a member of its
/// own (say `"a":2`) reaches the tool in every form.
pub fn hostile_calls(first_id: i64, tool: &str, args: &str) -> Vec<Hostile> {
    let inner = args
        .strip_prefix('{')
        .and_then(|a| a.strip_suffix('}'))
        .expect("args is an object");
    let call = |id: i64, args: &str| -> Vec<u8> {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
        )
        .into_bytes()
    };
    let with = |extra: &str| format!("{{{inner},{extra}}}");
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let mut id = first_id - 1;
    let mut next = || {
        id += 1;
        id
    };
    let mut out = Vec::new();
    let mut add = |quirk, mut line: Vec<u8>, decodable_args| {
        line.push(b'\n');
        out.push(Hostile {
            quirk,
            line,
            decodable_args,
        });
    };
    add(
        "lone_surrogate",
        call(next(), &with(r#""s":"\ud800""#)),
        false,
    );
    add(
        "number_out_of_range",
        call(next(), &with(r#""n":1e400"#)),
        false,
    );
    add(
        "deep_nesting",
        call(next(), &with(&format!(r#""d":{deep}"#))),
        false,
    );
    let mut bad_utf8 = call(next(), &with(r#""s":"#));
    let end = bad_utf8.len() - 3; // before `}}}`
    bad_utf8.splice(end..end, b"\"\xff\xfe\"".iter().copied());
    add("invalid_utf8", bad_utf8, false);
    add(
        "non_finite_number",
        call(next(), &with(r#""n":NaN"#)),
        false,
    );
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(call(next(), args));
    add("bom", bom, true);
    add(
        "control_character",
        call(next(), &with("\"s\":\"a\u{1}b\"")),
        false,
    );
    let dup = format!(
        r#"{{"jsonrpc":"2.0","id":{},"method":"tools/list","method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#,
        next()
    );
    add("duplicate_key", dup.into_bytes(), true);
    out
}

/// Runs `tests/mcp/client.py MODE SERVER…` (the official Python SDK's client): its output.
fn run_client(mode: &str, server: &[OsString]) -> std::process::Output {
    let out = Command::new(venv_python())
        .arg(root().join("tests/mcp/client.py"))
        .arg(mode)
        .args(server)
        .env_remove("NEXUS_AUDIT_USER")
        .env_remove("NEXUS_AUDIT_FILE")
        .output()
        .expect("the SDK client runs");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The SDK client's four calls (`tests/mcp/client.py`) give the same output through the proxy
/// as direct, and leave one correct, redacted record each. `server_name` is the name the
/// server gives itself; `explode_message` the error text its `explode` tool answers with.
pub fn client_through_proxy_matches_direct(
    mode: &str,
    server: &[OsString],
    server_name: &str,
    explode_message: &str,
) {
    let direct = run_client(mode, server);

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let mut through: Vec<OsString> = vec![
        assert_cmd::cargo::cargo_bin("nexus-audit").into(),
        "--file".into(),
        log.clone().into(),
        "proxy".into(),
        "--".into(),
    ];
    through.extend(server.iter().cloned());
    let proxied = run_client(mode, &through);
    let expected = String::from_utf8(direct.stdout).expect("utf-8");
    assert_eq!(expected.lines().count(), 4, "{expected}");
    assert_eq!(String::from_utf8(proxied.stdout).expect("utf-8"), expected);

    verify_clean(&log);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        !text.contains("hunter2-SECRET"),
        "the password reached the log"
    );
    let records = records(&log);
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "server_start",
            "mcp_call",
            "mcp_call",
            "mcp_call",
            "mcp_call",
            "server_stop"
        ]
    );
    let calls = &records[1..5];
    let tools: Vec<&str> = calls
        .iter()
        .map(|r| r["tool"].as_str().expect("tool"))
        .collect();
    assert_eq!(tools, ["add", "explode", "login", "add"]);
    for r in calls {
        assert_eq!(r["server_id"], server_name);
        assert_eq!(r["user_id"], "nexus-test-client");
        assert!(r["correlation_id"].is_string());
        assert!(r["response_size"].as_u64().expect("size") > 0);
        assert!(r["details"].get("json_quirks").is_none(), "{r}");
    }
    assert_eq!(calls[0]["status"], "success");
    assert_eq!(calls[0]["args_summary"], json!({"a": 2, "b": 3}));
    assert_eq!(calls[1]["status"], "error");
    assert_eq!(calls[1]["error_type"], "tool_error");
    assert_eq!(calls[1]["error_message"], explode_message);
    assert_eq!(
        calls[2]["args_summary"],
        json!({"username": "alice", "password": "**REDACTED**"})
    );
    assert_eq!(calls[2]["status"], "success");
    assert_eq!(records[5]["details"]["exit_code"], 0);
}

/// Sends each hostile `add` call (`a` 2, `b` 3) whose quirk is in `acted_on`, checks that the
/// server ran it (its answer is the sum), and that the proxy recorded it with that quirk.
/// The server is an SDK server: the handshake comes first.
pub fn sdk_server_runs_hostile_calls_and_each_is_recorded(server: &[OsString], acted_on: &[&str]) {
    let mut s = Session::start(&[], server);
    handshake(&mut s, "hostile-client");
    let hostile: Vec<Hostile> = hostile_calls(100, "add", r#"{"a":2,"b":3}"#)
        .into_iter()
        .filter(|h| acted_on.contains(&h.quirk))
        .collect();
    assert_eq!(
        hostile.len(),
        acted_on.len(),
        "a quirk with no hostile line"
    );
    for h in &hostile {
        s.send_raw(&h.line);
        let id = json!(id_of(&h.line));
        let answer = s.recv_until_id(&id).pop().expect("the answer");
        assert_eq!(
            answer["result"]["content"][0]["text"], "5",
            "the server did not run the {} call: {answer}",
            h.quirk
        );
    }
    let (status, recs) = s.finish();
    assert!(status.success());
    for h in &hostile {
        let r = call_record(&recs, &id_of(&h.line).to_string());
        assert_eq!(r["tool"], "add");
        assert_eq!(r["status"], "success", "{r}");
        assert_eq!(r["user_id"], "hostile-client");
        assert!(quirks(r).contains(&h.quirk.to_owned()), "{}: {r}", h.quirk);
        if h.decodable_args {
            assert_eq!(r["args_summary"], json!({"a": 2, "b": 3}));
        } else {
            let raw = r["details"]["args_raw"].as_str().expect("args_raw");
            assert!(raw.starts_with(r#"{"a":2,"b":3,"#), "{raw}");
        }
    }
}

/// The numeric id of a hostile line.
pub fn id_of(line: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(line);
    let at = text.find(r#""id":"#).expect("an id") + 5;
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a numeric id")
}
