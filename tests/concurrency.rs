//! Many threads and processes appending to one log at once (SPEC §4): they must extend one
//! linear chain, and readers running meanwhile must only ever see whole lines.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{cli, lines, sample_event, verify_json};
use nexus_audit::{Durability, Event, LogOptions, Receipt, Snapshot, VerifyOptions};
use nexus_audit::{GENESIS_HASH_HEX, hash_line};
use serde_json::{Value, json};

/// Set in a child copy of this test binary: the log it appends to.
const CHILD_LOG: &str = "NEXUS_AUDIT_TEST_CHILD";
/// Set in a child copy of this test binary: its process number.
const CHILD_PROC: &str = "NEXUS_AUDIT_TEST_PROC";

const PROCESSES: usize = 4;
const THREADS: usize = 4;
/// Per thread: single appends, then batches of three.
const SINGLES: usize = 25;
const BATCHES: usize = 5;
const PER_THREAD: usize = SINGLES + 3 * BATCHES;

/// Checks that `path` holds exactly `expected` records forming one linear chain in file order
/// (seq 0..N-1, each `prev_hash` the SHA-256 of the line before), with unique `event_id`s, and
/// that the library's and the binary's `verify` agree. Returns the parsed records.
fn assert_one_chain(path: &Path, expected: usize) -> Vec<Value> {
    let bytes = std::fs::read(path).expect("read log");
    assert_eq!(bytes.last(), Some(&b'\n'), "the log ends with a whole line");
    let raw = lines(path);
    assert_eq!(raw.len(), expected, "record count");
    let mut prev = GENESIS_HASH_HEX.to_owned();
    let mut ids = HashSet::new();
    let mut records = Vec::with_capacity(raw.len());
    for (i, line) in raw.iter().enumerate() {
        let record: Value = serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("line {} is not JSON ({e})", i + 1));
        assert_eq!(record["seq"], json!(i), "seq of line {}", i + 1);
        assert_eq!(
            record["prev_hash"],
            json!(prev),
            "prev_hash of line {}",
            i + 1
        );
        let id = record["event_id"].as_str().expect("event_id").to_owned();
        assert!(ids.insert(id), "event_id of line {} is not unique", i + 1);
        prev = hex::encode(hash_line(line));
        records.push(record);
    }
    let report = nexus_audit::verify(path, &VerifyOptions::default()).expect("verify");
    assert!(report.ok, "library verify: {:?}", report.problems);
    assert_eq!(report.records, expected as u64);
    let (code, report) = verify_json(path);
    assert_eq!(code, 0, "nexus-audit verify: {report}");
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["records"], json!(expected));
    records
}

/// Checks that every `(writer, i)` pair, carried as `user_id` and `correlation_id`, occurs
/// exactly once, and that each writer's records appear in the order it appended them.
fn assert_each_writer_in_order(records: &[Value], writers: &[String], per_writer: usize) {
    let mut seen: HashMap<&str, Vec<u64>> = HashMap::new();
    for r in records {
        let writer = r["user_id"].as_str().expect("user_id");
        let i = r["correlation_id"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .expect("correlation_id is a number");
        seen.entry(writer).or_default().push(i);
    }
    assert_eq!(seen.len(), writers.len(), "writers seen: {:?}", seen.keys());
    for w in writers {
        let got = &seen[w.as_str()];
        let want: Vec<u64> = (0..per_writer as u64).collect();
        assert_eq!(got, &want, "records of {w}, in file order");
    }
}

fn tagged(writer: &str, i: usize) -> Event {
    sample_event(i as u64)
        .user(writer)
        .correlation(i.to_string())
}

/// The body of a child process: `THREADS` threads, each appending `PER_THREAD` records with
/// the library (singles, then batches), once the parent says go.
fn child_appends(log: PathBuf) {
    let proc_no = std::env::var(CHILD_PROC).expect("process number");
    let go = log.with_file_name("go");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go.exists() {
        assert!(Instant::now() < deadline, "the parent never said go");
        std::thread::sleep(Duration::from_millis(1));
    }
    let logger = Arc::new(
        LogOptions::new(&log)
            .durability(Durability::Sync)
            .open()
            .expect("open log"),
    );
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let logger = Arc::clone(&logger);
            let writer = format!("p{proc_no}-t{t}");
            s.spawn(move || {
                let mut last_seq = None;
                let mut check = |receipt: Receipt, n: usize| {
                    let Receipt::Written { records } = receipt else {
                        panic!("sync appends are written");
                    };
                    assert_eq!(records.len(), n);
                    for h in records {
                        assert!(last_seq < Some(h.seq), "receipts grow within a thread");
                        last_seq = Some(h.seq);
                    }
                };
                for i in 0..SINGLES {
                    check(logger.append(tagged(&writer, i)).expect("append"), 1);
                }
                for b in 0..BATCHES {
                    let start = SINGLES + 3 * b;
                    let batch = (start..start + 3).map(|i| tagged(&writer, i)).collect();
                    check(logger.append_batch(batch).expect("append batch"), 3);
                }
            });
        }
    });
}

