//! `nexus-audit proxy` end to end against a scripted raw JSON-RPC server (`tests/mcp/peer.py`):
//! byte-exact relaying, one record per call, both protocol eras' identity, and every kind of
//! bad input the contract names.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TIMEOUT: Duration = Duration::from_secs(20);

fn peer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/peer.py")
}

/// The real Python interpreter, not a version manager's shim script (which may write files,
/// and so fail under the file-size limit of the fail-closed tests).
fn python() -> &'static Path {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed for the proxy tests");
        assert!(out.status.success(), "python3 does not run");
        PathBuf::from(String::from_utf8(out.stdout).expect("path").trim())
    })
}

fn proxy_command(log: &Path, flags: &[&str]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--file").arg(log).arg("proxy").args(flags);
    cmd.arg("--").arg(python()).arg(peer());
    cmd
}

/// A running proxy in front of the raw peer; the test plays the client.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Vec<u8>>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Session {
    fn start(flags: &[&str]) -> Self {
        Self::start_with(flags, |_| {})
    }

    fn start_with(flags: &[&str], setup: impl FnOnce(&mut Command)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("audit.jsonl");
        let mut cmd = proxy_command(&log, flags);
        setup(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
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
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            log,
            _dir: dir,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to proxy");
        stdin.flush().expect("flush");
    }

    fn send(&mut self, v: &Value) {
        let mut line = serde_json::to_vec(v).expect("json");
        line.push(b'\n');
        self.send_raw(&line);
    }

    fn recv_raw(&self) -> Vec<u8> {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("an answer from the proxy in time")
    }

    fn recv(&self) -> Value {
        serde_json::from_slice(&self.recv_raw()).expect("the answer is JSON")
    }

    /// Closes the client's side and waits for the proxy: its status and the log's records,
    /// after checking that the log verifies clean.
    fn finish(mut self) -> (ExitStatus, Vec<Value>) {
        drop(self.stdin.take());
        let status = wait_timeout(&mut self.child);
        let recs = records(&self.log);
        if !recs.is_empty() {
            verify_clean(&self.log);
        }
        (status, recs)
    }
}

fn wait_timeout(child: &mut Child) -> ExitStatus {
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

fn records(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

fn verify_clean(log: &Path) {
    common::cli(log).arg("verify").assert().success();
}

fn calls(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["action"] == "mcp_call")
        .collect()
}

fn call_record<'a>(records: &'a [Value], id: &str) -> &'a Value {
    let found: Vec<_> = calls(records)
        .into_iter()
        .filter(|r| r["correlation_id"] == id)
        .collect();
    assert_eq!(found.len(), 1, "one record for call {id}: {records:#?}");
    found[0]
}

fn tool_call(id: i64, tool: &str, args: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": args}})
}

fn initialize(id: i64, client: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": client, "version": "1"}}})
}

/// The lines a legacy client sends in the byte-exactness test: JSON-RPC of every kind, a line
/// that is not JSON, odd spacing and non-ASCII text.
fn legacy_script() -> Vec<u8> {
    let mut lines: Vec<String> = vec![
        initialize(0, "raw-client").to_string(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into(),
        "this line is not JSON at all".into(),
        r#"{ "jsonrpc" : "2.0", "id" : 1, "method" : "tools/call", "params" : { "name" : "echo", "arguments" : { "text" : "grüße \u00e9 ✓" } } }"#.into(),
        tool_call(2, "fail", &json!({})).to_string(),
        tool_call(3, "rpcerr", &json!({"api_key": "sk-very-secret-1"})).to_string(),
        tool_call(4, "input", &json!({})).to_string(),
        json!({"jsonrpc": "2.0", "id": "r-5", "method": "resources/read", "params": {"uri": "file:///etc/motd"}}).to_string(),
        json!({"jsonrpc": "2.0", "id": 6, "method": "prompts/get", "params": {"name": "greeting", "arguments": {"who": "bob"}}}).to_string(),
        tool_call(7, "garbage", &json!({})).to_string(),
        tool_call(8, "stray", &json!({})).to_string(),
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}).to_string(),
    ];
    lines.push(String::new());
    let mut bytes = lines.join("\n").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe not UTF-8 \xc3\n");
    bytes
}

fn run_to_end(mut cmd: Command, input: &[u8]) -> (ExitStatus, Vec<u8>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read");
    writer.join().expect("writer").expect("write");
    (wait_timeout(&mut child), out)
}

