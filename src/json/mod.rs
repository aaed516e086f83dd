//! A fast JSON validator and a top-level field scanner, for the read paths that see every line
//! of a large log: `verify` (is this line exactly one valid JSON value?) and `stats`/`query`
//! (what are this record's `tool`, `status`, `user_id`…?).
//!
//! Both work on bytes without building a tree. A first pass classifies each 64-byte block
//! with AVX2 or SSE2 ([`simd`], detected once; SWAR elsewhere) and notes whether the line is
//! all ASCII, so the UTF-8 check runs only on lines that are not. The validator then checks a
//! line without backslashes by its structural positions alone ([`structure`], simdjson's
//! stage 1 and a small stage 2); a line with escapes, and the field scanner, take the
//! recursive descent below, which skips each string's plain text with one bit scan. `verify`
//! hashes each block and classifies it in the same pass ([`hash_and_validate`]), while it is
//! in cache. The validator follows RFC 8259 exactly; its tests compare it with `serde_json`
//! on generated and damaged inputs, with each kernel.

mod simd;
mod structure;

use sha2::{Digest, Sha256};

pub(crate) use simd::string_stop;
use simd::{BLOCK, Kernel};
use structure::Summary;

/// Nesting deeper than this is refused (`serde_json`'s limit is 128).
const MAX_DEPTH: usize = 256;

/// Lines up to this many 64-byte blocks keep their masks on the stack (4 KiB of text).
const STACK_BLOCKS: usize = 64;

/// True when `bytes` is exactly one JSON value, optionally surrounded by JSON whitespace, and
/// valid UTF-8.
#[must_use]
pub fn is_valid(bytes: &[u8]) -> bool {
    is_valid_with(Kernel::detect(), bytes)
}

fn is_valid_with(kernel: Kernel, bytes: &[u8]) -> bool {
    with_masks::<true, _>(
        kernel,
        bytes,
        |_| {},
        |stops, structural, sum| validate(bytes, stops, structural, sum),
    )
}

/// The SHA-256 of `line` and whether it is valid JSON as [`is_valid`] says, in one pass over
/// the bytes: each 64-byte block is hashed and classified while it is in cache.
#[must_use]
pub(crate) fn hash_and_validate(line: &[u8]) -> ([u8; 32], bool) {
    hash_and_validate_with(Kernel::detect(), line)
}

fn hash_and_validate_with(kernel: Kernel, line: &[u8]) -> ([u8; 32], bool) {
    let mut sha = Sha256::new();
    let valid = with_masks::<true, _>(
        kernel,
        line,
        |block| sha.update(block),
        |stops, structural, sum| validate(line, stops, structural, sum),
    );
    (sha.finalize().into(), valid)
}

/// Runs `f` with the masks of `bytes` and what the first pass found ([`structure::scan`],
/// which calls `each` with every block).
#[inline]
fn with_masks<const FULL: bool, R>(
    kernel: Kernel,
    bytes: &[u8],
    each: impl FnMut(&[u8]),
    f: impl FnOnce(&[u64], &[u64], Summary) -> R,
) -> R {
    let words = bytes.len() / BLOCK + 1;
    if words <= STACK_BLOCKS {
        let mut stops = [0u64; STACK_BLOCKS];
        let mut structural = [0u64; STACK_BLOCKS];
        let (stops, structural) = (&mut stops[..words], &mut structural[..words]);
        let sum = structure::scan::<FULL>(kernel, bytes, stops, structural, each);
        f(stops, structural, sum)
    } else {
        let (mut stops, mut structural) = (vec![0u64; words], vec![0u64; words]);
        let sum = structure::scan::<FULL>(kernel, bytes, &mut stops, &mut structural, each);
        f(&stops, &structural, sum)
    }
}

fn validate(bytes: &[u8], stops: &[u64], structural: &[u64], sum: Summary) -> bool {
    if sum.non_ascii && simdutf8::basic::from_utf8(bytes).is_err() {
        return false;
    }
    if !sum.backslash {
        return sum.strings_ok && structure::grammar(bytes, structural);
    }
    let mut p = Cursor {
        b: bytes,
        i: 0,
        masks: stops,
    };
    p.ws();
    if !p.value(0) {
        return false;
    }
    p.ws();
    p.i == bytes.len()
}

struct Cursor<'a, 'm> {
    b: &'a [u8],
    i: usize,
    /// Bit `k` of word `w`: byte `64w + k` is `"`, `\`, a control byte or past the end.
    masks: &'m [u64],
}

