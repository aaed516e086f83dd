//! Crashes and failed writes (SPEC §4): writers killed mid-batch, torn tails made by hand, and
//! a full disk. After each, the next append must work, a torn tail must be quarantined byte
//! for byte and recorded in a `log_recovered` record, and `verify` must be clean.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{cli, lines, sample_event, verify_json, write_log};
use nexus_audit::hash_line;
use nexus_audit::{Durability, Event, LogOptions};
use serde_json::{Value, json};

/// Set in a child copy of this test binary: the log it appends to until killed.
const CHILD_LOG: &str = "NEXUS_AUDIT_TEST_CHILD";

/// The real binary as a `std::process::Command` (which, unlike `assert_cmd`'s, can be spawned
/// and killed), with a clean environment and `--file log`.
fn bin(log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus-audit"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("NO_COLOR");
    cmd.arg("--file").arg(log);
    cmd
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(hash_line(bytes))
}

/// The bytes after the last LF.
fn torn_tail_of(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes[complete..].to_vec()
}

fn record(line: &[u8]) -> Value {
    serde_json::from_slice(line).expect("a record line is JSON")
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Asserts that `line` is the `log_recovered` record for `torn` and that its quarantine file
/// beside `log` holds exactly those bytes, with mode 0600.
fn assert_recovered(log: &Path, line: &[u8], torn: &[u8]) {
    let r = record(line);
    assert_eq!(r["action"], json!("log_recovered"), "record: {r}");
    assert_eq!(r["details"]["torn_bytes"], json!(torn.len()));
    assert_eq!(r["details"]["torn_sha256"], json!(sha256_hex(torn)));
    let name = r["details"]["quarantine_file"]
        .as_str()
        .expect("quarantine_file is a string");
    assert!(
        !name.contains('/'),
        "the quarantine file is named, not a path: {name}"
    );
    let quarantine = log.with_file_name(name);
    let kept = std::fs::read(&quarantine).expect("the quarantine file exists beside the log");
    assert_eq!(
        sha256_hex(&kept),
        sha256_hex(torn),
        "the quarantine holds the torn bytes"
    );
    assert_eq!(kept, torn);
    assert_eq!(mode_of(&quarantine), 0o600, "quarantine file mode");
}

/// Asserts that `verify` is clean and returns the record count.
fn assert_verifies(log: &Path) -> u64 {
    let (code, report) = verify_json(log);
    assert_eq!(code, 0, "verify: {report}");
    assert_eq!(report["ok"], json!(true));
    report["records"].as_u64().expect("records")
}

/// Appends one record with the binary and checks the outcome of a crash: when the log had a
/// torn tail, the record before the new one is its `log_recovered` record. Returns whether
/// there was a torn tail.
fn append_after_crash(log: &Path, round: usize) -> bool {
    let torn = torn_tail_of(log);
    let before = std::fs::read(log)
        .unwrap_or_default()
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    let out = cli(log)
        .args(["append", "--tool", "audit_probe", "--status", "success"])
        .args(["--correlation", &format!("round-{round}")])
        .output()
        .expect("run append");
    assert!(
        out.status.success(),
        "append after a crash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = lines(log);
    let last = record(after.last().expect("a record"));
    assert_eq!(last["correlation_id"], json!(format!("round-{round}")));
    if torn.is_empty() {
        assert_eq!(after.len(), before + 1);
    } else {
        assert_eq!(
            after.len(),
            before + 2,
            "log_recovered, then the new record"
        );
        assert_recovered(log, &after[after.len() - 2], &torn);
    }
    assert_eq!(
        assert_verifies(log),
        after.len() as u64,
        "verify counts every line"
    );
    !torn.is_empty()
}

/// When to kill a writer.
#[derive(Clone, Copy, Debug)]
enum KillWhen {
    /// As soon as the file grows: most likely in the middle of a `write`.
    Growing,
    /// After this long.
    After(Duration),
}

fn kill_when(mut child: Child, log: &Path, when: KillWhen) {
    match when {
        KillWhen::Growing => {
            let start = std::fs::metadata(log).map_or(0, |m| m.len());
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::fs::metadata(log).map_or(0, |m| m.len()) == start
                && Instant::now() < deadline
            {
                std::hint::spin_loop();
            }
        }
        KillWhen::After(d) => std::thread::sleep(d),
    }
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("reap the writer");
    assert!(!status.success(), "the writer was killed, not finished");
}

/// A small xorshift generator: enough to vary delays without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn plan(round: usize, rng: &mut Rng) -> KillWhen {
    if round.is_multiple_of(2) {
        KillWhen::Growing
    } else {
        KillWhen::After(Duration::from_millis(5 + rng.below(120)))
    }
}

/// One input line of about 1 KiB for `append --stdin`.
fn input_line(i: u64) -> String {
    let mut line = json!({
        "tool": "workday_get_worker",
        "user_id": "crash@example.com",
        "status": "success",
        "correlation_id": format!("in-{i}"),
        "details": {"note": "n".repeat(900)},
    })
    .to_string();
    line.push('\n');
    line
}

#[test]
fn binary_writers_killed_mid_batch_leave_a_log_the_next_append_recovers() {
    const ROUNDS: usize = 6;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut torn_rounds = 0;
    for round in 0..ROUNDS {
        let when = plan(round, &mut rng);
        let mut child = bin(&log)
            .args([
                "append",
                "--stdin",
                "--batch",
                "50000",
                "--durability",
                "none",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn append --stdin");
        let mut stdin = child.stdin.take().expect("stdin");
        let feeder = std::thread::spawn(move || {
            // Feed until the writer dies and the pipe breaks.
            let chunk: String = (0..4096).map(input_line).collect();
            while stdin.write_all(chunk.as_bytes()).is_ok() {}
        });
        kill_when(child, &log, when);
        feeder.join().expect("feeder");
        let torn = append_after_crash(&log, round);
        eprintln!("round {round}: {when:?}, torn tail: {torn}");
        torn_rounds += usize::from(torn);
    }
    eprintln!("{torn_rounds} of {ROUNDS} kills left a torn tail");
}

/// The body of a child process: append large batches with the library until killed.
fn child_appends_forever(log: &Path) -> ! {
    let logger = LogOptions::new(log)
        .durability(Durability::None)
        .open()
        .expect("open log");
    let note = "n".repeat(4000);
    let mut i = 0;
    loop {
        let batch: Vec<Event> = (0..2000)
            .map(|k| sample_event(i + k).details(json!({ "note": note })))
            .collect();
        logger.append_batch(batch).expect("append");
        i += 2000;
    }
}

#[test]
fn library_writers_killed_mid_batch_leave_a_log_the_next_append_recovers() {
    const NAME: &str = "library_writers_killed_mid_batch_leave_a_log_the_next_append_recovers";
    const ROUNDS: usize = 6;
    if let Some(log) = std::env::var_os(CHILD_LOG) {
        child_appends_forever(Path::new(&log));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut torn_rounds = 0;
    for round in 0..ROUNDS {
        let when = plan(round, &mut rng);
        let child = Command::new(&exe)
            .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
            .env(CHILD_LOG, &log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child test");
        kill_when(child, &log, when);
        let torn = append_after_crash(&log, round);
        eprintln!("round {round}: {when:?}, torn tail: {torn}");
        torn_rounds += usize::from(torn);
    }
    eprintln!("{torn_rounds} of {ROUNDS} kills left a torn tail");
}

/// Appends `bytes` to the file by hand, as a crashed writer would have left them.
fn append_raw(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for a raw append");
    f.write_all(bytes).expect("raw append");
}

#[test]
fn a_torn_tail_written_by_hand_is_reported_then_quarantined_by_the_next_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 5);
    let whole = lines(&log);
    let complete_len = std::fs::metadata(&log).expect("stat").len();
    let torn = br#"{"seq":5,"prev_hash":"0123456789abcdef","tool":"half a li"#;
    append_raw(&log, torn);

    let (code, report) = verify_json(&log);
    assert_eq!(code, 1, "a torn tail is an integrity problem: {report}");
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["kind"], json!("torn_tail"));
    assert_eq!(problems[0]["line"], json!(6));
    assert_eq!(problems[0]["offset"], json!(complete_len));

    let out = cli(&log)
        .args(["append", "--tool", "ad_get_user", "--status", "success"])
        .output()
        .expect("run append");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = lines(&log);
    assert_eq!(after.len(), 7);
    assert_eq!(after[..5], whole[..], "complete lines are never touched");
    let recovered = record(&after[5]);
    assert_eq!(recovered["seq"], json!(5));
    assert_eq!(
        recovered["prev_hash"],
        json!(hex::encode(hash_line(&whole[4])))
    );
    assert_eq!(recovered["details"]["torn_offset"], json!(complete_len));
    assert_recovered(&log, &after[5], torn);
    assert_eq!(record(&after[6])["seq"], json!(6));
    assert_eq!(record(&after[6])["tool"], json!("ad_get_user"));
    assert_eq!(assert_verifies(&log), 7);
}

#[test]
fn a_record_that_lost_its_line_feed_is_quarantined_not_merged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 3);
    // A whole, valid-looking record without its LF is still an incomplete write.
    let mut all = lines(&log);
    let last = all.pop().expect("a line");
    common::write_lines(&log, &all);
    append_raw(&log, &last);

    let out = cli(&log)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    assert!(out.status.success());
    let after = lines(&log);
    assert_eq!(after.len(), 4);
    assert_eq!(record(&after[2])["seq"], json!(2));
    assert_recovered(&log, &after[2], &last);
    assert_eq!(assert_verifies(&log), 4);
}

