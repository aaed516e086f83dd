//! A real rsyslog for the syslog tests: `rsyslogd -n` started as an unprivileged process (user
//! `nobody` when the tests run as root) on a loopback port with `imtcp`, writing each message it
//! receives, raw (`%rawmsg%`, the bytes inside the octet-counted frame), as one line of a file.
//! Used by `tests/ship_rsyslog.rs` and, through `#[path]`, by the unit tests of
//! `src/ship/syslog.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running rsyslogd.
pub struct Rsyslog {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The rsyslogd binary: on `PATH`, else where Debian puts it.
fn rsyslogd() -> PathBuf {
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
    {
        let candidate = dir.join("rsyslogd");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "rsyslogd is not installed: install Debian's rsyslog (apt-get install rsyslog; scripts/test does it when it is missing)"
    );
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

impl Rsyslog {
    /// Starts rsyslogd on a free loopback port.
    pub fn start() -> Rsyslog {
        let dir = tempfile::Builder::new()
            .prefix("nexus-rsyslog")
            .tempdir()
            .expect("temp dir");
        let mut r = Rsyslog {
            port: 0,
            dir,
            child: None,
        };
        r.launch(0);
        r
    }

    /// The file the messages are written to.
    pub fn out_file(&self) -> PathBuf {
        self.dir.path().join("messages.log")
    }

    fn launch(&mut self, port: u16) {
        let dir = self.dir.path();
        let port_file = dir.join("port");
        let _ = std::fs::remove_file(&port_file);
        let conf = format!(
            r#"global(workDirectory="{dir}" maxMessageSize="1m")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="nexus") {{ action(type="omfile" file="{out}" template="raw") }}
input(type="imtcp" port="{port}" address="127.0.0.1" listenPortFileName="{pf}" ruleset="nexus")
"#,
            dir = dir.display(),
            out = self.out_file().display(),
            pf = port_file.display(),
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).expect("write rsyslog.conf");
        let binary = rsyslogd();
        let mut cmd = if is_root() {
            // NOTE: rsyslogd runs as nobody, which must own the directory it writes to.
            let status = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of the rsyslog directory failed");
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        cmd.arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).map_or(Stdio::null(), Stdio::from));
        let child = cmd.spawn().expect("start rsyslogd (setpriv is util-linux)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // NOTE: rsyslogd writes the port file only for port 0; on a given port (a restart),
            // a connection that is accepted says it listens.
            if port != 0 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    self.port = port;
                    return;
                }
            } else if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(p) = text.trim().parse::<u16>()
                && p != 0
            {
                self.port = p;
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "rsyslogd exited at start ({status}): {}",
                    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not open its port within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops rsyslogd (SIGTERM to its pid, so it closes its connections and flushes).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts rsyslogd again on the same port, appending to the same file.
    pub fn restart(&mut self) {
        let port = self.port;
        self.launch(port);
        assert_eq!(self.port, port, "rsyslogd came back on another port");
    }

    /// The messages received so far, each without the LF the template adds.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        read_lines(&self.out_file())
    }

    /// Waits until at least `n` messages were written (or `timeout` passes) and returns them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut out: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if out.last().is_some_and(Vec::is_empty) {
        out.pop();
    }
    out
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A message as RFC 5424 lays it out, taken apart (what the tests check each received message
/// against).
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub pri: u16,
    pub timestamp: String,
    pub hostname: String,
    pub app: String,
    pub procid: String,
    pub msgid: String,
    /// SD-PARAMs of the one SD-ELEMENT, unescaped.
    pub sd_id: String,
    pub params: Vec<(String, String)>,
    pub msg: Vec<u8>,
}

/// Parses `<PRI>1 TS HOST APP PROCID MSGID [ID k="v" …] MSG`; None when it is not that shape.
pub fn parse_5424(m: &[u8]) -> Option<Parsed> {
    let rest = m.strip_prefix(b"<")?;
    let close = rest.iter().position(|b| *b == b'>')?;
    let pri: u16 = std::str::from_utf8(&rest[..close]).ok()?.parse().ok()?;
    let rest = rest[close + 1..].strip_prefix(b"1 ")?;
    let mut fields = Vec::new();
    let mut rest = rest;
    for _ in 0..5 {
        let sp = rest.iter().position(|b| *b == b' ')?;
        fields.push(String::from_utf8(rest[..sp].to_vec()).ok()?);
        rest = &rest[sp + 1..];
    }
    let rest = rest.strip_prefix(b"[")?;
    let sp = rest.iter().position(|b| *b == b' ')?;
    let sd_id = String::from_utf8(rest[..sp].to_vec()).ok()?;
    let mut rest = &rest[sp..];
    let mut params = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix(b"] ") {
            rest = r;
            break;
        }
        rest = rest.strip_prefix(b" ")?;
        let eq = rest.iter().position(|b| *b == b'=')?;
        let name = String::from_utf8(rest[..eq].to_vec()).ok()?;
        rest = rest[eq + 1..].strip_prefix(b"\"")?;
        let mut value = Vec::new();
        let mut i = 0;
        loop {
            match *rest.get(i)? {
                b'\\' => {
                    value.push(*rest.get(i + 1)?);
                    i += 2;
                }
                b'"' => break,
                b => {
                    value.push(b);
                    i += 1;
                }
            }
        }
        rest = &rest[i + 1..];
        params.push((name, String::from_utf8(value).ok()?));
    }
    Some(Parsed {
        pri,
        timestamp: fields[0].clone(),
        hostname: fields[1].clone(),
        app: fields[2].clone(),
        procid: fields[3].clone(),
        msgid: fields[4].clone(),
        sd_id,
        params,
        msg: rest.to_vec(),
    })
}
