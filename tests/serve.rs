//! `nexus-audit serve` end to end: the real binary on a loopback port, driven over HTTP and
//! compared with the CLI's own answers for the same log and filters; Prometheus and Chromium
//! (installed by tests/serve/setup.sh) scrape and render it.

mod common;
#[path = "serve/http.rs"]
mod http;
#[path = "serve/server.rs"]
mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use server::{Server, eventually, need};

/// Filters as query parameters and as CLI flags.
const FILTERS: &[(&str, &[&str])] = &[
    ("", &[]),
    ("status=error", &["--status", "error"]),
    (
        "tool=workday_*&since=2026-11-19",
        &["--tool", "workday_*", "--since", "2026-11-19"],
    ),
    (
        "user=carol.diaz%40corp.example",
        &["--user", "carol.diaz@corp.example"],
    ),
    (
        "shard=itsm&category=READ&until=2026-11-21T00:00:00Z",
        &[
            "--shard",
            "itsm",
            "--category",
            "READ",
            "--until",
            "2026-11-21T00:00:00Z",
        ],
    ),
    ("action=server_start", &["--action", "server_start"]),
    (
        "server=helix*&status=success",
        &["--server", "helix*", "--status", "success"],
    ),
];

fn sample_log(dir: &Path) -> PathBuf {
    let log = dir.join("audit.jsonl");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample.jsonl"),
        &log,
    )
    .expect("copy the sample log");
    log
}

/// The CLI's stdout for `args`, which must succeed (or exit 1 for verify).
fn cli_out(log: &Path, args: &[&str]) -> Vec<u8> {
    let out = common::cli(log).args(args).output().expect("run the CLI");
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn cli_json(log: &Path, args: &[&str]) -> Value {
    serde_json::from_slice(&cli_out(log, args)).expect("CLI JSON")
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect()
}

fn with(params: &str, more: &str) -> String {
    match (params.is_empty(), more.is_empty()) {
        (true, _) => more.to_owned(),
        (_, true) => params.to_owned(),
        _ => format!("{params}&{more}"),
    }
}

/// Asserts one `/api/audit` page equals `query` with the same filters and paging.
fn assert_page_equals_query(
    s: &Server,
    log: &Path,
    params: &str,
    flags: &[&str],
    limit: u64,
    offset: u64,
    asc: bool,
) {
    let order = if asc { "asc" } else { "desc" };
    let page = s.get(&format!(
        "/api/audit?{}",
        with(
            params,
            &format!("limit={limit}&offset={offset}&order={order}")
        )
    ));
    assert_eq!(page.status, 200, "{params}: {}", page.text());
    let page = page.json();
    let mut args = vec!["query", "--output", "jsonl"];
    args.extend_from_slice(flags);
    let (l, o) = (limit.min(1000).to_string(), offset.to_string());
    let mut paged = args.clone();
    paged.extend(["--limit", &l, "--offset", &o]);
    if asc {
        paged.push("--asc");
    }
    let expected = json_lines(&cli_out(log, &paged));
    assert_eq!(
        page["items"].as_array().expect("items"),
        &expected,
        "{params} {limit}/{offset}/{order}"
    );
    let mut all = args.clone();
    all.extend(["--limit", "0"]);
    let total = json_lines(&cli_out(log, &all)).len() as u64;
    assert_eq!(page["total"], total, "{params}: total");
    assert_eq!(page["limit"], limit.min(1000));
    assert_eq!(page["offset"], offset);
    assert_eq!(
        page["next_cursor"].is_null(),
        offset + limit.min(1000) >= total,
        "{params}: next_cursor only when more follow"
    );
}

#[test]
fn api_audit_pages_equal_query_for_the_same_filters_and_the_log_is_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    let before = (
        std::fs::read(&log).expect("read"),
        std::fs::metadata(&log)
            .expect("stat")
            .modified()
            .expect("mtime"),
    );
    let s = Server::start(&log, &[]);
    for (params, flags) in FILTERS {
        for (limit, offset, asc) in [
            (50, 0, false),
            (7, 13, true),
            (1000, 0, false),
            (3, 200, false),
            (25, 1190, true),
        ] {
            assert_page_equals_query(&s, &log, params, flags, limit, offset, asc);
        }
    }
    // The defaults: 50, newest first; a larger limit is clamped to 1000.
    let default = s.get("/api/audit").json();
    assert_eq!(default["limit"], 50);
    assert_eq!(default["items"][0]["seq"], 1199);
    let clamped = s.get("/api/audit?limit=5000").json();
    assert_eq!(clamped["limit"], 1000);
    assert_eq!(clamped["items"].as_array().map(Vec::len), Some(1000));
    drop(s);
    let after = (
        std::fs::read(&log).expect("read"),
        std::fs::metadata(&log)
            .expect("stat")
            .modified()
            .expect("mtime"),
    );
    assert!(before == after, "the server changed the log");
}