#[test]
fn a_file_without_any_line_feed_is_quarantined_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let torn = b"{\"seq\":0,\"prev_hash\":\"000000\xff\x00 no line feed at all";
    std::fs::write(&log, torn).expect("write torn file");

    let out = cli(&log)
        .args(["append", "--tool", "helix_create_ticket"])
        .output()
        .expect("run append");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = lines(&log);
    assert_eq!(after.len(), 2);
    let recovered = record(&after[0]);
    assert_eq!(
        recovered["seq"],
        json!(0),
        "the recovery record starts the chain"
    );
    assert_eq!(recovered["prev_hash"], json!(nexus_audit::GENESIS_HASH_HEX));
    assert_recovered(&log, &after[0], torn);
    assert_eq!(assert_verifies(&log), 2);
}

#[test]
fn a_torn_tail_under_an_open_logger_is_quarantined_once_by_concurrent_appenders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let logger = LogOptions::new(&log)
        .durability(Durability::Sync)
        .open()
        .expect("open log");
    logger
        .append_batch((0..4).map(sample_event).collect())
        .expect("append");
    // Another process crashed mid-write after this logger last wrote.
    let torn = br#"{"seq":4,"prev_hash":"ab"#;
    append_raw(&log, torn);
    std::thread::scope(|s| {
        for t in 0..4 {
            let logger = &logger;
            s.spawn(move || {
                for i in 0..5 {
                    logger
                        .append(sample_event(100 * t + i))
                        .expect("append after a tear");
                }
            });
        }
    });
    drop(logger);
    let after = lines(&log);
    assert_eq!(after.len(), 4 + 1 + 20);
    let recovered: Vec<usize> = after
        .iter()
        .enumerate()
        .filter(|(_, l)| record(l)["action"] == json!("log_recovered"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        recovered,
        vec![4],
        "exactly one recovery, right after the tear"
    );
    assert_recovered(&log, &after[4], torn);
    assert_eq!(assert_verifies(&log), 25);
}

