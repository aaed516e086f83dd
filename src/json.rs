//! A fast JSON validator and a top-level field scanner, for the read paths that see every line
//! of a large log: `verify` (is this line exactly one valid JSON value?) and `stats`/`query`
//! (what are this record's `tool`, `status`, `user_id`…?).
//!
//! Both work on bytes without building a tree. Strings, which are most of a record, are
//! skipped eight bytes at a time (SWAR). The validator follows RFC 8259 exactly; its tests
//! compare it with `serde_json` on generated and mutated inputs.

/// Nesting deeper than this is refused (`serde_json`'s limit is 128).
const MAX_DEPTH: usize = 256;

/// True when `bytes` is exactly one JSON value, optionally surrounded by JSON whitespace, and
/// valid UTF-8.
#[must_use]
pub fn is_valid(bytes: &[u8]) -> bool {
    if simdutf8::basic::from_utf8(bytes).is_err() {
        return false;
    }
    let mut p = Cursor { b: bytes, i: 0 };
    p.ws();
    if !p.value(0) {
        return false;
    }
    p.ws();
    p.i == bytes.len()
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bytes of `x` that are zero get their high bit set (exact; no false positives).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    // Exact variant: ((x & 0x7f..) + 0x7f..) | x has the high bit set for non-zero bytes.
    !(((x & !HI).wrapping_add(!HI)) | x) & HI
}

/// High bit set for each byte of `x` that is `"`, `\` or below 0x20.
#[inline]
fn special_bytes(x: u64) -> u64 {
    let quote = zero_bytes(x ^ (LO * u64::from(b'"')));
    let backslash = zero_bytes(x ^ (LO * u64::from(b'\\')));
    // Bytes < 0x20: their top three bits are zero.
    let control = zero_bytes(x & (LO * 0xe0));
    quote | backslash | control
}

impl Cursor<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return true;
        }
        loop {
            if self.peek() != Some(b'"') || !self.string() {
                return false;
            }
            self.ws();
            if self.peek() != Some(b':') {
                return false;
            }
            self.i += 1;
            self.ws();
            if !self.value(depth) {
                return false;
            }
            match self.comma_or_close(b'}') {
                Some(true) => {}
                Some(false) => return true,
                None => return false,
            }
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            match self.comma_or_close(b']') {
                Some(true) => {}
                Some(false) => return true,
                None => return false,
            }
        }
    }

    /// After a member or an element: past a `,` and whitespace (`Some(true)`: more follow) or
    /// past the closing `close` (`Some(false)`); `None` for anything else.
    #[inline]
    fn comma_or_close(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                self.ws();
                Some(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// At an opening quote: moves past the closing one. Returns false on a control byte or a
    /// bad escape.
    fn string(&mut self) -> bool {
        self.i += 1;
        loop {
            self.skip_plain();
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return true;
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return false;
                            }
                            self.i += 5;
                        }
                        _ => return false,
                    }
                }
                _ => return false, // control byte or end of input
            }
        }
    }

    /// Skips string bytes that are not `"`, `\` or control bytes.
    #[inline]
    fn skip_plain(&mut self) {
        let b = self.b;
        while self.i + 8 <= b.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&b[self.i..self.i + 8]);
            let special = special_bytes(u64::from_le_bytes(word));
            if special != 0 {
                self.i += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
        while let Some(&c) = b.get(self.i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                return;
            }
            self.i += 1;
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> bool {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return false,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return false;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return false;
            }
        }
        true
    }
}

/// A top-level value as found by [`for_each_field`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raw<'a> {
    /// A string: the text between the quotes, escapes not decoded, and whether it contains one.
    Str(&'a str, bool),
    /// A number, as written.
    Num(&'a [u8]),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object or array (skipped).
    Nested,
}

impl<'a> Raw<'a> {
    /// The string's text: borrowed when it has no escapes, decoded otherwise.
    #[must_use]
    pub fn text(self) -> Option<std::borrow::Cow<'a, str>> {
        match self {
            Raw::Str(s, false) => Some(std::borrow::Cow::Borrowed(s)),
            Raw::Str(s, true) => {
                let mut quoted = Vec::with_capacity(s.len() + 2);
                quoted.push(b'"');
                quoted.extend_from_slice(s.as_bytes());
                quoted.push(b'"');
                serde_json::from_slice::<String>(&quoted)
                    .ok()
                    .map(std::borrow::Cow::Owned)
            }
            _ => None,
        }
    }
}

