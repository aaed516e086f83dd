//! `nexus-audit ship --to syslog+tcp://…` to a real rsyslogd (`tests/ship/rsyslog.rs`), through
//! the real binary: every record arrives once, framed by octet counting, as the RFC 5424
//! message the README describes, including records whose text holds `]`, `"`, `\`, newlines
//! and non-ASCII characters; an rsyslogd that is down for a while gets everything once it is
//! back.

mod common;
#[path = "ship/rsyslog.rs"]
mod rsyslog;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{cli, lines, sample_event};
use nexus_audit::{Durability, Event, LogOptions};
use rsyslog::{Rsyslog, parse_5424};
use serde_json::json;
use sha2::{Digest as _, Sha256};

const FAST: &[&str] = &["--backoff-base-ms", "100", "--backoff-cap-ms", "800"];

/// A log of `n` records, one in five with awkward text.
fn awkward_log(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let log = LogOptions::new(&path)
        .durability(Durability::None)
        .open()
        .expect("open log");
    let events: Vec<Event> = (0..n)
        .map(|i| match i % 5 {
            1 => sample_event(i).args(json!({
                "title": format!("a ]bracket[ \"quoted\" back\\slash\nsecond line\r\n\ttab {i}"),
                "who": "Grüße aus 東京 🚀 \u{2028}",
            })),
            2 => Event::new("custom action with spaces").details(json!({"note": "] \" \\ ]]"})),
            3 => sample_event(i).failed("Boom", "failed: \"x\" ] \\ \n"),
            _ => sample_event(i),
        })
        .collect();
    log.append_batch(events).expect("append");
    path
}

/// Checks that `got` holds every line of `log` exactly once, as RFC 5424 messages whose
/// structured data names it and whose MSG is the stored line.
fn check_once(got: &[Vec<u8>], log: &Path) {
    let stored = lines(log);
    let chain = hex::encode(Sha256::digest(&stored[0]));
    let mut by_seq = BTreeSet::new();
    for m in got {
        let p = parse_5424(m)
            .unwrap_or_else(|| panic!("not an RFC 5424 message: {}", String::from_utf8_lossy(m)));
        assert_eq!(p.app, "nexus-audit");
        assert_eq!(p.sd_id, "nexus@32473");
        assert_eq!(p.params[0], ("chain_id".to_owned(), chain.clone()));
        let seq: usize = p.params[1].1.parse().expect("seq");
        let line = &stored[seq];
        assert_eq!(&p.msg, line, "MSG of seq {seq} is the stored line");
        assert_eq!(p.params[2].1, hex::encode(Sha256::digest(line)));
        let record: serde_json::Value = serde_json::from_slice(line).expect("json");
        let action = record["action"].as_str().unwrap_or("");
        let msgid = if action.len() <= 32
            && !action.is_empty()
            && action.bytes().all(|b| (33..=126).contains(&b))
        {
            action
        } else {
            "-"
        };
        assert_eq!(p.msgid, msgid);
        assert!(by_seq.insert(seq), "seq {seq} arrived twice");
    }
    assert_eq!(by_seq.len(), stored.len(), "every record arrived");
}

fn cursor_seq(log: &Path) -> Option<u64> {
    let bytes = std::fs::read(log.with_extension("cursor")).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["seq"].as_u64()
}

#[test]
fn every_record_arrives_once_with_its_framing_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = awkward_log(dir.path(), 2_000);
    let server = Rsyslog::start();
    let out = cli(&log)
        .args([
            "ship",
            "--to",
            &format!("syslog+tcp://127.0.0.1:{}", server.port),
        ])
        .args(["--batch", "128", "--cursor"])
        .arg(log.with_extension("cursor"))
        .output()
        .expect("run ship");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = server.wait_for(2_000, Duration::from_secs(30));
    check_once(&got, &log);
    assert_eq!(cursor_seq(&log), Some(1_999));
}

#[test]
fn an_rsyslog_down_for_a_while_gets_everything_once_it_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = awkward_log(dir.path(), 300);
    let mut server = Rsyslog::start();
    server.stop();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"))
        .env_clear()
        .arg("--file")
        .arg(&log)
        .args([
            "ship",
            "--to",
            &format!("syslog+tcp://127.0.0.1:{}", server.port),
        ])
        .args(["--batch", "50", "--cursor"])
        .arg(log.with_extension("cursor"))
        .args(FAST)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ship");
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(cursor_seq(&log), None, "nothing written while down");
    server.restart();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.matches("sending it again in").count() >= 2,
        "{stderr}"
    );
    let got = server.wait_for(300, Duration::from_secs(30));
    check_once(&got, &log);
}
