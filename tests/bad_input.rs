//! Bad input through the real binary: missing, empty and odd files, broken lines, huge lines,
//! symbolic links and bad arguments. Every failure is exit code 2 and one line on stderr,
//! never a panic.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

use common::{cli, lines, verify_json, write_lines, write_log};
use serde_json::{Value, json};

/// Asserts exit code 2 and exactly one line on stderr without panic text; returns the line.
fn assert_fails_with_one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {stderr:?}");
    assert!(stderr.ends_with('\n'), "stderr ends with LF: {stderr:?}");
    assert!(!stderr.ends_with("\n\n"), "a single LF: {stderr:?}");
    assert_eq!(stderr.matches('\n').count(), 1, "one line: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    stderr
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Every command that reads a log, with the arguments that make it print machine output.
const READERS: &[&[&str]] = &[
    &["tail", "--output", "jsonl"],
    &["query", "--output", "jsonl"],
    &["stats", "--output", "json"],
    &["verify", "--output", "json"],
    &["export", "--format", "jsonl"],
];

#[test]
fn readers_of_a_missing_file_fail_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("no-such-audit.jsonl");
    for args in READERS {
        let out = cli(&log).args(*args).output().expect("run");
        let stderr = assert_fails_with_one_line(&out);
        assert!(
            stderr.contains("no-such-audit.jsonl"),
            "{args:?} names the file: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?} prints nothing on stdout");
    }
    assert!(!log.exists(), "readers never create the log");
}

#[test]
fn an_empty_file_is_a_log_with_no_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    std::fs::write(&log, b"").expect("create empty log");

    let (code, report) = verify_json(&log);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["records"], json!(0));
    assert_eq!(report["problems"], json!([]));

    for args in [
        &["tail", "--output", "jsonl"][..],
        &["query", "--output", "jsonl"],
        &["export", "--format", "jsonl"],
    ] {
        let out = cli(&log).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} prints nothing");
        assert!(out.stderr.is_empty(), "{args:?} complains about nothing");
    }

    let out = cli(&log)
        .args(["stats", "--output", "json"])
        .output()
        .expect("run stats");
    assert_eq!(out.status.code(), Some(0));
    let stats: Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    assert_eq!(stats["total_entries"], json!(0));
    assert_eq!(stats["error_count"], json!(0));
}

#[test]
fn a_directory_given_as_the_log_fails_every_command_with_one_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("logs");
    std::fs::create_dir(&log).expect("mkdir");
    let append: &[&str] = &["append", "--tool", "ad_get_user"];
    for args in READERS.iter().chain([&append]) {
        let out = cli(&log).args(*args).output().expect("run");
        let stderr = assert_fails_with_one_line(&out);
        assert!(
            stderr.contains("not a regular file"),
            "{args:?} says why: {stderr}"
        );
    }
}

#[test]
fn a_fifo_given_as_the_log_fails_every_command_instead_of_waiting_for_a_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&log)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let append: &[&str] = &["append", "--tool", "ad_get_user"];
    for args in READERS.iter().chain([&append]) {
        let out = cli(&log)
            .args(*args)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .expect("run");
        let stderr = assert_fails_with_one_line(&out);
        assert!(
            stderr.contains("not a regular file"),
            "{args:?} says why: {stderr}"
        );
    }
}

/// A log of six records with, after record 2, an object-shaped line that is not UTF-8 and,
/// after record 4, a line with a raw NUL inside a string and a line of NULs.
fn log_with_bad_bytes(dir: &Path) -> (std::path::PathBuf, Vec<Vec<u8>>) {
    let log = write_log(dir, "audit.jsonl", 6);
    let good = lines(&log);
    let mut damaged = good.clone();
    damaged.insert(
        2,
        b"{\"tool\":\"caf\xe9\",\"user_id\":\"\xff\xfe\"}".to_vec(),
    );
    damaged.insert(5, b"{\"tool\":\"a\x00b\"}".to_vec());
    damaged.insert(6, vec![0u8; 16]);
    write_lines(&log, &damaged);
    (log, good)
}

/// Runs a reader and returns its stdout lines.
fn reader_lines(log: &Path, args: &[&str]) -> Vec<Vec<u8>> {
    let out = cli(log).args(args).output().expect("run reader");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    out.stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn invalid_utf8_and_nul_bytes_are_reported_by_verify_which_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = log_with_bad_bytes(dir.path());
    let (code, report) = verify_json(&log);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["ok"], json!(false));
    let found: Vec<(String, u64)> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().expect("kind").to_owned(),
                p["line"].as_u64().expect("line"),
            )
        })
        .collect();
    for expected in [("bad_utf8", 3), ("bad_json", 6), ("bad_json", 7)] {
        assert!(
            found.contains(&(expected.0.to_owned(), expected.1)),
            "{expected:?} in {found:?}"
        );
    }
    assert_eq!(
        report["records"],
        json!(6),
        "every good record is still checked"
    );
    assert_eq!(report["last_seq"], json!(5));
}

