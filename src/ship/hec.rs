//! Splunk HTTP Event Collector: `splunk-hec+https://host:8088` (`+http` too).
//!
//! A batch is one `POST /services/collector/event` whose body is the records' event envelopes
//! back to back (not an array):
//!
//! ```text
//! {"time":1795338304.123456,"host":"gw-1","source":"nexus-audit","sourcetype":"_json",
//!  "event":<the stored line>,"fields":{"chain_id":"…","seq":"42","hash":"…"}}
//! ```
//!
//! `time` is the record's `timestamp` in epoch seconds with microseconds (left out when the
//! record has none, so Splunk uses the time of arrival); `event` is the stored line exactly;
//! the indexed `fields` are strings, as Splunk wants them. The token (`NEXUS_AUDIT_HEC_TOKEN`)
//! goes in `Authorization: Splunk <token>`, and every request carries
//! `X-Splunk-Request-Channel: <GUID>`, a channel kept in `<state_dir>/<state_stem>.hec-channel`
//! (0600) so a restarted shipper polls the same channel.
//!
//! Indexer acknowledgement: the answer `{"text":"Success","code":0,"ackId":N}` only says the
//! batch was received. `send` then polls `POST /services/collector/ack` with `{"acks":[N]}` until
//! the answer says `true` (the batch is indexed) and only then returns `Ok`. When the answer does
//! not come within the ack deadline (`ack_timeout=SECONDS`, default 60), the batch is sent again
//! (`SendError::Retry`): HEC forgets ackIds when an indexer restarts, so a missing ack is never a
//! success. A token without indexer acknowledgement answers without an `ackId`; that answer is
//! then the only acknowledgement there is, and `send` takes it.
//!
//! Answers (Splunk's "Troubleshoot HTTP Event Collector" table): token disabled, missing, badly
//! given or unknown (codes 1–4, 401/403) stop the shipper; server busy or unhealthy (codes 8, 9,
//! 18–20, any 5xx) and 429 are retried, honouring `Retry-After`; invalid data (codes 5–7, 12,
//! 13, 15) stops with the record's `seq` (from `invalid-event-number`); channel and ack
//! misconfiguration (codes 10, 11, 14, 16) stop with the server's text.
//!
//! URL parameters: `index=NAME` (the envelope's `index`), `sourcetype=NAME` (default `_json`),
//! `ack_timeout=SECONDS`, `ca=FILE` (see [`super::http`]).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use ureq::Agent;

use super::http::{self, Target};
use super::{Destination, DestinationOptions, SendError, Shipped};
use crate::error::Error;

/// How long `send` waits for an ack by default.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// The first pause between ack polls; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(50);
/// The longest pause between ack polls.
const MAX_POLL: Duration = Duration::from_secs(2);

/// Opens a Splunk HEC destination (see the module's docs).
pub(crate) fn open(url: &str, opts: &DestinationOptions) -> Result<Box<dyn Destination>, Error> {
    let target = Target::parse(url, &["splunk-hec+"], &["http", "https"])?;
    target.only_params(&["index", "sourcetype", "ack_timeout"])?;
    if target.user.is_some() {
        return Err(Error::InvalidConfig(format!(
            "destination {}: Splunk HEC takes its token from NEXUS_AUDIT_HEC_TOKEN, not from the URL",
            target.masked
        )));
    }
    let token = opts.token.as_deref().unwrap_or("").trim();
    if token.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "destination {}: set NEXUS_AUDIT_HEC_TOKEN to the HEC token",
            target.masked
        )));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::InvalidConfig(
            "NEXUS_AUDIT_HEC_TOKEN holds a space or control character; a HEC token has none"
                .to_owned(),
        ));
    }
    let ack_timeout = match target.param("ack_timeout") {
        None => DEFAULT_ACK_TIMEOUT,
        Some(v) => match v.parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Duration::from_secs_f64(secs),
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "destination {}: ack_timeout must be a number of seconds between 0 and 86400",
                    target.masked
                )));
            }
        },
    };
    let channel = channel(opts)?;
    let agent = http::agent(&target, opts.timeout)?;
    let mut fixed = String::from(",\"source\":\"nexus-audit\"");
    if let Some(host) = super::syslog::local_hostname() {
        let _ = write!(fixed, ",\"host\":{}", json_string(&host));
    }
    let sourcetype = target.param("sourcetype").unwrap_or("_json");
    let _ = write!(fixed, ",\"sourcetype\":{}", json_string(sourcetype));
    if let Some(index) = target.param("index") {
        let _ = write!(fixed, ",\"index\":{}", json_string(index));
    }
    Ok(Box::new(Hec {
        event_url: target.endpoint("/services/collector/event"),
        ack_url: target.endpoint("/services/collector/ack"),
        authorization: format!("Splunk {token}"),
        channel,
        headers: opts.headers.clone(),
        fixed,
        ack_timeout,
        agent,
        describe: target.masked,
    }))
}

