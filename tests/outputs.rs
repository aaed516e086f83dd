//! What readers and output paths promise (issue 9, items 4, 12, 13, 15, 16 and 19), through
//! the real binary: outputs never clobber evidence, every table column is escaped, a line
//! that is not a record gets one decision in every reader, `--threads` is bounded, `stats`
//! stays bounded on huge numbers of distinct values, and readers do not keep writers waiting.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use common::{cli, lines, write_log};
use nexus_audit::{Durability, Event, LogOptions};
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_nexus-audit");

/// Every command here must end well before this: a hang fails the test instead of stalling it.
const PATIENCE: Duration = Duration::from_secs(60);

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

fn run(cmd: &mut assert_cmd::Command) -> Run {
    let out = cmd.timeout(PATIENCE).output().expect("run nexus-audit");
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts exit 0 and a silent stderr; returns stdout.
fn ok(cmd: &mut assert_cmd::Command) -> Vec<u8> {
    let r = run(cmd);
    assert!(
        r.code == Some(0) && r.stderr.is_empty(),
        "exit {:?}, stderr {:?}",
        r.code,
        r.stderr
    );
    r.stdout
}

/// Asserts exit 2, nothing on stdout and one sentence on stderr; returns it.
fn refused(cmd: &mut assert_cmd::Command) -> String {
    let r = run(cmd);
    assert_eq!(r.code, Some(2), "stderr {:?}", r.stderr);
    assert!(
        r.stdout.is_empty(),
        "stdout {:?}",
        String::from_utf8_lossy(&r.stdout)
    );
    assert_eq!(r.stderr.lines().count(), 1, "not one line: {:?}", r.stderr);
    r.stderr
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn sample_log(n: u64) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", n);
    (dir, log)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn keygen(dir: &Path, prefix: &str) -> PathBuf {
    ok(cli(&dir.join("unused.jsonl"))
        .args(["keygen", "--name", "test.example/outputs", "--out"])
        .arg(dir.join(prefix)));
    dir.join(format!("{prefix}.key"))
}

fn mkfifo(path: &Path) {
    let status = StdCommand::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo is needed for this test: install coreutils");
    assert!(status.success(), "mkfifo {}", path.display());
}

// --- item 4: output files never clobber evidence ------------------------------------------

/// The output-writing commands, each given its `-o` target.
fn writers(log: &Path, key: &Path, target: &Path, force: bool) -> Vec<assert_cmd::Command> {
    let mut export = cli(log);
    export.args(["export", "-o"]).arg(target);
    let mut export_csv = cli(log);
    export_csv
        .args(["export", "--format", "csv", "-o"])
        .arg(target);
    let mut checkpoint = cli(log);
    checkpoint
        .args(["checkpoint", "--key"])
        .arg(key)
        .arg("-o")
        .arg(target);
    let mut all = vec![export, export_csv, checkpoint];
    if force {
        for c in &mut all {
            c.arg("--force");
        }
    }
    all
}

#[test]
fn outputs_refuse_the_log_its_hard_links_and_its_siblings_names_even_with_force() {
    let (dir, log) = sample_log(30);
    let key = keygen(dir.path(), "ck");
    let before = fs::read(&log).expect("read");
    let hard = dir.path().join("hard-link-to-log.jsonl");
    fs::hard_link(&log, &hard).expect("hard link");
    let segment = dir
        .path()
        .join("audit.jsonl.00000000000000000000-00000000000000000009.jsonl");
    let manifest = dir.path().join("audit.jsonl.manifest.jsonl");
    let torn = dir.path().join("audit.jsonl.torn-100-0123456789abcdef");
    fs::write(&segment, &before).expect("segment");
    for target in [&log, &hard, &segment, &manifest, &torn] {
        for force in [false, true] {
            for mut cmd in writers(&log, &key, target, force) {
                let err = refused(&mut cmd);
                assert!(err.contains("refusing to write"), "{err}");
            }
        }
    }
    assert_eq!(
        fs::read(&log).expect("read"),
        before,
        "the log is untouched"
    );
    assert_eq!(fs::read(&segment).expect("read"), before);
    assert!(!manifest.exists() && !torn.exists());
    assert_eq!(mode_of(&log), 0o600, "its mode too");
}

#[test]
fn outputs_never_replace_a_key_file_even_with_force() {
    let (dir, log) = sample_log(5);
    let key = keygen(dir.path(), "ck");
    let other_key = keygen(dir.path(), "other");
    ok(cli(&log)
        .args(["seal", "init", "--out"])
        .arg(dir.path().join("seal")));
    let seal_key = dir.path().join("seal").join("seal.key");
    let seal_verify = dir.path().join("seal").join("seal.verify");
    for target in [&key, &other_key, &seal_key, &seal_verify] {
        let before = fs::read(target).expect("read key");
        for mut cmd in writers(&log, &key, target, true) {
            let err = refused(&mut cmd);
            assert!(err.contains("key"), "{err}");
        }
        assert_eq!(fs::read(target).expect("read key"), before);
        assert_eq!(mode_of(target), 0o600);
    }
}

#[test]
fn outputs_refuse_symlinks_directories_fifos_sockets_and_devices() {
    let (dir, log) = sample_log(5);
    let key = keygen(dir.path(), "ck");
    let elsewhere = dir.path().join("elsewhere.txt");
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(&elsewhere, &dangling).expect("symlink");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind a socket");
    let subdir = dir.path().join("subdir");
    fs::create_dir(&subdir).expect("mkdir");
    for (target, why) in [
        (dangling.as_path(), "symbolic link"),
        (subdir.as_path(), "directory"),
        (fifo.as_path(), "FIFO"),
        (socket.as_path(), "socket"),
        (Path::new("/dev/null"), "device"),
    ] {
        for force in [false, true] {
            for mut cmd in writers(&log, &key, target, force) {
                let err = refused(&mut cmd);
                assert!(err.contains(why), "{why}: {err}");
            }
        }
    }
    assert!(!elsewhere.exists(), "nothing was written through the link");
    assert!(
        fs::symlink_metadata(&fifo)
            .expect("fifo")
            .file_type()
            .is_fifo(),
        "the FIFO is still there"
    );
}

#[test]
fn dash_means_standard_output() {
    let (dir, log) = sample_log(5);
    let key = keygen(dir.path(), "ck");
    let out = ok(cli(&log).args(["export", "-o", "-"]));
    assert_eq!(out, fs::read(&log).expect("read"));
    let note = ok(cli(&log)
        .args(["checkpoint", "--key"])
        .arg(&key)
        .args(["-o", "-"]));
    assert!(String::from_utf8_lossy(&note).starts_with("nexus-audit:audit.jsonl\n5\n"));
    assert!(!dir.path().join("-").exists());
}

#[test]
fn an_existing_file_is_kept_with_its_mode_unless_forced_and_then_replaced_by_a_new_one() {
    let (dir, log) = sample_log(8);
    let key = keygen(dir.path(), "ck");
    for i in 0..3 {
        let target = dir.path().join(format!("existing-{i}.txt"));
        fs::write(&target, "someone's notes\n").expect("write");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).expect("chmod");
        let attempt = |force: bool| run(&mut writers(&log, &key, &target, force).swap_remove(i));
        let r = attempt(false);
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        assert!(r.stderr.contains("--force"), "{}", r.stderr);
        assert_eq!(
            fs::read_to_string(&target).expect("read"),
            "someone's notes\n"
        );
        assert_eq!(
            mode_of(&target),
            0o640,
            "the mode of a file it did not create"
        );
        let r = attempt(true);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_ne!(
            fs::read_to_string(&target).expect("read"),
            "someone's notes\n"
        );
        let want = if i == 2 { 0o644 } else { 0o600 };
        assert_eq!(mode_of(&target), want, "a new file of its own mode");
    }
    let left: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| {
            std::path::Path::new(n)
                .extension()
                .is_some_and(|e| e == "tmp")
        })
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn new_outputs_are_private_except_public_keys_and_checkpoints() {
    let (dir, log) = sample_log(8);
    let key = keygen(dir.path(), "ck");
    assert_eq!(mode_of(&key), 0o600);
    assert_eq!(mode_of(&dir.path().join("ck.pub")), 0o644);
    let export = dir.path().join("calls.csv");
    ok(cli(&log)
        .args(["export", "--format", "csv", "-o"])
        .arg(&export));
    assert_eq!(mode_of(&export), 0o600);
    let cp = dir.path().join("cp.txt");
    ok(cli(&log)
        .args(["checkpoint", "--key"])
        .arg(&key)
        .arg("-o")
        .arg(&cp));
    assert_eq!(mode_of(&cp), 0o644);
    ok(cli(&log)
        .args(["seal", "init", "--out"])
        .arg(dir.path().join("seal")));
    for f in ["seal.key", "seal.verify"] {
        assert_eq!(mode_of(&dir.path().join("seal").join(f)), 0o600, "{f}");
    }
    assert_eq!(
        names(dir.path()),
        [
            "audit.jsonl",
            "calls.csv",
            "ck.key",
            "ck.pub",
            "cp.txt",
            "seal"
        ],
        "no temporary file left behind"
    );
}

#[test]
fn keygen_and_seal_init_never_replace_a_key() {
    let (dir, log) = sample_log(1);
    let key = keygen(dir.path(), "ck");
    let before = fs::read(&key).expect("read");
    let err = refused(
        cli(&log)
            .args(["keygen", "--name", "again", "--out"])
            .arg(dir.path().join("ck")),
    );
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(fs::read(&key).expect("read"), before);
    // Only the .pub exists: the pair is still refused, and nothing is half made.
    fs::remove_file(&key).expect("rm");
    refused(
        cli(&log)
            .args(["keygen", "--name", "again", "--out"])
            .arg(dir.path().join("ck")),
    );
    assert!(!key.exists());
    // A planted link where a key would go is refused, and nothing is written through it.
    let target = dir.path().join("planted-target");
    std::os::unix::fs::symlink(&target, dir.path().join("lk.key")).expect("symlink");
    refused(
        cli(&log)
            .args(["keygen", "--name", "x", "--out"])
            .arg(dir.path().join("lk")),
    );
    assert!(!target.exists());

    let seal = dir.path().join("seal");
    ok(cli(&log).args(["seal", "init", "--out"]).arg(&seal));
    let seal_before = fs::read(seal.join("seal.key")).expect("read");
    let err = refused(cli(&log).args(["seal", "init", "--out"]).arg(&seal));
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(fs::read(seal.join("seal.key")).expect("read"), seal_before);
    assert_eq!(names(&seal), ["seal.key", "seal.verify"]);
}

#[test]
fn verify_state_refuses_the_log_and_a_fifo_without_reading_or_replacing_them() {
    let (dir, log) = sample_log(20);
    let before = fs::read(&log).expect("read");
    let err = refused(cli(&log).args(["verify", "--state"]).arg(&log));
    assert!(err.contains("state"), "{err}");
    assert_eq!(fs::read(&log).expect("read"), before);
    let fifo = dir.path().join("state-fifo");
    mkfifo(&fifo);
    let started = Instant::now();
    let err = refused(cli(&log).args(["verify", "--state"]).arg(&fifo));
    assert!(err.contains("not a regular file"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no wait on the FIFO"
    );
}

#[test]
fn an_export_that_fails_halfway_leaves_no_file_behind() {
    let (dir, log) = sample_log(200);
    let target = dir.path().join("calls.json");
    // A file size limit of 1 KiB with SIGXFSZ ignored: the export's writes fail with EFBIG
    // after the first kilobyte, as on a full disk.
    let script = format!(
        "trap '' XFSZ; ulimit -f 1; exec '{BIN}' --file '{}' export --format json -o '{}'",
        log.display(),
        target.display()
    );
    let out = StdCommand::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash is needed for this test: install bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!target.exists(), "no half-written export");
    assert_eq!(names(dir.path()), ["audit.jsonl"], "no temporary file left");
}

// --- item 12: every table column is escaped -----------------------------------------------

#[test]
fn every_table_column_is_escaped_the_time_included() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    // A hand-made line (a legacy or edited log): the writer would normalise the timestamp,
    // but readers show whatever the file holds.
    let evil = serde_json::json!({
        "timestamp": "2026\u{1b}[2J\u{202e}-11-22T09:05:04.123456Z",
        "user_id": "u\u{1b}]0;t\u{7}\u{200b}",
        "action": "a\u{2066}b",
        "resource": "r\u{e0041}\u{fff9}",
        "status": "s\u{9b}31m",
        "latency_ms": 5,
    });
    fs::write(&log, format!("{evil}\n")).expect("write");
    for cmd in [
        vec!["tail", "--output", "table"],
        vec!["query", "--output", "table"],
        vec!["stats", "--output", "table", "--interval", "day"],
    ] {
        let out = ok(cli(&log).args(["--color", "never"]).args(&cmd));
        let text = String::from_utf8(out).expect("utf8");
        for bad in [
            '\u{1b}',
            '\u{7}',
            '\u{9b}',
            '\u{202e}',
            '\u{2066}',
            '\u{200b}',
            '\u{e0041}',
            '\u{fff9}',
        ] {
            assert!(!text.contains(bad), "{cmd:?} prints {bad:?} raw: {text:?}");
        }
        assert!(text.contains("\\u{1b}"), "{cmd:?}: {text}");
    }
    let table =
        String::from_utf8(ok(cli(&log).args(["query", "--output", "table"]))).expect("utf8");
    let row = table.lines().nth(1).expect("a row");
    assert!(
        row.starts_with("2026\\u{1b}[2J\\u{202e}-11-22 09:05"),
        "the TIME column, escaped: {row}"
    );
}