#[test]
fn readers_skip_lines_with_nul_bytes_and_show_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 4);
    let good = lines(&log);
    let mut damaged = good.clone();
    damaged.insert(2, b"{\"tool\":\"a\x00b\"}".to_vec());
    damaged.insert(3, vec![0u8; 16]);
    damaged.insert(4, b"\x00{\"tool\":\"ad_get_user\"}".to_vec());
    write_lines(&log, &damaged);

    let shown = reader_lines(&log, &["query", "--asc", "--output", "jsonl"]);
    assert_eq!(shown, good, "query shows the records, byte for byte");
    assert_eq!(
        reader_lines(&log, &["tail", "-n", "100", "--output", "jsonl"]),
        good
    );
    assert_eq!(reader_lines(&log, &["export", "--format", "jsonl"]), good);
    let out = cli(&log)
        .args(["stats", "--output", "json"])
        .output()
        .expect("run stats");
    assert_eq!(out.status.code(), Some(0));
    let stats: Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    assert_eq!(stats["total_entries"], json!(4));
}

#[test]
fn readers_skip_lines_that_are_not_utf8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, good) = log_with_bad_bytes(dir.path());
    let shown = reader_lines(&log, &["query", "--asc", "--output", "jsonl"]);
    assert_eq!(shown, good, "query skips the lines it cannot read");
    assert_eq!(
        reader_lines(&log, &["tail", "-n", "100", "--output", "jsonl"]),
        good
    );
    assert_eq!(reader_lines(&log, &["export", "--format", "jsonl"]), good);
    let out = cli(&log)
        .args(["stats", "--output", "json"])
        .output()
        .expect("run stats");
    let stats: Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    assert_eq!(stats["total_entries"], json!(6));
}

/// A JSON object for `append` whose `details.blob` is `len` bytes of harmless text.
fn record_with_blob(len: usize) -> (String, String) {
    let blob: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(len)
        .collect();
    let object = json!({
        "tool": "generate_compliance_report",
        "status": "success",
        "details": { "blob": blob },
    });
    (object.to_string(), blob)
}

/// Checks that the log's last record carries `blob`, verifies, and that `tail -n 1` prints
/// that line byte for byte.
fn assert_last_record_holds(log: &Path, blob: &str, records: u64) {
    let all = lines(log);
    let last = all.last().expect("a record");
    let stored: Value = serde_json::from_slice(last).expect("JSON");
    assert_eq!(
        stored["details"]["blob"].as_str(),
        Some(blob),
        "blob intact"
    );
    let (code, report) = verify_json(log);
    assert_eq!(code, 0);
    assert_eq!(report["records"], json!(records));
    let out = cli(log)
        .args(["tail", "-n", "1", "--output", "jsonl"])
        .output()
        .expect("run tail");
    assert_eq!(out.status.code(), Some(0));
    let mut expected = last.clone();
    expected.push(b'\n');
    assert!(out.stdout == expected, "tail -n 1 prints the stored line");
}

/// Appends `object` as one line through `append --stdin`, giving up after a minute.
fn append_stdin_line(log: &Path, object: &str) -> Output {
    cli(log)
        .args(["append", "--stdin"])
        .write_stdin(format!("{object}\n"))
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("run append --stdin")
}

#[test]
fn a_10_mb_record_from_stdin_is_stored_verified_and_tailed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 2);
    let (object, blob) = record_with_blob(10 << 20);
    let out = append_stdin_line(&log, &object);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_last_record_holds(&log, &blob, 3);
}

#[test]
fn a_3_mb_record_from_stdin_is_stored_verified_and_tailed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 2);
    let (object, blob) = record_with_blob(3 << 20);
    let out = append_stdin_line(&log, &object);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_last_record_holds(&log, &blob, 3);
}

#[test]
fn a_10_mb_record_written_by_the_library_is_verified_and_tailed_by_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 2);
    let (object, blob) = record_with_blob(10 << 20);
    let event = nexus_audit::Event::from_json_str(&object).expect("event");
    let logger = nexus_audit::LogOptions::new(&log).open().expect("open log");
    logger.append(event).expect("append 10 MB");
    drop(logger);
    assert_last_record_holds(&log, &blob, 3);
}

