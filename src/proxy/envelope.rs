//! The JSON-RPC envelope of a message, read leniently: the few fields the proxy records
//! (`id`, `method`, `params.name`, identity, outcome) out of a value that [`lenient::scan`]
//! found complete, whatever a strict parser would think of the rest.
//!
//! Where servers disagree, the reading that records more wins:
//!
//! - A key given twice: the last one counts (JavaScript, Python, Go), but a request is a call
//!   when *any* of its `method` values names a recorded method.
//! - A key that matches only case-insensitively (`"METHOD"`, `"Params"`): Go's
//!   `encoding/json` takes it, so it is used when no exact key is present.
//! - Arguments that `serde_json` cannot decode are kept as text: see [`Args`].
//!
//! [`lenient::scan`]: super::lenient::scan

use std::cell::Cell;
use std::ops::Range;

use serde_json::Value;

use super::lenient::{self, Quirk, Quirks, Scan};
use crate::redact::REDACTED;
use crate::redact::Redactor;

/// The longest text kept of an id that is not a string or a number.
const MAX_ODD_ID: usize = 256;

/// One JSON-RPC message (an object) inside a scanned text.
pub(crate) struct Message<'a> {
    t: &'a [u8],
    scan: &'a Scan,
    span: Range<usize>,
    quirks: Cell<Quirks>,
}

/// The messages in a complete value: the value itself when it is an object, each object in it
/// when it is an array (a batch). `framing` adds the quirks of how the value was found (several
/// on one line, split across lines).
pub(crate) fn messages<'a>(
    t: &'a [u8],
    scan: &'a Scan,
    value: &Range<usize>,
    framing: Quirks,
) -> Vec<Message<'a>> {
    let message = |span: Range<usize>, extra: Quirks| Message {
        t,
        quirks: Cell::new(scan.quirks_in(&span).union(framing).union(extra)),
        scan,
        span,
    };
    match t.get(value.start) {
        Some(b'{') => vec![message(value.clone(), Quirks::default())],
        Some(b'[') => lenient::elements(t, value)
            .into_iter()
            .filter(|e| t.get(e.start) == Some(&b'{'))
            .map(|e| message(e, Quirks::default().with(Quirk::Batch)))
            .collect(),
        _ => Vec::new(),
    }
}

impl<'a> Message<'a> {
    /// The top-level object.
    pub(crate) fn root(&self) -> Obj<'_> {
        Val {
            t: self.t,
            span: self.span.clone(),
            seen: &self.quirks,
        }
        .obj()
        .unwrap_or_else(|| Obj {
            members: Vec::new(),
            seen: &self.quirks,
        })
    }

    /// The message's bytes as sent.
    pub(crate) fn text(&self) -> &'a [u8] {
        &self.t[self.span.clone()]
    }

    /// Where the message is in the text it was read from.
    pub(crate) fn span(&self) -> &Range<usize> {
        &self.span
    }

    /// The quirks of the message's text and of reading its envelope so far.
    pub(crate) fn quirks(&self) -> Quirks {
        self.quirks.get()
    }

    /// Every value a server may take for `method`: each `method` key, exact or case-folded.
    pub(crate) fn methods(&self) -> Vec<String> {
        self.root()
            .all("method")
            .filter_map(Val::str)
            .collect::<Vec<_>>()
    }

    /// The arguments at `v`: decoded when `serde_json` can decode them, else their redacted
    /// text.
    pub(crate) fn args(&self, v: &Val<'_>, redactor: &Redactor) -> Args {
        if self.scan.quirks_in(&v.span).strict_decodable()
            && let Ok(value) = serde_json::from_slice::<Value>(v.text())
        {
            return Args::Value(value);
        }
        Args::Raw(raw_args(self.t, &v.span, redactor))
    }
}

/// A message's arguments.
#[derive(Debug)]
pub(crate) enum Args {
    /// Decoded (the logger redacts them like any `args_summary`).
    Value(Value),
    /// Text that `serde_json` cannot decode (a lone surrogate, a number beyond `f64`, `NaN`,
    /// 128 levels of nesting, invalid UTF-8, …): the arguments exactly as sent, except that
    /// the value of every sensitive key (SPEC §5 key rule, any depth) is replaced by
    /// `"**REDACTED**"` and invalid UTF-8 bytes by U+FFFD. The logger applies the value
    /// patterns to it as to any string.
    Raw(String),
}

/// The arguments' text with the values of sensitive keys masked, in one linear pass (the text
/// may be nested a million levels deep).
fn raw_args(t: &[u8], span: &Range<usize>, redactor: &Redactor) -> String {
    let masked = sensitive_values(t, span, redactor);
    let mut out = Vec::with_capacity(span.len());
    let mut at = span.start;
    for m in masked {
        out.extend_from_slice(&t[at..m.start]);
        out.push(b'"');
        out.extend_from_slice(REDACTED.as_bytes());
        out.push(b'"');
        at = m.end;
    }
    out.extend_from_slice(&t[at..span.end]);
    String::from_utf8_lossy(&out).into_owned()
}