#[test]
fn four_processes_of_four_threads_through_the_library_extend_one_chain() {
    const NAME: &str = "four_processes_of_four_threads_through_the_library_extend_one_chain";
    if let Some(log) = std::env::var_os(CHILD_LOG) {
        child_appends(PathBuf::from(log));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            Command::new(&exe)
                .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
                .env(CHILD_LOG, &log)
                .env(CHILD_PROC, p.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn child test")
        })
        .collect();
    std::fs::write(dir.path().join("go"), b"").expect("say go");
    for child in children {
        let out = child.wait_with_output().expect("wait for child");
        assert!(out.status.success(), "a child failed: {:?}", out.status);
    }
    let records = assert_one_chain(&log, PROCESSES * THREADS * PER_THREAD);
    let writers: Vec<String> = (0..PROCESSES)
        .flat_map(|p| (0..THREADS).map(move |t| format!("p{p}-t{t}")))
        .collect();
    assert_each_writer_in_order(&records, &writers, PER_THREAD);
}

#[test]
fn sixteen_append_stdin_processes_extend_one_chain() {
    const PER_PROCESS: usize = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let writers: Vec<String> = (0..PROCESSES * THREADS).map(|w| format!("w{w}")).collect();
    std::thread::scope(|s| {
        for w in &writers {
            let log = &log;
            s.spawn(move || {
                let input: String = (0..PER_PROCESS)
                    .map(|i| {
                        format!(
                            "{}\n",
                            json!({"tool": "helix_create_ticket", "user_id": w, "correlation_id": i.to_string(), "status": "success"})
                        )
                    })
                    .collect();
                let out = cli(log)
                    .args(["append", "--stdin", "--batch", "4"])
                    .write_stdin(input)
                    .output()
                    .expect("run append --stdin");
                assert!(
                    out.status.success(),
                    "append --stdin failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let summary: Value = serde_json::from_slice(&out.stdout).expect("summary JSON");
                assert_eq!(summary["appended"], json!(PER_PROCESS));
            });
        }
    });
    let records = assert_one_chain(&log, writers.len() * PER_PROCESS);
    assert_each_writer_in_order(&records, &writers, PER_PROCESS);
}

#[test]
fn sixteen_writers_running_the_append_command_repeatedly_extend_one_chain() {
    const RUNS: usize = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let writers: Vec<String> = (0..PROCESSES)
        .flat_map(|p| (0..THREADS).map(move |t| format!("p{p}-t{t}")))
        .collect();
    std::thread::scope(|s| {
        for w in &writers {
            let log = &log;
            s.spawn(move || {
                let mut last_seq = None;
                for i in 0..RUNS {
                    let out = cli(log)
                        .args(["append", "--tool", "ad_get_user", "--status", "success"])
                        .args(["--user", w, "--correlation", &i.to_string()])
                        .output()
                        .expect("run append");
                    assert!(
                        out.status.success(),
                        "append failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let head: Value = serde_json::from_slice(&out.stdout).expect("head JSON");
                    let seq = head["seq"].as_u64().expect("seq");
                    assert!(last_seq < Some(seq), "a writer's own records grow");
                    last_seq = Some(seq);
                }
            });
        }
    });
    let records = assert_one_chain(&log, writers.len() * RUNS);
    assert_each_writer_in_order(&records, &writers, RUNS);
}

#[test]
fn eight_threads_with_sync_durability_extend_one_chain_and_get_true_receipts() {
    const THREADS8: usize = 8;
    const EACH: usize = 60;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let logger = LogOptions::new(&log)
        .durability(Durability::Sync)
        .open()
        .expect("open log");
    let receipts: Vec<Vec<(u64, [u8; 32])>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS8)
            .map(|t| {
                let logger = &logger;
                s.spawn(move || {
                    let writer = format!("t{t}");
                    (0..EACH)
                        .map(|i| {
                            let head = logger
                                .append(tagged(&writer, i))
                                .expect("append")
                                .last()
                                .expect("sync appends are written");
                            (head.seq, head.hash)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    drop(logger);
    let records = assert_one_chain(&log, THREADS8 * EACH);
    let writers: Vec<String> = (0..THREADS8).map(|t| format!("t{t}")).collect();
    assert_each_writer_in_order(&records, &writers, EACH);
    // Every receipt names the line that holds the thread's record.
    let raw = lines(&log);
    let mut all_seqs = Vec::new();
    for (t, thread_receipts) in receipts.iter().enumerate() {
        for (i, (seq, hash)) in thread_receipts.iter().enumerate() {
            let line = &raw[usize::try_from(*seq).expect("seq fits")];
            assert_eq!(&hash_line(line), hash, "receipt hash of seq {seq}");
            assert_eq!(records[*seq as usize]["user_id"], json!(format!("t{t}")));
            assert_eq!(
                records[*seq as usize]["correlation_id"],
                json!(i.to_string())
            );
            all_seqs.push(*seq);
        }
    }
    all_seqs.sort_unstable();
    assert_eq!(all_seqs, (0..(THREADS8 * EACH) as u64).collect::<Vec<_>>());
}

/// Complete lines in the log; 0 before the first write has created it.
fn record_count(path: &Path) -> usize {
    if path.exists() { lines(path).len() } else { 0 }
}

#[test]
fn buffered_records_appear_after_flush_close_and_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let patient = Durability::Buffered {
        max_records: 1000,
        max_delay: Duration::from_secs(3600),
    };

    let logger = LogOptions::new(&log)
        .durability(patient)
        .open()
        .expect("open log");
    for i in 0..10 {
        assert_eq!(
            logger.append(sample_event(i)).expect("append"),
            Receipt::Queued
        );
    }
    assert_eq!(record_count(&log), 0, "nothing is written before a flush");
    logger.flush().expect("flush");
    assert_eq!(record_count(&log), 10, "flush writes the queue");
    logger
        .append_batch((10..15).map(sample_event).collect())
        .expect("append");
    assert_eq!(record_count(&log), 10);
    logger.close().expect("close");
    assert_eq!(record_count(&log), 15, "close writes the queue");

    let logger = LogOptions::new(&log)
        .durability(patient)
        .open()
        .expect("reopen log");
    for i in 15..18 {
        logger.append(sample_event(i)).expect("append");
    }
    drop(logger);
    assert_one_chain(&log, 18);
}

#[test]
fn buffered_records_are_written_once_the_window_fills_or_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");

    let by_count = LogOptions::new(&log)
        .durability(Durability::Buffered {
            max_records: 10,
            max_delay: Duration::from_secs(3600),
        })
        .open()
        .expect("open log");
    for i in 0..9 {
        by_count.append(sample_event(i)).expect("append");
    }
    assert_eq!(record_count(&log), 0);
    by_count.append(sample_event(9)).expect("append");
    assert_eq!(record_count(&log), 10, "the tenth record fills the window");
    by_count.close().expect("close");

    let by_time = LogOptions::new(&log)
        .durability(Durability::Buffered {
            max_records: 1000,
            max_delay: Duration::from_millis(50),
        })
        .open()
        .expect("open log");
    by_time.append(sample_event(10)).expect("append");
    let deadline = Instant::now() + Duration::from_secs(10);
    while record_count(&log) < 11 {
        assert!(Instant::now() < deadline, "the window never expired");
        std::thread::sleep(Duration::from_millis(10));
    }
    by_time.close().expect("close");
    assert_one_chain(&log, 11);
}

#[test]
fn eight_threads_with_buffered_durability_extend_one_chain() {
    const EACH: usize = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let logger = LogOptions::new(&log)
        .durability(Durability::Buffered {
            max_records: 37,
            max_delay: Duration::from_millis(5),
        })
        .open()
        .expect("open log");
    std::thread::scope(|s| {
        for t in 0..8 {
            let logger = &logger;
            s.spawn(move || {
                for i in 0..EACH {
                    logger.append(tagged(&format!("t{t}"), i)).expect("append");
                }
            });
        }
    });
    logger.close().expect("close");
    let records = assert_one_chain(&log, 8 * EACH);
    let writers: Vec<String> = (0..8).map(|t| format!("t{t}")).collect();
    assert_each_writer_in_order(&records, &writers, EACH);
}

/// A small xorshift generator: enough to vary batch sizes without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn readers_running_while_writers_append_never_see_a_partial_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let done = AtomicBool::new(false);
    let big = "x".repeat(64 * 1024);
    let (verifies, cli_verifies, snapshots, written) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let logger = LogOptions::new(&log)
                .durability(Durability::None)
                .open()
                .expect("open log");
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut written = 0u64;
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(1500) && written < 3000 {
                let n = 1 + rng.below(40);
                let batch = (0..n)
                    .map(|k| {
                        let e = sample_event(written + k);
                        // A few large records make each write span many pages.
                        if rng.below(20) == 0 {
                            e.details(json!({ "blob": big }))
                        } else {
                            e
                        }
                    })
                    .collect();
                logger.append_batch(batch).expect("append");
                written += n;
            }
            done.store(true, Ordering::SeqCst);
            written
        });
        let mut verifies = 0u32;
        let mut cli_verifies = 0u32;
        let mut snapshots = 0u32;
        let opts = VerifyOptions::new().max_problems(10).threads(1);
        while !done.load(Ordering::SeqCst) || verifies < 5 {
            if !log.exists() {
                std::thread::yield_now();
                continue;
            }
            // Snapshots are cheap: take many between two full verifies.
            for _ in 0..50 {
                let snapshot = Snapshot::open(&log).expect("snapshot");
                assert!(
                    snapshot.torn_tail().is_empty(),
                    "a snapshot saw {} bytes of a partial line",
                    snapshot.torn_tail().len()
                );
                snapshots += 1;
            }
            let report = nexus_audit::verify(&log, &opts).expect("verify");
            assert!(report.ok, "verify while appending: {:?}", report.problems);
            verifies += 1;
            if verifies.is_multiple_of(4) {
                let (code, report) = verify_json(&log);
                assert_eq!(code, 0, "nexus-audit verify while appending: {report}");
                cli_verifies += 1;
            }
        }
        let written = writer.join().expect("writer");
        (verifies, cli_verifies, snapshots, written)
    });
    eprintln!(
        "{snapshots} snapshots, {verifies} library and {cli_verifies} binary verifies \
         while {written} records were appended"
    );
    assert!(verifies >= 5);
    assert_one_chain(&log, usize::try_from(written).expect("count fits"));
}

