//! A lenient JSON reader: what the proxy sees on the wire, read the way the most forgiving
//! server would read it.
//!
//! `serde_json` follows RFC 8259 strictly, but MCP servers do not: JavaScript's `JSON.parse`
//! takes lone surrogate escapes and numbers beyond `f64` (as `Infinity`), Python's `json`
//! takes `NaN`/`Infinity` and a leading byte-order mark, both nest far deeper than serde's 127
//! levels, stdio transports decode invalid UTF-8 as U+FFFD, and a streaming parser (Go's
//! `json.Decoder`) reads a value that spans several lines. A line any of them acts on must be
//! read here too, or a call would run unrecorded. So this reader accepts a superset of JSON
//! and notes each departure from the RFC as a [`Quirk`], with its offset.
//!
//! [`scan`] validates a text once, without recursion (any depth), and returns the spans of the
//! complete values in it. The navigation functions ([`members`], [`elements`], [`decode`], …)
//! then read inside a span that [`scan`] returned complete; on anything else they may return
//! nonsense, but never panic or loop.

use std::ops::Range;

/// The deepest nesting `serde_json` accepts (its recursion limit of 128 counts the value that
/// would open one more level).
const STRICT_DEPTH: usize = 127;

/// A departure from RFC 8259 (or from one JSON-RPC message per line) that some server would
/// still act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Quirk {
    /// A UTF-8 byte-order mark before or between values.
    Bom = 1,
    /// A `\uD800`–`\uDFFF` escape without its pair.
    LoneSurrogate = 1 << 1,
    /// Bytes that are not UTF-8 inside a string.
    InvalidUtf8 = 1 << 2,
    /// A raw control character (below U+0020) inside a string.
    ControlCharacter = 1 << 3,
    /// `NaN`, `Infinity` or `-Infinity`.
    NonFiniteNumber = 1 << 4,
    /// A number too large for an `f64`.
    NumberOutOfRange = 1 << 5,
    /// 128 or more nested containers (`serde_json` stops at 127).
    DeepNesting = 1 << 6,
    /// A key that appears twice in one object (parsers differ on which one counts).
    DuplicateKey = 1 << 7,
    /// A key that matches a JSON-RPC name only case-insensitively (Go's `encoding/json`).
    CaseFoldedKey = 1 << 8,
    /// More than one JSON value on one line.
    SeveralValues = 1 << 9,
    /// A value that starts on one line and ends on a later one.
    SplitAcrossLines = 1 << 10,
    /// A JSON-RPC batch (an array of messages).
    Batch = 1 << 11,
}

impl Quirk {
    const ALL: [Quirk; 12] = [
        Quirk::Bom,
        Quirk::LoneSurrogate,
        Quirk::InvalidUtf8,
        Quirk::ControlCharacter,
        Quirk::NonFiniteNumber,
        Quirk::NumberOutOfRange,
        Quirk::DeepNesting,
        Quirk::DuplicateKey,
        Quirk::CaseFoldedKey,
        Quirk::SeveralValues,
        Quirk::SplitAcrossLines,
        Quirk::Batch,
    ];

    /// The name recorded in `details.json_quirks`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Quirk::Bom => "bom",
            Quirk::LoneSurrogate => "lone_surrogate",
            Quirk::InvalidUtf8 => "invalid_utf8",
            Quirk::ControlCharacter => "control_character",
            Quirk::NonFiniteNumber => "non_finite_number",
            Quirk::NumberOutOfRange => "number_out_of_range",
            Quirk::DeepNesting => "deep_nesting",
            Quirk::DuplicateKey => "duplicate_key",
            Quirk::CaseFoldedKey => "case_folded_key",
            Quirk::SeveralValues => "several_values",
            Quirk::SplitAcrossLines => "split_across_lines",
            Quirk::Batch => "batch",
        }
    }
}

/// A set of [`Quirk`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Quirks(u16);

impl Quirks {
    pub(crate) fn add(&mut self, q: Quirk) {
        self.0 |= q as u16;
    }

    pub(crate) fn with(mut self, q: Quirk) -> Self {
        self.add(q);
        self
    }

    pub(crate) fn union(self, other: Quirks) -> Self {
        Quirks(self.0 | other.0)
    }