/// The persisted channel GUID: read, or made and kept (0600, written atomically).
fn channel(opts: &DestinationOptions) -> Result<String, Error> {
    let path: PathBuf = opts
        .state_dir
        .join(format!("{}.hec-channel", opts.state_stem));
    for _ in 0..2 {
        match crate::fs::read_small(&path, 1024, "cannot read the HEC channel file") {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                return match uuid::Uuid::parse_str(text.trim()) {
                    Ok(id) => Ok(id.hyphenated().to_string()),
                    Err(_) => Err(Error::InvalidConfig(format!(
                        "{} holds no channel GUID; delete it to start a new channel",
                        path.display()
                    ))),
                };
            }
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => {
                let id = uuid::Uuid::new_v4().hyphenated().to_string();
                match crate::fs::write_new(&path, format!("{id}\n").as_bytes(), crate::fs::PRIVATE)
                {
                    Ok(()) => return Ok(id),
                    // Another shipper made it first: read theirs.
                    Err(e) if e.io_kind() == Some(std::io::ErrorKind::AlreadyExists) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::InvalidConfig(format!(
        "cannot settle on a HEC channel in {}",
        path.display()
    )))
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

struct Hec {
    agent: Agent,
    event_url: String,
    ack_url: String,
    authorization: String,
    channel: String,
    headers: Vec<(String, String)>,
    /// `,"source":…,"host":…,"sourcetype":…,"index":…`, the same for every envelope.
    fixed: String,
    ack_timeout: Duration,
    describe: String,
}

/// A HEC answer (success or error).
#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default)]
    text: String,
    code: Option<i64>,
    #[serde(rename = "ackId")]
    ack_id: Option<u64>,
    #[serde(rename = "invalid-event-number")]
    invalid_event: Option<usize>,
}

#[derive(Deserialize)]
struct AckAnswer {
    acks: serde_json::Map<String, serde_json::Value>,
}

impl Hec {
    /// The batch's envelopes, back to back.
    fn body(&self, batch: &[Shipped]) -> Result<String, SendError> {
        let mut body = String::with_capacity(batch.iter().map(|r| r.line.len() + 400).sum());
        for r in batch {
            // NOTE: the line is embedded as it is stored; one that is not JSON would make the
            // whole body invalid, so it stops here with its seq instead.
            if serde_json::from_str::<serde::de::IgnoredAny>(&r.line).is_err() {
                return Err(SendError::Fatal(format!(
                    "record seq {} is not JSON and cannot be sent to Splunk HEC",
                    r.seq
                )));
            }
            body.push('{');
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&r.timestamp)
                && t.timestamp() >= 0
            {
                let _ = write!(
                    body,
                    "\"time\":{}.{:06},",
                    t.timestamp(),
                    t.timestamp_subsec_micros()
                );
            }
            body.push_str(&self.fixed[1..]);
            body.push_str(",\"event\":");
            body.push_str(&r.line);
            let _ = write!(
                body,
                ",\"fields\":{{\"chain_id\":{},\"seq\":\"{}\",\"hash\":{}}}}}",
                json_string(&r.chain_id),
                r.seq,
                json_string(&r.hash)
            );
        }
        Ok(body)
    }

    fn post(
        &self,
        url: &str,
        body: &[u8],
    ) -> Result<(u16, Answer, String, Option<Duration>), SendError> {
        let mut req = self
            .agent
            .post(url)
            .header("Authorization", &self.authorization)
            .header("X-Splunk-Request-Channel", &self.channel)
            .header("Content-Type", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut resp = req
            .send(body)
            .map_err(|e| http::transport_error("Splunk HEC", &e))?;
        let status = resp.status().as_u16();
        let after = http::retry_after(&resp);
        let text = http::body_text("Splunk HEC", &mut resp)?;
        let answer = serde_json::from_str::<Answer>(&text).unwrap_or_default();
        Ok((status, answer, text, after))
    }

    /// What an answer other than success means.
    fn failure(
        batch: &[Shipped],
        status: u16,
        answer: &Answer,
        raw: &str,
        after: Option<Duration>,
    ) -> SendError {
        let said = match answer.code {
            Some(code) => format!("HTTP {status}, code {code}: {}", answer.text),
            None => format!("HTTP {status}: {}", http::excerpt(raw)),
        };
        match (status, answer.code) {
            (401 | 403, _) | (_, Some(1..=4)) => SendError::Fatal(format!(
                "Splunk HEC refused the token ({said}); check NEXUS_AUDIT_HEC_TOKEN"
            )),
            (429 | 500..=599, _) | (_, Some(8 | 9 | 18..=20)) => SendError::Retry {
                reason: format!("Splunk HEC is busy ({said})"),
                after,
            },
            (_, Some(5..=7 | 12 | 13 | 15)) => {
                let which = match answer.invalid_event.and_then(|i| batch.get(i)) {
                    Some(r) => format!("record seq {}", r.seq),
                    None => format!(
                        "a record of seq {} to {}",
                        batch.first().map_or(0, |r| r.seq),
                        batch.last().map_or(0, |r| r.seq)
                    ),
                };
                SendError::Fatal(format!("Splunk HEC rejected {which} as invalid ({said})"))
            }
            _ => SendError::Fatal(format!("Splunk HEC refused the batch ({said})")),
        }
    }

    /// Polls until `ack_id` is `true`, or the deadline passes (then the batch is resent).
    fn wait_for_ack(&self, batch: &[Shipped], ack_id: u64) -> Result<(), SendError> {
        let deadline = Instant::now() + self.ack_timeout;
        let body = format!("{{\"acks\":[{ack_id}]}}");
        let mut pause = FIRST_POLL;
        let mut last_problem = String::from("the answer stayed false");
        loop {
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(MAX_POLL);
            match self.post(&self.ack_url, body.as_bytes()) {
                Ok((200, _, raw, _)) => match serde_json::from_str::<AckAnswer>(&raw) {
                    Ok(a) => {
                        if a.acks.get(&ack_id.to_string()) == Some(&serde_json::Value::Bool(true)) {
                            return Ok(());
                        }
                    }
                    Err(_) => {
                        last_problem =
                            format!("the answer was not an ack: {}", http::excerpt(&raw));
                    }
                },
                Ok((status, answer, raw, after)) => {
                    match Self::failure(batch, status, &answer, &raw, after) {
                        SendError::Retry { reason, .. } => last_problem = reason,
                        fatal @ SendError::Fatal(_) => return Err(fatal),
                    }
                }
                Err(SendError::Retry { reason, .. }) => last_problem = reason,
                Err(fatal) => return Err(fatal),
            }
            if Instant::now() >= deadline {
                return Err(SendError::Retry {
                    reason: format!(
                        "Splunk HEC did not acknowledge ackId {ack_id} within {:?} ({last_problem}); the batch is sent again",
                        self.ack_timeout
                    ),
                    after: None,
                });
            }
        }
    }
}

impl Destination for Hec {
    fn send(&mut self, batch: &[Shipped]) -> Result<(), SendError> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = self.body(batch)?;
        let (status, answer, raw, after) = self.post(&self.event_url, body.as_bytes())?;
        if status == 200 && answer.code == Some(0) {
            return match answer.ack_id {
                Some(id) => self.wait_for_ack(batch, id),
                // Indexer acknowledgement is off for this token: receipt is all HEC confirms.
                None => Ok(()),
            };
        }
        Err(Self::failure(batch, status, &answer, &raw, after))
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::super::http::testing::servers::{Fault, HEC_TOKEN, Server};
    use super::super::http::testing::{batch, fatal, options, retry};
    use super::*;

    fn url(server: &Server, extra: &str) -> String {
        format!("splunk-hec+{}{extra}", server.base())
    }

    #[test]
    fn a_batch_is_acknowledged_only_when_the_ack_turns_true() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::hec();
        server.seen().ack_false_polls = 3;
        let mut dest = open(&url(&server, ""), &options(dir.path(), Some(HEC_TOKEN)))?;
        let records = batch(12);
        dest.send(&records).expect("acknowledged");
        let seen = server.seen();
        assert_eq!(seen.ack_polls, 4, "three false answers, then true");
        assert_eq!(seen.stored.len(), 12);
        for r in &records {
            let (env, times) = &seen.stored[&format!("{}:{}", r.chain_id, r.seq)];
            assert_eq!(*times, 1);
            assert_eq!(env["source"], "nexus-audit");
            assert_eq!(env["sourcetype"], "_json");
            assert_eq!(env["fields"]["chain_id"], r.chain_id.as_str());
            assert_eq!(env["fields"]["seq"], r.seq.to_string().as_str());
            assert_eq!(env["fields"]["hash"], r.hash.as_str());
            let event: serde_json::Value = serde_json::from_str(&r.line).expect("json");
            assert_eq!(env["event"], event, "the event is the stored record");
            match chrono::DateTime::parse_from_rfc3339(&r.timestamp) {
                Ok(t) => {
                    let want = format!("{}.{:06}", t.timestamp(), t.timestamp_subsec_micros());
                    assert!(env["time"].is_number());
                    assert_eq!(env["time"].to_string(), want);
                }
                Err(_) => assert!(env.get("time").is_none()),
            }
        }
        // The stored line is embedded byte for byte.
        let body = String::from_utf8(seen.bodies[0].clone()).expect("utf-8");
        assert!(body.contains(&format!("\"event\":{},", records[3].line)));
        Ok(())
    }

    #[test]
    fn the_channel_is_kept_private_and_reused_after_a_restart() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::hec();
        let opts = options(dir.path(), Some(HEC_TOKEN));
        open(&url(&server, ""), &opts)?
            .send(&batch(2))
            .expect("sent");
        open(&url(&server, ""), &opts)?
            .send(&batch(2))
            .expect("sent");
        let file = dir.path().join("audit.jsonl.ship-test.hec-channel");
        let mode = std::fs::metadata(&file)
            .expect("channel file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let kept = std::fs::read_to_string(&file).expect("read");
        let seen = server.seen();
        assert_eq!(seen.channels.len(), 2);
        assert!(seen.channels.iter().all(|c| c == kept.trim()));
        Ok(())
    }

    #[test]
    fn a_lost_ack_means_the_batch_is_sent_again() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::hec();
        server.seen().lose_acks = 1;
        let mut dest = open(
            &url(&server, "?ack_timeout=0.4"),
            &options(dir.path(), Some(HEC_TOKEN)),
        )?;
        let records = batch(5);
        let (reason, _) = retry(dest.send(&records));
        assert!(reason.contains("did not acknowledge ackId 0"), "{reason}");
        dest.send(&records).expect("the second try is acknowledged");
        let seen = server.seen();
        assert!(seen.stored.values().all(|(_, n)| *n == 2), "resent whole");
        Ok(())
    }

    #[test]
    fn busy_unhealthy_and_throttled_answers_are_retried_with_retry_after() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::hec();
        server.seen().faults.extend([
            Fault::hec_busy(Some(3)),
            Fault::hec_internal(),
            Fault::Status {
                status: 503,
                body: serde_json::json!({"text": "HEC is unhealthy, queues are full", "code": 18}),
                retry_after: None,
            },
            Fault::too_many(2),
            Fault::bad_gateway(),
        ]);
        let mut dest = open(&url(&server, ""), &options(dir.path(), Some(HEC_TOKEN)))?;
        let records = batch(3);
        let (reason, after) = retry(dest.send(&records));
        assert!(reason.contains("code 9: Server is busy"), "{reason}");
        assert_eq!(after, Some(Duration::from_secs(3)));
        let (reason, _) = retry(dest.send(&records));
        assert!(reason.contains("code 8"), "{reason}");
        let (reason, _) = retry(dest.send(&records));
        assert!(reason.contains("code 18"), "{reason}");
        let (_, after) = retry(dest.send(&records));
        assert_eq!(after, Some(Duration::from_secs(2)));
        let (reason, _) = retry(dest.send(&records));
        assert!(reason.contains("HTTP 502"), "{reason}");
        dest.send(&records).expect("then acknowledged");
        assert_eq!(server.seen().stored.len(), 3);
        Ok(())
    }

    #[test]
    fn a_bad_token_stops_without_showing_it() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::hec();
        let mut dest = open(
            &url(&server, ""),
            &options(dir.path(), Some("wrong-token-0xdeadbeef")),
        )?;
        let message = fatal(dest.send(&batch(2)));
        assert!(message.contains("code 4: Invalid token"), "{message}");
        assert!(message.contains("NEXUS_AUDIT_HEC_TOKEN"), "{message}");
        assert!(!message.contains("deadbeef"), "{message}");
        assert!(server.seen().stored.is_empty());
        Ok(())
    }

    #[test]
    fn invalid_data_stops_naming_the_record() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::hec();
        server.seen().faults.push_back(Fault::HecInvalidEvent(2));
        let mut dest = open(&url(&server, ""), &options(dir.path(), Some(HEC_TOKEN)))?;
        let records = batch(20)[10..15].to_vec();
        let message = fatal(dest.send(&records));
        assert!(message.contains("record seq 12 as invalid"), "{message}");
        assert!(message.contains("code 6"), "{message}");
        Ok(())
    }

    #[test]
    fn a_server_down_for_a_while_is_retried_until_it_is_back() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server::hec();
        let mut dest = open(&url(&server, ""), &options(dir.path(), Some(HEC_TOKEN)))?;
        let records = batch(4);
        dest.send(&records[..2]).expect("sent");
        server.stop();
        retry(dest.send(&records[2..]));
        retry(dest.send(&records[2..]));
        server.restart();
        dest.send(&records[2..]).expect("sent once it is back");
        assert_eq!(server.seen().stored.len(), 4);
        Ok(())
    }

    #[test]
    fn without_indexer_acknowledgement_the_answer_is_the_ack() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::hec();
        server.seen().ack_disabled = true;
        let mut dest = open(&url(&server, ""), &options(dir.path(), Some(HEC_TOKEN)))?;
        dest.send(&batch(3)).expect("sent");
        assert_eq!(server.seen().ack_polls, 0);
        assert_eq!(server.seen().stored.len(), 3);
        Ok(())
    }

    #[test]
    fn opening_needs_a_token_and_a_well_formed_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path(), None);
        let err = open("splunk-hec+https://splunk:8088", &opts)
            .err()
            .expect("no token")
            .to_string();
        assert!(err.contains("NEXUS_AUDIT_HEC_TOKEN"), "{err}");
        let opts = options(dir.path(), Some(HEC_TOKEN));
        for (url, says) in [
            ("splunk-hec+ftp://splunk:8088", "must be http or https"),
            (
                "splunk-hec+https://splunk:8088?acktimeout=3",
                "unknown parameter",
            ),
            (
                "splunk-hec+https://splunk:8088?ack_timeout=-1",
                "ack_timeout",
            ),
            ("splunk-hec+https://u:pw@splunk:8088", "not from the URL"),
        ] {
            let err = open(url, &opts).err().expect(url).to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
