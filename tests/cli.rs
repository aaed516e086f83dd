//! Every command and output format of `nexus-audit`, through the real binary (SPEC §7).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::{cli, lines, verify_json, write_log};
use nexus_audit::{Durability, Event, LogOptions};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_nexus-audit");

// --- helpers ------------------------------------------------------------------------------

/// Runs the command, asserts exit 0 and a silent stderr, and returns stdout.
fn ok(cmd: &mut assert_cmd::Command) -> Vec<u8> {
    let out = cmd.output().expect("run nexus-audit");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "exit {:?}, stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ok_text(cmd: &mut assert_cmd::Command) -> String {
    String::from_utf8(ok(cmd)).expect("stdout is UTF-8")
}

/// Runs the command and asserts it failed with `code` and exactly one line on stderr.
fn fails_with(cmd: &mut assert_cmd::Command, code: i32) -> String {
    let out = cmd.output().expect("run nexus-audit");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr {stderr:?}");
    assert!(
        out.stdout.is_empty(),
        "stdout {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "stderr is not one line: {stderr:?}"
    );
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    stderr
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn parse(line: &[u8]) -> Value {
    serde_json::from_slice(line).expect("a JSON line")
}

fn records(path: &Path) -> Vec<Value> {
    lines(path).iter().map(|l| parse(l)).collect()
}

/// Lines joined as the jsonl output prints them: each followed by LF.
fn jsonl<'a>(lines: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("unknown")
}

/// Appends events with the library (no sync), for logs with hand-picked records.
fn append_events(path: &Path, events: Vec<Event>) {
    let log = LogOptions::new(path)
        .durability(Durability::None)
        .open()
        .expect("open log");
    log.append_batch(events).expect("append");
    log.close().expect("close");
}

/// Appends JSON objects through `append --stdin`.
fn append_stdin(path: &Path, objects: &[Value]) -> Value {
    let input: String = objects.iter().map(|o| format!("{o}\n")).collect();
    let out = ok(cli(path)
        .args(["append", "--stdin", "--durability", "none"])
        .write_stdin(input));
    parse(out.trim_ascii_end())
}

fn ago(seconds: i64) -> String {
    (Utc::now() - chrono::Duration::seconds(seconds)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `tail --follow` and hands back its stdout lines through a channel.
fn spawn_follow(log: &Path) -> (KillOnDrop, mpsc::Receiver<String>) {
    let mut child = std::process::Command::new(BIN)
        .env_remove("NEXUS_AUDIT_FILE")
        .env_remove("NO_COLOR")
        .arg("--file")
        .arg(log)
        .args(["tail", "-n", "2", "--follow", "--output", "jsonl"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tail --follow");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (KillOnDrop(child), rx)
}

fn receive(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(Duration::from_secs(15))
                .unwrap_or_else(|e| panic!("line {i} of {n} never came: {e}"))
        })
        .collect()
}

fn text_lines(path: &Path) -> Vec<String> {
    lines(path)
        .into_iter()
        .map(|l| String::from_utf8(l).expect("UTF-8"))
        .collect()
}

/// A log of `n` sample records plus a few that are not tool calls, in a fresh directory.
fn mixed_log(n: u64) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", n);
    append_events(
        &log,
        vec![
            Event::new("server_start")
                .server("workday-mcp")
                .user("svc-deploy")
                .status_success(),
            Event::new("mcp_call")
                .tool("intune_list_devices")
                .server("assets-mcp")
                .user("dave@example.com")
                .session("sess-9999")
                .latency_ms(12_345)
                .mock(true)
                .failed("Forbidden", "device list denied"),
            Event::new("server_configure").mock(true),
        ],
    );
    (dir, log)
}

// --- append -------------------------------------------------------------------------------

#[test]
fn append_with_every_flag_writes_each_field_and_prints_seq_and_line_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let out = ok(cli(&log).args([
        "append",
        "--tool",
        "helix_create_ticket",
        "--user",
        "alice@example.com",
        "--server",
        "helix-mcp",
        "--session",
        "sess-0001",
        "--correlation",
        "req-000042",
        "--action",
        "mcp_call",
        "--status",
        "error",
        "--latency-ms",
        "1234",
        "--args",
        r#"{"summary":"printer on fire","priority":2,"tags":["hw"]}"#,
        "--details",
        r#"{"attempt":3,"upstream":{"host":"helix.example.com"}}"#,
        "--error-type",
        "UpstreamTimeout",
        "--error-message",
        "helix did not answer within 30s",
        "--level",
        "error",
        "--resource",
        "helix:INC0001",
        "--shard",
        "itsm-eu",
        "--category",
        "WRITE",
        "--response-size",
        "2000",
        "--filtered-size",
        "500",
        "--mock",
        "--source",
        "gateway-7",
        "--timestamp",
        "2026-11-22T10:05:04.5+01:00",
    ]));
    let stored = lines(&log);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        parse(out.trim_ascii_end()),
        json!({"seq": 0, "hash": sha256_hex(&stored[0])})
    );
    let r = parse(&stored[0]);
    let expected = json!({
        "seq": 0,
        "prev_hash": "0".repeat(64),
        "timestamp": "2026-11-22T09:05:04.500000Z",
        "schema_version": "1",
        "source": "gateway-7",
        "level": "error",
        "action": "mcp_call",
        "user_id": "alice@example.com",
        "session_id": "sess-0001",
        "correlation_id": "req-000042",
        "server_id": "helix-mcp",
        "tool": "helix_create_ticket",
        "shard": "itsm-eu",
        "action_category": "WRITE",
        "resource": "helix:INC0001",
        "args_summary": {"summary": "printer on fire", "priority": 2, "tags": ["hw"]},
        "details": {"attempt": 3, "upstream": {"host": "helix.example.com"}},
        "status": "error",
        "latency_ms": 1234,
        "response_size": 2000,
        "filtered_size": 500,
        "reduction_percent": 75,
        "error_type": "UpstreamTimeout",
        "error_message": "helix did not answer within 30s",
        "mock_mode": true,
    });
    for (key, want) in expected.as_object().expect("object") {
        assert_eq!(&r[key], want, "field {key}");
    }
    assert!(r["event_id"].is_string());
    assert_eq!(mode_of(&log), 0o600);

    let out = ok(cli(&log).args(["append", "--tool", "ad_get_user"]));
    let stored = lines(&log);
    assert_eq!(
        parse(out.trim_ascii_end()),
        json!({"seq": 1, "hash": sha256_hex(&stored[1])})
    );
    assert_eq!(parse(&stored[1])["prev_hash"], sha256_hex(&stored[0]));
}

