//! Syslog: `syslog+tcp://host:port` and `syslog+tls://host:port` (RFC 5425; `ca=FILE` for a
//! private CA, else the built-in web roots). The port defaults to 514 for `tcp` and 6514 for
//! `tls`.
//!
//! Each record is one RFC 5424 message, framed by octet counting (RFC 6587 §3.4.1: the
//! message's length in bytes, a space, the message; no trailer):
//!
//! ```text
//! <110>1 2026-11-22T09:05:04.123456Z gw-1 nexus-audit - mcp_call [nexus@32473 chain_id="…" seq="42" hash="…"] {"seq":42,…}
//! ```
//!
//! - PRI = facility 13 (log audit) × 8 + the severity of the record's `level`: `error` 3,
//!   `warn`/`warning` 4, `debug` 7, anything else (`info`, none) 6.
//! - TIMESTAMP is the record's `timestamp` in UTC with microseconds, `-` when it has none.
//! - HOSTNAME is this machine's name, PROCID `-`, MSGID the record's `action` when it is 1 to 32
//!   printable ASCII characters, else `-`.
//! - The structured data element `nexus@32473` carries `chain_id`, `seq` and `hash`, with `"`,
//!   `\` and `]` escaped by a backslash in the values (RFC 5424 §6.3.3).
//! - MSG is the stored line exactly (one line of JSON, UTF-8), without a BOM: receivers parse
//!   it as JSON and most JSON parsers refuse a BOM.
//!
//! Plain TCP syslog has no acknowledgement: `send` returns `Ok` once the frames are written and
//! flushed to the socket, which proves only that the local kernel took them. Before each batch
//! the connection is checked for a close by the server (which would otherwise swallow the first
//! write); any error drops the connection, and the next `send` reconnects and resends the batch.

