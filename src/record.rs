//! The record model (SPEC §3): [`Event`], what a caller hands the writer, and
//! [`RecordView`], what a reader borrows out of a stored line.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use serde_json::{Map, Value};

use crate::chain::{DEFAULT_SOURCE, FIELD_ORDER, SCHEMA_VERSION};
use crate::redact::Redactor;
use crate::taxonomy::Taxonomy;
use crate::{Error, Result};

/// One event to append. Every field is optional; the writer fills `event_id`, `timestamp`,
/// `schema_version`, `source`, `shard`, `action_category` and `resource` when they are absent
/// (and `action` = `mcp_call` for an event with a `tool` but no action), and always sets `seq`
/// and `prev_hash` itself.
///
/// ```
/// use nexus_audit::Event;
/// let event = Event::new("mcp_call")
///     .tool("workday_get_worker")
///     .user("alice@example.com")
///     .server("workday-mcp")
///     .status_success()
///     .latency_ms(42)
///     .args(serde_json::json!({"worker_id": "W123", "api_key": "will be redacted"}));
/// assert_eq!(event.tool.as_deref(), Some("workday_get_worker"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[allow(missing_docs)]
pub struct Event {
    pub event_id: Option<String>,
    pub timestamp: Option<String>,
    pub schema_version: Option<String>,
    pub source: Option<String>,
    pub level: Option<String>,
    pub action: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
    pub server_id: Option<String>,
    pub tool: Option<String>,
    pub shard: Option<String>,
    pub action_category: Option<String>,
    pub resource: Option<String>,
    pub args_summary: Option<Value>,
    pub details: Option<Value>,
    pub status: Option<String>,
    pub latency_ms: Option<u64>,
    pub response_size: Option<u64>,
    pub filtered_size: Option<u64>,
    pub reduction_percent: Option<i64>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub mock_mode: Option<bool>,
    /// Caller-supplied top-level fields beyond the standard ones, redacted like `details`.
    pub extra: Map<String, Value>,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident => $field:ident;)*) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.$field = Some(value.into());
            self
        }
    )*};
}

impl Event {
    /// A new event with the given `action` (`mcp_call`, `server_start`, …).
    #[must_use]
    pub fn new(action: impl Into<String>) -> Self {
        Event {
            action: Some(action.into()),
            ..Event::default()
        }
    }

    setters! {
        /// Sets `tool`.
        tool => tool;
        /// Sets `user_id`.
        user => user_id;
        /// Sets `server_id`.
        server => server_id;
        /// Sets `session_id`.
        session => session_id;
        /// Sets `correlation_id`.
        correlation => correlation_id;
        /// Sets `resource`.
        resource => resource;
        /// Sets `level`.
        level => level;
        /// Sets `status`.
        status => status;
        /// Sets `error_type`.
        error_type => error_type;
        /// Sets `error_message` (sanitised when written).
        error_message => error_message;
        /// Sets `shard`.
        shard => shard;
        /// Sets `action_category`.
        category => action_category;
        /// Sets `source`.
        source => source;
    }

    /// Sets `status` to `success`.
    #[must_use]
    pub fn status_success(self) -> Self {
        self.status("success")
    }

    /// Sets `status` to `error`, with the error's class and message.
    #[must_use]
    pub fn failed(self, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        self.status("error")
            .error_type(error_type)
            .error_message(message)
    }

    /// Sets `latency_ms`.
    #[must_use]
    pub fn latency_ms(mut self, ms: u64) -> Self {
        self.latency_ms = Some(ms);
        self
    }

    /// Sets `args_summary` (redacted when written).
    #[must_use]
    pub fn args(mut self, args: Value) -> Self {
        self.args_summary = Some(args);
        self
    }

    /// Sets `details` (redacted when written).
    #[must_use]
    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Sets `response_size` and `filtered_size`.
    #[must_use]
    pub fn sizes(mut self, response: u64, filtered: u64) -> Self {
        self.response_size = Some(response);
        self.filtered_size = Some(filtered);
        self
    }

    /// Sets `mock_mode`.
    #[must_use]
    pub fn mock(mut self, mock: bool) -> Self {
        self.mock_mode = Some(mock);
        self
    }

