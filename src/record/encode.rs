//! Encoding an [`Event`] into the body of a line: defaults, inference, redaction and the
//! format's field order, plus the record's random ids.

use std::borrow::Cow;

use chrono::Utc;
use serde_json::Value;

use super::{Event, SlotMut};
use crate::chain::{DEFAULT_SOURCE, FIELDS, SCHEMA_VERSION, Stored};
use crate::error::{Error, Result};
use crate::redact::Redactor;
use crate::taxonomy::Taxonomy;
use crate::time::{format_timestamp, parse_timestamp};

/// What the writer needs to turn an [`Event`] into the body of a line.
#[derive(Clone, Debug)]
pub(crate) struct Encoder {
    pub(super) redactor: Redactor,
    pub(super) taxonomy: Taxonomy,
    pub(super) source: String,
    /// Tells encoders apart (a clone, with the same rules, shares it): what the fast path
    /// remembers of one encoder's redactor is not used with another's.
    pub(super) id: u64,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new(
            Redactor::default(),
            Taxonomy::default(),
            DEFAULT_SOURCE.to_owned(),
        )
    }
}

impl Encoder {
    /// The redactor every record goes through.
    pub(crate) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// An encoder that redacts with `redactor`, infers shards and categories from `taxonomy`,
    /// and writes `source` for an event that has none.
    pub(crate) fn new(redactor: Redactor, taxonomy: Taxonomy, source: String) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Encoder {
            redactor,
            taxonomy,
            source,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Redacts and serialises an event into the part of a line that follows the chain prefix:
    /// `"event_id":…}` (no LF). The result does not depend on the log's head, so it is built
    /// outside the lock.
    pub(crate) fn encode(&self, e: Event) -> Result<Vec<u8>> {
        self.encode_with(e, Some(&self.redactor))
    }

    /// Serialises a record the writer makes itself (a seal) like [`Encoder::encode`], but
    /// without redaction: its values are the writer's, not a caller's, and a redaction rule
    /// that matched a MAC's hex would break the seal.
    pub(crate) fn encode_own(&self, e: Event) -> Result<Vec<u8>> {
        self.encode_with(e, None)
    }

    /// Fills the fields the writer infers when they are absent: `level`, `action`, `shard`,
    /// `action_category`, `resource` and `reduction_percent`.
    fn infer(&self, e: &mut Event) {
        if e.level.is_none() {
            // SIEM dashboards filter on `level`: every record has one.
            let failed = e.status.as_deref() == Some("error");
            e.level = Some(if failed { "error" } else { "info" }.to_owned());
        }
        if e.action.is_none() && e.tool.is_some() {
            e.action = Some("mcp_call".to_owned());
        }
        if e.shard.is_none() {
            e.shard = e
                .tool
                .as_deref()
                .map(|t| self.taxonomy.shard_for(t).to_owned());
        }
        if e.action_category.is_none() {
            e.action_category = e
                .tool
                .as_deref()
                .map(|t| self.taxonomy.category_for(t).to_owned());
        }
        if e.resource.is_none() {
            e.resource = e
                .tool
                .as_deref()
                .map(|t| format!("{}:{t}", e.server_id.as_deref().unwrap_or("unknown")));
        }
        if e.reduction_percent.is_none()
            && let (Some(resp), Some(filt)) = (e.response_size, e.filtered_size)
            && resp > 0
        {
            e.reduction_percent = Some(reduction_percent(resp, filt));
        }
    }

    /// The body of a line: each field of [`FIELDS`] in its order, stored as the table says,
    /// then the extra fields; redacted with `redactor`, if given.
    fn encode_with(&self, mut e: Event, redactor: Option<&Redactor>) -> Result<Vec<u8>> {
        self.infer(&mut e);
        // Typical records are 500–900 bytes: one allocation, no regrowth.
        let mut out = Vec::with_capacity(1024);
        let mut first = true;
        let mut key = |out: &mut Vec<u8>, name: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
        };
        for field in FIELDS {
            let name = field.name;
            match (field.stored, e.slot_mut(field.id)) {
                (Stored::Chain, _) => {}
                (Stored::Version, _) => {
                    key(&mut out, name);
                    write_str(&mut out, SCHEMA_VERSION);
                }
                (Stored::IdOrNew, SlotMut::Text(id)) => {
                    key(&mut out, name);
                    match id {
                        Some(id) => write_str(&mut out, &redacted(redactor, id)),
                        None => write_str(&mut out, &new_event_id()),
                    }
                }
                (Stored::TimeOrNow, SlotMut::Text(time)) => {
                    let time = match time {
                        Some(t) => normalize_timestamp(t)?,
                        None => format_timestamp(Utc::now()),
                    };
                    key(&mut out, name);
                    write_str(&mut out, &time);
                }
                (Stored::SourceOrDefault, SlotMut::Text(source)) => {
                    let source = source.as_deref().unwrap_or(&self.source);
                    key(&mut out, name);
                    write_str(&mut out, &redacted(redactor, source));
                }
                (Stored::Sanitized, SlotMut::Text(Some(text))) => {
                    key(&mut out, name);
                    match redactor {
                        Some(r) => write_str(&mut out, &r.sanitize_error_message(text)),
                        None => write_str(&mut out, text),
                    }
                }
                (_, SlotMut::Text(Some(text))) => {
                    key(&mut out, name);
                    write_str(&mut out, &redacted(redactor, text));
                }
                (_, SlotMut::Json(value)) => {
                    if let Some(mut v) = value.take() {
                        if let Some(r) = redactor {
                            r.redact_value(&mut v);
                        }
                        normalize_numbers(&mut v);
                        key(&mut out, name);
                        write_value(&mut out, &v);
                    }
                }
                (_, SlotMut::Count(Some(n))) => {
                    key(&mut out, name);
                    out.extend_from_slice(crate::chain::itoa_u64(*n, &mut [0; 20]));
                }
                (_, SlotMut::Signed(Some(n))) => {
                    key(&mut out, name);
                    out.extend_from_slice(n.to_string().as_bytes());
                }
                (_, SlotMut::Flag(Some(b))) => {
                    key(&mut out, name);
                    out.extend_from_slice(if *b { b"true" } else { b"false" });
                }
                _ => {}
            }
        }
        // NOTE: the extra fields are redacted as one object, so that the key rule, the pair
        // rules and the rewriting of keys that hold secrets (which keeps keys distinct) apply
        // to them as to any object.
        let mut extra = e.extra;
        extra.retain(|name, _| crate::chain::field(name).is_none());
        let mut extra = Value::Object(extra);
        if let Some(r) = redactor {
            r.redact_value(&mut extra);
        }
        normalize_numbers(&mut extra);
        for (name, value) in extra.as_object().into_iter().flatten() {
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(&mut out, name);
            out.push(b':');
            write_value(&mut out, value);
        }
        out.push(b'}');
        Ok(out)
    }
}

