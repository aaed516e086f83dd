//! Helpers for the rotation tests: the segments of a log on disk, their concatenation, the
//! manifest's records, and the checks every rotated log must pass.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::cli;

/// A segment file on disk: its range, whether it is compressed, its path.
#[derive(Clone, Debug)]
pub struct SegFile {
    pub first: u64,
    pub last: u64,
    pub zst: bool,
    pub path: PathBuf,
}

/// The segment files of `log` on disk, by name, in seq order (plain before .zst).
pub fn segment_files(log: &Path) -> Vec<SegFile> {
    let name = log
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let dir = log.parent().expect("dir");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let file = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(rest) = file.strip_prefix(&format!("{name}.")) else {
            continue;
        };
        let (range, zst) = if let Some(r) = rest.strip_suffix(".jsonl.zst") {
            (r, true)
        } else if let Some(r) = rest.strip_suffix(".jsonl") {
            (r, false)
        } else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        if a.len() != 20 || b.len() != 20 {
            continue;
        }
        let (Ok(first), Ok(last)) = (a.parse(), b.parse()) else {
            continue;
        };
        out.push(SegFile {
            first,
            last,
            zst,
            path: dir.join(&file),
        });
    }
    out.sort_by_key(|s| (s.first, s.last, s.zst));
    out
}

/// The bytes of a segment, decompressed.
pub fn segment_bytes(s: &SegFile) -> Vec<u8> {
    let raw = std::fs::read(&s.path).expect("read segment");
    if s.zst {
        zstd::decode_all(raw.as_slice()).expect("a valid zstd segment")
    } else {
        raw
    }
}

/// The decompressed segments in seq order (the plain file where both are there, as a reader
/// does), then the live file.
pub fn concatenation(log: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for s in segment_files(log) {
        if seen.insert((s.first, s.last)) {
            out.extend(segment_bytes(&s));
        }
    }
    if let Ok(live) = std::fs::read(log) {
        out.extend(live);
    }
    out
}