    /// Builds an event from a JSON object that uses the record's field names. `seq` and
    /// `prev_hash` are ignored (the writer sets them); unknown fields go to [`Event::extra`];
    /// `null` counts as absent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] when the value is not an object or a standard field has the
    /// wrong type.
    pub fn from_json(value: Value) -> Result<Self> {
        match value {
            Value::Object(map) => Self::from_map(map),
            other => Err(Error::InvalidEvent(format!(
                "expected a JSON object, found {}",
                json_kind(&other)
            ))),
        }
    }

    /// Parses one JSON object from text; see [`Event::from_json`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] when the text is not one JSON object with well-typed fields.
    pub fn from_json_str(text: &str) -> Result<Self> {
        // Fast path: fields go straight into the event, without building a map of the top
        // level first. Any failure is re-done on the slow path, which words the error.
        let mut e = Event::default();
        let mut field_error = None;
        let mut de = serde_json::Deserializer::from_str(text);
        let fast = serde::Deserializer::deserialize_map(
            &mut de,
            Fields {
                event: &mut e,
                error: &mut field_error,
            },
        )
        .and_then(|()| de.end());
        if let Some(err) = field_error {
            return Err(err);
        }
        if fast.is_ok() {
            return Ok(e);
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::InvalidEvent(format!("not valid JSON: {e}")))?;
        Self::from_json(value)
    }

    fn from_map(map: Map<String, Value>) -> Result<Self> {
        let mut e = Event::default();
        for (key, value) in map {
            e.set_field(Cow::Owned(key), value)?;
        }
        Ok(e)
    }

    /// Sets one field from its JSON value; `null` clears it.
    fn set_field(&mut self, key: Cow<'_, str>, value: Value) -> Result<()> {
        let e = self;
        let slot = match &*key {
            "seq" | "prev_hash" => return Ok(()),
            "event_id" => &mut e.event_id,
            "timestamp" => &mut e.timestamp,
            "schema_version" => &mut e.schema_version,
            "source" => &mut e.source,
            "level" => &mut e.level,
            "action" => &mut e.action,
            "user_id" => &mut e.user_id,
            "session_id" => &mut e.session_id,
            "correlation_id" => &mut e.correlation_id,
            "server_id" => &mut e.server_id,
            "tool" => &mut e.tool,
            "shard" => &mut e.shard,
            "action_category" => &mut e.action_category,
            "resource" => &mut e.resource,
            "status" => &mut e.status,
            "error_type" => &mut e.error_type,
            "error_message" => &mut e.error_message,
            "args_summary" => {
                e.args_summary = Some(value).filter(|v| !v.is_null());
                return Ok(());
            }
            "details" => {
                e.details = Some(value).filter(|v| !v.is_null());
                return Ok(());
            }
            "latency_ms" | "response_size" | "filtered_size" => {
                let n = if value.is_null() {
                    None
                } else {
                    Some(as_u64(&key, &value)?)
                };
                match &*key {
                    "latency_ms" => e.latency_ms = n,
                    "response_size" => e.response_size = n,
                    _ => e.filtered_size = n,
                }
                return Ok(());
            }
            "reduction_percent" => {
                e.reduction_percent = if value.is_null() {
                    None
                } else {
                    Some(
                        value
                            .as_i64()
                            .ok_or_else(|| wrong(&key, "an integer", &value))?,
                    )
                };
                return Ok(());
            }
            "mock_mode" => {
                e.mock_mode = if value.is_null() {
                    None
                } else {
                    Some(
                        value
                            .as_bool()
                            .ok_or_else(|| wrong(&key, "true or false", &value))?,
                    )
                };
                return Ok(());
            }
            _ => {
                if value.is_null() {
                    e.extra.shift_remove(&*key);
                } else {
                    e.extra.insert(key.into_owned(), value);
                }
                return Ok(());
            }
        };
        match value {
            Value::Null => *slot = None,
            Value::String(s) => *slot = Some(s),
            other => return Err(wrong(&key, "a string", &other)),
        }
        Ok(())
    }
}

/// Reads a JSON object's fields into an [`Event`] as they are parsed.
struct Fields<'a> {
    event: &'a mut Event,
    /// A field with the wrong type, worded for the user (serde's message is not).
    error: &'a mut Option<Error>,
}

impl<'de> serde::de::Visitor<'de> for Fields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            let value: Value = map.next_value()?;
            if let Err(err) = self.event.set_field(key, value) {
                *self.error = Some(err);
                return Err(serde::de::Error::custom("field of the wrong type"));
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

fn as_u64(key: &str, value: &Value) -> Result<u64> {
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    match value.as_f64() {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked to be a finite, non-negative value within u64's range"
        )]
        Some(f) if f.is_finite() && (0.0..1.8e19).contains(&f) => Ok(f.round() as u64),
        _ => Err(wrong(key, "a non-negative integer", value)),
    }
}