/// `text`, redacted by `redactor` if there is one.
fn redacted<'a>(redactor: Option<&Redactor>, text: &'a str) -> Cow<'a, str> {
    match redactor {
        Some(r) => r.redact_str(text),
        None => Cow::Borrowed(text),
    }
}

/// `round((1 - filtered / response) * 100)`.
#[must_use]
pub fn reduction_percent(response: u64, filtered: u64) -> i64 {
    ((1.0 - filtered as f64 / response as f64) * 100.0).round() as i64
}

/// Gives every number in `v` the text the writer stores for it.
///
/// `serde_json` is built with `arbitrary_precision`, so a parsed number keeps its text. Integers
/// keep it: JSON integers have no leading zeros or plus sign, so the text is exact and the
/// shortest, and one beyond 64 bits is stored digit for digit instead of rounded to an `f64`.
/// A float is stored as it always was: the `f64` `serde_json` parses, in its shortest form
/// (`1.50` as `1.5`, `1e5` as `100000.0`, `-0` as `-0.0`). One beyond the range of `f64`,
/// which could not be stored at all before, keeps its text.
fn normalize_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(stored) = stored_number(n) {
                *n = stored;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_numbers),
        Value::Object(map) => map.values_mut().for_each(normalize_numbers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// The number to store for `n` when it differs from `n`'s text (see [`normalize_numbers`]).
fn stored_number(n: &serde_json::Number) -> Option<serde_json::Number> {
    let text = n.as_str();
    if !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return if text == "-0" {
            serde_json::Number::from_f64(-0.0)
        } else {
            None
        };
    }
    // NOTE: serde_json's own float parser, not `str::parse`: they can differ in the last bit,
    // and the stored bytes must stay what they were.
    let f: f64 = serde_json::from_str(text).ok()?;
    serde_json::Number::from_f64(f).filter(|m| m.as_str() != text)
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // NOTE: serialising a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    // NOTE: serialising a Value into a Vec cannot fail: it holds no non-string map keys.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// A new random (v4) `event_id`.
pub(crate) fn new_event_id() -> String {
    let mut buf = [0; 36];
    event_id_into(std::process::id(), &mut buf);
    // NOTE: the buffer holds ASCII only.
    buf.iter().map(|&c| char::from(c)).collect()
}

/// Writes a new random (v4) `event_id` into `buf`, lowercase and hyphenated, for the process
/// whose id is `pid`.
///
/// The bytes come from a per-thread pool of operating-system randomness refilled 4 KiB at a
/// time, so a batch of records costs one `getrandom` call per 256 ids, not one each. The pool
/// belongs to the process that filled it: the caller gives the process id (a batch asks for it
/// once, not once per record: it is a system call), and a pool filled under another id (by the
/// parent of a forked child) is refilled before use, so two processes never hand out the same id.
pub(crate) fn event_id_into(pid: u32, buf: &mut [u8; 36]) {
    use std::cell::RefCell;
    const POOL: usize = 4096;
    struct Pool {
        bytes: [u8; POOL],
        used: usize,
        pid: u32,
    }
    thread_local! {
        static RANDOM: RefCell<Pool> = const {
            RefCell::new(Pool { bytes: [0; POOL], used: POOL, pid: 0 })
        };
    }
    let bytes = RANDOM.with_borrow_mut(|pool| {
        if pool.used + 16 > POOL || pool.pid != pid {
            getrandom::fill(&mut pool.bytes).ok()?;
            pool.used = 0;
            pool.pid = pid;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&pool.bytes[pool.used..pool.used + 16]);
        // Used bytes are not kept: an id is not a secret, but there is no reason to keep it.
        pool.bytes[pool.used..pool.used + 16].fill(0);
        pool.used += 16;
        Some(id)
    });
    let uuid = match bytes {
        Some(b) => uuid::Builder::from_random_bytes(b).into_uuid(),
        None => uuid::Uuid::new_v4(),
    };
    uuid.hyphenated().encode_lower(buf);
}

fn normalize_timestamp(s: &str) -> Result<String> {
    parse_timestamp(s)
        .map(format_timestamp)
        .ok_or_else(|| Error::InvalidEvent(format!("`timestamp` is not an RFC 3339 time: {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::FIELD_ORDER;

    fn encode(e: Event) -> Value {
        let body = Encoder::default().encode(e).expect("encode");
        let mut line = b"{\"seq\":0,\"prev_hash\":\"x\",".to_vec();
        line.extend_from_slice(&body);
        serde_json::from_slice(&line).expect("valid json")
    }

    #[test]
    fn encoder_fills_defaults_and_infers_shard_category_resource() {
        let v = encode(
            Event::new("mcp_call")
                .tool("audit_log_stats")
                .server("nexus"),
        );
        assert_eq!(v["schema_version"], "1");
        assert_eq!(v["source"], "nexus-mcp");
        assert_eq!(v["shard"], "audit");
        assert_eq!(v["action_category"], "AUDIT");
        assert_eq!(v["resource"], "nexus:audit_log_stats");
        assert_eq!(v["event_id"].as_str().map(str::len), Some(36));
        let ts = v["timestamp"].as_str().expect("timestamp");
        assert_eq!(ts.len(), 27, "{ts}");
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn encoder_emits_fields_in_the_documented_order() {
        let v = Event::new("mcp_call")
            .tool("t")
            .user("u")
            .status_success()
            .latency_ms(3)
            .sizes(200, 50)
            .mock(true);
        let body = Encoder::default().encode(v).expect("encode");
        let text = String::from_utf8(body).expect("utf8");
        let positions: Vec<usize> = FIELD_ORDER[2..]
            .iter()
            .filter_map(|f| text.find(&format!("\"{f}\":")))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains("\"reduction_percent\":75"), "{text}");
    }

    /// Every field a caller can give, set by its name, is stored under that name, and a full
    /// record has every field of the table, in the table's order.
    #[test]
    fn every_field_set_by_name_is_stored_under_that_name_in_the_table_order() {
        use crate::chain::Kind;
        use serde_json::json;
        let mut e = Event::default();
        for f in FIELDS {
            let value = match f.kind {
                Kind::Text if f.name == "timestamp" => json!("2026-01-02T03:04:05.000006Z"),
                Kind::Text => json!(format!("v-{}", f.name)),
                Kind::Json => json!({"k": f.name}),
                Kind::Count => json!(7),
                Kind::Signed => json!(-3),
                Kind::Flag => json!(true),
            };
            e.set_field(f.name, value).expect(f.name);
        }
        let v = encode(e);
        let object = v.as_object().expect("an object");
        assert_eq!(object.keys().collect::<Vec<_>>(), FIELD_ORDER);
        for f in FIELDS {
            let expected = match (f.stored, f.kind) {
                (Stored::Chain, _) => continue,
                (Stored::Version, _) => json!(SCHEMA_VERSION),
                (_, Kind::Text) if f.name == "timestamp" => json!("2026-01-02T03:04:05.000006Z"),
                (_, Kind::Text) => json!(format!("v-{}", f.name)),
                (_, Kind::Json) => json!({"k": f.name}),
                (_, Kind::Count) => json!(7),
                (_, Kind::Signed) => json!(-3),
                (_, Kind::Flag) => json!(true),
            };
            assert_eq!(object[f.name], expected, "{}", f.name);
        }
    }

    #[test]
    fn caller_timestamps_are_normalised_to_utc_microseconds() {
        let v = encode(Event {
            timestamp: Some("2026-11-22T10:05:04.5+01:00".into()),
            ..Event::default()
        });
        assert_eq!(v["timestamp"], "2026-11-22T09:05:04.500000Z");
    }

    #[test]
    fn event_ids_are_unique_v4_uuids() {
        let ids: std::collections::HashSet<String> = (0..2000).map(|_| new_event_id()).collect();
        assert_eq!(ids.len(), 2000);
        for id in ids.iter().take(50) {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id, &u.hyphenated().to_string(), "lowercase, hyphenated");
        }
    }
}
