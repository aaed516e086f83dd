//! Elasticsearch and `OpenSearch`: `elasticsearch+https://host:9200/INDEX` (`+http` too;
//! `opensearch+https://…` is the same).
//!
//! A batch is one `POST /_bulk` (`Content-Type: application/x-ndjson`), two lines per record:
//!
//! ```text
//! {"create":{"_index":"INDEX","_id":"<chain_id>:<seq>"}}
//! {<the record's fields>,"chain_id":"…","hash":"…"}
//! ```
//!
//! The document is the record's fields (with `seq` and `prev_hash`) plus `chain_id` and `hash`,
//! the SHA-256 of the stored line. `create` with the idempotency key as `_id` makes a resent
//! record harmless: the server answers 409 for it and stores nothing.
//!
//! Items are read one by one: 201 (or 200) stored, 409 already stored, 429 and 5xx refused for
//! now (the batch is resent: the stored ones answer 409), any other status stops the shipper with
//! the record's `seq`, the error type and reason. A whole request answered 429 or 5xx is retried
//! (honouring `Retry-After`); 401/403 stop (credentials), 413 stops (the batch is too large for
//! the server: lower `--batch`), any other 4xx stops.
//!
//! Authentication: Basic from the URL's userinfo (`https://user:password@host:9200/INDEX`,
//! percent-encoded), or an `Authorization` header given with `--header` (an API key:
//! `Authorization: ApiKey …`), not both. A path before the index (`https://proxy/es/INDEX`) is
//! kept: the request goes to `https://proxy/es/_bulk`.

use std::fmt::Write as _;

use base64::Engine as _;
use serde::Deserialize;
use ureq::Agent;

use super::http::{self, Target};
use super::{Destination, DestinationOptions, SendError, Shipped};
use crate::error::Error;

/// Opens an Elasticsearch destination (see the module's docs).
pub(crate) fn open(url: &str, opts: &DestinationOptions) -> Result<Box<dyn Destination>, Error> {
    let target = Target::parse(url, &["elasticsearch+", "opensearch+"], &["http", "https"])?;
    target.only_params(&[])?;
    let bad = |why: &str| Error::InvalidConfig(format!("destination {}: {why}", target.masked));
    let (prefix, index) = target.path.rsplit_once('/').unwrap_or(("", ""));
    let index = percent_encoding::percent_decode_str(index)
        .decode_utf8()
        .map_err(|_| bad("the index name is not UTF-8"))?
        .into_owned();
    check_index(&index).map_err(|why| bad(&why))?;
    let mut headers = opts.headers.clone();
    if let Some(user) = &target.user {
        if headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            return Err(bad(
                "give either a user in the URL or an Authorization header, not both",
            ));
        }
        let pair = format!("{user}:{}", target.password.as_deref().unwrap_or(""));
        headers.push((
            "Authorization".to_owned(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ),
        ));
    }
    let agent = http::agent(&target, opts.timeout)?;
    Ok(Box::new(Elastic {
        bulk_url: format!("{}://{}{prefix}/_bulk", target.scheme, target.authority),
        action_head: format!("{{\"create\":{{\"_index\":{},\"_id\":", json_string(&index)),
        headers,
        agent,
        describe: target.masked,
    }))
}

/// Elasticsearch's rules for an index name, so a bad one is one sentence at start.
fn check_index(index: &str) -> Result<(), String> {
    if index.is_empty() {
        return Err(
            "name the index as the URL's path: elasticsearch+https://host:9200/INDEX".into(),
        );
    }
    if index.len() > 255 {
        return Err("the index name is longer than 255 bytes".into());
    }
    if index == "." || index == ".." || index.starts_with(['-', '_', '+']) {
        return Err(format!(
            "the index name {index:?} cannot be . or .. nor start with -, _ or +"
        ));
    }
    if let Some(c) = index.chars().find(|c| {
        c.is_uppercase()
            || c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':'
            )
    }) {
        return Err(format!(
            "the index name {index:?} holds {c:?}; index names are lowercase, without spaces, \\ / * ? \" < > | , # :"
        ));
    }
    Ok(())
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