#[test]
fn proxy_relays_both_ways_byte_for_byte_as_a_direct_run() {
    let script = legacy_script();
    let mut direct = Command::new(python());
    direct.arg(peer());
    let (direct_status, direct_out) = run_to_end(direct, &script);
    assert!(direct_status.success());

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let (status, out) = run_to_end(proxy_command(&log, &[]), &script);
    assert!(status.success());
    assert!(
        out == direct_out,
        "the client got other bytes through the proxy"
    );
    assert!(out.ends_with(b"\xff\xfe not UTF-8 \xc3\n"));
    // The echo tool answers with the request line exactly as the server received it.
    let sent = String::from_utf8_lossy(&script);
    let sent_echo = sent.lines().nth(3).expect("the echo request");
    let echo_answer = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or(Value::Null))
        .find(|v| v["id"] == 1)
        .expect("the echo answer");
    assert_eq!(echo_answer["result"]["content"][0]["text"], sent_echo);
    verify_clean(&log);
}

#[test]
fn each_kind_of_outcome_is_recorded_once_with_its_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let (status, _) = run_to_end(proxy_command(&log, &[]), &legacy_script());
    assert!(status.success());
    let recs = records(&log);
    assert_eq!(recs.first().expect("records")["action"], "server_start");
    assert_eq!(recs.last().expect("records")["action"], "server_stop");
    assert_eq!(recs.last().expect("records")["details"]["exit_code"], 0);
    assert_eq!(calls(&recs).len(), 8, "{recs:#?}");
    for r in calls(&recs) {
        assert_eq!(r["server_id"], "raw-peer");
        assert_eq!(r["user_id"], "raw-client");
        assert!(r["latency_ms"].is_u64());
        assert!(r["response_size"].as_u64().expect("size") > 0);
    }

    let echo = call_record(&recs, "1");
    assert_eq!(echo["tool"], "echo");
    assert_eq!(echo["status"], "success");
    assert_eq!(echo["args_summary"], json!({"text": "grüße é ✓"}));

    let fail = call_record(&recs, "2");
    assert_eq!(fail["status"], "error");
    assert_eq!(fail["error_type"], "tool_error");
    let message = fail["error_message"].as_str().expect("message");
    assert!(message.starts_with("boom: the backend said"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let rpc = call_record(&recs, "3");
    assert_eq!(rpc["error_type"], "rpc_error");
    assert!(
        rpc["error_message"]
            .as_str()
            .expect("message")
            .contains("-32001")
    );
    assert_eq!(rpc["args_summary"]["api_key"], "**REDACTED**");

    assert_eq!(call_record(&recs, "4")["error_type"], "input_required");
    let read = call_record(&recs, r#""r-5""#);
    assert_eq!(read["resource"], "file:///etc/motd");
    assert_eq!(read["status"], "success");
    let prompt = call_record(&recs, "6");
    assert_eq!(prompt["resource"], "greeting");
    assert_eq!(prompt["args_summary"], json!({"who": "bob"}));
    assert_eq!(call_record(&recs, "7")["status"], "success");
    assert_eq!(call_record(&recs, "8")["status"], "success");

    let notices: Vec<&str> = recs
        .iter()
        .filter(|r| r["action"] == "proxy_notice")
        .map(|r| r["details"]["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        notices.iter().filter(|k| **k == "not_json").count(),
        5,
        "two client lines, their echoes, the server's garbage: {notices:?}"
    );
    assert_eq!(notices.iter().filter(|k| **k == "unknown_id").count(), 1);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!text.contains("sk-very-secret-1") && !text.contains("hunter2"));
    verify_clean(&log);
}

#[test]
fn many_calls_in_flight_answered_out_of_order_are_each_recorded_once() {
    let mut s = Session::start(&[]);
    s.send(&initialize(0, "c"));
    s.recv();
    let n = 40;
    for i in 1..=n {
        s.send(&tool_call(i, "slow", &json!({"ms": (n - i) * 5})));
    }
    let mut order = Vec::new();
    for _ in 0..n {
        let answer = s.recv();
        let id = answer["id"].as_i64().expect("id");
        assert_eq!(
            answer["result"]["content"][0]["text"],
            format!("slept {}", (n - id) * 5)
        );
        order.push(id);
    }
    assert_ne!(
        order,
        (1..=n).collect::<Vec<_>>(),
        "answers came back in order"
    );
    let (status, recs) = s.finish();
    assert!(status.success());
    assert_eq!(calls(&recs).len(), usize::try_from(n).expect("n"));
    for i in 1..=n {
        let r = call_record(&recs, &i.to_string());
        assert_eq!(r["status"], "success");
        assert!(r["latency_ms"].as_i64().expect("latency") >= (n - i) * 5 - 1);
    }
    // Records follow the order the answers arrived in.
    let recorded: Vec<i64> = calls(&recs)
        .iter()
        .map(|r| {
            r["correlation_id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("num")
        })
        .collect();
    assert_eq!(recorded, order);
}

#[test]
fn new_era_identity_is_taken_from_each_requests_meta() {
    let mut s = Session::start(&[]);
    s.send(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {
        "_meta": {"io.modelcontextprotocol/clientInfo": {"name": "alpha", "version": "1"}}}}),
    );
    s.recv();
    for (id, client) in [(2, "alpha"), (3, "beta"), (4, "alpha")] {
        s.send(
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "echo", "arguments": {},
            "_meta": {"io.modelcontextprotocol/clientInfo": {"name": client, "version": "1"}}}}),
        );
        s.recv();
    }
    let (_, recs) = s.finish();
    assert_eq!(call_record(&recs, "2")["user_id"], "alpha");
    assert_eq!(call_record(&recs, "3")["user_id"], "beta");
    assert_eq!(call_record(&recs, "4")["user_id"], "alpha");
    assert_eq!(call_record(&recs, "3")["server_id"], "raw-peer-2026");
}