    /// Whether a strict parser (`serde_json`) could decode the text these quirks were found in.
    /// The framing quirks (several values, split lines, batch) do not matter to it. A number
    /// out of f64's range counts as not decodable: `serde_json` (with `arbitrary_precision`)
    /// would keep its digits, but servers read it as infinity, so its raw text is the record.
    pub(crate) fn strict_decodable(self) -> bool {
        let framing =
            Quirk::SeveralValues as u16 | Quirk::SplitAcrossLines as u16 | Quirk::Batch as u16;
        let envelope = Quirk::DuplicateKey as u16 | Quirk::CaseFoldedKey as u16;
        self.0 & !(framing | envelope) == 0
    }

    /// The names, in a fixed order.
    pub(crate) fn names(self) -> Vec<&'static str> {
        Quirk::ALL
            .iter()
            .filter(|q| self.0 & **q as u16 != 0)
            .map(|q| q.name())
            .collect()
    }
}

/// How the text after the last complete value ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rest {
    /// Only whitespace follows.
    Done,
    /// A value starts at this offset and the text ends inside it.
    Incomplete(usize),
    /// The text stops being JSON at this offset.
    Invalid(usize),
}

/// What [`scan`] found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// The complete values, in order.
    pub values: Vec<Range<usize>>,
    pub rest: Rest,
    /// `(offset, quirk)` in increasing offset order, at most one per string and kind.
    quirks: Vec<(usize, Quirk)>,
    /// Where to go on when the text ends inside a value ([`Rest::Incomplete`]), relative to
    /// that value's first byte.
    resume: Option<Resume>,
}

impl Scan {
    /// The quirks found inside `span`.
    pub(crate) fn quirks_in(&self, span: &Range<usize>) -> Quirks {
        let from = self.quirks.partition_point(|(at, _)| *at < span.start);
        let mut set = Quirks::default();
        for (at, q) in &self.quirks[from..] {
            if *at >= span.end {
                break;
            }
            set.add(*q);
        }
        set
    }

    /// The state to scan on from, when the text ended inside a value: pass it to
    /// [`scan_on`] with that value's bytes followed by more.
    pub(crate) fn take_resume(&mut self) -> Option<Resume> {
        self.resume.take()
    }
}

/// The state of a scan that ended inside a value, relative to the value's first byte.
#[derive(Clone, Debug)]
pub(crate) struct Resume {
    stack: Vec<bool>,
    expect: Expect,
    /// Where the token the text ended in (or the next one) starts.
    at: usize,
    quirks: Vec<(usize, Quirk)>,
}

#[derive(Debug)]
enum Stop {
    /// The text ended inside a value.
    Eof,
    /// Not JSON, even leniently.
    Bad,
}

/// What comes next inside a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Expect {
    /// A value.
    #[default]
    Value,
    /// A value or `]` (after `[`).
    ValueOrClose,
    /// A key or `}` (after `{`).
    KeyOrClose,
    /// A key (after a comma in an object).
    Key,
    /// The colon after a key.
    Colon,
    /// A comma or the container's end (after a value inside it).
    CommaOrClose,
}

/// Reads `text` as a sequence of JSON values separated by whitespace (a line usually holds
/// one).
pub(crate) fn scan(text: &[u8]) -> Scan {
    scan_on(text, None)
}