fn wrong(key: &str, expected: &str, value: &Value) -> Error {
    Error::InvalidEvent(format!(
        "field `{key}` must be {expected}, found {}",
        json_kind(value)
    ))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the writer needs to turn an [`Event`] into the body of a line.
#[derive(Clone, Debug)]
pub(crate) struct Encoder {
    pub redactor: Redactor,
    pub taxonomy: Taxonomy,
    pub source: String,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            redactor: Redactor::default(),
            taxonomy: Taxonomy::default(),
            source: DEFAULT_SOURCE.to_owned(),
        }
    }
}

impl Encoder {
    /// Redacts and serialises an event into the part of a line that follows the chain prefix:
    /// `"event_id":…}` (no LF). The result does not depend on the log's head, so it is built
    /// outside the lock.
    pub(crate) fn encode(&self, mut e: Event) -> Result<Vec<u8>> {
        let r = &self.redactor;
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

        let event_id = match e.event_id.take() {
            Some(id) => r.redact_str(&id).into_owned(),
            None => new_event_id(),
        };
        key(&mut out, "event_id");
        write_str(&mut out, &event_id);

        let timestamp = match &e.timestamp {
            Some(t) => normalize_timestamp(t)?,
            None => format_timestamp(Utc::now()),
        };
        key(&mut out, "timestamp");
        write_str(&mut out, &timestamp);

        key(&mut out, "schema_version");
        write_str(
            &mut out,
            e.schema_version.as_deref().unwrap_or(SCHEMA_VERSION),
        );
        key(&mut out, "source");
        write_str(
            &mut out,
            &r.redact_str(e.source.as_deref().unwrap_or(&self.source)),
        );

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

        for (name, value) in [
            ("level", &e.level),
            ("action", &e.action),
            ("user_id", &e.user_id),
            ("session_id", &e.session_id),
            ("correlation_id", &e.correlation_id),
            ("server_id", &e.server_id),
            ("tool", &e.tool),
            ("shard", &e.shard),
            ("action_category", &e.action_category),
            ("resource", &e.resource),
        ] {
            if let Some(v) = value {
                key(&mut out, name);
                write_str(&mut out, &r.redact_str(v));
            }
        }
        for (name, value) in [
            ("args_summary", e.args_summary.take()),
            ("details", e.details.take()),
        ] {
            if let Some(mut v) = value {
                r.redact_value(&mut v);
                key(&mut out, name);
                write_value(&mut out, &v);
            }
        }
        if let Some(v) = &e.status {
            key(&mut out, "status");
            write_str(&mut out, &r.redact_str(v));
        }
        for (name, value) in [
            ("latency_ms", e.latency_ms),
            ("response_size", e.response_size),
            ("filtered_size", e.filtered_size),
        ] {
            if let Some(n) = value {
                key(&mut out, name);
                out.extend_from_slice(crate::chain::itoa_u64(n, &mut [0; 20]));
            }
        }
        if let Some(n) = e.reduction_percent {
            key(&mut out, "reduction_percent");
            out.extend_from_slice(n.to_string().as_bytes());
        }
        if let Some(v) = &e.error_type {
            key(&mut out, "error_type");
            write_str(&mut out, &r.redact_str(v));
        }
        if let Some(v) = &e.error_message {
            key(&mut out, "error_message");
            write_str(&mut out, &r.sanitize_error_message(v));
        }
        if let Some(b) = e.mock_mode {
            key(&mut out, "mock_mode");
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
        // NOTE: the extra fields are redacted as one object, so that the key rule, the pair
        // rules and the rewriting of keys that hold secrets (which keeps keys distinct) apply
        // to them as to any object.
        let mut extra = e.extra;
        extra.retain(|name, _| !FIELD_ORDER.contains(&name.as_str()));
        let mut extra = Value::Object(extra);
        r.redact_value(&mut extra);
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

/// `round((1 - filtered / response) * 100)`.
#[must_use]
pub fn reduction_percent(response: u64, filtered: u64) -> i64 {
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        reason = "byte counts far below 2^52; the result is a small percentage"
    )]
    let pct = ((1.0 - filtered as f64 / response as f64) * 100.0).round() as i64;
    pct
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // NOTE: serialising a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    // NOTE: serialising a Value into a Vec cannot fail: it holds no non-string map keys.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Formats a time as the format's timestamp: RFC 3339 UTC with microseconds and `Z`.
#[must_use]
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    // Every record without a timestamp passes here: digits by hand, not through `fmt`.
    fn digits(out: &mut [u8], mut n: u32) {
        for d in out.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let Some(year) = u32::try_from(t.year()).ok().filter(|y| *y <= 9999) else {
        let mut s = String::with_capacity(32);
        let _ = write!(
            s,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond().min(999_999_999) / 1000
        );
        return s;
    };
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut b[0..4], year);
    digits(&mut b[5..7], t.month());
    digits(&mut b[8..10], t.day());
    digits(&mut b[11..13], t.hour());
    digits(&mut b[14..16], t.minute());
    digits(&mut b[17..19], t.second());
    digits(&mut b[20..26], t.nanosecond().min(999_999_999) / 1000);
    b.iter().map(|&c| char::from(c)).collect()
}

/// A new random (v4) `event_id`.
///
/// The bytes come from a per-thread pool of operating-system randomness refilled 4 KiB at a
/// time, so a batch of records costs one `getrandom` call per 256 ids, not one each. The pool
/// belongs to the process that filled it: a forked child refills its own before using it, so
/// two processes never hand out the same id.
pub(crate) fn new_event_id() -> String {
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
        let pid = std::process::id();
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
    let mut buf = uuid::Uuid::encode_buffer();
    uuid.hyphenated().encode_lower(&mut buf).to_owned()
}

/// Parses a timestamp as stored by this or the old logger: RFC 3339 with any offset, or a
/// date-time without offset (taken as UTC).
#[must_use]
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

fn normalize_timestamp(s: &str) -> Result<String> {
    parse_timestamp(s)
        .map(format_timestamp)
        .ok_or_else(|| Error::InvalidEvent(format!("`timestamp` is not an RFC 3339 time: {s:?}")))
}

/// The fields of a stored record that readers filter, count and display, borrowed from the
/// line where no unescaping is needed. Unknown fields are skipped; `null` reads as absent.
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct RecordView<'a> {
    pub seq: Option<u64>,
    pub timestamp: Option<Cow<'a, str>>,
    pub action: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    pub session_id: Option<Cow<'a, str>>,
    pub server_id: Option<Cow<'a, str>>,
    pub tool: Option<Cow<'a, str>>,
    pub shard: Option<Cow<'a, str>>,
    pub action_category: Option<Cow<'a, str>>,
    pub resource: Option<Cow<'a, str>>,
    pub status: Option<Cow<'a, str>>,
    pub error_type: Option<Cow<'a, str>>,
    pub error_message: Option<Cow<'a, str>>,
    pub latency_ms: Option<f64>,
    pub mock_mode: Option<bool>,
}

