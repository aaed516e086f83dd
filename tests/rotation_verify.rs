//! Rotated logs written by the writer, read by the segment-aware readers: `verify` on the
//! log itself (not a concatenation), after pruning (anchored on the manifest), `verify
//! --archive`, and `stats` counting only what remains. The readers are built on another
//! branch; these tests are enabled when both are merged.

mod common;
mod rotation_support;

use common::cli;
use rotation_support::*;
use serde_json::Value;

fn verify(log: &std::path::Path, extra: &[&str]) -> (i32, Value) {
    let out = cli(log)
        .args(["verify", "--output", "json"])
        .args(extra)
        .output()
        .expect("test step");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no JSON report: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn stats_total(log: &std::path::Path) -> u64 {
    let out = cli(log)
        .args(["stats", "--output", "json"])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).expect("test step");
    v["total_entries"].as_u64().expect("test step")
}

/// A log rotated by `append --max-size` (compressed and plain segments) verifies clean as
/// it is, every record counted once.
#[test]
fn verify_reads_a_rotated_log_as_one_chain() {
    let dir = tempfile::tempdir().expect("test step");
    let log = dir.path().join("audit.jsonl");
    for i in 0..30 {
        let compress = if i % 2 == 0 { "zstd" } else { "none" };
        append(
            &log,
            &format!("r{i}"),
            &["--max-size", "2000", "--compress", compress],
        );
    }
    assert!(segment_files(&log).len() >= 3);
    let (code, report) = verify(&log, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["records"], 30);
    assert_eq!(stats_total(&log), 30);
}

/// After `prune --archive`: verify is clean and says where the chain is anchored, `stats`
/// counts only what remains, and `verify --archive DIR` checks the archived segments too.
#[test]
fn verify_after_pruning_is_anchored_and_archives_verify() {
    let dir = tempfile::tempdir().expect("test step");
    let logdir = dir.path().join("logs");
    let archive = dir.path().join("archive");
    std::fs::create_dir(&logdir).expect("test step");
    std::fs::create_dir(&archive).expect("test step");
    let log = log_with_old_segments(&logdir);
    assert_eq!(stats_total(&log), 5);
    cli(&log)
        .args(["prune", "--older-than", "90d", "--archive"])
        .arg(&archive)
        .assert()
        .success();

    let (code, report) = verify(&log, &[]);
    assert_eq!(code, 0, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("anchored"),
        "verify says where it is anchored: {text}"
    );
    // c1, live, and the segments_pruned record.
    assert_eq!(stats_total(&log), 3);

    let (code, report) = verify(&log, &["--archive", archive.to_str().expect("test step")]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["records"], 6,
        "the archived records are checked too: {report}"
    );
}

/// A rotation or compression cut by a crash at any step leaves a log that `verify` reads
/// clean as it is (before any writer finishes the step), every record once.
#[test]
fn verify_is_clean_at_every_crash_point_of_rotation_and_compression() {
    for point in [
        "rotate-after-manifest",
        "rotate-after-rename",
        "compress-after-zst",
        "compress-after-manifest",
    ] {
        let dir = tempfile::tempdir().expect("test step");
        let log = dir.path().join("audit.jsonl");
        append(&log, "r0", &[]);
        append(&log, "r1", &[]);
        let out = cli(&log)
            .env("NEXUS_AUDIT_TEST_CRASH_AT", point)
            .arg("rotate")
            .output()
            .expect("test step");
        assert!(!out.status.success(), "{point}: the rotate was to crash");
        let (code, report) = verify(&log, &[]);
        assert_eq!(code, 0, "{point}: {report}");
        assert_eq!(report["records"], 2, "{point}: {report}");
        assert_eq!(stats_total(&log), 2, "{point}");
    }
}

#[test]
fn tail_follow_prints_every_record_once_while_the_writer_rotates_three_times() {
    use std::io::BufRead as _;
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let append = |from: u64, to: u64| {
        let input: String = (from..to)
            .map(|i| format!("{{\"tool\":\"ad_get_user\",\"correlation_id\":\"c{i}\"}}\n"))
            .collect();
        cli(&log)
            .args([
                "append",
                "--stdin",
                "--max-size",
                "4KiB",
                "--compress",
                "zstd",
            ])
            .write_stdin(input)
            .assert()
            .success();
    };
    append(0, 5);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"))
        .env_remove("NEXUS_AUDIT_FILE")
        .arg("--file")
        .arg(&log)
        .args(["tail", "-n", "1000", "--follow", "--output", "jsonl"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tail --follow");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Batches of 10 records (about 4.6 KiB): each append after the first rotates first.
    for batch in 0..6u64 {
        std::thread::sleep(Duration::from_millis(150));
        append(5 + batch * 10, 15 + batch * 10);
    }
    let total = 65;
    let mut got: Vec<String> = Vec::new();
    while got.len() < total {
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) => got.push(line),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    got.extend(rx.try_iter());
    let _ = child.kill();
    let _ = child.wait();
    let segments = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl.0"))
        })
        .count();
    assert!(
        segments >= 3,
        "the writer rotated at least three times ({segments} segments)"
    );
    let ids: Vec<String> = got
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["correlation_id"].as_str().expect("id").to_owned()
        })
        .collect();
    let want: Vec<String> = (0..total).map(|i| format!("c{i}")).collect();
    assert_eq!(ids, want, "every record once, in order");
}

#[test]
fn a_segment_cut_in_the_middle_of_a_line_is_not_blamed_on_a_next_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.jsonl");
    let input: String = (0..30)
        .map(|i| format!("{{\"tool\":\"ad_get_user\",\"correlation_id\":\"c{i}\"}}\n"))
        .collect();
    cli(&log)
        .args(["append", "--stdin"])
        .write_stdin(input)
        .assert()
        .success();
    cli(&log)
        .args(["rotate", "--compress", "none"])
        .assert()
        .success();
    cli(&log)
        .args(["append", "--tool", "x", "--compress", "none"])
        .assert()
        .success();
    let segment = dir
        .path()
        .join("a.jsonl.00000000000000000000-00000000000000000029.jsonl");
    let bytes = std::fs::read(&segment).expect("segment");
    std::fs::write(&segment, &bytes[..bytes.len() - 20]).expect("cut");
    let out = cli(&log)
        .args(["verify", "--output", "json"])
        .output()
        .expect("verify");
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    let problems = report["problems"].as_array().expect("problems");
    let torn = problems
        .iter()
        .find(|p| p["kind"] == "torn_tail")
        .expect("a torn tail in the segment");
    assert_eq!(
        torn["file"],
        segment
            .file_name()
            .expect("name")
            .to_string_lossy()
            .as_ref()
    );
    let message = torn["message"].as_str().expect("message");
    assert!(message.contains("closed segment"), "{message}");
    assert!(!message.contains("next append"), "{message}");
    assert!(problems.iter().any(|p| p["kind"] == "segment_changed"));
}