// --- item 13: one decision for a line that is not a record --------------------------------

/// A log of `good` records with the classes of lines that are not records put between them;
/// returns the log and the 1-based line numbers of the bad lines.
fn log_with_bad_lines(good: u64) -> (TempDir, PathBuf, Vec<usize>) {
    let (dir, log) = sample_log(good);
    let mut all = lines(&log);
    let bad: Vec<Vec<u8>> = vec![
        b"this is not json".to_vec(),
        br#"{"seq":3,"tool":"t","args_summary":{"a":[1,}}"#.to_vec(),
        br#"{"seq":4,"tool":"t"} trailing"#.to_vec(),
        b"[1,2,3]".to_vec(),
        Vec::new(),
        b"{\"seq\":5,\"user_id\":\"\xff\xfe\"}".to_vec(),
        br#"{"seq":6,"tool":"t","details":{"k" 1}}"#.to_vec(),
    ];
    let mut numbers = Vec::new();
    for (i, b) in bad.into_iter().enumerate() {
        let at = 2 + i * 3;
        all.insert(at, b);
        numbers.push(at + 1);
    }
    common::write_lines(&log, &all);
    (dir, log, numbers)
}

/// The data rows of a CSV document, each checked to be valid CSV.
fn csv_rows(bytes: &[u8]) -> usize {
    let mut n = 0;
    for row in csv::Reader::from_reader(bytes).records() {
        row.expect("valid CSV");
        n += 1;
    }
    n
}

