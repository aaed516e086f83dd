//! The proxy's recording thread: answers that come together share one write and one
//! `fdatasync` (durability `sync`), in both failure modes, and nothing queued is lost when the
//! client goes away. The real binary under strace, in front of the scripted raw server.

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use common::{lines, verify_json};

/// Calls sent at once, all in flight together.
const CALLS: usize = 200;

fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for the proxy tests: install Python 3");
    assert!(out.status.success(), "python3 does not run");
    String::from_utf8(out.stdout)
        .expect("a path")
        .trim()
        .to_owned()
}

fn strace_works() {
    let works = Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        works,
        "this test counts fdatasync calls with strace: install it (apt-get install strace) and allow ptrace"
    );
}

/// What one run gave: the answer lines as the client read them, the log's records, and the
/// number of `fdatasync` calls the proxy made.
struct Run {
    answers: Vec<Value>,
    records: Vec<Value>,
    syncs: usize,
}

/// Runs `nexus-audit proxy FLAGS -- peer.py` under strace, writes `CALLS` `tools/call`
/// requests at once, then closes its stdin and reads every answer until its stdout ends.
fn run(dir: &Path, name: &str, flags: &[&str]) -> Run {
    let log = dir.join(format!("{name}.jsonl"));
    let trace = dir.join(format!("{name}.strace"));
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/peer.py");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=fdatasync", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_nexus-audit"))
        .arg("--file")
        .arg(&log)
        .arg("proxy")
        .args(flags)
        .arg("--")
        .arg(python())
        .arg(&peer)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd.spawn().expect("run strace");
    let requests: String = (0..CALLS)
        .map(|id| {
            format!(
                "{}\n",
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"n": id}}})
            )
        })
        .collect();
    let mut stdin = child.stdin.take().expect("stdin");
    // The client writes everything, then goes away (EOF) before any answer is read.
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(requests.as_bytes())
            .expect("write requests");
    });
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read answers");
    writer.join().expect("writer thread");
    let done = child.wait_with_output().expect("wait");
    assert!(
        done.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let answers = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("an answer line is JSON"))
        .collect();
    assert_eq!(verify_json(&log).0, 0, "{name}: the log verifies");
    let records = lines(&log)
        .iter()
        .map(|l| serde_json::from_slice(l).expect("a record is JSON"))
        .collect();
    let syncs = std::fs::read_to_string(&trace)
        .expect("strace output")
        .matches("fdatasync(")
        .count();
    Run {
        answers,
        records,
        syncs,
    }
}

/// Every call was answered with the server's answer, in order, and recorded once.
fn all_answered_and_recorded(name: &str, r: &Run) {
    let ids: Vec<u64> = r
        .answers
        .iter()
        .map(|a| a["id"].as_u64().expect("a numeric id"))
        .collect();
    let sent: Vec<u64> = (0..CALLS as u64).collect();
    assert_eq!(ids, sent, "{name}: every answer, in order");
    assert!(
        r.answers.iter().all(|a| a["result"].is_object()),
        "{name}: the server's answers, not refusals"
    );
    let calls: Vec<&Value> = r
        .records
        .iter()
        .filter(|rec| rec["action"] == "mcp_call")
        .collect();
    assert_eq!(calls.len(), CALLS, "{name}: one record per call");
    assert!(
        calls.iter().all(|c| c["status"] == "success"),
        "{name}: {calls:#?}"
    );
    let actions: Vec<&str> = r
        .records
        .iter()
        .filter_map(|rec| rec["action"].as_str())
        .collect();
    assert_eq!(actions.first(), Some(&"server_start"), "{name}");
    assert_eq!(actions.last(), Some(&"server_stop"), "{name}");
}

/// With `sync` (the default), calls in flight together share syncs: far fewer `fdatasync`s
/// than calls (one per call before the recording thread), fail-open and fail-closed alike.
#[test]
fn concurrent_calls_share_one_sync_and_every_answer_is_relayed_after_its_record() {
    strace_works();
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, flags) in [
        ("fail-open", &[][..]),
        ("fail-closed", &["--fail-closed"][..]),
    ] {
        let r = run(dir.path(), name, flags);
        all_answered_and_recorded(name, &r);
        eprintln!("{name}: {} fdatasync calls for {CALLS} calls", r.syncs);
        assert!(
            r.syncs * 4 <= CALLS,
            "{name}: {} fdatasync calls for {CALLS} calls in flight together: they should share syncs",
            r.syncs
        );
        assert!(r.syncs >= 2, "{name}: sync still syncs ({})", r.syncs);
    }
}

/// With `none` nothing is synced, and the recording thread still writes every record and
/// relays every answer before the proxy ends.
#[test]
fn with_durability_none_the_recording_thread_writes_everything_and_never_syncs() {
    strace_works();
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run(dir.path(), "none", &["--durability", "none"]);
    all_answered_and_recorded("none", &r);
    assert_eq!(r.syncs, 0);
}

/// `--fail-closed`, the log full while calls are in flight together: the batch holding their
/// records cannot be written, and no server answer reaches the client; each call gets exactly
/// one JSON-RPC error with its id instead (its answer withheld, or, once the failure is known,
/// the call refused before it is made).
#[test]
fn fail_closed_withholds_every_answer_of_a_batch_that_cannot_be_written() {
    const N: usize = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("full.jsonl");
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/peer.py");
    // Files the proxy writes stop at 8 blocks of 512 bytes; the write fails (EFBIG).
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 8; exec "$@""#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_nexus-audit"))
        .arg("--file")
        .arg(&log)
        .args(["proxy", "--fail-closed", "--"])
        .arg(python())
        .arg(&peer)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd.spawn().expect("run the proxy");
    // `server_start` is written; then another writer, not limited, fills the log past the limit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(&log).map_or(0, |m| m.len()) == 0 {
        assert!(std::time::Instant::now() < deadline, "no server_start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    while std::fs::metadata(&log).expect("log").len() <= 8 * 512 {
        common::cli(&log)
            .args(["append", "--tool", "fill_the_log"])
            .assert()
            .success();
    }
    let requests: String = (0..N)
        .map(|id| {
            format!(
                "{}\n",
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"secret_answer": id}}})
            )
        })
        .collect();
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(requests.as_bytes())
            .expect("write requests");
    });
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read answers");
    writer.join().expect("writer thread");
    let done = child.wait_with_output().expect("wait");
    let answers: Vec<Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("an answer line is JSON"))
        .collect();
    let mut ids: Vec<u64> = answers
        .iter()
        .map(|a| a["id"].as_u64().expect("a numeric id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..N as u64).collect::<Vec<_>>(),
        "one answer per call"
    );
    for a in &answers {
        assert!(
            a.get("result").is_none(),
            "a server answer got through: {a}"
        );
        assert_eq!(a["error"]["code"], -32603, "{a}");
        let message = a["error"]["message"].as_str().expect("message");
        assert!(
            message.contains("the answer is withheld") || message.contains("the call was not made"),
            "{a}"
        );
    }
    assert!(
        answers.iter().any(|a| a["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("withheld"))),
        "the first batch's answers are withheld: {answers:#?}"
    );
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(
        stderr.matches("cannot write the audit log").count(),
        1,
        "{stderr}"
    );
}
