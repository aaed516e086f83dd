//! Criterion benchmarks of the hot paths: appends (one record, a batch, `sync` with threads),
//! chain hashing, redaction and encoding per record, and parsing records back.
//!
//! `cargo bench --bench core` (all), `cargo bench --bench core -- append` (one group; `json`:
//! the validator on long, escaped, nested and numeric lines).
//! Whole-command comparisons against openssl, GNU tail and jq: `benches/compare.sh`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nexus_audit::{Durability, Event, LogOptions, RecordView, Redactor};
use serde_json::json;

/// A realistic tool call, about 640 bytes once written.
fn event(i: u64) -> Event {
    Event::new("mcp_call")
        .tool("workday_get_worker")
        .server("workday-mcp")
        .user("alice.chen@corp.example")
        .session(format!("sess-{:06}", i / 25))
        .correlation(format!("req-{i:010}"))
        .latency_ms(5 + (i * 37) % 900)
        .args(json!({
            "employee_id": format!("E{:06}", i % 1_000_000),
            "fields": ["name", "title", "manager", "cost_center"],
            "include_history": false,
            "api_key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        }))
        .sizes(12_000 + i % 5000, 3_000 + i % 900)
        .status_success()
}

fn temp_log(durability: Durability) -> (tempfile::TempDir, nexus_audit::Logger) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = LogOptions::new(dir.path().join("audit.jsonl"))
        .durability(durability)
        .open()
        .expect("open log");
    (dir, log)
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");

    g.throughput(Throughput::Elements(1));
    g.bench_function("one record per call, durability none", |b| {
        let (_dir, log) = temp_log(Durability::None);
        let mut i = 0;
        b.iter_batched(
            || {
                i += 1;
                event(i)
            },
            |e| log.append(e).expect("append"),
            BatchSize::SmallInput,
        );
    });

    // The writer alone: the record is encoded outside the measured call.
    g.bench_function("one encoded record per call, durability none", |b| {
        let (_dir, log) = temp_log(Durability::None);
        let mut i = 0;
        b.iter_batched(
            || {
                i += 1;
                log.encode(event(i)).expect("encode")
            },
            |e| log.append_encoded(vec![e]).expect("append"),
            BatchSize::SmallInput,
        );
    });

    // With rotation options (never due here): the size and age checks on every write.
    g.bench_function(
        "one record per call, durability none, max_size and max_age",
        |b| {
            let dir = tempfile::tempdir().expect("temporary directory");
            let log = LogOptions::new(dir.path().join("audit.jsonl"))
                .durability(Durability::None)
                .max_size(1 << 40)
                .max_age(Duration::from_secs(86_400))
                .open()
                .expect("open log");
            let mut i = 0;
            b.iter_batched(
                || {
                    i += 1;
                    event(i)
                },
                |e| log.append(e).expect("append"),
                BatchSize::SmallInput,
            );
        },
    );

    g.throughput(Throughput::Elements(1000));
    g.bench_function("batch of 1000, durability none", |b| {
        let (_dir, log) = temp_log(Durability::None);
        b.iter_batched(
            || (0..1000).map(event).collect::<Vec<_>>(),
            |events| log.append_batch(events).expect("append"),
            BatchSize::LargeInput,
        );
    });

    // Durability sync: every call returns after fdatasync. With group commit, threads that
    // append at the same moment share one sync, so 8 threads write far more than 1.
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for threads in [1u64, 2, 4, 8] {
        const PER_THREAD: u64 = 50;
        g.throughput(Throughput::Elements(threads * PER_THREAD));
        g.bench_function(
            format!("sync, {threads} threads x {PER_THREAD} calls"),
            |b| {
                let (_dir, log) = temp_log(Durability::Sync);
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        std::thread::scope(|s| {
                            for t in 0..threads {
                                let log = &log;
                                s.spawn(move || {
                                    for i in 0..PER_THREAD {
                                        log.append(event(t * 1000 + i)).expect("append");
                                    }
                                });
                            }
                        });
                        total += start.elapsed();
                    }
                    total
                });
            },
        );
    }
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let line = stored_line();
    let mut g = c.benchmark_group("chain");
    g.throughput(Throughput::Bytes(line.len() as u64));
    g.bench_function("hash one record line", |b| {
        b.iter(|| nexus_audit::hash_line(black_box(&line)));
    });
    g.bench_function("read seq and prev_hash from the prefix", |b| {
        b.iter(|| nexus_audit::chain_prefix(black_box(&line)));
    });
    g.finish();
}

/// One record as stored, from a real append.
fn stored_line() -> Vec<u8> {
    let (dir, log) = temp_log(Durability::None);
    log.append(event(42)).expect("append");
    log.close().expect("close");
    let mut bytes = std::fs::read(dir.path().join("audit.jsonl")).expect("read");
    bytes.pop(); // LF
    bytes
}

