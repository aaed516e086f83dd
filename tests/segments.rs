//! Issue 11, readers: every reader treats a rotated log (closed segments, plain and zstd, plus
//! the live file) as the one log it was before rotation.

mod common;
#[path = "common/segments.rs"]
mod segments;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{cli, write_log};
use segments::{close_live, split, write_dated_log};

/// The same log twice: `plain` unrotated and `rotated` cut into segments (every other one
/// compressed), plus the rest in the live file.
fn twin_logs(dir: &Path, n: u64, sizes: &[usize]) -> (PathBuf, PathBuf) {
    let plain = write_log(dir, "plain.jsonl", n);
    let sub = dir.join("rot");
    std::fs::create_dir(&sub).expect("mkdir");
    let rotated = sub.join("plain.jsonl");
    std::fs::copy(&plain, &rotated).expect("copy");
    split(&rotated, sizes, |i| i % 2 == 1);
    (plain, rotated)
}

fn run(log: &Path, args: &[&str]) -> Output {
    let out = cli(log).args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `args` on both logs and asserts the same stdout, byte for byte.
fn same_output(plain: &Path, rotated: &Path, args: &[&str]) {
    let a = run(plain, args);
    let b = run(rotated, args);
    assert!(!a.stdout.is_empty(), "{args:?} printed nothing");
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout),
        "{args:?}"
    );
    assert_eq!(String::from_utf8_lossy(&b.stderr), "", "{args:?}");
}

#[test]
fn readers_give_the_same_output_on_a_rotated_log_with_plain_and_zstd_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, rotated) = twin_logs(dir.path(), 300, &[40, 70, 1, 89, 50]);
    let segs: Vec<_> = std::fs::read_dir(rotated.parent().expect("dir"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(segs.iter().any(|s| s.ends_with(".jsonl.zst")), "{segs:?}");
    assert!(
        segs.iter()
            .filter(|s| s.ends_with("-00000000000000000039.jsonl"))
            .count()
            == 1,
        "{segs:?}"
    );
    for args in [
        &["tail", "-n", "5"][..],
        &["tail", "-n", "120", "--status", "error"],
        &["tail", "-n", "1000", "--output", "json"],
        &["query", "--limit", "0"],
        &[
            "query",
            "--limit",
            "30",
            "--offset",
            "55",
            "--user",
            "bob@example.com",
        ],
        &["query", "--asc", "--limit", "100", "--offset", "35"],
        &["query", "--limit", "0", "--output", "csv"],
        &["stats", "--output", "json"],
        &[
            "stats",
            "--output",
            "json",
            "--last",
            "150",
            "--interval",
            "hour",
        ],
        &["stats", "--output", "json", "--last", "7"],
        &["stats", "--output", "json", "--last", "100000"],
        &["stats", "--output", "json", "--last", "0"],
        &["stats", "--output", "json", "--last", "51"],
        &["stats", "--output", "json", "--tool", "ad_get_user"],
        &["export"],
        &["export", "--format", "csv", "--status", "error"],
        &["export", "--format", "json"],
    ] {
        same_output(&plain, &rotated, args);
    }
}

#[test]
fn checkpoint_of_a_rotated_log_covers_the_same_size_and_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, rotated) = twin_logs(dir.path(), 120, &[30, 30, 30]);
    let key = dir.path().join("cp");
    run(
        &plain,
        &[
            "keygen",
            "--name",
            "test/cp",
            "--out",
            key.to_str().expect("utf-8"),
        ],
    );
    let key = dir.path().join("cp.key");
    let args = [
        "checkpoint",
        "--key",
        key.to_str().expect("utf-8"),
        "--origin",
        "o",
    ];
    let body = |out: Output| -> String {
        // The note's origin, size and head; its time line and signature differ by design.
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let a = body(run(&plain, &args));
    let b = body(run(&rotated, &args));
    assert!(a.lines().count() == 3, "{a}");
    assert_eq!(a, b);
}

#[test]
fn a_log_whose_live_file_was_just_rotated_away_is_read_from_its_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, rotated) = twin_logs(dir.path(), 50, &[20]);
    close_live(&rotated);
    assert!(!rotated.exists());
    same_output(&plain, &rotated, &["query", "--limit", "0"]);
    same_output(&plain, &rotated, &["stats", "--output", "json"]);
}

