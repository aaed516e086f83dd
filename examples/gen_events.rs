//! Prints realistic MCP tool-call events as JSON lines, for benchmarks:
//! `cargo run --release --example gen_events -- COUNT | nexus-audit append --stdin`.
//!
//! Deterministic for a given count; about 380 bytes an event, which the writer's envelope
//! (seq, `prev_hash`, `event_id`, timestamp, …) brings to about 640 bytes a record.

use std::io::{self, BufWriter, Write};

const TOOLS: &[(&str, &str)] = &[
    ("workday_get_worker", "workday-mcp"),
    ("workday_list_time_off", "workday-mcp"),
    ("ad_get_user", "identity-mcp"),
    ("ad_reset_password", "identity-mcp"),
    ("entra_list_groups", "identity-mcp"),
    ("helix_create_ticket", "helix-mcp"),
    ("helix_update_ticket", "helix-mcp"),
    ("lansweeper_find_asset", "assets-mcp"),
    ("intune_list_devices", "assets-mcp"),
    ("fedex_track_shipment", "logistics-mcp"),
    ("audit_log_stats", "nexus-core"),
    ("generate_compliance_report", "nexus-core"),
];
const USERS: &[&str] = &[
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.com",
    "erin@example.com",
    "svc-reporting",
    "svc-helpdesk-bot",
];
const ERRORS: &[(&str, &str)] = &[
    ("UpstreamTimeout", "upstream did not answer within 30s"),
    ("PermissionDenied", "caller lacks the scope workday.read"),
    ("NotFound", "no worker with this id"),
    ("RateLimited", "429 from upstream, retry after 12s"),
];

fn main() -> io::Result<()> {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start: i64 = 1_790_000_000; // 2026-09-21
    for i in 0..count {
        let r = rand();
        let (tool, server) = TOOLS[(r % TOOLS.len() as u64) as usize];
        let user = USERS[((r >> 8) % USERS.len() as u64) as usize];
        let failed = (r >> 16) % 23 == 0;
        let latency = 3 + ((r >> 24) % 400) + if (r >> 40) % 50 == 0 { 2000 } else { 0 };
        let secs = start + i.cast_signed() * 2;
        let ts = chrono::DateTime::from_timestamp(secs, ((r >> 32) % 1_000_000) as u32 * 1000)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let response = 500 + (r >> 20) % 40_000;
        write!(
            out,
            r#"{{"timestamp":"{ts}","level":"{}","action":"mcp_call","user_id":"{user}","session_id":"sess-{:06}","correlation_id":"req-{i:010}","server_id":"{server}","tool":"{tool}","args_summary":{{"id":"W{:07}","fields":["name","email","department"],"limit":{}}},"status":"{}","latency_ms":{latency},"response_size":{response},"filtered_size":{}"#,
            if failed { "error" } else { "info" },
            i / 40,
            (r >> 12) % 10_000_000,
            (r >> 4) % 100,
            if failed { "error" } else { "success" },
            response / 3,
        )?;
        if failed {
            let (kind, msg) = ERRORS[((r >> 44) % ERRORS.len() as u64) as usize];
            write!(out, r#","error_type":"{kind}","error_message":"{msg}""#)?;
        }
        if (r >> 50) % 100 == 0 {
            out.write_all(br#","mock_mode":true"#)?;
        }
        out.write_all(b"}\n")?;
    }
    out.flush()
}
