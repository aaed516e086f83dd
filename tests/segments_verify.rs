//! Issue 11, verify on a rotated log: one chain across segments and the live file, each
//! segment checked against the manifest, each problem with a kind of its own and the `file`
//! it concerns, and verification going on past it; anchoring after pruning; `--archive`.

mod common;
#[path = "common/segments.rs"]
mod segments;

use std::path::{Path, PathBuf};

use common::{cli, lines, verify_json, write_lines, write_log};
use segments::{prune, record_close, split};
use serde_json::Value;

/// A log of 200 records cut into 5 segments of 30 (segments 1 and 3 compressed), the rest
/// (50) in the live file. Returns the log and its segments.
fn rotated(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let log = write_log(dir, "audit.jsonl", 200);
    let segs = split(&log, &[30; 5], |i| i % 2 == 1);
    (log, segs)
}

fn name(p: &Path) -> String {
    p.file_name().expect("name").to_string_lossy().into_owned()
}

/// The problems of the report as `(kind, file)`.
fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().expect("kind").to_owned(),
                p["file"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Changes one record of the live file (its 11th line): a `hash_mismatch` later in the
/// chain, to show verification went on past an earlier problem.
fn tamper_live(log: &Path) {
    let mut l = lines(log);
    let text = String::from_utf8(l[10].clone()).expect("utf-8");
    l[10] = text
        .replacen("\"mcp_call\"", "\"mcp_kall\"", 1)
        .into_bytes();
    assert_ne!(l[10], text.as_bytes());
    write_lines(log, &l);
}

fn assert_found(report: &Value, code: i32, want: &[(&str, &str)]) {
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false);
    let got = problems(report);
    for (kind, file) in want {
        assert!(
            got.iter().any(|(k, f)| k == kind && f == file),
            "no {kind} in {file}: {got:?}"
        );
    }
}

#[test]
fn a_clean_rotated_log_verifies_as_the_same_chain_as_unrotated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = write_log(dir.path(), "plain.jsonl", 200);
    let (log, _) = rotated(dir.path());
    let (code, report) = verify_json(&log);
    assert_eq!(code, 0, "{report:#}");
    let (_, want) = verify_json(&plain);
    for key in ["records", "first_seq", "last_seq", "problems_total"] {
        assert_eq!(report[key], want[key], "{key}");
    }
    assert_eq!(report["records"], 200);
    assert!(report.get("anchored").is_none());
    let human = cli(&log)
        .args(["verify", "--output", "table"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&human.stdout).starts_with("OK: 200 records"));
}

#[test]
fn tampering_inside_a_compressed_segment_is_found_with_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, segs) = rotated(dir.path());
    let zst = &segs[1];
    let plain = zstd::decode_all(&std::fs::read(zst).expect("read")[..]).expect("unzstd");
    let edited = String::from_utf8(plain)
        .expect("utf-8")
        .replacen("\"limit\":", "\"limit\":1", 1);
    std::fs::write(zst, zstd::encode_all(edited.as_bytes(), 3).expect("zstd")).expect("write");
    tamper_live(&log);
    let (code, report) = verify_json(&log);
    assert_found(
        &report,
        code,
        &[
            ("segment_hash_mismatch", &name(zst)),
            ("hash_mismatch", &name(zst)),
            ("hash_mismatch", "audit.jsonl"),
        ],
    );
}

#[test]
fn a_deleted_middle_segment_is_missing_and_the_chain_goes_on_past_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, segs) = rotated(dir.path());
    std::fs::remove_file(&segs[2]).expect("rm");
    tamper_live(&log);
    let (code, report) = verify_json(&log);
    assert_found(
        &report,
        code,
        &[
            ("segment_missing", &name(&segs[2])),
            ("hash_mismatch", "audit.jsonl"),
        ],
    );
    // Anchored on the manifest's head of the missing range: no break at the next file.
    assert_eq!(report["problems_total"], 2, "{report:#}");
    // Line numbers are those of the whole log: the live file's 11th line is line 161.
    let live = &report["problems"][1];
    assert_eq!(live["line"], 161, "{report:#}");
}