fn assert_names_each(stderr: &str, numbers: &[usize], what: &str) {
    for n in numbers {
        assert!(
            stderr.contains(&format!("skipped line {n} of ")),
            "{what}: line {n} is not named: {stderr}"
        );
    }
    for l in stderr.lines() {
        assert!(
            l.starts_with("nexus-audit: warning: skipped "),
            "{what}: {l}"
        );
    }
    assert_eq!(stderr.lines().count(), numbers.len(), "{what}: {stderr}");
}

#[test]
fn every_reader_skips_counts_and_names_each_line_that_is_not_a_record() {
    let good = 30u64;
    let (dir, log, numbers) = log_with_bad_lines(good);
    let stored_records: Vec<Vec<u8>> = lines(&log)
        .into_iter()
        .filter(|l| serde_json::from_slice::<Value>(l).is_ok_and(|v| v.is_object()))
        .collect();
    assert_eq!(stored_records.len() as u64, good);

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["tail", "-n", "1000", "--output", "jsonl"], "jsonl"),
        (vec!["query", "--limit", "0", "--output", "jsonl"], "jsonl"),
        (vec!["query", "--limit", "0", "--output", "json"], "json"),
        (vec!["query", "--limit", "0", "--output", "yaml"], "yaml"),
        (vec!["query", "--limit", "0", "--output", "csv"], "csv"),
        (vec!["tail", "-n", "1000", "--output", "json"], "json"),
        (vec!["export"], "jsonl"),
        (vec!["export", "--format", "json"], "json"),
        (vec!["export", "--format", "csv"], "csv"),
    ];
    for (args, format) in cases {
        let r = run(cli(&log).args(&args));
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.stderr);
        assert_names_each(&r.stderr, &numbers, &format!("{args:?}"));
        let n = match format {
            "jsonl" => {
                let text = String::from_utf8(r.stdout).expect("utf8");
                for l in text.lines() {
                    serde_json::from_str::<Value>(l).expect("each line is JSON");
                }
                text.lines().count()
            }
            "json" => serde_json::from_slice::<Vec<Value>>(&r.stdout)
                .expect("one valid JSON array")
                .len(),
            "yaml" => serde_yaml::from_slice::<Vec<Value>>(&r.stdout)
                .expect("valid YAML")
                .len(),
            _ => csv_rows(&r.stdout),
        };
        assert_eq!(n as u64, good, "{args:?}: every record, nothing else");
    }
    // A checkpoint covers every line as stored; it names those that are not records.
    let key = keygen(dir.path(), "ck");
    let r = run(cli(&log).args(["checkpoint", "--key"]).arg(&key));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let total_lines = lines(&log).len();
    assert!(
        String::from_utf8_lossy(&r.stdout).contains(&format!("\n{total_lines}\n")),
        "the checkpoint's size counts every line"
    );
    for n in &numbers {
        assert!(
            r.stderr.contains(&format!("line {n} of ")) && r.stderr.contains("not a record"),
            "checkpoint: line {n}: {}",
            r.stderr
        );
    }
    assert_eq!(r.stderr.lines().count(), numbers.len(), "{}", r.stderr);

    let r = run(cli(&log).args(["stats", "--output", "json"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_names_each(&r.stderr, &numbers, "stats");
    let stats: Value = serde_json::from_slice(&r.stdout).expect("stats JSON");
    assert_eq!(stats["total_entries"], good);
    assert_eq!(stats["unreadable_lines"], numbers.len() as u64);
    // The table still counts them on stderr, not in the table.
    let r = run(cli(&log).args(["query", "--limit", "0", "--output", "table"]));
    assert_eq!(r.code, Some(0));
    assert_eq!(
        String::from_utf8(r.stdout).expect("utf8").lines().count() as u64,
        good + 1
    );
    assert_names_each(&r.stderr, &numbers, "table");
}

#[test]
fn many_bad_lines_are_named_ten_times_then_counted_once() {
    let (_dir, log) = sample_log(5);
    let mut all = lines(&log);
    for i in 0..25 {
        all.push(format!("garbage {i}").into_bytes());
    }
    common::write_lines(&log, &all);
    // Readers from the start name the first ten in the file; tail, reading from the end,
    // names the last ten it met. Each counts all 25.
    for (args, first) in [
        (vec!["export"], 6),
        (vec!["stats", "--output", "json"], 6),
        (vec!["query", "--limit", "0"], 21),
        (vec!["tail"], 21),
    ] {
        let r = run(cli(&log).args(&args));
        assert_eq!(r.code, Some(0), "{args:?}");
        let warnings: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(warnings.len(), 11, "{args:?}: {}", r.stderr);
        for (k, w) in warnings[..10].iter().enumerate() {
            assert!(
                w.contains(&format!("skipped line {} of ", first + k)),
                "{args:?}: {w}"
            );
        }
        assert!(
            warnings[10].contains("skipped 25 lines in all"),
            "{}",
            warnings[10]
        );
    }
}

#[test]
fn a_record_that_csv_and_yaml_cannot_decode_is_left_out_whole_and_named() {
    let (_dir, log) = sample_log(4);
    let mut all = lines(&log);
    // Valid JSON (RFC 8259), which serde_json cannot decode: a lone surrogate escape.
    all.insert(
        2,
        br#"{"seq":2,"tool":"t\ud800","status":"success"}"#.to_vec(),
    );
    common::write_lines(&log, &all);
    for (args, yaml) in [
        (vec!["export", "--format", "csv"], false),
        (vec!["query", "--output", "yaml"], true),
    ] {
        let r = run(cli(&log).args(&args));
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(r.stderr.contains("skipped line 3 of "), "{}", r.stderr);
        assert!(r.stderr.contains("cannot"), "{}", r.stderr);
        let n = if yaml {
            serde_yaml::from_slice::<Vec<Value>>(&r.stdout)
                .expect("valid YAML")
                .len()
        } else {
            csv_rows(&r.stdout)
        };
        assert_eq!(n, 4, "{args:?}");
    }
    // json and jsonl copy the stored line, which is valid JSON: it is kept there.
    let json = ok(cli(&log).args(["export", "--format", "json"]));
    assert_eq!(
        serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&json)
            .expect("valid JSON")
            .len(),
        5
    );
}

// --- item 15: --threads -------------------------------------------------------------------

#[test]
fn absurd_thread_counts_are_refused_with_one_sentence() {
    let (_dir, log) = sample_log(3);
    for cmd in ["stats", "verify"] {
        for n in [
            "0",
            "1025",
            "1000000000",
            "18446744073709551616",
            "-3",
            "many",
        ] {
            let started = Instant::now();
            let err = refused(cli(&log).args([cmd, "--threads", n]));
            assert!(
                err.contains("thread") || err.contains("unexpected argument"),
                "{cmd} {n}: {err}"
            );
            assert!(started.elapsed() < Duration::from_secs(20), "{cmd} {n}");
        }
        for n in ["1", "2", "1024"] {
            let r = run(cli(&log).args([cmd, "--threads", n]));
            assert_eq!(r.code, Some(0), "{cmd} --threads {n}: {}", r.stderr);
        }
    }
}

// --- item 16: memory does not grow with the result ----------------------------------------

#[test]
fn stats_past_ten_thousand_distinct_users_lists_the_heavy_ones_with_exact_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let writer = LogOptions::new(&log)
        .durability(Durability::None)
        .open()
        .expect("open");
    let heavy = [("heavy-a", 2_000u64), ("heavy-b", 1_500), ("heavy-c", 700)];
    let mut events = Vec::new();
    for (user, n) in heavy {
        for i in 0..n {
            events.push(
                Event::new("mcp_call")
                    .user(user)
                    .tool(format!("tool_{}", i % 3))
                    .status_success(),
            );
        }
    }
    let singles = 14_000u64;
    for i in 0..singles {
        events.push(
            Event::new("mcp_call")
                .user(format!("user-{i:06}"))
                .tool(format!("rare_tool_{i}"))
                .status_success(),
        );
    }
    // Mix them (a fixed permutation), so heavy users are spread over every thread's chunk.
    let n = events.len();
    let mut keyed: Vec<(usize, Event)> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| ((i * 7_919) % n, e))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    let mixed: Vec<Event> = keyed.into_iter().map(|(_, e)| e).collect();
    writer.append_batch(mixed).expect("append");
    writer.close().expect("close");

    let total = 4_200 + singles;
    for threads in ["1", "2", "3"] {
        let out = ok(cli(&log).args(["stats", "--output", "json", "--threads", threads]));
        let s: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(s["total_entries"], total);
        let by_user: BTreeMap<String, u64> =
            serde_json::from_value(s["by_user"].clone()).expect("by_user");
        assert_eq!(
            by_user,
            heavy
                .iter()
                .map(|(u, n)| ((*u).to_owned(), *n))
                .collect::<BTreeMap<_, _>>(),
            "threads {threads}: exactly the users above the threshold, exact counts"
        );
        let t = &s["truncated_breakdowns"]["by_user"];
        assert_eq!(t["values_listed"], 3);
        assert_eq!(t["records_not_listed"], singles);
        let threshold = t["listed_when_more_than"].as_u64().expect("threshold");
        assert!((1..700).contains(&threshold), "{threshold}");
        let top: Vec<(String, u64)> =
            serde_json::from_value(s["top_10_tools"].clone()).expect("top tools");
        assert_eq!(
            top,
            vec![
                ("tool_0".to_owned(), 1_401),
                ("tool_1".to_owned(), 1_400),
                ("tool_2".to_owned(), 1_399),
            ],
            "threads {threads}"
        );
        assert_eq!(
            s["truncated_breakdowns"]["top_10_tools"]["values_listed"],
            3
        );
        assert!(s["truncated_breakdowns"].get("by_server").is_none());
        assert_eq!(s["by_action"]["mcp_call"], total);
    }
    let table =
        String::from_utf8(ok(cli(&log).args(["stats", "--output", "table"]))).expect("utf8");
    assert!(
        table.contains("by_user has too many distinct values to list"),
        "{table}"
    );
}