#[test]
fn append_fills_ids_times_schema_source_and_infers_shard_category_resource() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let cases = [
        ("ad_get_user", "identity", "READ"),
        ("entra_list_groups", "identity", "READ"),
        ("workday_get_worker", "workday", "READ"),
        ("helix_create_ticket", "itsm", "READ"),
        ("lansweeper_find_asset", "assets", "READ"),
        ("intune_list_devices", "assets", "READ"),
        ("fedex_track_shipment", "logistics", "READ"),
        ("audit_log_stats", "audit", "AUDIT"),
        ("generate_compliance_report", "audit", "REPORT"),
        ("slack_post_message", "unknown", "READ"),
    ];
    let before = Utc::now() - chrono::Duration::seconds(1);
    for (tool, _, _) in cases {
        ok(cli(&log).args([
            "append",
            "--tool",
            tool,
            "--server",
            "srv-1",
            "--response-size",
            "0",
            "--filtered-size",
            "0",
            "--durability",
            "none",
        ]));
    }
    let after = Utc::now() + chrono::Duration::seconds(1);
    let uuid_v4 =
        regex::Regex::new("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            .expect("regex");
    let micros =
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$").expect("regex");
    let mut ids = HashSet::new();
    let stored = records(&log);
    assert_eq!(stored.len(), cases.len());
    for (r, (tool, shard, category)) in stored.iter().zip(cases) {
        let id = str_of(r, "event_id");
        assert!(uuid_v4.is_match(id), "{id}");
        assert!(ids.insert(id.to_owned()), "event_id {id} repeated");
        let ts = str_of(r, "timestamp");
        assert!(micros.is_match(ts), "{ts}");
        let t = chrono::DateTime::parse_from_rfc3339(ts)
            .expect("RFC 3339")
            .with_timezone(&Utc);
        assert!(before <= t && t <= after, "{ts} is not now");
        assert_eq!(r["schema_version"], "1");
        assert_eq!(r["source"], "nexus-mcp");
        assert_eq!(r["action"], "mcp_call");
        assert_eq!(r["shard"], shard, "{tool}");
        assert_eq!(r["action_category"], category, "{tool}");
        assert_eq!(r["resource"], format!("srv-1:{tool}"));
        assert_eq!(r["response_size"], 0);
        assert!(
            r.get("reduction_percent").is_none(),
            "no percentage of 0 bytes"
        );
    }
    assert_eq!(verify_json(&log).0, 0);
}

#[test]
fn append_json_keeps_its_fields_and_flags_fill_only_the_missing_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let event = json!({
        "tool": "workday_get_worker",
        "user_id": "dave@example.com",
        "timestamp": "2026-11-01T08:00:00Z",
        "response_size": 1000,
        "filtered_size": 333,
        "team": "blue",
        "seq": 99,
        "prev_hash": "f".repeat(64),
    });
    ok(cli(&log).args([
        "append",
        "--json",
        &event.to_string(),
        "--user",
        "ignored@example.com",
        "--status",
        "success",
        "--server",
        "workday-mcp",
    ]));
    let r = &records(&log)[0];
    assert_eq!(r["seq"], 0, "the writer sets seq itself");
    assert_eq!(r["prev_hash"], "0".repeat(64));
    assert_eq!(r["user_id"], "dave@example.com");
    assert_eq!(r["status"], "success");
    assert_eq!(r["server_id"], "workday-mcp");
    assert_eq!(r["resource"], "workday-mcp:workday_get_worker");
    assert_eq!(r["timestamp"], "2026-11-01T08:00:00.000000Z");
    assert_eq!(r["reduction_percent"], 67);
    assert_eq!(r["team"], "blue");
    assert_eq!(r["action"], "mcp_call");
}

#[test]
fn append_stdin_appends_every_line_skips_blank_ones_and_uses_flags_as_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 2);
    let input = concat!(
        r#"{"tool":"workday_get_worker","user_id":"bob@example.com","latency_ms":10}"#,
        "\n\n   \n",
        r#"{"tool":"audit_log_stats","status":"error","error_type":"Denied"}"#,
        "\n",
        r#"{"tool":"fedex_track_shipment","server_id":"own-mcp"}"#,
        "\n\n",
    );
    let out = ok(cli(&log)
        .args([
            "append",
            "--stdin",
            "--user",
            "carol@example.com",
            "--server",
            "default-mcp",
            "--status",
            "success",
        ])
        .write_stdin(input));
    let stored = lines(&log);
    assert_eq!(stored.len(), 5);
    assert_eq!(
        parse(out.trim_ascii_end()),
        json!({"appended": 3, "first_seq": 2, "last_seq": 4, "head_hash": sha256_hex(&stored[4])})
    );
    let r: Vec<Value> = stored[2..].iter().map(|l| parse(l)).collect();
    assert_eq!(r[0]["user_id"], "bob@example.com");
    assert_eq!(r[0]["server_id"], "default-mcp");
    assert_eq!(r[0]["status"], "success");
    assert_eq!(r[0]["latency_ms"], 10);
    assert_eq!(r[1]["user_id"], "carol@example.com");
    assert_eq!(r[1]["status"], "error");
    assert_eq!(r[1]["action_category"], "AUDIT");
    assert_eq!(r[2]["server_id"], "own-mcp");
    assert_eq!(r[2]["resource"], "own-mcp:fedex_track_shipment");
    for (i, pair) in stored.windows(2).enumerate() {
        assert_eq!(
            parse(&pair[1])["prev_hash"],
            sha256_hex(&pair[0]),
            "link {i}"
        );
        assert_eq!(parse(&pair[1])["seq"], i + 1);
    }
    assert_eq!(verify_json(&log).0, 0);
}

#[test]
fn append_stdin_rejects_a_line_that_is_not_an_object_naming_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let err = fails_with(
        cli(&log)
            .args(["append", "--stdin"])
            .write_stdin("{\"tool\":\"a\"}\n[1,2]\n"),
        2,
    );
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn append_prints_exact_receipts_under_every_durability() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    for (i, durability) in ["sync", "buffered", "none"].into_iter().enumerate() {
        let out = ok(cli(&log).args([
            "append",
            "--tool",
            "ad_get_user",
            "--durability",
            durability,
        ]));
        let stored = lines(&log);
        assert_eq!(
            parse(out.trim_ascii_end()),
            json!({"seq": i, "hash": sha256_hex(&stored[i])}),
            "{durability}"
        );
    }
    for durability in ["sync", "buffered", "none"] {
        let out = ok(cli(&log)
            .args([
                "append",
                "--stdin",
                "--batch",
                "2",
                "--durability",
                durability,
            ])
            .write_stdin("{\"tool\":\"a\"}\n{\"tool\":\"b\"}\n{\"tool\":\"c\"}\n"));
        let stored = lines(&log);
        let n = stored.len();
        assert_eq!(
            parse(out.trim_ascii_end()),
            json!({"appended": 3, "first_seq": n - 3, "last_seq": n - 1, "head_hash": sha256_hex(&stored[n - 1])}),
            "{durability}"
        );
    }
    assert_eq!(verify_json(&log).0, 0);
}