fn redaction(c: &mut Criterion) {
    let redactor = Redactor::default();
    let args = json!({
        "employee_id": "E123456",
        "fields": ["name", "title", "manager"],
        "note": "reset requested by alice.chen@corp.example, ticket INC0012345",
        "password": "hunter2",
        "auth": {"header": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"},
    });
    let (_dir, log) = temp_log(Durability::None);
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("redact args_summary (5 fields, 2 secrets)", |b| {
        b.iter_batched(
            || args.clone(),
            |mut v| {
                redactor.redact_value(&mut v);
                v
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("redact a clean 60-byte string", |b| {
        b.iter(|| {
            redactor
                .redact_str(black_box("upstream workday-mcp timed out after 30s"))
                .len()
        });
    });
    g.bench_function("encode a whole record (redact + serialise)", |b| {
        b.iter_batched(
            || event(7),
            |e| log.encode(e).expect("encode"),
            BatchSize::SmallInput,
        );
    });
    let input = serde_json::to_string(&json!({
        "tool": "workday_get_worker", "user_id": "alice", "server_id": "workday-mcp",
        "status": "success", "latency_ms": 42,
        "args_summary": {"employee_id": "E123456", "fields": ["name", "title"]},
    }))
    .expect("json");
    g.bench_function("parse an input event (append --stdin)", |b| {
        b.iter(|| Event::from_json_str(black_box(&input)).expect("event"));
    });
    let line = stored_line();
    g.throughput(Throughput::Bytes(line.len() as u64));
    g.bench_function("validate a stored line as JSON (verify)", |b| {
        b.iter(|| nexus_audit::is_valid_json(black_box(&line)));
    });
    g.bench_function("read a stored line's fields (stats, query)", |b| {
        b.iter(|| {
            RecordView::parse(black_box(&line))
                .expect("record")
                .tool
                .is_some()
        });
    });
    g.finish();
}

/// `append --stdin`'s pipeline (`Logger::append_lines`) on 20,000 input lines like the
/// benchmark's events: plain ones, which take the fast path from line to record, and the same
/// with a float in the arguments, which take the per-`Event` path.
fn stdin_lines(c: &mut Criterion) {
    const LINES: u64 = 20_000;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut g = c.benchmark_group("stdin");
    g.throughput(Throughput::Elements(LINES));
    g.sample_size(10);
    for (name, limit) in [
        ("append_lines, plain lines (fast path)", "86"),
        ("append_lines, a float in each (per-Event path)", "86.5"),
    ] {
        let input = dir.path().join(format!("{limit}.jsonl"));
        let text: String = (0..LINES)
            .map(|i| {
                format!(
                    concat!(
                        r#"{{"timestamp":"2026-09-21T14:13:20.787630Z","level":"info","#,
                        r#""action":"mcp_call","user_id":"alice@example.com","#,
                        r#""session_id":"sess-{:06}","correlation_id":"req-{:010}","#,
                        r#""server_id":"logistics-mcp","tool":"fedex_track_shipment","#,
                        r#""args_summary":{{"id":"W{:07}","fields":["name","email","department"],"#,
                        r#""limit":{}}},"status":"success","latency_ms":94,"#,
                        r#""response_size":13171,"filtered_size":4390}}"#,
                        "\n"
                    ),
                    i / 25,
                    i,
                    i,
                    limit
                )
            })
            .collect();
        std::fs::write(&input, text).expect("write input");
        g.bench_function(name, |b| {
            b.iter_batched(
                || temp_log(Durability::None),
                |(dir, log)| {
                    let file = std::fs::File::open(&input).expect("input");
                    log.append_lines(&file, &nexus_audit::LinesOptions::new())
                        .expect("append_lines");
                    (dir, log)
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

/// The JSON validator on lines unlike the stored record of `record`: long strings, escapes (the
/// recursive-descent path), deep nesting, many numbers.
fn json_validator(c: &mut Criterion) {
    let long = format!(
        "{{\"seq\":1,\"note\":\"{}\",\"tags\":[\"a\",\"b\"]}}",
        "plain text ".repeat(370)
    );
    let escaped = long.replace("plain text ", "tab\\t\\u00e9 ");
    let nested = format!("{}1{}", "[{\"k\":".repeat(100), "}]".repeat(100));
    let numbers = format!(
        "[{}]",
        (0..500)
            .map(|i| format!("{}.{}e-{}", i * 37, i, i % 9))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut g = c.benchmark_group("json");
    for (name, line) in [
        ("validate a 4 KiB line of long strings", long),
        ("validate a 4 KiB line with escapes", escaped),
        ("validate 200 levels of nesting", nested),
        ("validate an array of 500 numbers", numbers),
    ] {
        assert!(nexus_audit::is_valid_json(line.as_bytes()), "{name}");
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| nexus_audit::is_valid_json(black_box(line.as_bytes())));
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    append,
    hashing,
    redaction,
    stdin_lines,
    json_validator
);
criterion_main!(benches);
