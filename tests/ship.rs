//! `ship` through the binary to a webhook receiver run by the test (axum on 127.0.0.1) that
//! checks each Standard Webhooks signature and answers as planned: 5xx bursts, 429 with
//! `Retry-After`, a refusal, or nothing at all for a while. In every case nothing is lost, the
//! cursor never passes an unacknowledged record, and the backoff is seen in the retries' times.
//! Also: the cursor's checks (a log rewritten under it, a cursor of another log) and bad input.

mod common;
#[path = "common/segments.rs"]
mod segments;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use common::{cli, write_log};

const BIN: &str = env!("CARGO_BIN_EXE_nexus-audit");
const SECRET: &[u8] = b"test-secret-\x01\x02\x03-0123456789";

fn secret_env() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SECRET)
    )
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Request {
    at: Instant,
    id: String,
    seqs: Vec<u64>,
    status: u16,
}

#[derive(Default)]
struct Seen {
    requests: Vec<Request>,
    /// How many times each seq was stored (acknowledged).
    stored: BTreeMap<u64, u32>,
    /// The `chain_id` of every stored item.
    chains: std::collections::BTreeSet<String>,
    bad: Vec<String>,
}

struct Shared {
    /// Answers for the next requests, in order; 200 once empty.
    plan: Mutex<VecDeque<(u16, Option<&'static str>)>>,
    seen: Mutex<Seen>,
}

/// A webhook receiver on 127.0.0.1.
struct Receiver {
    shared: Arc<Shared>,
    port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    fn start(plan: Vec<(u16, Option<&'static str>)>) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut r = Receiver {
            shared: Arc::new(Shared {
                plan: Mutex::new(plan.into()),
                seen: Mutex::new(Seen::default()),
            }),
            port,
            runtime: None,
        };
        r.serve(listener);
        r
    }

    /// A receiver whose port is known but that answers nothing until [`Receiver::come_up`].
    fn down() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        Receiver {
            shared: Arc::new(Shared {
                plan: Mutex::new(VecDeque::new()),
                seen: Mutex::new(Seen::default()),
            }),
            port,
            runtime: None,
        }
    }

    fn come_up(&mut self) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("rebind");
        self.serve(listener);
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(Arc::clone(&self.shared));
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let _ = axum::serve(listener, app).await;
        });
        self.runtime = Some(runtime);
    }

    fn url(&self) -> String {
        format!("webhook+http://127.0.0.1:{}/hook", self.port)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.shared.seen.lock().expect("lock")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn hook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("hmac");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let mut seen = shared.seen.lock().expect("lock");
    let items: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
    let seqs: Vec<u64> = items.iter().filter_map(|i| i["seq"].as_u64()).collect();
    if signature != expected {
        seen.bad.push(format!("bad signature on {id}"));
        seen.requests.push(Request {
            at: Instant::now(),
            id,
            seqs,
            status: 401,
        });
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let planned = shared.plan.lock().expect("lock").pop_front();
    let (status, retry_after) = planned.unwrap_or((200, None));
    seen.requests.push(Request {
        at: Instant::now(),
        id,
        seqs: seqs.clone(),
        status,
    });
    if status == 200 {
        for item in &items {
            let line = item["line"].as_str().unwrap_or_default();
            let hash = hex::encode(Sha256::digest(line.as_bytes()));
            let seq = item["seq"].as_u64().unwrap_or(u64::MAX);
            if item["hash"] != hash.as_str()
                || item["record"]["seq"].as_u64() != Some(seq)
                || item["id"].as_str()
                    != Some(&format!(
                        "{}:{seq}",
                        item["chain_id"].as_str().unwrap_or("")
                    ))
            {
                seen.bad.push(format!("item {seq} does not match its line"));
            }
            *seen.stored.entry(seq).or_default() += 1;
            let chain = item["chain_id"].as_str().unwrap_or_default().to_owned();
            seen.chains.insert(chain);
        }
    }
    let mut response = (StatusCode::from_u16(status).expect("status"), "answer").into_response();
    if let Some(after) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().expect("header"));
    }
    response
}