#[test]
fn flags_and_environment_override_the_peers_names() {
    let mut s = Session::start_with(&["--server-id", "hr-prod"], |c| {
        c.env("NEXUS_AUDIT_USER", "operator@example.com");
    });
    s.send(&initialize(0, "raw-client"));
    s.recv();
    s.send(&tool_call(1, "echo", &json!({})));
    s.recv();
    let (_, recs) = s.finish();
    assert_eq!(recs[0]["server_id"], "hr-prod");
    let r = call_record(&recs, "1");
    assert_eq!(r["server_id"], "hr-prod");
    assert_eq!(r["user_id"], "operator@example.com");

    let mut s = Session::start_with(&["--user", "flag-user"], |c| {
        c.env("NEXUS_AUDIT_USER", "operator@example.com");
    });
    s.send(&initialize(0, "raw-client"));
    s.recv();
    s.send(&tool_call(1, "echo", &json!({})));
    s.recv();
    let (_, recs) = s.finish();
    assert_eq!(call_record(&recs, "1")["user_id"], "flag-user");
    assert_eq!(call_record(&recs, "1")["server_id"], "raw-peer");
}

#[test]
fn a_cancelled_call_is_recorded_as_cancelled_and_not_again_at_exit() {
    let mut s = Session::start(&[]);
    s.send(&tool_call(5, "never", &json!({})));
    s.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": 5, "reason": "user pressed stop"}}),
    );
    s.send(&tool_call(6, "echo", &json!({})));
    assert_eq!(s.recv()["id"], 6);
    let (status, recs) = s.finish();
    assert!(status.success());
    let r = call_record(&recs, "5");
    assert_eq!(r["status"], "error");
    assert_eq!(r["error_type"], "cancelled");
    assert_eq!(r["error_message"], "user pressed stop");
    assert_eq!(calls(&recs).len(), 2);
}

#[test]
fn a_server_dying_mid_call_ends_cleanly_with_its_exit_code() {
    let mut s = Session::start(&[]);
    s.send(&tool_call(1, "never", &json!({})));
    s.send(&tool_call(2, "die", &json!({})));
    let (status, recs) = s.finish();
    assert_eq!(status.code(), Some(3));
    for id in ["1", "2"] {
        let r = call_record(&recs, id);
        assert_eq!(r["status"], "error");
        assert_eq!(r["error_type"], "no_response");
    }
    let stop = recs.last().expect("records");
    assert_eq!(stop["action"], "server_stop");
    assert_eq!(stop["details"]["exit_code"], 3);
    assert_eq!(stop["status"], "error");
}

#[test]
fn buffered_records_are_written_when_the_server_exits_while_the_client_stays() {
    let mut s = Session::start(&["--durability", "buffered"]);
    s.send(&tool_call(1, "echo", &json!({})));
    s.recv();
    s.send(&tool_call(2, "die", &json!({})));
    // The client keeps its end open: the proxy ends because the server did.
    let status = wait_timeout(&mut s.child);
    assert_eq!(status.code(), Some(3));
    let recs = records(&s.log);
    assert_eq!(call_record(&recs, "1")["status"], "success");
    assert_eq!(call_record(&recs, "2")["error_type"], "no_response");
    assert_eq!(recs.last().expect("records")["action"], "server_stop");
}

