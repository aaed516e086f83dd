//! Redaction: what never reaches the log (SPEC §5).
//!
//! Everything a caller hands the writer passes through a [`Redactor`] before it is hashed, so the
//! log never holds the secret and the chain still verifies. The rules are written down, in SPEC
//! terms and with their limits, in `docs/REDACTION.md`; in short:
//!
//! - **Key rule** (`keys.rs`). A key is split into words (at `_ - .`, whitespace, digits, other
//!   non-letters and camelCase boundaries) and is *sensitive* when one word, or several adjacent
//!   words joined, is a sensitive word (password, secret, token, apikey, auth, cookie, ssn, dob,
//!   card, pin, iban, otp, …; not `tokens`). The value under a sensitive key becomes
//!   [`REDACTED`], whatever its type, unless a *metadata word* outside the sensitive word
//!   qualifies it (`token_count`, `promptTokenCount`, `auth_required`, `password_changed_at`,
//!   `card_type`) and the value is plainly of the kind that word describes (a number, a boolean,
//!   a timestamp, a short label, an id, a URL; never a card number, never a date under `dob`).
//!   [`RedactionRules::allow_keys`] are never sensitive; [`RedactionRules::extra_keys`] add words.
//! - **Pair rules** (this module). In a name/value object (`{"name": K, "value": V}` in the
//!   common casings and spellings: `Key`/`Value`, `key`/`val`, `ParameterKey`/`ParameterValue`,
//!   …) and in a list of `[K, V]` pairs, `V` is redacted when the key rule redacts it under `K`.
//! - **Keys are scanned** (this module). Every key goes through the value rule like a string; a
//!   key that becomes equal to another key of its object gets ` (2)`, ` (3)`, … so that no
//!   record holds duplicate keys.
//! - **Value rule** (`values.rs`). Every other string, at any depth, and `error_message`, is
//!   scanned for the shapes of secrets (PEM private keys, JWTs, URL passwords, presigned-URL
//!   signatures, `name=value` pairs whose name the key rule redacts, `Bearer`/`Basic`
//!   credentials, AWS, GitHub, GitLab, `OpenAI`, Anthropic, Slack, Stripe and Google keys, Slack
//!   webhook URLs, Luhn-valid card numbers, US SSNs, and [`RedactionRules::extra_patterns`]);
//!   each matched span becomes [`REDACTED`] and the rest of the string is kept.
//!   [`Redactor::sanitize_error_message`] then cuts `error_message` to
//!   [`MAX_ERROR_MESSAGE_CHARS`] characters.
//!
//! # Cost
//!
//! Nearly every string is clean, so that case is the fast one. A single pass over the bytes
//! (`gate.rs`) first looks for the anchors the built-in shapes need (a run of 13 digits, or of 9 with a dash, `eyJ`,
//! `://` then `:`, a key word in the name before `:` or `=`, a token prefix, …); a string with
//! none is done, returned borrowed without allocating. Otherwise all built-in shapes are one
//! compiled [`regex::Regex`], so the string is scanned once more, and the checks a regex cannot
//! express (the key rule on a pair's name, the extent of its value, the `@` that ends a URL
//! password, Luhn, SSN areas, "looks like a credential") run on candidates only, each bounded so
//! that time stays linear in the length of the string, whatever its content. Extra patterns add
//! one scan of a [`regex::RegexSet`]. A key costs one gate pass, and a key with a sensitive word
//! a look for metadata words.

mod gate;
mod keys;
mod values;

use std::borrow::Cow;
use std::ops::Range;

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

use keys::{KeyRule, Letters};
use values::{BUILTIN_PATTERNS, BuiltinPatterns, ExtraPatterns};

/// The text that replaces every redacted value or span.
pub const REDACTED: &str = "**REDACTED**";

/// The longest `error_message` kept, in characters (not bytes).
pub const MAX_ERROR_MESSAGE_CHARS: usize = 500;

/// User configuration on top of the built-in rules.
///
/// | field | default | effect |
/// |---|---|---|
/// | `extra_keys` | none | more sensitive key words |
/// | `extra_patterns` | none | more value patterns |
/// | `allow_keys` | none | keys never redacted by name |
///
/// ```
/// let rules = nexus_audit::RedactionRules::new()
///     .extra_key("badge_pin")
///     .extra_pattern("EMP-[0-9]{6}")
///     .allow_key("token_count");
/// assert_eq!(rules.allow_keys, ["token_count"]);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RedactionRules {
    /// Extra sensitive key words, matched like the built-in words: after splitting the key into
    /// words. A multi-word entry such as `"session_key"` or `"sessionKey"` matches those words
    /// adjacent (`session_key`, `SessionKey`, `x-session-key`, and also the single word
    /// `sessionkey`). An entry must contain letters and no digits, since digits split keys.
    pub extra_keys: Vec<String>,
    /// Extra value patterns (syntax of the `regex` crate); every match becomes [`REDACTED`].
    /// A pattern that matches the empty string is refused.
    pub extra_patterns: Vec<String>,
    /// Keys never redacted by key name (compared case-insensitively, whole key). Values under
    /// them are still scanned by value patterns.
    pub allow_keys: Vec<String>,
}

impl RedactionRules {
    /// The built-in rules alone.
    #[must_use]
    pub fn new() -> Self {
        RedactionRules::default()
    }

    /// Adds a sensitive key word (see [`extra_keys`](Self::extra_keys)).
    #[must_use]
    pub fn extra_key(mut self, word: impl Into<String>) -> Self {
        self.extra_keys.push(word.into());
        self
    }

