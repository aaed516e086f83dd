//! `nexus-audit proxy` end to end against a scripted raw JSON-RPC server (`tests/mcp/peer.py`):
//! byte-exact relaying, one record per call, both protocol eras' identity, and every kind of
//! bad input the contract names.

mod common;
#[path = "mcp/session.rs"]
mod session;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use session::{
    Session, call_record, calls, hostile_calls, initialize, notices, peer, proxy_command, quirks,
    records, tool_call, verify_clean, wait_timeout,
};
use sha2::{Digest, Sha256};

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
    let server = peer();
    let mut direct = Command::new(&server[0]);
    direct.args(&server[1..]);
    let (direct_status, direct_out) = run_to_end(direct, &script);
    assert!(direct_status.success());

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let (status, out) = run_to_end(proxy_command(&log, &[], &peer()), &script);
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
    let (status, _) = run_to_end(proxy_command(&log, &[], &peer()), &legacy_script());
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
    let mut s = Session::start(&[], &peer());
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
    let mut s = Session::start(&[], &peer());
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
    let mut s = Session::start_with(&["--server-id", "hr-prod"], &peer(), |c| {
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

    let mut s = Session::start_with(&["--user", "flag-user"], &peer(), |c| {
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
    let mut s = Session::start(&[], &peer());
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
    let mut s = Session::start(&[], &peer());
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
    let mut s = Session::start(&["--durability", "buffered"], &peer());
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
    let mut s = Session::start(&[], &peer());
    s.send(&tool_call(1, "kill", &json!({})));
    let (status, recs) = s.finish();
    assert_eq!(status.code(), Some(128 + 9));
    assert_eq!(call_record(&recs, "1")["error_type"], "no_response");
    let stop = recs.last().expect("records");
    assert_eq!(stop["details"]["signal"], 9);
}

#[test]
fn a_sigterm_to_the_proxy_is_passed_to_the_server_and_its_end_recorded() {
    let mut s = Session::start(&[], &peer());
    s.send(&tool_call(1, "echo", &json!({})));
    s.recv();
    s.send(&tool_call(2, "never", &json!({})));
    let killed = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    // NOTE: the client keeps its end open until the proxy has exited: closing it at once
    // races the signal (the server may see its stdin close first and exit 0).
    let status = wait_timeout(&mut s.child);
    let (_, recs) = s.finish();
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
    assert_eq!(call_record(&recs, "2")["error_type"], "no_response");
    let stop = recs.last().expect("records");
    assert_eq!(stop["action"], "server_stop");
    assert_eq!(stop["details"]["signal"], 15);
}

#[test]
fn lines_of_20_mb_pass_through_both_ways() {
    let mut s = Session::start(&[], &peer());
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
    let mut s = Session::start(&[], &peer());
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
    let mut child = proxy_command(&log, &[], &peer())
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
    let mut s = Session::start(&["--log-results"], &peer());
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
    let mut s = Session::start(&[], &peer());
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
    log_under_limit(1, prefill, flags, trace)
}

/// Runs the proxy under a file-size limit of `blocks` × 512 bytes (`ulimit -f` of `sh`), on a
/// log that first gets `prefill` records.
fn log_under_limit(blocks: u32, prefill: usize, flags: &[&str], trace: &Path) -> Session {
    let flags = flags.to_vec();
    let trace = trace.to_path_buf();
    let limit = format!(r#"trap '' XFSZ; ulimit -f {blocks}; exec "$@""#);
    Session::start_with(&[], &peer(), move |cmd| {
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
        let log = Path::new(&args[1]);
        for _ in 0..prefill {
            common::cli(log)
                .args(["append", "--tool", "prefill_the_log"])
                .assert()
                .success();
        }
        if prefill >= 3 * blocks as usize {
            assert!(std::fs::metadata(log).expect("log").len() > 512 * u64::from(blocks));
        }
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(&limit).arg("sh").arg(program);
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

// ---- Issue 9: every call a server acts on is recorded, ids are exact. ----

/// Python's `json` (the peer) runs each of these `tools/call` lines, which `serde_json` refuses
/// or reads otherwise; each leaves one record naming what was odd about it.
#[test]
fn every_call_a_lenient_server_runs_is_recorded() {
    let mut s = Session::start(&[], &peer());
    let hostile = hostile_calls(100, "echo", r#"{"a":2,"password":"hunter2-SECRET"}"#);
    for h in &hostile {
        s.send_raw(&h.line);
        let answer = s.recv();
        assert!(
            answer["result"]["content"][0]["text"].is_string(),
            "the server did not run the {} call: {answer}",
            h.quirk
        );
    }
    // Keys that match only case-insensitively: Go's encoding/json takes them for `method`,
    // `params` and `name` (the peer, like JavaScript, answers it as another request).
    s.send_raw(
        b"{\"jsonrpc\":\"2.0\",\"id\":200,\"METHOD\":\"tools/call\",\"Params\":{\"NAME\":\"echo\",\"arguments\":{\"a\":2}}}\n",
    );
    assert_eq!(s.recv()["id"], 200);
    // Two `method` keys: JavaScript and Python take the last, a first-match parser the first.
    s.send_raw(
        b"{\"jsonrpc\":\"2.0\",\"id\":201,\"method\":\"tools/call\",\"method\":\"tools/list\",\"params\":{\"name\":\"echo\",\"arguments\":{\"a\":2}}}\n",
    );
    assert_eq!(s.recv()["id"], 201);
    let (status, recs) = s.finish();
    assert!(status.success());
    assert_eq!(calls(&recs).len(), hostile.len() + 2, "{recs:#?}");
    for (n, h) in hostile.iter().enumerate() {
        let r = call_record(&recs, &(100 + n).to_string());
        assert_eq!(r["tool"], "echo", "{}", h.quirk);
        assert_eq!(r["status"], "success", "{}: {r}", h.quirk);
        assert!(quirks(r).contains(&h.quirk.to_owned()), "{}: {r}", h.quirk);
        if h.decodable_args {
            assert_eq!(
                r["args_summary"],
                json!({"a": 2, "password": "**REDACTED**"}),
                "{}",
                h.quirk
            );
            assert!(r["details"].get("args_raw").is_none());
        } else {
            assert!(r.get("args_summary").is_none(), "{}: {r}", h.quirk);
            let raw = r["details"]["args_raw"].as_str().expect("args_raw");
            assert!(
                raw.starts_with(r#"{"a":2,"password":"**REDACTED**","#),
                "{}: {raw}",
                h.quirk
            );
        }
    }
    let folded = call_record(&recs, "200");
    assert_eq!(folded["tool"], "echo");
    assert_eq!(quirks(folded), ["case_folded_key"]);
    assert_eq!(folded["args_summary"], json!({"a": 2}));
    assert_eq!(quirks(call_record(&recs, "201")), ["duplicate_key"]);
    assert!(!Value::from(recs).to_string().contains("hunter2"));
}

#[test]
fn arguments_serde_cannot_decode_are_kept_as_redacted_text() {
    let mut s = Session::start(&[], &peer());
    let args = concat!(
        r#"{"n":1e400,"apiKey":"sk-live-0123456789","nested":{"db_password":["p1","p2"],"#,
        r#""list":[{"Token":{"x":"y"}}]},"note":"Authorization: Bearer abcdefghijklmnop0123","#,
        r#""url":"postgres://app:hunter2@db/prod","user":"alice"}"#
    );
    let line = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{args}}}}}"#
    );
    s.send_raw(format!("{line}\n").as_bytes());
    assert_eq!(s.recv()["id"], 1);
    let (_, recs) = s.finish();
    let r = call_record(&recs, "1");
    assert!(r.get("args_summary").is_none());
    assert_eq!(quirks(r), ["number_out_of_range"]);
    assert_eq!(
        r["details"]["args_raw"],
        concat!(
            r#"{"n":1e400,"apiKey":"**REDACTED**","nested":{"db_password":"**REDACTED**","#,
            r#""list":[{"Token":"**REDACTED**"}]},"note":"Authorization: Bearer **REDACTED**","#,
            r#""url":"postgres://app:**REDACTED**@db/prod","user":"alice"}"#
        )
    );
    let text = Value::from(recs.clone()).to_string();
    assert!(text.contains("**REDACTED**"));
    for secret in [
        "sk-live-0123456789",
        "p1",
        "abcdefghijklmnop0123",
        "hunter2",
    ] {
        assert!(!text.contains(secret), "{secret} reached the log");
    }
}

#[test]
fn ids_keep_their_type_and_every_digit() {
    let mut s = Session::start(&[], &peer());
    // Four calls in flight at once; a proxy that confused 1 with "1", or two integers beyond
    // f64 precision, would give one call the other's answer.
    s.send(&tool_call(1, "slow", &json!({"ms": 300})));
    s.send(&json!({"jsonrpc": "2.0", "id": "1", "method": "tools/call",
                   "params": {"name": "fail", "arguments": {}}}));
    s.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":12345678901234567890123,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\",\"arguments\":{\"ms\":300}}}\n");
    s.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":12345678901234567890124,\"method\":\"tools/call\",\"params\":{\"name\":\"rpcerr\",\"arguments\":{}}}\n");
    for _ in 0..4 {
        s.recv();
    }
    let (_, recs) = s.finish();
    assert_eq!(calls(&recs).len(), 4);
    let number = call_record(&recs, "1");
    assert_eq!(
        (&number["tool"], &number["status"]),
        (&json!("slow"), &json!("success"))
    );
    let string = call_record(&recs, r#""1""#);
    assert_eq!(
        (&string["tool"], &string["error_type"]),
        (&json!("fail"), &json!("tool_error"))
    );
    let big = call_record(&recs, "12345678901234567890123");
    assert_eq!(
        (&big["tool"], &big["status"]),
        (&json!("slow"), &json!("success"))
    );
    let bigger = call_record(&recs, "12345678901234567890124");
    assert_eq!(
        (&bigger["tool"], &bigger["error_type"]),
        (&json!("rpcerr"), &json!("rpc_error"))
    );
    assert!(notices(&recs, "unknown_id").is_empty(), "{recs:#?}");
}

#[test]
fn a_call_reusing_a_pending_id_records_the_first_as_duplicate_id() {
    let mut s = Session::start(&["--log-results"], &peer());
    s.send(&tool_call(7, "slow", &json!({"ms": 800})));
    s.send(&tool_call(7, "echo", &json!({"second": true})));
    let first = s.recv_raw();
    let second = s.recv_raw();
    let (_, recs) = s.finish();
    let with_7: Vec<&Value> = recs.iter().filter(|r| r["correlation_id"] == "7").collect();
    assert_eq!(with_7.len(), 3, "{recs:#?}");
    // The first call is recorded as soon as its id is reused, never overwritten.
    assert_eq!(with_7[0]["action"], "mcp_call");
    assert_eq!(with_7[0]["tool"], "slow");
    assert_eq!(with_7[0]["error_type"], "duplicate_id");
    assert_eq!(with_7[0]["args_summary"], json!({"ms": 800}));
    // The next answer goes to the later call; the one after it is recorded as an answer to
    // the first.
    assert_eq!(with_7[1]["action"], "mcp_call");
    assert_eq!(with_7[1]["tool"], "echo");
    assert_eq!(with_7[1]["status"], "success");
    assert_eq!(with_7[1]["details"]["id_reused"], true);
    assert_eq!(
        with_7[1]["response_size"].as_u64(),
        Some(first.len() as u64 - 1)
    );
    assert_eq!(with_7[2]["action"], "mcp_answer");
    assert_eq!(with_7[2]["tool"], "slow");
    assert_eq!(with_7[2]["status"], "success");
    assert_eq!(with_7[2]["details"]["call_recorded_as"], "duplicate_id");
    let body = second.strip_suffix(b"\n").expect("LF");
    assert_eq!(
        with_7[2]["details"]["response_sha256"],
        hex::encode(Sha256::digest(body))
    );
}

/// The `tools/call` lines with no usable id: absent, null, an object, a boolean, an array.
fn calls_without_a_usable_id() -> Vec<(String, Option<&'static str>)> {
    [
        (None, None),
        (Some("null"), Some("null")),
        (Some(r#"{"k":1}"#), Some(r#"{"k":1}"#)),
        (Some("true"), Some("true")),
        (Some("[1]"), Some("[1]")),
    ]
    .into_iter()
    .enumerate()
    .map(|(n, (id, shown))| {
        let id = id.map(|i| format!(r#""id":{i},"#)).unwrap_or_default();
        (
            format!(
                r#"{{"jsonrpc":"2.0",{id}"method":"tools/call","params":{{"name":"echo","arguments":{{"n":{n}}}}}}}"#
            ) + "\n",
            shown,
        )
    })
    .collect()
}

fn notification_calls(recs: &[Value]) -> Vec<&Value> {
    calls(recs)
        .into_iter()
        .filter(|r| r["error_type"] == "notification_call")
        .collect()
}

#[test]
fn a_call_without_a_usable_id_is_recorded_as_a_notification_call() {
    let dir = tempfile::tempdir().expect("dir");
    let trace = dir.path().join("trace");
    let mut s = Session::start_with(&[], &peer(), |c| {
        c.env("PEER_TRACE", &trace);
    });
    let lines = calls_without_a_usable_id();
    for (line, _) in &lines {
        s.send_raw(line.as_bytes());
        s.recv(); // the peer answers each (with its odd id)
    }
    let (_, recs) = s.finish();
    let recorded = notification_calls(&recs);
    assert_eq!(recorded.len(), lines.len(), "{recs:#?}");
    for (n, (r, (_, shown))) in recorded.iter().zip(&lines).enumerate() {
        assert_eq!(r["tool"], "echo");
        assert_eq!(r["status"], "error");
        assert_eq!(r["args_summary"], json!({"n": n}));
        assert_eq!(r.get("correlation_id").and_then(Value::as_str), *shown);
        assert!(r["details"].get("refused").is_none());
    }
    assert!(notices(&recs, "unknown_id").is_empty());
    let seen = std::fs::read_to_string(&trace).expect("trace");
    assert_eq!(
        seen.matches("tools/call").count(),
        lines.len(),
        "all were forwarded"
    );
}

#[test]
fn fail_closed_refuses_a_call_without_a_usable_id() {
    let dir = tempfile::tempdir().expect("dir");
    let trace = dir.path().join("trace");
    let mut s = Session::start_with(&["--fail-closed"], &peer(), |c| {
        c.env("PEER_TRACE", &trace);
    });
    let lines = calls_without_a_usable_id();
    for (line, _) in &lines {
        s.send_raw(line.as_bytes());
        let answer = s.recv();
        assert_eq!(answer["id"], Value::Null);
        assert_eq!(answer["error"]["code"], -32600);
        assert!(
            answer["error"]["message"]
                .as_str()
                .expect("message")
                .contains("not forwarded")
        );
    }
    s.send(&tool_call(9, "echo", &json!({})));
    assert_eq!(s.recv()["id"], 9, "calls with an id still pass");
    let (_, recs) = s.finish();
    let recorded = notification_calls(&recs);
    assert_eq!(recorded.len(), lines.len());
    assert!(recorded.iter().all(|r| r["details"]["refused"] == true));
    assert_eq!(call_record(&recs, "9")["status"], "success");
    let seen = std::fs::read_to_string(&trace).expect("trace");
    assert_eq!(
        seen.matches("tools/call").count(),
        1,
        "only call 9 went on: {seen}"
    );
}

#[test]
fn a_batch_is_recorded_call_by_call() {
    let mut s = Session::start(&["--log-results"], &peer());
    s.send_raw(
        format!(
            "[{},{},{}]\n",
            tool_call(1, "echo", &json!({"x": 1})),
            tool_call(2, "rpcerr", &json!({"api_key": "sk-batch-secret"})),
            json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})
        )
        .as_bytes(),
    );
    let answer = s.recv();
    assert_eq!(answer.as_array().map(Vec::len), Some(2), "{answer}");
    let (_, recs) = s.finish();
    assert_eq!(calls(&recs).len(), 2);
    let one = call_record(&recs, "1");
    assert_eq!(one["status"], "success");
    assert_eq!(one["args_summary"], json!({"x": 1}));
    assert_eq!(quirks(one), ["batch"]);
    // Each answer's own bytes in the answering batch.
    let first_answer = serde_json::to_vec(&answer[0]).expect("json");
    assert!(
        one["details"]["response_size"].as_u64().expect("size") >= first_answer.len() as u64 - 10
    );
    let two = call_record(&recs, "2");
    assert_eq!(two["error_type"], "rpc_error");
    assert_eq!(two["args_summary"]["api_key"], "**REDACTED**");
    assert!(notices(&recs, "not_json").is_empty(), "{recs:#?}");
}

#[test]
fn fail_closed_refuses_client_lines_it_cannot_read_as_one_message() {
    let dir = tempfile::tempdir().expect("dir");
    let trace = dir.path().join("trace");
    let mut s = Session::start_with(&["--fail-closed"], &peer(), |c| {
        c.env("PEER_TRACE", &trace);
    });
    let refused: [(&str, Vec<u8>); 3] = [
        (
            "not_json",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\" oops}\n".to_vec(),
        ),
        (
            "incomplete",
            b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\n".to_vec(),
        ),
        (
            "several_values",
            format!(
                "{} {}\n",
                tool_call(3, "echo", &json!({})),
                tool_call(4, "echo", &json!({}))
            )
            .into_bytes(),
        ),
    ];
    for (_, line) in &refused {
        s.send_raw(line);
        let answer = s.recv();
        assert_eq!(answer["id"], Value::Null, "{answer}");
        assert_eq!(answer["error"]["code"], -32700);
    }
    s.send_raw(
        format!(
            "[{},{}]\n",
            tool_call(5, "echo", &json!({})),
            tool_call(6, "echo", &json!({}))
        )
        .as_bytes(),
    );
    let answer = s.recv();
    let ids: Vec<&Value> = answer
        .as_array()
        .expect("one error per call of the batch")
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&json!(5), &json!(6)]);
    assert_eq!(answer[0]["error"]["code"], -32600);
    // A line serde refuses but that is one readable message is recorded and forwarded.
    s.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"s\":\"\\ud800\"}}}\n");
    assert!(s.recv()["result"].is_object());
    let (_, recs) = s.finish();
    let reasons: Vec<&Value> = notices(&recs, "refused")
        .iter()
        .map(|r| &r["details"]["reason"])
        .collect();
    assert_eq!(
        reasons,
        [
            &json!("not_json"),
            &json!("incomplete"),
            &json!("several_values"),
            &json!("batch")
        ]
    );
    assert_eq!(calls(&recs).len(), 1);
    assert_eq!(quirks(call_record(&recs, "7")), ["lone_surrogate"]);
    let seen = std::fs::read_to_string(&trace).expect("trace");
    assert_eq!(seen.lines().count(), 1, "only call 7 went on: {seen}");
    assert!(seen.contains("\"id\":7"));
}

/// A streaming server (Go's `json.Decoder`; the peer with `PEER_STREAM`) reads a message that
/// spans lines, and several on one line; each is recorded.
#[test]
fn calls_a_streaming_server_reads_across_and_within_lines_are_recorded() {
    let mut s = Session::start_with(&[], &peer(), |c| {
        c.env("PEER_STREAM", "1");
    });
    s.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":15,\n");
    s.send_raw(
        b"\"method\":\"tools/call\",\n\"params\":{\"name\":\"echo\",\"arguments\":{\"x\":1}}}\n",
    );
    assert_eq!(s.recv()["id"], 15);
    s.send_raw(
        format!(
            "{} {}\n",
            tool_call(16, "echo", &json!({})),
            tool_call(17, "echo", &json!({}))
        )
        .as_bytes(),
    );
    s.recv();
    s.recv();
    let (_, recs) = s.finish();
    assert_eq!(calls(&recs).len(), 3, "{recs:#?}");
    let split = call_record(&recs, "15");
    assert_eq!(split["status"], "success");
    assert_eq!(split["args_summary"], json!({"x": 1}));
    assert_eq!(quirks(split), ["split_across_lines"]);
    assert_eq!(quirks(call_record(&recs, "16")), ["several_values"]);
    assert_eq!(call_record(&recs, "17")["status"], "success");
    assert!(notices(&recs, "not_json").is_empty(), "{recs:#?}");
}

#[test]
fn an_answer_to_a_cancelled_call_is_recorded_when_it_comes() {
    let mut s = Session::start(&["--log-results"], &peer());
    s.send(&tool_call(5, "slow", &json!({"ms": 800})));
    s.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": 5, "reason": "user pressed stop"}}),
    );
    let answer = s.recv_raw();
    let (_, recs) = s.finish();
    let cancelled = call_record(&recs, "5");
    assert_eq!(cancelled["error_type"], "cancelled");
    let late: Vec<&Value> = recs
        .iter()
        .filter(|r| r["action"] == "mcp_answer")
        .collect();
    assert_eq!(late.len(), 1, "{recs:#?}");
    let late = late[0];
    assert_eq!(late["correlation_id"], "5");
    assert_eq!(late["tool"], "slow");
    assert_eq!(late["status"], "success");
    assert_eq!(late["details"]["call_recorded_as"], "cancelled");
    let body = answer.strip_suffix(b"\n").expect("LF");
    assert_eq!(late["response_size"].as_u64(), Some(body.len() as u64));
    assert_eq!(
        late["details"]["response_sha256"],
        hex::encode(Sha256::digest(body))
    );
    assert!(late.get("args_summary").is_none());
    assert!(late["latency_ms"].as_u64().expect("latency") >= 750);
    assert!(notices(&recs, "unknown_id").is_empty());
}