struct Elastic {
    agent: Agent,
    bulk_url: String,
    /// `{"create":{"_index":"INDEX","_id":`
    action_head: String,
    headers: Vec<(String, String)>,
    describe: String,
}

#[derive(Deserialize)]
struct Bulk {
    items: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    error: Option<ItemError>,
}

#[derive(Deserialize, Default)]
struct ItemError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: String,
}

impl Elastic {
    fn body(&self, batch: &[Shipped]) -> Result<String, SendError> {
        let mut body = String::with_capacity(batch.iter().map(|r| r.line.len() + 300).sum());
        for r in batch {
            let mut doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&r.line)
                .map_err(|_| {
                    SendError::Fatal(format!(
                        "record seq {} is not a JSON object and cannot be sent to Elasticsearch",
                        r.seq
                    ))
                })?;
            doc.insert("seq".into(), r.seq.into());
            doc.insert("prev_hash".into(), r.prev_hash.clone().into());
            doc.insert("chain_id".into(), r.chain_id.clone().into());
            doc.insert("hash".into(), r.hash.clone().into());
            body.push_str(&self.action_head);
            let _ = writeln!(
                body,
                "{}}}}}",
                json_string(&format!("{}:{}", r.chain_id, r.seq))
            );
            body.push_str(&serde_json::Value::Object(doc).to_string());
            body.push('\n');
        }
        Ok(body)
    }

    /// Reads a `_bulk` answer item by item.
    fn items(batch: &[Shipped], raw: &str) -> Result<(), SendError> {
        let bulk: Bulk = serde_json::from_str(raw).map_err(|_| {
            SendError::Fatal(format!(
                "Elasticsearch answered _bulk with something that is not a bulk response: {}",
                http::excerpt(raw)
            ))
        })?;
        if bulk.items.len() != batch.len() {
            return Err(SendError::Fatal(format!(
                "Elasticsearch answered {} items for {} records",
                bulk.items.len(),
                batch.len()
            )));
        }
        let mut refused = 0usize;
        let mut example = String::new();
        for (record, item) in batch.iter().zip(&bulk.items) {
            let item = item
                .get("create")
                .and_then(|v| Item::deserialize(v).ok())
                .ok_or_else(|| {
                    SendError::Fatal(format!(
                        "Elasticsearch answered record seq {} with no create result",
                        record.seq
                    ))
                })?;
            let error = item.error.unwrap_or_default();
            match item.status {
                200 | 201 | 409 => {}
                429 | 500..=599 => {
                    refused += 1;
                    if example.is_empty() {
                        example = format!("seq {}: {} {}", record.seq, item.status, error.kind);
                    }
                }
                status => {
                    return Err(SendError::Fatal(format!(
                        "Elasticsearch rejected record seq {} ({status} {}: {})",
                        record.seq,
                        error.kind,
                        http::excerpt(&error.reason)
                    )));
                }
            }
        }
        if refused > 0 {
            return Err(SendError::Retry {
                reason: format!(
                    "Elasticsearch refused {refused} of {} records for now ({example}); the batch is sent again",
                    batch.len()
                ),
                after: None,
            });
        }
        Ok(())
    }
}

