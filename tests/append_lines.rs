//! The stdin pipeline as library API (`Logger::append_lines`) and "write now, sync once at the
//! end" as a durability (`Durability::SyncOnClose`, `append --durability sync-on-close`): the
//! library through a pipe, the binary under strace.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{cli, lines, verify_json};
use nexus_audit::hash_line;
use nexus_audit::{Durability, Error, Event, LinesEnd, LinesOptions, LogOptions, Receipt};
use serde_json::{Value, json};

fn record(line: &[u8]) -> Value {
    serde_json::from_slice(line).expect("a record line is JSON")
}

/// Lines written to a pipe by another thread, read by `append_lines` on this one.
fn append_through_pipe(
    log: &Path,
    options: &LinesOptions,
    input: &'static [u8],
) -> nexus_audit::Result<nexus_audit::LinesSummary> {
    let logger = LogOptions::new(log)
        .durability(Durability::None)
        .open()
        .expect("open log");
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    let feeder = std::thread::spawn(move || {
        // NOTE: a write may fail once the reader stopped on a bad line; that is the test.
        let _ = writer.write_all(input);
    });
    let result = logger.append_lines(&reader, options);
    drop(reader);
    feeder.join().expect("feeder");
    logger.close().expect("close");
    result
}

#[test]
fn append_lines_appends_every_line_with_the_defaults_and_says_what_it_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let options = LinesOptions::new()
        .batch(2)
        .defaults(Event::default().user("svc").server("s1"));
    let summary = append_through_pipe(
        &log,
        &options,
        b"{\"tool\":\"a\"}\n\n   \n{\"tool\":\"b\",\"user_id\":\"alice\"}\n{\"tool\":\"c\"}",
    )
    .expect("append");
    let stored = lines(&log);
    assert_eq!(
        stored.len(),
        3,
        "blank lines are skipped, the last needs no LF"
    );
    assert_eq!(summary.appended, 3);
    assert_eq!(summary.first_seq, Some(0));
    let last = summary.last.expect("a head");
    assert_eq!((last.seq, last.hash), (2, hash_line(&stored[2])));
    assert_eq!(summary.end, LinesEnd::Eof);
    let users: Vec<Value> = stored
        .iter()
        .map(|l| record(l)["user_id"].clone())
        .collect();
    assert_eq!(users, [json!("svc"), json!("alice"), json!("svc")]);
    assert!(stored.iter().all(|l| record(l)["server_id"] == "s1"));
    assert_eq!(verify_json(&log).0, 0);
}

#[test]
fn append_lines_names_a_bad_line_and_counts_the_records_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let options = LinesOptions::new().batch(1).name("the feed");
    let err = append_through_pipe(
        &log,
        &options,
        b"{\"tool\":\"a\"}\n{\"tool\":\"b\"}\n{\"tool\":5}\n{\"tool\":\"d\"}\n",
    )
    .expect_err("line 3 is not an event");
    assert_eq!(err.to_string(), "wrote 2 records, then stopped", "{err:?}");
    let Error::LinesStopped { appended, source } = &err else {
        panic!("not LinesStopped: {err:?}");
    };
    assert_eq!(*appended, 2);
    assert!(
        matches!(&**source, Error::BadLine { input, line: 3, .. } if input == "the feed"),
        "{source:?}"
    );
    let chain: Vec<String> =
        std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect();
    assert_eq!(
        chain,
        [
            "wrote 2 records, then stopped",
            "the feed line 3",
            "invalid event: field `tool` must be a string, found a number",
        ]
    );
    assert_eq!(lines(&log).len(), 2, "nothing from the bad line on");

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let err = append_through_pipe(
        &log,
        &LinesOptions::new().batch(1),
        b"{\"tool\":\"a\"}\n\xff\xfe\n",
    )
    .expect_err("line 2 is not UTF-8");
    let Error::LinesStopped {
        appended: 1,
        source,
    } = &err
    else {
        panic!("not LinesStopped after 1 record: {err:?}");
    };
    assert_eq!(source.to_string(), "input line 2 is not valid UTF-8");
}