#[test]
fn nexus_audit_file_names_the_log_when_file_is_absent_and_audit_jsonl_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("from-env.jsonl");
    let bare = || {
        let mut cmd = assert_cmd::Command::new(BIN);
        cmd.current_dir(dir.path())
            .env_remove("NEXUS_AUDIT_FILE")
            .env_remove("NEXUS_AUDIT_SOURCE")
            .env_remove("NO_COLOR");
        cmd
    };
    ok(bare()
        .env("NEXUS_AUDIT_FILE", &log)
        .args(["append", "--tool", "ad_get_user"]));
    assert_eq!(lines(&log).len(), 1);
    assert_eq!(mode_of(&log), 0o600);
    assert!(!dir.path().join("audit.jsonl").exists());
    let out = ok(bare().env("NEXUS_AUDIT_FILE", &log).args(["tail"]));
    assert_eq!(out, jsonl(&lines(&log)));

    ok(bare().args(["append", "--tool", "ad_get_user"]));
    let default = dir.path().join("audit.jsonl");
    assert_eq!(lines(&default).len(), 1);
    assert_eq!(mode_of(&default), 0o600);
}

// --- tail ---------------------------------------------------------------------------------

#[test]
fn tail_prints_the_last_n_records_oldest_first_and_ten_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 100);
    let stored = lines(&log);
    assert_eq!(
        ok(cli(&log).args(["tail", "-n", "5"])),
        jsonl(&stored[95..])
    );
    assert_eq!(ok(cli(&log).args(["tail"])), jsonl(&stored[90..]));
    assert_eq!(
        ok(cli(&log).args(["tail", "--lines", "1000"])),
        jsonl(&stored)
    );
    assert!(ok(cli(&log).args(["tail", "-n", "0"])).is_empty());
}

#[test]
fn tail_applies_filters_before_taking_the_last_n() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 200);
    let stored = lines(&log);
    let errors: Vec<Vec<u8>> = stored
        .iter()
        .filter(|l| parse(l)["status"] == "error")
        .cloned()
        .collect();
    assert!(errors.len() > 3);
    assert_eq!(
        ok(cli(&log).args(["tail", "-n", "3", "--status", "error"])),
        jsonl(&errors[errors.len() - 3..])
    );
    let bob_identity: Vec<Vec<u8>> = stored
        .iter()
        .filter(|l| {
            let r = parse(l);
            r["user_id"] == "bob@example.com" && r["shard"] == "identity"
        })
        .cloned()
        .collect();
    assert!(!bob_identity.is_empty());
    assert_eq!(
        ok(cli(&log).args([
            "tail",
            "-n",
            "1000",
            "--user",
            "bob@example.com",
            "--shard",
            "identity"
        ])),
        jsonl(&bob_identity)
    );
}

#[test]
fn tail_follow_prints_records_appended_after_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 5);
    let (_child, rx) = spawn_follow(&log);
    assert_eq!(receive(&rx, 2), text_lines(&log)[3..]);
    for tool in ["ad_get_user", "helix_create_ticket", "fedex_track_shipment"] {
        ok(cli(&log).args(["append", "--tool", tool, "--durability", "none"]));
    }
    let got = receive(&rx, 3);
    assert_eq!(got, text_lines(&log)[5..]);
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "nothing more"
    );
}

#[test]
fn tail_follow_moves_to_the_new_file_after_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 3);
    let (_child, rx) = spawn_follow(&log);
    assert_eq!(receive(&rx, 2).len(), 2);
    ok(cli(&log).args(["append", "--tool", "ad_get_user", "--durability", "none"]));
    assert_eq!(receive(&rx, 1), text_lines(&log)[3..]);

    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    for tool in ["workday_get_worker", "intune_list_devices"] {
        ok(cli(&log).args(["append", "--tool", tool, "--durability", "none"]));
    }
    let got = receive(&rx, 2);
    assert_eq!(got, text_lines(&log));
    assert_eq!(parse(got[0].as_bytes())["tool"], "workday_get_worker");
    assert_eq!(lines(&rotated).len(), 4, "the old file is left as it was");
}

// --- query --------------------------------------------------------------------------------

#[test]
fn query_prints_newest_first_fifty_by_default_with_asc_limit_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 120);
    let stored = lines(&log);
    let newest: Vec<Vec<u8>> = stored.iter().rev().cloned().collect();
    assert_eq!(ok(cli(&log).arg("query")), jsonl(&newest[..50]));
    assert_eq!(
        ok(cli(&log).args(["query", "--limit", "5", "--offset", "3"])),
        jsonl(&newest[3..8])
    );
    assert_eq!(
        ok(cli(&log).args(["query", "--asc", "--limit", "5", "--offset", "10"])),
        jsonl(&stored[10..15])
    );
    assert_eq!(
        ok(cli(&log).args(["query", "--limit", "0"])),
        jsonl(&newest)
    );
    assert_eq!(
        ok(cli(&log).args(["query", "--limit", "0", "--asc"])),
        jsonl(&stored)
    );
    assert!(ok(cli(&log).args(["query", "--offset", "500"])).is_empty());
}

#[test]
fn query_applies_every_filter_flag() {
    type Pred = fn(&Value) -> bool;
    let (_dir, log) = mixed_log(300);
    let stored = lines(&log);
    let cases: &[(&[&str], Pred)] = &[
        (&["--user", "bob@example.com"], |r| {
            r["user_id"] == "bob@example.com"
        }),
        (&["--user", "svc-*"], |r| {
            str_of(r, "user_id").starts_with("svc-")
        }),
        (&["--server", "identity-mcp"], |r| {
            r["server_id"] == "identity-mcp"
        }),
        (&["--tool", "workday_get_worker"], |r| {
            r["tool"] == "workday_get_worker"
        }),
        (&["--tool", "entra_*"], |r| {
            str_of(r, "tool").starts_with("entra_")
        }),
        (&["--tool", "workday"], |_| false),
        (&["--action", "server_start"], |r| {
            r["action"] == "server_start"
        }),
        (&["--action", "server_*"], |r| {
            str_of(r, "action").starts_with("server_")
        }),
        (&["--status", "error"], |r| r["status"] == "error"),
        (&["--status", "success"], |r| r["status"] == "success"),
        (&["--shard", "identity"], |r| r["shard"] == "identity"),
        (&["--shard", "assets"], |r| r["shard"] == "assets"),
        (&["--category", "AUDIT"], |r| {
            r["action_category"] == "AUDIT"
        }),
        (&["--category", "REPORT"], |r| {
            r["action_category"] == "REPORT"
        }),
        (&["--session", "sess-0002"], |r| {
            r["session_id"] == "sess-0002"
        }),
        (&["--user", "alice@example.com", "--status", "error"], |r| {
            r["user_id"] == "alice@example.com" && r["status"] == "error"
        }),
        (&["--server", "nexus-core", "--category", "READ"], |_| false),
        (&["--user", "nobody"], |_| false),
    ];
    for (flags, pred) in cases {
        let want: Vec<Vec<u8>> = stored.iter().filter(|l| pred(&parse(l))).cloned().collect();
        let got = ok(cli(&log)
            .args(["query", "--asc", "--limit", "0"])
            .args(*flags));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&jsonl(&want)),
            "{flags:?}"
        );
        if !want.is_empty() && flags.len() == 2 && flags[1] != "svc-*" {
            assert!(want.len() < stored.len(), "{flags:?} filters nothing out");
        }
    }
}