#[test]
fn cursor_paging_yields_every_record_exactly_once_while_the_log_grows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = common::write_log(dir.path(), "audit.jsonl", 500);
    let s = Server::start(&log, &[]);
    for (order, filter) in [
        ("asc", ""),
        ("desc", ""),
        ("asc", "&status=error"),
        ("desc", "&user=bob*"),
    ] {
        let start_total = s.get(&format!("/api/audit?limit=0{filter}")).json()["total"]
            .as_u64()
            .expect("total");
        let mut seen: Vec<u64> = Vec::new();
        let mut path = format!("/api/audit?limit=37&order={order}{filter}");
        loop {
            let page = s.get(&path);
            assert_eq!(page.status, 200, "{}", page.text());
            let page = page.json();
            seen.extend(
                page["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|r| r["seq"].as_u64().expect("seq")),
            );
            // The log grows between pages.
            let out = common::cli(&log)
                .args([
                    "append",
                    "--tool",
                    "workday_get_worker",
                    "--user",
                    "bob@example.com",
                    "--status",
                    "error",
                ])
                .output()
                .expect("append");
            assert!(out.status.success());
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/audit?limit=37&cursor={c}{filter}"),
                None => break,
            }
        }
        let unique: BTreeSet<u64> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{order}{filter}: a record came twice"
        );
        if order == "desc" {
            // Newest first: every record there was when paging began, newest to oldest.
            assert_eq!(seen.len() as u64, start_total, "{order}{filter}");
            assert!(seen.windows(2).all(|w| w[0] > w[1]));
        } else {
            // Oldest first: the records appended meanwhile come too, once each.
            assert!(seen.len() as u64 >= start_total, "{order}{filter}");
            assert!(seen.windows(2).all(|w| w[0] < w[1]));
            let all = s
                .get(&format!("/api/audit?limit=1000&order=asc{filter}"))
                .json();
            let now: Vec<u64> = all["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|r| r["seq"].as_u64().expect("seq"))
                .collect();
            assert!(
                now.starts_with(&seen),
                "{order}{filter}: paged records are the log's, in order"
            );
        }
    }
}

#[test]
fn export_streams_the_same_bytes_as_the_cli_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    let s = Server::start(&log, &["--export-rate", "100/min"]);
    for (params, flags) in FILTERS {
        for format in ["csv", "json", "jsonl"] {
            let r = s.get(&format!(
                "/api/audit/export?{}",
                with(params, &format!("format={format}"))
            ));
            assert_eq!(r.status, 200, "{}", r.text());
            let mut args = vec!["export", "--format", format];
            args.extend_from_slice(flags);
            assert!(
                r.body == cli_out(&log, &args),
                "{format} {params}: bytes differ from export"
            );
            let disposition = r
                .header("content-disposition")
                .expect("Content-Disposition");
            assert!(disposition.starts_with("attachment"), "{disposition}");
            assert!(disposition.contains(&format!(".{format}")), "{disposition}");
        }
    }
    let default = s.get("/api/audit/export");
    assert_eq!(default.body, cli_out(&log, &["export"]), "jsonl by default");
}

#[test]
fn api_stats_equals_stats_output_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    let s = Server::start(&log, &[]);
    for (params, flags) in FILTERS {
        for (extra, extra_flags) in [
            ("", &[][..]),
            ("interval=hour", &["--interval", "hour"][..]),
            (
                "interval=week&last=300",
                &["--interval", "week", "--last", "300"][..],
            ),
        ] {
            let r = s.get(&format!("/api/stats?{}", with(params, extra)));
            assert_eq!(r.status, 200, "{}", r.text());
            let mut args = vec!["stats", "--output", "json"];
            args.extend_from_slice(flags);
            args.extend_from_slice(extra_flags);
            assert_eq!(r.json(), cli_json(&log, &args), "{params} {extra}");
        }
    }
}