/// A tmpfs of 64 KiB mounted on a temporary directory, unmounted on drop.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    /// Mounts the disk. The full-disk tests need it: where mounting is not permitted they
    /// fail, saying what they need, rather than pass without having run.
    fn mount() -> TinyDisk {
        Self::mount_with("size=64k,mode=0700")
    }

    /// Mounts it with these mount options.
    fn mount_with(options: &str) -> TinyDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(out) if out.status.success() => return TinyDisk { dir },
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            Err(e) => format!("cannot run mount (install util-linux): {e}"),
        };
        panic!(
            "the full-disk tests mount a 64 KiB tmpfs, which needs root (CI runs as root): {why}"
        );
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with 4 KiB files until it is full; returns them.
    fn fill(&self, prefix: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for i in 0.. {
            let path = self.path().join(format!("{prefix}-{i}"));
            let ok = std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(&[0u8; 4096]))
                .is_ok();
            if !ok {
                let _ = std::fs::remove_file(&path);
                return files;
            }
            files.push(path);
        }
        unreachable!()
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The names of the quarantine files in `dir`.
fn quarantine_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".torn-"))
        .collect()
}

fn assert_one_error_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).into_owned();
    assert!(text.ends_with('\n'), "stderr ends with LF: {text:?}");
    assert_eq!(
        text.matches('\n').count(),
        1,
        "one line on stderr: {text:?}"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("RUST_BACKTRACE"), "{text}");
    text
}