extern "C" fn do_nothing(_: libc::c_int) {}

#[test]
fn an_append_waiting_for_the_lock_survives_signals_that_interrupt_it() {
    use std::os::unix::thread::JoinHandleExt as _;

    let dir = tempfile::tempdir().expect("tempdir");
    let log = common::write_log(dir.path(), "audit.jsonl", 3);
    // A handler installed without SA_RESTART, as a host process might: a signal then makes a
    // blocked flock(2) return EINTR.
    // SAFETY: the handler does nothing (trivially async-signal-safe) and `action` is fully
    // initialised; SIGUSR2 is used by nothing else in this test binary.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = do_nothing as *const () as usize;
        libc::sigemptyset(&raw mut action.sa_mask);
        action.sa_flags = 0;
        assert_eq!(
            libc::sigaction(libc::SIGUSR2, &raw const action, std::ptr::null_mut()),
            0
        );
    }
    // Another holder of the lock (a separate open file, as another process would have).
    let holder = std::fs::File::open(&log).expect("open log");
    holder.lock().expect("hold the lock");
    let logger = LogOptions::new(&log).open().expect("open log");
    let writer = std::thread::spawn(move || logger.append(sample_event(3)).map(|r| r.last()));
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(40));
        // SAFETY: the thread is not joined yet, so its pthread_t is valid.
        let rc = unsafe { libc::pthread_kill(writer.as_pthread_t(), libc::SIGUSR2) };
        assert_eq!(rc, 0, "signal the waiting writer");
    }
    holder.unlock().expect("release the lock");
    let head = writer
        .join()
        .expect("writer thread")
        .expect("an interrupted wait for the lock is retried");
    assert_eq!(head.map(|h| h.seq), Some(3));
    assert_one_chain(&log, 4);
}
