//! The webhook destination: `webhook+https://host/path` (`webhook+http://` for tests).
//!
//! Each batch is one `POST` of a JSON array, one object per record:
//! `{"id": "<chain_id>:<seq>", "chain_id", "seq", "hash", "prev_hash", "line", "record"}`,
//! where `line` is the stored line as a JSON string (its SHA-256 is `hash`) and `record` the
//! same line as JSON. It is signed per Standard Webhooks: `webhook-id` (`<chain_id>:<first
//! seq>-<last seq>`, the same on every attempt), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` under the
//! secret). A 2xx answer acknowledges the batch; 408, 425, 429 and 5xx, a timeout or a network
//! error are retried (honouring `Retry-After`); any other answer (a redirect included: none is
//! followed) or a TLS failure stops the shipper.

use std::fmt::Write as _;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::error::{Error, Result};

use super::{Destination, DestinationOptions, SendError, Shipped, mask_url};

/// The most bytes of an error answer quoted in a message.
const QUOTED: usize = 200;

pub(crate) struct Webhook {
    url: String,
    describe: String,
    agent: ureq::Agent,
    secret: Vec<u8>,
    headers: Vec<(String, String)>,
}

pub(crate) fn open(url: &str, opts: &DestinationOptions) -> Result<Box<dyn Destination>> {
    let describe = mask_url(url);
    let http_url = url
        .split_once('+')
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or_default();
    if !(http_url.starts_with("https://") || http_url.starts_with("http://")) {
        return Err(Error::InvalidConfig(format!(
            "--to {describe} is not a webhook URL (webhook+https://host/path)"
        )));
    }
    let Some(secret) = opts.secret.clone().filter(|s| !s.is_empty()) else {
        return Err(Error::InvalidConfig(format!(
            "--to {describe}: a webhook batch is signed; set NEXUS_AUDIT_WEBHOOK_SECRET or --secret-file"
        )));
    };
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build();
    Ok(Box::new(Webhook {
        url: http_url,
        describe,
        agent: ureq::Agent::new_with_config(config),
        secret,
        headers: opts.headers.clone(),
    }))
}

/// The JSON array of a batch.
pub(crate) fn body(batch: &[Shipped]) -> String {
    let mut out = String::from("[");
    for (i, r) in batch.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let line = serde_json::Value::String(r.line.clone()).to_string();
        let _ = write!(
            out,
            "{{\"id\":\"{}:{}\",\"chain_id\":\"{}\",\"seq\":{},\"hash\":\"{}\",\"prev_hash\":\"{}\",\"line\":{line},\"record\":{}}}",
            r.chain_id, r.seq, r.chain_id, r.seq, r.hash, r.prev_hash, r.line
        );
    }
    out.push(']');
    out
}

/// The Standard Webhooks signature header value for `id`, `timestamp` and `body`.
pub(crate) fn signature(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    // NOTE: HMAC takes a key of any length; new_from_slice cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

impl Destination for Webhook {
    fn send(&mut self, batch: &[Shipped]) -> std::result::Result<(), SendError> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        let id = format!("{}:{}-{}", first.chain_id, first.seq, last.seq);
        let body = body(batch);
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(&self.secret, &id, timestamp, &body),
            );
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let mut response = match request.send(body.as_str()) {
            Ok(r) => r,
            Err(e) => {
                let reason = e.to_string().replace(&self.url, &self.describe);
                // NOTE: what the network or the server's state explains is retried; a bad
                // certificate, URL or protocol stops (sending again would fail the same way).
                return Err(match e {
                    ureq::Error::Io(_)
                    | ureq::Error::Timeout(_)
                    | ureq::Error::HostNotFound
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::Protocol(_) => SendError::Retry {
                        reason,
                        after: None,
                    },
                    _ => SendError::Fatal(reason),
                });
            }
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            // NOTE: the answer is read so the connection can be used again.
            let _ = response
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string();
            return Ok(());
        }
        let after = super::http::retry_after(&response);
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 16)
            .read_to_string()
            .unwrap_or_default();
        let quoted: String = text
            .chars()
            .take(QUOTED)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let reason = if quoted.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {}", quoted.trim())
        };
        if matches!(status, 408 | 425 | 429) || status >= 500 {
            Err(SendError::Retry { reason, after })
        } else {
            Err(SendError::Fatal(reason))
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::http::retry_after_value as retry_after;
    use super::*;

    #[test]
    fn the_signature_follows_standard_webhooks() {
        // The example of the Standard Webhooks reference implementation.
        let secret = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_or_default();
        let sig = signature(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
