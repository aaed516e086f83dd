//! The encoder's fast path: one input line of `append --stdin` straight to the body of its
//! record, without an [`Event`] or a `serde_json::Value` in between.
//!
//! [`Encoder::encode_plain`] takes the line only when it is *plain*, so that the bytes it writes
//! are provably those of the slow path ([`Event::from_json_str`], [`Event::fill_from`],
//! [`Encoder::encode`]):
//!
//! - one JSON object, its keys without escapes, no key twice (at any depth), nesting well under
//!   `serde_json`'s limit;
//! - the standard fields of their type (a string without escapes, an integer in range, `true`
//!   or `false`), none `null`;
//! - `args_summary`, `details` and the extra fields made of strings without escapes, integers
//!   (not `-0`), booleans and `null`, which the stored form keeps as they are (floats are not
//!   kept: they go to the slow path);
//! - nothing the redactor would change: every string and key is kept by the value rule (the
//!   gate proves most of them clean in one cheap pass), no key is sensitive, no name/value
//!   object names a sensitive key, no `[K, V]` pair list has a sensitive `K`.
//!
//! Anything else (escapes, floats, a possible secret, duplicates, a wrong type, bad JSON…) gives
//! `None`, and the caller takes the slow path for that line, which also words every error. The
//! standard fields' strings are redacted here as the slow path does (a redacted `error_message`
//! is fine), since their place in the line does not move.
//!
//! `tests::fast_path_writes_what_the_slow_path_writes` checks the claim on generated lines.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

use super::encode::{Encoder, event_id_into, reduction_percent};
use super::{Event, Slot};
use crate::chain::{FIELDS, FieldId, Kind, SCHEMA_VERSION, Stored};
use crate::redact::Redactor;
use crate::time::{format_timestamp, parse_timestamp};

/// The number of fields in a record.
const FIELD_COUNT: usize = FIELDS.len();

/// Deeper values go to the slow path (`serde_json` stops at 128 levels).
const MAX_DEPTH: u32 = 100;

/// More keys than this in one object go to the slow path (duplicates are looked for by
/// comparing each key with those before it).
const MAX_KEYS: usize = 128;

/// The key `serde_json` (with `arbitrary_precision`) reads as a number, not an object.
const SERDE_PRIVATE: &str = "$serde_json::private::";

/// Buffers one task of [`Encoder::encode_plain`] reuses from line to line, so that a plain line
/// costs one allocation: its output.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// The keys of the objects being read, as byte ranges of the line.
    keys: Vec<(usize, usize)>,
    /// The extra fields of the line, in order.
    extras: Vec<Extra>,
    /// The inferred `resource`.
    resource: String,
    /// Short keys and strings the redactor kept.
    known: Known,
    /// The encoder whose redactor kept the strings of `known` (0: none yet).
    owner: u64,
}

/// Short keys and strings the redactor keeps, remembered by a hash of their bytes: the objects
/// of a log repeat their keys, and many of their values, from line to line. Whether a string is
/// kept is a pure function of the string (and the redactor, which a batch does not change), so
/// a string found here equal byte for byte is kept without asking the redactor again.
#[derive(Debug, Default)]
struct Known {
    /// `(string, as a key too)`: a key is kept when the value rule keeps it and the key rule
    /// does not find it sensitive, which is more than a string needs.
    slots: Vec<(String, bool)>,
}

impl Known {
    const SLOTS: usize = 256;
    /// Longer strings are not remembered: they repeat less, and the gate is cheap next to them.
    const LONGEST: usize = 64;

    /// True when `redactor` keeps `s` as a string, or, when `key`, as an object key.
    fn keeps(&mut self, redactor: &Redactor, s: &str, key: bool) -> bool {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > Self::LONGEST {
            return if key {
                redactor.keeps_key(s)
            } else {
                redactor.keeps_str(s)
            };
        }
        if self.slots.is_empty() {
            self.slots.resize(Self::SLOTS, (String::new(), false));
        }
        let hash = b.len() * 31
            + usize::from(b[0]) * 7
            + usize::from(b[b.len() / 2]) * 13
            + usize::from(b[b.len() - 1]);
        let slot = &mut self.slots[hash % Self::SLOTS];
        if slot.0 == s && (slot.1 || !key) {
            return true;
        }
        let kept = if key {
            redactor.keeps_key(s)
        } else {
            redactor.keeps_str(s)
        };
        if kept {
            slot.0.clear();
            slot.0.push_str(s);
            slot.1 = key;
        }
        kept
    }
}