#[test]
fn query_since_and_until_read_rfc3339_dates_and_spans_back_from_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let relative = [
        ("t_30s", 30),
        ("t_5m", 300),
        ("t_30m", 1800),
        ("t_2h", 7200),
        ("t_12h", 43_200),
        ("t_3d", 3 * 86_400),
        ("t_10d", 10 * 86_400),
        ("t_20d", 20 * 86_400),
    ];
    let absolute = [
        ("t_mar01_noon", "2025-03-01T12:00:00Z"),
        ("t_mar02_midnight", "2025-03-02T00:00:00Z"),
        ("t_mar02_0830", "2025-03-02T08:30:00Z"),
        ("t_mar02_last", "2025-03-02T23:59:59.999999Z"),
    ];
    let mut events: Vec<Value> = absolute
        .iter()
        .map(|(tool, ts)| json!({"tool": tool, "timestamp": ts}))
        .collect();
    events.extend(
        relative
            .iter()
            .rev()
            .map(|(tool, secs)| json!({"tool": tool, "timestamp": ago(*secs)})),
    );
    append_stdin(&log, &events);
    let tools = |flags: &[&str]| -> Vec<String> {
        let out = ok(cli(&log)
            .args(["query", "--asc", "--limit", "0"])
            .args(flags));
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| str_of(&parse(l), "tool").to_owned())
            .collect()
    };
    let all_relative = |upto: usize| -> Vec<String> {
        relative[..upto]
            .iter()
            .rev()
            .map(|(t, _)| (*t).to_owned())
            .collect()
    };
    assert_eq!(tools(&["--since", "90s"]), all_relative(1));
    assert_eq!(tools(&["--since", "15m"]), all_relative(2));
    assert_eq!(tools(&["--since", "1h"]), all_relative(3));
    assert_eq!(tools(&["--since", "24h"]), all_relative(5));
    assert_eq!(tools(&["--since", "7d"]), all_relative(6));
    assert_eq!(tools(&["--since", "2w"]), all_relative(7));
    assert_eq!(
        tools(&["--since", "24h", "--until", "15m"]),
        ["t_12h", "t_2h", "t_30m"]
    );
    assert_eq!(
        tools(&["--since", "2025-03-02", "--until", "2025-03-03"]),
        ["t_mar02_midnight", "t_mar02_0830", "t_mar02_last"]
    );
    assert_eq!(
        tools(&["--until", "2025-03-02T00:00:00Z"]),
        ["t_mar01_noon"],
        "until is exclusive"
    );
    assert_eq!(
        tools(&[
            "--since",
            "2025-03-02T00:00:00Z",
            "--until",
            "2025-03-02T08:30:00.000001Z"
        ]),
        ["t_mar02_midnight", "t_mar02_0830"],
        "since is inclusive"
    );
    assert_eq!(
        tools(&[
            "--since",
            "2025-03-02T08:30:00+02:00",
            "--until",
            "2025-03-10"
        ]),
        ["t_mar02_0830", "t_mar02_last"],
        "an offset is honoured"
    );
    let err = fails_with(cli(&log).args(["query", "--since", "yesterday"]), 2);
    assert!(err.contains("cannot read the time"), "{err}");
}

// --- stats --------------------------------------------------------------------------------

fn count_by(records: &[Value], key: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(str_of(r, key).to_owned()).or_insert(0) += 1;
    }
    m
}

fn as_counts(v: &Value) -> BTreeMap<String, u64> {
    serde_json::from_value(v.clone()).expect("a map of counts")
}

fn is_error(r: &Value) -> bool {
    r["status"] == "error"
}

/// The stats SPEC §7 asks for, computed here from the records themselves.
fn expected_stats(records: &[Value]) -> Value {
    let mut tools: Vec<(String, u64)> = count_by(records, "tool").into_iter().collect();
    tools.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    tools.truncate(10);
    let errors: Vec<&Value> = records.iter().filter(|r| is_error(r)).collect();
    let errors_vec: Vec<Value> = errors.iter().map(|r| (*r).clone()).collect();
    let recent: Vec<Value> = errors[errors.len().saturating_sub(10)..]
        .iter()
        .map(|r| {
            json!({
                "timestamp": r["timestamp"],
                "tool": r["tool"],
                "error_type": r["error_type"],
                "error_message": r["error_message"],
            })
        })
        .collect();
    let mut lat: Vec<u64> = records
        .iter()
        .filter_map(|r| r["latency_ms"].as_u64())
        .collect();
    lat.sort_unstable();
    let rank = |p: usize| lat[(p * lat.len()).div_ceil(100).max(1) - 1];
    let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64;
    json!({
        "total_entries": records.len(),
        "status_breakdown": count_by(records, "status"),
        "shard_breakdown": count_by(records, "shard"),
        "action_category_breakdown": count_by(records, "action_category"),
        "top_10_tools": tools,
        "error_count": errors.len(),
        "recent_errors": recent,
        "mock_mode_calls": records.iter().filter(|r| r["mock_mode"] == true).count(),
        "first_timestamp": records.first().map(|r| r["timestamp"].clone()),
        "last_timestamp": records.last().map(|r| r["timestamp"].clone()),
        "latency_ms": {
            "count": lat.len(),
            "min": lat.first(),
            "p50": rank(50),
            "p90": rank(90),
            "p95": rank(95),
            "p99": rank(99),
            "max": lat.last(),
            "mean": mean,
        },
        "by_user": count_by(records, "user_id"),
        "by_server": count_by(records, "server_id"),
        "by_action": count_by(records, "action"),
        "errors_by_tool": count_by(&errors_vec, "tool"),
    })
}

fn assert_stats_match(got: &Value, want: &Value, what: &str) {
    for (key, want) in want.as_object().expect("object") {
        let got = &got[key];
        if key == "latency_ms" {
            for (k, w) in want.as_object().expect("object") {
                if k == "mean" {
                    let (g, w) = (got[k].as_f64(), w.as_f64().expect("mean"));
                    let g = g.unwrap_or_else(|| panic!("{what}: no mean"));
                    assert!((g - w).abs() < 0.001, "{what}: mean {g} != {w}");
                } else {
                    assert_eq!(&got[k], w, "{what}: latency_ms.{k}");
                }
            }
        } else if want.is_object() {
            assert_eq!(as_counts(got), as_counts(want), "{what}: {key}");
        } else {
            assert_eq!(got, want, "{what}: {key}");
        }
    }
}

fn stats_json(log: &Path, flags: &[&str]) -> Value {
    let out = ok(cli(log).args(["stats", "--output", "json"]).args(flags));
    serde_json::from_slice(&out).expect("stats prints JSON")
}