/// The spans of the values under sensitive keys, in order, none inside another.
fn sensitive_values(t: &[u8], span: &Range<usize>, redactor: &Redactor) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut in_object: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut i = span.start;
    while i < span.end {
        match t[i] {
            b'{' => {
                in_object.push(true);
                expect_key = true;
                i += 1;
            }
            b'[' => {
                in_object.push(false);
                expect_key = false;
                i += 1;
            }
            b'}' | b']' => {
                in_object.pop();
                expect_key = false;
                i += 1;
            }
            b',' => {
                expect_key = in_object.last() == Some(&true);
                i += 1;
            }
            b'"' if expect_key => {
                let key = i..lenient::string_end(t, i);
                expect_key = false;
                i = key.end;
                if redactor.is_sensitive_key(&lenient::decode(t, &key)) {
                    let value = lenient::ws(t, lenient::ws(t, i) + 1);
                    let end = lenient::value_end(t, value);
                    out.push(value..end);
                    i = end;
                }
            }
            b'"' => i = lenient::string_end(t, i),
            b':' | b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            _ => i = lenient::value_end(t, i).max(i + 1),
        }
    }
    out
}

/// A value inside a scanned text.
#[derive(Clone, Debug)]
pub(crate) struct Val<'a> {
    t: &'a [u8],
    span: Range<usize>,
    /// The message's quirks, to which reading its envelope adds.
    seen: &'a Cell<Quirks>,
}

impl<'a> Val<'a> {
    /// The value's bytes as sent.
    pub(crate) fn text(&self) -> &'a [u8] {
        &self.t[self.span.clone()]
    }

    fn first(&self) -> u8 {
        self.t.get(self.span.start).copied().unwrap_or(0)
    }

    /// The decoded string (lone surrogates and invalid UTF-8 as U+FFFD).
    pub(crate) fn str(&self) -> Option<String> {
        (self.first() == b'"').then(|| lenient::decode(self.t, &self.span))
    }

    pub(crate) fn bool(&self) -> Option<bool> {
        match self.text() {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    /// An integer (a JSON-RPC error code); a fraction or an exponent is cut to its integer.
    pub(crate) fn i64(&self) -> Option<i64> {
        let s = std::str::from_utf8(self.text()).ok()?;
        s.parse::<i64>().ok().or_else(|| {
            let f = s.parse::<f64>().ok().filter(|f| f.is_finite())?;
            Some(f.trunc() as i64)
        })
    }

    pub(crate) fn obj(&self) -> Option<Obj<'a>> {
        (self.first() == b'{').then(|| Obj {
            members: lenient::members(self.t, &self.span)
                .into_iter()
                .map(|(k, span)| (lenient::decode(self.t, &k), self.at(span)))
                .collect(),
            seen: self.seen,
        })
    }

    pub(crate) fn elements(&self) -> Vec<Val<'a>> {
        lenient::elements(self.t, &self.span)
            .into_iter()
            .map(|span| self.at(span))
            .collect()
    }

    fn at(&self, span: Range<usize>) -> Val<'a> {
        Val {
            t: self.t,
            span,
            seen: self.seen,
        }
    }

    /// The value as an id.
    pub(crate) fn id(&self) -> Id {
        match self.first() {
            b'"' => {
                let text = lenient::canonical_string(self.t, &self.span);
                Id::Key {
                    key: text.clone(),
                    text,
                }
            }
            b'-' | b'0'..=b'9' | b'N' | b'I' => Id::Key {
                key: lenient::canonical_number(self.t, &self.span),
                text: String::from_utf8_lossy(self.text()).into_owned(),
            },
            _ => {
                let mut text = String::from_utf8_lossy(self.text()).into_owned();
                if text.len() > MAX_ODD_ID {
                    let mut cut = MAX_ODD_ID;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    text.push('…');
                }
                Id::Unusable(text)
            }
        }
    }
}

/// A request's or an answer's `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Id {
    /// No `id` key: a notification.
    Absent,
    /// A string or a number. `key` matches the same id however it is spelt (`1.0` and `1`,
    /// `"\u0061"` and `"a"`), never two different ones (`1` and `"1"`, two integers beyond
    /// `f64`); `text` is the id as sent: a number's text, or a string as one canonical JSON
    /// string literal, quotes included.
    Key { key: String, text: String },
    /// `null`, an object, an array or a boolean: no answer can be matched to it (its text, cut
    /// to 256 bytes).
    Unusable(String),
}

/// An object's members, keys decoded.
pub(crate) struct Obj<'c> {
    members: Vec<(String, Val<'c>)>,
    seen: &'c Cell<Quirks>,
}

impl<'c> Obj<'c> {
    fn note(&self, q: Quirk) {
        self.seen.set(self.seen.get().with(q));
    }