#[test]
fn a_write_to_a_full_disk_fails_cleanly_and_leaves_only_whole_lines() {
    let disk = TinyDisk::mount();
    let log = disk.path().join("audit.jsonl");
    let reserve = disk.path().join("reserve");
    std::fs::write(&reserve, [0u8; 12 * 1024]).expect("reserve space");
    let args = json!({ "blob": "b".repeat(8 * 1024) }).to_string();

    // Through the binary: append until the disk is full.
    let mut written = 0;
    let stderr = loop {
        let out = cli(&log)
            .args(["append", "--tool", "fedex_track_shipment", "--args", &args])
            .output()
            .expect("run append");
        if !out.status.success() {
            assert_eq!(out.status.code(), Some(2), "exit code on a full disk");
            break assert_one_error_line(&out.stderr);
        }
        written += 1;
        assert!(written < 100, "the tiny disk never filled");
    };
    assert!(stderr.contains("No space left"), "{stderr}");
    assert!(stderr.contains("audit.jsonl"), "names the file: {stderr}");
    assert_eq!(torn_tail_of(&log), b"", "no half line after a failed write");
    assert_eq!(assert_verifies(&log), written);
    assert_eq!(mode_of(&log), 0o600, "log file mode");

    // Through the library.
    let logger = LogOptions::new(&log).open().expect("open log");
    let big = |i| sample_event(i).details(json!({ "blob": "b".repeat(8 * 1024) }));
    let err = logger
        .append_batch((0..5).map(big).collect())
        .expect_err("a batch cannot fit");
    assert_eq!(
        err.io_kind(),
        Some(std::io::ErrorKind::StorageFull),
        "{err}"
    );
    assert_eq!(torn_tail_of(&log), b"");
    assert_eq!(assert_verifies(&log), written);

    // Room again: the chain goes on.
    std::fs::remove_file(&reserve).expect("free space");
    logger.append(big(1000)).expect("append once there is room");
    drop(logger);
    written += 1;
    assert_eq!(assert_verifies(&log), written);
}

#[test]
fn a_torn_tail_on_a_full_disk_stays_in_place_until_it_can_be_quarantined() {
    let disk = TinyDisk::mount();
    let log = disk.path().join("audit.jsonl");
    write_log(disk.path(), "audit.jsonl", 3);
    let torn = br#"{"seq":3,"prev_hash":"cut short"#;
    append_raw(&log, torn);
    let before = std::fs::read(&log).expect("read log");

    // No room for the quarantine file: the append fails and the log is left alone.
    let filler = disk.fill("filler");
    let out = cli(&log)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    assert_eq!(out.status.code(), Some(2));
    assert_one_error_line(&out.stderr);
    assert_eq!(
        std::fs::read(&log).expect("read log"),
        before,
        "the log is untouched"
    );
    assert_eq!(
        quarantine_files(disk.path()),
        Vec::<String>::new(),
        "no empty quarantine file is left behind"
    );

    // Room for the quarantine file but not for the records: the torn bytes stay recorded.
    std::fs::remove_file(&filler[0]).expect("free one page");
    let args = json!({ "blob": "b".repeat(16 * 1024) }).to_string();
    let out = cli(&log)
        .args(["append", "--tool", "ad_get_user", "--args", &args])
        .output()
        .expect("run append");
    assert_eq!(out.status.code(), Some(2), "the records cannot fit");
    assert_one_error_line(&out.stderr);
    assert_eq!(
        std::fs::read(&log).expect("read log"),
        before,
        "the torn bytes are put back, so the recovery is still recorded later"
    );

    for f in &filler[1..] {
        std::fs::remove_file(f).expect("free space");
    }
    let out = cli(&log)
        .args(["append", "--tool", "ad_get_user"])
        .output()
        .expect("run append");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = lines(&log);
    assert_eq!(after.len(), 5, "three records, log_recovered, the new one");
    assert_recovered(&log, &after[3], torn);
    assert_eq!(assert_verifies(&log), 5);
}