#[test]
fn stats_percentiles_stay_exact_past_ten_thousand_distinct_latencies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let writer = LogOptions::new(&log)
        .durability(Durability::None)
        .open()
        .expect("open");
    // 13,000 distinct latencies from 5 s to about 11 days, plus some small ones, in no order.
    let mut values: Vec<u64> = (0..13_000u64)
        .map(|i| 5_000 + (i * 7_919 % 13_000) * 73_013)
        .chain((0..2_000u64).map(|i| i % 300))
        .collect();
    writer
        .append_batch(
            values
                .iter()
                .map(|v| Event::new("mcp_call").tool("t").latency_ms(*v))
                .collect(),
        )
        .expect("append");
    writer.close().expect("close");
    values.sort_unstable();
    let n = values.len() as u64;
    let rank = |p: u64| values[usize::try_from((p * n).div_ceil(100) - 1).expect("index")];
    for threads in ["1", "2"] {
        let out = ok(cli(&log).args(["stats", "--output", "json", "--threads", threads]));
        let s: Value = serde_json::from_slice(&out).expect("JSON");
        let l = &s["latency_ms"];
        assert_eq!(l["count"], n);
        assert_eq!(l["min"], values[0]);
        assert_eq!(l["max"], values[values.len() - 1]);
        for (key, p) in [("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)] {
            assert_eq!(l[key], rank(p), "{key}, threads {threads}");
        }
    }
}

