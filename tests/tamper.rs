//! The tamper suite: a 1,000-record log written by the library, damaged one way at a time, and
//! checked through the real binary. Each case asserts the exit code, `ok: false`, and that the
//! problem is reported with the right `kind`, 1-based `line`, byte `offset` and `seq`, once and
//! without follow-on problems; the human output is checked for the same sentence.
//!
//! The expected diagnoses are the table in `src/verify.rs`. The fixtures under `fixtures/` are
//! made by `fixtures/generate.sh` and checked against their recorded `.verify.json` here too.

mod common;

use std::path::{Path, PathBuf};

use common::{cli, lines, verify_json, write_lines, write_log};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// Records in the base log.
const N: u64 = 1000;

/// A freshly written base log in its own directory.
struct Log {
    dir: TempDir,
    path: PathBuf,
    lines: Vec<Vec<u8>>,
}

impl Log {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_log(dir.path(), "audit.jsonl", N);
        let lines = lines(&path);
        assert_eq!(lines.len() as u64, N);
        Log { dir, path, lines }
    }

    /// Another log written with the same helper: the same events, other ids, times and hashes.
    fn other(&self) -> Vec<Vec<u8>> {
        let path = write_log(self.dir.path(), "other.jsonl", N);
        let other = lines(&path);
        assert_ne!(other[0], self.lines[0], "the other log differs");
        other
    }

    /// Writes the base log's lines changed by `change` to a new file and returns its path.
    fn tampered(&self, name: &str, change: impl FnOnce(&mut Vec<Vec<u8>>)) -> PathBuf {
        let mut lines = self.lines.clone();
        change(&mut lines);
        let path = self.dir.path().join(name);
        write_lines(&path, &lines);
        path
    }
}

/// `1000` as the human output writes it: `1,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The lines of a file as stored, the torn tail (possibly empty) last, with their offsets.
fn pieces(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("read log");
    let mut out = Vec::new();
    let mut offset = 0u64;
    for piece in bytes.split(|b| *b == b'\n') {
        out.push((offset, piece.to_vec()));
        offset += piece.len() as u64 + 1;
    }
    out
}

/// The `seq` of a line, when it is a JSON object with one.
fn seq_of(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}

/// Runs `verify --output json` and `verify --output table` on `path` and asserts that exactly
/// the `expected` problems, `(kind, line)` in file order, are reported, each with the offset and
/// `seq` of that line of the file. Returns the JSON report.
fn assert_problems(path: &Path, expected: &[(&str, u64)]) -> Value {
    let (code, report) = verify_json(path);
    let context = format!("{}: {report:#}", path.display());
    assert_eq!(code, 1, "exit code: {context}");
    assert_eq!(report["ok"], false, "{context}");
    assert_eq!(
        report["problems_total"],
        expected.len() as u64,
        "problems_total: {context}"
    );
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), expected.len(), "problems: {context}");

    let pieces = pieces(path);
    let table = cli(path)
        .args(["--color", "never", "verify", "--output", "table"])
        .output()
        .expect("run verify");
    assert_eq!(table.status.code(), Some(1), "table exit code: {context}");
    let table = String::from_utf8(table.stdout).expect("UTF-8 output");

    for (p, &(kind, line)) in problems.iter().zip(expected) {
        assert_eq!(p["kind"], kind, "kind: {context}");
        assert_eq!(p["line"], line, "line: {context}");
        let (offset, text) = &pieces[usize::try_from(line - 1).expect("line")];
        assert_eq!(p["offset"], *offset, "offset of line {line}: {context}");
        // A torn tail is not a line, whatever its bytes hold.
        let seq = if kind == "torn_tail" {
            None
        } else {
            seq_of(text)
        };
        assert_eq!(p["seq"].as_u64(), seq, "seq of line {line}: {context}");
        assert!(
            p["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message: {context}"
        );

        let seq = p["seq"]
            .as_u64()
            .map(|s| format!(" (seq {s})"))
            .unwrap_or_default();
        let sentence = format!("line {}{seq}: {kind}: ", grouped(line));
        assert!(
            table.contains(&sentence),
            "table output has {sentence:?}: {table}"
        );
    }
    assert!(
        table
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("FAILED")),
        "table output ends with FAILED: {table}"
    );
    report
}