impl Cursor<'_, '_> {
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
            if !self.element(depth) {
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
            if !self.element(depth) {
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
    #[inline]
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
                    if self.escape().is_none() {
                        return false;
                    }
                }
                _ => return false, // control byte or end of input
            }
        }
    }

    /// A member's or an element's value: strings, the most common, without a call.
    #[inline]
    fn element(&mut self, depth: usize) -> bool {
        if self.peek() == Some(b'"') {
            self.string()
        } else {
            self.value(depth)
        }
    }

    /// Skips string bytes that are not `"`, `\\` or control bytes: to the next marked one.
    #[inline]
    fn skip_plain(&mut self) {
        loop {
            let bits = self.masks[self.i / BLOCK] >> (self.i % BLOCK);
            if bits != 0 {
                self.i += bits.trailing_zeros() as usize;
                return;
            }
            // NOTE: the last word has bits set for every position past the end, so this
            // stops at the end of the input at the latest.
            self.i = (self.i / BLOCK + 1) * BLOCK;
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
pub fn for_each_field<'a>(line: &'a [u8], f: impl FnMut(&'a [u8], Raw<'a>)) -> Result<(), ()> {
    for_each_field_with(Kernel::detect(), line, f)
}

fn for_each_field_with<'a>(
    kernel: Kernel,
    line: &'a [u8],
    f: impl FnMut(&'a [u8], Raw<'a>),
) -> Result<(), ()> {
    with_masks::<false, _>(kernel, line, |_| {}, |stops, _, _| fields(line, stops, f))
}