/// `nexus-audit --file LOG ship --to URL ARGS…` with a clean environment and the secret set.
fn ship(log: &Path, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NEXUS_AUDIT_WEBHOOK_SECRET", secret_env())
        .arg("--file")
        .arg(log)
        .args(["ship", "--to", url])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("run ship");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cursor(log: &Path) -> Option<serde_json::Value> {
    let dir = log.parent()?;
    let entry = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".cursor"))?;
    serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
}

fn cursor_seq(log: &Path) -> Option<u64> {
    cursor(log).and_then(|c| c["seq"].as_u64())
}

const FAST: &[&str] = &["--backoff-base-ms", "100", "--backoff-cap-ms", "800"];

#[test]
fn every_record_arrives_through_5xx_bursts_and_a_429_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 300);
    let receiver = Receiver::start(vec![
        (503, None),
        (502, None),
        (500, None),
        (200, None),
        (429, Some("1")),
        (200, None),
        (503, None),
    ]);
    let mut args = vec!["--batch", "50"];
    args.extend_from_slice(FAST);
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &args));
    assert_eq!(code, 0, "{stderr}");
    let seen = receiver.seen();
    assert!(seen.bad.is_empty(), "{:?}", seen.bad);
    let stored: Vec<u64> = seen.stored.keys().copied().collect();
    assert_eq!(stored, (0..300).collect::<Vec<_>>(), "nothing lost");
    assert!(
        seen.stored.values().all(|n| *n == 1),
        "acknowledged once each"
    );
    let r = &seen.requests;
    assert_eq!(r.len(), 6 + 5, "6 batches and 5 failures");
    let statuses: Vec<u16> = r.iter().map(|q| q.status).collect();
    assert_eq!(
        statuses,
        [503, 502, 500, 200, 429, 200, 503, 200, 200, 200, 200]
    );
    // A batch sent again is the same batch, under the same webhook-id.
    assert_eq!(r[0].id, r[3].id);
    assert_eq!(r[0].seqs, r[3].seqs);
    assert_eq!(r[0].seqs, (0..50).collect::<Vec<_>>());
    // Backoff: the waits after the 5xx burst grow (base 100 ms, doubling, up to half jitter).
    let gaps: Vec<Duration> = (1..4).map(|i| r[i].at - r[i - 1].at).collect();
    assert!(gaps[0] >= Duration::from_millis(50), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(200), "{gaps:?}");
    // Retry-After: 1 was honoured.
    assert!(r[5].at - r[4].at >= Duration::from_millis(950), "{r:?}");
    assert_eq!(r[4].id, r[5].id);
    assert_eq!(stderr.matches("sending it again in").count(), 5, "{stderr}");
    assert!(stderr.contains("HTTP 429"), "{stderr}");
    assert_eq!(cursor_seq(&log), Some(299));
}

#[test]
fn a_receiver_down_for_a_while_gets_everything_once_it_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 120);
    let mut receiver = Receiver::down();
    let mut args = vec!["--batch", "40"];
    args.extend_from_slice(FAST);
    let child = ship(&log, &receiver.url(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ship");
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(cursor_seq(&log), None, "nothing acknowledged while down");
    receiver.come_up();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.matches("sending it again in").count() >= 2,
        "{stderr}"
    );
    let seen = receiver.seen();
    assert_eq!(
        seen.stored.keys().copied().collect::<Vec<_>>(),
        (0..120).collect::<Vec<_>>()
    );
    assert_eq!(cursor_seq(&log), Some(119));
}

