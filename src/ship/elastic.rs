//! Elasticsearch and `OpenSearch`: `elasticsearch+https://host:9200/INDEX` (`+http` too).
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
    let target = Target::parse(url, "elasticsearch+", &["http", "https"])?;
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
