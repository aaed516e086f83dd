//! Rotation, compression and pruning through the real binary (issue 11, writer side). Each
//! rotated log is checked as any independent verifier of the single-file format would: the
//! decompressed segments in seq order, then the live file, must be one valid log.

mod common;
mod rotation_support;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::Stdio;

use common::cli;
use rotation_support::*;
use serde_json::Value;

/// Four writer processes append 20,000 records in all through `append --stdin` with
/// `--max-size 1MiB`: the file is rotated many times while they write, each time once, and
/// nothing is lost, duplicated or unchained.
#[test]
fn four_writers_rotating_at_1mib_keep_every_record_in_one_chain() {
    let dir = tempfile::tempdir().expect("test step");
    let log = dir.path().join("audit.jsonl");
    let per_writer = 5000;
    let children: Vec<_> = (0..4)
        .map(|w| {
            let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"))
                .env_clear()
                .args(["--file"])
                .arg(&log)
                .args([
                    "append",
                    "--stdin",
                    "--batch",
                    "40",
                    "--max-size",
                    "1MiB",
                    "--durability",
                    "none",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("test step");
            let mut stdin = child.stdin.take().expect("test step");
            let pad = "x".repeat(200);
            let mut input = String::new();
            for i in 0..per_writer {
                writeln!(
                    input,
                    "{{\"tool\":\"helix_create_ticket\",\"user_id\":\"writer-{w}\",\"correlation_id\":\"w{w}-{i}\",\"details\":{{\"pad\":\"{pad}\"}}}}"
                )
                .expect("test step");
            }
            std::thread::spawn(move || {
                stdin.write_all(input.as_bytes()).expect("test step");
            });
            child
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("test step");
        assert!(
            out.status.success(),
            "a writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let records = verify_concatenation(&log);
    assert_eq!(records.len(), 4 * per_writer);
    let ids: HashSet<String> = correlation_ids(&records).into_iter().collect();
    assert_eq!(ids.len(), 4 * per_writer, "every record present once");
    let event_ids: HashSet<&str> = records
        .iter()
        .map(|r| r["event_id"].as_str().expect("test step"))
        .collect();
    assert_eq!(event_ids.len(), records.len(), "no event_id twice");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r["seq"].as_u64(),
            Some(i as u64),
            "one seq run across files"
        );
    }

    let files = segment_files(&log);
    assert!(files.len() >= 8, "many rotations: {} segments", files.len());
    assert!(
        files.iter().all(|s| s.zst),
        "closed segments are compressed by default"
    );
    let m = check_manifest(&log);
    assert_eq!(
        events(&m, "segment_closed").len(),
        files.len(),
        "one segment_closed per segment"
    );
    assert_eq!(events(&m, "segment_compressed").len(), files.len());
    for s in &files {
        // Rotation happens before a write once the file is ≥ 1 MiB: no segment holds much
        // more than 1 MiB plus one write.
        let size = segment_bytes(s).len();
        assert!(
            size >= 1 << 20,
            "a segment is closed at 1 MiB, not before: {size}"
        );
        assert!(size < (1 << 20) + 200_000, "closed once, not late: {size}");
    }
}

/// `rotate` on a log with no file and on an empty file does nothing; on a log of one record
/// it closes that record into a segment, and the next append continues the chain from it.
#[test]
fn explicit_rotate_on_an_empty_log_and_on_one_record() {
    let dir = tempfile::tempdir().expect("test step");
    let log = dir.path().join("audit.jsonl");
    let out = cli(&log).arg("rotate").assert().success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).expect("test step");
    assert_eq!(v["rotated"], false);
    assert!(!log.exists(), "rotate creates no live file");
    assert!(!manifest(&log).exists(), "nor a manifest");

    std::fs::File::create(&log).expect("test step");
    let out = cli(&log).arg("rotate").assert().success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).expect("test step");
    assert_eq!(v["rotated"], false);
    assert!(segment_files(&log).is_empty());

    append(&log, "only", &[]);
    let out = cli(&log).arg("rotate").assert().success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).expect("test step");
    assert_eq!(v["rotated"], true, "{v}");
    assert_eq!(v["first_seq"], 0);
    assert_eq!(v["last_seq"], 0);
    let files = segment_files(&log);
    assert_eq!(files.len(), 1);
    assert!(files[0].zst);
    assert!(
        !log.exists(),
        "the live file is renamed; the next append creates it"
    );

    append(&log, "after", &[]);
    let records = verify_concatenation(&log);
    assert_eq!(correlation_ids(&records), ["only", "after"]);
    assert_eq!(records[1]["seq"], 1);
    let m = check_manifest(&log);
    let closed = events(&m, "segment_closed");
    assert_eq!(closed[0]["head_hash"], records[1]["prev_hash"]);
    let first_segment = segment_bytes(&files[0]);
    let first_line = first_segment
        .split(|&b| b == b'\n')
        .next()
        .expect("test step");
    assert_eq!(
        closed[0]["chain_id"].as_str().expect("test step"),
        sha256_hex(first_line),
        "chain_id is the hash of the log's first line"
    );
    for r in &m {
        assert_eq!(r["source"], "nexus-audit", "manifest records' source");
    }

    // A second rotate right away, and `--compress none`.
    cli(&log)
        .args(["rotate", "--compress", "none"])
        .assert()
        .success();
    let files = segment_files(&log);
    assert_eq!(files.len(), 2);
    assert!(!files[1].zst, "--compress none keeps the segment plain");
    append(&log, "third", &[]);
    assert_eq!(
        correlation_ids(&verify_concatenation(&log)),
        ["only", "after", "third"]
    );
    check_manifest(&log);
}

