//! A crash (the process aborted by the fault-injection hooks, as SIGKILL would) at each step
//! of rotation, compression and pruning, then recovery by the next `append`, `rotate` or
//! `prune`: no acknowledged record lost, the concatenation verifies, the manifest agrees with
//! the disk.

mod common;
mod rotation_support;

use std::path::Path;

use common::cli;
use rotation_support::*;

const CRASH: &str = "NEXUS_AUDIT_TEST_CRASH_AT";

/// Runs `args` with the crash point set; it must die (not succeed).
fn crash(log: &Path, point: &str, args: &[&str]) {
    let out = cli(log)
        .env(CRASH, point)
        .args(args)
        .output()
        .expect("test step");
    assert!(
        !out.status.success(),
        "{point}: the command was to crash at the point, it exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No temporary file or quarantine file left among the log's files, and no plain segment
/// beside its `.zst`.
fn assert_tidy(log: &Path, point: &str) {
    let files = segment_files(log);
    for pair in files.windows(2) {
        assert!(
            (pair[0].first, pair[0].last) != (pair[1].first, pair[1].last),
            "{point}: plain and .zst of one range both left: {:?}",
            pair[1].path.display()
        );
    }
}

/// Rotation and compression crash points hit by an `append` that rotates (`--max-size 1`),
/// recovered by the next `append`.
#[test]
fn a_crash_in_rotation_or_compression_during_append_is_finished_by_the_next_append() {
    for (point, written) in [
        ("rotate-after-manifest", false),
        ("rotate-after-rename", false),
        ("compress-after-zst", true),
        ("compress-after-manifest", true),
    ] {
        let dir = tempfile::tempdir().expect("test step");
        let log = dir.path().join("audit.jsonl");
        append(&log, "r0", &[]);
        append(&log, "r1", &[]);
        crash(
            &log,
            point,
            &[
                "append",
                "--tool",
                "t_x",
                "--correlation",
                "r2",
                "--max-size",
                "1",
            ],
        );
        append(&log, "r3", &["--max-size", "1MiB"]);
        append(&log, "r4", &["--max-size", "1MiB"]);
        let records = verify_concatenation(&log);
        let mut want = vec!["r0", "r1"];
        if written {
            want.push("r2");
        }
        want.extend(["r3", "r4"]);
        assert_eq!(correlation_ids(&records), want, "{point}");
        let m = check_manifest(&log);
        assert_eq!(
            events(&m, "segment_closed").len(),
            1,
            "{point}: rotated once"
        );
        let files = segment_files(&log);
        assert_eq!(files.len(), 1, "{point}");
        assert!(files[0].zst, "{point}: the compression was finished");
        assert_eq!(events(&m, "segment_compressed").len(), 1, "{point}");
        assert_tidy(&log, point);
    }
}

/// The same crash points hit by `rotate`, recovered by running `rotate` again (then an
/// `append`).
#[test]
fn a_crash_in_rotate_is_finished_by_rotate_run_again() {
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
        crash(&log, point, &["rotate"]);
        cli(&log).arg("rotate").assert().success();
        append(&log, "r2", &[]);
        let records = verify_concatenation(&log);
        assert_eq!(correlation_ids(&records), ["r0", "r1", "r2"], "{point}");
        let m = check_manifest(&log);
        assert_eq!(events(&m, "segment_closed").len(), 1, "{point}");
        let files = segment_files(&log);
        assert_eq!(files.len(), 1, "{point}");
        assert!(files[0].zst, "{point}");
        assert_eq!(files[0].last, 1, "{point}");
        assert_tidy(&log, point);
    }
}

/// Each crash point of `prune --archive`, recovered by `prune` run again: both old segments
/// pruned once each, archived with the right hash, one `segments_pruned` record naming both.
#[test]
fn a_crash_in_prune_is_finished_by_prune_run_again() {
    for point in [
        "prune-after-archive",
        "prune-after-manifest",
        "prune-before-live-record",
    ] {
        let dir = tempfile::tempdir().expect("test step");
        let logdir = dir.path().join("logs");
        let archive = dir.path().join("archive");
        std::fs::create_dir(&logdir).expect("test step");
        std::fs::create_dir(&archive).expect("test step");
        let log = log_with_old_segments(&logdir);
        let args = [
            "prune",
            "--older-than",
            "90d",
            "--archive",
            archive.to_str().expect("test step"),
        ];
        crash(&log, point, &args);
        cli(&log).args(args).assert().success();

        let files = segment_files(&log);
        assert_eq!(files.len(), 1, "{point}: the young segment stays");
        let m = check_manifest(&log);
        let pruned = events(&m, "segment_pruned");
        assert_eq!(pruned.len(), 2, "{point}: each segment pruned once");
        for a in events(&m, "segment_archived") {
            let copy = std::fs::read(a["archive"].as_str().expect("test step")).expect("test step");
            assert_eq!(
                a["sha256"].as_str(),
                Some(sha256_hex(&copy).as_str()),
                "{point}"
            );
        }
        for p in &pruned {
            assert!(
                Path::new(p["archive"].as_str().expect("test step")).exists(),
                "{point}: the archive copy is there"
            );
        }
        let live = records(&std::fs::read(&log).expect("test step"));
        let notes: Vec<_> = live
            .iter()
            .filter(|r| r["action"] == "segments_pruned")
            .collect();
        assert_eq!(notes.len(), 1, "{point}: one segments_pruned record");
        assert_eq!(notes[0]["details"]["through_seq"], 2, "{point}");
        assert_eq!(
            notes[0]["details"]["files"].as_array().map(Vec::len),
            Some(2),
            "{point}: {}",
            notes[0]
        );
        assert_eq!(notes[0]["details"]["head_hash"], pruned[1]["head_hash"]);
        // What remains is one chain from the last pruned head to the live file's end.
        let remaining = verify_concatenation_from(&log, &pruned[1]);
        assert_eq!(correlation_ids(&remaining), ["c1", "live"], "{point}");
        assert_tidy(&log, point);
    }
}

/// The remaining segments and the live file, after a prune: their first record links to the
/// last pruned segment's head, and every later link holds (checked by `verify` on the
/// concatenation with the pruned head's record in front... which is gone, so the links are
/// checked here).
fn verify_concatenation_from(
    log: &Path,
    last_pruned: &serde_json::Value,
) -> Vec<serde_json::Value> {
    let bytes = concatenation(log);
    let mut prev = last_pruned["head_hash"]
        .as_str()
        .expect("test step")
        .to_owned();
    let mut seq = last_pruned["last_seq"].as_u64().expect("test step");
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let r: serde_json::Value = serde_json::from_slice(line).expect("test step");
        seq += 1;
        assert_eq!(r["seq"].as_u64(), Some(seq));
        assert_eq!(r["prev_hash"].as_str(), Some(prev.as_str()));
        prev = sha256_hex(line);
    }
    records(&bytes)
        .into_iter()
        .filter(|r| r["action"] != "segments_pruned")
        .collect()
}