/// Writes the concatenation beside the log and runs `verify` on it: must be clean. Returns
/// the records, parsed.
pub fn verify_concatenation(log: &Path) -> Vec<Value> {
    let bytes = concatenation(log);
    let joined = log.with_file_name("concatenated-for-test.jsonl");
    std::fs::write(&joined, &bytes).expect("write");
    let out = cli(&joined)
        .args(["verify", "--output", "json"])
        .output()
        .expect("run verify");
    assert!(
        out.status.success(),
        "the concatenation of the segments and the live file must verify clean: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::remove_file(&joined).expect("remove");
    records(&bytes)
}

/// The records of JSONL bytes.
pub fn records(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect()
}

/// The manifest's path.
pub fn manifest(log: &Path) -> PathBuf {
    let mut name = log.file_name().expect("name").to_owned();
    name.push(".manifest.jsonl");
    log.with_file_name(name)
}

/// The manifest's records (none when it is absent), after checking it verifies clean as a
/// log of its own.
pub fn manifest_records(log: &Path) -> Vec<Value> {
    let path = manifest(log);
    let Ok(bytes) = std::fs::read(&path) else {
        return Vec::new();
    };
    cli(&path).arg("verify").assert().success();
    records(&bytes)
}

/// The `details` of the manifest's records with this action.
pub fn events(manifest: &[Value], action: &str) -> Vec<Value> {
    manifest
        .iter()
        .filter(|r| r["action"] == action)
        .map(|r| r["details"].clone())
        .collect()
}

/// Checks the manifest against the disk: every segment on disk has its `segment_closed`
/// (with the right range and records), no entry names a file that is not there unless it
/// was pruned, a `.zst` is there for every `segment_compressed`, and the hashes the manifest
/// gives match the files. Returns the manifest's records.
pub fn check_manifest(log: &Path) -> Vec<Value> {
    let m = manifest_records(log);
    let closed = events(&m, "segment_closed");
    let compressed = events(&m, "segment_compressed");
    let pruned: HashSet<(u64, u64)> = events(&m, "segment_pruned")
        .iter()
        .map(|p| {
            (
                p["first_seq"].as_u64().expect("test step"),
                p["last_seq"].as_u64().expect("test step"),
            )
        })
        .collect();
    let by_range: BTreeMap<(u64, u64), &Value> = closed
        .iter()
        .map(|c| {
            (
                (
                    c["first_seq"].as_u64().expect("test step"),
                    c["last_seq"].as_u64().expect("test step"),
                ),
                c,
            )
        })
        .collect();
    assert_eq!(
        by_range.len(),
        closed.len(),
        "one segment_closed per segment"
    );
    let files = segment_files(log);
    for s in &files {
        let c = by_range
            .get(&(s.first, s.last))
            .unwrap_or_else(|| panic!("{} has no segment_closed", s.path.display()));
        let mode = std::fs::metadata(&s.path)
            .expect("test step")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{} is private", s.path.display());
        let bytes = segment_bytes(s);
        assert_eq!(c["bytes"].as_u64(), Some(bytes.len() as u64));
        assert_eq!(c["sha256"].as_str(), Some(sha256_hex(&bytes).as_str()));
        assert_eq!(
            c["records"].as_u64(),
            Some(s.last - s.first + 1),
            "records of {}",
            s.path.display()
        );
        if s.zst {
            let name = s
                .path
                .file_name()
                .expect("test step")
                .to_string_lossy()
                .into_owned();
            if let Some(z) = compressed
                .iter()
                .find(|z| z["compressed_file"] == name.as_str())
            {
                let raw = std::fs::read(&s.path).expect("test step");
                assert_eq!(z["sha256"].as_str(), Some(sha256_hex(&raw).as_str()));
                assert_eq!(z["bytes"].as_u64(), Some(raw.len() as u64));
            }
        }
    }
    for (range, c) in &by_range {
        if pruned.contains(range) {
            continue;
        }
        assert!(
            files.iter().any(|s| (s.first, s.last) == *range),
            "the manifest's {} is on disk (or pruned)",
            c["file"]
        );
    }
    let chain_ids: HashSet<&str> = closed
        .iter()
        .filter_map(|c| c["chain_id"].as_str())
        .collect();
    assert!(chain_ids.len() <= 1, "one chain id: {chain_ids:?}");
    let mmode = std::fs::metadata(manifest(log)).map(|m| m.permissions().mode() & 0o777);
    if let Ok(mode) = mmode {
        assert_eq!(mode, 0o600, "the manifest is private");
    }
    m
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Appends one record with `--correlation ID` (and any extra arguments); asserts success.
pub fn append(log: &Path, id: &str, extra: &[&str]) {
    cli(log)
        .args([
            "append",
            "--tool",
            "workday_get_worker",
            "--correlation",
            id,
        ])
        .args(extra)
        .assert()
        .success();
}

/// The correlation ids of records, in order.
pub fn correlation_ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| r["correlation_id"].as_str().map(str::to_owned))
        .collect()
}

/// A log of three closed segments (two with records from 2020 and 2021, one from now; the
/// first compressed, the others plain) and a live file.
pub fn log_with_old_segments(dir: &std::path::Path) -> std::path::PathBuf {
    let log = dir.join("audit.jsonl");
    append(&log, "a1", &["--timestamp", "2020-01-01T00:00:00Z"]);
    append(&log, "a2", &["--timestamp", "2020-01-02T00:00:00Z"]);
    cli(&log).arg("rotate").assert().success();
    append(&log, "b1", &["--timestamp", "2021-01-01T00:00:00Z"]);
    cli(&log)
        .args(["rotate", "--compress", "none"])
        .assert()
        .success();
    append(&log, "c1", &["--compress", "none"]);
    // Plain (a rotate with zstd would compress every plain segment, b1's too).
    cli(&log)
        .args(["rotate", "--compress", "none"])
        .assert()
        .success();
    append(&log, "live", &["--compress", "none"]);
    log
}
