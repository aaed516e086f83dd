//! The chain rule and the format's constants (SPEC §1–§3), written down once.
//!
//! Every line of a log is one compact JSON object followed by a single LF. A record's first two
//! fields are `seq` and `prev_hash`, in that order:
//!
//! ```text
//! {"seq":0,"prev_hash":"0000…0000","event_id":…}
//! ```
//!
//! - `seq` starts at 0 and grows by one per record.
//! - `prev_hash` is the lowercase hex SHA-256 of the previous line's bytes as stored, without
//!   its LF; for `seq` 0 it is [`GENESIS_HASH_HEX`].
//! - The *head* of a log is `(seq, hash)` of its last complete line.
//!
//! Readers find the chain fields with [`chain_fields`], which reads the writer's fixed prefix
//! without a full parse and falls back to a parse when the fields are elsewhere.

pub mod seal_key;

use sha2::{Digest, Sha256};

/// The value of `schema_version` this crate writes.
pub const SCHEMA_VERSION: &str = "1";

/// The default `source` of a record.
pub const DEFAULT_SOURCE: &str = "nexus-mcp";

/// `prev_hash` of the first record: 32 zero bytes.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// `prev_hash` of the first record, as stored: 64 `0`s.
pub const GENESIS_HASH_HEX: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of a record, in the order the writer stores them (SPEC §3): the one list that
/// [`FIELD_ORDER`], [`FIELDS`], the [`Event`](crate::Event) struct, its decoding and encoding and
/// the command line's flags are made from.
///
/// Each row is `name: kind, stored` (see [`Kind`] and [`Stored`]), then, for a field a caller
/// can give, `event` and its description, and, when `append` has a flag for it, `flag` with the
/// flag's name and help. A macro hands the rows to a macro of the caller's (`$then`), so each
/// user builds what it needs from the same rows.
macro_rules! with_record_fields {
    ($then:ident) => {
        $then! {
            seq: Count, Chain;
            prev_hash: Text, Chain;
            event_id: Text, IdOrNew,
                event "Unique id of the record: a random v4 UUID when absent.";
            timestamp: Text, TimeOrNow,
                event "When the event happened, RFC 3339: stored in UTC with microseconds; the time of the append when absent.",
                flag "timestamp" "RFC 3339 time of the event [default: now]";
            schema_version: Text, Version;
            source: Text, SourceOrDefault,
                event "The emitting system: the log's default (`nexus-mcp` unless set) when absent.";
            level: Text, Given,
                event "`info`, `warn` or `error`.",
                flag "level" "info, warn or error";
            action: Text, Given,
                event "What happened: `mcp_call` (the default when a tool is given), `server_start`, `log_recovered`, … or a caller's own.",
                flag "action" "action [default: mcp_call when no --json/--stdin]";
            user_id: Text, Given,
                event "Who made the call.",
                flag "user" "Who made the call (user_id)";
            session_id: Text, Given,
                event "The session the call belongs to.",
                flag "session" "session_id";
            correlation_id: Text, Given,
                event "The request chain the call belongs to.",
                flag "correlation" "correlation_id";
            server_id: Text, Given,
                event "The MCP server.",
                flag "server" "MCP server (server_id)";
            tool: Text, Given,
                event "The MCP tool, e.g. `workday_get_worker`.",
                flag "tool" "MCP tool name (e.g. workday_get_worker)";
            shard: Text, Given,
                event "The domain: inferred from the tool's prefix when absent.",
                flag "shard" "Shard [default: inferred from the tool's prefix]";
            action_category: Text, Given,
                event "`READ`, `WRITE`, `AUDIT`, `REPORT` or `ADMIN`: inferred from the tool's prefix when absent.",
                flag "category" "READ, WRITE, AUDIT, REPORT or ADMIN [default: inferred from the tool's prefix]";
            resource: Text, Given,
                event "What was touched: `<server_id>:<tool>` when absent.",
                flag "resource" "What was touched [default: SERVER:TOOL]";
            args_summary: Json, Given,
                event "The call's arguments (redacted when written).",
                flag "args" "The call's arguments as a JSON object (redacted before writing)";
            details: Json, Given,
                event "Anything else (redacted when written).",
                flag "details" "Anything else as a JSON object (redacted before writing)";
            status: Text, Given,
                event "`success` or `error`.",
                flag "status" "success or error";
            latency_ms: Count, Given,
                event "Wall-clock duration in milliseconds.",
                flag "latency-ms" "Wall-clock duration in milliseconds";
            response_size: Count, Given,
                event "Bytes returned by the upstream.",
                flag "response-size" "Bytes returned by the upstream";
            filtered_size: Count, Given,
                event "Bytes after filtering.",
                flag "filtered-size" "Bytes after filtering";
            reduction_percent: Signed, Given,
                event "`round((1 - filtered/response) * 100)`: computed when absent and `response_size > 0`.";
            error_type: Text, Given,
                event "The exception or error class.",
                flag "error-type" "Error class";
            error_message: Text, Sanitized,
                event "The error's message (sanitised when written: redacted, at most 500 characters).",
                flag "error-message" "Error message (sanitised, at most 500 characters)";
            mock_mode: Flag, Given,
                event "True when no real system was touched.",
                flag "mock" "The call touched no real system";
        }
    };
}
pub(crate) use with_record_fields;