#[test]
fn stats_json_has_every_key_with_counts_that_match_the_file() {
    let (_dir, log) = mixed_log(1000);
    let all = records(&log);
    let got = stats_json(&log, &[]);
    for key in [
        "total_entries",
        "status_breakdown",
        "shard_breakdown",
        "action_category_breakdown",
        "top_10_tools",
        "error_count",
        "recent_errors",
        "mock_mode_calls",
        "first_timestamp",
        "last_timestamp",
        "latency_ms",
        "by_user",
        "by_server",
        "by_action",
        "errors_by_tool",
    ] {
        assert!(got.get(key).is_some(), "key {key} missing");
    }
    assert!(
        got.get("timeline").is_none(),
        "no timeline without --interval"
    );
    assert_eq!(got["recent_errors"].as_array().map(Vec::len), Some(10));
    assert_eq!(got["mock_mode_calls"], 2);
    assert_eq!(got["latency_ms"]["max"], 12_345);
    let tools = got["top_10_tools"].as_array().expect("array");
    assert!(
        tools
            .iter()
            .all(|t| t.as_array().is_some_and(|p| p.len() == 2))
    );
    assert_stats_match(&got, &expected_stats(&all), "all records");
}

#[test]
fn stats_latency_percentiles_are_exact_nearest_rank_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    // 1..=20 and 5000, 9000: p50 is the 11th value, p90 the 20th, p95 and p99 the 21st and 22nd.
    let mut events: Vec<Event> = (1..=20u64)
        .map(|l| Event::new("mcp_call").tool("ad_get_user").latency_ms(l))
        .collect();
    events.push(Event::new("mcp_call").tool("ad_get_user").latency_ms(9000));
    events.push(Event::new("mcp_call").tool("ad_get_user").latency_ms(5000));
    events.push(Event::new("server_start"));
    append_events(&log, events);
    let l = &stats_json(&log, &[])["latency_ms"];
    assert_eq!(l["count"], 22);
    assert_eq!((&l["min"], &l["max"]), (&json!(1), &json!(9000)));
    assert_eq!(
        (&l["p50"], &l["p90"], &l["p95"], &l["p99"]),
        (&json!(11), &json!(20), &json!(5000), &json!(9000))
    );
    let mean = l["mean"].as_f64().expect("mean");
    assert!((mean - 14_210.0 / 22.0).abs() < 0.001, "{mean}");
    assert_stats_match(
        &stats_json(&log, &[]),
        &expected_stats(&records(&log)),
        "latency",
    );
}

#[test]
fn stats_top_10_tools_sorts_by_count_then_name_and_keeps_ten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let counts = [
        ("k_tool", 1),
        ("b_tool", 3),
        ("l_tool", 2),
        ("a_tool", 1),
        ("c_tool", 3),
        ("j_tool", 2),
        ("d_tool", 1),
        ("e_tool", 4),
        ("f_tool", 1),
        ("g_tool", 2),
        ("h_tool", 1),
        ("i_tool", 1),
    ];
    let mut events = Vec::new();
    for round in 0..4 {
        for (tool, n) in counts {
            if round < n {
                events.push(Event::new("mcp_call").tool(tool).status_success());
            }
        }
    }
    append_events(&log, events);
    assert_eq!(
        stats_json(&log, &[])["top_10_tools"],
        json!([
            ["e_tool", 4],
            ["b_tool", 3],
            ["c_tool", 3],
            ["g_tool", 2],
            ["j_tool", 2],
            ["l_tool", 2],
            ["a_tool", 1],
            ["d_tool", 1],
            ["f_tool", 1],
            ["h_tool", 1],
        ])
    );
}

#[test]
fn stats_last_n_and_filters_restrict_the_records_counted() {
    let (_dir, log) = mixed_log(600);
    let all = records(&log);
    let got = stats_json(&log, &["--last", "100"]);
    assert_eq!(got["total_entries"], 100);
    assert_stats_match(&got, &expected_stats(&all[all.len() - 100..]), "--last 100");

    let alice: Vec<Value> = all
        .iter()
        .filter(|r| r["user_id"] == "alice@example.com")
        .cloned()
        .collect();
    let got = stats_json(&log, &["--user", "alice@example.com"]);
    assert_stats_match(&got, &expected_stats(&alice), "--user");

    let identity_errors: Vec<Value> = all
        .iter()
        .filter(|r| r["shard"] == "identity" && is_error(r))
        .cloned()
        .collect();
    let got = stats_json(&log, &["--shard", "identity", "--status", "error"]);
    assert_stats_match(&got, &expected_stats(&identity_errors), "--shard --status");

    let last_errors: Vec<Value> = all[all.len() - 200..]
        .iter()
        .filter(|r| is_error(r))
        .cloned()
        .collect();
    let got = stats_json(&log, &["--last", "200", "--status", "error"]);
    assert_stats_match(&got, &expected_stats(&last_errors), "--last with a filter");
}

#[test]
fn stats_interval_adds_a_timeline_of_counts_and_errors_per_bucket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let at =
        |ts: &str, status: &str| json!({"tool": "ad_get_user", "timestamp": ts, "status": status});
    append_stdin(
        &log,
        &[
            at("2026-11-16T09:10:00Z", "success"), // Monday
            at("2026-11-16T09:50:00Z", "success"),
            at("2026-11-16T10:05:00Z", "error"),
            at("2026-11-22T23:59:59Z", "error"),   // Sunday
            at("2026-11-23T00:00:00Z", "success"), // the next Monday
        ],
    );
    let timeline = |interval: &str| stats_json(&log, &["--interval", interval])["timeline"].clone();
    let b = |bucket: &str, count: u64, errors: u64| json!({"bucket": bucket, "count": count, "errors": errors});
    assert_eq!(
        timeline("hour"),
        json!([
            b("2026-11-16T09:00:00Z", 2, 0),
            b("2026-11-16T10:00:00Z", 1, 1),
            b("2026-11-22T23:00:00Z", 1, 1),
            b("2026-11-23T00:00:00Z", 1, 0),
        ])
    );
    assert_eq!(
        timeline("day"),
        json!([
            b("2026-11-16", 3, 1),
            b("2026-11-22", 1, 1),
            b("2026-11-23", 1, 0)
        ])
    );
    assert_eq!(
        timeline("week"),
        json!([b("2026-11-16", 4, 2), b("2026-11-23", 1, 0)])
    );
    fails_with(cli(&log).args(["stats", "--interval", "month"]), 2);
}

#[test]
fn stats_table_and_yaml_outputs_carry_the_same_numbers() {
    let (_dir, log) = mixed_log(200);
    let json = stats_json(&log, &[]);
    let table = ok_text(cli(&log).args(["stats", "--output", "table"]));
    assert!(table.starts_with(&format!("Records: {}\n", 203)), "{table}");
    assert!(
        table.contains(&format!("Errors:  {}", json["error_count"])),
        "{table}"
    );
    assert!(!table.contains('\x1b'));
    let yaml: Value =
        serde_yaml::from_slice(&ok(cli(&log).args(["stats", "--output", "yaml"]))).expect("YAML");
    assert_eq!(yaml, json);
}

// --- verify -------------------------------------------------------------------------------