impl Scratch {
    /// Runs `f` with this thread's scratch: what it remembers outlives a batch.
    pub(crate) fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
        }
        SCRATCH.with_borrow_mut(f)
    }
}

/// An extra field of the line: byte ranges of its key and value.
#[derive(Clone, Copy, Debug)]
struct Extra {
    key: (usize, usize),
    value: (usize, usize),
    compact: bool,
}

/// A standard field's value, as read from the line.
#[derive(Clone, Copy, Debug)]
enum Raw<'a> {
    Text(&'a str),
    /// A JSON value (`args_summary`, `details`), plain; `compact` when it holds no whitespace.
    Json {
        text: &'a str,
        compact: bool,
    },
    Count(u64),
    Signed(i64),
    Flag(bool),
    /// `seq`, `prev_hash`, `schema_version`: the writer's, whatever the line says.
    Ignored,
}

/// What a scanned value was, as far as the pair rules care.
#[derive(Clone, Copy)]
enum Scanned {
    Str(usize, usize),
    Other,
}

/// The defaults of a batch (`append`'s flags), by field, looked up once per batch.
#[derive(Debug)]
pub(crate) struct PlainDefaults<'d> {
    text: [Option<&'d str>; FIELD_COUNT],
    count: [Option<u64>; FIELD_COUNT],
    signed: [Option<i64>; FIELD_COUNT],
    flag: [Option<bool>; FIELD_COUNT],
}

impl<'d> PlainDefaults<'d> {
    /// The defaults of `event`, when [`Encoder::encode_plain`] can use them: strings, numbers
    /// and booleans, not JSON values or extra fields.
    pub(crate) fn new(event: &'d Event) -> Option<Self> {
        let mut d = PlainDefaults {
            text: [None; FIELD_COUNT],
            count: [None; FIELD_COUNT],
            signed: [None; FIELD_COUNT],
            flag: [None; FIELD_COUNT],
        };
        if !event.extra.is_empty() {
            return None;
        }
        for field in FIELDS {
            let i = field.id as usize;
            match event.slot(field.id) {
                Slot::Text(v) => d.text[i] = v.as_deref(),
                Slot::Count(v) => d.count[i] = *v,
                Slot::Signed(v) => d.signed[i] = *v,
                Slot::Flag(v) => d.flag[i] = *v,
                Slot::Json(Some(_)) => return None,
                Slot::Json(None) | Slot::Writer => {}
            }
        }
        Some(d)
    }
}

/// A string to store, and whether it is known to need no escapes (it was read from the line,
/// where the fast path takes strings without them).
type Text<'a> = Option<(&'a str, bool)>;