/// Changes the first ASCII letter at or after `from` in `line` to another letter.
fn change_letter(line: &mut [u8], from: usize) {
    let at = from
        + line[from..]
            .iter()
            .position(u8::is_ascii_lowercase)
            .expect("a letter");
    line[at] = if line[at] == b'a' { b'b' } else { b'a' };
}

/// Where the value of string field `name` starts in `line`.
fn value_start(line: &[u8], name: &str) -> usize {
    let key = format!("\"{name}\":\"");
    line.windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap_or_else(|| panic!("line has {name}"))
        + key.len()
}

// --- changed lines ---------------------------------------------------------------------------

#[test]
fn verify_reports_changed_letter_in_fifty_lines_at_that_line() {
    let log = Log::new();
    let mut targets: Vec<u64> = vec![1, 2, 10, 500, 999];
    targets.extend((0..45).map(|i| 20 + i * 21));
    targets.sort_unstable();
    targets.dedup();
    assert_eq!(targets.len(), 50);
    for (i, &k) in targets.iter().enumerate() {
        let field = if i % 2 == 0 { "tool" } else { "event_id" };
        let path = log.tampered("changed.jsonl", |lines| {
            let line = &mut lines[usize::try_from(k - 1).expect("line")];
            let at = value_start(line, field);
            change_letter(line, at + 2);
        });
        assert_problems(&path, &[("hash_mismatch", k)]);
    }
}

#[test]
fn verify_reports_changed_seq_digit_at_that_line() {
    let log = Log::new();
    for k in [2, 10, 500, 999] {
        let path = log.tampered("seq.jsonl", |lines| {
            let line = &mut lines[k - 1];
            let digits = b"{\"seq\":".len();
            let last = digits
                + line[digits..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count()
                - 1;
            line[last] = if line[last] == b'9' {
                b'0'
            } else {
                line[last] + 1
            };
        });
        let report = assert_problems(&path, &[("hash_mismatch", k as u64)]);
        let message = report["problems"][0]["message"].as_str().expect("message");
        assert!(message.contains("seq reads"), "{message}");
    }
}

#[test]
fn verify_reports_changed_prev_hash_digit_at_that_line() {
    let log = Log::new();
    for k in [2, 10, 500, 999] {
        let path = log.tampered("prev.jsonl", |lines| {
            let line = &mut lines[k - 1];
            let at = value_start(line, "prev_hash") + 10;
            line[at] = if line[at] == b'0' { b'1' } else { b'0' };
        });
        assert_problems(&path, &[("hash_mismatch", k as u64)]);
    }
}

#[test]
fn verify_reports_changed_first_line_at_line_one() {
    let log = Log::new();
    let path = log.tampered("first.jsonl", |lines| {
        let at = value_start(&lines[0], "user_id");
        change_letter(&mut lines[0], at);
    });
    assert_problems(&path, &[("hash_mismatch", 1)]);
}

#[test]
fn verify_reports_line_ending_with_cr_as_changed_and_says_cr() {
    let log = Log::new();
    // The last line too: nothing links to it, but the writer never ends a line with CR.
    for k in [1, 2, 10, 500, 999, 1000] {
        let path = log.tampered("cr.jsonl", |lines| lines[k - 1].push(b'\r'));
        let report = assert_problems(&path, &[("hash_mismatch", k as u64)]);
        let message = report["problems"][0]["message"].as_str().expect("message");
        assert!(message.contains("CR"), "{message}");
    }
}

#[test]
fn verify_reports_every_line_of_a_crlf_file() {
    let log = Log::new();
    let path = log.tampered("crlf.jsonl", |lines| {
        for line in lines.iter_mut() {
            line.push(b'\r');
        }
    });
    let (code, report) = verify_json(&path);
    assert_eq!(code, 1);
    assert_eq!(report["problems_total"], N, "{report:#}");
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 100, "the default --max-problems");
    for (i, p) in (1u64..).zip(problems) {
        assert_eq!(p["kind"], "hash_mismatch");
        assert_eq!(p["line"], i);
        assert!(
            p["message"].as_str().is_some_and(|m| m.contains("CR")),
            "{p}"
        );
    }
}