/// NOTE: Linux caps one command-line argument at 128 KiB (`MAX_ARG_STRLEN`), so a 10 MB
/// `--json` cannot even be passed to the program; the largest that fits is stored intact.
#[test]
fn the_largest_record_a_json_argument_can_carry_is_stored_verified_and_tailed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 2);
    let (object, blob) = record_with_blob(120 * 1024);
    let out = cli(&log)
        .args(["append", "--json", &object])
        .output()
        .expect("run append --json");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_last_record_holds(&log, &blob, 3);
}

#[test]
fn a_10_mb_junk_line_in_the_middle_is_reported_and_verification_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 4);
    let mut all = lines(&log);
    let offset: usize = all[..2].iter().map(|l| l.len() + 1).sum();
    all.insert(2, b"junk ".repeat(2 << 20));
    write_lines(&log, &all);

    let (code, report) = verify_json(&log);
    assert_eq!(code, 1, "{report}");
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems[0]["kind"], json!("bad_json"), "{report}");
    assert_eq!(problems[0]["line"], json!(3));
    assert_eq!(problems[0]["offset"], json!(offset));
    assert_eq!(
        report["records"],
        json!(4),
        "the records after it are checked"
    );
    assert_eq!(report["last_seq"], json!(3));

    let out = cli(&log)
        .args(["query", "--output", "jsonl"])
        .output()
        .expect("run query");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), 4);
}

#[test]
fn append_refuses_a_symbolic_link_and_leaves_its_target_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = write_log(dir.path(), "real.jsonl", 3);
    let before = std::fs::read(&target).expect("read target");
    let link = dir.path().join("audit.jsonl");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");

    for args in [
        &["append", "--tool", "ad_get_user"][..],
        &["append", "--json", r#"{"tool":"ad_get_user"}"#],
    ] {
        let out = cli(&link).args(args).output().expect("run append");
        let stderr = assert_fails_with_one_line(&out);
        assert!(stderr.contains("symbolic link"), "{stderr}");
    }
    let out = cli(&link)
        .args(["append", "--stdin"])
        .write_stdin("{\"tool\":\"ad_get_user\"}\n")
        .output()
        .expect("run append --stdin");
    assert!(assert_fails_with_one_line(&out).contains("symbolic link"));
    assert_eq!(std::fs::read(&target).expect("read target"), before);

    // A dangling link is refused too, and nothing is created where it points.
    let missing = dir.path().join("elsewhere.jsonl");
    let dangling = dir.path().join("dangling.jsonl");
    std::os::unix::fs::symlink(&missing, &dangling).expect("symlink");
    let out = cli(&dangling)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    assert!(assert_fails_with_one_line(&out).contains("symbolic link"));
    assert!(!missing.exists(), "the link's target was not created");
}

