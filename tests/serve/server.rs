//! `nexus-audit serve` started for a test on a free loopback port, stopped when dropped, and
//! the outside tools the tests need.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{self, Reply};

pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    stderr: Arc<Mutex<String>>,
}

/// The `nexus-audit` binary with no `NEXUS_AUDIT_*` variable from the developer's shell.
pub fn binary() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

impl Server {
    /// Starts `serve` on `log` with `args` (after `serve`), on 127.0.0.1 port 0 unless `args`
    /// has its own --listen; waits for the address it prints.
    pub fn start(log: &Path, args: &[&str]) -> Server {
        let mut cmd = binary();
        cmd.arg("--file").arg(log).arg("serve");
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start nexus-audit serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read the address");
        let addr = line
            .trim()
            .strip_prefix("http://")
            .and_then(|a| a.strip_suffix('/'))
            .unwrap_or_else(|| {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "serve printed no address: stdout {line:?}, stderr {:?}",
                    stderr.lock().expect("lock")
                )
            })
            .to_owned();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = out.read_to_string(&mut rest);
        });
        let server = Server {
            child,
            addr,
            stderr,
        };
        server.wait_ready();
        server
    }

    /// Waits until the follower has read the log once (`/metrics` answers).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let r = http::get(&self.addr, "/metrics");
            if r.status != 503 || !r.text().contains("still reading") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server never finished reading the log");
    }

    pub fn get(&self, path: &str) -> Reply {
        http::get(&self.addr, path)
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        http::request(&self.addr, "GET", path, headers)
    }

    /// What the server printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Whether the server's stderr comes to hold `needle` within 10 seconds (a loaded machine
    /// may deliver a warning after the server already answers).
    pub fn stderr_shows(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails with what to run when an outside tool is missing.
pub fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "{tool} is not installed: run tests/serve/setup.sh (it installs Debian's prometheus and chromium)"
    );
}

/// A free loopback port (for a helper server the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `f` until it returns `Some`, at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