#[test]
fn verify_reports_changed_genesis_fields_once_as_bad_genesis() {
    let log = Log::new();
    let seq = log.tampered("seq0.jsonl", |lines| {
        let at = b"{\"seq\":".len();
        lines[0][at] = b'3';
    });
    let report = assert_problems(&seq, &[("bad_genesis", 1)]);
    assert_eq!(report["first_seq"], 3);
    let prev = log.tampered("prev0.jsonl", |lines| {
        let at = value_start(&lines[0], "prev_hash") + 7;
        lines[0][at] = b'f';
    });
    assert_problems(&prev, &[("bad_genesis", 1)]);
}

#[test]
fn verify_reports_two_adjacent_changed_lines_at_the_second_naming_the_first() {
    let log = Log::new();
    let path = log.tampered("adjacent.jsonl", |lines| {
        for k in [499, 500] {
            let at = value_start(&lines[k], "tool");
            change_letter(&mut lines[k], at + 1);
        }
    });
    let report = assert_problems(&path, &[("hash_mismatch", 501)]);
    let message = report["problems"][0]["message"].as_str().expect("message");
    assert!(message.contains("line 500 was changed too"), "{message}");
}

#[test]
fn verify_reports_changed_line_followed_by_a_blank_line() {
    // Regression: a blank line after a changed record used to hide the change.
    let log = Log::new();
    for k in [1, 10, 500] {
        let path = log.tampered("hidden.jsonl", |lines| {
            let at = value_start(&lines[k - 1], "tool");
            change_letter(&mut lines[k - 1], at + 1);
            lines.insert(k, Vec::new());
        });
        assert_problems(
            &path,
            &[("hash_mismatch", k as u64), ("empty_line", k as u64 + 1)],
        );
    }
}

#[test]
fn verify_reports_line_spliced_from_another_log_at_that_line() {
    let log = Log::new();
    let other = log.other();
    for k in [1, 2, 10, 500, 999] {
        let path = log.tampered("spliced.jsonl", |lines| {
            lines[k - 1].clone_from(&other[k - 1]);
        });
        assert_eq!(seq_of(&other[k - 1]), seq_of(&log.lines[k - 1]));
        assert_problems(&path, &[("hash_mismatch", k as u64)]);
    }
}

// --- deleted lines ---------------------------------------------------------------------------

#[test]
fn verify_reports_deleted_line_at_its_position() {
    let log = Log::new();
    for k in [2, 10, 500, 999] {
        let path = log.tampered("deleted.jsonl", |lines| {
            lines.remove(k - 1);
        });
        let report = assert_problems(&path, &[("seq_gap", k as u64)]);
        let message = report["problems"][0]["message"].as_str().expect("message");
        assert!(message.contains("1 record "), "{message}");
    }
}

#[test]
fn verify_reports_several_deleted_lines_as_one_gap() {
    let log = Log::new();
    for (k, n) in [(2, 3), (500, 10), (900, 99)] {
        let path = log.tampered("deleted.jsonl", |lines| {
            lines.drain(k - 1..k - 1 + n);
        });
        let report = assert_problems(&path, &[("seq_gap", k as u64)]);
        let message = report["problems"][0]["message"].as_str().expect("message");
        assert!(message.contains(&format!("{n} records")), "{message}");
    }
}