#[test]
fn stats_since_opens_only_the_segments_in_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 10 segments of 20 records, one minute apart: each segment spans 19 minutes.
    let log = write_dated_log(dir.path(), "t.jsonl", 220, "2026-01-01T00:00:00Z", 60);
    let plain = dir.path().join("plain.jsonl");
    std::fs::copy(&log, &plain).expect("copy");
    let segs = split(&log, &[20; 10], |i| i % 3 == 0);
    let since = "2026-01-01T02:45:00Z"; // inside segment 8 (records 160..179)
    let strace = std::process::Command::new("strace").arg("-V").output();
    assert!(
        strace.is_ok_and(|o| o.status.success()),
        "this test needs strace: install it (apt-get install strace; scripts/test does)"
    );
    let trace = dir.path().join("trace");
    let bin = assert_cmd::cargo::cargo_bin("nexus-audit");
    let out = std::process::Command::new("strace")
        .args(["-f", "-e", "trace=openat,open", "-o"])
        .arg(&trace)
        .arg(&bin)
        .arg("--file")
        .arg(&log)
        .args(["stats", "--output", "json", "--since", since])
        .env_remove("NEXUS_AUDIT_FILE")
        .output()
        .expect("strace");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&trace).expect("trace");
    let opened = |p: &Path| trace.contains(&format!("\"{}\"", p.display()));
    for (i, seg) in segs.iter().enumerate() {
        assert_eq!(
            opened(seg),
            i >= 8,
            "segment {i} {}: opened {}",
            seg.display(),
            opened(seg)
        );
    }
    assert!(opened(&log), "the live file is read");
    // And the numbers are those of the unrotated log.
    let want = run(&plain, &["stats", "--output", "json", "--since", since]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&want.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["total_entries"], 220 - 165);
}

/// Appends raw bytes to a file (creating it 0600 when absent), as a writer's append lands.
fn append_raw(path: &Path, lines: &[Vec<u8>]) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .expect("open for append");
    for l in lines {
        f.write_all(l).expect("write");
        f.write_all(b"\n").expect("write");
    }
}

#[test]
fn tail_follow_across_three_rotations_prints_every_record_once_in_order() {
    use std::io::BufRead as _;
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    // The records as one unrotated log would hold them; the rotated log is fed from them.
    let shadow = write_log(dir.path(), "shadow.jsonl", 120);
    let all = common::lines(&shadow);
    let log = dir.path().join("audit.jsonl");
    append_raw(&log, &all[..10]);
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
    let mut got: Vec<String> = Vec::new();
    let wait_for = |n: usize, got: &mut Vec<String>| {
        while got.len() < n {
            match rx.recv_timeout(Duration::from_secs(15)) {
                Ok(line) => got.push(line),
                Err(_) => break,
            }
        }
    };
    wait_for(10, &mut got);
    let pause = || std::thread::sleep(Duration::from_millis(250));
    // Rotation 1: more records, then close and rename while the follower runs; a new file.
    append_raw(&log, &all[10..30]);
    pause();
    let seg = close_live(&log);
    segments::compress(&log, &seg);
    append_raw(&log, &all[30..40]);
    pause();
    // Rotations 2 and 3 back to back, between two polls: the follower finds the segment
    // closed in between by its seq (it never had that file open).
    append_raw(&log, &all[40..55]);
    close_live(&log);
    append_raw(&log, &all[55..80]);
    let seg = close_live(&log);
    segments::compress(&log, &seg);
    append_raw(&log, &all[80..100]);
    pause();
    append_raw(&log, &all[100..120]);
    wait_for(120, &mut got);
    // Nothing more comes: each record once.
    std::thread::sleep(Duration::from_millis(500));
    got.extend(rx.try_iter());
    let _ = child.kill();
    let _ = child.wait();
    let want: Vec<String> = all
        .iter()
        .map(|l| String::from_utf8(l.clone()).expect("utf-8"))
        .collect();
    assert_eq!(got.len(), want.len(), "records printed");
    assert_eq!(got, want);
}

#[test]
fn a_damaged_compressed_segment_is_one_clear_error_for_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, rotated) = twin_logs(dir.path(), 100, &[30, 30]);
    let zst = rotated.with_file_name(format!(
        "{}.00000000000000000030-00000000000000000059.jsonl.zst",
        "plain.jsonl"
    ));
    assert!(zst.exists());
    std::fs::write(&zst, b"not zstd at all").expect("write");
    for args in [
        &["query", "--limit", "0"][..],
        &["stats"],
        &["export"],
        &["tail", "-n", "100"],
    ] {
        let out = cli(&rotated).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("nexus-audit: error: cannot read the log segment")
                && err.contains("00000000000000000030-00000000000000000059.jsonl.zst"),
            "{args:?}: {err}"
        );
    }
    // verify reports it and goes on.
    let (code, report) = common::verify_json(&rotated);
    assert_eq!(code, 1);
    assert_eq!(
        report["problems"][0]["kind"], "segment_changed",
        "{report:#}"
    );
    assert_eq!(report["records"], 70, "{report:#}");
}