#[test]
fn aggregations_agree_with_stats_for_the_same_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    let s = Server::start(&log, &[]);
    for (params, flags) in FILTERS {
        let stats_for = |more: &[&str]| {
            let mut args = vec!["stats", "--output", "json"];
            args.extend_from_slice(flags);
            args.extend_from_slice(more);
            cli_json(&log, &args)
        };
        let stats = stats_for(&["--interval", "hour"]);
        let groups = |by: &str| -> Vec<Value> {
            let r = s.get(&format!(
                "/api/audit/aggregations?{}",
                with(params, &format!("group_by={by}"))
            ));
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            assert_eq!(v["group_by"], by);
            v["groups"].as_array().expect("groups").clone()
        };
        let counts = |gs: &[Value]| -> BTreeMap<String, u64> {
            gs.iter()
                .map(|g| {
                    (
                        g["key"].as_str().expect("key").to_owned(),
                        g["count"].as_u64().expect("count"),
                    )
                })
                .collect()
        };
        let as_map = |v: &Value| -> BTreeMap<String, u64> {
            v.as_object()
                .expect("map")
                .iter()
                .map(|(k, n)| (k.clone(), n.as_u64().expect("n")))
                .collect()
        };
        for (by, key) in [
            ("user", "by_user"),
            ("server", "by_server"),
            ("action", "by_action"),
            ("status", "status_breakdown"),
            ("shard", "shard_breakdown"),
            ("category", "action_category_breakdown"),
        ] {
            let gs = groups(by);
            assert_eq!(counts(&gs), as_map(&stats[key]), "{params} group_by={by}");
            assert!(
                gs.windows(2)
                    .all(|w| w[0]["count"].as_u64() >= w[1]["count"].as_u64()),
                "sorted by count"
            );
        }
        // Errors by tool, and hour buckets, as stats has them.
        let tools = groups("tool");
        let errors: BTreeMap<String, u64> = tools
            .iter()
            .filter(|g| g["errors"].as_u64() > Some(0))
            .map(|g| {
                (
                    g["key"].as_str().expect("key").to_owned(),
                    g["errors"].as_u64().expect("errors"),
                )
            })
            .collect();
        assert_eq!(
            errors,
            as_map(&stats["errors_by_tool"]),
            "{params} errors by tool"
        );
        let hours = groups("hour");
        let timeline: Vec<(String, u64, u64)> = stats["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .map(|b| {
                (
                    b["bucket"].as_str().expect("b").to_owned(),
                    b["count"].as_u64().expect("c"),
                    b["errors"].as_u64().expect("e"),
                )
            })
            .collect();
        let buckets: Vec<(String, u64, u64)> = hours
            .iter()
            .map(|g| {
                (
                    g["key"].as_str().expect("k").to_owned(),
                    g["count"].as_u64().expect("c"),
                    g["errors"].as_u64().expect("e"),
                )
            })
            .collect();
        assert_eq!(buckets, timeline, "{params} hour buckets");
        // Latency percentiles of a group equal stats' for that group alone.
        for g in groups("status") {
            let status = g["key"].as_str().expect("key");
            if status == "unknown" {
                continue;
            }
            let alone = if flags.contains(&"--status") {
                stats_for(&[])
            } else {
                stats_for(&["--status", status])
            };
            for p in ["p50", "p95", "p99"] {
                assert_eq!(
                    g["latency_ms"][p], alone["latency_ms"][p],
                    "{params} {status} {p}"
                );
            }
        }
    }
    let days = s.get("/api/audit/aggregations?group_by=day").json();
    assert_eq!(days["groups"][0]["key"], "2026-11-18T00:00:00Z");
    let weeks = s.get("/api/audit/aggregations?group_by=week").json();
    assert_eq!(
        weeks["groups"][0]["key"], "2026-11-16T00:00:00Z",
        "weeks start on Monday"
    );
}

/// The CLI's verify report, for comparing with the server's.
fn verify_report(log: &Path) -> Value {
    common::verify_json(log).1
}

/// `nexus_audit_chain_ok` and the records total from `/metrics`.
fn metric(s: &Server, name: &str) -> Option<f64> {
    let text = s.get("/metrics").text();
    let mut sum = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let series_name = series.split('{').next().unwrap_or("");
        if series_name == name {
            *sum.get_or_insert(0.0) += value.parse::<f64>().ok()?;
        }
    }
    sum
}