#[test]
fn a_server_killed_by_a_signal_gives_128_plus_the_signal() {
    let mut s = Session::start(&[]);
    s.send(&tool_call(1, "kill", &json!({})));
    let (status, recs) = s.finish();
    assert_eq!(status.code(), Some(128 + 9));
    assert_eq!(call_record(&recs, "1")["error_type"], "no_response");
    let stop = recs.last().expect("records");
    assert_eq!(stop["details"]["signal"], 9);
}

#[test]
fn a_sigterm_to_the_proxy_is_passed_to_the_server_and_its_end_recorded() {
    let mut s = Session::start(&[]);
    s.send(&tool_call(1, "echo", &json!({})));
    s.recv();
    s.send(&tool_call(2, "never", &json!({})));
    let killed = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let (status, recs) = s.finish();
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
    assert_eq!(call_record(&recs, "2")["error_type"], "no_response");
    let stop = recs.last().expect("records");
    assert_eq!(stop["action"], "server_stop");
    assert_eq!(stop["details"]["signal"], 15);
}

#[test]
fn lines_of_20_mb_pass_through_both_ways() {
    let mut s = Session::start(&[]);
    let big = "y".repeat(20 << 20);
    s.send(&tool_call(1, "echo", &json!({"blob": big})));
    let answer = s.recv_raw();
    let v: Value = serde_json::from_slice(&answer).expect("json");
    let echoed: Value =
        serde_json::from_str(v["result"]["content"][0]["text"].as_str().expect("text"))
            .expect("the request line");
    assert_eq!(
        echoed["params"]["arguments"]["blob"].as_str().map(str::len),
        Some(20 << 20)
    );
    s.send(&tool_call(2, "big", &json!({"bytes": 20 << 20})));
    let answer2 = s.recv_raw();
    assert!(answer2.len() > 20 << 20);
    let (status, recs) = s.finish();
    assert!(status.success());
    assert_eq!(
        call_record(&recs, "1")["response_size"].as_u64(),
        Some(answer.len() as u64 - 1)
    );
    assert_eq!(
        call_record(&recs, "2")["response_size"].as_u64(),
        Some(answer2.len() as u64 - 1)
    );
}

#[test]
fn a_client_that_goes_away_closes_the_server_and_unanswered_calls_are_recorded() {
    let mut s = Session::start(&[]);
    s.send(&tool_call(1, "echo", &json!({})));
    s.recv();
    s.send(&tool_call(2, "never", &json!({})));
    let (status, recs) = s.finish();
    assert!(status.success(), "the server's own exit code, 0");
    assert_eq!(call_record(&recs, "1")["status"], "success");
    assert_eq!(call_record(&recs, "2")["error_type"], "no_response");
    assert_eq!(recs.last().expect("records")["action"], "server_stop");
}

#[test]
fn a_client_that_stops_reading_does_not_stop_the_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let mut child = proxy_command(&log, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("proxy");
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 1..=3 {
        writeln!(stdin, "{}", tool_call(i, "echo", &json!({}))).expect("write");
    }
    drop(stdin);
    let status = wait_timeout(&mut child);
    assert!(status.success());
    let recs = records(&log);
    assert_eq!(calls(&recs).len(), 3);
    assert!(
        recs.iter()
            .any(|r| r["action"] == "proxy_notice" && r["details"]["kind"] == "client_gone")
    );
    verify_clean(&log);
}

#[test]
fn log_results_records_the_responses_hash_and_size_never_its_content() {
    let mut s = Session::start(&["--log-results"]);
    s.send(&tool_call(1, "slow", &json!({"ms": 0})));
    let line = s.recv_raw();
    let (_, recs) = s.finish();
    let body = line.strip_suffix(b"\n").expect("LF");
    let r = call_record(&recs, "1");
    assert_eq!(
        r["details"]["response_sha256"],
        hex::encode(Sha256::digest(body))
    );
    assert_eq!(r["details"]["response_size"], body.len());
    assert!(!recs.iter().any(|r| r.to_string().contains("slept 0")));
    // Without the flag there is no hash either.
    let mut s = Session::start(&[]);
    s.send(&tool_call(1, "echo", &json!({})));
    s.recv();
    let (_, recs) = s.finish();
    assert!(call_record(&recs, "1").get("details").is_none());
}

