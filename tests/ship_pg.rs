//! `ship --to postgres://…` and `verify --against postgres://…` against a real
//! `PostgreSQL` server: Debian's `postgresql` (scripts/test installs it), started by each test with
//! `initdb` in a temporary directory as the unprivileged user `nobody`, listening only on a
//! unix socket there, and stopped by its pid at the end.

mod common;
#[path = "common/segments.rs"]
mod segments;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{cli, write_log};
use postgres::{Client, NoTls};

const BIN: &str = env!("CARGO_BIN_EXE_nexus-audit");

/// A `PostgreSQL` server of its own for one test.
struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Server {
    /// `initdb` and start a server as `nobody` in a fresh temporary directory.
    fn start() -> Server {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                let mut dirs: Vec<PathBuf> = versions
                    .filter_map(|v| v.ok().map(|v| v.path().join("bin")))
                    .filter(|b| b.join("initdb").is_file())
                    .collect();
                dirs.sort();
                dirs.pop()
            })
            .unwrap_or_else(|| {
                panic!(
                    "these tests need a PostgreSQL server: install Debian's postgresql (apt-get install postgresql; scripts/test does)"
                )
            });
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server { dir, bin };
        Server::own_by_nobody(server.dir.path());
        let data = server.dir.path().join("data");
        server.run_as_nobody(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        server.pg_ctl_start();
        server
    }

    fn own_by_nobody(path: &Path) {
        if !is_root() {
            return;
        }
        let status = Command::new("chown")
            .args(["nobody:nogroup"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success(), "chown nobody {}", path.display());
    }

    fn run_as_nobody(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let out = if is_root() {
            Command::new("runuser")
                .args(["-u", "nobody", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (runuser needs util-linux): {e}",
                program.display()
            )
        });
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.dir.path().display()
        );
        self.run_as_nobody(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-l",
                log.to_str().expect("utf-8"),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server by the pid in postmaster.pid (a fast shutdown), and waits for it.
    fn stop(&self) {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            return;
        };
        let Some(pid) = text.lines().next().map(str::trim).map(str::to_owned) else {
            return;
        };
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let until = Instant::now() + Duration::from_secs(20);
        while pid_file.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL of database `postgres`, table `table`.
    fn url(&self, table: &str) -> String {
        format!(
            "postgres://postgres@/postgres?host={}&table={table}",
            self.dir.path().display()
        )
    }

    fn client(&self) -> Client {
        postgres::Config::new()
            .host_path(self.dir.path())
            .user("postgres")
            .dbname("postgres")
            .connect(NoTls)
            .expect("connect to the test server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `nexus-audit --file LOG ship --to URL ARGS…` as a child process with a clean environment.
fn ship(log: &Path, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--file")
        .arg(log)
        .args(["ship", "--to", url])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn chain_id(log: &Path) -> String {
    let bytes = std::fs::read(log).expect("read log");
    let first = bytes.split(|b| *b == b'\n').next().expect("a line");
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(first))
}

fn cursor_seq(log: &Path) -> Option<u64> {
    let dir = log.parent()?;
    let entry = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".cursor"))?;
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
    v["seq"].as_u64()
}

/// A tiny random number generator, seeded from the clock (the seed is printed).
struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| {
                u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(1)
            })
            | 1;
        eprintln!("random seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn verify_against(log: &Path, url: &str) -> (i32, String) {
    let out = cli(log)
        .args(["verify", "--against", url, "--output", "table"])
        .output()
        .expect("run verify --against");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn shipping_100k_records_survives_20_sigkills_and_the_copy_proves_the_chain() {
    const N: u64 = 100_000;
    let t0 = Instant::now();
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", N);
    eprintln!("{:?}: server started, log written", t0.elapsed());
    let url = server.url("audit_log");
    let chain = chain_id(&log);
    let mut db = server.client();
    let mut rng = Rng::new();
    let mut kills = 0;
    let mut runs = 0;
    let mut cursors_after_kills = Vec::new();
    // Killed at random points about 20 times, then left to finish.
    loop {
        runs += 1;
        let mut child: Child = ship(&log, &url, &["--batch", "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ship");
        if kills < 20 {
            // Killed at a random point after this run's first acknowledged batch, so every run
            // makes progress however loaded the machine is: in a batch, between the insert
            // and the cursor's rename, or while the next batch is read.
            let before = cursor_seq(&log);
            let until = Instant::now() + Duration::from_secs(30);
            while cursor_seq(&log) == before
                && Instant::now() < until
                && child.try_wait().expect("try_wait").is_none()
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_millis(rng.below(300)));
            let finished = child.try_wait().expect("try_wait").is_some();
            let _ = child.kill();
            let _ = child.wait();
            if !finished {
                kills += 1;
            }
            // The cursor never passes a record the table does not hold.
            if let Some(seq) = cursor_seq(&log) {
                cursors_after_kills.push(seq);
                let held: i64 = db
                    .query_one(
                        "SELECT count(*) FROM audit_log WHERE chain_id = $1 AND seq <= $2",
                        &[&chain, &i64::try_from(seq).expect("seq")],
                    )
                    .expect("count")
                    .get(0);
                assert_eq!(
                    held,
                    i64::try_from(seq + 1).expect("seq"),
                    "cursor at seq {seq} after kill {kills}"
                );
            }
            continue;
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "the last run ends well");
        break;
    }
    eprintln!("{:?}: shipped through {kills} kills", t0.elapsed());
    assert!(kills >= 20, "{kills} kills in {runs} runs");
    // The kills landed at different points of the shipping, not all before or after it.
    cursors_after_kills.dedup();
    assert!(
        cursors_after_kills.iter().filter(|s| **s < N - 1).count() >= 5,
        "cursor after each kill: {cursors_after_kills:?}"
    );
    eprintln!("cursor after each kill: {cursors_after_kills:?}");
    assert_eq!(cursor_seq(&log), Some(N - 1));
    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM audit_log WHERE chain_id = $1",
            &[&chain],
        )
        .expect("counts");
    let (count, distinct, min, max): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((count, distinct, min, max), (100_000, 100_000, 0, 99_999));
    // The copy proves itself: every row's hash is the SHA-256 of its line, and every row's
    // prev_hash the SHA-256 of the line of the row before.
    let broken: i64 = db
        .query_one(
            "SELECT count(*) FROM (
                 SELECT seq, hash, prev_hash, line,
                        lag(encode(sha256(convert_to(line, 'UTF8')), 'hex')) OVER (ORDER BY seq) AS before
                 FROM audit_log WHERE chain_id = $1) AS rows
             WHERE hash <> encode(sha256(convert_to(line, 'UTF8')), 'hex')
                OR (seq > 0 AND prev_hash <> before)
                OR (seq = 0 AND prev_hash <> repeat('0', 64))",
            &[&chain],
        )
        .expect("chain check")
        .get(0);
    assert_eq!(broken, 0, "rows that do not re-hash or re-link");
    eprintln!("{:?}: copy checked in SQL", t0.elapsed());
    let (code, out) = verify_against(&log, &url);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK: the copy in "), "{out}");
    eprintln!("{:?}: verify --against passed", t0.elapsed());
    assert!(out.contains("100,000 records"), "{out}");

    // The copy tampered with four ways at once, each reported by its seq: a row deleted, a
    // row changed (its hash column changed to match), a row duplicated under another seq, two
    // rows swapped (each holds the other's record).
    let row_of = |db: &mut Client, seq: i64| -> String {
        db.query_one("SELECT line FROM audit_log WHERE seq = $1", &[&seq])
            .expect("row")
            .get(0)
    };
    db.execute("DELETE FROM audit_log WHERE seq = 500", &[])
        .expect("delete");
    let line = row_of(&mut db, 777);
    let changed = line.replace("item 777", "item 778");
    assert_ne!(line, changed);
    db.execute(
        "UPDATE audit_log SET line = $1, hash = encode(sha256(convert_to($1, 'UTF8')), 'hex') WHERE seq = 777",
        &[&changed],
    )
    .expect("update");
    db.execute(
        "INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 42",
        &[],
    )
    .expect_err("the primary key refuses an exact duplicate");
    db.execute(
        "INSERT INTO audit_log (chain_id, seq, hash, prev_hash, line)
         SELECT chain_id, 100000, hash, prev_hash, line FROM audit_log WHERE seq = 42",
        &[],
    )
    .expect("duplicate under seq 100000");
    let (a, b) = (row_of(&mut db, 10), row_of(&mut db, 11));
    db.execute("UPDATE audit_log SET line = $1 WHERE seq = 10", &[&b])
        .expect("swap");
    db.execute("UPDATE audit_log SET line = $1 WHERE seq = 11", &[&a])
        .expect("swap");
    let (code, out) = verify_against(&log, &url);
    assert_eq!(code, 1, "{out}");
    let listed: Vec<&str> = out.lines().filter(|l| l.starts_with("seq ")).collect();
    assert_eq!(listed.len(), 5, "{out}");
    for expected in [
        "seq 10: reordered: the copy's row seq 10 holds the record seq 11",
        "seq 11: reordered",
        "seq 500: missing",
        "seq 777: changed",
        "seq 100000: extra",
    ] {
        assert!(
            listed.iter().any(|l| l.starts_with(expected)),
            "{expected}: {out}"
        );
    }
    assert!(
        out.contains("the record seq 42 (a duplicate under another seq)"),
        "{out}"
    );
    assert!(out.contains("FAILED: 5 problems in the copy"), "{out}");
    let out = cli(&log)
        .args(["verify", "--against", &url, "--output", "json"])
        .output()
        .expect("verify --against json");
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let kinds: Vec<(u64, String)> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["seq"].as_u64().unwrap_or(0),
                p["kind"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (10, "reordered".to_owned()),
            (11, "reordered".to_owned()),
            (500, "missing".to_owned()),
            (777, "changed".to_owned()),
            (100_000, "extra".to_owned())
        ]
    );
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems_total"], 5);
}