#[test]
fn api_verify_equals_verify_output_json_as_the_log_grows_and_turns_false_on_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = common::write_log(dir.path(), "audit.jsonl", 300);
    let s = Server::start(&log, &[]);
    let r = s.get("/api/verify");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), verify_report(&log));
    assert_eq!(metric(&s, "nexus_audit_chain_ok"), Some(1.0));
    // Appends are checked incrementally; the answer stays the full report.
    for round in 0..3 {
        let events: String = (0..20)
            .map(|i| {
                format!("{{\"tool\":\"ad_get_user\",\"status\":\"success\",\"latency_ms\":{i}}}\n")
            })
            .collect();
        let mut append = common::cli(&log)
            .args(["append", "--stdin"])
            .write_stdin(events)
            .assert();
        append = append.success();
        let _ = append;
        let expected = verify_report(&log);
        let got = eventually(Duration::from_secs(2), || {
            let v = s.get("/api/verify").json();
            (v == expected).then_some(v)
        });
        assert!(
            got.is_some(),
            "round {round}: {} vs {expected}",
            s.get("/api/verify").text()
        );
    }
    // A content byte changed in the middle, the file rewritten: false within a second.
    let mut lines = common::lines(&log);
    let line = &mut lines[150];
    let at = line
        .windows(9)
        .position(|w| w == b"ad_get_us" || w == b"workday_g" || w == b"helix_cre")
        .unwrap_or(line.len() - 10);
    line[at] = b'X';
    common::write_lines(&log, &lines);
    let started = Instant::now();
    let report = eventually(Duration::from_secs(1), || {
        let v = s.get("/api/verify").json();
        (v["ok"] == false).then_some(v)
    })
    .expect("verify turned false within a second");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(report, verify_report(&log), "the same report as the CLI");
    assert_eq!(report["problems"][0]["line"], 151);
    assert!(
        eventually(Duration::from_secs(1), || (metric(
            &s,
            "nexus_audit_chain_ok"
        ) == Some(0.0))
        .then_some(()))
        .is_some()
    );
    // ok:false is still HTTP 200.
    assert_eq!(s.get("/api/verify").status, 200);
    // A broken log that keeps growing is still reported as the CLI reports it.
    append_one(&log, "ad_get_user", "success");
    let expected = verify_report(&log);
    assert!(
        eventually(Duration::from_secs(3), || (s.get("/api/verify").json()
            == expected)
            .then_some(()))
        .is_some(),
        "{} vs {expected}",
        s.get("/api/verify").text()
    );
}

#[test]
fn a_byte_flipped_in_place_without_growth_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = common::write_log(dir.path(), "audit.jsonl", 200);
    let s = Server::start(&log, &["--full-verify-every", "1h"]);
    assert_eq!(s.get("/api/verify").json()["ok"], true);
    // Same inode, same size: only the mtime says it changed.
    let data = std::fs::read(&log).expect("read");
    let offset = data.len() / 3;
    let offset = offset
        + data[offset..]
            .iter()
            .position(u8::is_ascii_lowercase)
            .expect("a letter");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open");
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset as u64)).expect("seek");
    f.write_all(&[data[offset].to_ascii_uppercase()])
        .expect("write");
    drop(f);
    let report = eventually(Duration::from_secs(1), || {
        let v = s.get("/api/verify").json();
        (v["ok"] == false).then_some(v)
    })
    .expect("verify turned false");
    assert_eq!(report, verify_report(&log));
    assert_eq!(metric(&s, "nexus_audit_chain_ok"), Some(0.0));
    // Put back, it is whole again at once.
    std::fs::write(&log, &data).expect("restore");
    let report = eventually(Duration::from_secs(1), || {
        let v = s.get("/api/verify").json();
        (v["ok"] == true).then_some(v)
    })
    .expect("verify turned true again");
    assert_eq!(report, verify_report(&log));
    assert_eq!(metric(&s, "nexus_audit_chain_ok"), Some(1.0));
}

fn append_one(log: &Path, tool: &str, status: &str) {
    common::cli(log)
        .args([
            "append",
            "--tool",
            tool,
            "--user",
            "live@example.com",
            "--status",
            status,
            "--latency-ms",
            "42",
        ])
        .assert()
        .success();
}

#[test]
fn appended_records_reach_audit_metrics_and_the_stream_within_a_second_also_after_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = common::write_log(dir.path(), "audit.jsonl", 100);
    let s = Server::start(&log, &[]);
    let mut all = http::Events::open(&s.addr, "/api/audit/stream", &[]);
    let mut errors =
        http::Events::open(&s.addr, "/api/audit/stream?status=error&tool=helix_*", &[]);
    assert_eq!(all.status, 200);
    assert!(all.wait_for(Duration::from_secs(5), |e| e.text().contains(": connected")));
    assert!(errors.wait_for(Duration::from_secs(5), |e| e.text().contains(": connected")));
    let total = |s: &Server| s.get("/api/audit?limit=1").json()["total"].as_u64();
    assert_eq!(total(&s), Some(100));
    assert_eq!(metric(&s, "nexus_audit_records_total"), Some(100.0));

    append_one(&log, "helix_create_ticket", "error");
    append_one(&log, "ad_get_user", "success");
    append_one(&log, "helix_update_ticket", "error");
    let appended = Instant::now();
    assert!(
        all.wait_for(Duration::from_secs(1), |e| e.data().len() == 3),
        "stream: {}",
        all.text()
    );
    assert!(
        errors.wait_for(Duration::from_secs(1), |e| e.data().len() == 2),
        "filtered stream: {}",
        errors.text()
    );
    assert!(
        eventually(Duration::from_secs(1), || (total(&s) == Some(103))
            .then_some(()))
        .is_some()
    );
    assert!(
        eventually(Duration::from_secs(1), || (metric(
            &s,
            "nexus_audit_records_total"
        ) == Some(103.0))
        .then_some(()))
        .is_some()
    );
    assert!(appended.elapsed() < Duration::from_secs(2));
    // Each data line is the stored record, byte for byte.
    let stored = common::lines(&log);
    for (data, line) in all.data().iter().zip(&stored[100..]) {
        assert_eq!(data.as_bytes(), line.as_slice());
    }
    let first: Value = serde_json::from_str(&errors.data()[0]).expect("JSON");
    assert_eq!(first["tool"], "helix_create_ticket");

    // Rotation: the file is renamed away and a new one starts at the path.
    std::fs::rename(&log, dir.path().join("audit.jsonl.1")).expect("rotate");
    append_one(&log, "helix_get_ticket", "error");
    assert!(
        all.wait_for(Duration::from_secs(2), |e| e.data().len() == 4),
        "after rotation: {}",
        all.text()
    );
    assert!(errors.wait_for(Duration::from_secs(2), |e| e.data().len() == 3));
    assert!(
        eventually(Duration::from_secs(2), || (total(&s) == Some(1))
            .then_some(()))
        .is_some(),
        "the new file has one record"
    );
    // Counters only grow: the new file's records are added.
    assert!(
        eventually(Duration::from_secs(2), || (metric(
            &s,
            "nexus_audit_records_total"
        ) == Some(104.0))
        .then_some(()))
        .is_some()
    );
}