#[test]
fn append_json_that_is_not_a_well_typed_object_fails_with_one_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    for (input, says) in [
        (r#"{"tool":"#, "not valid JSON"),
        ("tool=ad_get_user", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1,2]", "an array"),
        (r#""a string""#, "a string"),
        ("42", "a number"),
        ("null", "null"),
        (r#"{"latency_ms":"fast"}"#, "latency_ms"),
        (r#"{"latency_ms":-5}"#, "latency_ms"),
        (r#"{"tool":42}"#, "tool"),
        (r#"{"mock_mode":"yes"}"#, "mock_mode"),
        (r#"{"user_id":{"name":"alice"}}"#, "user_id"),
    ] {
        let out = cli(&log)
            .args(["append", "--json", input])
            .output()
            .expect("run append");
        let stderr = assert_fails_with_one_line(&out);
        assert!(stderr.contains(says), "{input:?}: {stderr}");
    }
    for (flag, value) in [("--args", "{not json"), ("--details", "{\"a\":")] {
        let out = cli(&log)
            .args(["append", "--tool", "ad_get_user", flag, value])
            .output()
            .expect("run append");
        let stderr = assert_fails_with_one_line(&out);
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
    let written = std::fs::read(&log).unwrap_or_default();
    assert!(written.is_empty(), "no record was written");
}

#[test]
fn append_stdin_with_a_bad_third_line_fails_naming_it() {
    let input = "{\"tool\":\"ad_get_user\"}\n{\"tool\":\"ad_get_user\"}\n{\"tool\":\n{\"tool\":\"ad_get_user\"}\n";
    let dir = tempfile::tempdir().expect("tempdir");
    // With the default batch, the whole input is parsed before anything is written; with
    // smaller batches, the batches before the bad line are written.
    for (batch, kept) in [(None, 0), (Some("2"), 2), (Some("1"), 2)] {
        let log = dir.path().join(format!("audit-{batch:?}.jsonl"));
        let mut cmd = cli(&log);
        cmd.args(["append", "--stdin"]);
        if let Some(b) = batch {
            cmd.args(["--batch", b]);
        }
        let out = cmd.write_stdin(input).output().expect("run append --stdin");
        let stderr = assert_fails_with_one_line(&out);
        assert!(stderr.contains("line 3"), "names line 3: {stderr}");
        assert!(
            stderr.contains(&format!(" {kept} record")),
            "says what was kept: {stderr}"
        );
        if kept == 0 {
            assert!(!log.exists(), "nothing valid to write: no file is created");
            continue;
        }
        assert_eq!(lines(&log).len(), kept, "batch {batch:?}");
        let (code, _) = verify_json(&log);
        assert_eq!(code, 0);
    }

    let log = dir.path().join("utf8.jsonl");
    let out = cli(&log)
        .args(["append", "--stdin"])
        .write_stdin(&b"{\"tool\":\"ad_get_user\"}\n{\"tool\":\"\xff\"}\n"[..])
        .output()
        .expect("run append --stdin");
    let stderr = assert_fails_with_one_line(&out);
    assert!(
        stderr.contains("line 2") && stderr.contains("UTF-8"),
        "{stderr}"
    );
}

#[test]
fn a_bad_since_or_until_value_fails_with_one_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 3);
    for (flag, value) in [
        ("--since", "yesterdayish"),
        ("--since", "15 parsecs"),
        ("--since", "2026-13-45"),
        ("--until", "-1h"),
        ("--until", ""),
    ] {
        for cmd in ["tail", "query", "stats", "export"] {
            let out = cli(&log).args([cmd, flag, value]).output().expect("run");
            assert_fails_with_one_line(&out);
        }
    }
}

#[test]
fn an_unknown_subcommand_flag_or_value_fails_with_one_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 3);
    for args in [
        &["frobnicate"][..],
        &["tail", "--bogus"],
        &["--bogus", "verify"],
        &["tail", "-n", "many"],
        &["query", "--limit", "-3"],
        &["export", "--format", "xml"],
        &["verify", "--output", "pdf"],
        &["append", "--durability", "eventually"],
        &["append", "--stdin", "--batch", "0"],
        &["append", "--stdin", "--json", "{}"],
        &["stats", "--interval", "fortnight"],
    ] {
        let out = cli(&log).args(args).output().expect("run");
        let stderr = assert_fails_with_one_line(&out);
        assert!(
            stderr.starts_with("nexus-audit: error:"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn append_to_a_missing_directory_fails_with_one_sentence_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("no-such-dir").join("audit.jsonl");
    let out = cli(&log)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    let stderr = assert_fails_with_one_line(&out);
    assert!(stderr.contains("no-such-dir/audit.jsonl"), "{stderr}");
}

#[test]
fn an_io_error_names_its_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("no-such-dir").join("audit.jsonl");
    let out = cli(&log)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    let stderr = assert_fails_with_one_line(&out);
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

#[test]
fn append_refuses_to_continue_a_log_whose_last_line_is_not_a_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, last, says) in [
        (
            "old.jsonl",
            &br#"{"timestamp":"2026-01-01T00:00:00Z","tool":"ad_get_user"}"#[..],
            "no chain fields",
        ),
        ("junk.jsonl", b"junk", "not valid JSON"),
        ("array.jsonl", b"[1,2,3]", "not a JSON object"),
    ] {
        let log = write_log(dir.path(), name, 2);
        let mut all = lines(&log);
        all.push(last.to_vec());
        write_lines(&log, &all);
        let before = std::fs::read(&log).expect("read log");
        let out = cli(&log)
            .args(["append", "--tool", "ad_get_user"])
            .output()
            .expect("run append");
        let stderr = assert_fails_with_one_line(&out);
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert_eq!(
            std::fs::read(&log).expect("read log"),
            before,
            "{name} untouched"
        );
    }
}

#[test]
fn append_creates_the_log_with_mode_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Loosen the directory so only the writer's own mode can explain the result.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod dir");

    let flags = dir.path().join("flags.jsonl");
    let out = cli(&flags)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(mode_of(&flags), 0o600);

    let stdin = dir.path().join("stdin.jsonl");
    let out = cli(&stdin)
        .args(["append", "--stdin"])
        .write_stdin("{\"tool\":\"ad_get_user\"}\n")
        .output()
        .expect("run append --stdin");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(mode_of(&stdin), 0o600);

    // An existing file keeps the mode its owner gave it.
    std::fs::set_permissions(&flags, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = cli(&flags)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(mode_of(&flags), 0o640);
}

#[test]
fn a_rejected_append_json_creates_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    for bad in ["{\"tool\":", "[1,2]", "{\"latency_ms\":\"slow\"}"] {
        let out = cli(&log)
            .args(["append", "--json", bad])
            .output()
            .expect("run append --json");
        assert_fails_with_one_line(&out);
        assert!(!log.exists(), "{bad}: no empty log left behind");
    }
}
