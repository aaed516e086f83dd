//! `append` under a slow producer, signals, files that are not logs, a `seq` at its end, input
//! that tries to set what only the writer sets, failed appends and numbers beyond 64 bits, all
//! through the real binary.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{cli, lines, verify_json};
use nexus_audit::hash_line;
use serde_json::{Value, json};

/// Asserts exit code 2 and exactly one line on stderr without panic text; returns the line.
fn assert_fails_with_one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {stderr:?}");
    assert!(stderr.ends_with('\n'), "stderr ends with LF: {stderr:?}");
    assert_eq!(stderr.matches('\n').count(), 1, "one line: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn assert_verifies(log: &Path) -> u64 {
    let (code, report) = verify_json(log);
    assert_eq!(code, 0, "verify: {report}");
    report["records"].as_u64().expect("records")
}

fn record(line: &[u8]) -> Value {
    serde_json::from_slice(line).expect("a record line is JSON")
}

/// The names of the files in `dir`.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `append --stdin` as a child process with a pipe for its standard input.
struct Appender {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Appender {
    fn start(log: &Path, extra: &[&str]) -> Appender {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus-audit"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .arg("--file")
            .arg(log)
            .args(["append", "--stdin"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start append --stdin");
        let stdin = child.stdin.take();
        Appender { child, stdin }
    }

    fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to append --stdin");
        stdin.flush().expect("flush");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill (procps or util-linux must be installed)");
        assert!(status.success(), "kill -{name}");
    }

    /// Waits for the process to end, at most `limit`; its output.
    fn finish(mut self, limit: Duration) -> Output {
        drop(self.stdin.take());
        let start = Instant::now();
        while self.child.try_wait().expect("try_wait").is_none() {
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("append --stdin did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = self.child.wait().expect("wait");
        let read = |pipe: Option<&mut dyn std::io::Read>| {
            let mut bytes = Vec::new();
            if let Some(p) = pipe {
                p.read_to_end(&mut bytes).expect("read output");
            }
            bytes
        };
        let stdout = read(
            self.child
                .stdout
                .as_mut()
                .map(|p| p as &mut dyn std::io::Read),
        );
        let stderr = read(
            self.child
                .stderr
                .as_mut()
                .map(|p| p as &mut dyn std::io::Read),
        );
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The number of complete lines in the file (0 when it does not exist).
fn complete_lines(path: &Path) -> usize {
    std::fs::read(path)
        .unwrap_or_default()
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// Polls the file until it holds `n` complete lines; the time that took.
fn wait_for_lines(path: &Path, n: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    while complete_lines(path) < n {
        assert!(
            start.elapsed() < limit,
            "record {n} was not in the file within {limit:?} (it holds {})",
            complete_lines(path)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

fn input_line(i: usize) -> String {
    format!(
        "{{\"tool\":\"workday_get_worker\",\"correlation_id\":\"req-{i}\",\"status\":\"success\"}}\n"
    )
}

// ---- item 3: a slow producer's records are written at once; signals flush what was read ----

#[test]
fn a_record_from_a_slow_producer_is_in_the_file_within_100_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    for durability in ["none", "sync"] {
        let log = dir.path().join(format!("{durability}.jsonl"));
        let mut producer = Appender::start(&log, &["--durability", durability]);
        // The first record also waits for the process to start.
        producer.send(input_line(0).as_bytes());
        wait_for_lines(&log, 1, Duration::from_secs(20));
        let mut worst = Duration::ZERO;
        for i in 1..4 {
            // A slow producer: one record, then a pause.
            std::thread::sleep(Duration::from_millis(200));
            producer.send(input_line(i).as_bytes());
            let took = wait_for_lines(&log, i + 1, Duration::from_secs(1));
            worst = worst.max(took);
        }
        eprintln!("durability {durability}: slowest record reached the file in {worst:?}");
        let out = producer.finish(Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(assert_verifies(&log), 4);
    }
}

/// Sends three records and waits for them (so the process is up), then five more and a line
/// cut short, then the signal at once: every complete line it was sent must be written.
fn stop_mid_stream(signal: &str, code: i32, extra: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let mut producer = Appender::start(&log, extra);
    for i in 0..3 {
        producer.send(input_line(i).as_bytes());
    }
    wait_for_lines(&log, 3, Duration::from_secs(20));
    let mut burst: String = (3..8).map(input_line).collect();
    burst.push_str("{\"tool\":\"cut_short");
    producer.send(burst.as_bytes());
    producer.signal(signal);
    // The producer keeps its end open: only the signal ends the appender.
    let out = {
        let start = Instant::now();
        let mut p = producer;
        while p.child.try_wait().expect("try_wait").is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "append --stdin did not stop on {signal}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        p.finish(Duration::from_secs(1))
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{signal}: {stderr}");
    assert_eq!(stderr.matches('\n').count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains(signal), "{stderr}");
    assert!(stderr.contains("wrote 8 records"), "{stderr}");
    assert!(stderr.contains("18 bytes"), "the line cut short: {stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary on stdout");
    assert_eq!(summary["appended"], json!(8));
    let stored = lines(&log);
    assert_eq!(stored.len(), 8, "every complete line sent is written");
    for (i, line) in stored.iter().enumerate() {
        assert_eq!(record(line)["correlation_id"], json!(format!("req-{i}")));
    }
    assert_eq!(assert_verifies(&log), 8);
}

#[test]
fn sigterm_mid_stream_writes_every_line_read_and_exits_143() {
    stop_mid_stream("TERM", 143, &["--durability", "none"]);
}

#[test]
fn sigint_mid_stream_writes_every_line_read_and_exits_130() {
    stop_mid_stream("INT", 130, &["--batch", "2"]);
}

#[test]
fn a_second_signal_ends_a_flush_that_cannot_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let mut producer = Appender::start(&log, &[]);
    // Once the first record is written, the signals are caught.
    producer.send(input_line(0).as_bytes());
    wait_for_lines(&log, 1, Duration::from_secs(20));
    let before = std::fs::read(&log).expect("read log");
    // Another writer holds the lock, so the next flush waits.
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .open(&log)
        .expect("open log");
    holder.lock().expect("lock the log");
    producer.send(input_line(1).as_bytes());
    std::thread::sleep(Duration::from_millis(200));
    producer.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        producer.child.try_wait().expect("try_wait").is_none(),
        "the first signal waits for the flush"
    );
    producer.signal("TERM");
    let out = producer.finish(Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    holder.unlock().expect("unlock");
    assert_eq!(std::fs::read(&log).expect("read log"), before);
}

// ---- item 9: a file that is not a log is refused, never moved aside ----

#[test]
fn append_refuses_a_file_with_no_complete_line_that_does_not_begin_like_a_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = "not a log ".repeat(20_000);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"hello, world".to_vec()),
        ("json", br#"{"name":"config","debug":true}"#.to_vec()),
        ("png", b"\x89PNG\r\x1a\x00\x00\x00\rIHDR".to_vec()),
        ("spaces", b"   ".to_vec()),
        ("nul", vec![0, 0, 0, 0]),
        ("array", b"[1,2,3]".to_vec()),
        ("quoted-seq", br#"{"seq":"0","prev_hash":""#.to_vec()),
        ("other-key", br#"{"sequence":1}"#.to_vec()),
        ("big", big.into_bytes()),
    ];
    for (name, bytes) in cases {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).expect("mkdir");
        let log = sub.join("audit.jsonl");
        std::fs::write(&log, &bytes).expect("write");
        for mode in ["flags", "json", "stdin"] {
            let mut cmd = cli(&log);
            match mode {
                "flags" => cmd.args(["append", "--tool", "ad_get_user"]),
                "json" => cmd.args(["append", "--json", r#"{"tool":"ad_get_user"}"#]),
                _ => cmd
                    .args(["append", "--stdin"])
                    .write_stdin("{\"tool\":\"ad_get_user\"}\n"),
            };
            let out = cmd.output().expect("run append");
            let stderr = assert_fails_with_one_line(&out);
            assert!(
                stderr.contains("not an audit log"),
                "{name} {mode}: {stderr}"
            );
            assert_eq!(
                std::fs::read(&log).expect("read"),
                bytes,
                "{name} {mode}: the file is untouched"
            );
            assert_eq!(
                files_in(&sub),
                vec!["audit.jsonl".to_owned()],
                "{name} {mode}: nothing was moved aside"
            );
        }
    }
}

#[test]
fn a_torn_first_record_is_still_quarantined() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, torn) in [
        &b"{"[..],
        b"{\"se",
        b"{\"seq\":0,\"prev_ha",
        b"{\"seq\":0,\"prev_hash\":\"00000000",
    ]
    .iter()
    .enumerate()
    {
        let sub = dir.path().join(format!("case{i}"));
        std::fs::create_dir(&sub).expect("mkdir");
        let log = sub.join("audit.jsonl");
        std::fs::write(&log, torn).expect("write");
        let out = cli(&log)
            .args(["append", "--tool", "ad_get_user"])
            .output()
            .expect("run append");
        assert!(out.status.success(), "{out:?}");
        let stored = lines(&log);
        assert_eq!(stored.len(), 2);
        let r = record(&stored[0]);
        assert_eq!(r["action"], json!("log_recovered"));
        let quarantine = sub.join(r["details"]["quarantine_file"].as_str().expect("name"));
        assert_eq!(std::fs::read(quarantine).expect("quarantine"), *torn);
        assert_eq!(assert_verifies(&log), 2);
    }
}

// ---- item 10: schema_version is the writer's ----

#[test]
fn an_input_schema_version_is_ignored_and_the_writer_writes_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    for input in [
        r#"{"tool":"ad_get_user","schema_version":"2"}"#,
        r#"{"tool":"ad_get_user","schema_version":7}"#,
        r#"{"tool":"ad_get_user","schema_version":{"v":2}}"#,
        r#"{"tool":"ad_get_user","schema_version":null}"#,
    ] {
        let out = cli(&log)
            .args(["append", "--json", input])
            .output()
            .expect("run append");
        assert!(out.status.success(), "{input}: {out:?}");
    }
    let out = cli(&log)
        .args(["append", "--stdin"])
        .write_stdin("{\"tool\":\"ad_get_user\",\"schema_version\":\"0.9\"}\n")
        .output()
        .expect("run append --stdin");
    assert!(out.status.success(), "{out:?}");
    let stored = lines(&log);
    assert_eq!(stored.len(), 5);
    for line in &stored {
        let text = String::from_utf8_lossy(line);
        assert_eq!(text.matches("\"schema_version\"").count(), 1, "{text}");
        assert!(text.contains(r#""schema_version":"1","#), "{text}");
    }
    assert_eq!(assert_verifies(&log), 5);
}

// ---- item 11: seq never wraps ----

/// A chained line with `seq`, linked to `prev` (hex), ending the log or not.
fn chained_line(seq: u64, prev: &str) -> Vec<u8> {
    format!(
        r#"{{"seq":{seq},"prev_hash":"{prev}","event_id":"e-{seq}","timestamp":"2026-11-22T09:05:04.000000Z","schema_version":"1","source":"nexus-mcp","action":"mcp_call","tool":"ad_get_user"}}"#
    )
    .into_bytes()
}

fn hex_hash(line: &[u8]) -> String {
    hex::encode(hash_line(line))
}

/// A log whose records carry `seqs`, each linked to the one before.
fn log_with_seqs(dir: &Path, name: &str, seqs: &[u64]) -> PathBuf {
    let mut prev = "ab".repeat(32);
    let mut out = Vec::new();
    for &seq in seqs {
        let line = chained_line(seq, &prev);
        prev = hex_hash(&line);
        out.push(line);
    }
    let path = dir.join(name);
    common::write_lines(&path, &out);
    path
}

#[test]
fn append_refuses_to_take_seq_past_u64_max() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = log_with_seqs(dir.path(), "full.jsonl", &[u64::MAX - 1, u64::MAX]);
    let before = std::fs::read(&log).expect("read");
    for args in [
        &["append", "--tool", "ad_get_user"][..],
        &["append", "--json", r#"{"tool":"ad_get_user"}"#],
    ] {
        let out = cli(&log).args(args).output().expect("run append");
        let stderr = assert_fails_with_one_line(&out);
        assert!(stderr.contains("18446744073709551615"), "{stderr}");
        assert!(stderr.contains("never wraps"), "{stderr}");
        assert_eq!(std::fs::read(&log).expect("read"), before);
    }

    // One short of the end: a batch of two does not fit and is refused whole; one does.
    let log = log_with_seqs(dir.path(), "almost.jsonl", &[u64::MAX - 2, u64::MAX - 1]);
    let before = std::fs::read(&log).expect("read");
    let out = cli(&log)
        .args(["append", "--stdin"])
        .write_stdin(input_line(0) + &input_line(1))
        .output()
        .expect("run append --stdin");
    let stderr = assert_fails_with_one_line(&out);
    assert!(stderr.contains("never wraps"), "{stderr}");
    assert!(stderr.contains("wrote 0 records"), "{stderr}");
    assert_eq!(std::fs::read(&log).expect("read"), before);
    let out = cli(&log)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    assert!(out.status.success(), "{out:?}");
    let stored = lines(&log);
    assert_eq!(record(&stored[2])["seq"], json!(u64::MAX));
    let out = cli(&log)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    assert!(assert_fails_with_one_line(&out).contains("never wraps"));
    assert_eq!(lines(&log).len(), 3);
}

#[test]
fn verify_flags_a_seq_that_wraps() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, seqs) in [
        ("to-zero", &[u64::MAX - 1, u64::MAX, 0, 1][..]),
        ("to-five", &[u64::MAX - 1, u64::MAX, 5, 6]),
        ("again-max", &[u64::MAX - 1, u64::MAX, u64::MAX]),
    ] {
        let log = log_with_seqs(dir.path(), name, seqs);
        let (code, report) = verify_json(&log);
        assert_eq!(code, 1, "{name}: {report}");
        let problems = report["problems"].as_array().expect("problems");
        let wrap: Vec<&Value> = problems.iter().filter(|p| p["line"] == json!(3)).collect();
        assert_eq!(wrap.len(), 1, "{name}: one problem at line 3: {report}");
        assert_eq!(wrap[0]["kind"], json!("seq_out_of_order"), "{report}");
        let message = wrap[0]["message"].as_str().expect("message");
        assert!(message.contains("wrapped"), "{message}");
        assert!(
            problems.iter().all(|p| p["line"] != json!(4)),
            "no follow-on problem: {report}"
        );
    }
    // A chain that ends at u64::MAX is fine.
    let log = log_with_seqs(dir.path(), "ends-at-max", &[u64::MAX - 1, u64::MAX]);
    let (_, report) = verify_json(&log);
    assert!(
        report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .all(|p| p["kind"] == json!("bad_genesis")),
        "only the start is reported: {report}"
    );
}

// ---- item 14: a failed append creates no file ----

#[test]
fn a_failed_append_creates_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_a_key = dir.path().join("not-a-key");
    std::fs::write(&not_a_key, "{}").expect("write");
    let not_a_key = not_a_key.to_string_lossy().into_owned();
    let missing_key = dir
        .path()
        .join("no-such.key")
        .to_string_lossy()
        .into_owned();
    let bad_ts = r#"{"tool":"ad_get_user","timestamp":"last tuesday"}"#;
    let cases: Vec<(Vec<&str>, Option<String>)> = vec![
        (vec!["--tool", "ad_get_user", "--timestamp", "soon"], None),
        (vec!["--json", bad_ts], None),
        (
            vec!["--stdin"],
            Some(format!("{bad_ts}\n{}", input_line(1))),
        ),
        (
            vec!["--tool", "ad_get_user", "--seal-key", &missing_key],
            None,
        ),
        (
            vec!["--json", r#"{"tool":"x"}"#, "--seal-key", &missing_key],
            None,
        ),
        (
            vec!["--stdin", "--seal-key", &missing_key],
            Some(input_line(0)),
        ),
        (
            vec!["--tool", "ad_get_user", "--seal-key", &not_a_key],
            None,
        ),
        (
            vec!["--stdin", "--seal-key", &not_a_key],
            Some(input_line(0)),
        ),
        (vec!["--tool", "ad_get_user", "--details", "[1"], None),
        (
            vec!["--stdin"],
            Some("{\"latency_ms\":\"slow\"}\n".to_owned()),
        ),
    ];
    for (args, stdin) in cases {
        let log = dir.path().join("audit.jsonl");
        let mut cmd = cli(&log);
        cmd.arg("append").args(&args);
        if let Some(input) = stdin {
            cmd.write_stdin(input);
        }
        let out = cmd.output().expect("run append");
        assert_fails_with_one_line(&out);
        assert!(!log.exists(), "{args:?}: no file was created");
    }
}

// ---- item 17: errors say what happened ----

#[test]
fn a_bad_timestamp_on_stdin_is_named_by_its_line_and_the_records_before_it_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut input: String = (0..3).map(input_line).collect();
    input.push_str("{\"tool\":\"ad_get_user\",\"timestamp\":\"2026-02-30T25:00:00Z\"}\n");
    input.push_str(&input_line(4));
    for (batch, kept) in [("1", 3), ("4096", 0)] {
        let log = dir.path().join(format!("batch-{batch}.jsonl"));
        let out = cli(&log)
            .args(["append", "--stdin", "--batch", batch])
            .write_stdin(input.clone())
            .output()
            .expect("run append --stdin");
        let stderr = assert_fails_with_one_line(&out);
        assert!(stderr.contains("line 4"), "{stderr}");
        assert!(stderr.contains("timestamp"), "{stderr}");
        assert!(
            stderr.contains(&format!("wrote {kept} record")),
            "says what was written: {stderr}"
        );
        assert_eq!(complete_lines(&log), kept);
    }
}

// ---- item 18: integers beyond 64 bits are stored exactly ----

const BIG: &[&str] = &[
    "123456789012345678901234567890",
    "-98765432109876543210987654321",
    "18446744073709551616",
    "-9223372036854775809",
    "340282366920938463463374607431768211457",
];

#[test]
fn integers_beyond_64_bits_are_stored_digit_for_digit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let list = BIG.join(",");
    let args = format!(r#"{{"ids":[{list}],"nested":{{"n":{}}}}}"#, BIG[0]);
    let json_input = format!(
        r#"{{"tool":"t","args_summary":{args},"details":{{"n":{}}},"big_extra":{}}}"#,
        BIG[1], BIG[4]
    );
    let out = cli(&log)
        .args(["append", "--json", &json_input])
        .output()
        .expect("run append --json");
    assert!(out.status.success(), "{out:?}");
    let out = cli(&log)
        .args(["append", "--tool", "t", "--args", &args, "--details", &args])
        .output()
        .expect("run append --args");
    assert!(out.status.success(), "{out:?}");
    let out = cli(&log)
        .args(["append", "--stdin"])
        .write_stdin(format!("{json_input}\n"))
        .output()
        .expect("run append --stdin");
    assert!(out.status.success(), "{out:?}");

    let stored = lines(&log);
    assert_eq!(stored.len(), 3);
    for line in &stored {
        let text = String::from_utf8_lossy(line);
        assert!(text.contains(&format!("[{list}]")), "{text}");
        for big in BIG {
            assert!(
                !text.contains(&format!("{}e", &big[..3])),
                "no float: {text}"
            );
        }
    }
    let text = String::from_utf8_lossy(&stored[0]);
    assert!(
        text.contains(&format!(r#""details":{{"n":{}}}"#, BIG[1])),
        "{text}"
    );
    assert!(
        text.contains(&format!(r#""big_extra":{}"#, BIG[4])),
        "{text}"
    );
    assert_eq!(assert_verifies(&log), 3);

    // Readers print them as stored.
    for args in [
        &["query", "--output", "json"][..],
        &["export", "--format", "json"],
        &["export", "--format", "csv"],
    ] {
        let out = cli(&log).args(args).output().expect("run reader");
        assert!(out.status.success(), "{args:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for big in BIG {
            assert!(text.contains(big), "{args:?} prints {big}: {text}");
        }
    }
}

#[test]
fn floats_keep_the_bytes_they_were_always_stored_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    // Each input number, and the text the writer has always stored for it.
    let cases = [
        ("1.50", "1.5"),
        ("1e5", "100000.0"),
        ("-0", "-0.0"),
        ("-0.0", "-0.0"),
        ("0.1", "0.1"),
        ("1E2", "100.0"),
        ("2.5e-3", "0.0025"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("1e-400", "0.0"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("5e-324", "5e-324"),
        ("123.456e2", "12345.6"),
        ("1.0", "1.0"),
        ("0.1000000000000000055511151231257827", "0.1"),
        ("2.2250738585072011e-308", "2.2250738585072014e-308"),
        ("18446744073709551615", "18446744073709551615"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("100", "100"),
        ("-17", "-17"),
    ];
    let input: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (n, _))| format!(r#""k{i}":{n}"#))
        .collect();
    let expected: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, n))| format!(r#""k{i}":{n}"#))
        .collect();
    let event = format!(r#"{{"tool":"t","args_summary":{{{}}}}}"#, input.join(","));
    let out = cli(&log)
        .args(["append", "--json", &event])
        .output()
        .expect("run append");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(lines(&log).remove(0)).expect("utf8");
    assert!(
        text.contains(&format!(r#""args_summary":{{{}}}"#, expected.join(","))),
        "{text}"
    );
}