/// The stop flag ends the reading: every complete line read is written, a line still without
/// its LF is not, and the summary says how many bytes of it were left.
#[test]
fn the_stop_flag_writes_every_complete_line_read_and_leaves_the_cut_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let logger = LogOptions::new(&log)
        .durability(Durability::None)
        .open()
        .expect("open log");
    let stop = Arc::new(AtomicBool::new(false));
    let options = LinesOptions::new().stop_flag(Arc::clone(&stop));
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    let partial = b"{\"tool\":\"cut";
    let raiser = {
        let log = log.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            writer
                .write_all(b"{\"tool\":\"a\"}\n{\"tool\":\"b\"}\n")
                .expect("write");
            // Wait until the first batch is in the file, so the flag comes mid-stream.
            let start = Instant::now();
            let written = || {
                let bytes = std::fs::read(&log).unwrap_or_default();
                bytes.iter().filter(|b| **b == b'\n').count()
            };
            while written() < 2 {
                assert!(start.elapsed() < Duration::from_secs(10), "never written");
                std::thread::sleep(Duration::from_millis(5));
            }
            writer.write_all(b"{\"tool\":\"c\"}\n").expect("write");
            writer.write_all(partial).expect("write");
            stop.store(true, Ordering::SeqCst);
            // The writer end stays open: the reader must not wait for its end.
            std::thread::sleep(Duration::from_millis(300));
            drop(writer);
        })
    };
    let summary = logger.append_lines(&reader, &options).expect("append");
    raiser.join().expect("raiser");
    assert_eq!(
        summary.end,
        LinesEnd::Stopped {
            cut_short: partial.len()
        }
    );
    assert_eq!(summary.appended, 3);
    let stored = lines(&log);
    assert_eq!(stored.len(), 3);
    assert_eq!(record(&stored[2])["tool"], "c");
}

/// `SyncOnClose` writes at once (each append gets its records' heads) and syncs on flush.
#[test]
fn sync_on_close_writes_at_once_and_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let logger = LogOptions::new(&log)
        .durability(Durability::SyncOnClose)
        .open()
        .expect("open log");
    for i in 0..3u64 {
        let receipt = logger
            .append(Event::new("mcp_call").tool("t"))
            .expect("append");
        assert!(matches!(receipt, Receipt::Written { .. }), "{receipt:?}");
        assert_eq!(receipt.last().map(|h| h.seq), Some(i));
        assert_eq!(lines(&log).len() as u64, i + 1, "written at once");
    }
    logger.flush().expect("flush");
    logger.flush().expect("a second flush has nothing to sync");
    logger.close().expect("close");
    assert_eq!(verify_json(&log).0, 0);
}

/// The `fdatasync` calls `append --stdin` makes on the log for `durability`, six records in
/// three batches.
fn fdatasyncs(dir: &Path, durability: &str) -> usize {
    let log = dir.join(format!("{durability}.jsonl"));
    let trace = dir.join(format!("{durability}.strace"));
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=fdatasync", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_nexus-audit"))
        .arg("--file")
        .arg(&log)
        .args([
            "append",
            "--stdin",
            "--batch",
            "2",
            "--durability",
            durability,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd.spawn().expect("run strace");
    let input: String = (0..6).map(|i| format!("{{\"tool\":\"t{i}\"}}\n")).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{durability}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(summary["appended"], 6, "{durability}");
    assert_eq!(verify_json(&log).0, 0);
    let trace = std::fs::read_to_string(&trace).expect("strace output");
    trace.matches("fdatasync(").count()
}

/// `sync-on-close` (and its older name `buffered`) writes each batch at once and syncs the
/// log exactly once, at the end; `sync` syncs each write; `none` never.
#[test]
fn sync_on_close_syncs_once_at_the_end_and_buffered_is_its_older_name() {
    let works = Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        works,
        "this test counts fdatasync calls with strace: install it (apt-get install strace) and allow ptrace"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(fdatasyncs(dir.path(), "sync-on-close"), 1);
    assert_eq!(fdatasyncs(dir.path(), "buffered"), 1);
    assert_eq!(fdatasyncs(dir.path(), "sync"), 3);
    assert_eq!(fdatasyncs(dir.path(), "none"), 0);
}

/// One event under `sync-on-close` gets its exact receipt, as under the other durabilities.
#[test]
fn append_keeps_its_receipts_exact_under_sync_on_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let out = cli(&log)
        .args(["append", "--tool", "a", "--durability", "sync-on-close"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let stored = lines(&log);
    let receipt: Value = serde_json::from_slice(&out.stdout).expect("receipt");
    assert_eq!(
        receipt,
        json!({"seq": 0, "hash": hex::encode(hash_line(&stored[0]))})
    );
}