impl Destination for Elastic {
    fn send(&mut self, batch: &[Shipped]) -> Result<(), SendError> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = self.body(batch)?;
        let mut req = self
            .agent
            .post(&self.bulk_url)
            .header("Content-Type", "application/x-ndjson");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut resp = req
            .send(body.as_bytes())
            .map_err(|e| http::transport_error("Elasticsearch", &e))?;
        let status = resp.status().as_u16();
        let after = http::retry_after(&resp);
        let raw = http::body_text("Elasticsearch", &mut resp)?;
        match status {
            200 => Self::items(batch, &raw),
            429 | 500..=599 => Err(SendError::Retry {
                reason: format!("Elasticsearch answered {status}: {}", http::excerpt(&raw)),
                after,
            }),
            401 | 403 => Err(SendError::Fatal(format!(
                "Elasticsearch refused the credentials ({status}: {}); check the URL's user and password or the Authorization header",
                http::excerpt(&raw)
            ))),
            413 => Err(SendError::Fatal(format!(
                "Elasticsearch refused a batch of {} records ({} bytes) as too large (413); lower --batch",
                batch.len(),
                body.len()
            ))),
            _ => Err(SendError::Fatal(format!(
                "Elasticsearch refused the batch ({status}: {})",
                http::excerpt(&raw)
            ))),
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::super::http::testing::servers::{Fault, Server};
    use super::super::http::testing::{batch, fatal, options, retry};
    use super::*;

    fn url(server: &Server, userinfo: &str) -> String {
        format!("elasticsearch+http://{userinfo}{}/nexus-audit", server.addr)
    }

    fn id(r: &Shipped) -> String {
        format!("{}:{}", r.chain_id, r.seq)
    }

    #[test]
    fn bulk_creates_each_record_under_its_id_and_a_resend_answers_409() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::elastic();
        let mut dest = open(&url(&server, ""), &options(dir.path(), None))?;
        let records = batch(9);
        dest.send(&records).expect("stored");
        dest.send(&records).expect("already stored is fine");
        let seen = server.seen();
        assert_eq!(seen.stored.len(), 9);
        for r in &records {
            let (doc, times) = &seen.stored[&id(r)];
            assert_eq!(*times, 2, "sent twice, stored once");
            let mut want: serde_json::Value = serde_json::from_str(&r.line).expect("json");
            want["chain_id"] = r.chain_id.clone().into();
            want["hash"] = r.hash.clone().into();
            assert_eq!(doc, &want, "the record's fields plus chain_id and hash");
            assert_eq!(doc["prev_hash"], r.prev_hash.as_str());
            assert_eq!(doc["seq"], r.seq);
        }
        let body = String::from_utf8(seen.bodies[0].clone()).expect("utf-8");
        let first = body.lines().next().expect("action line");
        assert_eq!(
            first,
            format!(
                "{{\"create\":{{\"_index\":\"nexus-audit\",\"_id\":\"{}\"}}}}",
                id(&records[0])
            )
        );
        Ok(())
    }