#[cfg(test)]
thread_local! {
    /// Bytes [`scan_on`] has scanned on this thread (tests measure work, not time).
    pub(crate) static SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Like [`scan`], going on from `resume`: `text` starts with the bytes of the value a
/// previous scan ended inside (from its first byte), and the bytes already read are not
/// read again.
pub(crate) fn scan_on(text: &[u8], resume: Option<Resume>) -> Scan {
    let mut s = Scanner {
        t: text,
        i: 0,
        stack: Vec::new(),
        expect: Expect::Value,
        quirks: Vec::new(),
        utf8_ok: true,
    };
    let mut resuming = false;
    if let Some(r) = resume {
        s.stack = r.stack;
        s.expect = r.expect;
        s.i = r.at.min(text.len());
        s.quirks = r.quirks;
        resuming = true;
    }
    #[cfg(test)]
    SCANNED.with(|c| c.set(c.get() + (text.len() - s.i)));
    // NOTE: strings never span lines (a line feed ends them), so the bytes before `s.i` hold
    // no string still to check.
    s.utf8_ok = simdutf8::basic::from_utf8(&text[s.i..]).is_ok();
    let mut values = Vec::new();
    let mut resume = None;
    let rest = loop {
        let start = if resuming {
            resuming = false;
            0
        } else {
            let lead = s.quirks.len();
            s.ws();
            if s.i >= text.len() {
                break Rest::Done;
            }
            // A byte-order mark before a value is the value's quirk.
            for q in &mut s.quirks[lead..] {
                q.0 = s.i;
            }
            s.stack.clear();
            s.expect = Expect::Value;
            s.i
        };
        match s.value() {
            Ok(()) => values.push(start..s.i),
            Err(Stop::Eof) => {
                // NOTE: a carried value starts the text it is scanned on in, so its quirks
                // move over as they are (copying them for each line would cost quadratic
                // time on a value sent in many lines).
                let quirks = if start == 0 {
                    std::mem::take(&mut s.quirks)
                } else {
                    s.quirks[s.quirks.partition_point(|(at, _)| *at < start)..]
                        .iter()
                        .map(|&(at, q)| (at - start, q))
                        .collect()
                };
                resume = Some(Resume {
                    stack: std::mem::take(&mut s.stack),
                    expect: s.expect,
                    at: s.i - start,
                    quirks,
                });
                break Rest::Incomplete(start);
            }
            Err(Stop::Bad) => break Rest::Invalid(s.i),
        }
    };
    Scan {
        values,
        rest,
        quirks: s.quirks,
        resume,
    }
}

struct Scanner<'a> {
    t: &'a [u8],
    i: usize,
    /// The open containers: `true` for an object.
    stack: Vec<bool>,
    expect: Expect,
    quirks: Vec<(usize, Quirk)>,
    /// The text still to read is UTF-8, so no string needs checking.
    utf8_ok: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.t.get(self.i).copied()
    }

    fn ws(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.i += 1,
                Some(0xEF) if self.t[self.i..].starts_with(BOM) => {
                    self.quirks.push((self.i, Quirk::Bom));
                    self.i += BOM.len();
                }
                _ => return,
            }
        }
    }

    /// Reads on until the value ends (the stack is empty), one token at a time, any depth,
    /// without recursion. On [`Stop::Eof`] the cursor is left at the start of the token the
    /// text ended in, and `stack`/`expect` say where the value stands.
    fn value(&mut self) -> Result<(), Stop> {
        loop {
            self.ws();
            let token = self.i;
            let b = self.peek().ok_or(Stop::Eof)?;
            let step = self.token(b);
            match step {
                Ok(()) => {}
                Err(Stop::Eof) => {
                    self.i = token;
                    return Err(Stop::Eof);
                }
                Err(bad) => return Err(bad),
            }
            if self.stack.is_empty() && self.expect == Expect::CommaOrClose {
                return Ok(());
            }
        }
    }

    /// One token at the cursor, first byte `b`.
    fn token(&mut self, b: u8) -> Result<(), Stop> {
        let object = self.stack.last().copied();
        match (self.expect, b) {
            (Expect::Colon, b':') => {
                self.i += 1;
                self.expect = Expect::Value;
            }
            (Expect::CommaOrClose, b',') if object.is_some() => {
                self.i += 1;
                self.expect = if object == Some(true) {
                    Expect::Key
                } else {
                    Expect::Value
                };
            }
            (Expect::CommaOrClose | Expect::KeyOrClose, b'}') if object == Some(true) => {
                self.i += 1;
                self.stack.pop();
                self.expect = Expect::CommaOrClose;
            }
            (Expect::CommaOrClose | Expect::ValueOrClose, b']') if object == Some(false) => {
                self.i += 1;
                self.stack.pop();
                self.expect = Expect::CommaOrClose;
            }
            (Expect::KeyOrClose | Expect::Key, b'"') => {
                self.string()?;
                self.expect = Expect::Colon;
            }
            (Expect::Value | Expect::ValueOrClose, open @ (b'{' | b'[')) => {
                if self.stack.len() == STRICT_DEPTH {
                    self.quirks.push((self.i, Quirk::DeepNesting));
                }
                self.i += 1;
                self.stack.push(open == b'{');
                self.expect = if open == b'{' {
                    Expect::KeyOrClose
                } else {
                    Expect::ValueOrClose
                };
            }
            (Expect::Value | Expect::ValueOrClose, _) => {
                self.scalar(b)?;
                self.expect = Expect::CommaOrClose;
            }
            _ => return Err(Stop::Bad),
        }
        Ok(())
    }

    fn scalar(&mut self, b: u8) -> Result<(), Stop> {
        let start = self.i;
        match b {
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'N' | b'I' => {
                self.literal(if b == b'N' { b"NaN" } else { b"Infinity" })?;
                self.quirks.push((start, Quirk::NonFiniteNumber));
                Ok(())
            }
            _ => Err(Stop::Bad),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Stop> {
        let rest = &self.t[self.i..];
        if rest.starts_with(word) {
            self.i += word.len();
            Ok(())
        } else if word.starts_with(rest) {
            self.i = self.t.len();
            Err(Stop::Eof)
        } else {
            Err(Stop::Bad)
        }
    }

    fn digits(&mut self) -> usize {
        let n = self.t[self.i..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.i += n;
        n
    }

    /// At least one digit.
    fn some_digits(&mut self) -> Result<(), Stop> {
        match self.peek() {
            None => Err(Stop::Eof),
            Some(b) if b.is_ascii_digit() => {
                self.digits();
                Ok(())
            }
            Some(_) => Err(Stop::Bad),
        }
    }

    fn number(&mut self) -> Result<(), Stop> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
            if self.peek() == Some(b'I') {
                self.literal(b"Infinity")?;
                self.quirks.push((start, Quirk::NonFiniteNumber));
                return Ok(());
            }
        }
        match self.peek().ok_or(Stop::Eof)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return Err(Stop::Bad),
        }
        let mut exponent = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            exponent = true;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.some_digits()?;
        }
        let text = &self.t[start..self.i];
        // NOTE: below 1e308 without an exponent a number needs 309 digits; checking every
        // number with an exponent or more than 300 characters is cheap and exact.
        if (exponent || text.len() > 300)
            && std::str::from_utf8(text)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .is_some_and(f64::is_infinite)
        {
            self.quirks.push((start, Quirk::NumberOutOfRange));
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, Stop> {
        let mut v: u16 = 0;
        for _ in 0..4 {
            let b = self.peek().ok_or(Stop::Eof)?;
            let d = hex_digit(b).ok_or(Stop::Bad)?;
            v = v << 4 | d;
            self.i += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<(), Stop> {
        let start = self.i;
        self.i += 1;
        let (mut lone, mut control) = (false, false);
        loop {
            let k = self.t[self.i..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            let Some(k) = k else {
                self.i = self.t.len();
                return Err(Stop::Eof);
            };
            self.i += k;
            match self.t[self.i] {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek().ok_or(Stop::Eof)? {
                        b'u' => {
                            self.i += 1;
                            let unit = self.hex4()?;
                            if (0xD800..0xDC00).contains(&unit) {
                                let rest = &self.t[self.i..];
                                let paired = rest.len() >= 6
                                    && rest.starts_with(b"\\u")
                                    && hex4(&rest[2..6])
                                        .is_some_and(|u| (0xDC00..0xE000).contains(&u));
                                if paired {
                                    self.i += 6;
                                } else {
                                    lone = true;
                                }
                            } else if (0xDC00..0xE000).contains(&unit) {
                                lone = true;
                            }
                        }
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        _ => return Err(Stop::Bad),
                    }
                }
                // NOTE: a line feed cannot be inside a string on one line; across lines no
                // parser we know takes it, and refusing it keeps one stray quote from
                // swallowing every later line into a string.
                b'\n' => return Err(Stop::Bad),
                _ => {
                    control = true;
                    self.i += 1;
                }
            }
        }
        if lone {
            self.quirks.push((start, Quirk::LoneSurrogate));
        }
        if control {
            self.quirks.push((start, Quirk::ControlCharacter));
        }
        if !self.utf8_ok && simdutf8::basic::from_utf8(&self.t[start..self.i]).is_err() {
            self.quirks.push((start, Quirk::InvalidUtf8));
        }
        Ok(())
    }
}

fn hex_digit(b: u8) -> Option<u16> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u16::try_from(d).ok())
}