/// Set in a child copy of this test binary: run the torn-tail reader stress on this log.
const STRESS_LOG: &str = "NEXUS_AUDIT_TEST_STRESS";

/// The body of the stress child: readers snapshot the log in a loop while a writer keeps
/// tearing it (1 MiB without LF) and appending (which cuts the torn bytes off).
fn snapshot_while_torn_tails_are_cut(log: &Path) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let snapshot = nexus_audit::Snapshot::open(log).expect("snapshot");
                    std::hint::black_box(snapshot.data().len());
                }
            });
        }
        let logger = LogOptions::new(log)
            .durability(Durability::None)
            .open()
            .expect("open log");
        let junk = vec![b'j'; 1 << 20];
        for i in 0..60 {
            append_raw(log, &junk);
            logger.append(sample_event(i)).expect("append");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn readers_survive_torn_tails_being_cut_while_they_open_the_log() {
    const NAME: &str = "readers_survive_torn_tails_being_cut_while_they_open_the_log";
    if let Some(log) = std::env::var_os(STRESS_LOG) {
        snapshot_while_torn_tails_are_cut(Path::new(&log));
        return;
    }
    // NOTE: on a tmpfs (where fsync costs nothing) the writer cuts a torn tail within a
    // millisecond of a reader reading the length, which is what this test needs.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tempdir")
    } else {
        tempfile::tempdir().expect("tempdir")
    };
    let log = write_log(dir.path(), "audit.jsonl", 3);
    // In a child process: a reader that touches cut pages dies of SIGBUS.
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
        .env(STRESS_LOG, &log)
        .stdout(Stdio::null())
        .status()
        .expect("run the stress child");
    assert!(status.success(), "the reader process failed: {status:?}");
    assert_eq!(assert_verifies(&log), 3 + 2 * 60);
}

#[test]
fn a_full_disk_during_append_stdin_says_how_many_records_were_written() {
    let disk = TinyDisk::mount();
    let log = disk.path().join("audit.jsonl");
    let input: String = (0..200).map(input_line).collect();
    for batch in ["1", "7"] {
        let _ = std::fs::remove_file(&log);
        let out = cli(&log)
            .args(["append", "--stdin", "--batch", batch])
            .write_stdin(input.clone())
            .output()
            .expect("run append --stdin");
        assert_eq!(out.status.code(), Some(2), "the disk fills up");
        let stderr = assert_one_error_line(&out.stderr);
        assert!(stderr.contains("No space left"), "{stderr}");
        let written = lines(&log).len();
        assert!(written > 0, "some records fit");
        assert!(
            stderr.contains(&format!("wrote {written} records before a write failed")),
            "batch {batch}: the count matches the file ({written}): {stderr}"
        );
        assert_eq!(torn_tail_of(&log), b"", "no half line");
        assert_eq!(assert_verifies(&log), written as u64);
    }
}

#[test]
fn a_log_that_cannot_be_created_fails_at_open_not_at_the_first_write() {
    let disk = TinyDisk::mount_with("ro,size=64k,mode=0700");
    let log = disk.path().join("audit.jsonl");
    // The library: opening says so at once (a fail-closed caller learns it before it starts).
    let err = LogOptions::new(&log)
        .open()
        .expect_err("a read-only directory");
    assert!(err.to_string().contains("cannot create"), "{err}");
    // The binary: one sentence, and nothing is read or written.
    for args in [
        &["append", "--tool", "ad_get_user"][..],
        &["append", "--stdin"],
    ] {
        let out = cli(&log)
            .args(args)
            .write_stdin(input_line(0))
            .output()
            .expect("run append");
        assert_eq!(out.status.code(), Some(2));
        let stderr = assert_one_error_line(&out.stderr);
        assert!(stderr.contains("Read-only file system"), "{stderr}");
        assert!(stderr.contains("audit.jsonl"), "{stderr}");
    }
    assert!(!log.exists());
}