    #[test]
    fn items_refused_for_now_are_resent_and_the_stored_ones_answer_409() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::elastic();
        let records = batch(8);
        let mut dest = open(&url(&server, ""), &options(dir.path(), None))?;
        dest.send(&records[..3]).expect("the first three stored");
        {
            let mut seen = server.seen();
            seen.item_faults
                .insert(id(&records[4]), VecDeque::from([429, 429]));
            seen.item_faults
                .insert(id(&records[6]), VecDeque::from([503]));
        }
        // 409, 409, 409, 201, 429, 201, 503, 201
        let (reason, _) = retry(dest.send(&records));
        assert!(reason.contains("refused 2 of 8"), "{reason}");
        assert!(
            reason.contains("seq 4: 429 es_rejected_execution_exception"),
            "{reason}"
        );
        let (reason, _) = retry(dest.send(&records));
        assert!(reason.contains("refused 1 of 8"), "{reason}");
        dest.send(&records).expect("all stored at last");
        let seen = server.seen();
        assert_eq!(seen.stored.len(), 8);
        assert!(
            seen.stored
                .keys()
                .all(|k| records.iter().any(|r| &id(r) == k))
        );
        Ok(())
    }

    #[test]
    fn a_rejected_item_stops_naming_its_seq_and_reason() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::elastic();
        let records = batch(30)[20..26].to_vec();
        server
            .seen()
            .item_faults
            .insert(id(&records[2]), VecDeque::from([400]));
        server
            .seen()
            .item_faults
            .insert(id(&records[4]), VecDeque::from([429]));
        let mut dest = open(&url(&server, ""), &options(dir.path(), None))?;
        let message = fatal(dest.send(&records));
        assert!(
            message.contains("rejected record seq 22 (400 document_parsing_exception"),
            "{message}"
        );
        assert!(
            message.contains("failed to parse field [latency_ms]"),
            "{message}"
        );
        Ok(())
    }

    #[test]
    fn a_throttled_or_failing_request_is_retried_after_retry_after() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::elastic();
        server
            .seen()
            .faults
            .extend([Fault::too_many(4), Fault::bad_gateway()]);
        let mut dest = open(&url(&server, ""), &options(dir.path(), None))?;
        let records = batch(3);
        let (reason, after) = retry(dest.send(&records));
        assert!(reason.contains("answered 429"), "{reason}");
        assert_eq!(after, Some(Duration::from_secs(4)));
        let (reason, after) = retry(dest.send(&records));
        assert!(reason.contains("answered 502"), "{reason}");
        assert_eq!(after, None);
        dest.send(&records).expect("stored");
        assert_eq!(server.seen().stored.len(), 3);
        Ok(())
    }

    #[test]
    fn basic_auth_comes_from_the_url_and_a_wrong_password_stops() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::elastic();
        server.seen().basic = Some("shipper:s3cr:t@pw".to_owned());
        let good = url(&server, "shipper:s3cr%3At%40pw@");
        let mut dest = open(&good, &options(dir.path(), None))?;
        assert!(!dest.describe().contains("s3cr"), "{}", dest.describe());
        dest.send(&batch(2)).expect("authenticated");
        let mut dest = open(
            &url(&server, "shipper:nope-pw@"),
            &options(dir.path(), None),
        )?;
        let message = fatal(dest.send(&batch(2)));
        assert!(
            message.contains("refused the credentials (401"),
            "{message}"
        );
        assert!(!message.contains("nope-pw"), "{message}");
        Ok(())
    }

    #[test]
    fn an_api_key_header_is_sent_as_given() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::elastic();
        server.seen().authorization = Some("ApiKey a2V5OnNlY3JldA==".to_owned());
        let mut opts = options(dir.path(), None);
        opts.headers.push((
            "Authorization".to_owned(),
            "ApiKey a2V5OnNlY3JldA==".to_owned(),
        ));
        open(&url(&server, ""), &opts)?
            .send(&batch(2))
            .expect("authenticated");
        let err = open(&url(&server, "u:p@"), &opts)
            .err()
            .expect("both")
            .to_string();
        assert!(err.contains("not both"), "{err}");
        Ok(())
    }

    #[test]
    fn a_server_down_for_a_while_is_retried_until_it_is_back() -> Result<(), Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server::elastic();
        let mut dest = open(&url(&server, ""), &options(dir.path(), None))?;
        let records = batch(6);
        dest.send(&records[..3]).expect("stored");
        server.stop();
        retry(dest.send(&records[3..]));
        server.restart();
        dest.send(&records[3..]).expect("stored once it is back");
        assert_eq!(server.seen().stored.len(), 6);
        Ok(())
    }

    #[test]
    fn a_bad_index_is_refused_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path(), None);
        for (url, says) in [
            ("elasticsearch+https://es:9200", "name the index"),
            ("elasticsearch+https://es:9200/Audit", "lowercase"),
            ("elasticsearch+https://es:9200/_audit", "cannot be"),
            ("elasticsearch+https://es:9200/a%20b", "without spaces"),
            (
                "elasticsearch+https://es:9200/audit?refresh=true",
                "unknown parameter",
            ),
        ] {
            let err = open(url, &opts).err().expect(url).to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
        assert!(open("elasticsearch+https://es:9200/proxy/audit-1", &opts).is_ok());
        assert!(open("OpenSearch+HTTPS://es:9200/audit", &opts).is_ok());
    }
}
