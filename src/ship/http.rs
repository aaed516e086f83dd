//! What the HTTP destinations (Splunk HEC, Elasticsearch) share: reading a `--to` URL, one
//! ureq agent with rustls, and turning transport failures and `Retry-After` into
//! [`SendError`]s.
//!
//! A `--to` URL is `KIND+http://…` or `KIND+https://…`. Userinfo (`user:password@`) is taken
//! out of the URL and percent-decoded; `describe` never shows the password. The query parameter
//! `ca=FILE` (a PEM file of CA certificates, for a collector behind a private CA) replaces the
//! built-in web roots; it is taken out of the URL too.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use ureq::Agent;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::SendError;
use crate::error::Error;

/// A PEM file of CA certificates is small; anything larger is not one.
const MAX_CA_FILE: u64 = 4 << 20;

/// A `--to` URL taken apart.
#[derive(Debug)]
pub(crate) struct Target {
    /// `http` or `https` (the part after `KIND+`).
    pub scheme: String,
    /// Host and port (`host:port`, `[::1]:port`), without userinfo.
    pub authority: String,
    /// The path, without a trailing `/` (empty for none).
    pub path: String,
    /// The user of the userinfo, percent-decoded.
    pub user: Option<String>,
    /// The password of the userinfo, percent-decoded.
    pub password: Option<String>,
    /// The query's parameters other than `ca`, in order, percent-decoded.
    pub query: Vec<(String, String)>,
    /// The `ca=FILE` parameter.
    pub ca_file: Option<PathBuf>,
    /// The URL as given, with the password masked and nothing else changed.
    pub masked: String,
}

impl Target {
    /// Reads `url`, which must start with `KIND+SCHEME://` where `KIND+` is one of `prefixes`
    /// (e.g. `splunk-hec+`) and `SCHEME` one of `schemes`, in any case.
    pub(crate) fn parse(url: &str, prefixes: &[&str], schemes: &[&str]) -> Result<Self, Error> {
        let bad =
            |why: &str| Error::InvalidConfig(format!("destination {}: {why}", mask_userinfo(url)));
        let (full_scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no ://"))?;
        let full_scheme = full_scheme.to_ascii_lowercase();
        let prefix = prefixes
            .iter()
            .find(|p| full_scheme.starts_with(*p))
            .ok_or_else(|| bad(&format!("does not start with {}", prefixes.join(" or "))))?;
        let scheme = &full_scheme[prefix.len()..];
        if !schemes.contains(&scheme) {
            return Err(bad(&format!(
                "the scheme after {prefix} must be {}",
                schemes.join(" or ")
            )));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        if before_query.contains('#') || query.is_some_and(|q| q.contains('#')) {
            return Err(bad("has a fragment (#), which means nothing here"));
        }
        let (authority, path) = match before_query.find('/') {
            Some(i) => before_query.split_at(i),
            None => (before_query, ""),
        };
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("has a space or control character in its host"));
        }
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
                .map_err(|_| bad("has userinfo or a query that is not UTF-8 once decoded"))
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(decode(user)?), Some(decode(pass)?)),
                None => (Some(decode(u)?), None),
            },
        };
        let mut params = Vec::new();
        let mut ca_file = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            if k == "ca" {
                if v.is_empty() {
                    return Err(bad("has an empty ca= parameter"));
                }
                ca_file = Some(PathBuf::from(v));
            } else {
                params.push((k, v));
            }
        }
        Ok(Target {
            scheme: scheme.to_owned(),
            authority: host.to_owned(),
            path: path.trim_end_matches('/').to_owned(),
            user,
            password,
            query: params,
            ca_file,
            masked: mask_userinfo(url),
        })
    }

    /// `scheme://authority` followed by `path` (which starts with `/`).
    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}://{}{}{path}", self.scheme, self.authority, self.path)
    }

    /// The query parameter `name`, if given.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses query parameters other than `known` (and `ca`): a misspelt option must not be
    /// ignored without a word.
    pub(crate) fn only_params(&self, known: &[&str]) -> Result<(), Error> {
        match self
            .query
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) => Err(Error::InvalidConfig(format!(
                "destination {}: unknown parameter {k:?} (known: {})",
                self.masked,
                if known.is_empty() {
                    "ca".to_owned()
                } else {
                    format!("{}, ca", known.join(", "))
                }
            ))),
        }
    }
}