#[test]
fn a_token_is_needed_for_every_request_when_set_and_is_never_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    let token = "tok-7f3a9c1e5b2d4f60a8e9";
    let token_file = dir.path().join("serve.token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token");
    let s = Server::start(&log, &["--token-file", token_file.to_str().expect("utf8")]);
    let good = format!("Bearer {token}");
    for path in [
        "/api/audit",
        "/api/stats",
        "/api/verify",
        "/metrics",
        "/",
        "/assets/app.js",
        "/api/audit/aggregations?group_by=user",
        "/api/audit/export",
        "/api/audit/stream",
        "/no/such/path",
    ] {
        let none = s.get(path);
        assert_eq!(none.status, 401, "{path} without a token");
        assert!(
            none.headers_named("www-authenticate")
                .iter()
                .any(|h| h.starts_with("Bearer"))
        );
        assert!(none.json()["error"].as_str().is_some_and(|e| !e.is_empty()));
        for wrong in [
            "Bearer tok-7f3a9c1e5b2d4f60a8e",
            "Bearer tok-7f3a9c1e5b2d4f60a8e99",
            "Basic Zm9vOmJhcg==",
            token,
        ] {
            let r = s.get_with(path, &[("Authorization", wrong)]);
            assert_eq!(r.status, 401, "{path} with {wrong:?}");
            assert!(!r.text().contains(token));
        }
    }
    for path in [
        "/api/audit?limit=1",
        "/api/stats",
        "/api/verify",
        "/metrics",
        "/",
    ] {
        let r = s.get_with(path, &[("Authorization", &good)]);
        assert_eq!(r.status, 200, "{path} with the token");
        assert!(!r.text().contains(token));
    }
    // A browser asks for it and sends it as the Basic password.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("auditor:{token}")
        )
    );
    assert_eq!(s.get_with("/", &[("Authorization", &basic)]).status, 200);
    let mut events = http::Events::open(&s.addr, "/api/audit/stream", &[("Authorization", &good)]);
    assert_eq!(events.status, 200);
    assert!(events.wait_for(Duration::from_secs(5), |e| e.text().contains(": connected")));
    assert!(!s.stderr().contains(token), "the token was printed");
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let out = server::binary()
            .arg("--file")
            .arg(&log)
            .args(["serve", "--listen", listen])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{listen}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("--token-file") && err.contains("refusing"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    // With a token it serves.
    let token_file = dir.path().join("t");
    std::fs::write(&token_file, "secret-token-for-the-test").expect("token");
    let s = Server::start(
        &log,
        &[
            "--listen",
            "0.0.0.0:0",
            "--token-file",
            token_file.to_str().expect("utf8"),
        ],
    );
    let port = s.addr.rsplit(':').next().expect("port");
    let r = http::request(
        &format!("127.0.0.1:{port}"),
        "GET",
        "/api/verify",
        &[("Authorization", "Bearer secret-token-for-the-test")],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn exports_past_the_rate_get_429_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    let s = Server::start(&log, &["--export-rate", "2/min"]);
    assert_eq!(s.get("/api/audit/export?format=csv").status, 200);
    assert_eq!(s.get("/api/audit/export?format=json").status, 200);
    let refused = s.get("/api/audit/export?format=jsonl");
    assert_eq!(refused.status, 429);
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(
        refused.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("export"))
    );
    // Other endpoints are not limited.
    assert_eq!(s.get("/api/audit?limit=1").status, 200);
}