#[test]
fn a_refused_batch_stops_shipping_and_the_cursor_stays_at_the_last_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 100);
    let receiver = Receiver::start(vec![(200, None), (200, None), (400, None)]);
    // The receiver of the second run listens on another port: the same cursor is named.
    let cursor_file = dir.path().join("hook.cursor");
    let (code, stderr) = run(ship(&log, &receiver.url(), &["--batch", "20"])
        .arg("--cursor")
        .arg(&cursor_file));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("refused the batch from seq 40"), "{stderr}");
    assert!(stderr.contains("HTTP 400"), "{stderr}");
    assert_eq!(cursor_seq(&log), Some(39));
    drop(receiver);
    // The next run starts just after the cursor.
    let receiver = Receiver::start(Vec::new());
    let (code, stderr) = run(ship(&log, &receiver.url(), &["--batch", "20"])
        .arg("--cursor")
        .arg(&cursor_file));
    assert_eq!(code, 0, "{stderr}");
    let seen = receiver.seen();
    assert_eq!(seen.requests[0].seqs.first(), Some(&40));
    assert_eq!(
        seen.stored.keys().copied().collect::<Vec<_>>(),
        (40..100).collect::<Vec<_>>()
    );
    assert_eq!(cursor_seq(&log), Some(99));
}

#[test]
fn a_wrong_secret_is_refused_and_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 5);
    let receiver = Receiver::start(Vec::new());
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "not-the-right-secret-zz9\n").expect("write");
    let (code, stderr) = run(ship(&log, &receiver.url(), &[])
        .arg("--secret-file")
        .arg(&secret_file));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(!stderr.contains("zz9"), "{stderr}");
    assert_eq!(cursor_seq(&log), None);
    assert!(receiver.seen().stored.is_empty());
}

#[test]
fn a_log_rewritten_under_the_cursor_is_refused_and_nothing_is_shipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 30);
    let receiver = Receiver::start(Vec::new());
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &[]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(cursor_seq(&log), Some(29));
    let before = cursor(&log);
    // The log's records after the first are rewritten (same first line, so same chain).
    let mut lines = common::lines(&log);
    lines.truncate(20);
    common::write_lines(&log, &lines);
    cli(&log)
        .args(["append", "--stdin"])
        .write_stdin("{\"tool\":\"x\"}\n".repeat(15))
        .assert()
        .success();
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &[]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("changed under the ship cursor"), "{stderr}");
    assert_eq!(cursor(&log), before, "the cursor did not move");
    assert_eq!(receiver.seen().requests.len(), 1, "nothing more was sent");

    // The cursor of another log is refused too.
    let other = write_log(dir.path(), "other.jsonl", 3);
    let cursor_file = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".cursor"))
        .expect("cursor")
        .path();
    let (code, stderr) = run(ship(&other, &receiver.url(), &[])
        .arg("--cursor")
        .arg(&cursor_file));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("belongs to another log"), "{stderr}");
}

#[test]
fn filters_ship_only_matching_records_and_the_cursor_moves_past_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 200);
    let receiver = Receiver::start(Vec::new());
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &["--status", "error"]));
    assert_eq!(code, 0, "{stderr}");
    let expected: Vec<u64> = (0..200).filter(|i| i % 17 == 5).collect();
    assert_eq!(
        receiver.seen().stored.keys().copied().collect::<Vec<_>>(),
        expected
    );
    assert_eq!(cursor_seq(&log), Some(199));
}