    /// Adds a value pattern (see [`extra_patterns`](Self::extra_patterns)).
    #[must_use]
    pub fn extra_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.extra_patterns.push(pattern.into());
        self
    }

    /// Adds a key never redacted by name (see [`allow_keys`](Self::allow_keys)).
    #[must_use]
    pub fn allow_key(mut self, key: impl Into<String>) -> Self {
        self.allow_keys.push(key.into());
        self
    }
}

/// Applies the redaction rules of SPEC §5 to JSON values and strings.
///
/// Built once (the regexes are compiled in [`Redactor::new`]), then shared: it is `Send + Sync`
/// and cheap to put behind an `Arc`. [`Redactor::default`] holds the built-in rules only.
///
/// # Example
///
/// ```
/// use nexus_audit::{REDACTED, Redactor};
/// use serde_json::json;
///
/// let redactor = Redactor::default();
/// let mut args = json!({
///     "apiKey": "abc",
///     "query": "connect to postgres://app:hunter2@db:5432/prod",
///     "tokens_used": 42,
/// });
/// redactor.redact_value(&mut args);
/// assert_eq!(args["apiKey"], REDACTED);
/// assert_eq!(args["query"], "connect to postgres://app:**REDACTED**@db:5432/prod");
/// assert_eq!(args["tokens_used"], 42);
/// ```
#[derive(Clone, Debug)]
pub struct Redactor {
    keys: KeyRule,
    builtin: BuiltinPatterns,
    extra: Option<ExtraPatterns>,
}

impl Default for Redactor {
    /// A redactor with the built-in rules only.
    fn default() -> Self {
        Redactor {
            keys: KeyRule::default(),
            builtin: BUILTIN_PATTERNS.clone(),
            extra: None,
        }
    }
}

impl Redactor {
    /// Builds a redactor from the built-in rules plus `rules`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when an extra pattern is not a valid regex or matches the empty
    /// string, or when an extra key has no letters or contains a digit.
    pub fn new(rules: &RedactionRules) -> Result<Self> {
        let mut keys = KeyRule::default();
        for entry in &rules.extra_keys {
            if entry.chars().any(char::is_numeric) {
                return Err(Error::InvalidConfig(format!(
                    "extra sensitive key {entry:?} contains a digit; digits split keys into \
                     words, so give the words only"
                )));
            }
            let word: String = Letters::new(entry)
                .flat_map(|l| l.ch.to_lowercase())
                .collect();
            if word.is_empty() {
                return Err(Error::InvalidConfig(format!(
                    "extra sensitive key {entry:?} has no letters"
                )));
            }
            keys.insert(&word);
        }
        for key in &rules.allow_keys {
            keys.allow(key);
        }
        let extra = if rules.extra_patterns.is_empty() {
            None
        } else {
            Some(ExtraPatterns::new(&rules.extra_patterns)?)
        };
        Ok(Redactor {
            keys,
            builtin: BUILTIN_PATTERNS.clone(),
            extra,
        })
    }

