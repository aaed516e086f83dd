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