#[test]
fn bad_input_is_one_sentence_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 3);
    for (args, expect) in [
        (
            vec!["ship", "--to", "ftp://me:pa55word@host/x"],
            "is not a destination",
        ),
        (
            vec![
                "ship",
                "--to",
                "webhook+http://127.0.0.1:9/hook",
                "--batch",
                "0",
            ],
            "batch size",
        ),
        (
            vec!["ship", "--to", "postgres://me:pa55word@/db?table=a;b"],
            "the table must be",
        ),
        (
            vec![
                "ship",
                "--to",
                "webhook+http://127.0.0.1:9/hook",
                "--header",
                "bad header",
            ],
            "--header",
        ),
        (vec!["ship"], "--to"),
    ] {
        let out = cli(&log).args(&args).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("pa55word"), "{args:?}: {stderr}");
    }
    // A webhook without a secret is refused before anything is sent.
    let out = cli(&log)
        .args(["ship", "--to", "webhook+http://127.0.0.1:9/hook"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NEXUS_AUDIT_WEBHOOK_SECRET"));
    // A missing log.
    let out = cli(&dir.path().join("missing.jsonl"))
        .args(["ship", "--to", "webhook+http://127.0.0.1:9/hook"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    // --against reads back from PostgreSQL only.
    let out = cli(&log)
        .args(["verify", "--against", "webhook+http://127.0.0.1:9/hook"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("postgres:// only"));
}

#[test]
fn sigint_while_a_batch_waits_to_be_sent_again_exits_cleanly_and_keeps_the_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 60);
    // The first batch is acknowledged, the second refused with 503 again and again.
    let receiver = Receiver::start(
        std::iter::once((200, None))
            .chain(std::iter::repeat_n((503, None), 1000))
            .collect(),
    );
    let child = ship(
        &log,
        &receiver.url(),
        &[
            "--batch",
            "20",
            "--backoff-base-ms",
            "50",
            "--backoff-cap-ms",
            "200",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn ship");
    let until = Instant::now() + Duration::from_secs(20);
    while receiver.seen().requests.len() < 4 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
    assert!(stderr.contains("cursor at seq 19"), "{stderr}");
    assert_eq!(cursor_seq(&log), Some(19), "only the acknowledged batch");
    assert_eq!(
        receiver.seen().stored.keys().copied().collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
}

#[test]
fn a_damaged_cursor_file_is_one_sentence_and_nothing_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 5);
    let receiver = Receiver::start(Vec::new());
    let cursor_file = dir.path().join("c.cursor");
    for junk in [
        "",
        "{\"version\":1",
        "not json",
        "{\"version\":7,\"chain_id\":\"a\",\"seq\":1,\"offset\":1,\"segment\":\"x\",\"hash\":\"00\",\"destination\":\"d\"}",
    ] {
        std::fs::write(&cursor_file, junk).expect("write");
        let (code, stderr) = run(ship(&log, &receiver.url(), &[])
            .arg("--cursor")
            .arg(&cursor_file));
        assert_eq!(code, 2, "{junk:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{junk:?}: {stderr}");
        assert!(stderr.contains("not a ship cursor"), "{junk:?}: {stderr}");
    }
    assert!(receiver.seen().requests.is_empty());
}

/// The `seq` of the last record of the live file at `log`.
fn last_seq(log: &Path) -> u64 {
    let lines = common::lines(log);
    let last: serde_json::Value =
        serde_json::from_slice(lines.last().expect("a record")).expect("a record");
    last["seq"].as_u64().expect("seq")
}

/// Waits until the cursor of `log` reaches `seq` (at most 30 s) while `child` ships it.
fn wait_for_cursor(log: &Path, seq: u64, child: &mut std::process::Child) {
    let until = Instant::now() + Duration::from_secs(30);
    while cursor_seq(log) != Some(seq) {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
            }
            panic!("ship --follow ended ({status}) before seq {seq}: {stderr}");
        }
        assert!(
            Instant::now() < until,
            "the cursor did not reach seq {seq}: {:?}",
            cursor(log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Appends `n` records through the binary, rotating at 4 KiB.
fn append_rotating(log: &Path, n: usize, round: usize) {
    let input: String = (0..n)
        .map(|i| {
            format!(
                "{{\"tool\":\"t{round}\",\"args\":{{\"i\":{i},\"pad\":\"{}\"}}}}\n",
                "x".repeat(60)
            )
        })
        .collect();
    cli(log)
        .args(["append", "--stdin", "--max-size", "4KiB"])
        .write_stdin(input)
        .assert()
        .success();
}

#[test]
fn a_log_rotated_and_pruned_under_ship_follow_arrives_whole_and_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 10);
    let first_line = common::lines(&log).remove(0);
    let receiver = Receiver::start(Vec::new());
    let mut child = ship(
        &log,
        &receiver.url(),
        &[
            "--follow",
            "--batch",
            "7",
            "--poll-ms",
            "20",
            "--progress-ms",
            "200",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn ship");
    for round in 0..6 {
        append_rotating(&log, 30, round);
        if round % 2 == 1 {
            // An explicit rotation too (and its compression), while the shipper may be
            // anywhere in the file it closes.
            cli(&log).args(["rotate"]).assert().success();
            append_rotating(&log, 5, round);
        }
        if round == 3 {
            // Once the shipper has passed every closed segment, they are pruned.
            wait_for_cursor(&log, last_seq(&log), &mut child);
            std::thread::sleep(Duration::from_millis(1_100));
            cli(&log)
                .args(["prune", "--older-than", "1s"])
                .assert()
                .success();
            let left = segments_on_disk(&log);
            assert!(left.is_empty(), "every closed segment was pruned: {left:?}");
        }
    }
    let last = last_seq(&log);
    wait_for_cursor(&log, last, &mut child);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        segments_on_disk(&log).len() >= 2,
        "the log rotated after the prune too"
    );
    let seen = receiver.seen();
    assert!(seen.bad.is_empty(), "{:?}", seen.bad);
    assert_eq!(
        seen.stored.keys().copied().collect::<Vec<_>>(),
        (0..=last).collect::<Vec<_>>(),
        "every seq arrived: {stderr}"
    );
    assert!(
        seen.stored.values().all(|n| *n == 1),
        "no <chain_id>:<seq> twice"
    );
    assert_eq!(
        seen.chains.iter().cloned().collect::<Vec<_>>(),
        [hex::encode(Sha256::digest(&first_line))]
    );
    assert_eq!(cursor_seq(&log), Some(last));
}

/// The closed segments of `log` on disk.
fn segments_on_disk(log: &Path) -> Vec<String> {
    let name = log
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let mut out: Vec<String> = std::fs::read_dir(log.parent().expect("dir"))
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            let rest = n.strip_prefix(&format!("{name}.")).unwrap_or_default();
            rest.len() > 41
                && rest.as_bytes()[..20].iter().all(u8::is_ascii_digit)
                && [".jsonl", ".jsonl.zst"].contains(&&rest[41..])
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_rotated_log_ships_from_scratch_once_in_seq_order_with_its_first_lines_chain_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 130);
    let first_line = common::lines(&log).remove(0);
    // Plain, zstd, plain and zstd segments, then the live file.
    let segs = segments::split(&log, &[30, 40, 25, 15], |i| i % 2 == 1);
    assert_eq!(segments_on_disk(&log).len(), 4, "{segs:?}");
    let receiver = Receiver::start(Vec::new());
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &["--batch", "17"]));
    assert_eq!(code, 0, "{stderr}");
    let seen = receiver.seen();
    assert!(seen.bad.is_empty(), "{:?}", seen.bad);
    let sent: Vec<u64> = seen
        .requests
        .iter()
        .flat_map(|r| r.seqs.iter().copied())
        .collect();
    assert_eq!(
        sent,
        (0..130).collect::<Vec<_>>(),
        "once each, in seq order"
    );
    assert_eq!(
        seen.chains.iter().cloned().collect::<Vec<_>>(),
        [hex::encode(Sha256::digest(&first_line))]
    );
    let requests = seen.requests.len();
    drop(seen);
    let c = cursor(&log).expect("cursor");
    assert_eq!(c["seq"].as_u64(), Some(129));
    assert_eq!(c["segment"].as_str(), Some("audit.jsonl"));
    // Nothing new: a second run sends nothing.
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &[]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(receiver.seen().requests.len(), requests);
}

#[test]
fn a_cursor_whose_next_records_were_pruned_stops_with_one_sentence_and_sends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = segments::write_dated_log(dir.path(), "audit.jsonl", 100, "2020-01-01T00:00:00Z", 60);
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).expect("mkdir");
    segments::split(&log, &[40, 30], |i| i == 0);
    // The first batch is acknowledged, the second refused: the cursor stays at seq 19.
    let receiver = Receiver::start(vec![(200, None), (400, None)]);
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &["--batch", "20"]));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(cursor_seq(&log), Some(19));
    let before = cursor(&log);
    let requests = receiver.seen().requests.len();
    cli(&log)
        .args(["prune", "--older-than", "1d", "--archive"])
        .arg(&archive)
        .assert()
        .success();
    assert!(segments_on_disk(&log).is_empty());
    for args in [&["--batch", "20"][..], &["--follow", "--poll-ms", "20"][..]] {
        let (code, stderr) = run(&mut ship(&log, &receiver.url(), args));
        assert_eq!(code, 2, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("seq 20 to 69") && stderr.contains("pruned before they were shipped"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&archive.display().to_string()),
            "names the archive: {stderr}"
        );
        assert_eq!(cursor(&log), before, "the cursor did not move");
        assert_eq!(receiver.seen().requests.len(), requests, "nothing was sent");
    }
    // From scratch (another cursor), the first records are gone too.
    let (code, stderr) = run(ship(&log, &receiver.url(), &[])
        .arg("--cursor")
        .arg(dir.path().join("fresh.cursor")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("seq 0 to 69"), "{stderr}");
    assert_eq!(receiver.seen().requests.len(), requests, "nothing was sent");
}