/// `append --max-age`: a live file whose first record is older than the span is closed before
/// the next write; a young one is not.
#[test]
fn append_max_age_rotates_a_file_whose_first_record_is_old() {
    let dir = tempfile::tempdir().expect("test step");
    let log = dir.path().join("audit.jsonl");
    append(&log, "old-1", &["--timestamp", "2020-01-01T00:00:00Z"]);
    append(
        &log,
        "old-2",
        &["--max-age", "1d", "--timestamp", "2020-01-01T00:00:01Z"],
    );
    assert_eq!(
        segment_files(&log).len(),
        1,
        "the 2020 file was closed before the write"
    );
    append(&log, "new-1", &["--max-age", "1d"]);
    append(&log, "new-2", &["--max-age", "1d", "--compress", "none"]);
    let files = segment_files(&log);
    assert_eq!(
        files.len(),
        2,
        "old-2's file was closed too (its first record is old)"
    );
    append(&log, "new-3", &["--max-age", "1d"]);
    assert_eq!(
        segment_files(&log).len(),
        2,
        "a young live file is not rotated"
    );
    let records = verify_concatenation(&log);
    assert_eq!(
        correlation_ids(&records),
        ["old-1", "old-2", "new-1", "new-2", "new-3"]
    );
    check_manifest(&log);
}

/// Bad rotation flags: one sentence on stderr, exit 2, nothing written.
#[test]
fn bad_rotation_flags_are_refused_with_one_sentence() {
    let dir = tempfile::tempdir().expect("test step");
    let log = dir.path().join("audit.jsonl");
    for args in [
        &["append", "--tool", "t", "--max-size", "12parsecs"][..],
        &["append", "--tool", "t", "--max-size", "0"],
        &["append", "--tool", "t", "--max-age", "soon"],
        &["append", "--tool", "t", "--compress", "gzip2"],
        &["prune", "--older-than", "5x"],
        &["prune", "--older-than", "0d"],
    ] {
        let out = cli(&log).args(args).assert().code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("nexus-audit: error:"), "{stderr}");
    }
    assert!(!log.exists());
}

