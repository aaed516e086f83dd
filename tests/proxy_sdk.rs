//! `nexus-audit proxy` between the official MCP Python SDK's client and server (mcp 2.3.0), in
//! the 2026-07-28 stateless protocol and in legacy (initialize handshake) mode.
//!
//! The SDK is installed into `target/mcp-venv` by `tests/mcp/setup-venv.sh` when missing (the
//! script takes a lock, so parallel tests do not race). Without network access to PyPI on a
//! clean checkout these tests fail: they never pass silently.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The virtual environment's Python, set up once per test process.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("tests/mcp/setup-venv.sh"))
            .status()
            .expect("bash runs tests/mcp/setup-venv.sh");
        assert!(
            status.success(),
            "could not install the MCP Python SDK (mcp==2.3.0) into target/mcp-venv: is PyPI reachable?"
        );
        root().join("target/mcp-venv/bin/python")
    })
}

fn run_client(mode: &str, server: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(python())
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

fn client_through_proxy_matches_direct(mode: &str) {
    let server = root().join("tests/mcp/server.py");
    let py = python().as_os_str();
    let direct = run_client(mode, &[py, server.as_os_str()]);

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let bin = assert_cmd::cargo::cargo_bin("nexus-audit");
    let proxied = run_client(
        mode,
        &[
            bin.as_os_str(),
            "--file".as_ref(),
            log.as_os_str(),
            "proxy".as_ref(),
            "--".as_ref(),
            py,
            server.as_os_str(),
        ],
    );
    let expected = String::from_utf8(direct.stdout).expect("utf-8");
    assert_eq!(expected.lines().count(), 4, "{expected}");
    assert_eq!(String::from_utf8(proxied.stdout).expect("utf-8"), expected);

    common::cli(&log).arg("verify").assert().success();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        !text.contains("hunter2-SECRET"),
        "the password reached the log"
    );
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
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
        assert_eq!(r["server_id"], "nexus-test-server");
        assert_eq!(r["user_id"], "nexus-test-client");
        assert!(r["correlation_id"].is_string());
        assert!(r["response_size"].as_u64().expect("size") > 0);
    }
    assert_eq!(calls[0]["status"], "success");
    assert_eq!(calls[0]["args_summary"], json!({"a": 2, "b": 3}));
    assert_eq!(calls[1]["status"], "error");
    assert_eq!(calls[1]["error_type"], "tool_error");
    assert_eq!(calls[1]["error_message"], "Error executing tool explode");
    assert_eq!(
        calls[2]["args_summary"],
        json!({"username": "alice", "password": "**REDACTED**"})
    );
    assert_eq!(calls[2]["status"], "success");
    assert_eq!(records[5]["details"]["exit_code"], 0);
}

#[test]
fn sdk_client_gets_the_same_results_through_the_proxy_in_the_stateless_era() {
    client_through_proxy_matches_direct("modern");
}

#[test]
fn sdk_client_gets_the_same_results_through_the_proxy_in_legacy_mode() {
    client_through_proxy_matches_direct("legacy");
}