#[test]
fn a_cursor_in_the_live_file_follows_its_record_into_the_segment_it_was_rotated_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 30);
    let receiver = Receiver::start(Vec::new());
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &["--batch", "12"]));
    assert_eq!(code, 0, "{stderr}");
    let first = cursor(&log).expect("cursor");
    assert_eq!(first["segment"].as_str(), Some("audit.jsonl"));
    // Rotated (and compressed) while no shipper runs, then appended to.
    cli(&log).args(["rotate"]).assert().success();
    cli(&log)
        .args(["append", "--stdin"])
        .write_stdin("{\"tool\":\"x\"}\n".repeat(10))
        .assert()
        .success();
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &["--batch", "12"]));
    assert_eq!(code, 0, "{stderr}");
    let seen = receiver.seen();
    assert_eq!(
        seen.stored.keys().copied().collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
    assert!(seen.stored.values().all(|n| *n == 1), "nothing twice");
    drop(seen);
    assert_eq!(cursor_seq(&log), Some(39));
    // The record at a cursor is checked inside the compressed segment too: a cursor whose
    // hash is not that record's is refused.
    let mut wrong = first.clone();
    wrong["hash"] = serde_json::Value::String("ab".repeat(32));
    let wrong_file = dir.path().join("wrong.cursor");
    std::fs::write(&wrong_file, wrong.to_string()).expect("write");
    let (code, stderr) = run(ship(&log, &receiver.url(), &[])
        .arg("--cursor")
        .arg(&wrong_file));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("changed under the ship cursor"), "{stderr}");
    assert!(stderr.contains(".jsonl.zst"), "{stderr}");
}

#[test]
fn a_log_whose_first_line_is_not_a_record_stops_ship_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    std::fs::write(&log, "not a record\n{\"seq\":0}\n").expect("write");
    let receiver = Receiver::start(Vec::new());
    let (code, stderr) = run(&mut ship(&log, &receiver.url(), &[]));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is not a record"), "{stderr}");
    assert!(receiver.seen().requests.is_empty());
    assert_eq!(cursor_seq(&log), None);
}