/// `url` with the password of its userinfo (if any) replaced by `***`.
pub(crate) fn mask_userinfo(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        // Not a URL at all: show nothing of what might be userinfo.
        return match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_owned(),
        };
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***@{host}")
            } else {
                format!("{user}@{host}")
            };
            format!("{}{masked}{}", &url[..start], &url[end..])
        }
        None => url.to_owned(),
    }
}

/// Reads the CA certificates of a PEM file.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, Error> {
    let pem = crate::fs::read_small(path, MAX_CA_FILE, "CA file")?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::InvalidConfig(format!(
                    "the CA file {} is not PEM: {e}",
                    path.display()
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "the CA file {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// One agent for a destination: every request under `timeout`, HTTP error statuses returned as
/// responses (each destination reads their bodies), no redirects (a POST that is redirected is
/// not acknowledged), TLS roots from `ca=` or the built-in web roots.
pub(crate) fn agent(target: &Target, timeout: Duration) -> Result<Agent, Error> {
    let mut tls = TlsConfig::builder();
    if let Some(ca) = &target.ca_file {
        tls = tls.root_certs(RootCerts::new_with_certs(&read_ca_file(ca)?));
    }
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .user_agent(concat!("nexus-audit/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .build();
    Ok(config.into())
}

/// A request that did not get a response: network errors and timeouts are retried; a bad URL or
/// a certificate the roots do not vouch for stops the shipper.
pub(crate) fn transport_error(what: &str, err: &ureq::Error) -> SendError {
    match err {
        ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::Pem(_)
        | ureq::Error::RequireHttpsOnly(_) => {
            SendError::Fatal(format!("{what}: cannot send the request: {err}"))
        }
        ureq::Error::Rustls(rustls::Error::InvalidCertificate(_)) => SendError::Fatal(format!(
            "{what}: the server's TLS certificate is not trusted: {err} (give the CA with ca=FILE)"
        )),
        _ => SendError::Retry {
            reason: format!("{what}: {err}"),
            after: None,
        },
    }
}

/// The `Retry-After` header of a response: delay-seconds or an HTTP date.
pub(crate) fn retry_after<B>(response: &ureq::http::Response<B>) -> Option<Duration> {
    retry_after_value(response.headers().get("retry-after")?.to_str().ok()?)
}

/// A `Retry-After` value: delay-seconds or an HTTP date (a date past is no wait).
pub(crate) fn retry_after_value(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Reads a response body, at most `limit` bytes (a bulk response for a large batch is a few
/// megabytes).
pub(crate) fn body_text(
    what: &str,
    response: &mut ureq::http::Response<ureq::Body>,
) -> Result<String, SendError> {
    response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| transport_error(&format!("{what}: reading the response"), &e))
}

/// A short, printable excerpt of a response body for an error sentence.
pub(crate) fn excerpt(body: &str) -> String {
    let mut out = String::new();
    for c in body.chars().take(200) {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    if body.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_taken_apart_and_its_password_masked() -> Result<(), Error> {
        let t = Target::parse(
            "elasticsearch+https://ship%40corp:p%3Ass@es.example:9200/pre/audit?ca=/etc/ca.pem&x=1",
            &["elasticsearch+"],
            &["http", "https"],
        )?;
        assert_eq!(t.scheme, "https");
        assert_eq!(t.authority, "es.example:9200");
        assert_eq!(t.path, "/pre/audit");
        assert_eq!(t.user.as_deref(), Some("ship@corp"));
        assert_eq!(t.password.as_deref(), Some("p:ss"));
        assert_eq!(t.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(t.query, vec![("x".to_owned(), "1".to_owned())]);
        assert_eq!(
            t.masked,
            "elasticsearch+https://ship%40corp:***@es.example:9200/pre/audit?ca=/etc/ca.pem&x=1"
        );
        assert!(!t.masked.contains("p%3Ass"));
        Ok(())
    }

    #[test]
    fn a_bad_url_is_one_sentence_without_the_password() {
        for url in [
            "elasticsearch+ftp://u:secretpw@h/i",
            "elasticsearch+https://u:secretpw@/i",
            "elasticsearch+https//u:secretpw@h/i",
            "Elasticsearch+HTTPS//u:secretpw@h/i",
            "splunk-hec+https://u:secretpw@h/i",
        ] {
            let err = Target::parse(url, &["elasticsearch+"], &["http", "https"])
                .expect_err(url)
                .to_string();
            assert!(!err.contains("secretpw"), "{err}");
            assert!(
                err.starts_with("invalid configuration: destination "),
                "{err}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let r = ureq::http::Response::builder()
            .header("Retry-After", "7")
            .body(())
            .expect("response");
        assert_eq!(retry_after(&r), Some(Duration::from_secs(7)));
        let r = ureq::http::Response::builder()
            .header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")
            .body(())
            .expect("response");
        assert_eq!(retry_after(&r), Some(Duration::ZERO));
        let r = ureq::http::Response::builder().body(()).expect("response");
        assert_eq!(retry_after(&r), None);
    }
}

/// The mock HEC and Elasticsearch servers, shared with tests/ship_dest.rs.
#[cfg(test)]
#[path = "../../tests/ship/dest_servers.rs"]
pub(crate) mod test_servers;

/// Records and servers for the destinations' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use sha2::{Digest as _, Sha256};

    use super::super::{DestinationOptions, SendError, Shipped};

    pub(crate) use super::test_servers as servers;

    /// The reason and wait of a `Retry`; panics on anything else.
    pub(crate) fn retry(r: Result<(), SendError>) -> (String, Option<std::time::Duration>) {
        match r {
            Err(SendError::Retry { reason, after }) => (reason, after),
            other => panic!("expected Retry, got {other:?}"),
        }
    }

    /// The sentence of a `Fatal`; panics on anything else.
    pub(crate) fn fatal(r: Result<(), SendError>) -> String {
        match r {
            Err(SendError::Fatal(m)) => m,
            other => panic!("expected Fatal, got {other:?}"),
        }
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// `n` chained records from `seq` 0, with the awkward cases in them: `]`, `"`, `\`,
    /// newlines and non-ASCII text in values, every level, an action that is no MSGID, a
    /// record without timestamp.
    pub(crate) fn batch(n: u64) -> Vec<Shipped> {
        let mut out = Vec::new();
        let mut prev = "0".repeat(64);
        let mut first = None;
        for seq in 0..n {
            let action = match seq % 7 {
                3 => "a\u{e9}ction with spaces".to_owned(),
                5 => "x".repeat(40),
                _ => "mcp_call".to_owned(),
            };
            let level = ["info", "warn", "error", "info"][(seq % 4) as usize];
            let mut rec = serde_json::json!({
                "seq": seq,
                "prev_hash": prev,
                "event_id": format!("00000000-0000-4000-8000-{seq:012}"),
                "timestamp": format!("2026-11-22T09:05:{:02}.{:06}Z", seq % 60, seq * 7 % 1_000_000),
                "schema_version": "1",
                "level": level,
                "action": action,
                "tool": "helix_create_ticket",
                "args_summary": {"title": format!("a ]bracket[ \"quote\" back\\slash\nnew line\r\ttab #{seq}"), "note": "Grüße, 東京, emoji \u{1f680}, \u{2028}"},
                "latency_ms": seq * 3,
            });
            if seq % 11 == 10 {
                rec.as_object_mut().expect("object").remove("timestamp");
            }
            let line = rec.to_string();
            let hash = sha(line.as_bytes());
            let chain_id = first.get_or_insert_with(|| hash.clone()).clone();
            out.push(Shipped {
                chain_id,
                seq,
                hash: hash.clone(),
                prev_hash: prev,
                timestamp: rec["timestamp"].as_str().unwrap_or("").to_owned(),
                action,
                line,
            });
            prev = hash;
        }
        out
    }

    /// Options for a test: `token`, a short timeout, state in `dir`.
    pub(crate) fn options(dir: &std::path::Path, token: Option<&str>) -> DestinationOptions {
        DestinationOptions {
            token: token.map(str::to_owned),
            secret: None,
            headers: Vec::new(),
            timeout: std::time::Duration::from_secs(5),
            state_dir: dir.to_path_buf(),
            state_stem: "audit.jsonl.ship-test".to_owned(),
        }
    }
}