#[test]
fn verify_of_a_clean_log_exits_zero_with_a_one_line_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 1000);
    let stored = lines(&log);
    let head = sha256_hex(&stored[999]);
    let text = ok_text(cli(&log).args(["verify", "--output", "table"]));
    assert!(
        text.starts_with(&format!(
            "OK: 1,000 records, seq 0..999, head {}",
            &head[..16]
        )),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);

    let (code, report) = verify_json(&log);
    assert_eq!(code, 0);
    let first = parse(&stored[0]);
    let last = parse(&stored[999]);
    let expected = json!({
        "ok": true,
        "file": log.display().to_string(),
        "records": 1000,
        "bytes": std::fs::metadata(&log).expect("stat").len(),
        "first_seq": 0,
        "last_seq": 999,
        "first_timestamp": first["timestamp"],
        "last_timestamp": last["timestamp"],
        "head_hash": head,
        "problems": [],
    });
    for (key, want) in expected.as_object().expect("object") {
        assert_eq!(&report[key], want, "{key}");
    }
}

#[test]
fn verify_exits_one_when_a_line_was_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 50);
    let mut stored = lines(&log);
    let text = String::from_utf8(stored[20].clone()).expect("UTF-8");
    stored[20] = text
        .replacen("\"latency_ms\":", "\"latency_ms\":1", 1)
        .into_bytes();
    common::write_lines(&log, &stored);
    let out = cli(&log)
        .args(["verify", "--output", "table"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILED"), "{text}");
    let (code, report) = verify_json(&log);
    assert_eq!(code, 1);
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"][0]["kind"], "hash_mismatch");
    assert_eq!(
        report["problems"][0]["line"], 21,
        "the changed line is named"
    );
}

// --- export -------------------------------------------------------------------------------

/// A log with an extra top-level field, mock mode and a nested argument object.
fn export_log() -> (TempDir, PathBuf) {
    let (dir, log) = mixed_log(40);
    append_stdin(
        &log,
        &[json!({
            "tool": "helix_create_ticket",
            "team": "blue",
            "args_summary": {"summary": "a \"quoted\", comma", "nested": {"n": [1, 2]}},
            "error_message": "line one\nline two",
            "status": "error",
        })],
    );
    (dir, log)
}

#[test]
fn export_jsonl_is_byte_identical_to_the_matching_stored_lines() {
    let (_dir, log) = export_log();
    let bytes = std::fs::read(&log).expect("read");
    assert_eq!(ok(cli(&log).arg("export")), bytes);
    assert_eq!(ok(cli(&log).args(["export", "--format", "jsonl"])), bytes);
    let errors: Vec<Vec<u8>> = lines(&log)
        .into_iter()
        .filter(|l| parse(l)["status"] == "error")
        .collect();
    assert_eq!(
        ok(cli(&log).args(["export", "--format", "jsonl", "--status", "error"])),
        jsonl(&errors)
    );
}

#[test]
fn export_json_is_one_array_of_the_records() {
    let (_dir, log) = export_log();
    let out = ok(cli(&log).args(["export", "--format", "json"]));
    let got: Value = serde_json::from_slice(&out).expect("one JSON document");
    assert_eq!(got, Value::Array(records(&log)));
    let none = ok(cli(&log).args(["export", "--format", "json", "--user", "nobody"]));
    assert_eq!(
        serde_json::from_slice::<Value>(&none).expect("JSON"),
        json!([])
    );
}

/// Parses CSV output and checks each row against the records, field by field.
fn assert_csv_matches(csv_bytes: &[u8], want: &[Value]) {
    let mut reader = csv::Reader::from_reader(csv_bytes);
    let headers: Vec<String> = reader
        .headers()
        .expect("header row")
        .iter()
        .map(str::to_owned)
        .collect();
    let mut expected_headers: Vec<String> = nexus_audit::FIELD_ORDER
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    expected_headers.push("extra".to_owned());
    assert_eq!(headers, expected_headers);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), want.len());
    for (row, record) in rows.iter().zip(want) {
        let mut extra = record.as_object().expect("object").clone();
        for (h, cell) in headers.iter().zip(row.iter()) {
            if h == "extra" {
                continue;
            }
            let value = extra.shift_remove(h).unwrap_or(Value::Null);
            match &value {
                Value::Null => assert_eq!(cell, "", "{h}"),
                Value::String(s) => assert_eq!(cell, s, "{h}"),
                Value::Object(_) | Value::Array(_) => {
                    let back: Value = serde_json::from_str(cell).expect("nested JSON text");
                    assert_eq!(back, value, "{h}");
                }
                other => assert_eq!(cell, other.to_string(), "{h}"),
            }
        }
        let extra_cell = &row[headers.len() - 1];
        if extra.is_empty() {
            assert_eq!(extra_cell, "");
        } else {
            let back: Value = serde_json::from_str(extra_cell).expect("extra as JSON text");
            assert_eq!(back, Value::Object(extra));
        }
    }
}

#[test]
fn export_csv_has_a_header_and_nested_values_as_json_text() {
    let (_dir, log) = export_log();
    let all = records(&log);
    let out = ok(cli(&log).args(["export", "--format", "csv"]));
    assert_csv_matches(&out, &all);
    let last = all.last().expect("records");
    assert_eq!(last["team"], "blue");
    assert_eq!(last["error_message"], "line one\nline two");
    let errors: Vec<Value> = all.iter().filter(|r| is_error(r)).cloned().collect();
    let out = ok(cli(&log).args(["export", "--format", "csv", "--status", "error"]));
    assert_csv_matches(&out, &errors);
}

#[test]
fn export_to_a_file_creates_it_with_mode_0600_and_prints_nothing() {
    let (dir, log) = export_log();
    let target = dir.path().join("out.jsonl");
    let out = ok(cli(&log).args(["export", "-o"]).arg(&target));
    assert!(out.is_empty());
    assert_eq!(
        std::fs::read(&target).expect("read"),
        std::fs::read(&log).expect("read")
    );
    assert_eq!(mode_of(&target), 0o600);
    let csv_target = dir.path().join("out.csv");
    ok(cli(&log)
        .args(["export", "--format", "csv", "--out"])
        .arg(&csv_target));
    assert_csv_matches(&std::fs::read(&csv_target).expect("read"), &records(&log));
    assert_eq!(mode_of(&csv_target), 0o600);
}

#[test]
fn export_refuses_the_log_and_replaces_an_existing_file_only_with_force() {
    let (dir, log) = export_log();
    let before = std::fs::read(&log).expect("read");
    let err = fails_with(cli(&log).args(["export", "-o"]).arg(&log), 2);
    assert!(err.contains("it is the log"), "{err}");
    let err = fails_with(cli(&log).args(["export", "--force", "-o"]).arg(&log), 2);
    assert!(err.contains("it is the log"), "{err}");
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&log, &link).expect("symlink");
    fails_with(cli(&log).args(["export", "--force", "-o"]).arg(&link), 2);
    assert_eq!(
        std::fs::read(&log).expect("read"),
        before,
        "the log is untouched"
    );

    let target = dir.path().join("shared.jsonl");
    let old = "old contents that are longer than nothing\n";
    std::fs::write(&target, old).expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = fails_with(cli(&log).args(["export", "-o"]).arg(&target), 2);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).expect("read"), old);
    assert_eq!(mode_of(&target), 0o644, "a refused file keeps its mode");
    ok(cli(&log)
        .args(["export", "--status", "error", "--force", "-o"])
        .arg(&target));
    assert_eq!(
        mode_of(&target),
        0o600,
        "the replacement is a new private file"
    );
    let errors: Vec<Vec<u8>> = lines(&log)
        .into_iter()
        .filter(|l| parse(l)["status"] == "error")
        .collect();
    assert_eq!(std::fs::read(&target).expect("read"), jsonl(&errors));
}