fn fields<'a>(
    line: &'a [u8],
    masks: &[u64],
    mut f: impl FnMut(&'a [u8], Raw<'a>),
) -> Result<(), ()> {
    // The scanner below only looks at ASCII structure; a line that is not UTF-8 is not JSON.
    // Checked once here, so every string span (cut at ASCII quotes) is text.
    let text = simdutf8::basic::from_utf8(line).map_err(|_| ())?;
    let mut p = Cursor {
        b: line,
        i: 0,
        masks,
    };
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

impl<'a> Cursor<'a, '_> {
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

    /// [`is_valid`] with every kernel, and [`hash_and_validate`] with every kernel, which must
    /// all agree (and hash as `sha2` does).
    fn valid(b: &[u8]) -> bool {
        let want = is_valid_with(Kernel::Swar, b);
        let hash: [u8; 32] = Sha256::digest(b).into();
        for kernel in simd::kernels() {
            assert_eq!(
                is_valid_with(kernel, b),
                want,
                "{kernel:?} {:?}",
                String::from_utf8_lossy(b)
            );
            assert_eq!(
                hash_and_validate_with(kernel, b),
                (hash, want),
                "{kernel:?} {:?}",
                String::from_utf8_lossy(b)
            );
        }
        assert_eq!(is_valid(b), want);
        want
    }

    /// [`for_each_field`] with every kernel, which must all see the same fields and verdict.
    fn scan_fields<'a>(line: &'a [u8], mut f: impl FnMut(&'a [u8], Raw<'a>)) -> Result<(), ()> {
        let mut runs = simd::kernels().into_iter().map(|k| {
            let mut seen = Vec::new();
            let r = for_each_field_with(k, line, |key, v| seen.push((key, v)));
            (r, seen)
        });
        let (want, seen) = runs.next().expect("the SWAR kernel");
        for run in runs {
            assert_eq!(
                run,
                (want, seen.clone()),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        for (k, v) in seen {
            f(k, v);
        }
        want
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
            assert!(valid(ok), "{}", String::from_utf8_lossy(ok));
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
            b"{\"a\":1]",
            b"[1}",
            b"{\"a\":[1}]",
            b"[{\"a\":1]]",
            b"{\"a\" \"b\"}",
            b"{\"a\":1 \"b\":2}",
            b"[1 2]",
            b"[\"a\"\"b\"]",
            b"[truefalse]",
            b"[1\x01]",
            b"{\"a\":\"x\x01\"}",
            b"[\"\xff\"]",
            b"[nul]",
            b"{1:2}",
            b"{\"a\"}",
            b"{\"a\":}",
            b"[,1]",
            b"{,}",
            b"\"a\" x",
        ] {
            assert!(!valid(bad), "{}", String::from_utf8_lossy(bad));
            assert!(!serde_ok(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let deep = "[".repeat(100_000);
        assert!(!valid(deep.as_bytes()));
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
            assert!(!valid(line));
            assert!(
                scan_fields(line, |_, _| {}).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(300), "]".repeat(300));
        assert!(scan_fields(deep.as_bytes(), |_, _| {}).is_err());
        let ok = br#"{"a":{"x":["}",{"y":null}],"u":"\u00e9\n"},"b":-1.5e3}"#;
        assert!(valid(ok) && scan_fields(ok, |_, _| {}).is_ok());
    }

    #[test]
    fn fields_are_found_in_order_with_nested_values_skipped() {
        let line = br#"{"seq":1,"a":{"x":"}"},"tool":"t\"q","n":null,"b":[1,[2]],"ok":true}"#;
        let mut seen = Vec::new();
        scan_fields(line, |k, v| {
            seen.push((String::from_utf8_lossy(k).into_owned(), v));
        })
        .expect("object");
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[0].1, Raw::Num(b"1"));
        assert_eq!(seen[1].1, Raw::Nested);
        assert_eq!(seen[2].1.text().as_deref(), Some("t\"q"));
        assert_eq!(seen[3].1, Raw::Null);
        assert_eq!(seen[5].1, Raw::Bool(true));
        assert!(scan_fields(b"[1]", |_, _| {}).is_err());
        assert!(scan_fields(b"{\"a\":1", |_, _| {}).is_err());
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

    /// Like [`json_value`], with keys and strings of a few letters.
    fn compact_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            (-100i64..100).prop_map(serde_json::Value::from),
            "[a-z]{0,3}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z]{0,2}", inner, 0..5)
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
                        assert_eq!(valid(bytes), serde_ok(bytes), "{line:?}");
                        let mut z = None;
                        let scanned = scan_fields(bytes, |k, v| {
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

    /// How one generated document is damaged.
    #[derive(Clone, Copy, Debug)]
    enum Damage {
        Keep,
        Replace(u8),
        Insert(u8),
        Remove,
        Truncate,
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            Just(Damage::Keep),
            any::<u8>().prop_map(Damage::Replace),
            any::<u8>().prop_map(Damage::Insert),
            // Bytes the grammar turns on: structure, escapes, control bytes, non-ASCII.
            prop::sample::select(&b"{}[]\":,\\ \t\n\r\x00\x1f\x7f\x80\xc3\xffu0e-+.tfn"[..])
                .prop_map(Damage::Insert),
            prop::sample::select(&b"{}[]\":, \x01\\"[..]).prop_map(Damage::Replace),
            Just(Damage::Remove),
            Just(Damage::Truncate),
        ]
    }

    fn apply(mut text: Vec<u8>, at: prop::sample::Index, d: Damage) -> Vec<u8> {
        let i = at.index(text.len() + 1);
        match d {
            Damage::Keep => {}
            Damage::Replace(b) if i < text.len() => text[i] = b,
            Damage::Insert(b) | Damage::Replace(b) => text.insert(i, b),
            Damage::Remove if i < text.len() => {
                text.remove(i);
            }
            Damage::Remove | Damage::Truncate => text.truncate(i),
        }
        text
    }

    /// The agreement every differential case checks: the validator (each kernel, with and
    /// without hashing) against `serde_json`, and the field scanner against the validator.
    fn check(doc: &[u8]) -> Result<(), TestCaseError> {
        let ok = valid(doc);
        prop_assert_eq!(ok, serde_ok(doc), "{:?}", String::from_utf8_lossy(doc));
        let object = doc.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        prop_assert_eq!(
            scan_fields(doc, |_, _| {}).is_ok(),
            ok && object,
            "{:?}",
            String::from_utf8_lossy(doc)
        );
        Ok(())
    }

    /// String contents: plain text, every escape, bad escapes, quotes, control bytes, DEL,
    /// multi-byte UTF-8 and bytes that are not UTF-8.
    const PIECES: &[&[u8]] = &[
        b"a",
        b" ",
        b"\\\"",
        b"\\\\",
        b"\\/",
        b"\\b\\f\\n\\r\\t",
        b"\\u00e9",
        b"\\uD83D\\uDE00",
        b"\\u12",
        b"\\x",
        b"\\",
        b"\"",
        b"\x00",
        b"\x1f",
        b"\t",
        b"\x7f",
        "é".as_bytes(),
        "😀".as_bytes(),
        b"\xc3",
        b"\xed\xa0\x80",
        b"\xff",
    ];

    fn string_piece() -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(PIECES).prop_map(<[u8]>::to_vec)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn agrees_with_serde_json_on_valid_and_damaged_documents(
            v in json_value(),
            first in (any::<prop::sample::Index>(), damage()),
            second in (any::<prop::sample::Index>(), damage()),
        ) {
            let text = serde_json::to_vec(&v).expect("serialise");
            prop_assert!(valid(&text));
            let pretty = serde_json::to_vec_pretty(&v).expect("serialise");
            prop_assert!(valid(&pretty));
            let doc = apply(apply(text, first.0, first.1), second.0, second.1);
            check(&doc)?;
            check(&apply(pretty, first.0, first.1))?;
        }

        /// Strings of every length 0..100 starting at every offset of a 64-byte block, with
        /// a special piece anywhere in them: escapes and stops on both sides of 16, 32 and
        /// 64-byte boundaries.
        #[test]
        fn agrees_with_serde_json_on_strings_across_block_boundaries(
            pad in 0usize..64,
            len in 0usize..100,
            pieces in prop::collection::vec((any::<prop::sample::Index>(), string_piece()), 0..3),
            key in any::<bool>(),
        ) {
            let mut body = vec![b'x'; len];
            for (at, piece) in pieces {
                let i = at.index(body.len() + 1);
                body.splice(i..i, piece);
            }
            let mut doc = format!("{{\"p\":\"{}\",", "y".repeat(pad)).into_bytes();
            if key {
                doc.push(b'"');
                doc.extend_from_slice(&body);
                doc.extend_from_slice(b"\":1}");
            } else {
                doc.extend_from_slice(b"\"k\":\"");
                doc.extend_from_slice(&body);
                doc.extend_from_slice(b"\"}");
            }
            check(&doc)?;
        }

        /// Soup from JSON's own alphabet: structure in every order, most of it invalid.
        #[test]
        fn agrees_with_serde_json_on_random_structure(
            doc in prop::collection::vec(
                prop::sample::select(&b"{}[]\":,\\ \n0123456789-+.eEtrufalsn\x01\x80"[..]),
                0..80,
            ),
        ) {
            check(&doc)?;
        }

        /// Numbers: every shape RFC 8259 allows and many it does not, as a value and in an
        /// array.
        #[test]
        fn agrees_with_serde_json_on_numbers(n in "-?(0|[1-9][0-9]{0,25}|0[0-9]|)(\\.[0-9]{0,4})?([eE][+-]?[0-9]{0,3})?") {
            check(n.as_bytes())?;
            check(format!("[{n},{n}]").as_bytes())?;
            check(format!("{{\"n\":{n}}}").as_bytes())?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Every structural byte of a compact document (short keys and strings, so structure
        /// is most of it) replaced in turn by each other one, and removed.
        #[test]
        fn agrees_with_serde_json_when_any_structural_byte_changes(v in compact_value()) {
            let text = serde_json::to_vec(&v).expect("serialise");
            for (i, &b) in text.iter().enumerate() {
                if !b"{}[]:,\"".contains(&b) {
                    continue;
                }
                for &r in b"{}[]:,\" 1" {
                    let mut doc = text.clone();
                    doc[i] = r;
                    check(&doc)?;
                }
                let mut doc = text.clone();
                doc.remove(i);
                check(&doc)?;
            }
        }
    }

    #[test]
    fn nesting_is_accepted_to_the_limit_and_refused_past_it() {
        for depth in [1, 2, 127, 128, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            assert_eq!(valid(arrays.as_bytes()), depth <= MAX_DEPTH, "{depth}");
            assert_eq!(valid(objects.as_bytes()), depth <= MAX_DEPTH, "{depth}");
            if depth <= 127 {
                assert!(serde_ok(arrays.as_bytes()) && serde_ok(objects.as_bytes()));
            }
        }
    }

    #[test]
    fn long_lines_past_the_stack_masks_are_validated_and_hashed_the_same() {
        for len in [STACK_BLOCKS * BLOCK - 20, STACK_BLOCKS * BLOCK + 7, 100_000] {
            let body = "é\\n".repeat(len / 4);
            for doc in [
                format!("{{\"k\":\"{body}\"}}"),
                format!("{{\"k\":\"{body}\u{1}\"}}"),
                format!("{{\"k\":\"{body}\""),
            ] {
                assert_eq!(valid(doc.as_bytes()), serde_ok(doc.as_bytes()));
            }
        }
    }
}
