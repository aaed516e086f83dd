//! What `nexus-audit proxy` costs: calls per second and latency per call through the proxy,
//! next to the same server reached directly.
//!
//! `cargo bench --bench proxy` (or `cargo bench --bench proxy -- CALLS` to change the number of
//! calls per run, default 20,000). The server is this very program started with `--serve`: a
//! minimal MCP-style stdio server that answers every `tools/call` at once, so what is measured
//! is the relay and the append, not a tool. Latency: one call at a time, each waiting for its
//! answer (ping-pong), p50 and p99 of the round trip. Throughput: all calls written at once by
//! one thread while another reads the answers (pipelined), calls divided by the elapsed time.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const NEXUS_AUDIT: &str = env!("CARGO_BIN_EXE_nexus-audit");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--serve") {
        serve();
        return;
    }
    let calls: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "{:<26} {:>12} {:>10} {:>10} {:>14}",
        "target", "calls/s", "p50 µs", "p99 µs", "p50 added µs"
    );
    let direct = measure(&Target::Direct, calls);
    direct.print("direct", None);
    for durability in ["none", "buffered", "sync"] {
        // NOTE: with `sync` too, every call of the run: the calls in flight together share one
        // sync (the proxy's recording thread).
        let log = dir.path().join(format!("{durability}.jsonl"));
        let r = measure(&Target::Proxy { log, durability }, calls);
        r.print(&format!("proxy --durability {durability}"), Some(&direct));
    }
}

enum Target {
    Direct,
    Proxy {
        log: std::path::PathBuf,
        durability: &'static str,
    },
}

impl Target {
    fn spawn(&self) -> Child {
        let me = std::env::current_exe().expect("current exe");
        let mut cmd = match self {
            Self::Direct => Command::new(&me),
            Self::Proxy { log, durability } => {
                let mut c = Command::new(NEXUS_AUDIT);
                c.arg("--file")
                    .arg(log)
                    .args(["proxy", "--durability", durability, "--"])
                    .arg(&me);
                c
            }
        };
        cmd.arg("--serve")
            .env_remove("NEXUS_AUDIT_USER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn")
    }
}

struct Result {
    calls_per_s: f64,
    p50: Duration,
    p99: Duration,
}

impl Result {
    fn print(&self, name: &str, base: Option<&Self>) {
        let added = base.map_or(String::new(), |b| {
            format!("{:+.0}", micros(self.p50) - micros(b.p50))
        });
        println!(
            "{:<26} {:>12.0} {:>10.0} {:>10.0} {:>14}",
            name,
            self.calls_per_s,
            micros(self.p50),
            micros(self.p99),
            added
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn request(id: usize) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"workday_get_worker","arguments":{{"worker_id":"W{id:07}","fields":["name","dept"],"api_key":"not-really"}}}}}}"#
    )
    .into_bytes()
}

fn handshake(stdin: &mut ChildStdin, stdout: &mut BufReader<ChildStdout>) {
    stdin
        .write_all(br#"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench-client","version":"1"}}}"#)
        .and_then(|()| stdin.write_all(b"\n"))
        .and_then(|()| stdin.flush())
        .expect("write");
    let mut line = Vec::new();
    stdout.read_until(b'\n', &mut line).expect("read");
}

fn measure(target: &Target, calls: usize) -> Result {
    // Latency: one call at a time.
    let mut child = target.spawn();
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    handshake(&mut stdin, &mut stdout);
    let mut times = Vec::with_capacity(calls);
    let mut line = Vec::new();
    for id in 0..calls {
        let mut req = request(id);
        req.push(b'\n');
        let t = Instant::now();
        stdin.write_all(&req).expect("write");
        stdin.flush().expect("flush");
        line.clear();
        stdout.read_until(b'\n', &mut line).expect("read");
        times.push(t.elapsed());
    }
    drop(stdin);
    child.wait().expect("wait");
    times.sort_unstable();
    let p50 = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];

    // Throughput: all calls in flight at once.
    let mut child = target.spawn();
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    handshake(&mut stdin, &mut stdout);
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut w = BufWriter::with_capacity(64 << 10, stdin);
        for id in 0..calls {
            w.write_all(&request(id)).expect("write");
            w.write_all(b"\n").expect("write");
        }
        w.flush().expect("flush");
        w
    });
    for _ in 0..calls {
        line.clear();
        stdout.read_until(b'\n', &mut line).expect("read");
    }
    let elapsed = t.elapsed();
    drop(writer.join().expect("writer"));
    child.wait().expect("wait");
    let calls_per_s = calls as f64 / elapsed.as_secs_f64();
    Result {
        calls_per_s,
        p50,
        p99,
    }
}

/// The server: answers `initialize` and every other request at once, with a small result.
fn serve() {
    let stdin = std::io::stdin();
    let mut input = BufReader::with_capacity(64 << 10, stdin.lock());
    let mut out = BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        let Some(id) = msg.get("id") else { continue };
        let answer = if msg["method"] == "initialize" {
            serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                "serverInfo": {"name": "bench-server", "version": "1"}}})
        } else {
            serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": "{\"name\":\"Ada\",\"dept\":\"eng\"}"}],
                "isError": false}})
        };
        serde_json::to_writer(&mut out, &answer).expect("write");
        out.write_all(b"\n").expect("write");
        // Flush when no more requests are waiting: batches under load, no delay one by one.
        if input.buffer().is_empty() {
            out.flush().expect("flush");
        }
    }
    let _ = out.flush();
}