impl Encoder {
    /// The body of the record of one input line, exactly as
    /// `Event::from_json_str(text)`, `fill_from(defaults)` and [`Encoder::encode`] make it, when
    /// the line is plain (see the module documentation); `None` when it is not, and the caller
    /// takes that slow path. `pid` is the process id, asked once per batch (see
    /// [`event_id_into`]).
    pub(crate) fn encode_plain(
        &self,
        text: &str,
        defaults: &PlainDefaults<'_>,
        scratch: &mut Scratch,
        pid: u32,
    ) -> Option<Vec<u8>> {
        if scratch.owner != self.id {
            // Kept strings are kept by this encoder's redactor, not necessarily another's.
            *scratch = Scratch {
                owner: self.id,
                ..Scratch::default()
            };
        }
        scratch.keys.clear();
        scratch.extras.clear();
        let mut parser = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            blanks: 0,
            redactor: &self.redactor,
            keys: &mut scratch.keys,
            known: &mut scratch.known,
        };
        let fields = parser.line(&mut scratch.extras)?;
        self.write_plain(text, &fields, defaults, scratch, pid)
    }

    /// Writes the body from the fields read, as [`Encoder::encode`] does from an [`Event`].
    fn write_plain(
        &self,
        line: &str,
        fields: &[Option<Raw<'_>>; FIELD_COUNT],
        defaults: &PlainDefaults<'_>,
        scratch: &mut Scratch,
        pid: u32,
    ) -> Option<Vec<u8>> {
        let text = |id: FieldId| -> Text<'_> {
            match fields[id as usize] {
                Some(Raw::Text(s)) => Some((s, true)),
                _ => defaults.text[id as usize].map(|s| (s, false)),
            }
        };
        let count = |id: FieldId| match fields[id as usize] {
            Some(Raw::Count(n)) => Some(n),
            _ => defaults.count[id as usize],
        };
        // What `Encoder::infer` fills in.
        let tool = text(FieldId::tool);
        let status = text(FieldId::status);
        let level = text(FieldId::level).unwrap_or(if status.is_some_and(|(s, _)| s == "error") {
            ("error", true)
        } else {
            ("info", true)
        });
        let action = text(FieldId::action).or(tool.map(|_| ("mcp_call", true)));
        let shard =
            text(FieldId::shard).or_else(|| tool.map(|(t, _)| (self.taxonomy.shard_for(t), false)));
        let category = text(FieldId::action_category)
            .or_else(|| tool.map(|(t, _)| (self.taxonomy.category_for(t), false)));
        let Scratch {
            resource,
            known,
            extras,
            ..
        } = scratch;
        let resource = match (text(FieldId::resource), tool) {
            (Some(r), _) => Some(r),
            (None, Some((t, tool_clean))) => {
                let (server, server_clean) = text(FieldId::server_id).unwrap_or(("unknown", true));
                resource.clear();
                resource.push_str(server);
                resource.push(':');
                resource.push_str(t);
                Some((resource.as_str(), server_clean && tool_clean))
            }
            (None, None) => None,
        };
        let reduction = match fields[FieldId::reduction_percent as usize] {
            Some(Raw::Signed(n)) => Some(n),
            _ => defaults.signed[FieldId::reduction_percent as usize].or_else(|| {
                match (count(FieldId::response_size), count(FieldId::filtered_size)) {
                    (Some(resp), Some(filt)) if resp > 0 => Some(reduction_percent(resp, filt)),
                    _ => None,
                }
            }),
        };

        let r = &self.redactor;
        let mut out = Vec::with_capacity(line.len() + 320);
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
            let id = field.id;
            let given = match id {
                FieldId::level => Some(level),
                FieldId::action => action,
                FieldId::shard => shard,
                FieldId::action_category => category,
                FieldId::resource => resource,
                _ => text(id),
            };
            match (field.stored, field.kind) {
                (Stored::Chain, _) => {}
                (Stored::Version, _) => {
                    key(&mut out, name);
                    write_text(&mut out, SCHEMA_VERSION);
                }
                (Stored::IdOrNew, _) => {
                    key(&mut out, name);
                    if let Some((id, clean)) = given {
                        self.write_redacted(&mut out, None, id, clean);
                    } else {
                        let mut buf = [0; 36];
                        event_id_into(pid, &mut buf);
                        out.push(b'"');
                        out.extend_from_slice(&buf);
                        out.push(b'"');
                    }
                }
                (Stored::TimeOrNow, _) => match given {
                    Some((t, _)) if is_stored_form(t) => {
                        key(&mut out, name);
                        write_clean(&mut out, t);
                    }
                    Some((t, _)) => {
                        // Another shape of time: normalised as the slow path does; one it
                        // cannot read is the slow path's to word.
                        let t = format_timestamp(parse_timestamp(t)?);
                        key(&mut out, name);
                        write_text(&mut out, &t);
                    }
                    None => {
                        key(&mut out, name);
                        write_time(&mut out, Utc::now());
                    }
                },
                (Stored::SourceOrDefault, _) => {
                    key(&mut out, name);
                    let (source, clean) = given.unwrap_or((&self.source, false));
                    self.write_redacted(&mut out, Some(known), source, clean);
                }
                (Stored::Sanitized, _) => {
                    if let Some((message, _)) = given {
                        key(&mut out, name);
                        write_text(&mut out, &r.sanitized_error_message(message));
                    }
                }
                (Stored::Given, Kind::Text) => {
                    if let Some((s, clean)) = given {
                        key(&mut out, name);
                        self.write_redacted(&mut out, Some(known), s, clean);
                    }
                }
                (Stored::Given, Kind::Json) => {
                    if let Some(Raw::Json { text, compact }) = fields[id as usize] {
                        key(&mut out, name);
                        write_json(&mut out, text, compact);
                    }
                }
                (Stored::Given, Kind::Count) => {
                    if let Some(n) = count(id) {
                        key(&mut out, name);
                        out.extend_from_slice(crate::chain::itoa_u64(n, &mut [0; 20]));
                    }
                }
                (Stored::Given, Kind::Signed) => {
                    // `reduction_percent` is the one signed field.
                    if let Some(n) = reduction.filter(|_| id == FieldId::reduction_percent) {
                        key(&mut out, name);
                        write_i64(&mut out, n);
                    }
                }
                (Stored::Given, Kind::Flag) => {
                    let flag = match fields[id as usize] {
                        Some(Raw::Flag(b)) => Some(b),
                        _ => defaults.flag[id as usize],
                    };
                    if let Some(b) = flag {
                        key(&mut out, name);
                        out.extend_from_slice(if b { b"true" } else { b"false" });
                    }
                }
            }
        }
        for extra in extras.iter() {
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(&line.as_bytes()[extra.key.0..extra.key.1]);
            out.extend_from_slice(b"\":");
            write_json(
                &mut out,
                line.get(extra.value.0..extra.value.1)?,
                extra.compact,
            );
        }
        out.push(b'}');
        Some(out)
    }

    /// Writes `s` as [`Redactor::redact_str`] leaves it; `clean` when `s` is known to need no
    /// escapes. A string found in `known` (a user, a tool, a server, a shard: they repeat from
    /// record to record) is kept without asking the redactor again.
    fn write_redacted(&self, out: &mut Vec<u8>, known: Option<&mut Known>, s: &str, clean: bool) {
        let kept = match known {
            Some(known) => known.keeps(&self.redactor, s, false),
            None => self.redactor.keeps_str(s),
        };
        if !kept {
            write_text(out, &self.redactor.redact_str(s));
        } else if clean {
            write_clean(out, s);
        } else {
            write_text(out, s);
        }
    }
}