use std::io::{self, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;

use super::http::{self, Target};
use super::{Destination, DestinationOptions, SendError, Shipped};
use crate::error::Error;

/// The IANA private enterprise number in the structured data's id (`nexus@32473`, the number
/// RFC 5612 reserves for documentation).
const SD_ID: &str = "nexus@32473";
/// Facility 13: log audit.
const FACILITY: u8 = 13;

/// Opens a syslog destination (see the module's docs).
pub(crate) fn open(url: &str, opts: &DestinationOptions) -> Result<Box<dyn Destination>, Error> {
    let target = Target::parse(url, &["syslog+"], &["tcp", "tls"])?;
    target.only_params(&[])?;
    let bad = |why: &str| Error::InvalidConfig(format!("destination {}: {why}", target.masked));
    if target.user.is_some() || !target.path.is_empty() {
        return Err(bad(
            "a syslog URL is syslog+tcp://host:port, with no user and no path",
        ));
    }
    let tls = target.scheme == "tls";
    let (host, port) = split_host_port(&target.authority, if tls { 6514 } else { 514 })
        .map_err(|why| bad(&why))?;
    if target.ca_file.is_some() && !tls {
        return Err(bad("ca= is for syslog+tls, not syslog+tcp"));
    }
    let tls = if tls {
        let mut roots = rustls::RootCertStore::empty();
        match &target.ca_file {
            Some(ca) => {
                for cert in http::read_ca_file(ca)? {
                    roots
                        .add(CertificateDer::from(cert.der().to_vec()))
                        .map_err(|e| {
                            Error::InvalidConfig(format!(
                                "the CA file {} holds a certificate rustls cannot use: {e}",
                                ca.display()
                            ))
                        })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidConfig(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = ServerName::try_from(host.clone())
            .map_err(|_| bad("the host is not a name TLS can check"))?;
        Some((Arc::new(config), name))
    } else {
        None
    };
    Ok(Box::new(Syslog {
        host,
        port,
        tls,
        timeout: opts.timeout,
        hostname: local_hostname().unwrap_or_else(|| "-".to_owned()),
        conn: None,
        describe: target.masked,
        buf: Vec::new(),
    }))
}

/// `host:port`, `[v6]:port` or a host alone (then `default`).
fn split_host_port(authority: &str, default: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address needs its closing ]".to_owned())?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("the port {p:?} is not a number from 1 to 65535"))?,
    };
    if host.is_empty() {
        return Err("it has no host".to_owned());
    }
    Ok((host.to_owned(), port))
}

/// This machine's name as RFC 5424 allows it (1 to 255 printable ASCII characters), if it has
/// one.
pub(crate) fn local_hostname() -> Option<String> {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_str().ok()?;
    (!name.is_empty() && name.len() <= 255 && name.bytes().all(|b| (33..=126).contains(&b)))
        .then(|| name.to_owned())
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn socket(&self) -> &TcpStream {
        match self {
            Conn::Tcp(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }

    fn write_all_flush(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Conn::Tls(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }

    /// Whether the server closed the connection (or it broke) since the last write. A syslog
    /// server sends nothing over plain TCP, so anything readable there is end of stream or an
    /// error; over TLS it may send records of its own (session tickets), which are read and
    /// processed here, and a `close_notify` or end of stream means closed.
    fn closed_by_peer(&mut self) -> bool {
        if self.socket().set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match self {
            Conn::Tcp(sock) => {
                let mut byte = [0u8; 1];
                match sock.peek(&mut byte) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != io::ErrorKind::WouldBlock,
                }
            }
            Conn::Tls(s) => loop {
                match s.conn.read_tls(&mut s.sock) {
                    Ok(0) => break true,
                    Ok(_) => match s.conn.process_new_packets() {
                        Ok(state) if state.peer_has_closed() => break true,
                        Ok(_) => {}
                        Err(_) => break true,
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                    Err(_) => break true,
                }
            },
        };
        closed || self.socket().set_nonblocking(false).is_err()
    }
}

struct Syslog {
    host: String,
    port: u16,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
    hostname: String,
    conn: Option<Conn>,
    describe: String,
    buf: Vec<u8>,
}

impl Syslog {
    fn connect(&self) -> io::Result<Conn> {
        let mut last = None;
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(sock) => {
                    sock.set_write_timeout(Some(self.timeout))?;
                    sock.set_read_timeout(Some(self.timeout))?;
                    sock.set_nodelay(true)?;
                    return match &self.tls {
                        None => Ok(Conn::Tcp(sock)),
                        Some((config, name)) => {
                            let mut conn =
                                rustls::ClientConnection::new(config.clone(), name.clone())
                                    .map_err(io::Error::other)?;
                            let mut sock = sock;
                            while conn.is_handshaking() {
                                conn.complete_io(&mut sock)?;
                            }
                            Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock))))
                        }
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("the host has no address")))
    }

    fn frames(&mut self, batch: &[Shipped]) -> Result<(), SendError> {
        self.buf.clear();
        let mut msg = Vec::with_capacity(1024);
        for r in batch {
            msg.clear();
            message(&mut msg, r, &self.hostname)?;
            self.buf
                .extend_from_slice(format!("{} ", msg.len()).as_bytes());
            self.buf.extend_from_slice(&msg);
        }
        Ok(())
    }
}

impl Destination for Syslog {
    fn send(&mut self, batch: &[Shipped]) -> Result<(), SendError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.frames(batch)?;
        if self.conn.as_mut().is_some_and(Conn::closed_by_peer) {
            self.conn = None;
        }
        if self.conn.is_none() {
            match self.connect() {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    let fatal = e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                        .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
                    let reason = format!("syslog: cannot connect to {}: {e}", self.describe);
                    return Err(if fatal {
                        SendError::Fatal(format!("{reason} (give the CA with ca=FILE)"))
                    } else {
                        SendError::Retry {
                            reason,
                            after: None,
                        }
                    });
                }
            }
        }
        let conn = self.conn.as_mut().ok_or_else(|| SendError::Retry {
            reason: "syslog: no connection".to_owned(),
            after: None,
        })?;
        if let Err(e) = conn.write_all_flush(&self.buf) {
            self.conn = None;
            return Err(SendError::Retry {
                reason: format!("syslog: writing to {} failed: {e}", self.describe),
                after: None,
            });
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[derive(Deserialize)]
struct Level<'a> {
    #[serde(borrow)]
    level: Option<std::borrow::Cow<'a, str>>,
}

/// RFC 5424 severity of a record's `level`.
fn severity(level: Option<&str>) -> u8 {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("emergency" | "emerg") => 0,
        Some("alert") => 1,
        Some("critical" | "crit") => 2,
        Some("error" | "err") => 3,
        Some("warn" | "warning") => 4,
        Some("notice") => 5,
        Some("debug") => 7,
        _ => 6,
    }
}

/// One RFC 5424 message for a record.
fn message(out: &mut Vec<u8>, r: &Shipped, hostname: &str) -> Result<(), SendError> {
    let level: Level<'_> = serde_json::from_str(&r.line).map_err(|_| {
        SendError::Fatal(format!(
            "record seq {} is not a JSON object and cannot be sent to syslog",
            r.seq
        ))
    })?;
    let pri = FACILITY * 8 + severity(level.level.as_deref());
    let timestamp = chrono::DateTime::parse_from_rfc3339(&r.timestamp).map_or_else(
        |_| "-".to_owned(),
        |t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        },
    );
    let msgid = if !r.action.is_empty()
        && r.action.len() <= 32
        && r.action.bytes().all(|b| (33..=126).contains(&b))
    {
        r.action.as_str()
    } else {
        "-"
    };
    out.extend_from_slice(
        format!(
            "<{pri}>1 {timestamp} {hostname} nexus-audit - {msgid} [{SD_ID} chain_id=\"{}\" seq=\"{}\" hash=\"{}\"] ",
            sd_escape(&r.chain_id),
            r.seq,
            sd_escape(&r.hash)
        )
        .as_bytes(),
    );
    out.extend_from_slice(r.line.as_bytes());
    Ok(())
}