/// A line that is not shaped like a JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the line is not a JSON object")]
pub struct NotARecord;

impl<'a> RecordView<'a> {
    /// Reads the fields readers need out of one line, borrowing strings without escapes.
    /// Other fields, and nested values, are skipped without being decoded; a field of an
    /// unexpected type reads as absent.
    ///
    /// # Errors
    ///
    /// [`NotARecord`] when the line is not shaped like one JSON object.
    pub fn parse(line: &'a [u8]) -> Result<Self, NotARecord> {
        let mut v = RecordView::default();
        crate::json::for_each_field(line, |key, raw| {
            use crate::json::Raw;
            let text = || raw.text();
            match key {
                b"seq" => {
                    v.seq = match raw {
                        Raw::Num(n) => std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()),
                        _ => None,
                    };
                }
                b"timestamp" => v.timestamp = text(),
                b"action" => v.action = text(),
                b"user_id" => v.user_id = text(),
                b"session_id" => v.session_id = text(),
                b"server_id" => v.server_id = text(),
                b"tool" => v.tool = text(),
                b"shard" => v.shard = text(),
                b"action_category" => v.action_category = text(),
                b"resource" => v.resource = text(),
                b"status" => v.status = text(),
                b"error_type" => v.error_type = text(),
                b"error_message" => v.error_message = text(),
                b"latency_ms" => {
                    v.latency_ms = match raw {
                        Raw::Num(n) => std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()),
                        _ => None,
                    };
                }
                b"mock_mode" => {
                    v.mock_mode = match raw {
                        Raw::Bool(b) => Some(b),
                        _ => None,
                    };
                }
                _ => {}
            }
        })
        .map_err(|()| NotARecord)?;
        Ok(v)
    }

    /// `latency_ms` as a whole number of milliseconds, when present and non-negative.
    #[must_use]
    pub fn latency(&self) -> Option<u64> {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked non-negative and finite; latencies are far below 2^53"
        )]
        self.latency_ms
            .filter(|l| l.is_finite() && *l >= 0.0)
            .map(|l| l.round() as u64)
    }

    /// The resource shown in tables: `resource`, else `server_id:tool`, else the tool.
    #[must_use]
    pub fn display_resource(&self) -> Cow<'_, str> {
        if let Some(r) = &self.resource {
            return Cow::Borrowed(r);
        }
        match (&self.server_id, &self.tool) {
            (Some(s), Some(t)) => Cow::Owned(format!("{s}:{t}")),
            (None, Some(t)) => Cow::Borrowed(t),
            (Some(s), None) => Cow::Borrowed(s),
            (None, None) => Cow::Borrowed(""),
        }
    }

    /// True when `status` is `error` (or the old logger's `failure`).
    #[must_use]
    pub fn is_error(&self) -> bool {
        matches!(self.status.as_deref(), Some("error" | "failure" | "failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn caller_timestamps_are_normalised_to_utc_microseconds() {
        let v = encode(Event {
            timestamp: Some("2026-11-22T10:05:04.5+01:00".into()),
            ..Event::default()
        });
        assert_eq!(v["timestamp"], "2026-11-22T09:05:04.500000Z");
    }

    #[test]
    fn from_json_rejects_wrong_types_and_keeps_extras() {
        let err = Event::from_json(json!({"tool": 5})).expect_err("tool must be a string");
        assert!(err.to_string().contains("`tool` must be a string"));
        let e = Event::from_json(json!({"tool": "x", "seq": 9, "team": "blue"})).expect("ok");
        assert_eq!(e.extra.get("team"), Some(&json!("blue")));
        assert!(!e.extra.contains_key("seq"));
        assert!(Event::from_json(json!([1])).is_err());
    }

    #[test]
    fn record_view_borrows_and_tolerates_nulls() {
        let line =
            br#"{"seq":1,"tool":"t","status":null,"latency_ms":12,"args_summary":{"a":[1]}}"#;
        let v = RecordView::parse(line).expect("parse");
        assert!(matches!(v.tool, Some(Cow::Borrowed("t"))));
        assert_eq!(v.status, None);
        assert_eq!(v.latency(), Some(12));
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

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

    #[test]
    fn timestamps_are_formatted_like_rfc3339_with_microseconds() {
        let t = DateTime::parse_from_rfc3339("2026-03-04T05:06:07.089123456Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(format_timestamp(t), "2026-03-04T05:06:07.089123Z");
        let t = DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(format_timestamp(t), "0001-01-01T00:00:00.000000Z");
    }

    /// The streaming parse gives the same event as parsing to a map first.
    #[test]
    fn from_json_str_agrees_with_from_json() {
        for text in [
            r#"{"tool":"a","user_id":"u","latency_ms":5,"args_summary":{"b":1,"a":[2]}}"#,
            r#"{"tool":"a","tool":null}"#,
            r#"{"tool":null,"tool":"b"}"#,
            r#"{"x":1,"y":{"z":null},"x":null}"#,
            r#"{"t\u006fol":"escaped key","seq":7,"prev_hash":"zz"}"#,
            r#"{"mock_mode":true,"reduction_percent":-3,"response_size":1.0}"#,
            r#"{}"#,
        ] {
            let slow = Event::from_json(serde_json::from_str(text).expect("JSON")).expect("slow");
            let fast = Event::from_json_str(text).expect("fast");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text}");
        }
        for (text, says) in [
            (r#"{"tool":5}"#, "`tool` must be a string"),
            (
                r#"{"latency_ms":"slow"}"#,
                "`latency_ms` must be a non-negative integer",
            ),
            ("[1]", "expected a JSON object, found an array"),
            (r#"{"tool":"#, "not valid JSON"),
            (r#"{"tool":"a"} x"#, "not valid JSON"),
        ] {
            let err = Event::from_json_str(text).expect_err(text).to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