/// Fail-open: one sentence on stderr when the log stops taking records, one when it takes
/// them again (with the count lost), and one more when it fails again; none per call.
#[test]
fn fail_open_says_once_on_stderr_that_the_log_cannot_be_written_and_when_it_recovers() {
    let dir = tempfile::tempdir().expect("dir");
    let trace = dir.path().join("trace");
    // 8 × 512 bytes; 30 records are more, one call's record is less.
    let mut s = log_under_limit(8, 30, &[], &trace);
    let log = s.log.clone();
    // An answer is relayed before its record is written; a request that is not recorded,
    // answered after it, shows that the record was tried.
    let records_tried = |s: &mut Session, id: i64| {
        s.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}));
        assert_eq!(s.recv()["id"], id);
    };
    for id in 1..=3 {
        s.send(&tool_call(id, "echo", &json!({})));
        assert!(
            s.recv()["result"].is_object(),
            "fail-open: the call goes on"
        );
    }
    records_tried(&mut s, 100);
    // The log is emptied (say, rotated away): records fit again.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    s.send(&tool_call(4, "echo", &json!({})));
    s.recv();
    records_tried(&mut s, 101);
    for _ in 0..30 {
        common::cli(&log)
            .args(["append", "--tool", "fill_it_again"])
            .assert()
            .success();
    }
    for id in 5..=6 {
        s.send(&tool_call(id, "echo", &json!({})));
        s.recv();
    }
    let stderr_text = || s.stderr_text();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stderr_text().matches("cannot write the audit log").count() < 2
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = s.stderr_text();
    let (_, recs) = s.finish();
    assert_eq!(
        err.matches("cannot write the audit log").count(),
        2,
        "{err}"
    );
    assert_eq!(err.matches("calls go on unrecorded").count(), 2, "{err}");
    assert_eq!(
        err.matches("the audit log can be written again; 4 record(s) could not be written")
            .count(),
        1,
        "server_start and calls 1-3 were lost: {err}"
    );
    assert!(
        err.contains(&log.display().to_string()),
        "it names the log: {err}"
    );
    assert!(
        err.contains("File too large"),
        "it gives the system's reason: {err}"
    );
    assert_eq!(call_record(&recs, "4")["status"], "success");
    let echoes: Vec<&Value> = calls(&recs)
        .into_iter()
        .filter(|r| r["tool"] == "echo")
        .collect();
    assert_eq!(echoes.len(), 1, "only call 4 was recorded: {recs:#?}");
}