fn hex4(bytes: &[u8]) -> Option<u16> {
    bytes
        .iter()
        .take(4)
        .try_fold(0u16, |v, &b| Some(v << 4 | hex_digit(b)?))
}

// ---- Navigation inside a span that `scan` found complete. ----

/// The offset of the first byte at or after `i` that is not whitespace (or a BOM).
pub(crate) fn ws(t: &[u8], mut i: usize) -> usize {
    loop {
        match t.get(i) {
            Some(b' ' | b'\t' | b'\n' | b'\r') => i += 1,
            Some(0xEF) if t[i..].starts_with(BOM) => i += BOM.len(),
            _ => return i,
        }
    }
}

/// The end of the string starting at `i` (its opening quote).
pub(crate) fn string_end(t: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < t.len() {
        match t[i] {
            b'"' => return i + 1,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    t.len()
}

/// The end of the value starting at `i`.
pub(crate) fn value_end(t: &[u8], mut i: usize) -> usize {
    match t.get(i) {
        Some(b'"') => string_end(t, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            while i < t.len() {
                match t[i] {
                    b'"' => {
                        i = string_end(t, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            t.len()
        }
        _ => {
            while i < t.len()
                && !matches!(
                    t[i],
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | 0xEF
                )
            {
                i += 1;
            }
            i
        }
    }
}

/// The `(key span, value span)` of each member of the object at `span`, in order. Empty when
/// `span` is not an object.
pub(crate) fn members(t: &[u8], span: &Range<usize>) -> Vec<(Range<usize>, Range<usize>)> {
    let mut out = Vec::new();
    if t.get(span.start) != Some(&b'{') {
        return out;
    }
    let mut i = ws(t, span.start + 1);
    while i < span.end && t[i] == b'"' {
        let key = i..string_end(t, i);
        i = ws(t, key.end) + 1; // the colon
        let start = ws(t, i);
        let value = start..value_end(t, start);
        i = ws(t, value.end);
        out.push((key, value));
        if t.get(i) != Some(&b',') {
            break;
        }
        i = ws(t, i + 1);
    }
    out
}

/// The span of each element of the array at `span`, in order. Empty when `span` is not an
/// array.
pub(crate) fn elements(t: &[u8], span: &Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    if t.get(span.start) != Some(&b'[') {
        return out;
    }
    let mut i = ws(t, span.start + 1);
    while i < span.end && t[i] != b']' {
        let value = i..value_end(t, i);
        i = ws(t, value.end);
        out.push(value);
        if t.get(i) != Some(&b',') {
            break;
        }
        i = ws(t, i + 1);
    }
    out
}

/// One piece of a decoded string.
enum Piece<'a> {
    Text(&'a str),
    Char(char),
    /// An unpaired surrogate escape.
    Lone(u16),
}

/// Calls `f` with the decoded pieces of the string at `span` (quotes included): escapes
/// resolved, invalid UTF-8 as U+FFFD.
fn pieces<'a>(t: &'a [u8], span: &Range<usize>, mut f: impl FnMut(Piece<'a>)) {
    let raw = &t[span.start + 1..span.end.saturating_sub(1).max(span.start + 1)];
    let mut i = 0;
    while i < raw.len() {
        let k = raw[i..]
            .iter()
            .position(|&b| b == b'\\')
            .map_or(raw.len(), |k| i + k);
        for chunk in raw[i..k].utf8_chunks() {
            if !chunk.valid().is_empty() {
                f(Piece::Text(chunk.valid()));
            }
            if !chunk.invalid().is_empty() {
                f(Piece::Char(char::REPLACEMENT_CHARACTER));
            }
        }
        if k + 1 >= raw.len() {
            break;
        }
        i = k + 2;
        let c = match raw[k + 1] {
            b'u' => {
                let unit = hex4(raw.get(i..).unwrap_or_default()).unwrap_or(0xFFFD);
                i += 4;
                let rest = raw.get(i..).unwrap_or_default();
                if (0xD800..0xDC00).contains(&unit)
                    && rest.starts_with(b"\\u")
                    && let Some(low) = hex4(&rest[2..]).filter(|u| (0xDC00..0xE000).contains(u))
                {
                    i += 6;
                    let c =
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER)
                } else if (0xD800..0xE000).contains(&unit) {
                    f(Piece::Lone(unit));
                    continue;
                } else {
                    char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            }
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            other => char::from(other),
        };
        f(Piece::Char(c));
    }
}

/// The string at `span`, decoded; lone surrogates and invalid UTF-8 become U+FFFD.
pub(crate) fn decode(t: &[u8], span: &Range<usize>) -> String {
    let mut s = String::with_capacity(span.len());
    pieces(t, span, |p| match p {
        Piece::Text(x) => s.push_str(x),
        Piece::Char(c) => s.push(c),
        Piece::Lone(_) => s.push(char::REPLACEMENT_CHARACTER),
    });
    s
}

/// The string at `span` as one canonical JSON string literal: the one `serde_json` writes for
/// the same text (quotes, `\"`, `\\`, control characters escaped, all else as is), with lone
/// surrogates kept as `\udXXX` escapes, as JavaScript's `JSON.stringify` writes them. Two
/// spellings of one string (`"a"`, `"\u0061"`) give the same literal.
pub(crate) fn canonical_string(t: &[u8], span: &Range<usize>) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(span.len());
    s.push('"');
    let push = |c: char, s: &mut String| match c {
        '"' => s.push_str("\\\""),
        '\\' => s.push_str("\\\\"),
        '\u{8}' => s.push_str("\\b"),
        '\u{c}' => s.push_str("\\f"),
        '\n' => s.push_str("\\n"),
        '\r' => s.push_str("\\r"),
        '\t' => s.push_str("\\t"),
        c if c < ' ' => {
            let _ = write!(s, "\\u{:04x}", u32::from(c));
        }
        c => s.push(c),
    };
    pieces(t, span, |p| match p {
        Piece::Text(x) => x.chars().for_each(|c| push(c, &mut s)),
        Piece::Char(c) => push(c, &mut s),
        Piece::Lone(u) => {
            let _ = write!(s, "\\u{u:04x}");
        }
    });
    s.push('"');
    s
}

/// The number at `span` as a canonical key of its exact decimal value (no rounding): `1`,
/// `1.0`, `10e-1` and `0.1e1` give one key, `12345678901234567890123` keeps every digit.
/// `NaN` and the infinities are their own text.
pub(crate) fn canonical_number(t: &[u8], span: &Range<usize>) -> String {
    let text = &t[span.clone()];
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if !body.first().is_some_and(u8::is_ascii_digit) {
        return String::from_utf8_lossy(text).into_owned();
    }
    let (mantissa, exponent) = match body.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(e) => (&body[..e], &body[e + 1..]),
        None => (body, &b""[..]),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(d) => (&mantissa[..d], &mantissa[d + 1..]),
        None => (mantissa, &b""[..]),
    };
    // exponent of the last digit, saturating on absurd exponents
    let (exp_negative, exp_digits) = match exponent.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, exponent),
    };
    let mut exp: i64 = exp_digits.iter().fold(0i64, |v, d| {
        v.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    if exp_negative {
        exp = -exp;
    }
    exp = exp.saturating_sub(i64::try_from(frac.len()).unwrap_or(i64::MAX));
    let digits: Vec<u8> = int.iter().chain(frac).copied().collect();
    let digits = match digits.iter().position(|&d| d != b'0') {
        Some(first) => &digits[first..],
        None => return "0".to_owned(),
    };
    let zeros = digits.iter().rev().take_while(|&&d| d == b'0').count();
    let digits = &digits[..digits.len() - zeros];
    exp = exp.saturating_add(i64::try_from(zeros).unwrap_or(i64::MAX));
    format!(
        "{}{}e{exp}",
        if negative { "-" } else { "" },
        String::from_utf8_lossy(digits)
    )
}

/// Whether a key matches a (lower-case ASCII) JSON-RPC name the way Go's `encoding/json`
/// matches struct fields: ASCII case ignored, and the Kelvin sign and long s taken for `k`
/// and `s` (the only non-ASCII characters that fold to ASCII letters).
pub(crate) fn folds_to(key: &str, name: &str) -> bool {
    let mut k = key.chars().map(|c| match c {
        '\u{212A}' => 'k',
        '\u{17F}' => 's',
        c => c.to_ascii_lowercase(),
    });
    let mut n = name.chars();
    loop {
        match (k.next(), n.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &[u8]) -> (Range<usize>, Quirks) {
        let s = scan(text);
        assert_eq!(s.rest, Rest::Done, "{:?}", String::from_utf8_lossy(text));
        assert_eq!(s.values.len(), 1);
        let q = s.quirks_in(&(0..text.len()));
        (s.values[0].clone(), q)
    }

    #[test]
    fn strict_json_has_no_quirks() {
        for text in [
            &br#"{"a":[1,2.5e3,-0,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"]}"#[..],
            b" [ ] ",
            b"{}",
            b"\"\"",
            b"0",
        ] {
            let (_, q) = one(text);
            assert_eq!(q, Quirks::default(), "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn each_leniency_is_accepted_and_named() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases: Vec<(Vec<u8>, Quirk)> = vec![
            (b"\xEF\xBB\xBF{}".to_vec(), Quirk::Bom),
            (br#"["\ud800"]"#.to_vec(), Quirk::LoneSurrogate),
            (br#"["\udc00\ud800x"]"#.to_vec(), Quirk::LoneSurrogate),
            (b"[\"\xff\xfe\"]".to_vec(), Quirk::InvalidUtf8),
            (b"[\"a\x01b\"]".to_vec(), Quirk::ControlCharacter),
            (b"[NaN]".to_vec(), Quirk::NonFiniteNumber),
            (b"[-Infinity]".to_vec(), Quirk::NonFiniteNumber),
            (b"[1e400]".to_vec(), Quirk::NumberOutOfRange),
            (
                format!("[{}]", "9".repeat(400)).into_bytes(),
                Quirk::NumberOutOfRange,
            ),
            (deep.into_bytes(), Quirk::DeepNesting),
        ];
        for (text, quirk) in cases {
            let (_, q) = one(&text);
            assert_eq!(
                q,
                Quirks::default().with(quirk),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
            assert!(!q.strict_decodable());
        }
    }

    #[test]
    fn serde_agrees_on_what_is_strict() {
        for text in [
            &br#"{"a":1}"#[..],
            b"[1e308]",
            b"[1e-400]",
            br#"["\ud83d\ude00"]"#,
            b"\xEF\xBB\xBF{}",
            br#"["\ud800"]"#,
            b"[NaN]",
        ] {
            let (_, q) = one(text);
            let serde_ok = serde_json::from_slice::<serde_json::Value>(text).is_ok();
            assert_eq!(
                q.strict_decodable(),
                serde_ok,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn deep_nesting_starts_where_serde_stops() {
        for depth in [127, 128, 129, 130] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let (_, q) = one(text.as_bytes());
            let serde_ok = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            assert_eq!(q.strict_decodable(), serde_ok, "depth {depth}");
        }
    }

    #[test]
    fn incomplete_and_invalid_text_are_told_apart() {
        for text in [
            &b"{"[..],
            b"{\"a\"",
            b"{\"a\":",
            b"[1,",
            b"\"abc",
            b"tr",
            b"-",
            b"1.",
            b"[\"\\u12",
        ] {
            assert_eq!(
                scan(text).rest,
                Rest::Incomplete(0),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        for (text, at) in [
            (&b"{]"[..], 1),
            (b"[1,]", 3),
            (b"hello", 0),
            (b"{\"a\" 1}", 5),
            (b"[\"a\nb\"]", 3),
            (b"\xff", 0),
        ] {
            assert_eq!(
                scan(text).rest,
                Rest::Invalid(at),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn several_values_are_each_found() {
        let text = b"{\"a\":1} [2]\n3 {\"b\"";
        let s = scan(text);
        assert_eq!(s.values, vec![0..7, 8..11, 12..13]);
        assert_eq!(s.rest, Rest::Incomplete(14));
    }

    #[test]
    fn a_million_levels_deep_does_not_overflow_the_stack() {
        let text = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        let (span, q) = one(text.as_bytes());
        assert_eq!(span.len(), text.len());
        assert!(!q.strict_decodable());
        assert_eq!(elements(text.as_bytes(), &span).len(), 1);
    }

    #[test]
    fn members_and_elements_follow_the_spans() {
        let text = br#" { "a" : [1, {"x":"}"}] , "b\"c":"d" ,"e":{}} "#;
        let (span, _) = one(text);
        let m = members(text, &span);
        let keys: Vec<String> = m.iter().map(|(k, _)| decode(text, k)).collect();
        assert_eq!(keys, ["a", "b\"c", "e"]);
        assert_eq!(&text[m[0].1.clone()], br#"[1, {"x":"}"}]"#);
        assert_eq!(&text[m[1].1.clone()], br#""d""#);
        let e = elements(text, &m[0].1);
        assert_eq!(e.len(), 2);
        assert_eq!(&text[e[1].clone()], br#"{"x":"}"}"#);
        assert!(members(text, &m[2].1).is_empty());
    }

    #[test]
    fn strings_decode_and_canonicalise() {
        let text = b"\"a\\u0062\\n\\ud83d\\ude00\\ud800\xffz\\\"\\u0001\"";
        let span = 0..text.len();
        assert_eq!(decode(text, &span), "ab\n😀\u{FFFD}\u{FFFD}z\"\u{1}");
        assert_eq!(
            canonical_string(text, &span),
            "\"ab\\n😀\\ud800\u{FFFD}z\\\"\\u0001\""
        );
        let plain = br#""r-5""#;
        assert_eq!(canonical_string(plain, &(0..plain.len())), "\"r-5\"");
        assert_eq!(
            canonical_string(plain, &(0..plain.len())),
            serde_json::to_string("r-5").unwrap_or_default()
        );
    }

    #[test]
    fn numbers_key_by_exact_value() {
        let key = |s: &str| canonical_number(s.as_bytes(), &(0..s.len()));
        assert_eq!(key("1"), key("1.0"));
        assert_eq!(key("1"), key("10e-1"));
        assert_eq!(key("1"), key("0.1E1"));
        assert_eq!(key("0"), key("-0"));
        assert_ne!(
            key("12345678901234567890123"),
            key("12345678901234567890124")
        );
        assert_ne!(key("1"), key("-1"));
        assert_eq!(key("NaN"), "NaN");
    }

    /// Text `serde_json` accepts is one value with no quirk here, and the other way round,
    /// whatever the bytes: the two readers agree on what strict JSON is.
    #[test]
    fn serde_and_the_lenient_reader_agree_on_strict_json() {
        use proptest::prelude::*;
        let seed = br#" {"a":[1,-2.5e-3,true,null,"x\u00e9\ud83d\ude00"],"b":{"c":"d"},"e":0} "#;
        let mutation = (0..seed.len(), any::<u8>(), 0..3u8);
        proptest!(ProptestConfig::with_cases(4000), |(edits in proptest::collection::vec(mutation, 1..4))| {
            let mut text = seed.to_vec();
            for (at, byte, how) in edits {
                let at = at.min(text.len().saturating_sub(1));
                match how {
                    0 => text[at] = byte,
                    1 => text.insert(at, byte),
                    _ => {
                        text.remove(at);
                    }
                }
            }
            let serde_ok = serde_json::from_slice::<serde_json::Value>(&text).is_ok();
            let s = scan(&text);
            let strict = s.rest == Rest::Done
                && s.values.len() == 1
                && s.quirks_in(&(0..text.len())).strict_decodable();
            prop_assert_eq!(serde_ok, strict, "{:?}", String::from_utf8_lossy(&text));
        });
    }

    /// A value cut into lines and scanned on line by line gives what one scan gives.
    #[test]
    fn scanning_on_gives_what_one_scan_gives() {
        let text: &[u8] =
            b"{ \"a\" : [ 1 , \"\\ud800\" , { \"deep\" : NaN } ] , \"b\" : \"\xff\" }";
        let whole = scan(text);
        let mut buf: Vec<u8> = Vec::new();
        let mut resume = None;
        let pieces: Vec<&[u8]> = text.split_inclusive(|&b| b == b' ').collect();
        for (n, piece) in pieces.iter().enumerate() {
            buf.extend_from_slice(piece);
            let mut s = scan_on(&buf, resume.take());
            if n + 1 < pieces.len() {
                assert_eq!(
                    s.rest,
                    Rest::Incomplete(0),
                    "after {:?}",
                    String::from_utf8_lossy(&buf)
                );
                resume = s.take_resume();
            } else {
                assert_eq!(s.values, whole.values);
                let all = 0..text.len();
                assert_eq!(s.quirks_in(&all), whole.quirks_in(&all));
                assert_eq!(
                    s.quirks_in(&all).names(),
                    ["lone_surrogate", "invalid_utf8", "non_finite_number"]
                );
            }
        }
    }

    #[test]
    fn keys_fold_like_go() {
        assert!(folds_to("METHOD", "method"));
        assert!(folds_to("paramſ", "params"));
        assert!(folds_to("\u{212A}ey", "key"));
        assert!(!folds_to("methods", "method"));
        assert!(!folds_to("méthod", "method"));
    }
}