// --- output formats -----------------------------------------------------------------------

#[test]
fn output_json_and_yaml_parse_back_to_the_records_for_tail_and_query() {
    let (_dir, log) = export_log();
    append_stdin(
        &log,
        &[json!({
            "tool": "ad_get_user",
            "user_id": "quote \" backslash \\ tab \t colon: dash - #hash",
            "no": true,
            "on": "off",
            "key with space": [null, 1.5, {"yes": "no"}, []],
            "details": {},
            "y": "null",
        })],
    );
    let all = records(&log);
    let newest: Vec<Value> = all.iter().rev().cloned().collect();
    let query_json = ok(cli(&log).args(["query", "--limit", "0", "--output", "json"]));
    let got: Value = serde_json::from_slice(&query_json).expect("JSON");
    assert_eq!(got, Value::Array(newest.clone()));
    let tail_json = ok(cli(&log).args(["tail", "-n", "5", "--output", "json"]));
    let got: Value = serde_json::from_slice(&tail_json).expect("JSON");
    assert_eq!(got, Value::Array(all[all.len() - 5..].to_vec()));

    let yaml = ok(cli(&log).args(["query", "--limit", "0", "--output", "yaml"]));
    let got: Value = serde_yaml::from_slice(&yaml).expect("YAML");
    assert_eq!(got, Value::Array(newest));
    let yaml = ok(cli(&log).args(["tail", "-n", "3", "--output", "yaml"]));
    let got: Value = serde_yaml::from_slice(&yaml).expect("YAML");
    assert_eq!(got, Value::Array(all[all.len() - 3..].to_vec()));

    for format in ["json", "yaml"] {
        let out = ok(cli(&log).args(["query", "--user", "nobody", "--output", format]));
        let got: Value = serde_yaml::from_slice(&out).expect("JSON is YAML too");
        assert_eq!(got, json!([]), "{format}");
    }
}

#[test]
fn output_csv_for_tail_and_query_parses_back_to_the_records() {
    let (_dir, log) = export_log();
    let all = records(&log);
    let out = ok(cli(&log).args(["tail", "-n", "7", "--output", "csv"]));
    assert_csv_matches(&out, &all[all.len() - 7..]);
    let out = ok(cli(&log).args(["query", "--limit", "4", "--asc", "--output", "csv"]));
    assert_csv_matches(&out, &all[..4]);
}

#[test]
fn default_output_is_jsonl_when_stdout_is_not_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 30);
    let stored = lines(&log);
    let rev: Vec<Vec<u8>> = stored.iter().rev().cloned().collect();
    assert_eq!(
        ok(cli(&log).args(["tail", "-n", "4"])),
        jsonl(&stored[26..])
    );
    assert_eq!(
        ok(cli(&log).args(["tail", "-n", "4", "--output", "jsonl"])),
        jsonl(&stored[26..])
    );
    assert_eq!(
        ok(cli(&log).args(["query", "--limit", "4"])),
        jsonl(&rev[..4])
    );
}

/// Character offsets where each header word starts.
fn column_starts(header: &str) -> Vec<usize> {
    let chars: Vec<char> = header.chars().collect();
    (0..chars.len())
        .filter(|&i| chars[i] != ' ' && (i == 0 || chars[i - 1] == ' '))
        .collect()
}

#[test]
fn table_output_has_a_header_and_aligned_columns_with_every_value() {
    let (_dir, log) = mixed_log(30);
    let all = records(&log);
    let text = ok_text(cli(&log).args(["tail", "-n", "12", "--output", "table"]));
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 13, "{text}");
    let header = rows[0];
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["TIME", "USER", "ACTION", "RESOURCE", "STATUS", "LATENCY"]
    );
    let starts = column_starts(header);
    assert_eq!(starts.len(), 6);
    let header_width = header.chars().count();
    for (row, r) in rows[1..].iter().zip(&all[all.len() - 12..]) {
        let chars: Vec<char> = row.chars().collect();
        // NOTE: LATENCY is right-aligned, so STATUS ends at its first blank, not at LATENCY.
        let cell = |col: usize| -> String {
            let end = starts
                .get(col + 1)
                .map_or(chars.len(), |e| (*e).min(chars.len()));
            let text = chars[starts[col].min(chars.len())..end].iter();
            if col == 4 {
                text.take_while(|c| **c != ' ').collect()
            } else {
                text.collect()
            }
        };
        let ts = str_of(r, "timestamp");
        assert_eq!(cell(0).trim_end(), ts[..23].replacen('T', " ", 1), "{row}");
        let or_empty = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        assert_eq!(cell(1).trim_end(), or_empty("user_id"), "{row}");
        assert_eq!(cell(2).trim_end(), or_empty("action"), "{row}");
        let resource = match (
            r["resource"].as_str(),
            r["server_id"].as_str(),
            r["tool"].as_str(),
        ) {
            (Some(res), _, _) => res.to_owned(),
            (None, Some(s), Some(t)) => format!("{s}:{t}"),
            (None, s, t) => t.or(s).unwrap_or("").to_owned(),
        };
        assert_eq!(cell(3).trim_end(), resource, "{row}");
        assert_eq!(cell(4).trim_end(), or_empty("status"), "{row}");
        match r["latency_ms"].as_u64() {
            Some(ms) => {
                assert!(row.ends_with(&format!(" {ms} ms")), "{row}");
                assert_eq!(chars.len(), header_width, "latency is right-aligned: {row}");
            }
            None => assert!(chars.len() <= starts[5], "{row}"),
        }
    }
    let query = ok_text(cli(&log).args(["query", "--limit", "3", "--output", "table"]));
    assert_eq!(query.lines().count(), 4);
    assert!(query.starts_with("TIME "));
    let empty = ok_text(cli(&log).args(["query", "--user", "nobody", "--output", "table"]));
    assert_eq!(empty.split_whitespace().next(), Some("TIME"));
}

#[test]
fn color_always_paints_success_green_and_error_red() {
    let (_dir, log) = mixed_log(40);
    let text =
        ok_text(cli(&log).args(["--color", "always", "tail", "-n", "40", "--output", "table"]));
    assert!(text.contains("\x1b[32msuccess"), "{text:?}");
    assert!(text.contains("\x1b[31merror"), "{text:?}");
    for line in text.lines().filter(|l| l.contains("\x1b[31merror")) {
        let after = line.split("\x1b[31merror").nth(1).expect("after");
        assert!(
            after.trim_start().starts_with("\x1b[0m"),
            "reset after red: {line:?}"
        );
    }
    let text = ok_text(cli(&log).args(["tail", "--color", "always", "--output", "table"]));
    assert!(text.contains('\x1b'), "--color works after the command too");
}

