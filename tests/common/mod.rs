//! Shared helpers for the integration tests: the real binary with a clean environment, and
//! logs written by the real writer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use nexus_audit::{Durability, Event, LogOptions};
use serde_json::json;

/// The `nexus-audit` binary, with every `NEXUS_AUDIT_*` variable and `NO_COLOR` removed so a
/// developer's environment cannot leak into a test, and `--file` set to `log`.
pub fn cli(log: &Path) -> Command {
    let mut cmd = Command::cargo_bin("nexus-audit").expect("binary built");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("NO_COLOR");
    cmd.arg("--file").arg(log);
    cmd
}

/// A realistic event number `i`: several users, servers, tools, statuses and errors.
pub fn sample_event(i: u64) -> Event {
    const TOOLS: &[(&str, &str)] = &[
        ("workday_get_worker", "workday-mcp"),
        ("ad_get_user", "identity-mcp"),
        ("entra_list_groups", "identity-mcp"),
        ("helix_create_ticket", "helix-mcp"),
        ("lansweeper_find_asset", "assets-mcp"),
        ("fedex_track_shipment", "logistics-mcp"),
        ("audit_log_stats", "nexus-core"),
        ("generate_compliance_report", "nexus-core"),
    ];
    const USERS: &[&str] = &[
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "svc-reporting",
    ];
    let (tool, server) = TOOLS[(i as usize * 7 + i as usize / 3) % TOOLS.len()];
    let user = USERS[(i as usize * 5 + 1) % USERS.len()];
    let e = Event::new("mcp_call")
        .tool(tool)
        .server(server)
        .user(user)
        .session(format!("sess-{:04}", i / 25))
        .correlation(format!("req-{i:06}"))
        .latency_ms(5 + (i * 37) % 900)
        .args(json!({"query": format!("item {i}"), "limit": i % 50, "filters": [{"field": "dept", "value": "eng"}]}))
        .sizes(1000 + i * 13 % 5000, 200 + i * 7 % 900);
    if i % 17 == 5 {
        e.failed(
            "UpstreamTimeout",
            format!("upstream {server} timed out after 30s (request {i})"),
        )
    } else {
        e.status_success()
    }
}

/// Writes a log of `n` sample records with the library and returns its path.
pub fn write_log(dir: &Path, name: &str, n: u64) -> PathBuf {
    let path = dir.join(name);
    let log = LogOptions::new(&path)
        .durability(Durability::None)
        .open()
        .expect("open log");
    log.append_batch((0..n).map(sample_event).collect())
        .expect("append");
    path
}

/// The lines of a file, without their LFs.
pub fn lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("read log");
    let mut out: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if out.last().is_some_and(Vec::is_empty) {
        out.pop();
    }
    out
}

/// Writes lines back, each followed by LF.
pub fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut bytes = Vec::new();
    for l in lines {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    std::fs::write(path, bytes).expect("write log");
}

/// Runs `verify --output json` and returns (exit code, parsed report).
pub fn verify_json(log: &Path) -> (i32, serde_json::Value) {
    let out = cli(log)
        .args(["verify", "--output", "json"])
        .output()
        .expect("run verify");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}