#[test]
fn verify_reports_deleted_first_lines_as_bad_genesis() {
    let log = Log::new();
    for n in [1, 5] {
        let path = log.tampered("genesis.jsonl", |lines| {
            lines.drain(..n);
        });
        let report = assert_problems(&path, &[("bad_genesis", 1)]);
        assert_eq!(report["first_seq"], n as u64);
    }
}

// --- inserted lines --------------------------------------------------------------------------

#[test]
fn verify_reports_line_from_another_log_inserted_at_it() {
    let log = Log::new();
    let other = log.other();
    // (insert after line k, the other log's line with seq j, expected kind)
    for (k, j, kind) in [
        (10, 5, "seq_out_of_order"),
        (500, 3, "seq_out_of_order"),
        (1, 0, "seq_out_of_order"),
        (500, 500, "hash_mismatch"),
        (2, 800, "hash_mismatch"),
        (999, 999, "hash_mismatch"),
    ] {
        let path = log.tampered("inserted.jsonl", |lines| {
            lines.insert(k, other[j].clone());
        });
        assert_problems(&path, &[(kind, k as u64 + 1)]);
    }
}

#[test]
fn verify_reports_forged_record_with_right_seq_and_prev_hash_at_it() {
    let log = Log::new();
    for k in [0, 1, 2, 10, 500, 998] {
        // A forgery of the record that follows line k: right seq, right prev_hash.
        let path = log.tampered("forged.jsonl", |lines| {
            let mut forged = lines[k].clone();
            let at = value_start(&forged, "user_id");
            change_letter(&mut forged, at);
            lines.insert(k, forged);
        });
        let report = assert_problems(&path, &[("hash_mismatch", k as u64 + 1)]);
        let message = report["problems"][0]["message"].as_str().expect("message");
        assert!(message.contains("inserted"), "{message}");
    }
}

#[test]
fn verify_reports_duplicated_line_as_out_of_order_at_the_copy() {
    let log = Log::new();
    for k in [1, 2, 10, 500, 999, 1000] {
        let path = log.tampered("duplicated.jsonl", |lines| {
            let copy = lines[k - 1].clone();
            lines.insert(k, copy);
        });
        assert_problems(&path, &[("seq_out_of_order", k as u64 + 1)]);
    }
}

// --- reordered lines -------------------------------------------------------------------------

#[test]
fn verify_reports_swapped_lines_at_the_second() {
    let log = Log::new();
    for k in [2, 10, 500, 999] {
        let path = log.tampered("swapped.jsonl", |lines| lines.swap(k - 1, k));
        let report = assert_problems(&path, &[("seq_out_of_order", k as u64 + 1)]);
        let message = report["problems"][0]["message"].as_str().expect("message");
        assert!(message.contains("swapped"), "{message}");
    }
}

// --- lines that are not records --------------------------------------------------------------

#[test]
fn verify_reports_inserted_non_record_lines_as_what_they_are() {
    let log = Log::new();
    let cases: [(&[u8], &str); 5] = [
        (b"", "empty_line"),
        (b"this is not JSON", "bad_json"),
        (b"[1,2,3]", "not_object"),
        (b"{\"tool\":\"ad_get_user\",\"x\":\"\xff\xfe\"}", "bad_utf8"),
        (
            b"{\"tool\":\"ad_get_user\",\"user_id\":\"mallory\",\"status\":\"success\"}",
            "missing_chain_fields",
        ),
    ];
    for (junk, kind) in cases {
        // Inserted before line 1, after lines 10 and 500, and after the last line.
        for k in [0, 10, 500, 1000] {
            let path = log.tampered("junk.jsonl", |lines| lines.insert(k, junk.to_vec()));
            assert_problems(&path, &[(kind, k as u64 + 1)]);
        }
    }
}

#[test]
fn verify_reports_line_replaced_by_junk_at_it_and_nothing_else() {
    let log = Log::new();
    for k in [2, 10, 500] {
        let path = log.tampered("replaced.jsonl", |lines| {
            lines[k - 1] = b"{\"oops\":true}".to_vec();
        });
        assert_problems(&path, &[("missing_chain_fields", k as u64)]);
    }
}