/// How a field's value is written in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// Any JSON value (an object in practice).
    Json,
    /// A non-negative integer.
    Count,
    /// An integer.
    Signed,
    /// `true` or `false`.
    Flag,
}

/// Who sets a field, and what the writer stores for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// `seq` and `prev_hash`: the chain prefix, written under the lock (section 2); a caller's
    /// value is ignored.
    Chain,
    /// `schema_version`: always [`SCHEMA_VERSION`]; a caller's value is ignored.
    Version,
    /// The caller's id, redacted, or a new random one.
    IdOrNew,
    /// The caller's time in the format's shape, or the time of the append.
    TimeOrNow,
    /// The caller's value, redacted, or the log's default.
    SourceOrDefault,
    /// The caller's value: strings and JSON values redacted, numbers and booleans as given.
    Given,
    /// The caller's text, sanitised: redacted, then cut to 500 characters.
    Sanitized,
}

/// A command-line flag that sets a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag {
    /// The flag, without its dashes (`user` for `user_id`).
    pub name: &'static str,
    /// Its help line.
    pub help: &'static str,
}

/// One field of a record (one row of the table above).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Its name in a record.
    pub name: &'static str,
    /// Its JSON type.
    pub kind: Kind,
    /// Who sets it, and how it is stored.
    pub stored: Stored,
    /// What it holds, for a field a caller can give; `None` for the writer's own fields.
    pub about: Option<&'static str>,
    /// The flag of `append` that sets it, if any.
    pub flag: Option<Flag>,
    pub(crate) id: FieldId,
}

/// `Some` of its argument, or `None` without one.
macro_rules! optional {
    () => {
        None
    };
    ($value:expr) => {
        Some($value)
    };
}

macro_rules! field_table {
    ($($name:ident: $kind:ident, $stored:ident
        $(, event $about:literal)? $(, flag $flag:literal $help:literal)?;)*) => {
        /// Names a field of the table; its discriminant is the field's place in [`FIELDS`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(non_camel_case_types, reason = "each variant is the field's name in a record")]
        pub(crate) enum FieldId {
            $($name,)*
        }

        /// Every field of a record, in the order the writer stores them.
        pub const FIELDS: &[Field] = &[$(Field {
            name: stringify!($name),
            kind: Kind::$kind,
            stored: Stored::$stored,
            about: optional!($($about)?),
            flag: optional!($(Flag { name: $flag, help: $help })?),
            id: FieldId::$name,
        },)*];

        /// The order in which the writer stores a record's fields. Caller-supplied extra fields
        /// follow, in the order given.
        pub const FIELD_ORDER: &[&str] = &[$(stringify!($name),)*];

        /// The field called `name`, if the record has one.
        #[must_use]
        pub fn field(name: &str) -> Option<&'static Field> {
            match name {
                $(stringify!($name) => Some(&FIELDS[FieldId::$name as usize]),)*
                _ => None,
            }
        }
    };
}
with_record_fields!(field_table);

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// SHA-256 of one line, without its LF.
#[must_use]
pub fn hash_line(line: &[u8]) -> Hash {
    Sha256::digest(line).into()
}

/// The head of a log: the last complete record's `seq` and the SHA-256 of its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// `seq` of the last record.
    pub seq: u64,
    /// SHA-256 of the last record's line.
    pub hash: Hash,
}