#[test]
fn swapped_segment_names_are_renamed_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, segs) = rotated(dir.path());
    let tmp = dir.path().join("swap");
    std::fs::rename(&segs[0], &tmp).expect("mv");
    std::fs::rename(&segs[2], &segs[0]).expect("mv");
    std::fs::rename(&tmp, &segs[2]).expect("mv");
    tamper_live(&log);
    let (code, report) = verify_json(&log);
    assert_found(
        &report,
        code,
        &[
            ("segment_renamed", &name(&segs[0])),
            ("segment_renamed", &name(&segs[2])),
            ("hash_mismatch", "audit.jsonl"),
        ],
    );
    assert_eq!(report["problems_total"], 3, "{report:#}");
}

#[test]
fn a_truncated_segment_is_a_changed_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, segs) = rotated(dir.path());
    // A plain segment cut in the middle of its last lines, and a compressed one cut short.
    let bytes = std::fs::read(&segs[2]).expect("read");
    std::fs::write(&segs[2], &bytes[..bytes.len() - 700]).expect("write");
    let z = std::fs::read(&segs[3]).expect("read");
    std::fs::write(&segs[3], &z[..z.len() / 2]).expect("write");
    tamper_live(&log);
    let (code, report) = verify_json(&log);
    assert_found(
        &report,
        code,
        &[
            ("segment_changed", &name(&segs[2])),
            ("segment_changed", &name(&segs[3])),
            ("hash_mismatch", "audit.jsonl"),
        ],
    );
}

#[test]
fn an_edited_manifest_record_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = rotated(dir.path());
    let manifest = dir.path().join("audit.jsonl.manifest.jsonl");
    let mut l = lines(&manifest);
    let text = String::from_utf8(l[1].clone()).expect("utf-8");
    l[1] = text
        .replacen("\"records\":30", "\"records\":31", 1)
        .into_bytes();
    assert_ne!(l[1], text.as_bytes());
    write_lines(&manifest, &l);
    tamper_live(&log);
    let (code, report) = verify_json(&log);
    assert_found(
        &report,
        code,
        &[
            ("manifest_edited", "audit.jsonl.manifest.jsonl"),
            ("hash_mismatch", "audit.jsonl"),
        ],
    );
}

#[test]
fn a_break_at_a_segment_boundary_and_an_extra_segment_are_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = rotated(dir.path());
    // The live file's first record no longer links to the last segment.
    let mut l = lines(&log);
    let first = String::from_utf8(l[0].clone()).expect("utf-8");
    let at = first.find("\"prev_hash\":\"").expect("prev_hash") + 13;
    let mut b = first.into_bytes();
    b[at] = if b[at] == b'0' { b'1' } else { b'0' };
    l[0] = b;
    write_lines(&log, &l);
    let extra = dir
        .path()
        .join("audit.jsonl.00000000000000000900-00000000000000000901.jsonl");
    std::fs::write(&extra, b"{}\n").expect("write");
    let (code, report) = verify_json(&log);
    assert_found(
        &report,
        code,
        &[
            ("segment_boundary_break", "audit.jsonl"),
            ("segment_extra", &name(&extra)),
        ],
    );
}