// --- torn tail -------------------------------------------------------------------------------

#[test]
fn verify_reports_torn_last_line_at_the_start_of_the_torn_bytes() {
    let log = Log::new();
    let last = log.lines[usize::try_from(N - 1).expect("index")].clone();
    for cut in [1, last.len() / 2, last.len()] {
        let path = log.dir.path().join("torn.jsonl");
        let mut bytes = std::fs::read(&log.path).expect("read");
        let start = bytes.len() - last.len() - 1;
        bytes.truncate(start + cut);
        std::fs::write(&path, &bytes).expect("write");

        let report = assert_problems(&path, &[("torn_tail", N)]);
        assert_eq!(report["records"], N - 1);
        assert_eq!(report["problems"][0]["offset"], start as u64);
        assert_eq!(report["last_seq"], N - 2);
        assert_eq!(report["bytes"], bytes.len() as u64);
    }
}

// --- several problems ------------------------------------------------------------------------

#[test]
fn verify_reports_two_separate_problems_in_order() {
    let log = Log::new();
    let path = log.tampered("two.jsonl", |lines| {
        lines.remove(700 - 1);
        let at = value_start(&lines[99], "tool");
        change_letter(&mut lines[99], at + 1);
    });
    assert_problems(&path, &[("hash_mismatch", 100), ("seq_gap", 700)]);

    let path = log.tampered("three.jsonl", |lines| {
        lines.swap(199, 200);
        lines.insert(600, b"not json".to_vec());
        lines[899].push(b'\r');
    });
    assert_problems(
        &path,
        &[
            ("seq_out_of_order", 201),
            ("bad_json", 601),
            ("hash_mismatch", 900),
        ],
    );
}

#[test]
fn verify_lists_max_problems_but_counts_them_all() {
    let log = Log::new();
    let path = log.tampered("many.jsonl", |lines| {
        for k in (0..10).rev() {
            lines.insert(k * 90 + 5, Vec::new());
        }
    });
    let (code, report) = verify_json(&path);
    assert_eq!(code, 1);
    assert_eq!(report["problems_total"], 10, "{report:#}");
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(10));

    let out = cli(&path)
        .args(["verify", "--output", "json", "--max-problems", "3"])
        .output()
        .expect("run verify");
    assert_eq!(out.status.code(), Some(1));
    let cut: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(cut["ok"], false);
    assert_eq!(cut["problems_total"], 10, "{cut:#}");
    let listed = cut["problems"].as_array().expect("problems");
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed[..],
        report["problems"].as_array().expect("problems")[..3]
    );
}

// --- legacy and clean logs -------------------------------------------------------------------

/// An old Nexus-MCP logger line: the same field names, no chain fields.
fn legacy_line(i: u64) -> Vec<u8> {
    let tools = ["workday_get_worker", "ad_get_user", "helix_create_ticket"];
    let status = if i % 7 == 3 { "error" } else { "success" };
    serde_json::to_vec(&serde_json::json!({
        "timestamp": format!("2026-10-01T09:{:02}:{:02}.123456+00:00", i / 60, i % 60),
        "tool": tools[usize::try_from(i % 3).expect("index")],
        "user_id": format!("user{}@example.com", i % 4),
        "server_id": "nexus-mcp",
        "shard": "unknown",
        "action_category": "READ",
        "status": status,
        "latency_ms": 10 + i,
        "mock_mode": false,
    }))
    .expect("JSON")
}