#[test]
fn stats_json_of_an_ordinary_log_is_unchanged() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let got = ok(cli(&fixture.join("sample.jsonl")).args(["stats", "--output", "json"]));
    let want = fs::read(fixture.join("sample.stats.json")).expect("fixtures/sample.stats.json");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "stats --output json of fixtures/sample.jsonl"
    );
}

#[test]
fn an_unlimited_table_query_prints_its_rows_in_pages_with_one_header() {
    let (_dir, log) = sample_log(2_500);
    let text = String::from_utf8(ok(cli(&log).args([
        "query", "--limit", "0", "--output", "table", "--color", "never",
    ])))
    .expect("utf8");
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2_501);
    assert!(rows[0].starts_with("TIME"));
    assert_eq!(rows.iter().filter(|r| r.starts_with("TIME")).count(), 1);
    // Columns start where the header's do (the sample's values never outgrow a page).
    let starts = |l: &str| -> Vec<usize> {
        let b = l.as_bytes();
        (1..b.len())
            .filter(|&i| b[i] != b' ' && b[i - 1] == b' ' && i >= 2 && b[i - 2] == b' ')
            .collect()
    };
    let head = starts(rows[0]);
    for r in &rows[1..] {
        assert_eq!(starts(r)[..3], head[..3], "{r}");
    }
}

