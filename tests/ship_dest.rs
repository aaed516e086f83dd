//! `nexus-audit ship` to Splunk HEC and Elasticsearch, through the real binary, against local
//! servers that follow the documented protocols (`tests/ship/dest_servers.rs`), including their
//! failure answers. In every case: nothing is lost, the cursor never passes an unacknowledged
//! record, and backoff and `Retry-After` are observed.

mod common;
#[path = "ship/dest_servers.rs"]
mod dest_servers;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{cli, lines, write_log};
use dest_servers::{Fault, HEC_TOKEN, Server};
use sha2::{Digest as _, Sha256};

/// Short backoff so the tests take seconds.
const FAST: &[&str] = &["--backoff-base-ms", "100", "--backoff-cap-ms", "800"];

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `<chain_id>:<seq>` of every record of `log`, in order.
fn ids(log: &Path) -> Vec<String> {
    let lines = lines(log);
    let chain = sha(&lines[0]);
    (0..lines.len()).map(|i| format!("{chain}:{i}")).collect()
}

/// `nexus-audit --file LOG ship --to URL --cursor LOG.cursor ARGS…`
fn ship(log: &Path, url: &str, args: &[&str]) -> assert_cmd::Command {
    ship_with_cursor(log, url, &log.with_extension("cursor"), args)
}

/// `nexus-audit --file LOG ship --to URL --cursor CURSOR ARGS…`
fn ship_with_cursor(log: &Path, url: &str, cursor: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = cli(log);
    cmd.args(["ship", "--to", url, "--cursor"])
        .arg(cursor)
        .args(FAST)
        .args(args);
    cmd
}

fn run(cmd: &mut assert_cmd::Command) -> (i32, String) {
    let out = cmd.output().expect("run ship");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `seq` the cursor stands at, if it was written.
fn cursor_seq(log: &Path) -> Option<u64> {
    let bytes = std::fs::read(log.with_extension("cursor")).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["seq"].as_u64()
}

/// The arrival times of the requests to `path`.
fn times(server: &Server, path: &str) -> Vec<Instant> {
    server
        .seen()
        .requests
        .iter()
        .filter(|(_, p)| p == path)
        .map(|(t, _)| *t)
        .collect()
}

const EVENT: &str = "/services/collector/event";

#[test]
fn hec_indexes_every_record_through_false_acks_a_lost_ack_and_busy_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 300);
    let server = Server::hec();
    {
        let mut seen = server.seen();
        seen.ack_false_polls = 2;
        seen.lose_acks = 1;
        seen.faults.extend([
            Fault::hec_busy(Some(1)),
            Fault::Pass,
            Fault::hec_internal(),
            Fault::too_many(1),
        ]);
    }
    let url = format!("splunk-hec+{}?ack_timeout=0.5", server.base());
    let (code, stderr) =
        run(ship(&log, &url, &["--batch", "50"]).env("NEXUS_AUDIT_HEC_TOKEN", HEC_TOKEN));
    assert_eq!(code, 0, "{stderr}");
    let seen = server.seen();
    let want = ids(&log);
    assert_eq!(
        seen.stored
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        want.iter().cloned().collect(),
        "nothing lost"
    );
    let stored_lines = lines(&log);
    for (i, id) in want.iter().enumerate() {
        let (env, _) = &seen.stored[id];
        let event: serde_json::Value = serde_json::from_slice(&stored_lines[i]).expect("json");
        assert_eq!(env["event"], event, "{id}");
        assert_eq!(env["fields"]["hash"], sha(&stored_lines[i]).as_str());
    }
    // The lost ack made its batch go again: its records were indexed twice, harmlessly.
    assert!(seen.stored.values().any(|(_, n)| *n == 2));
    drop(seen);
    // Retry-After: 1 after "Server is busy" was honoured before the batch went again.
    let t = times(&server, EVENT);
    assert!(
        t[1] - t[0] >= Duration::from_millis(950),
        "{:?}",
        t[1] - t[0]
    );
    assert!(
        stderr.matches("sending it again in").count() >= 4,
        "{stderr}"
    );
    assert!(!stderr.contains(HEC_TOKEN), "{stderr}");
    assert_eq!(cursor_seq(&log), Some(299));
}

#[test]
fn hec_with_a_bad_token_stops_in_one_sentence_that_does_not_show_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 20);
    let server = Server::hec();
    let url = format!("splunk-hec+{}", server.base());
    let (code, stderr) =
        run(ship(&log, &url, &[]).env("NEXUS_AUDIT_HEC_TOKEN", "not-the-token-9f8e7d"));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("NEXUS_AUDIT_HEC_TOKEN"), "{stderr}");
    assert!(!stderr.contains("9f8e7d"), "{stderr}");
    assert!(server.seen().stored.is_empty());
    assert_eq!(cursor_seq(&log), None);
    // No token at all: a usage error before anything is sent.
    let (code, stderr) = run(&mut ship(&log, &url, &[]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("NEXUS_AUDIT_HEC_TOKEN"), "{stderr}");
}