/// Reads a line, checking as it goes that it is plain.
struct Parser<'a, 's> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Runs of whitespace skipped so far: a value whose reading skipped none is compact.
    blanks: usize,
    redactor: &'s Redactor,
    keys: &'s mut Vec<(usize, usize)>,
    known: &'s mut Known,
}

impl<'a> Parser<'a, '_> {
    /// The top-level object: its standard fields by [`FieldId`], its extra fields in `extras`.
    fn line(&mut self, extras: &mut Vec<Extra>) -> Option<[Option<Raw<'a>>; FIELD_COUNT]> {
        let mut fields = [None; FIELD_COUNT];
        self.blank();
        self.expect(b'{')?;
        self.blank();
        if self.peek()? == b'}' {
            self.pos += 1;
        } else {
            let mut pairs = Pairs::default();
            loop {
                self.blank();
                let (start, end) = self.string()?;
                let key = self.text.get(start..end)?;
                self.blank();
                self.expect(b':')?;
                self.blank();
                if let Some(field) = crate::chain::field(key) {
                    let slot = &mut fields[field.id as usize];
                    if slot.is_some() {
                        return None;
                    }
                    *slot = Some(self.field(field.stored, field.kind)?);
                } else {
                    self.check_key(key, 0)?;
                    self.keys.push((start, end));
                    if self.peek()? == b'n' {
                        return None;
                    }
                    let blanks = self.blanks;
                    let value_start = self.pos;
                    let scanned = self.value(1, false)?;
                    pairs.see(self.redactor, key, scanned, self.text);
                    extras.push(Extra {
                        key: (start, end),
                        value: (value_start, self.pos),
                        compact: self.blanks == blanks,
                    });
                }
                self.blank();
                match self.next()? {
                    b',' => {}
                    b'}' => break,
                    _ => return None,
                }
            }
            if pairs.may_redact() {
                return None;
            }
        }
        self.blank();
        (self.pos == self.bytes.len()).then_some(fields)
    }

    /// The value of a standard field of `kind`, after its key.
    fn field(&mut self, stored: Stored, kind: Kind) -> Option<Raw<'a>> {
        if matches!(stored, Stored::Chain | Stored::Version) {
            self.value(1, false)?;
            return Some(Raw::Ignored);
        }
        match kind {
            Kind::Text => {
                let (start, end) = self.string()?;
                Some(Raw::Text(self.text.get(start..end)?))
            }
            Kind::Json => {
                if self.peek()? == b'n' {
                    return None;
                }
                let blanks = self.blanks;
                let start = self.pos;
                self.value(1, false)?;
                Some(Raw::Json {
                    text: self.text.get(start..self.pos)?,
                    compact: self.blanks == blanks,
                })
            }
            Kind::Count => {
                let digits = self.integer()?;
                if digits.starts_with('-') {
                    return None;
                }
                digits.parse().ok().map(Raw::Count)
            }
            Kind::Signed => {
                let digits = self.integer()?;
                digits.parse().ok().map(Raw::Signed)
            }
            Kind::Flag => match self.peek()? {
                b't' => self.literal(b"true").map(|()| Raw::Flag(true)),
                b'f' => self.literal(b"false").map(|()| Raw::Flag(false)),
                _ => None,
            },
        }
    }

    /// A JSON value, plain, at nesting `depth`; `in_array` when it is an item of an array.
    fn value(&mut self, depth: u32, in_array: bool) -> Option<Scanned> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => {
                let (start, end) = self.string()?;
                if !self
                    .known
                    .keeps(self.redactor, self.text.get(start..end)?, false)
                {
                    return None;
                }
                Some(Scanned::Str(start, end))
            }
            b'{' => self.object(depth).map(|()| Scanned::Other),
            b'[' => self.array(depth, in_array).map(|()| Scanned::Other),
            b't' => self.literal(b"true").map(|()| Scanned::Other),
            b'f' => self.literal(b"false").map(|()| Scanned::Other),
            b'n' => self.literal(b"null").map(|()| Scanned::Other),
            _ => self.integer().map(|_| Scanned::Other),
        }
    }

    fn object(&mut self, depth: u32) -> Option<()> {
        self.pos += 1;
        self.blank();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        let base = self.keys.len();
        let mut pairs = Pairs::default();
        loop {
            self.blank();
            let (start, end) = self.string()?;
            let key = self.text.get(start..end)?;
            self.check_key(key, base)?;
            self.keys.push((start, end));
            self.blank();
            self.expect(b':')?;
            self.blank();
            let scanned = self.value(depth + 1, false)?;
            pairs.see(self.redactor, key, scanned, self.text);
            self.blank();
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        self.keys.truncate(base);
        (!pairs.may_redact()).then_some(())
    }

    /// An array; one inside an array may be a `[K, V]` pair, so a sensitive `K` is not plain.
    fn array(&mut self, depth: u32, in_array: bool) -> Option<()> {
        self.pos += 1;
        self.blank();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        let mut first = true;
        loop {
            self.blank();
            let scanned = self.value(depth + 1, true)?;
            if first
                && in_array
                && let Scanned::Str(start, end) = scanned
                && self.redactor.is_sensitive_key(self.text.get(start..end)?)
            {
                return None;
            }
            first = false;
            self.blank();
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A key of an object whose keys start at `keys[base]` (0 for the extra fields): kept by
    /// the redactor, not sensitive, not seen before in the object.
    fn check_key(&mut self, key: &str, base: usize) -> Option<()> {
        if key.starts_with(SERDE_PRIVATE)
            || !self.known.keeps(self.redactor, key, true)
            || self.keys.len() - base >= MAX_KEYS
        {
            return None;
        }
        let bytes = key.as_bytes();
        let seen = self.keys[base..]
            .iter()
            .any(|&(start, end)| &self.bytes[start..end] == bytes);
        (!seen).then_some(())
    }

    /// A string without escapes or control characters, at `"`: the range of its content.
    fn string(&mut self) -> Option<(usize, usize)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.pos + 1;
        let end = start + crate::json::string_stop(&self.bytes[start..])?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.pos = end + 1;
        Some((start, end))
    }

    /// An integer (`-?(0|[1-9][0-9]*)`), but `-0`; what follows is checked by the caller, so
    /// a fraction or an exponent is not plain.
    fn integer(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if self.peek()? == b'-' {
            self.pos += 1;
        }
        let digits = self.pos;
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        let n = self.pos - digits;
        if n == 0 || (self.bytes[digits] == b'0' && (n > 1 || digits > start)) {
            return None;
        }
        self.text.get(start..self.pos)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if !self.bytes[self.pos..].starts_with(word) {
            return None;
        }
        self.pos += word.len();
        Some(())
    }

    fn blank(&mut self) {
        let start = self.pos;
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
        if self.pos != start {
            self.blanks += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }
}

/// What the pair rules need to know of an object: whether it has a value key, and whether a
/// name key holds a string the key rule finds sensitive.
#[derive(Default)]
struct Pairs {
    value_key: bool,
    sensitive_name: bool,
}

impl Pairs {
    fn see(&mut self, redactor: &Redactor, key: &str, value: Scanned, text: &str) {
        self.value_key |= Redactor::is_pair_value_key(key);
        if let Scanned::Str(start, end) = value
            && !self.sensitive_name
            && Redactor::is_pair_name_key(key)
        {
            self.sensitive_name = text
                .get(start..end)
                .is_none_or(|name| redactor.is_sensitive_key(name));
        }
    }

    /// True when the pair rule may redact a value of the object.
    fn may_redact(&self) -> bool {
        self.value_key && self.sensitive_name
    }
}

/// True for a time in the stored form (`2026-01-02T03:04:05.000006Z`) that parsing and
/// formatting give back unchanged: a real date, hours, minutes and seconds in range (a leap
/// second is not kept as it is).
fn is_stored_form(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() != 27 {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        };
        if !ok {
            return false;
        }
    }
    let n = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0_u32, |n, &d| n * 10 + u32::from(d - b'0'))
    };
    let Ok(year) = i32::try_from(n(0, 4)) else {
        return false;
    };
    NaiveDate::from_ymd_opt(year, n(5, 7), n(8, 10)).is_some()
        && n(11, 13) < 24
        && n(14, 16) < 60
        && n(17, 19) < 60
}