/// Calls `f(key, value)` for each top-level field of a JSON object line, in order. Keys are
/// raw (escapes not decoded). Nested values are checked as [`is_valid`] checks them, not
/// decoded: a line is accepted exactly when it is one valid JSON object, so every reader
/// agrees with `verify` on what a record is.
///
/// # Errors
///
/// `Err(())` when the line is not one valid JSON object.
pub fn for_each_field<'a>(line: &'a [u8], mut f: impl FnMut(&'a [u8], Raw<'a>)) -> Result<(), ()> {
    // The scanner below only looks at ASCII structure; a line that is not UTF-8 is not JSON.
    // Checked once here, so every string span (cut at ASCII quotes) is text.
    let text = simdutf8::basic::from_utf8(line).map_err(|_| ())?;
    let mut p = Cursor { b: line, i: 0 };
    p.ws();
    if p.peek() != Some(b'{') {
        return Err(());
    }
    p.i += 1;
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
        return p.end();
    }
    loop {
        if p.peek() != Some(b'"') {
            return Err(());
        }
        let (key, _) = p.string_span().ok_or(())?;
        p.ws();
        if p.peek() != Some(b':') {
            return Err(());
        }
        p.i += 1;
        p.ws();
        let value = match p.peek() {
            Some(b'"') => {
                let start = p.i + 1;
                let (s, esc) = p.string_span().ok_or(())?;
                Raw::Str(text.get(start..start + s.len()).ok_or(())?, esc)
            }
            Some(b'{' | b'[') => {
                if !p.value(1) {
                    return Err(());
                }
                Raw::Nested
            }
            Some(b't') if p.literal(b"true") => Raw::Bool(true),
            Some(b'f') if p.literal(b"false") => Raw::Bool(false),
            Some(b'n') if p.literal(b"null") => Raw::Null,
            Some(b'-' | b'0'..=b'9') => {
                let start = p.i;
                if !p.number() {
                    return Err(());
                }
                Raw::Num(&line[start..p.i])
            }
            _ => return Err(()),
        };
        f(key, value);
        match p.comma_or_close(b'}') {
            Some(true) => {}
            Some(false) => return p.end(),
            None => return Err(()),
        }
    }
}