impl Head {
    /// The head's hash as 64 lowercase hex characters.
    #[must_use]
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

/// Decodes 64 lowercase hex characters into a hash. Uppercase is refused: the format is exact.
#[must_use]
pub fn parse_hash_hex(s: &[u8]) -> Option<Hash> {
    /// The value of a lowercase hex digit, or 0xff.
    const fn nibble(b: u8) -> u8 {
        match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => 0xff,
        }
    }
    const NIBBLE: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = nibble(i as u8);
            i += 1;
        }
        t
    };
    // Every line of a log goes through here: one table lookup per digit, one check at the end.
    let s: &[u8; 64] = s.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
        bad |= hi | lo;
        *o = (hi << 4) | lo;
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// The chain fields of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainFields {
    /// The record's `seq`.
    pub seq: u64,
    /// The record's `prev_hash`.
    pub prev_hash: Hash,
}

const SEQ_PREFIX: &[u8] = b"{\"seq\":";
const PREV_PREFIX: &[u8] = b",\"prev_hash\":\"";

/// Reads `seq` and `prev_hash` from the writer's fixed prefix, without parsing the rest.
/// Returns `None` when the line does not start that way (a reader must then parse the line).
#[must_use]
pub fn chain_prefix(line: &[u8]) -> Option<ChainFields> {
    let rest = line.strip_prefix(SEQ_PREFIX)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let seq = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(PREV_PREFIX)?;
    let prev_hash = parse_hash_hex(rest.get(..64)?)?;
    if rest.get(64) != Some(&b'"') {
        return None;
    }
    Some(ChainFields { seq, prev_hash })
}

/// Why a line has no usable chain fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// Not valid UTF-8.
    BadUtf8,
    /// Not valid JSON.
    BadJson,
    /// Valid JSON, but not an object.
    NotObject,
    /// An object without a valid `seq` or `prev_hash`.
    MissingChainFields,
}

/// Finds the chain fields of a line anywhere in the object (the slow path of
/// [`chain_prefix`]), validating the whole line as UTF-8 JSON on the way.
///
/// # Errors
///
/// Says why the line has no chain fields.
pub fn chain_fields(line: &[u8]) -> Result<ChainFields, ChainError> {
    #[derive(serde::Deserialize)]
    struct Fields<'a> {
        seq: Option<serde_json::Value>,
        #[serde(borrow)]
        prev_hash: Option<std::borrow::Cow<'a, str>>,
    }
    let text = std::str::from_utf8(line).map_err(|_| ChainError::BadUtf8)?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| ChainError::BadJson)?;
    if !value.is_object() {
        return Err(ChainError::NotObject);
    }
    let fields: Fields<'_> =
        serde_json::from_str(text).map_err(|_| ChainError::MissingChainFields)?;
    let seq = fields
        .seq
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .ok_or(ChainError::MissingChainFields)?;
    let prev_hash = fields
        .prev_hash
        .as_deref()
        .and_then(|h| parse_hash_hex(h.as_bytes()))
        .ok_or(ChainError::MissingChainFields)?;
    Ok(ChainFields { seq, prev_hash })
}

/// True when `bytes` begin the way every line this writer writes begins, `{"seq":N,"prev_hash":"`,
/// or are a beginning of that (a write torn after a few bytes). The bytes after that prefix are
/// not looked at: a write can be torn anywhere in them.
///
/// The writer uses this on a file with no complete line: such bytes are a torn first record, to
/// be quarantined, while anything else is a file that is not a log, to be left alone.
#[must_use]
pub fn starts_like_a_record(bytes: &[u8]) -> bool {
    let Some(rest) = strip_partial(bytes, SEQ_PREFIX) else {
        return true;
    };
    let Ok(rest) = rest else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == rest.len() {
        // Torn inside the number.
        return digits <= 20 && !(digits > 1 && rest[0] == b'0');
    }
    if digits == 0 || digits > 20 || (digits > 1 && rest[0] == b'0') {
        return false;
    }
    !matches!(strip_partial(&rest[digits..], PREV_PREFIX), Some(Err(())))
}

/// Matches the start of `bytes` against `prefix`: `None` when `bytes` end inside the prefix
/// (and agree with it so far), `Some(Ok(rest))` after a whole prefix, `Some(Err(()))` when they
/// differ.
fn strip_partial<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<Result<&'a [u8], ()>> {
    if bytes.len() < prefix.len() {
        return (!prefix.starts_with(bytes)).then_some(Err(()));
    }
    Some(bytes.strip_prefix(prefix).ok_or(()))
}