#[test]
fn bad_parameters_get_400_with_one_sentence_unknown_paths_404_a_missing_log_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    let mut s = Server::start(&log, &[]);
    for path in [
        "/api/audit?limit=abc",
        "/api/audit?limit=-1",
        "/api/audit?offset=1.5",
        "/api/audit?order=sideways",
        "/api/audit?since=yesterday",
        "/api/audit?until=2026-13-45",
        "/api/audit?cursor=not-a-cursor",
        "/api/audit?cursor=djEuYS4xMg",
        "/api/audit?cursor=djEueC4xMi4x",
        "/api/audit?users=alice",
        "/api/audit?user=a&user=b",
        "/api/audit?user=%FF%FE",
        "/api/audit/aggregations",
        "/api/audit/aggregations?group_by=planet",
        "/api/audit/export?format=xml",
        "/api/stats?interval=month",
        "/api/stats?last=many",
        "/api/verify?user=alice",
        "/api/audit/stream?since=soon",
        "/metrics?x=1",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 400, "{path}: {:.300}", r.text());
        let e = r.json();
        let sentence = e["error"].as_str().unwrap_or_else(|| panic!("{path}: {e}"));
        assert!(
            !sentence.is_empty() && !sentence.contains('\n'),
            "{path}: {sentence:?}"
        );
        assert_eq!(e.as_object().map(serde_json::Map::len), Some(1));
    }
    // A cursor in the other order than asked.
    let page = s.get("/api/audit?limit=5&order=asc").json();
    let cursor = page["next_cursor"].as_str().expect("cursor");
    assert_eq!(
        s.get(&format!("/api/audit?cursor={cursor}&order=desc"))
            .status,
        400
    );
    for path in [
        "/api/nothing",
        "/favicon.ico",
        "/assets/evil.js",
        "/api/audit/",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json()["error"].is_string());
    }
    let post = http::request(&s.addr, "POST", "/api/audit", &[("Content-Length", "0")]);
    assert_eq!(post.status, 405);
    assert!(s.alive(), "the server survived every bad request");

    // A missing log: 503 with a sentence, until it appears.
    let missing = dir.path().join("not-yet.jsonl");
    let m = Server::start(&missing, &[]);
    assert!(m.stderr_shows("does not exist"), "{}", m.stderr());
    for path in [
        "/api/audit",
        "/api/stats",
        "/api/verify",
        "/api/audit/export",
        "/api/audit/aggregations?group_by=user",
        "/api/audit/stream",
        "/metrics",
    ] {
        let r = m.get(path);
        assert_eq!(r.status, 503, "{path}");
        assert!(
            r.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("does not exist")),
            "{path}"
        );
    }
    std::fs::copy(&log, &missing).expect("the log appears");
    assert!(
        eventually(Duration::from_secs(2), || (m
            .get("/api/audit?limit=1")
            .json()["total"]
            == 1200)
            .then_some(()))
        .is_some()
    );
}

#[test]
fn fifty_clients_are_answered_while_one_never_reads_its_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = common::write_log(dir.path(), "audit.jsonl", 20_000);
    let s = Server::start(&log, &["--export-rate", "1000/min"]);
    // A client that asks for an export far larger than the socket buffers and never reads.
    let mut stuck = std::net::TcpStream::connect(&s.addr).expect("connect");
    write!(
        stuck,
        "GET /api/audit/export?format=json HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .expect("send");
    std::thread::sleep(Duration::from_millis(500));
    let paths = [
        "/api/audit?limit=20",
        "/api/stats",
        "/metrics",
        "/api/verify",
        "/api/audit/aggregations?group_by=tool",
        "/api/audit/export?status=error",
    ];
    let started = Instant::now();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let addr = s.addr.clone();
            let path = paths[i % paths.len()];
            std::thread::spawn(move || (path, http::get(&addr, path).status))
        })
        .collect();
    for h in handles {
        let (path, status) = h.join().expect("client thread");
        assert_eq!(status, 200, "{path}");
    }
    assert!(started.elapsed() < Duration::from_secs(120));
    drop(stuck);
}

// ---------------------------------------------------------------------------------------------
// A log of 200,000 records.