#[test]
fn hec_invalid_data_stops_at_its_seq_and_the_next_run_resumes_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 100);
    let server = Server::hec();
    server
        .seen()
        .faults
        .extend([Fault::Pass, Fault::Pass, Fault::HecInvalidEvent(3)]);
    let url = format!("splunk-hec+{}", server.base());
    let (code, stderr) =
        run(ship(&log, &url, &["--batch", "20"]).env("NEXUS_AUDIT_HEC_TOKEN", HEC_TOKEN));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("seq 43"), "{stderr}");
    assert_eq!(
        cursor_seq(&log),
        Some(39),
        "the cursor stays at the last acknowledged record"
    );
    let (code, stderr) =
        run(ship(&log, &url, &["--batch", "20"]).env("NEXUS_AUDIT_HEC_TOKEN", HEC_TOKEN));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(server.seen().stored.len(), 100);
    assert_eq!(cursor_seq(&log), Some(99));
}

#[test]
fn hec_down_for_a_while_gets_everything_once_it_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 120);
    let mut server = Server::hec();
    server.stop();
    let url = format!("splunk-hec+{}", server.base());
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"))
        .env_clear()
        .env("NEXUS_AUDIT_HEC_TOKEN", HEC_TOKEN)
        .arg("--file")
        .arg(&log)
        .args(["ship", "--to", &url, "--batch", "40", "--cursor"])
        .arg(log.with_extension("cursor"))
        .args(FAST)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ship");
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(cursor_seq(&log), None, "nothing acknowledged while down");
    server.restart();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.matches("sending it again in").count() >= 2,
        "{stderr}"
    );
    assert_eq!(server.seen().stored.len(), 120);
    assert_eq!(cursor_seq(&log), Some(119));
}

#[test]
fn elasticsearch_stores_every_record_once_through_201_409_429_and_5xx_items() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 200);
    let want = ids(&log);
    let server = Server::elastic();
    {
        let mut seen = server.seen();
        seen.item_faults.insert(want[5].clone(), [429, 429].into());
        seen.item_faults.insert(want[77].clone(), [503].into());
        seen.faults.push_back(Fault::too_many(1));
    }
    let url = format!("elasticsearch+{}/nexus-audit", server.base());
    let (code, stderr) = run(&mut ship(&log, &url, &["--batch", "50"]));
    assert_eq!(code, 0, "{stderr}");
    {
        let seen = server.seen();
        assert_eq!(seen.stored.keys().cloned().collect::<Vec<_>>(), {
            let mut w = want.clone();
            w.sort();
            w
        });
        let stored_lines = lines(&log);
        for (i, id) in want.iter().enumerate() {
            let (doc, _) = &seen.stored[id];
            assert_eq!(doc["seq"], i as u64);
            assert_eq!(doc["hash"], sha(&stored_lines[i]).as_str());
            assert_eq!(doc["chain_id"], id.split(':').next().expect("chain"));
        }
        // The batches resent for 429/503 items got 409 for the records stored the first time.
        assert!(seen.stored.values().any(|(_, n)| *n >= 2));
    }
    let t = times(&server, "/_bulk");
    assert!(
        t[1] - t[0] >= Duration::from_millis(950),
        "Retry-After: 1 honoured"
    );
    assert!(
        stderr.matches("sending it again in").count() >= 4,
        "{stderr}"
    );
    assert_eq!(cursor_seq(&log), Some(199));
    // Shipping everything again under a new cursor stores nothing new (every item 409).
    let again = dir.path().join("again.cursor");
    let (code, stderr) = run(&mut ship_with_cursor(
        &log,
        &url,
        &again,
        &["--batch", "50"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(server.seen().stored.len(), 200);
}

#[test]
fn elasticsearch_rejecting_an_item_stops_naming_it_and_the_cursor_stays_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 100);
    let want = ids(&log);
    let server = Server::elastic();
    server
        .seen()
        .item_faults
        .insert(want[45].clone(), [400].into());
    let url = format!("elasticsearch+{}/nexus-audit", server.base());
    let (code, stderr) = run(&mut ship(&log, &url, &["--batch", "20"]));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("seq 45"), "{stderr}");
    assert!(stderr.contains("document_parsing_exception"), "{stderr}");
    assert_eq!(cursor_seq(&log), Some(39));
    let (code, stderr) = run(&mut ship(&log, &url, &["--batch", "20"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(server.seen().stored.len(), 100);
    assert_eq!(cursor_seq(&log), Some(99));
}

#[test]
fn elasticsearch_credentials_are_used_and_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 30);
    let server = Server::elastic();
    server.seen().basic = Some("shipper:Pa55:w0rd".to_owned());
    let wrong = format!(
        "elasticsearch+http://shipper:hunter2-xyz@{}/nexus-audit",
        server.addr
    );
    let (code, stderr) = run(&mut ship(&log, &wrong, &[]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert_eq!(cursor_seq(&log), None);
    let right = format!(
        "elasticsearch+http://shipper:Pa55%3Aw0rd@{}/nexus-audit",
        server.addr
    );
    let (code, stderr) = run(&mut ship(&log, &right, &[]));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("Pa55"), "{stderr}");
    assert_eq!(server.seen().stored.len(), 30);
}

#[test]
fn elasticsearch_down_for_a_while_gets_everything_once_it_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 90);
    let mut server = Server::elastic();
    server.stop();
    let url = format!("elasticsearch+{}/nexus-audit", server.base());
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"))
        .env_clear()
        .arg("--file")
        .arg(&log)
        .args(["ship", "--to", &url, "--batch", "30", "--cursor"])
        .arg(log.with_extension("cursor"))
        .args(FAST)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ship");
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(cursor_seq(&log), None, "nothing acknowledged while down");
    server.restart();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.matches("sending it again in").count() >= 2,
        "{stderr}"
    );
    assert_eq!(server.seen().stored.len(), 90);
    assert_eq!(cursor_seq(&log), Some(89));
}