// --- item 19: readers do not keep writers waiting -----------------------------------------

#[test]
fn a_reader_holding_its_snapshot_does_not_block_an_append() {
    let (_dir, log) = sample_log(3_000);
    let size_before = fs::metadata(&log).expect("stat").len();
    // A reader whose output nobody reads: it blocks writing to the full pipe, in the middle
    // of its snapshot, for as long as we like.
    let mut reader = StdCommand::new(BIN)
        .arg("--file")
        .arg(&log)
        .args(["export", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn reader");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        reader.try_wait().expect("wait").is_none(),
        "the reader is still inside its snapshot"
    );
    let started = Instant::now();
    let out = run(cli(&log).args(["append", "--tool", "while_reading", "--user", "w"]));
    let took = started.elapsed();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        took < Duration::from_secs(5),
        "append waited {took:?} for a reader"
    );
    // The reader still sees exactly its snapshot: every record before the append, not it.
    let mut stdout = reader.stdout.take().expect("stdout");
    let mut json = Vec::new();
    stdout.read_to_end(&mut json).expect("read");
    assert!(reader.wait().expect("wait").success());
    let records: Vec<Value> = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(records.len(), 3_000);
    assert!(fs::metadata(&log).expect("stat").len() > size_before);
}

#[test]
fn a_reader_gives_up_with_one_sentence_when_a_lock_is_held_forever() {
    let (_dir, log) = sample_log(5);
    // Anyone who can open the log can hold a lock on it; here, the test itself.
    let holder = fs::File::open(&log).expect("open");
    holder.lock().expect("lock");
    let started = Instant::now();
    let err = refused(cli(&log).args(["query"]));
    let took = started.elapsed();
    assert!(err.contains("lock"), "{err}");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(30)).contains(&took),
        "gave up after {took:?}"
    );
    holder.unlock().expect("unlock");
    ok(cli(&log).args(["query"]));
}