/// Writes `n` varied records with `append --stdin`: 7 users, 12 tools, errors, latencies, two
/// records a minute.
fn big_log(dir: &Path, n: u64) -> PathBuf {
    let log = dir.join("big.jsonl");
    let tools = [
        "workday_get_worker",
        "workday_list_time_off",
        "ad_get_user",
        "ad_reset_password",
        "entra_list_groups",
        "helix_create_ticket",
        "helix_update_ticket",
        "lansweeper_find_asset",
        "intune_list_devices",
        "fedex_track_shipment",
        "audit_log_stats",
        "generate_compliance_report",
    ];
    let users = [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
        "erin@example.com",
        "svc-reporting",
        "svc-helpdesk-bot",
    ];
    let mut child = server::binary()
        .arg("--file")
        .arg(&log)
        .args(["append", "--stdin", "--durability", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("append");
    {
        let mut input = std::io::BufWriter::new(child.stdin.take().expect("stdin"));
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let tool = tools[(x % tools.len() as u64) as usize];
            let user = users[((x >> 8) % users.len() as u64) as usize];
            let failed = (x >> 16).is_multiple_of(23);
            let secs = 1_790_000_000 + i.cast_signed() * 30;
            let ts = chrono::DateTime::from_timestamp(secs, ((x >> 32) % 1_000_000) as u32 * 1000)
                .expect("time")
                .format("%Y-%m-%dT%H:%M:%S%.6fZ");
            let latency = 3
                + (x >> 24) % 400
                + if (x >> 40).is_multiple_of(50) {
                    2000
                } else {
                    0
                };
            let status = if failed {
                r#""status":"error","error_type":"UpstreamTimeout","error_message":"no answer in 30s""#
            } else {
                r#""status":"success""#
            };
            writeln!(input, r#"{{"timestamp":"{ts}","action":"mcp_call","user_id":"{user}","session_id":"sess-{}","server_id":"{}-mcp","tool":"{tool}","args_summary":{{"id":"W{:07}"}},{status},"latency_ms":{latency}}}"#, i / 40, tool.split('_').next().unwrap_or("x"), x % 10_000_000).expect("write");
        }
    }
    assert!(child.wait().expect("wait").success());
    log
}

#[test]
fn every_endpoint_answers_like_the_cli_on_a_log_of_200000_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = big_log(dir.path(), 200_000);
    let s = Server::start(&log, &["--export-rate", "100/min"]);
    let filters: &[(&str, &[&str])] = &[
        ("", &[]),
        (
            "status=error&tool=helix_*",
            &["--status", "error", "--tool", "helix_*"],
        ),
        (
            "user=svc-*&since=2026-10-01",
            &["--user", "svc-*", "--since", "2026-10-01"],
        ),
    ];
    for (params, flags) in filters {
        for (limit, offset, asc) in [(50, 0, false), (1000, 150_000, true), (10, 4321, false)] {
            assert_page_equals_query(&s, &log, params, flags, limit, offset, asc);
        }
        let mut args = vec!["stats", "--output", "json"];
        args.extend_from_slice(flags);
        assert_eq!(
            s.get(&format!("/api/stats?{params}")).json(),
            cli_json(&log, &args),
            "stats {params}"
        );
        for format in ["jsonl", "csv"] {
            let r = s.get(&format!(
                "/api/audit/export?{}",
                with(params, &format!("format={format}"))
            ));
            let mut args = vec!["export", "--format", format];
            args.extend_from_slice(flags);
            assert!(r.body == cli_out(&log, &args), "export {format} {params}");
        }
    }
    assert_eq!(s.get("/api/verify").json(), verify_report(&log));
    let stats = cli_json(&log, &["stats", "--output", "json"]);
    assert_eq!(
        metric(&s, "nexus_audit_records_total"),
        stats["total_entries"].as_f64()
    );
    assert_eq!(
        metric(&s, "nexus_audit_call_duration_seconds_count"),
        stats["latency_ms"]["count"].as_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Prometheus and Chromium.

fn run_as_unprivileged(program: &str) -> Command {
    if std::env::var("USER").as_deref() == Ok("root") || is_root() {
        need("setpriv");
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            program,
        ]);
        cmd
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn metrics_pass_promtool_and_a_real_prometheus_scrapes_the_totals_stats_gives() {
    need("promtool");
    need("prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    let s = Server::start(&log, &[]);
    let metrics = s.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4"))
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(&metrics.body)
        .expect("feed promtool");
    let checked = promtool.wait_with_output().expect("promtool");
    assert!(
        checked.status.success() && checked.stdout.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A real Prometheus on loopback, its data in a temp dir, as nobody when we are root.
    let prom_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        prom_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let config = prom_dir.path().join("prometheus.yml");
    std::fs::write(&config, format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: nexus_audit\n    static_configs:\n      - targets: ['{}']\n", s.addr)).expect("config");
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let port = server::free_port();
    let prom_addr = format!("127.0.0.1:{port}");
    let prometheus = Stopped(
        run_as_unprivileged("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let query = |q: &str| -> Option<BTreeMap<String, f64>> {
        let mut encoded = String::new();
        for b in q.bytes() {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        let r = std::panic::catch_unwind(|| {
            http::get(&prom_addr, &format!("/api/v1/query?query={encoded}"))
        })
        .ok()?;
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        let result = v["data"]["result"].as_array()?;
        if result.is_empty() {
            return None;
        }
        Some(
            result
                .iter()
                .map(|item| {
                    let labels = item["metric"]
                        .as_object()
                        .map(|m| {
                            m.values()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    (
                        labels,
                        item["value"][1]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(f64::NAN),
                    )
                })
                .collect(),
        )
    };
    let stats = cli_json(&log, &["stats", "--output", "json"]);
    let total = eventually(Duration::from_secs(60), || {
        query("sum(nexus_audit_records_total)")
    })
    .expect("Prometheus scraped the server");
    assert_eq!(
        total.values().copied().collect::<Vec<_>>(),
        vec![stats["total_entries"].as_f64().expect("total")]
    );
    let by_status = query("sum by (status) (nexus_audit_records_total)").expect("by status");
    let expected: BTreeMap<String, f64> = stats["status_breakdown"]
        .as_object()
        .expect("map")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().expect("n")))
        .collect();
    assert_eq!(by_status, expected);
    let by_shard = query("sum by (shard) (nexus_audit_records_total)").expect("by shard");
    let expected: BTreeMap<String, f64> = stats["shard_breakdown"]
        .as_object()
        .expect("map")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().expect("n")))
        .collect();
    assert_eq!(by_shard, expected);
    let by_tool = query("sum by (tool) (nexus_audit_tool_calls_total)").expect("by tool");
    for pair in stats["top_10_tools"].as_array().expect("tools") {
        let (tool, n) = (
            pair[0].as_str().expect("tool"),
            pair[1].as_f64().expect("n"),
        );
        assert_eq!(by_tool.get(tool).copied(), Some(n), "{tool}");
    }
    let errors = query("sum(nexus_audit_records_total{status=\"error\"})").expect("errors");
    assert_eq!(
        errors.values().next().copied(),
        stats["error_count"].as_f64()
    );
    let latency = query("sum(nexus_audit_call_duration_seconds_count)").expect("latency count");
    assert_eq!(
        latency.values().next().copied(),
        stats["latency_ms"]["count"].as_f64()
    );
    let chain = query("nexus_audit_chain_ok").expect("chain_ok");
    assert_eq!(chain.values().next().copied(), Some(1.0));
    drop(prometheus);
}

fn chromium(profile: &Path, args: &[&str], url: &str) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=1000",
        ])
        // Any name but loopback fails to resolve: nothing can leave the machine.
        .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium")
}

#[test]
fn the_dashboard_renders_in_headless_chromium_from_loopback_alone() {
    need("chromium");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = sample_log(dir.path());
    let s = Server::start(&log, &[]);
    let url = format!("http://{}/", s.addr);
    let net_log = dir.path().join("net.json");
    let dom = chromium(
        &dir.path().join("p1"),
        &[
            "--dump-dom",
            &format!("--log-net-log={}", net_log.display()),
        ],
        &url,
    );
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("data-ready=\"1\""),
        "the scripts did not finish: {html}"
    );
    assert!(
        html.contains(r#"id="record-count" class="value">1,200<"#),
        "record count: {html}"
    );
    assert!(html.contains("chain intact"), "badge: {html}");
    assert!(html.contains(r#"class="badge ok""#));
    let charts = html.matches(r#"class="chart""#).count();
    assert!(charts >= 5, "{charts} charts");
    assert!(html.matches("<rect").count() > 50, "the charts have bars");
    assert!(html.contains("fedex_track_shipment"), "errors by tool");
    assert!(html.contains("bob.okafor@corp.example"), "top users");
    // Every request the page made (those keyed to its site; Chromium's own background
    // requests are keyed otherwise, and the resolver rules keep them off the network) went to
    // this server.
    let netlog: Value =
        serde_json::from_slice(&std::fs::read(&net_log).expect("net log")).expect("net log JSON");
    let page_requests: Vec<&str> = netlog["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|k| k.contains("127.0.0.1"))
        })
        .filter_map(|e| e["params"]["url"].as_str())
        .collect();
    assert!(page_requests.len() >= 5, "{page_requests:?}");
    for u in &page_requests {
        assert!(
            u.starts_with(&url),
            "the page asked for something off this server: {u}"
        );
    }
    // The served assets name no other host.
    for path in ["/", "/assets/app.js", "/assets/app.css"] {
        let text = s.get(path).text().replace("http://www.w3.org/2000/svg", "");
        assert!(
            !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
            "{path}"
        );
    }
    let csp = s
        .get("/")
        .header("content-security-policy")
        .expect("CSP")
        .to_owned();
    assert!(
        csp.contains("connect-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );

    // The screenshot, as a test artefact.
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/serve-dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(
        &dir.path().join("p2"),
        &[
            "--window-size=1280,1500",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real picture"
    );
}