#[test]
fn shipping_waits_for_a_server_that_is_down_and_ships_everything_once_it_is_back() {
    let server = Server::start();
    server.stop();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 2_000);
    let url = server.url("copy");
    let started = Instant::now();
    let child = ship(
        &log,
        &url,
        &[
            "--batch",
            "300",
            "--backoff-base-ms",
            "50",
            "--backoff-cap-ms",
            "400",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn ship");
    std::thread::sleep(Duration::from_millis(1_500));
    server.pg_ctl_start();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let retries = stderr.matches("sending it again in").count();
    assert!(retries >= 3, "retried while the server was down: {stderr}");
    // Backoff: the waits grow, up to the cap.
    let waits: Vec<f64> = stderr
        .lines()
        .filter_map(|l| l.split("sending it again in ").nth(1))
        .filter_map(|w| w.trim_end_matches(" s").parse().ok())
        .collect();
    assert!(waits.iter().all(|w| *w <= 0.4), "{waits:?}");
    assert!(waits.last() > waits.first(), "{waits:?}");
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    let n: i64 = server
        .client()
        .query_one("SELECT count(DISTINCT seq) FROM copy", &[])
        .expect("count")
        .get(0);
    assert_eq!(n, 2_000);
    assert_eq!(cursor_seq(&log), Some(1_999));
    let (code, out) = verify_against(&log, &url);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_refusal_stops_shipping_with_one_sentence_that_hides_the_password() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 10);
    let url = format!(
        "postgres://postgres:hunter2@/no_such_db?host={}&table=audit_log",
        server.dir.path().display()
    );
    let out = ship(&log, &url, &[]).output().expect("run ship");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("nexus-audit: error: "), "{stderr}");
    assert!(stderr.contains("no_such_db"), "{stderr}");
    assert!(stderr.contains("postgres:***@"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert_eq!(cursor_seq(&log), None, "nothing was acknowledged");

    let out = cli(&log)
        .args(["verify", "--against", &url])
        .output()
        .expect("verify --against");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn follow_ships_what_is_appended_reports_lag_and_stops_cleanly_on_sigterm() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 100);
    let url = server.url("audit_log");
    let child = ship(
        &log,
        &url,
        &["--follow", "--progress-ms", "200", "--poll-ms", "50"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn ship --follow");
    let mut db = server.client();
    let count = |db: &mut Client| -> i64 {
        db.query_one("SELECT count(*) FROM audit_log", &[])
            .map_or(0, |r| r.get(0))
    };
    let wait_for = |db: &mut Client, n: i64| {
        let until = Instant::now() + Duration::from_secs(20);
        while count(db) < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(count(db), n);
    };
    wait_for(&mut db, 100);
    let input: String = (0..50)
        .map(|i| format!("{{\"tool\":\"later_{i}\",\"status\":\"success\"}}"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    cli(&log)
        .args(["append", "--stdin"])
        .write_stdin(input)
        .assert()
        .success();
    wait_for(&mut db, 150);
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("behind: 0 records, 0.0 s"), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert!(stderr.contains("cursor at seq 149"), "{stderr}");
    assert_eq!(cursor_seq(&log), Some(149));
}

#[test]
fn a_user_granted_insert_alone_ships_to_an_existing_table_and_duplicates_are_harmless() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 50);
    let owner_url = server.url("audit_log");
    let (code, _) = run_ship(&log, &owner_url, &dir.path().join("owner.cursor"));
    assert_eq!(code, 0);
    let mut db = server.client();
    db.batch_execute(
        "CREATE ROLE shipper LOGIN; GRANT INSERT ON audit_log TO shipper; REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
    )
    .expect("role");
    cli(&log)
        .args(["append", "--stdin"])
        .write_stdin("{\"tool\":\"more\"}\n".repeat(25))
        .assert()
        .success();
    // Another cursor: the 50 records already there are sent again, and inserted once.
    let url = format!(
        "postgres://shipper@/postgres?host={}&table=audit_log",
        server.dir.path().display()
    );
    let (code, stderr) = run_ship(&log, &url, &dir.path().join("shipper.cursor"));
    assert_eq!(code, 0, "{stderr}");
    let row = db
        .query_one("SELECT count(*), count(DISTINCT seq) FROM audit_log", &[])
        .expect("count");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (75, 75));
    let (code, out) = verify_against(&log, &owner_url);
    assert_eq!(code, 0, "{out}");
}

fn run_ship(log: &Path, url: &str, cursor: &Path) -> (i32, String) {
    let out = ship(log, url, &["--cursor"])
        .arg(cursor)
        .output()
        .expect("run ship");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verify_against_reads_a_rotated_and_pruned_log_across_its_segments() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = segments::write_dated_log(dir.path(), "audit.jsonl", 90, "2020-01-01T00:00:00Z", 60);
    let chain = chain_id(&log);
    segments::split(&log, &[30, 30], |i| i == 0);
    let url = server.url("rotated");
    let (code, stderr) = run_ship(&log, &url, &dir.path().join("pg.cursor"));
    assert_eq!(code, 0, "{stderr}");
    let rows: i64 = server
        .client()
        .query_one(
            "SELECT count(*) FROM rotated WHERE chain_id = $1",
            &[&chain],
        )
        .expect("count")
        .get(0);
    assert_eq!(
        rows, 90,
        "every record of every segment, under the first line's chain id"
    );
    let (code, out) = verify_against(&log, &url);
    assert_eq!(code, 0, "{out}");
    // Once the segments are pruned, the chain id comes from the manifest and the rows of the
    // pruned records are neither missing nor extra.
    cli(&log)
        .args(["prune", "--older-than", "1d"])
        .assert()
        .success();
    // Its `segments_pruned` record (seq 90) is shipped like any other.
    let (code, stderr) = run_ship(&log, &url, &dir.path().join("pg.cursor"));
    assert_eq!(code, 0, "{stderr}");
    let (code, out) = verify_against(&log, &url);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("seq 60..90"), "{out}");
    server
        .client()
        .execute("DELETE FROM rotated WHERE seq = 75", &[])
        .expect("delete");
    let (code, out) = verify_against(&log, &url);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("75") && out.contains("missing"), "{out}");
}