fn tree(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("test step")
        .map(|e| {
            let e = e.expect("test step");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

/// `prune --dry-run` prints what it would remove and changes nothing; `prune --archive`
/// copies each old segment (the copy's SHA-256 in the manifest), removes it, records it in the
/// manifest and once in the live log; the remaining chain links to the last pruned head.
#[test]
fn prune_with_archive_and_dry_run() {
    let dir = tempfile::tempdir().expect("test step");
    let logdir = dir.path().join("logs");
    std::fs::create_dir(&logdir).expect("test step");
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).expect("test step");
    let log = log_with_old_segments(&logdir);
    let before = tree(&logdir);
    let all_before = verify_concatenation(&log);

    let out = cli(&log)
        .args(["prune", "--older-than", "90d", "--dry-run", "--archive"])
        .arg(&archive)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(
        stdout.matches("would prune audit.jsonl.").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("nothing was changed"), "{stdout}");
    assert_eq!(tree(&logdir), before, "a dry run changes nothing");
    assert!(
        std::fs::read_dir(&archive)
            .expect("test step")
            .next()
            .is_none()
    );

    let out = cli(&log)
        .args(["prune", "--older-than", "90d", "--archive"])
        .arg(&archive)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(stdout.matches("pruned audit.jsonl.").count(), 2, "{stdout}");

    let files = segment_files(&log);
    assert_eq!(files.len(), 1, "only the young segment stays");
    assert_eq!(files[0].first, 3);
    let m = check_manifest(&log);
    let closed = events(&m, "segment_closed");
    let pruned = events(&m, "segment_pruned");
    let archived = events(&m, "segment_archived");
    assert_eq!(pruned.len(), 2);
    assert_eq!(archived.len(), 2);
    let want = [
        "audit.jsonl.00000000000000000000-00000000000000000001.jsonl.zst",
        "audit.jsonl.00000000000000000002-00000000000000000002.jsonl",
    ];
    for (i, name) in want.iter().enumerate() {
        assert_eq!(pruned[i]["file"], *name);
        assert_eq!(archived[i]["file"], *name);
        let copy = archive.join(name);
        let bytes = std::fs::read(&copy).expect("test step");
        assert_eq!(
            archived[i]["sha256"].as_str(),
            Some(sha256_hex(&bytes).as_str())
        );
        assert_eq!(
            pruned[i]["archive"].as_str(),
            Some(copy.to_str().expect("test step"))
        );
        assert_eq!(pruned[i]["head_hash"], closed[i]["head_hash"]);
        let original = all_before
            .iter()
            .filter(|r| {
                let s = r["seq"].as_u64().expect("test step");
                s >= pruned[i]["first_seq"].as_u64().expect("test step")
                    && s <= pruned[i]["last_seq"].as_u64().expect("test step")
            })
            .count();
        let decoded = if std::path::Path::new(name)
            .extension()
            .is_some_and(|e| e == "zst")
        {
            zstd::decode_all(bytes.as_slice()).expect("test step")
        } else {
            bytes
        };
        assert_eq!(
            records(&decoded).len(),
            original,
            "the archive holds the records"
        );
    }
    // The compressed archive's hash is the one the manifest recorded at compression time.
    let compressed = events(&m, "segment_compressed");
    assert_eq!(compressed[0]["sha256"], archived[0]["sha256"]);

    // The live log says so, once, and the remaining chain starts on the last pruned head.
    let live = records(&std::fs::read(&log).expect("test step"));
    let note: Vec<&Value> = live
        .iter()
        .filter(|r| r["action"] == "segments_pruned")
        .collect();
    assert_eq!(note.len(), 1);
    assert_eq!(note[0]["details"]["through_seq"], 2);
    assert_eq!(note[0]["details"]["head_hash"], pruned[1]["head_hash"]);
    assert_eq!(note[0]["details"]["files"], serde_json::json!(want));
    assert_eq!(note[0]["details"]["archive"].as_str(), archive.to_str());
    let remaining = records(&segment_bytes(&files[0]));
    assert_eq!(remaining[0]["prev_hash"], pruned[1]["head_hash"]);

    // Nothing more to prune: a second run changes nothing and writes no record.
    let tree_after = tree(&logdir);
    let out = cli(&log)
        .args(["prune", "--older-than", "90d"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("nothing to prune"));
    assert_eq!(tree(&logdir), tree_after);
}

/// Without `--archive` the segments go with `archive: null`; the live file is never pruned,
/// even when all its records are old.
#[test]
fn prune_without_archive_never_removes_the_live_file() {
    let dir = tempfile::tempdir().expect("test step");
    let log = dir.path().join("audit.jsonl");
    append(&log, "a1", &["--timestamp", "2020-01-01T00:00:00Z"]);
    cli(&log).arg("rotate").assert().success();
    append(&log, "b1", &["--timestamp", "2020-02-01T00:00:00Z"]);
    cli(&log).arg("prune").assert().success(); // default --older-than 90d
    assert!(segment_files(&log).is_empty());
    assert!(log.exists(), "the live file is never pruned");
    let m = check_manifest(&log);
    let pruned = events(&m, "segment_pruned");
    assert_eq!(pruned.len(), 1);
    assert!(pruned[0]["archive"].is_null());
    assert!(events(&m, "segment_archived").is_empty());
    let live = records(&std::fs::read(&log).expect("test step"));
    assert_eq!(live.len(), 2, "b1 and the segments_pruned record");
    assert_eq!(live[1]["action"], "segments_pruned");
    assert!(live[1]["details"]["archive"].is_null());
    assert_eq!(live[0]["prev_hash"], pruned[0]["head_hash"]);
    cli(&log)
        .args(["prune", "--older-than", "1s"])
        .assert()
        .success();
    assert!(log.exists());
}

/// An archive directory that is missing or not a directory: one sentence, exit 2, nothing
/// pruned.
#[test]
fn prune_refuses_an_archive_that_is_not_a_writable_directory() {
    let dir = tempfile::tempdir().expect("test step");
    let log = log_with_old_segments(dir.path());
    let not_dir = dir.path().join("plain-file");
    std::fs::write(&not_dir, b"x").expect("test step");
    let before = tree(dir.path());
    for (target, says) in [
        (dir.path().join("missing"), "it does not exist"),
        (not_dir, "it is not a directory"),
    ] {
        let out = cli(&log)
            .args(["prune", "--archive"])
            .arg(&target)
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains("nothing was pruned"), "{stderr}");
    }
    assert_eq!(tree(dir.path()), before);
}

/// Manifest records are written by the library's writer unchanged: their hashes are the
/// files' (no redaction rule touched the hex), and the log's own redaction rules do not
/// apply to them.
#[test]
fn manifest_records_hold_the_files_hashes_unredacted() {
    let dir = tempfile::tempdir().expect("test step");
    let log = dir.path().join("audit.jsonl");
    append(&log, "a", &[]);
    cli(&log)
        .args(["rotate", "--compress", "none"])
        .assert()
        .success();
    let m = check_manifest(&log); // compares sha256 and head_hash against the files
    let closed = events(&m, "segment_closed");
    let seg = segment_bytes(&segment_files(&log)[0]);
    let line = seg.strip_suffix(b"\n").expect("test step");
    assert_eq!(
        closed[0]["head_hash"].as_str(),
        Some(sha256_hex(line).as_str())
    );
    let text = std::fs::read_to_string(manifest(&log)).expect("test step");
    assert!(!text.contains("REDACTED"), "{text}");
}

/// Sealing goes on across rotations: the seals of the concatenated log verify with the
/// initial key, through its last record.
#[test]
fn seals_continue_across_rotations() {
    let dir = tempfile::tempdir().expect("test step");
    let log = dir.path().join("audit.jsonl");
    let keys = dir.path().join("keys");
    cli(&log)
        .args(["seal", "init", "--out"])
        .arg(&keys)
        .assert()
        .success();
    let key = keys.join("seal.key");
    for i in 0..12 {
        append(
            &log,
            &format!("s{i}"),
            &[
                "--seal-key",
                key.to_str().expect("test step"),
                "--seal-every",
                "3",
                "--max-size",
                "1500",
            ],
        );
    }
    assert!(segment_files(&log).len() >= 2, "rotated");
    let records = verify_concatenation(&log);
    assert_eq!(correlation_ids(&records).len(), 12);
    let joined = dir.path().join("joined.jsonl");
    std::fs::write(&joined, concatenation(&log)).expect("test step");
    let out = cli(&joined)
        .args(["verify", "--output", "json", "--seal-verify"])
        .arg(keys.join("seal.verify"))
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).expect("test step");
    assert_eq!(
        report["sealed_through_seq"],
        records.len() as u64 - 1,
        "{report}"
    );
    assert_eq!(report["unsealed_records"], 0);
    check_manifest(&log);
}