#[test]
fn verify_fails_a_legacy_unchained_log_once_and_other_commands_read_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("legacy.jsonl");
    let legacy: Vec<Vec<u8>> = (0..50).map(legacy_line).collect();
    write_lines(&path, &legacy);

    let report = assert_problems(&path, &[("missing_chain_fields", 1)]);
    let message = report["problems"][0]["message"].as_str().expect("message");
    assert!(
        message.contains("old unchained Nexus-MCP format"),
        "{message}"
    );
    assert_eq!(report["records"], 0);

    let out = cli(&path)
        .args(["query", "--limit", "1000", "--output", "jsonl"])
        .output()
        .expect("run query");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        50
    );

    let out = cli(&path)
        .args(["tail", "-n", "5", "--output", "jsonl"])
        .output()
        .expect("run tail");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let tail: Vec<&[u8]> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(tail.len(), 5);
    assert_eq!(tail[4], &legacy[49][..]);

    let out = cli(&path)
        .args(["stats", "--output", "json"])
        .output()
        .expect("run stats");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stats: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(stats["total_entries"], 50);
    let errors = (0..50).filter(|i| i % 7 == 3).count();
    assert_eq!(stats["error_count"], errors);
}

#[test]
fn verify_passes_a_clean_log_and_reports_its_head() {
    let log = Log::new();
    let (code, report) = verify_json(&log.path);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["records"], N);
    assert_eq!(report["first_seq"], 0);
    assert_eq!(report["last_seq"], N - 1);
    assert_eq!(report["problems"], Value::Array(Vec::new()));
    assert_eq!(report["problems_total"], 0);
    let last = log.lines.last().expect("a line");
    assert_eq!(report["head_hash"], hex::encode(Sha256::digest(last)));
    let size = std::fs::metadata(&log.path).expect("stat").len();
    assert_eq!(report["bytes"], size);

    let out = cli(&log.path)
        .args(["--color", "never", "verify", "--output", "table"])
        .output()
        .expect("run verify");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(text.starts_with("OK: 1,000 records, seq 0..999"), "{text}");
}

// --- fixtures --------------------------------------------------------------------------------

/// The repository root: fixtures are verified from there with relative paths, as recorded.
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every fixture log with a recorded `.verify.json` beside it.
fn fixtures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![repo_root().join("fixtures")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixtures/ exists") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn fixtures_verify_as_recorded() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 8, "fixtures: {fixtures:?}");
    for path in fixtures {
        let relative = path.strip_prefix(repo_root()).expect("under the repo");
        let recorded = path.with_extension("verify.json");
        let recorded: Value = serde_json::from_slice(
            &std::fs::read(&recorded).unwrap_or_else(|e| panic!("{}: {e}", recorded.display())),
        )
        .expect("recorded JSON");

        let out = cli(relative)
            .current_dir(repo_root())
            .args(["verify", "--output", "json"])
            .output()
            .expect("run verify");
        let mut report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let code = i32::from(recorded["ok"] != true);
        assert_eq!(out.status.code(), Some(code), "{}", relative.display());
        assert_eq!(report["file"], relative.display().to_string());
        assert_eq!(recorded["file"], relative.display().to_string());
        report["file"] = recorded["file"].clone();
        assert_eq!(
            report,
            recorded,
            "{}: verify no longer says what was recorded; if the change is intended, run \
             fixtures/generate.sh and review the diff",
            relative.display()
        );
    }
}

#[test]
fn fixture_sample_verifies_clean_with_a_thousand_records() {
    let (code, report) = verify_json(&repo_root().join("fixtures/sample.jsonl"));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert!(report["records"].as_u64().is_some_and(|n| n >= 1000));
    assert_eq!(report["first_seq"], 0);
}

#[test]
fn fixture_legacy_log_is_read_by_the_other_commands() {
    let path = repo_root().join("fixtures/legacy-unchained.jsonl");
    let records = lines(&path).len();
    assert!(records >= 100);

    let out = cli(&path)
        .args(["stats", "--output", "json"])
        .output()
        .expect("run stats");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stats: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(stats["total_entries"], records);
    assert_eq!(stats["first_timestamp"], "2026-10-01T09:00:00.123456+00:00");

    let out = cli(&path)
        .args(["query", "--limit", "100000", "--output", "jsonl"])
        .output()
        .expect("run query");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        records
    );
}
