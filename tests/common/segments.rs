//! Rotated logs for the readers' tests, made the way the writer rotates (see rot-common in the
//! issue): a log written by the real writer is cut into closed segments, each with its
//! `segment_closed` manifest record, optionally compressed with its `segment_compressed`
//! record. Because the segments concatenated are the unrotated log's bytes, this is exactly
//! what real rotation produces.
#![allow(dead_code)]
//!
//! Include it with `mod common;` and `#[path = "common/segments.rs"] mod segments;` at the
//! test's root (it uses `crate::common`).

use std::path::{Path, PathBuf};

use nexus_audit::{
    Compression, ManifestEvent, SegmentClosed, SegmentCompressed, SegmentPruned, chain_id,
    manifest_path, segment_file_name,
};
use nexus_audit::{Durability, Event, LogOptions};
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn field(line: &[u8], name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(line).expect("a record");
    v[name].clone()
}

fn seq_of(line: &[u8]) -> u64 {
    field(line, "seq").as_u64().expect("seq")
}

fn timestamp_of(line: &[u8]) -> String {
    field(line, "timestamp")
        .as_str()
        .expect("timestamp")
        .to_owned()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// Appends one event to the manifest of `log`, with the library's writer.
pub fn manifest_append(log: &Path, event: &ManifestEvent) {
    let m = LogOptions::new(manifest_path(log))
        .source("nexus-audit")
        .durability(Durability::None)
        .open()
        .expect("open manifest");
    m.append(event.to_event()).expect("append to manifest");
}

/// The chain id of the rotated log at `log`: from the manifest's first `segment_closed`, else
/// the live file's first line.
fn chain_of(log: &Path) -> String {
    if let Ok(text) = std::fs::read_to_string(manifest_path(log)) {
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("manifest record");
            if let Some(id) = v["details"]["chain_id"].as_str() {
                return id.to_owned();
            }
        }
    }
    let bytes = std::fs::read(log).expect("read log");
    chain_id(bytes.split(|b| *b == b'\n').next().expect("a line"))
}

/// Closes the live file as the writer's rotation does: `segment_closed` in the manifest, then
/// the rename. Returns the segment's path.
pub fn close_live(log: &Path) -> PathBuf {
    let seg = record_close(log);
    std::fs::rename(log, &seg).expect("rename");
    seg
}

/// The first step of rotation alone (a writer killed before its rename): `segment_closed` for
/// the live file in the manifest. Returns the path the segment is to have.
pub fn record_close(log: &Path) -> PathBuf {
    let bytes = std::fs::read(log).expect("read live file");
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let (first, last) = (lines[0], lines[lines.len() - 1]);
    let name = segment_file_name(
        &file_name(log),
        seq_of(first),
        seq_of(last),
        Compression::None,
    );
    let chain = chain_of(log);
    manifest_append(
        log,
        &ManifestEvent::Closed(SegmentClosed {
            file: name.clone(),
            chain_id: chain,
            first_seq: seq_of(first),
            last_seq: seq_of(last),
            first_timestamp: timestamp_of(first),
            last_timestamp: timestamp_of(last),
            records: lines.len() as u64,
            head_hash: sha(last),
            bytes: bytes.len() as u64,
            sha256: sha(&bytes),
        }),
    );
    log.with_file_name(&name)
}

/// Compresses a closed segment as the writer does: the `.zst`, `segment_compressed`, then the
/// plain file removed. Returns the compressed file's path.
pub fn compress(log: &Path, seg: &Path) -> PathBuf {
    let plain = std::fs::read(seg).expect("read segment");
    let packed = zstd::encode_all(&plain[..], 3).expect("zstd");
    let zst = seg.with_file_name(format!("{}.zst", file_name(seg)));
    std::fs::write(&zst, &packed).expect("write zst");
    manifest_append(
        log,
        &ManifestEvent::Compressed(SegmentCompressed {
            file: file_name(seg),
            compressed_file: file_name(&zst),
            algorithm: Compression::Zstd,
            bytes: packed.len() as u64,
            sha256: sha(&packed),
        }),
    );
    std::fs::remove_file(seg).expect("remove plain segment");
    zst
}

/// Cuts the log at `log` into segments of `sizes[i]` records each (compressed when `zstd(i)`),
/// leaving the rest in the live file. Returns the segments' paths as stored, in order.
pub fn split(log: &Path, sizes: &[usize], zstd: impl Fn(usize) -> bool) -> Vec<PathBuf> {
    let all = crate::common::lines(log);
    let mut at = 0;
    let mut out = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        crate::common::write_lines(log, &all[at..at + n]);
        at += n;
        let seg = close_live(log);
        out.push(if zstd(i) { compress(log, &seg) } else { seg });
    }
    crate::common::write_lines(log, &all[at..]);
    out
}

/// Writes `n` sample records one `step_s` seconds apart from `start` (RFC 3339) with the
/// library, and returns the log's path.
pub fn write_dated_log(dir: &Path, name: &str, n: u64, start: &str, step_s: i64) -> PathBuf {
    let path = dir.join(name);
    let log = LogOptions::new(&path)
        .durability(Durability::None)
        .open()
        .expect("open log");
    let t0 = chrono::DateTime::parse_from_rfc3339(start).expect("a start time");
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let mut e = crate::common::sample_event(i);
            let t = t0 + chrono::Duration::seconds(step_s * i64::try_from(i).expect("small"));
            e.timestamp = Some(t.to_rfc3339());
            e
        })
        .collect();
    log.append_batch(events).expect("append");
    path
}

/// Prunes the first segments of `segs` as the writer does (optionally copying each into
/// `archive` first): `segment_pruned` records, the files removed, then one `segments_pruned`
/// record appended to the live log with the real binary.
pub fn prune(log: &Path, segs: &[PathBuf], archive: Option<&Path>) {
    let mut last: Option<(u64, String)> = None;
    let mut files = Vec::new();
    for seg in segs {
        let stored = std::fs::read(seg).expect("read segment");
        let plain = if seg
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zst"))
        {
            zstd::decode_all(&stored[..]).expect("unzstd")
        } else {
            stored.clone()
        };
        let lines: Vec<&[u8]> = plain
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let (first, tail) = (lines[0], lines[lines.len() - 1]);
        let copy = archive.map(|dir| {
            let to = dir.join(file_name(seg));
            std::fs::copy(seg, &to).expect("archive copy");
            manifest_append(
                log,
                &ManifestEvent::Archived(nexus_audit::SegmentArchived {
                    file: file_name(seg),
                    archive: to.display().to_string(),
                    sha256: sha(&stored),
                }),
            );
            to.display().to_string()
        });
        manifest_append(
            log,
            &ManifestEvent::Pruned(SegmentPruned {
                file: file_name(seg),
                first_seq: seq_of(first),
                last_seq: seq_of(tail),
                last_timestamp: timestamp_of(tail),
                head_hash: sha(tail),
                archive: copy,
            }),
        );
        std::fs::remove_file(seg).expect("remove segment");
        files.push(file_name(seg));
        last = Some((seq_of(tail), sha(tail)));
    }
    let (through, head) = last.expect("something pruned");
    let details = serde_json::json!({
        "through_seq": through,
        "head_hash": head,
        "files": files,
        "archive": archive.map(|a| a.display().to_string()),
    });
    let record = serde_json::json!({
        "action": nexus_audit::SEGMENTS_PRUNED_ACTION,
        "source": "nexus-audit",
        "details": details,
    });
    crate::common::cli(log)
        .args(["append", "--json", &record.to_string()])
        .assert()
        .success();
}