#[test]
fn after_pruning_the_chain_is_anchored_and_archives_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, segs) = rotated(dir.path());
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).expect("mkdir");
    prune(&log, &segs[..2], Some(&archive));
    let (code, report) = verify_json(&log);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["first_seq"], 60);
    assert_eq!(
        report["records"], 141,
        "140 remain, and the segments_pruned record"
    );
    assert_eq!(report["anchored"]["seq"], 59, "{report:#}");
    assert_eq!(report["anchored"]["file"], name(&segs[1]));
    let human = cli(&log)
        .args(["verify", "--output", "table"])
        .output()
        .expect("run");
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains(&format!(
            "chain anchored at seq 60 on the manifest's head of pruned segment {}",
            name(&segs[1])
        )),
        "{human}"
    );

    // With the archive: the whole chain from its genesis.
    let out = cli(&log)
        .args(["verify", "--output", "json", "--archive"])
        .arg(&archive)
        .output()
        .expect("run");
    let with: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{with:#}");
    assert_eq!(with["first_seq"], 0);
    assert_eq!(with["records"], 201);
    assert!(with.get("anchored").is_none(), "{with:#}");

    // A wrong archive copy is reported, and so is a missing one.
    let copy = archive.join(name(&segs[1]));
    let z = zstd::decode_all(&std::fs::read(&copy).expect("read")[..]).expect("unzstd");
    let z = String::from_utf8(z)
        .expect("utf-8")
        .replacen("\"limit\":", "\"limit\":7", 1);
    std::fs::write(&copy, zstd::encode_all(z.as_bytes(), 3).expect("zstd")).expect("write");
    std::fs::remove_file(archive.join(name(&segs[0]))).expect("rm");
    let out = cli(&log)
        .args(["verify", "--output", "json", "--archive"])
        .arg(&archive)
        .output()
        .expect("run");
    let bad: Value = serde_json::from_slice(&out.stdout).expect("json");
    let copy_label = copy.display().to_string();
    let missing_label = archive.join(name(&segs[0])).display().to_string();
    assert_found(
        &bad,
        out.status.code().unwrap_or(-1),
        &[
            ("segment_hash_mismatch", &copy_label),
            ("segment_missing", &missing_label),
        ],
    );
}

#[test]
fn stats_counts_only_what_remains_after_pruning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, segs) = rotated(dir.path());
    prune(&log, &segs[..2], None);
    let out = cli(&log)
        .args(["stats", "--output", "json"])
        .output()
        .expect("run");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["total_entries"], 141);
}

#[test]
fn a_rotation_stopped_before_its_rename_is_not_a_problem_and_records_are_read_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = rotated(dir.path());
    let target = record_close(&log);
    assert!(!target.exists());
    let (code, report) = verify_json(&log);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["records"], 200);
    let out = cli(&log)
        .args(["query", "--limit", "0", "--asc"])
        .output()
        .expect("run");
    let seqs: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["seq"]
                .as_u64()
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs, (0..200).collect::<Vec<u64>>());
}

#[test]
fn a_changed_record_inside_a_plain_segment_is_found_with_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, segs) = rotated(dir.path());
    let mut l = lines(&segs[2]);
    let text = String::from_utf8(l[4].clone()).expect("utf-8");
    l[4] = text.replacen("\"limit\":", "\"limit\":9", 1).into_bytes();
    write_lines(&segs[2], &l);
    tamper_live(&log);
    let (code, report) = verify_json(&log);
    assert_found(
        &report,
        code,
        &[
            ("segment_hash_mismatch", &name(&segs[2])),
            ("hash_mismatch", &name(&segs[2])),
            ("hash_mismatch", "audit.jsonl"),
        ],
    );
    assert_eq!(report["problems_total"], 3, "{report:#}");
}

#[test]
fn a_segments_pruned_record_the_manifest_does_not_back_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, segs) = rotated(dir.path());
    prune(&log, &segs[..1], None);
    // A claim that more was pruned than the manifest says, appended through the writer.
    let record = serde_json::json!({
        "action": "segments_pruned",
        "source": "nexus-audit",
        "details": {"through_seq": 89, "head_hash": "00", "files": [], "archive": null},
    });
    cli(&log)
        .args(["append", "--json", &record.to_string()])
        .assert()
        .success();
    let (code, report) = verify_json(&log);
    assert_found(&report, code, &[("manifest_edited", "audit.jsonl")]);
    assert_eq!(report["problems_total"], 1, "{report:#}");
}