/// Writes the chain prefix of a record line: `{"seq":N,"prev_hash":"…",`.
pub fn write_prefix(out: &mut Vec<u8>, seq: u64, prev_hash: &Hash) {
    out.extend_from_slice(SEQ_PREFIX);
    out.extend_from_slice(itoa_u64(seq, &mut [0u8; 20]));
    out.extend_from_slice(PREV_PREFIX);
    let start = out.len();
    out.resize(start + 64, 0);
    // NOTE: encode_to_slice cannot fail: the slice is exactly twice the input's length.
    let _ = hex::encode_to_slice(prev_hash, &mut out[start..]);
    out.extend_from_slice(b"\",");
}

pub(crate) fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_round_trips_through_the_fast_reader() {
        let mut line = Vec::new();
        write_prefix(&mut line, 1234, &[0xab; 32]);
        line.extend_from_slice(b"\"x\":1}");
        let fields = chain_prefix(&line).expect("prefix");
        assert_eq!(fields.seq, 1234);
        assert_eq!(fields.prev_hash, [0xab; 32]);
        assert_eq!(chain_fields(&line), Ok(fields));
    }

    #[test]
    fn parse_hash_hex_takes_exactly_64_lowercase_hex_digits() {
        let h = hash_line(b"x");
        let text = hex::encode(h);
        assert_eq!(parse_hash_hex(text.as_bytes()), Some(h));
        assert_eq!(parse_hash_hex(text.to_uppercase().as_bytes()), None);
        assert_eq!(parse_hash_hex(&text.as_bytes()[..63]), None);
        assert_eq!(parse_hash_hex(format!("{text}0").as_bytes()), None);
        for (i, bad) in [b'g', b'G', b' ', b'"', b'/', b':', b'`', 0xff]
            .iter()
            .enumerate()
        {
            let mut t = text.clone().into_bytes();
            t[i * 7] = *bad;
            assert_eq!(parse_hash_hex(&t), None, "{}", *bad as char);
        }
    }

    #[test]
    fn genesis_hex_is_the_zero_hash() {
        assert_eq!(hex::encode(GENESIS_HASH), GENESIS_HASH_HEX);
    }

    #[test]
    fn fields_in_another_order_are_found_by_the_slow_path() {
        let line = format!(r#"{{"prev_hash":"{GENESIS_HASH_HEX}","tool":"t","seq":0}}"#);
        assert_eq!(chain_prefix(line.as_bytes()), None);
        assert_eq!(
            chain_fields(line.as_bytes()),
            Ok(ChainFields {
                seq: 0,
                prev_hash: GENESIS_HASH
            })
        );
    }

    #[test]
    fn uppercase_or_short_hashes_and_leading_zeros_are_refused() {
        let upper = format!(r#"{{"seq":1,"prev_hash":"{}"}}"#, "A".repeat(64));
        assert_eq!(chain_prefix(upper.as_bytes()), None);
        assert_eq!(
            chain_fields(upper.as_bytes()),
            Err(ChainError::MissingChainFields)
        );
        let padded = format!(r#"{{"seq":01,"prev_hash":"{GENESIS_HASH_HEX}"}}"#);
        assert_eq!(chain_prefix(padded.as_bytes()), None);
    }

    #[test]
    fn only_the_writers_prefix_or_a_piece_of_it_starts_like_a_record() {
        let mut line = Vec::new();
        write_prefix(&mut line, 0, &GENESIS_HASH);
        line.extend_from_slice(b"\"event_id\":\"x\"}");
        for end in 0..=line.len() {
            assert!(starts_like_a_record(&line[..end]), "{end}");
        }
        assert!(starts_like_a_record(
            b"{\"seq\":12,\"prev_hash\":\"00\xff junk"
        ));
        for not in [
            &b"hello"[..],
            b"{}",
            b" {\"seq\":0",
            b"{\"name\":\"x\"}",
            b"{\"seq\":\"0\"",
            b"{\"seq\":01,",
            b"{\"seq\":,",
            b"{\"seq\":0,\"prev\":",
            b"{\"seq\":123456789012345678901,",
            b"\x89PNG\r\n",
            b"\n",
        ] {
            assert!(
                !starts_like_a_record(not),
                "{}",
                String::from_utf8_lossy(not)
            );
        }
    }

    #[test]
    fn broken_lines_say_why() {
        assert_eq!(chain_fields(b"\xff{}"), Err(ChainError::BadUtf8));
        assert_eq!(chain_fields(b"{\"seq\":"), Err(ChainError::BadJson));
        assert_eq!(chain_fields(b"[1,2]"), Err(ChainError::NotObject));
        assert_eq!(
            chain_fields(b"{\"tool\":\"x\"}"),
            Err(ChainError::MissingChainFields)
        );
    }
}