    /// The member a server takes for `name` (lower-case ASCII): the last exact key, else the
    /// last case-folded one. Notes a duplicate or a folded key among the message's quirks.
    pub(crate) fn get(&self, name: &str) -> Option<&Val<'c>> {
        let mut exact = None;
        let mut folded = None;
        let mut count = 0;
        for (k, v) in &self.members {
            if k == name {
                exact = Some(v);
                count += 1;
            } else if lenient::folds_to(k, name) {
                folded = Some(v);
                count += 1;
            }
        }
        if count > 1 {
            self.note(Quirk::DuplicateKey);
        }
        if exact.is_none() && folded.is_some() {
            self.note(Quirk::CaseFoldedKey);
        }
        exact.or(folded)
    }

    /// Every member a server may take for `name`, in order.
    pub(crate) fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Val<'c>> + 's {
        self.members
            .iter()
            .filter(move |(k, _)| k == name || lenient::folds_to(k, name))
            .map(|(_, v)| v)
    }

    /// `get(name)` as an object.
    pub(crate) fn obj(&self, name: &str) -> Option<Obj<'c>> {
        self.get(name)?.obj()
    }

    /// `get(name)` as a decoded string.
    pub(crate) fn str(&self, name: &str) -> Option<String> {
        self.get(name)?.str()
    }

    /// The request's or answer's id.
    pub(crate) fn id(&self) -> Id {
        self.get("id").map_or(Id::Absent, Val::id)
    }

    /// `_meta[key].name`: identity in the 2026-07-28 protocol.
    pub(crate) fn meta_name(&self, key: &str) -> Option<String> {
        self.obj("_meta")?.obj(key)?.str("name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_message<R>(text: &[u8], f: impl FnOnce(&Message<'_>) -> R) -> R {
        let scan = lenient::scan(text);
        let msgs = messages(text, &scan, &scan.values[0], Quirks::default());
        f(&msgs[0])
    }

    #[test]
    fn ids_keep_their_type_and_every_digit() {
        let id = |text: &str| with_message(text.as_bytes(), |m| m.root().id());
        let key = |i: Id| match i {
            Id::Key { key, .. } => key,
            other => panic!("{other:?}"),
        };
        assert_ne!(key(id(r#"{"id":1}"#)), key(id(r#"{"id":"1"}"#)));
        assert_eq!(key(id(r#"{"id":1}"#)), key(id(r#"{"id":1.0}"#)));
        assert_ne!(
            key(id(r#"{"id":12345678901234567890123}"#)),
            key(id(r#"{"id":12345678901234567890124}"#))
        );
        assert_eq!(
            id(r#"{"id":12345678901234567890123}"#),
            Id::Key {
                key: "12345678901234567890123e0".into(),
                text: "12345678901234567890123".into()
            }
        );
        assert_eq!(key(id(r#"{"id":"a"}"#)), key(id(r#"{"id":"\u0061"}"#)));
        assert_eq!(id(r#"{"id":null}"#), Id::Unusable("null".into()));
        assert_eq!(id(r#"{"id":{"a":1}}"#), Id::Unusable(r#"{"a":1}"#.into()));
        assert_eq!(id(r#"{"id":true}"#), Id::Unusable("true".into()));
        assert_eq!(id(r#"{"method":"x"}"#), Id::Absent);
    }

    #[test]
    fn duplicate_and_case_folded_keys_are_read_as_servers_do() {
        with_message(
            br#"{"method":"tools/list","method":"tools/call","ID":7}"#,
            |m| {
                let root = m.root();
                assert_eq!(root.str("method").as_deref(), Some("tools/call"));
                assert_eq!(m.methods(), ["tools/list", "tools/call"]);
                assert!(matches!(root.id(), Id::Key { text, .. } if text == "7"));
                assert_eq!(m.quirks().names(), ["duplicate_key", "case_folded_key"]);
            },
        );
    }

    #[test]
    fn undecodable_arguments_are_kept_as_text_with_sensitive_values_masked() {
        let text = br#"{"params":{"arguments":{"n":1e400,"apiKey":"sk-1","deep":{"Password":[1,{"x":"y"}]},"list":[{"token":NaN}],"note":"password\u0041"}}}"#;
        with_message(text, |m| {
            let root = m.root();
            let params = root.obj("params").expect("params");
            let args = params.get("arguments").expect("arguments");
            match m.args(args, &Redactor::default()) {
                Args::Raw(s) => assert_eq!(
                    s,
                    r#"{"n":1e400,"apiKey":"**REDACTED**","deep":{"Password":"**REDACTED**"},"list":[{"token":"**REDACTED**"}],"note":"password\u0041"}"#
                ),
                Args::Value(v) => panic!("decoded: {v}"),
            }
        });
        with_message(br#"{"arguments":{"a":[1,2]}}"#, |m| {
            let root = m.root();
            let args = root.get("arguments").expect("arguments");
            assert!(
                matches!(m.args(args, &Redactor::default()), Args::Value(v) if v == serde_json::json!({"a":[1,2]}))
            );
        });
    }

    #[test]
    fn a_batch_is_its_objects() {
        let text = br#"[{"id":1},2,{"id":3}]"#;
        let scan = lenient::scan(text);
        let msgs = messages(text, &scan, &scan.values[0], Quirks::default());
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].quirks().names(), ["batch"]);
    }
}