impl<'a> Cursor<'a> {
    fn end(&mut self) -> Result<(), ()> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(())
        }
    }

    /// At an opening quote: the string's inner bytes and whether they hold an escape.
    #[inline]
    fn string_span(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.i + 1;
        let mut escaped = false;
        self.i += 1;
        loop {
            self.skip_plain();
            match self.peek()? {
                b'"' => {
                    let s = &self.b[start..self.i];
                    self.i += 1;
                    return Some((s, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return None,
            }
        }
    }

    /// At a backslash in a string: moves past the escape, `None` when it is not a valid one.
    #[cold]
    fn escape(&mut self) -> Option<()> {
        self.i += 1;
        match self.peek()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
            b'u' => {
                let hex = self.b.get(self.i + 1..self.i + 5)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                self.i += 5;
            }
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The oracle. NOTE: `serde_json` skips ignored strings without checking their UTF-8, so
    /// the text is checked first, as RFC 8259 requires.
    fn serde_ok(b: &[u8]) -> bool {
        std::str::from_utf8(b)
            .is_ok_and(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok())
    }

    #[test]
    fn accepts_what_rfc_8259_accepts() {
        for ok in [
            &b"{}"[..],
            b"[]",
            b" {\"a\" : [1, -2.5e+3, 0, true, false, null, \"x\\u00e9\\n\"]}\r\n",
            b"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
            b"0",
            b"-0.0e0",
            "{\"k\":\"é😀\"}".as_bytes(),
        ] {
            assert!(is_valid(ok), "{}", String::from_utf8_lossy(ok));
            assert!(serde_ok(ok));
        }
    }

    #[test]
    fn refuses_what_rfc_8259_refuses() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"[1,]",
            b"01",
            b"1.",
            b"1e",
            b"-",
            b"tru",
            b"\"a\tb\"",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"{} {}",
            b"{\"a\":1}x",
            b"\xff",
            b"{'a':1}",
            b"NaN",
            b"{\"a\" 1}",
            b"\"abc",
        ] {
            assert!(!is_valid(bad), "{}", String::from_utf8_lossy(bad));
            assert!(!serde_ok(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let deep = "[".repeat(100_000);
        assert!(!is_valid(deep.as_bytes()));
    }

    #[test]
    fn swar_finds_every_special_byte() {
        for pos in 0..8 {
            for special in [b'"', b'\\', 0u8, 0x1f] {
                let mut w = [b'a'; 8];
                w[pos] = special;
                let s = special_bytes(u64::from_le_bytes(w));
                assert_eq!(s.trailing_zeros() / 8, pos as u32);
            }
            let mut w = [b'a'; 8];
            w[pos] = 0x20;
            assert_eq!(special_bytes(u64::from_le_bytes(w)), 0);
            w[pos] = 0xe9;
            assert_eq!(special_bytes(u64::from_le_bytes(w)), 0);
        }
    }

    #[test]
    fn the_field_scanner_accepts_exactly_the_valid_objects() {
        for line in [
            &br#"{"a":{"x":[1,}}"#[..],
            br#"{"a":[1 2]}"#,
            br#"{"a":{"k" 1}}"#,
            br#"{"a":"\q"}"#,
            br#"{"a":"\u12"}"#,
            br#"{"a":[tru]}"#,
            br#"{"a":{}}x"#,
        ] {
            assert!(!is_valid(line));
            assert!(
                for_each_field(line, |_, _| {}).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(300), "]".repeat(300));
        assert!(for_each_field(deep.as_bytes(), |_, _| {}).is_err());
        let ok = br#"{"a":{"x":["}",{"y":null}],"u":"\u00e9\n"},"b":-1.5e3}"#;
        assert!(is_valid(ok) && for_each_field(ok, |_, _| {}).is_ok());
    }

    #[test]
    fn fields_are_found_in_order_with_nested_values_skipped() {
        let line = br#"{"seq":1,"a":{"x":"}"},"tool":"t\"q","n":null,"b":[1,[2]],"ok":true}"#;
        let mut seen = Vec::new();
        for_each_field(line, |k, v| {
            seen.push((String::from_utf8_lossy(k).into_owned(), v));
        })
        .expect("object");
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[0].1, Raw::Num(b"1"));
        assert_eq!(seen[1].1, Raw::Nested);
        assert_eq!(seen[2].1.text().as_deref(), Some("t\"q"));
        assert_eq!(seen[3].1, Raw::Null);
        assert_eq!(seen[5].1, Raw::Bool(true));
        assert!(for_each_field(b"[1]", |_, _| {}).is_err());
        assert!(for_each_field(b"{\"a\":1", |_, _| {}).is_err());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".*".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Strings dense in backslashes and quotes, padded so escapes straddle 8-byte words: the
    /// validator and the field scanner agree with `serde_json`.
    #[test]
    fn escapes_across_block_boundaries() {
        let pieces: &[&str] = &[
            "\\\\", "\\\"", "\\", "\"", "a", "\\u0041", "\\n", "\u{1}", "\u{e9}",
        ];
        let mut n = 0u32;
        for pad in 0..70 {
            for a in pieces {
                for b in pieces {
                    for c in pieces {
                        let inner = format!("{}{a}{b}{c}", "x".repeat(pad));
                        let line = format!("{{\"k\":\"{inner}\",\"z\":1}}");
                        let bytes = line.as_bytes();
                        assert_eq!(is_valid(bytes), serde_ok(bytes), "{line:?}");
                        let mut z = None;
                        let scanned = for_each_field(bytes, |k, v| {
                            if k == b"z" {
                                z = Some(v);
                            }
                        });
                        if serde_ok(bytes) {
                            assert!(scanned.is_ok(), "{line:?}");
                            assert_eq!(z, Some(Raw::Num(b"1")), "{line:?}");
                        }
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 50_000);
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json_on_valid_and_mutated_documents(
            v in json_value(),
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<bool>(),
        ) {
            let text = serde_json::to_vec(&v).expect("serialise");
            prop_assert!(is_valid(&text));
            let mut bad = text.clone();
            let i = pos.index(bad.len());
            if cut { bad.truncate(i); } else { bad[i] = byte; }
            prop_assert_eq!(is_valid(&bad), serde_ok(&bad), "{:?}", String::from_utf8_lossy(&bad));
            let object = bad.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            prop_assert_eq!(
                for_each_field(&bad, |_, _| {}).is_ok(),
                is_valid(&bad) && object,
                "{:?}",
                String::from_utf8_lossy(&bad)
            );
        }
    }
}