/// Runs the proxy on a log already longer than the file-size limit it runs under (512 bytes),
/// so that no record can be written (EFBIG).
fn unwritable_log(flags: &[&str], trace: &Path) -> Session {
    limited_log(3, flags, trace)
}

/// Runs the proxy under a file-size limit of 512 bytes, on a log that first gets `prefill`
/// records (three are more than 512 bytes).
fn limited_log(prefill: usize, flags: &[&str], trace: &Path) -> Session {
    let flags = flags.to_vec();
    let trace = trace.to_path_buf();
    Session::start_with(&[], move |cmd| {
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
        let log = Path::new(&args[1]);
        for _ in 0..prefill {
            common::cli(log)
                .args(["append", "--tool", "prefill_the_log"])
                .assert()
                .success();
        }
        if prefill >= 3 {
            assert!(std::fs::metadata(log).expect("log").len() > 512);
        }
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(r#"trap '' XFSZ; ulimit -f 1; exec "$@""#)
            .arg("sh")
            .arg(program);
        let (before, after) =
            args.split_at(args.iter().position(|a| a == "proxy").expect("proxy") + 1);
        sh.args(before).args(&flags).args(after);
        sh.env("PEER_TRACE", &trace);
        *cmd = sh;
    })
}

#[test]
fn fail_closed_answers_with_an_error_and_does_not_forward_when_the_log_cannot_be_written() {
    let dir = tempfile::tempdir().expect("dir");
    let trace = dir.path().join("trace");
    let mut s = unwritable_log(&["--fail-closed"], &trace);
    s.send(&tool_call(1, "echo", &json!({})));
    let answer = s.recv();
    assert_eq!(answer["id"], 1);
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("audit log cannot be written")
    );
    s.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    assert_eq!(s.recv()["id"], 2, "other requests still pass");
    let (_, recs) = s.finish();
    assert_eq!(recs.len(), 3, "nothing but the prefill");
    let seen = std::fs::read_to_string(&trace).expect("trace");
    assert!(
        !seen.contains("tools/call"),
        "the call reached the server: {seen}"
    );
    assert!(seen.contains("tools/list"));
}

#[test]
fn fail_closed_withholds_an_answer_it_cannot_record_and_refuses_later_calls() {
    let dir = tempfile::tempdir().expect("dir");
    let trace = dir.path().join("trace");
    // server_start fits under the limit; the first call's record does not.
    let mut s = limited_log(0, &["--fail-closed"], &trace);
    s.send(&tool_call(1, "echo", &json!({"n": 1})));
    let answer = s.recv();
    assert_eq!(answer["id"], 1);
    assert!(
        answer.get("result").is_none(),
        "the answer was given: {answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("audit log cannot be written")
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("the answer is withheld")
    );
    s.send(&tool_call(2, "echo", &json!({"n": 2})));
    let answer = s.recv();
    assert_eq!(answer["id"], 2);
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("the call was not made"),
        "{answer}"
    );
    s.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}));
    assert_eq!(s.recv()["id"], 3);
    let (_, recs) = s.finish(); // verifies clean: no half-written line was left
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["action"], "server_start");
    let seen = std::fs::read_to_string(&trace).expect("trace");
    assert!(
        seen.contains(r#""arguments":{"n":1}"#),
        "call 1 was made: {seen}"
    );
    assert!(
        !seen.contains(r#""arguments":{"n":2}"#),
        "call 2 was forwarded: {seen}"
    );
}

#[test]
fn without_fail_closed_calls_go_on_when_the_log_cannot_be_written() {
    let dir = tempfile::tempdir().expect("dir");
    let trace = dir.path().join("trace");
    let mut s = unwritable_log(&[], &trace);
    s.send(&tool_call(1, "echo", &json!({})));
    let answer = s.recv();
    assert_eq!(answer["id"], 1);
    assert!(answer.get("result").is_some());
    let (status, _) = s.finish();
    assert!(status.success());
}

#[test]
fn a_missing_command_or_server_is_one_sentence_and_exit_2() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("audit.jsonl");
    common::cli(&log).arg("proxy").assert().code(2);
    let out = common::cli(&log)
        .args(["proxy", "--", "/nonexistent/mcp-server"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    assert!(err.contains("cannot start the server"), "{err}");
    assert!(!err.contains("panicked"));
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