#[test]
fn color_never_no_color_and_no_color_env_print_no_escape_codes() {
    let (_dir, log) = mixed_log(40);
    let table = ["tail", "-n", "40", "--output", "table"];
    let runs: Vec<Vec<u8>> = vec![
        ok(cli(&log).args(["--color", "never"]).args(table)),
        ok(cli(&log).arg("--no-color").args(table)),
        ok(cli(&log)
            .args(["--color", "always", "--no-color"])
            .args(table)),
        ok(cli(&log)
            .args(["--color", "auto"])
            .env("NO_COLOR", "1")
            .args(table)),
        ok(cli(&log).args(table)),
        ok(cli(&log).args(["--color", "never", "stats", "--output", "table"])),
        ok(cli(&log).args(["--color", "never", "verify", "--output", "table"])),
    ];
    for (i, out) in runs.iter().enumerate() {
        assert!(!out.is_empty());
        assert!(
            !out.contains(&0x1b),
            "run {i}: {:?}",
            String::from_utf8_lossy(out)
        );
    }
}

#[test]
fn control_and_bidi_characters_print_escaped_in_tables_and_byte_exact_in_jsonl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let evil_user = "mallory\x1b[2J\x1b[31mFAKE\u{202E}txt.exe\r\n\x07";
    let evil_tool = "tool\x1b]0;owned\x07\u{2066}x";
    ok(cli(&log).args([
        "append",
        "--user",
        evil_user,
        "--tool",
        evil_tool,
        "--status",
        "error",
        "--error-type",
        "Bad\x1b[0m",
        "--error-message",
        "boom\x1b[1A",
    ]));
    let stored = lines(&log);
    assert_eq!(parse(&stored[0])["user_id"], evil_user);
    for cmd in [
        vec!["tail", "--output", "table"],
        vec!["query", "--output", "table"],
        vec!["stats", "--output", "table"],
    ] {
        let text = ok_text(cli(&log).args(["--color", "never"]).args(&cmd));
        assert!(!text.contains('\x1b'), "{cmd:?}: {text:?}");
        assert!(
            !text.contains('\u{202E}') && !text.contains('\u{2066}'),
            "{cmd:?}"
        );
        assert!(!text.contains('\r') && !text.contains('\x07'), "{cmd:?}");
        assert!(
            text.contains("\\u{1b}") && text.contains("\\u{202e}"),
            "{cmd:?}: {text}"
        );
    }
    let table = ok_text(cli(&log).args(["tail", "--output", "table"]));
    assert_eq!(
        table.lines().count(),
        2,
        "a newline in a value cannot forge a row"
    );
    assert_eq!(
        ok(cli(&log).args(["tail", "--output", "jsonl"])),
        jsonl(&stored)
    );
    assert_eq!(ok(cli(&log).arg("export")), jsonl(&stored));
}

// --- exit codes and errors ----------------------------------------------------------------

#[test]
fn usage_errors_exit_two_with_one_line_on_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 3);
    let before = std::fs::read(&log).expect("read");
    let cases: &[&[&str]] = &[
        &["tail", "--bogus"],
        &["frobnicate"],
        &["tail", "--output", "bogus"],
        &["query", "--limit", "many"],
        &["export", "--format", "xml"],
        &["append", "--json", "{}", "--stdin"],
        &["append", "--args", "not json"],
        &["append", "--json", "[1]"],
        &["append", "--latency-ms", "-5"],
        &["append", "--timestamp", "noon"],
        &["stats", "--since", "5y"],
    ];
    for args in cases {
        let err = fails_with(cli(&log).args(*args), 2);
        assert!(err.starts_with("nexus-audit: error: "), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read(&log).expect("read"),
        before,
        "no usage error wrote"
    );
    let err = fails_with(cli(&log).args(["tail", "--output", "bogus"]), 2);
    assert!(err.contains("bogus") && err.contains("jsonl"), "{err}");
}

#[test]
fn a_missing_log_is_exit_two_with_one_sentence_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("absent.jsonl");
    for cmd in ["tail", "query", "stats", "verify", "export"] {
        let err = fails_with(cli(&log).arg(cmd), 2);
        assert!(
            err.contains("absent.jsonl") && err.contains("does not exist"),
            "{cmd}: {err}"
        );
    }
    assert!(!log.exists(), "reading never creates the log");
}

#[test]
fn a_closed_pipe_ends_every_reader_quietly_with_exit_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 3000);
    let commands: &[&[&str]] = &[
        &["tail", "-n", "3000"],
        &["query", "--limit", "0"],
        &["query", "--limit", "0", "--output", "json"],
        &["query", "--limit", "0", "--output", "yaml"],
        &["query", "--limit", "0", "--output", "csv"],
        &["query", "--limit", "0", "--output", "table"],
        &["export", "--format", "jsonl"],
        &["export", "--format", "json"],
        &["export", "--format", "csv"],
    ];
    for args in commands {
        let mut child = std::process::Command::new(BIN)
            .env_remove("NO_COLOR")
            .arg("--file")
            .arg(&log)
            .args(*args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("read a line");
        // The reader, and with it the pipe, is closed here.
        assert!(!first.is_empty(), "{args:?}");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

#[test]
fn help_for_the_command_and_each_subcommand_exits_zero_with_an_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let text = ok_text(cli(&log).arg("--help"));
    assert!(
        text.contains("Examples:") && text.contains("\n  nexus-audit "),
        "{text}"
    );
    for cmd in ["append", "tail", "query", "stats", "verify", "export"] {
        for help in [vec![cmd, "--help"], vec!["help", cmd]] {
            let text = ok_text(cli(&log).args(&help));
            assert!(text.contains("Examples:"), "{help:?}: {text}");
            assert!(
                text.contains(&format!("\n  nexus-audit {cmd}")),
                "{help:?}: one example per line: {text}"
            );
        }
    }
    let version = ok_text(cli(&log).arg("--version"));
    assert!(version.starts_with("nexus-audit "), "{version}");
    assert!(!log.exists());
}

#[test]
fn tail_reads_the_end_of_a_huge_sparse_log_not_all_of_it() {
    // A 64 GiB hole between the first line and the last three: reading it would take minutes.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("huge.jsonl");
    let sample = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample.jsonl"))
        .expect("sample");
    let all: Vec<&[u8]> = sample.split_inclusive(|b| *b == b'\n').collect();
    let mut file = std::fs::File::create(&log).expect("create");
    std::io::Write::write_all(&mut file, all[0]).expect("write");
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(64 << 30)).expect("seek");
    std::io::Write::write_all(&mut file, b"\n").expect("write");
    for line in &all[all.len() - 3..] {
        std::io::Write::write_all(&mut file, line).expect("write");
    }
    drop(file);
    let out = cli(&log)
        .args(["tail", "-n", "3", "--output", "jsonl"])
        .timeout(Duration::from_secs(30))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seqs: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["seq"]
                .as_u64()
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs, [1197, 1198, 1199]);
}