/// Writes `t` as [`format_timestamp`] does, without a `String`.
fn write_time(out: &mut Vec<u8>, t: DateTime<Utc>) {
    fn digits(out: &mut [u8], mut n: u32) {
        for d in out.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let Some(year) = u32::try_from(t.year()).ok().filter(|y| *y <= 9999) else {
        write_text(out, &format_timestamp(t));
        return;
    };
    let mut b = *b"\"0000-00-00T00:00:00.000000Z\"";
    digits(&mut b[1..5], year);
    digits(&mut b[6..8], t.month());
    digits(&mut b[9..11], t.day());
    digits(&mut b[12..14], t.hour());
    digits(&mut b[15..17], t.minute());
    digits(&mut b[18..20], t.second());
    digits(&mut b[21..27], t.nanosecond().min(999_999_999) / 1000);
    out.extend_from_slice(&b);
}

/// Writes `s`, which needs no escapes, as a JSON string.
fn write_clean(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Writes `s` as a JSON string, as `serde_json` does.
fn write_text(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // NOTE: serialising a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(crate::chain::itoa_u64(n.unsigned_abs(), &mut [0; 20]));
}

/// Writes a plain JSON value read from the line, without its whitespace.
fn write_json(out: &mut Vec<u8>, text: &str, compact: bool) {
    if compact {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    // NOTE: a plain value's strings have no escapes, so a quote always opens or closes one.
    let mut in_string = false;
    for &b in text.as_bytes() {
        match b {
            b'"' => in_string = !in_string,
            b' ' | b'\t' | b'\n' | b'\r' if !in_string => continue,
            _ => {}
        }
        out.push(b);
    }
}

#[cfg(test)]
mod tests;