    /// True when the key names a secret: one of its words, or several adjacent words joined,
    /// is a sensitive word, and the key is not allow-listed.
    ///
    /// Whether the value under it is redacted also depends on metadata words and on the value:
    /// see [`Redactor::redacts_field`].
    #[must_use]
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        self.keys.is_sensitive(key)
    }

    /// True when the value under `key` is replaced wholesale by [`Redactor::redact_value`]: the
    /// key is sensitive, and unless a metadata word qualifies the sensitive word
    /// (`token_count`, `auth_required`, `password_changed_at`, `card_type`), whatever the
    /// value is; when one does, unless the value is plainly of the kind that word describes (a
    /// number, a boolean, a timestamp, a short label). See the module docs.
    #[must_use]
    pub fn redacts_field(&self, key: &str, value: &Value) -> bool {
        self.keys.redacts(key, value)
    }

    /// Redacts `v` in place, at any depth, in objects and arrays alike.
    ///
    /// The value under a key that [`Redactor::redacts_field`] says so of, whatever its type,
    /// becomes the string [`REDACTED`], as does the value of a name/value object or `[K, V]`
    /// pair whose name it says so of; every other string goes through
    /// [`Redactor::redact_str`], and numbers, booleans and nulls are kept. Object keys go
    /// through [`Redactor::redact_str`] too, in place; a key that becomes equal to another key
    /// of its object gets ` (2)`, ` (3)`, … appended, so no object holds two equal keys.
    pub fn redact_value(&self, v: &mut Value) {
        // NOTE: an explicit stack rather than recursion, so a deeply nested value built in code
        // (serde_json's parser stops at 128 levels, `json!` does not) cannot overflow the stack.
        let mut stack: Vec<&mut Value> = Vec::new();
        self.redact_children(v, &mut stack);
        while let Some(v) = stack.pop() {
            self.redact_children(v, &mut stack);
        }
    }

    /// Value-based redaction of one string: every matched span becomes [`REDACTED`].
    ///
    /// Returns the input borrowed, without allocating, when nothing matched (or when every
    /// match is already [`REDACTED`], so redacting twice changes nothing).
    #[must_use]
    pub fn redact_str<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut spans: Vec<Range<usize>> = Vec::new();
        self.builtin.find_spans(s, &mut spans, &self.keys);
        if let Some(extra) = &self.extra {
            extra.find_spans(s, &mut spans);
        }
        if spans.is_empty() {
            return Cow::Borrowed(s);
        }
        Cow::Owned(replace_spans(s, &mut spans))
    }

    /// The `error_message` sanitiser: [`Redactor::redact_str`], then a cut to at most
    /// [`MAX_ERROR_MESSAGE_CHARS`] characters (not bytes), on a character boundary.
    ///
    /// Redaction comes first so that a secret straddling the cut is still recognised whole.
    #[must_use]
    pub fn sanitize_error_message(&self, s: &str) -> String {
        self.sanitized_error_message(s).into_owned()
    }

    /// [`Redactor::sanitize_error_message`], borrowing `s` when it is kept whole.
    pub(crate) fn sanitized_error_message<'a>(&self, s: &'a str) -> Cow<'a, str> {
        match self.redact_str(s) {
            Cow::Borrowed(kept) => Cow::Borrowed(truncate_chars(kept, MAX_ERROR_MESSAGE_CHARS)),
            Cow::Owned(redacted) => {
                Cow::Owned(truncate_chars(&redacted, MAX_ERROR_MESSAGE_CHARS).to_owned())
            }
        }
    }

    /// True when [`Redactor::redact_str`] leaves `s` as it is (without allocating).
    pub(crate) fn keeps_str(&self, s: &str) -> bool {
        matches!(self.redact_str(s), Cow::Borrowed(_))
    }

    /// A conservative test for the encoder's fast path: true when [`Redactor::redact_value`]
    /// provably leaves an object key `key`, and whatever value is under it, as they are, as far
    /// as the key itself goes: the value rule keeps the key, and the key rule does not find it
    /// sensitive (so it redacts no value under it, whatever the metadata words say). The pair
    /// rules are the caller's: see [`Redactor::is_pair_value_key`] and
    /// [`Redactor::is_pair_name_key`].
    pub(crate) fn keeps_key(&self, key: &str) -> bool {
        !self.keys.is_sensitive(key) && self.keeps_str(key)
    }

    /// True when `key` holds the value of a name/value object (`value`, `Val`, `ParameterValue`,
    /// …): an object with one may have a value redacted by the pair rule.
    pub(crate) fn is_pair_value_key(key: &str) -> bool {
        is_pair_value_key(key)
    }

    /// True when `key` holds the name of a name/value object (`name`, `Key`, `ParameterKey`,
    /// …): the string under it is what the pair rule gives the key rule.
    pub(crate) fn is_pair_name_key(key: &str) -> bool {
        normalized_key_in(key, PAIR_NAME_KEYS)
    }

    /// Redacts the direct children of a container; nested containers go on `stack`.
    fn redact_children<'v>(&self, v: &'v mut Value, stack: &mut Vec<&'v mut Value>) {
        match v {
            Value::Object(map) => {
                let has_value_key = self.redact_keys(map);
                let pair_names = if has_value_key {
                    pair_names(map)
                } else {
                    Vec::new()
                };
                for (key, child) in map.iter_mut() {
                    let redact = self.keys.redacts(key, child)
                        || (is_pair_value_key(key)
                            && pair_names.iter().any(|name| self.keys.redacts(name, child)));
                    if redact {
                        if child.as_str() != Some(REDACTED) {
                            *child = Value::String(REDACTED.to_owned());
                        }
                    } else {
                        self.redact_child(child, stack);
                    }
                }
            }
            Value::Array(items) => {
                if is_pair_list(items) {
                    for item in items.iter_mut() {
                        if let Value::Array(pair) = item
                            && let [Value::String(name), value] = pair.as_mut_slice()
                            && self.keys.redacts(name, value)
                            && value.as_str() != Some(REDACTED)
                        {
                            *value = Value::String(REDACTED.to_owned());
                        }
                    }
                }
                for child in items {
                    self.redact_child(child, stack);
                }
            }
            other => self.redact_child(other, stack),
        }
    }

    /// Runs every key of `map` through the value rule (a secret can sit in a key too). A key
    /// that changes keeps its place; when it becomes equal to another key, ` (2)`, ` (3)`, …
    /// is added to it, so the object never holds two equal keys. The value under a key that was
    /// sensitive before the change is redacted first, so no secret moves out from under its key.
    ///
    /// Returns whether the object has a value key of a name/value pair (on the same pass over
    /// the keys, which are many).
    fn redact_keys(&self, map: &mut Map<String, Value>) -> bool {
        let mut renamed: Vec<(usize, String)> = Vec::new();
        let mut has_value_key = false;
        for (i, key) in map.keys().enumerate() {
            has_value_key |= is_pair_value_key(key);
            if let Cow::Owned(new) = self.redact_str(key) {
                renamed.push((i, new));
            }
        }
        if renamed.is_empty() {
            return has_value_key;
        }
        let old = std::mem::take(map);
        let mut taken: HashSet<String> = old
            .keys()
            .enumerate()
            .filter(|(i, _)| renamed.binary_search_by_key(i, |(j, _)| *j).is_err())
            .map(|(_, key)| key.clone())
            .collect();
        let mut renamed = renamed.into_iter().peekable();
        for (i, (key, mut value)) in old.into_iter().enumerate() {
            let Some((_, new)) = renamed.next_if(|(j, _)| *j == i) else {
                map.insert(key, value);
                continue;
            };
            if self.keys.redacts(&key, &value) {
                value = Value::String(REDACTED.to_owned());
            }
            map.insert(unique_key(new, &mut taken), value);
        }
        map.keys().any(|k| is_pair_value_key(k))
    }

    fn redact_child<'v>(&self, v: &'v mut Value, stack: &mut Vec<&'v mut Value>) {
        match v {
            Value::String(s) => {
                let redacted = match self.redact_str(s) {
                    Cow::Borrowed(_) => None,
                    Cow::Owned(new) => Some(new),
                };
                if let Some(new) = redacted {
                    *s = new;
                }
            }
            Value::Object(_) | Value::Array(_) => stack.push(v),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Replaces each span (merged where they overlap or touch) with [`REDACTED`].
fn replace_spans(s: &str, spans: &mut [Range<usize>]) -> String {
    spans.sort_unstable_by_key(|span| span.start);
    let mut out = String::with_capacity(s.len());
    let mut kept_from = 0;
    let mut current: Option<Range<usize>> = None;
    for span in spans.iter().cloned() {
        match &mut current {
            Some(cur) if span.start <= cur.end => cur.end = cur.end.max(span.end),
            _ => {
                if let Some(done) = current.replace(span) {
                    out.push_str(&s[kept_from..done.start]);
                    out.push_str(REDACTED);
                    kept_from = done.end;
                }
            }
        }
    }
    if let Some(done) = current {
        out.push_str(&s[kept_from..done.start]);
        out.push_str(REDACTED);
        kept_from = done.end;
    }
    out.push_str(&s[kept_from..]);
    out
}

/// The longest prefix of `s` with at most `max` characters.
fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

/// The byte index just after the character that starts at `i` (or `i + 1` at the end).
fn next_char_boundary(s: &str, i: usize) -> usize {
    i + s[i..].chars().next().map_or(1, char::len_utf8)
}

/// `name`, or `name (2)`, `name (3)`, … : the first not in `taken`, which it joins.
fn unique_key(name: String, taken: &mut HashSet<String>) -> String {
    if !taken.contains(&name) {
        taken.insert(name.clone());
        return name;
    }
    let mut n = 2_u64;
    loop {
        let candidate = format!("{name} ({n})");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

/// The keys that name the pair in a name/value object (`{"name": K, "value": V}`), compared
/// after lower-casing and dropping `_`, `-` and spaces.
const PAIR_NAME_KEYS: &[&str] = &[
    "name",
    "key",
    "k",
    "field",
    "param",
    "parameter",
    "parametername",
    "parameterkey",
    "optionname",
    "variable",
    "var",
    "env",
    "attribute",
    "attr",
    "property",
    "prop",
    "setting",
    "header",
    "label",
    "tag",
    "tagkey",
];

/// The keys that hold the pair's value.
const PAIR_VALUE_KEYS: &[&str] = &[
    "value",
    "val",
    "v",
    "values",
    "parametervalue",
    "optionvalue",
    "tagvalue",
];

/// True when `key`, lower-cased without `_`, `-` and spaces, is one of `list`.
fn normalized_key_in(key: &str, list: &[&str]) -> bool {
    if key.len() > 16 {
        return false;
    }
    let mut buf = [0_u8; 16];
    let mut n = 0;
    for b in key.bytes() {
        if matches!(b, b'_' | b'-' | b' ') {
            continue;
        }
        buf[n] = b.to_ascii_lowercase();
        n += 1;
    }
    list.iter().any(|w| w.as_bytes() == &buf[..n])
}

fn is_pair_value_key(key: &str) -> bool {
    // NOTE: every value key starts with one of these letters; most keys are done here.
    matches!(
        key.as_bytes().first().map(u8::to_ascii_lowercase),
        Some(b'v' | b'p' | b'o' | b't')
    ) && normalized_key_in(key, PAIR_VALUE_KEYS)
}

/// The names of a name/value object (one with a value key): the strings under its name keys.
fn pair_names(map: &Map<String, Value>) -> Vec<String> {
    map.iter()
        .filter(|(k, _)| normalized_key_in(k, PAIR_NAME_KEYS))
        .filter_map(|(_, v)| v.as_str().map(str::to_owned))
        .collect()
}

/// True when `items` is a list of `[name, value]` pairs: not empty, and every item an array of
/// two whose first is a string.
fn is_pair_list(items: &[Value]) -> bool {
    !items.is_empty()
        && items.iter().all(
            |item| matches!(item, Value::Array(pair) if pair.len() == 2 && pair[0].is_string()),
        )
}

#[cfg(test)]
pub(super) mod test_support {
    //! Secrets and helpers shared by the tests of every redaction module.
    use super::*;

    /// Builds test secrets from pieces, so that no literal in this file trips a secret scanner.
    pub(super) fn joined(parts: &[&str]) -> String {
        parts.concat()
    }

    pub(super) fn github_token() -> String {
        joined(&["ghp", "_", "R8kq2LmN4pX7vT1sW9yZ3bC6dF0gH5jK2aQe"])
    }

    pub(super) fn slack_token() -> String {
        joined(&["xoxb", "-", "2048-77551123-Qm9RkT2xYw7Lp3Vn"])
    }

    pub(super) fn stripe_key() -> String {
        joined(&["sk", "_live_", "4eC39HqLyjWDarjtT1zdp7dc"])
    }

    pub(super) fn google_key() -> String {
        joined(&["AIza", "SyD-8fK2mQ9xL4vN7pR1tW3yB6cE0gH5jZa"])
    }

    pub(super) fn aws_key_id() -> String {
        joined(&["AKIA", "IOSFODNN7EXAMPLE"])
    }

    pub(super) fn jwt() -> String {
        joined(&[
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ",
            ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ])
    }

    pub(super) fn pem() -> String {
        joined(&[
            "-----BEGIN RSA ",
            "PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq2\nx9Lm3Qw==\n",
            "-----END RSA ",
            "PRIVATE KEY-----",
        ])
    }

    /// Every value-rule secret of the tests, with the text the test embeds it in.
    pub(super) fn secrets() -> Vec<String> {
        vec![
            github_token(),
            slack_token(),
            stripe_key(),
            google_key(),
            aws_key_id(),
            jwt(),
            pem(),
        ]
    }

    pub(super) fn redact(s: &str) -> String {
        Redactor::default().redact_str(s).into_owned()
    }

    pub(super) fn assert_kept(s: &str) {
        let redactor = Redactor::default();
        assert!(
            matches!(redactor.redact_str(s), Cow::Borrowed(_)),
            "{s:?} was redacted to {:?}",
            redactor.redact_str(s)
        );
    }

    /// Strings that match a built-in rule (each generator is a simplified copy of its rule),
    /// with random text around them.
    pub(super) fn near_builtin_match() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        use proptest::string::string_regex;
        let cores = [
            "-----BEGIN[A-Z ]{0,4}PRIVATE KEY-----[a-z0-9\n]{0,5}(-----END[A-Z ]{0,4}PRIVATE KEY-----)?",
            r"eyJ[A-Za-z0-9_-]{10,14}\.[A-Za-z0-9_-]{10,14}\.[A-Za-z0-9_-]{0,5}",
            r"[A-Za-z][a-z0-9+.-]{0,5}://[a-z.]{0,4}:[^\n]{0,8}(@[a-z]{1,3})?",
            r"[?&](?i:x-amz-signature|x-goog-signature|signature|sig)=[A-Za-z0-9%]{1,5}",
            concat!(
                r"[A-Za-z0-9_. -]{0,3}(?i:pass|pwd|secret|token|key|auth|credential|cookie|ssn",
                r"|dob|birth|card|cvv|cvc|pin|account|iban|otp)[A-Za-z0-9_.-]{0,34}",
                r#"(\\{0,3}["'])?\]?[ \t]{0,2}(=>|:=|[:=])[ \t]{0,2}(\r?\n[ \t]{0,2})?"#,
                r#"(\\{0,3}["'])?((?i:bearer|basic|token)[ \t]+)?[a-zA-Z0-9\[{]{0,5}"#,
            ),
            concat!(
                r#"\\{0,3}"[A-Za-z_]{0,3}(?i:password|token|secret|key)[A-Za-z0-9_]{0,3}"#,
                r#"\\{0,3}"[ \t]?,[ \t]?\\{0,3}"(?i:value|val)\\{0,3}"[ \t]?:[ \t]?[a-z"]{0,4}"#,
            ),
            r"(?i:bearer|basic)[ \t]{1,2}[A-Za-z0-9._~+/-]{8,12}=*",
            r"(A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}",
            r"gh[pousr]_[A-Za-z0-9]{20,24}|github_pat_[A-Za-z0-9_]{20,24}",
            r"gl(pat|dt|rt|cbt|ptt|ft|imt|agent|oas|soat|ffct|tst|wt)-[A-Za-z0-9_-]{20,24}(\.[a-z0-9]{1,3})?",
            r"sk-((proj|svcacct|admin|ant|None)-)?[A-Za-z0-9_-]{20,24}",
            r"(xox[abeoprs]|xapp)-[A-Za-z0-9-]{10,14}",
            r"hooks\.slack\.com/(services|workflows|triggers)/[A-Za-z0-9/]{1,8}",
            r"[rsp]k_(live|test)_[A-Za-z0-9]{10,14}",
            r"whsec_[A-Za-z0-9+/=]{16,20}",
            r"AIza[0-9A-Za-z_-]{35}",
            r"[0-9]([ -]?[0-9]){12,18}",
            r"[0-9]{3}-[0-9]{2}-[0-9]{4}",
        ];
        let cores: Vec<_> = cores
            .iter()
            .map(|core| string_regex(core).expect("generator regexes are valid"))
            .collect();
        let around = || string_regex(r#"[a-zA-Z0-9 _.:=/@'"\\-]{0,4}"#).expect("valid");
        (around(), proptest::strategy::Union::new(cores), around())
            .prop_map(|(before, core, after)| format!("{before}{core}{after}"))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn sensitive_key_value_of_any_type_becomes_redacted() {
        let mut v = json!({
            "password": "hunter2",
            "pin": 1234,
            "token": {"nested": "x"},
            "card": ["4111", "1111"],
            "otp": null,
            "auth": true,
        });
        Redactor::default().redact_value(&mut v);
        for key in ["password", "pin", "token", "card", "otp", "auth"] {
            assert_eq!(v[key], REDACTED, "{key}");
        }
    }

    #[test]
    fn sensitive_key_is_redacted_in_object_in_array_in_object() {
        let mut v =
            json!({"users": [{"name": "ann", "apiKey": "k1"}, {"name": "bob", "apiKey": "k2"}]});
        Redactor::default().redact_value(&mut v);
        assert_eq!(
            v,
            json!({"users": [{"name": "ann", "apiKey": REDACTED}, {"name": "bob", "apiKey": REDACTED}]})
        );
    }

    #[test]
    fn sensitive_key_is_redacted_in_array_whose_first_element_is_a_number() {
        let mut v = json!([1, "two", {"secret": "s"}, [{"db": {"password": "p"}}]]);
        Redactor::default().redact_value(&mut v);
        assert_eq!(
            v,
            json!([1, "two", {"secret": REDACTED}, [{"db": {"password": REDACTED}}]])
        );
    }

    #[test]
    fn sensitive_key_is_redacted_in_arrays_of_arrays() {
        let mut v = json!({"rows": [[[{"ssn": "x"}]], [[], [{"cvv": 123}]]]});
        Redactor::default().redact_value(&mut v);
        assert_eq!(
            v,
            json!({"rows": [[[{"ssn": REDACTED}]], [[], [{"cvv": REDACTED}]]]})
        );
    }

    #[test]
    fn object_keys_go_through_the_value_rule() {
        let key = github_token();
        let mut v = json!({ key.clone(): "value", "plain key": 1 });
        Redactor::default().redact_value(&mut v);
        assert_eq!(v, json!({REDACTED: "value", "plain key": 1}));
    }

    // --- name/value pairs -------------------------------------------------------------------

    #[test]
    fn name_value_pairs_in_every_common_casing_are_redacted() {
        for (name_key, value_key) in [
            ("name", "value"),
            ("Name", "Value"),
            ("NAME", "VALUE"),
            ("key", "value"),
            ("Key", "Value"),
            ("key", "val"),
            ("k", "v"),
            ("ParameterKey", "ParameterValue"),
            ("parameter_name", "parameter_value"),
            ("OptionName", "Value"),
            ("header", "value"),
            ("TagKey", "TagValue"),
        ] {
            let mut v = json!({"env": [
                {name_key: "DB_PASSWORD", value_key: "hunter2"},
                {name_key: "region", value_key: "eu-west-1"},
                {name_key: "apiToken", value_key: {"nested": "x"}},
            ]});
            Redactor::default().redact_value(&mut v);
            assert_eq!(
                v,
                json!({"env": [
                    {name_key: "DB_PASSWORD", value_key: REDACTED},
                    {name_key: "region", value_key: "eu-west-1"},
                    {name_key: "apiToken", value_key: REDACTED},
                ]}),
                "{name_key}/{value_key}"
            );
        }
    }

    #[test]
    fn every_pair_value_key_passes_the_first_letter_shortcut() {
        for key in PAIR_VALUE_KEYS {
            assert!(is_pair_value_key(key), "{key}");
            assert!(is_pair_value_key(&key.to_uppercase()), "{key}");
        }
        assert!(is_pair_value_key("Parameter_Value"));
        assert!(!is_pair_value_key("valid"));
    }

    #[test]
    fn name_value_pair_with_extra_fields_or_alone_is_redacted() {
        let mut v = json!({
            "containers": [{"env": [{"name": "SECRET_KEY", "value": "s3", "valueFrom": null}]}],
            "header": {"name": "Cookie", "value": "sid=1", "comment": ""},
        });
        Redactor::default().redact_value(&mut v);
        assert_eq!(v["containers"][0]["env"][0]["value"], REDACTED);
        assert_eq!(v["containers"][0]["env"][0]["valueFrom"], json!(null));
        assert_eq!(v["header"]["value"], REDACTED);
        assert_eq!(v["header"]["comment"], "");
    }

    #[test]
    fn name_value_pair_with_a_descriptive_name_keeps_a_plain_value() {
        let mut v = json!([
            {"name": "token_count", "value": 42},
            {"name": "auth_required", "value": true},
            {"name": "token_count", "value": "tok-9QzX"},
        ]);
        Redactor::default().redact_value(&mut v);
        assert_eq!(
            v,
            json!([
                {"name": "token_count", "value": 42},
                {"name": "auth_required", "value": true},
                {"name": "token_count", "value": REDACTED},
            ])
        );
    }

    #[test]
    fn name_value_pair_name_follows_the_allow_list_and_extra_keys() -> Result<()> {
        let redactor = Redactor::new(&RedactionRules {
            extra_keys: vec!["badge".into()],
            allow_keys: vec!["auth_method".into()],
            ..RedactionRules::default()
        })?;
        let mut v = json!([
            {"name": "auth_method", "value": "saml"},
            {"name": "BADGE_NO", "value": "b-7"},
        ]);
        redactor.redact_value(&mut v);
        assert_eq!(
            v,
            json!([
                {"name": "auth_method", "value": "saml"},
                {"name": "BADGE_NO", "value": REDACTED},
            ])
        );
        Ok(())
    }

    #[test]
    fn pair_tuples_are_redacted_by_their_first_element() {
        let mut v = json!({
            "headers": [["Authorization", "Negotiate abc"], ["Accept", "*/*"], ["set-cookie", ["a", "b"]]],
            "params": [["password", 1234], ["user", "ann"], ["token_count", 3]],
        });
        Redactor::default().redact_value(&mut v);
        assert_eq!(
            v,
            json!({
                "headers": [["Authorization", REDACTED], ["Accept", "*/*"], ["set-cookie", REDACTED]],
                "params": [["password", REDACTED], ["user", "ann"], ["token_count", 3]],
            })
        );
    }

    #[test]
    fn lists_that_are_not_all_pairs_are_left_to_the_other_rules() {
        let mut v = json!({
            "fields": ["password", "email"],
            "mixed": [["password", "p"], "x"],
            "triples": [["password", "p", "q"]],
        });
        let before = v.clone();
        Redactor::default().redact_value(&mut v);
        assert_eq!(v, before);
    }

    // --- keys rewritten by the value rule ------------------------------------------------

    #[test]
    fn keys_that_redact_to_the_same_text_stay_distinct() {
        let mut v = json!({
            "password=a1": 1,
            "password=b2": 2,
            "password=**REDACTED** (2)": 3,
            "note": "n",
        });
        Redactor::default().redact_value(&mut v);
        let keys: Vec<&String> = v
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "password=**REDACTED**",
                "password=**REDACTED** (3)",
                "password=**REDACTED** (2)",
                "note",
            ]
        );
        // The values under keys that were sensitive before the rewrite are redacted too.
        assert_eq!(v["password=**REDACTED**"], REDACTED);
        let once = v.clone();
        Redactor::default().redact_value(&mut v);
        assert_eq!(v, once, "a second pass changes nothing");
    }

    #[test]
    fn a_rewritten_key_never_takes_the_name_of_a_later_key() {
        let token = github_token();
        let mut v = json!({ format!("k {token}"): 1, "k **REDACTED**": 2 });
        Redactor::default().redact_value(&mut v);
        assert_eq!(v, json!({"k **REDACTED** (2)": 1, "k **REDACTED**": 2}));
    }

    #[test]
    fn a_secret_that_moves_out_of_a_sensitive_key_is_still_redacted() {
        // The Slack rule swallows the word `token`; the value must not survive the rename.
        let key = joined(&["xoxb", "-token-", "1234567890-abcdef"]);
        let mut v = json!({ key: "the-secret-value" });
        Redactor::default().redact_value(&mut v);
        assert_eq!(v, json!({REDACTED: REDACTED}));
    }

    #[test]
    fn non_sensitive_numbers_and_booleans_are_kept() {
        let mut v = json!({"tokens_used": 42, "ok": true, "n": null, "ratio": 0.5});
        let before = v.clone();
        Redactor::default().redact_value(&mut v);
        assert_eq!(v, before);
    }

    #[test]
    fn deeply_nested_value_does_not_overflow_the_stack() {
        let mut v = json!("password=hunter2");
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        Redactor::default().redact_value(&mut v);
        let mut inner = &v;
        while let Value::Array(items) = inner {
            let Some(first) = items.first() else {
                panic!("empty array")
            };
            inner = first;
        }
        assert_eq!(inner, &json!("password=**REDACTED**"));
        // NOTE: dropping a 100 000-deep value recurses in serde_json; take it apart level by level.
        while let Value::Array(mut items) = v {
            v = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn redacting_twice_changes_nothing() {
        let redactor = Redactor::default();
        let mut v = json!({"password": "p", "q": "token=abc and postgres://u:pw@h/db"});
        redactor.redact_value(&mut v);
        let once = v.clone();
        redactor.redact_value(&mut v);
        assert_eq!(v, once);
        let Some(q) = once["q"].as_str() else {
            panic!("q is a string")
        };
        assert!(matches!(redactor.redact_str(q), Cow::Borrowed(_)));
    }

    #[test]
    fn every_value_pattern_is_redacted_at_depth() {
        let redactor = Redactor::default();
        for secret in secrets() {
            let text = format!("value {secret} end");
            let mut v = json!({
                "a": [{"b": {"c": text}}],
                "list": ["x", text, "y"],
                "grid": [[text], [[text]]],
                "mixed": [7, {"note": text}, [text]],
            });
            redactor.redact_value(&mut v);
            let expected = "value **REDACTED** end";
            assert_eq!(v["a"][0]["b"]["c"], expected);
            assert_eq!(v["list"], json!(["x", expected, "y"]));
            assert_eq!(v["grid"], json!([[expected], [[expected]]]));
            assert_eq!(v["mixed"], json!([7, {"note": expected}, [expected]]));
        }
    }

    #[test]
    fn serialised_redacted_value_holds_no_secret() -> Result<()> {
        let redactor = Redactor::default();
        let mut v = json!({
            "query": format!("{} and {}", github_token(), stripe_key()),
            "headers": [format!("Authorization: Bearer {}", jwt()), "Accept: */*".to_owned()],
            "dsn": "postgres://app:Tr0ub4dor3@db/prod",
            "blob": [1, {"pem": pem(), "aws": aws_key_id(), "slack": slack_token()}],
            "apiKey": "plain-key-value",
            "payment": {"details": "card 4111 1111 1111 1111, ssn 123-45-6789"},
            "google": [[google_key()]],
        });
        redactor.redact_value(&mut v);
        let out = serde_json::to_string(&v).map_err(|e| Error::InvalidEvent(e.to_string()))?;
        let mut needles = secrets();
        needles.extend(
            [
                "Tr0ub4dor3",
                "plain-key-value",
                "4111 1111",
                "123-45-6789",
                "MIIEow",
                "SflKx",
            ]
            .map(str::to_owned),
        );
        for needle in needles {
            assert!(!out.contains(&needle), "{needle} leaked into {out}");
        }
        Ok(())
    }

    #[test]
    fn look_alikes_at_depth_are_kept() {
        let mut v = json!({
            "id": "123e4567-e89b-12d3-a456-426614174000",
            "sha": ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
            "at": [[{"ts": "2026-01-15T10:20:30Z"}]],
            "contact": [1, {"phone": "+1 415-555-0100"}],
            "order": "ORD-2026-000123",
            "version": "1.2.3",
            "n": "4111111111111112",
            "link": "https://example.com/a?b=c",
            "note": "reset your password please",
        });
        let before = v.clone();
        Redactor::default().redact_value(&mut v);
        assert_eq!(v, before);
    }

    #[test]
    fn redact_str_borrows_when_clean() {
        let s = "nothing to see here: https://example.com/a?b=c";
        match Redactor::default().redact_str(s) {
            Cow::Borrowed(b) => assert!(std::ptr::eq(b, s)),
            Cow::Owned(o) => panic!("allocated {o:?}"),
        }
    }

    // --- configuration ------------------------------------------------------------------------

    #[test]
    fn allow_listed_key_is_not_redacted_by_name() -> Result<()> {
        let redactor = Redactor::new(&RedactionRules {
            allow_keys: vec!["Token_Count".into()],
            ..RedactionRules::default()
        })?;
        assert!(!redactor.is_sensitive_key("token_count"));
        assert!(!redactor.is_sensitive_key("TOKEN_COUNT"));
        assert!(redactor.is_sensitive_key("token_counts"));
        let mut v = json!({"token_count": 12});
        redactor.redact_value(&mut v);
        assert_eq!(v, json!({"token_count": 12}));
        Ok(())
    }

    #[test]
    fn allow_listed_key_value_is_still_scanned_by_value_patterns() -> Result<()> {
        let redactor = Redactor::new(&RedactionRules {
            allow_keys: vec!["auth_method".into()],
            ..RedactionRules::default()
        })?;
        let mut v = json!({"auth_method": format!("oauth via {}", github_token())});
        redactor.redact_value(&mut v);
        assert_eq!(v, json!({"auth_method": "oauth via **REDACTED**"}));
        Ok(())
    }

    #[test]
    fn extra_keys_match_like_builtin_words() -> Result<()> {
        let redactor = Redactor::new(&RedactionRules {
            extra_keys: vec!["session_key".into(), "Salt".into()],
            ..RedactionRules::default()
        })?;
        for key in [
            "session_key",
            "sessionKey",
            "x-session-key",
            "SESSIONKEY",
            "salt",
            "userSalt",
        ] {
            assert!(redactor.is_sensitive_key(key), "{key}");
        }
        for key in ["session", "key", "salty", "session_id_key"] {
            assert!(!redactor.is_sensitive_key(key), "{key}");
        }
        assert!(!Redactor::default().is_sensitive_key("session_key"));
        Ok(())
    }

    #[test]
    fn extra_key_without_letters_or_with_digits_is_invalid_config() {
        for entry in ["", "__", "x509"] {
            let result = Redactor::new(&RedactionRules {
                extra_keys: vec![entry.into()],
                ..RedactionRules::default()
            });
            assert!(matches!(result, Err(Error::InvalidConfig(_))), "{entry:?}");
        }
    }

    #[test]
    fn extra_patterns_redact_every_match() -> Result<()> {
        let redactor = Redactor::new(&RedactionRules {
            extra_patterns: vec![r"EMP-\d{6}".into(), r"(?i)internal-[a-z]+".into()],
            ..RedactionRules::default()
        })?;
        assert_eq!(
            redactor.redact_str("EMP-123456 met EMP-654321 at INTERNAL-zone"),
            "**REDACTED** met **REDACTED** at **REDACTED**"
        );
        assert!(matches!(redactor.redact_str("EMP-12"), Cow::Borrowed(_)));
        Ok(())
    }

    #[test]
    fn extra_pattern_overlapping_a_builtin_match_is_merged() -> Result<()> {
        let redactor = Redactor::new(&RedactionRules {
            extra_patterns: vec![r"word=\S+".into()],
            ..RedactionRules::default()
        })?;
        assert_eq!(
            redactor.redact_str("password=abc tail"),
            "pass**REDACTED** tail"
        );
        Ok(())
    }

    #[test]
    fn extra_pattern_with_verbose_comment_works() -> Result<()> {
        let redactor = Redactor::new(&RedactionRules {
            extra_patterns: vec!["(?x) CASE- [0-9]+  # a case number".into()],
            ..RedactionRules::default()
        })?;
        assert_eq!(redactor.redact_str("see CASE-42"), "see **REDACTED**");
        Ok(())
    }

    #[test]
    fn invalid_extra_pattern_is_invalid_config() {
        let result = Redactor::new(&RedactionRules {
            extra_patterns: vec!["(unclosed".into()],
            ..RedactionRules::default()
        });
        assert!(matches!(result, Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn extra_pattern_matching_the_empty_string_is_invalid_config() {
        let result = Redactor::new(&RedactionRules {
            extra_patterns: vec!["x*".into()],
            ..RedactionRules::default()
        });
        assert!(matches!(result, Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn redactor_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Redactor>();
    }

    // --- error messages ---------------------------------------------------------------------

    #[test]
    fn error_message_is_redacted() {
        assert_eq!(
            Redactor::default().sanitize_error_message("connect failed: password=hunter2"),
            "connect failed: password=**REDACTED**"
        );
    }

    #[test]
    fn short_error_message_is_kept_whole() {
        let message = "é".repeat(MAX_ERROR_MESSAGE_CHARS);
        assert_eq!(
            Redactor::default().sanitize_error_message(&message),
            message
        );
    }

    #[test]
    fn error_message_is_cut_at_500_chars_on_a_char_boundary() {
        let message = format!("{}{}", "a", "é🚀".repeat(400));
        let out = Redactor::default().sanitize_error_message(&message);
        assert_eq!(out.chars().count(), MAX_ERROR_MESSAGE_CHARS);
        assert!(message.starts_with(&out));
        assert!(out.len() > MAX_ERROR_MESSAGE_CHARS);
    }

    #[test]
    fn error_message_is_redacted_before_it_is_cut() {
        let message = format!("{} {}", "x".repeat(495), pem());
        let out = Redactor::default().sanitize_error_message(&message);
        assert_eq!(out, format!("{} **RE", "x".repeat(495)));
    }
}