/// An SD-PARAM value with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The real rsyslog harness, shared with tests/ship_rsyslog.rs.
#[cfg(test)]
#[path = "../../tests/ship/rsyslog.rs"]
mod rsyslog_server;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::http::testing::{batch, options};
    use super::rsyslog_server::{Rsyslog, parse_5424};
    use super::*;

    /// Checks that `got` holds each record of `records` (at least once, exactly once when
    /// `once`) as the message this module promises.
    fn check(got: &[Vec<u8>], records: &[Shipped], once: bool) {
        let mut count = std::collections::HashMap::new();
        for m in got {
            let p = parse_5424(m).unwrap_or_else(|| {
                panic!("not an RFC 5424 message: {}", String::from_utf8_lossy(m))
            });
            let seq: u64 = p.params[1].1.parse().expect("seq");
            let r = &records[usize::try_from(seq).expect("seq")];
            assert_eq!(p.msg, r.line.as_bytes(), "MSG is the stored line");
            assert_eq!(p.app, "nexus-audit");
            assert_eq!(p.procid, "-");
            assert_eq!(p.sd_id, "nexus@32473");
            assert_eq!(
                p.params,
                vec![
                    ("chain_id".to_owned(), r.chain_id.clone()),
                    ("seq".to_owned(), r.seq.to_string()),
                    ("hash".to_owned(), r.hash.clone()),
                ]
            );
            let level: serde_json::Value = serde_json::from_str(&r.line).expect("json");
            let sev = match level["level"].as_str() {
                Some("error") => 3,
                Some("warn") => 4,
                _ => 6,
            };
            assert_eq!(p.pri, 13 * 8 + sev);
            let msgid = if r.action == "mcp_call" {
                "mcp_call"
            } else {
                "-"
            };
            assert_eq!(p.msgid, msgid);
            if r.timestamp.is_empty() {
                assert_eq!(p.timestamp, "-");
            } else {
                assert_eq!(p.timestamp, r.timestamp);
            }
            *count.entry(seq).or_insert(0) += 1;
        }
        for r in records {
            let n = count.get(&r.seq).copied().unwrap_or(0);
            assert!(n >= 1, "seq {} never arrived", r.seq);
            if once {
                assert_eq!(n, 1, "seq {} arrived {n} times", r.seq);
            }
        }
    }

    #[test]
    fn rsyslog_receives_every_record_once_with_its_framing_intact() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Rsyslog::start();
        let mut dest = open(
            &format!("syslog+tcp://127.0.0.1:{}", server.port),
            &options(dir.path(), None),
        )?;
        let records = batch(500);
        for chunk in records.chunks(64) {
            dest.send(chunk).expect("written");
        }
        let got = server.wait_for(records.len(), Duration::from_secs(20));
        assert_eq!(got.len(), records.len(), "one message per record");
        check(&got, &records, true);
        Ok(())
    }

    #[test]
    fn a_restarted_rsyslog_gets_the_batch_again_on_a_new_connection() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Rsyslog::start();
        let mut dest = open(
            &format!("syslog+tcp://127.0.0.1:{}", server.port),
            &options(dir.path(), None),
        )?;
        let records = batch(40);
        dest.send(&records[..20]).expect("written");
        server.wait_for(20, Duration::from_secs(20));
        server.stop();
        match dest.send(&records[20..]) {
            Err(SendError::Retry { reason, .. }) => {
                assert!(reason.contains("cannot connect"), "{reason}");
            }
            other => panic!("a stopped server must mean Retry, got {other:?}"),
        }
        server.restart();
        dest.send(&records[20..])
            .expect("written on a new connection");
        let got = server.wait_for(40, Duration::from_secs(20));
        check(&got, &records, true);
        Ok(())
    }

    #[test]
    fn messages_follow_rfc_5424_with_escaped_structured_data() {
        let mut r = batch(4).remove(2);
        r.chain_id = "a\"b\\c]d".to_owned();
        r.action = "tools/call".to_owned();
        let mut out = Vec::new();
        message(&mut out, &r, "gw-1").expect("message");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            format!(
                "<107>1 2026-11-22T09:05:02.000014Z gw-1 nexus-audit - tools/call [nexus@32473 chain_id=\"a\\\"b\\\\c\\]d\" seq=\"2\" hash=\"{}\"] {}",
                r.hash, r.line
            )
        );
        assert_eq!(sd_escape("]]\\\""), "\\]\\]\\\\\\\"");
        assert_eq!(severity(Some("WARNING")), 4);
        assert_eq!(severity(None), 6);
    }

    #[test]
    fn a_bad_syslog_url_is_refused_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path(), None);
        for (url, says) in [
            ("syslog+udp://h:514", "must be tcp or tls"),
            ("syslog+tcp://h:0", "not a number from 1 to 65535"),
            ("syslog+tcp://h:99999", "not a number from 1 to 65535"),
            ("syslog+tcp://h:514/path", "no path"),
            ("syslog+tcp://h:514?ca=/x.pem", "ca= is for syslog+tls"),
            (
                "syslog+tls://h:6514?ca=/nonexistent/ca.pem",
                "/nonexistent/ca.pem",
            ),
        ] {
            let err = open(url, &opts).err().expect(url).to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
        assert!(open("syslog+tls://[::1]:6514", &opts).is_ok());
        assert!(open("syslog+tcp://collector", &opts).is_ok());
    }

    /// A TLS syslog receiver on a loopback port with a certificate for `localhost` from a CA of
    /// its own: returns the port, the CA's PEM and a channel that gets the frames' messages.
    fn tls_receiver(
        per_connection: Vec<usize>,
    ) -> (
        u16,
        String,
        std::sync::mpsc::Receiver<std::io::Result<Vec<Vec<u8>>>>,
    ) {
        use std::io::{BufRead as _, BufReader, Read as _};

        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &rcgen::Issuer::from_params(&ca_params, &ca_key))
            .expect("cert");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let config = Arc::new(config);
            let result = (|| {
                let mut got = Vec::new();
                for expect in per_connection {
                    let (sock, _) = listener.accept()?;
                    let conn =
                        rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
                    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, sock));
                    for _ in 0..expect {
                        // Octet counting: LEN SP MSG.
                        let mut len = Vec::new();
                        reader.read_until(b' ', &mut len)?;
                        let len: usize = std::str::from_utf8(&len[..len.len().saturating_sub(1)])
                            .ok()
                            .and_then(|l| l.parse().ok())
                            .ok_or_else(|| io::Error::other("bad frame length"))?;
                        let mut msg = vec![0; len];
                        reader.read_exact(&mut msg)?;
                        got.push(msg);
                    }
                    // Then the server goes away: close_notify and end of stream.
                    let stream = reader.get_mut();
                    stream.conn.send_close_notify();
                    stream.conn.complete_io(&mut stream.sock)?;
                    stream.sock.shutdown(std::net::Shutdown::Both)?;
                }
                Ok(got)
            })();
            let _ = tx.send(result);
        });
        (port, ca.pem(), rx)
    }

    #[test]
    fn syslog_over_tls_trusts_the_ca_given_and_frames_every_record() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let records = batch(50);
        // The receiver closes the connection after 20 records: the next batch must notice and
        // go over a new connection, not into the closed one.
        let (port, ca, rx) = tls_receiver(vec![20, 30]);
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca).expect("write CA");
        let mut dest = open(
            &format!("syslog+tls://localhost:{port}?ca={}", ca_file.display()),
            &options(dir.path(), None),
        )?;
        dest.send(&records[..20]).expect("written");
        std::thread::sleep(Duration::from_millis(300));
        dest.send(&records[20..]).expect("written");
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the receiver answers")
            .expect("the receiver read every frame");
        check(&got, &records, true);
        Ok(())
    }

    #[test]
    fn syslog_over_tls_refuses_a_server_the_roots_do_not_vouch_for() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, _, _rx) = tls_receiver(vec![1]);
        let mut dest = open(
            &format!("syslog+tls://localhost:{port}"),
            &options(dir.path(), None),
        )?;
        match dest.send(&batch(1)) {
            Err(SendError::Fatal(m)) => assert!(m.contains("ca=FILE"), "{m}"),
            other => panic!("an untrusted certificate must stop shipping, got {other:?}"),
        }
        Ok(())
    }
}
