//! Redaction: what never reaches the log (SPEC §5).
//!
//! Everything a caller hands the writer passes through a [`Redactor`] before it is hashed, so the
//! log never holds the secret and the chain still verifies. Two kinds of rules apply.
//!
//! # Key rule
//!
//! An object key is split into words at `_`, `-`, `.`, whitespace, digits, any other
//! non-letter, and camelCase boundaries (`apiKey` → `api` `key`, and acronym ends: `APIKey` →
//! `api` `key`), then lowercased. The key is sensitive when one word, or several adjacent words
//! joined, is a sensitive word:
//!
//! | group | words |
//! |---|---|
//! | secrets | password, passwd, pwd, passphrase, secret, token, credential, credentials, otp |
//! | keys | apikey, accesskey, privatekey, secretkey |
//! | auth | auth, authorization, cookie |
//! | identity | ssn, dob, dateofbirth, birthdate |
//! | payment | card, cardnumber, cvv, cvc, pin, accountnumber, iban |
//! | plurals | passwords, passphrases, secrets, cookies, apikeys, accesskeys, privatekeys, secretkeys |
//!
//! So `apiKey`, `API_KEY`, `x-auth-token`, `db.password`, `user_password2`, `SessionToken`,
//! `set-cookie` and `date_of_birth` are sensitive, while `author`, `authority`, `shipping`,
//! `tokenizer`, `mapping`, `pinned`, `cardinality` and `keyboard` are not: a word must equal a
//! sensitive word, not merely contain one.
//!
//! NOTE: `tokens` is deliberately *not* sensitive. MCP payloads are full of model usage counters
//! (`tokens_used`, `max_tokens`, `input_tokens`) and redacting them would hide useful numbers
//! without protecting anything. The other plurals in the table name secrets, so they are added.
//!
//! The value under a sensitive key, whatever its type, becomes the string [`REDACTED`]. Keys in
//! [`RedactionRules::allow_keys`] are never redacted by name, but the strings under them are
//! still scanned by the value rule.
//!
//! # Value rule
//!
//! Every other string, at any depth (inside objects and arrays alike), is scanned for these
//! shapes; the matched span becomes [`REDACTED`] and the rest of the string is kept:
//!
//! | shape | what is replaced |
//! |---|---|
//! | PEM private key block (`-----BEGIN … PRIVATE KEY-----` … `-----END … PRIVATE KEY-----`) | the block; an unterminated block to the end of the string |
//! | JWT (`eyJ…` three base64url segments) | the token |
//! | password in a URL (`scheme://user:pass@host`) | `pass` |
//! | `password=…`, `token: …`, `api_key=…`, `secret=…` and similar pairs in free text, also at the end of a longer key (`access_token=`, `X-Api-Key:`, `"password": "…"`) | the value, up to whitespace, `&`, `,`, `;` or a quote (after an optional `Bearer`/`Basic`/`token` scheme, which is kept) |
//! | `Bearer <token>` / `Basic <base64>` (any case) | the credential |
//! | AWS access key id (`AKIA`, `ASIA`, … + 16 upper-case letters or digits) | the id |
//! | GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Slack (`xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`), Stripe (`sk_live_`, `rk_test_`, …), Google (`AIza` + 35) keys | the key |
//! | card number: 13–19 digits, single spaces or dashes allowed between them, passing the Luhn check, first digit 2–6 | the number |
//! | US SSN `ddd-dd-dddd` (area not 000, 666 or 9xx; group not 00; serial not 0000) | the number |
//! | each of [`RedactionRules::extra_patterns`] | every match |
//!
//! Object keys are never rewritten. `error_message` goes through
//! [`Redactor::sanitize_error_message`]: the value rule, then a cut to
//! [`MAX_ERROR_MESSAGE_CHARS`] characters.
//!
//! # Limits: what is not caught
//!
//! Redaction is a safety net, not a guarantee. It does not catch:
//!
//! - secrets with no recognisable shape under a non-sensitive key: a random password in a
//!   `"note"` string, an AWS *secret* access key, a generic high-entropy string;
//! - a secret used as an object key, or stored as a JSON number (only strings are scanned;
//!   a card number as a number under a non-sensitive key is kept);
//! - keys whose words only resemble a sensitive word: plurals such as `tokens` or `pins`, or
//!   `PINs` (split as `pi` `ns`, like any acronym followed by a lower-case letter);
//! - in `key=value` pairs, the part of a value after a space, `&`, `,`, `;` or quote;
//! - `Bearer`/`Basic` credentials shorter than 8 characters, or made only of lower-case letters
//!   (so prose such as "basic authentication" is kept);
//! - card numbers starting with 0, 1, 7, 8 or 9 (this keeps millisecond timestamps, which pass
//!   the Luhn check one time in ten), or with other separators; SSNs written without dashes;
//! - a password in a connection string without a scheme (`user:pass@host`);
//! - encoded secrets (base64, percent-encoding, escaped JSON beyond `\"`), and a secret split
//!   across several strings.
//!
//! # Cost
//!
//! Nearly every string is clean, so that case is the fast one. A single pass over the bytes
//! first looks for the anchors the built-in shapes need (a run of 9 digits, `eyJ`, `://` then
//! `@`, a key word before `:` or `=`, …); a string with none is done, returned borrowed without
//! allocating. Otherwise all built-in shapes are one compiled [`regex::Regex`], so the string is
//! scanned once more, and the checks a regex cannot express (Luhn, SSN areas, "looks like a
//! credential") run on candidates only. Extra patterns add one scan of a [`regex::RegexSet`].
//! Time is linear in the length of the string, whatever its content.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use regex::{CaptureLocations, Regex, RegexSet};
use serde_json::Value;

use crate::{Error, Result};

/// The text that replaces every redacted value or span.
pub const REDACTED: &str = "**REDACTED**";

/// The longest `error_message` kept, in characters (not bytes).
pub const MAX_ERROR_MESSAGE_CHARS: usize = 500;

/// The built-in sensitive key words, as joined lower-case letters (see the module docs).
const SENSITIVE_KEY_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "cookie",
    "ssn",
    "dob",
    "dateofbirth",
    "birthdate",
    "card",
    "cardnumber",
    "cvv",
    "cvc",
    "pin",
    "accountnumber",
    "iban",
    "otp",
    // Plurals that still name secrets. `tokens` is left out on purpose: see the module docs.
    "passwords",
    "passphrases",
    "secrets",
    "cookies",
    "apikeys",
    "accesskeys",
    "privatekeys",
    "secretkeys",
];

/// User configuration on top of the built-in rules.
///
/// | field | default | effect |
/// |---|---|---|
/// | `extra_keys` | none | more sensitive key words |
/// | `extra_patterns` | none | more value patterns |
/// | `allow_keys` | none | keys never redacted by name |
#[derive(Clone, Debug, Default)]
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

/// Applies the redaction rules of SPEC §5 to JSON values and strings.
///
/// Built once (the regexes are compiled in [`Redactor::new`]), then shared: it is `Send + Sync`
/// and cheap to put behind an `Arc`. [`Redactor::default`] holds the built-in rules only.
///
/// # Example
///
/// ```
/// use nexus_audit::redact::{Redactor, REDACTED};
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
    keys: KeyTrie,
    /// Lower-cased allow-listed keys.
    allow_keys: Vec<String>,
    builtin: BuiltinPatterns,
    extra: Option<ExtraPatterns>,
}

impl Default for Redactor {
    /// A redactor with the built-in rules only.
    fn default() -> Self {
        Redactor {
            keys: BUILTIN_KEYS.clone(),
            allow_keys: Vec::new(),
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
        let mut keys = BUILTIN_KEYS.clone();
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
        let allow_keys = rules.allow_keys.iter().map(|k| k.to_lowercase()).collect();
        let extra = if rules.extra_patterns.is_empty() {
            None
        } else {
            Some(ExtraPatterns::new(&rules.extra_patterns)?)
        };
        Ok(Redactor {
            keys,
            allow_keys,
            builtin: BUILTIN_PATTERNS.clone(),
            extra,
        })
    }

    /// True when the key's value must be replaced wholesale: one of its words, or several
    /// adjacent words joined, is a sensitive word, and the key is not allow-listed.
    #[must_use]
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        if self.is_allowed_key(key) {
            return false;
        }
        if key.is_ascii() {
            self.keys.matches_ascii_key(key.as_bytes())
        } else {
            self.keys.matches_key(key)
        }
    }

    /// Redacts `v` in place, at any depth, in objects and arrays alike.
    ///
    /// The value under a sensitive key (see [`Redactor::is_sensitive_key`]), whatever its type,
    /// becomes the string [`REDACTED`]; every other string goes through
    /// [`Redactor::redact_str`]. Object keys are never rewritten, and numbers, booleans and
    /// nulls outside sensitive keys are kept.
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
        self.builtin.find_spans(s, &mut spans);
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
        let redacted = self.redact_str(s);
        truncate_chars(&redacted, MAX_ERROR_MESSAGE_CHARS).to_owned()
    }

    fn is_allowed_key(&self, key: &str) -> bool {
        if key.is_ascii() {
            // NOTE: `allowed` is lower-cased already, so ignoring ASCII case is enough here.
            return self
                .allow_keys
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(key));
        }
        self.allow_keys
            .iter()
            .any(|allowed| key.chars().flat_map(char::to_lowercase).eq(allowed.chars()))
    }

    /// Redacts the direct children of a container; nested containers go on `stack`.
    fn redact_children<'v>(&self, v: &'v mut Value, stack: &mut Vec<&'v mut Value>) {
        match v {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if self.is_sensitive_key(key) {
                        if child.as_str() != Some(REDACTED) {
                            *child = Value::String(REDACTED.to_owned());
                        }
                    } else {
                        self.redact_child(child, stack);
                    }
                }
            }
            Value::Array(items) => {
                for child in items {
                    self.redact_child(child, stack);
                }
            }
            other => self.redact_child(other, stack),
        }
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

// ---------------------------------------------------------------------------------------------
// Keys

/// One letter of a key, with where it sits in its word.
#[derive(Clone, Copy, Debug)]
struct Letter {
    ch: char,
    /// The first letter of a word.
    start: bool,
    /// The last letter of a word.
    end: bool,
}

/// The letters of a key, in order, marked with the word boundaries of SPEC §5. Non-letters
/// (separators, digits) are skipped; they only end words. Cloning it is free, so a match can be
/// tried from every word start without collecting the words.
#[derive(Clone, Debug)]
struct Letters<'a> {
    rest: std::str::Chars<'a>,
    prev: Option<char>,
}

impl<'a> Letters<'a> {
    fn new(key: &'a str) -> Self {
        Letters {
            rest: key.chars(),
            prev: None,
        }
    }
}

impl Iterator for Letters<'_> {
    type Item = Letter;

    fn next(&mut self) -> Option<Letter> {
        loop {
            let ch = self.rest.next()?;
            let prev = self.prev.replace(ch);
            if !ch.is_alphabetic() {
                continue;
            }
            let mut ahead = self.rest.clone();
            let next = ahead.next();
            let after_next = ahead.next();
            let start = prev.is_none_or(|p| !p.is_alphabetic() || splits(p, ch, next));
            let end = next.is_none_or(|n| !n.is_alphabetic() || splits(ch, n, after_next));
            return Some(Letter { ch, start, end });
        }
    }
}

/// True when a word boundary falls between letters `a` and `b` (`after_b` follows `b`):
/// `aB` (camelCase) or `ABc` (the end of an acronym, as in `APIKey`).
fn splits(a: char, b: char, after_b: Option<char>) -> bool {
    b.is_uppercase()
        && (a.is_lowercase() || (a.is_uppercase() && after_b.is_some_and(char::is_lowercase)))
}

/// The sensitive words as a trie over lower-case letters, walked across word boundaries, so that
/// "a word or adjacent words joined" is checked without building any string.
#[derive(Clone, Debug)]
struct KeyTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Clone, Debug, Default)]
struct TrieNode {
    /// Children by `a`..=`z`; 0 means none (the root is nobody's child).
    ascii: [u32; 26],
    /// Children by any other lower-case letter (only from extra keys).
    other: Vec<(char, u32)>,
    /// A sensitive word ends here.
    terminal: bool,
}

static BUILTIN_KEYS: LazyLock<KeyTrie> = LazyLock::new(|| {
    let mut trie = KeyTrie {
        nodes: vec![TrieNode::default()],
    };
    for word in SENSITIVE_KEY_WORDS {
        trie.insert(word);
    }
    trie
});

impl KeyTrie {
    /// Adds a word of lower-case letters.
    fn insert(&mut self, word: &str) {
        let mut node = 0;
        for ch in word.chars() {
            node = if let Some(next) = self.child(node, ch) {
                next
            } else {
                let next = self.nodes.len();
                let index = u32::try_from(next).expect("fewer than 2^32 trie nodes");
                self.nodes.push(TrieNode::default());
                let parent = &mut self.nodes[node];
                match ch {
                    'a'..='z' => parent.ascii[usize::from(ch as u8 - b'a')] = index,
                    _ => parent.other.push((ch, index)),
                }
                next
            };
        }
        self.nodes[node].terminal = true;
    }

    fn child(&self, node: usize, ch: char) -> Option<usize> {
        let node = &self.nodes[node];
        let next = match ch {
            'a'..='z' => node.ascii[usize::from(ch as u8 - b'a')],
            _ => node
                .other
                .iter()
                .find_map(|&(c, next)| (c == ch).then_some(next))?,
        };
        (next != 0).then_some(next as usize)
    }

    /// True when, from some word start of `key`, one word or several adjacent words joined
    /// spell a sensitive word ending at a word end.
    fn matches_key(&self, key: &str) -> bool {
        let mut letters = Letters::new(key);
        loop {
            let from_here = letters.clone();
            let Some(letter) = letters.next() else {
                return false;
            };
            if letter.start && self.matches_words(from_here) {
                return true;
            }
        }
    }

    /// [`KeyTrie::matches_key`] for an ASCII key, on bytes: the same rules, several times
    /// faster, and keys are nearly always ASCII.
    fn matches_ascii_key(&self, key: &[u8]) -> bool {
        let letter_at = |i: usize| key.get(i).is_some_and(u8::is_ascii_alphabetic);
        // A word starts at letter `i` (SPEC §5 boundaries; see `splits`).
        let starts_word = |i: usize| {
            let Some(prev) = i.checked_sub(1).and_then(|p| key.get(p)) else {
                return true;
            };
            !prev.is_ascii_alphabetic()
                || (key[i].is_ascii_uppercase()
                    && (prev.is_ascii_lowercase()
                        || (prev.is_ascii_uppercase()
                            && key.get(i + 1).is_some_and(u8::is_ascii_lowercase))))
        };
        for start in 0..key.len() {
            if !letter_at(start) || !starts_word(start) {
                continue;
            }
            let mut node = 0;
            for (i, b) in key.iter().enumerate().skip(start) {
                if !b.is_ascii_alphabetic() {
                    continue;
                }
                match self.child(node, char::from(b.to_ascii_lowercase())) {
                    Some(next) => node = next,
                    None => break,
                }
                if self.nodes[node].terminal && (!letter_at(i + 1) || starts_word(i + 1)) {
                    return true;
                }
            }
        }
        false
    }

    /// True when the words read from `letters` (which starts at a word start), one or several
    /// joined, spell a sensitive word ending at a word end.
    fn matches_words(&self, letters: Letters<'_>) -> bool {
        let mut node = 0;
        for letter in letters {
            for ch in letter.ch.to_lowercase() {
                match self.child(node, ch) {
                    Some(next) => node = next,
                    None => return false,
                }
            }
            if letter.end && self.nodes[node].terminal {
                return true;
            }
        }
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Values

/// A post-check a built-in pattern's candidate must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Every match is redacted.
    None,
    /// The digits pass the Luhn check, start with 2–6, and do not run on into more `-digit`s.
    CardNumber,
    /// A plausible SSN that does not run on into more `-digit`s.
    Ssn,
    /// The secret group looks like a credential rather than an English word.
    Credential,
}

/// A built-in value pattern. In `pattern`, the group `(?P<secret>…)`, when present, is the span
/// replaced; otherwise the whole match is.
struct Rule {
    name: &'static str,
    pattern: &'static str,
    check: Check,
}

/// The built-in value patterns, in priority order (the first wins when two start at the same
/// place). Word boundaries are ASCII (`(?-u:\b)`), which keeps the lazy DFA usable on any text.
///
/// IMPORTANT: no rule may begin with an unbounded run of common characters (a URL scheme, the
/// `access_` of `access_token`). A rejected candidate restarts the search one character later;
/// a thread like that, alive from the same start as a rejected card-number candidate, would
/// make each restart scan to the end of the run: quadratic time on attacker-chosen text such
/// as `4-4-4-4-…` (see `dashed_digit_run_is_scanned_in_linear_time`). The key and the scheme
/// are kept anyway, so the rules start at the key word and at `://`.
const RULES: &[Rule] = &[
    Rule {
        name: "pem_private_key",
        pattern: r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
        check: Check::None,
    },
    Rule {
        name: "jwt",
        pattern: r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
        check: Check::None,
    },
    Rule {
        name: "url_password",
        pattern: r"://[^\s:/?#@]*:(?P<secret>[^\s/?#]+)@",
        check: Check::None,
    },
    Rule {
        name: "key_value_pair",
        pattern: concat!(
            r"(?i-u:password|passwd|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key",
            r"|private[_-]?key|auth|authorization|credentials?)(?-u:\b)",
            r#"(?:\\?["'])?[ \t]*[:=][ \t]*(?:\\?["'])?(?:(?i-u:bearer|basic|token)[ \t]+)?"#,
            r#"(?P<secret>(?:[^\s&,;"'\\]|\\[^"'])+)"#,
        ),
        check: Check::None,
    },
    Rule {
        name: "authorization_scheme",
        pattern: r"(?-u:\b)(?i-u:bearer|basic)[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{8,}=*)",
        check: Check::Credential,
    },
    Rule {
        name: "aws_access_key_id",
        pattern: r"(?-u:\b)(?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
        check: Check::None,
    },
    Rule {
        name: "github_token",
        pattern: r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
        check: Check::None,
    },
    Rule {
        name: "slack_token",
        pattern: r"(?-u:\b)xox[abprs]-[A-Za-z0-9-]{10,}",
        check: Check::None,
    },
    Rule {
        name: "stripe_key",
        pattern: r"(?-u:\b)[rsp]k_(?:live|test)_[A-Za-z0-9]{10,}",
        check: Check::None,
    },
    Rule {
        name: "google_api_key",
        pattern: r"AIza[0-9A-Za-z_-]{35}",
        check: Check::None,
    },
    Rule {
        name: "card_number",
        pattern: r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
        check: Check::CardNumber,
    },
    Rule {
        name: "us_ssn",
        pattern: r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
        check: Check::Ssn,
    },
];

/// The built-in patterns compiled into one regex, one named group per rule.
#[derive(Clone, Debug)]
struct BuiltinPatterns {
    regex: Regex,
    rules: Vec<CompiledRule>,
}

/// Where a rule's groups sit in the combined regex.
#[derive(Clone, Copy, Debug)]
struct CompiledRule {
    whole: usize,
    secret: Option<usize>,
    check: Check,
}

static BUILTIN_PATTERNS: LazyLock<BuiltinPatterns> = LazyLock::new(|| {
    BuiltinPatterns::compile().expect("the built-in redaction patterns are valid (see tests)")
});

impl BuiltinPatterns {
    fn compile() -> std::result::Result<Self, String> {
        let combined = RULES
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let body = rule.pattern.replace("(?P<secret>", &format!("(?P<s{i}>"));
                format!("(?P<r{i}>{body})")
            })
            .collect::<Vec<_>>()
            .join("|");
        let regex = Regex::new(&combined).map_err(|e| e.to_string())?;
        let group = |name: &str| regex.capture_names().position(|n| n == Some(name));
        let rules = RULES
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let whole = group(&format!("r{i}"))
                    .ok_or_else(|| format!("rule {} lost its group", rule.name))?;
                let secret = group(&format!("s{i}"));
                Ok(CompiledRule {
                    whole,
                    secret,
                    check: rule.check,
                })
            })
            .collect::<std::result::Result<_, String>>()?;
        Ok(BuiltinPatterns { regex, rules })
    }

    /// Pushes the span to replace of every accepted match in `s`, in order.
    fn find_spans(&self, s: &str, spans: &mut Vec<Range<usize>>) {
        // The fast path: most strings hold none of the patterns' anchors and skip the regex.
        if !may_match_builtin(s.as_bytes()) {
            return;
        }
        let mut locations: Option<CaptureLocations> = None;
        let mut at = 0;
        while at <= s.len() {
            let Some(found) = self.regex.find_at(s, at) else {
                break;
            };
            let accepted = if s.as_bytes()[found.start()].is_ascii_digit() {
                digit_candidate_span(s, found.range())
            } else {
                let locs = locations.get_or_insert_with(|| self.regex.capture_locations());
                self.accepted_span(s, found.start(), locs)
            };
            match accepted {
                Some(span) => {
                    if &s[span.clone()] != REDACTED {
                        spans.push(span);
                    }
                    at = if found.is_empty() {
                        next_char_boundary(s, found.start())
                    } else {
                        found.end()
                    };
                }
                // A rejected candidate may hide a real match that starts inside it.
                None => at = next_char_boundary(s, found.start()),
            }
        }
    }

    /// The span to replace for the match that starts at `start`, if its rule's post-check
    /// passes: the general (slower) way, through the capture groups.
    fn accepted_span(
        &self,
        s: &str,
        start: usize,
        locs: &mut CaptureLocations,
    ) -> Option<Range<usize>> {
        // NOTE: searching again from the match start finds the same leftmost-first match,
        // this time with its groups, which tell which rule matched.
        self.regex.captures_read_at(locs, s, start)?;
        let (rule, whole) = self
            .rules
            .iter()
            .find_map(|rule| locs.get(rule.whole).map(|(start, end)| (rule, start..end)))?;
        let span = match rule.secret.and_then(|g| locs.get(g)) {
            Some((start, end)) => start..end,
            None => whole.clone(),
        };
        let text = &s[span.clone()];
        match rule.check {
            Check::None => Some(span),
            Check::CardNumber => card_number_span(s, whole),
            Check::Ssn => ssn_span(s, whole),
            Check::Credential => looks_like_credential(text).then_some(span),
        }
    }
}

/// [`BuiltinPatterns::accepted_span`] for a match that starts with a digit, without the capture
/// engine: only the card-number and SSN rules start with a digit, and their matches differ in
/// length (13 digits or more against 9), so the match alone says which rule it is.
///
/// NOTE: digit runs (timestamps, long ids) are the commonest rejected candidates, and the
/// capture engine costs a microsecond or so a candidate; this costs a few nanoseconds.
/// `digit_shortcut_agrees_with_the_capture_groups` pins the equivalence.
fn digit_candidate_span(s: &str, whole: Range<usize>) -> Option<Range<usize>> {
    if s[whole.clone()].bytes().filter(u8::is_ascii_digit).count() >= 13 {
        card_number_span(s, whole)
    } else {
        ssn_span(s, whole)
    }
}

/// The SSN candidate `whole`, if plausible and not part of a longer dashed number.
fn ssn_span(s: &str, whole: Range<usize>) -> Option<Range<usize>> {
    (plausible_ssn(&s[whole.clone()]) && !runs_on(s, &whole)).then_some(whole)
}

/// The card number within the candidate `whole`, if any.
///
/// The regex takes the longest digit run it can (up to 19 digits), which may swallow a short
/// number written after the card ("4111 1111 1111 1111 12"); so when the whole run fails, its
/// prefixes ending at a separator are tried too, longest first, down to 13 digits.
fn card_number_span(s: &str, whole: Range<usize>) -> Option<Range<usize>> {
    let text = &s[whole.clone()];
    if !text
        .as_bytes()
        .first()
        .is_some_and(|d| (b'2'..=b'6').contains(d))
    {
        return None;
    }
    let mut digits = text.bytes().filter(u8::is_ascii_digit).count();
    let mut end = text.len();
    while digits >= 13 {
        let span = whole.start..whole.start + end;
        if !runs_on(s, &span) && luhn_valid(&text[..end]) {
            return Some(span);
        }
        let separator = text[..end].rfind([' ', '-'])?;
        digits -= text[separator..end]
            .bytes()
            .filter(u8::is_ascii_digit)
            .count();
        end = separator;
    }
    None
}

/// A necessary condition for any of [`RULES`] to match `s`, checked in one cheap pass: each rule
/// needs an anchor (a run of 9 digits, `eyJ`, `://` then `@`, a key word's last two letters
/// before `:` or `=`, …), and a string with none cannot match.
///
/// NOTE: a regex call costs tens of nanoseconds even on a short string, and the lazy DFA a
/// couple of nanoseconds a byte, while this loop costs a fraction of that; nearly every string
/// in a log is clean, so it pays for itself many times over. It must stay a superset of the
/// regex: `gate_never_hides_a_builtin_match` checks that on generated strings. When a rule is
/// added or changed, add its anchor here.
fn may_match_builtin(s: &[u8]) -> bool {
    // Digits in the current run, where a single space or dash may separate two digits.
    let mut run_digits = 0;
    let mut after_separator = false;
    let mut scheme_seen = false;
    for (i, &b) in s.iter().enumerate() {
        if b.is_ascii_digit() {
            run_digits += 1;
            after_separator = false;
            // Card numbers have 13 digits at least, SSNs 9.
            if run_digits >= 9 {
                return true;
            }
            continue;
        }
        if !ANCHOR_BYTES[usize::from(b)] {
            run_digits = 0;
            after_separator = false;
            continue;
        }
        if matches!(b, b' ' | b'-') && run_digits > 0 && !after_separator {
            after_separator = true;
        } else {
            run_digits = 0;
            after_separator = false;
        }
        let before = &s[..i];
        let anchor = match b {
            // `-----BEGIN` (PEM)
            b'B' => before.ends_with(b"-----"),
            // `eyJ` (JWT)
            b'J' => before.ends_with(b"ey"),
            // `://` then `@` (password in a URL)
            b'/' => {
                scheme_seen |= before.ends_with(b":");
                false
            }
            b'@' => scheme_seen,
            // `password=`, `token: ` …
            b':' | b'=' => ends_with_key_word(before),
            // `Bearer `, `basic ` …
            b' ' | b'\t' => {
                ends_with_ignore_ascii_case(before, b"bearer")
                    || ends_with_ignore_ascii_case(before, b"basic")
            }
            // AWS key ids, `AIza` (Google)
            b'A' => {
                let rest = &s[i..];
                rest.starts_with(b"AIza")
                    || (rest.len() >= 20
                        && (rest.starts_with(b"A3T")
                            || AWS_KEY_ID_PREFIXES.iter().any(|p| rest.starts_with(p))))
            }
            // `ghp_` … `github_` (GitHub), `sk_` … (Stripe)
            b'_' => {
                matches!(before, [.., b'g', b'h', c] if b"pousr".contains(c))
                    || before.ends_with(b"github")
                    || matches!(before, [.., c, b'k'] if b"rsp".contains(c))
            }
            // `xoxb-` … (Slack)
            b'-' => matches!(before, [.., b'x', b'o', b'x', c] if b"abprs".contains(c)),
            _ => false,
        };
        if anchor {
            return true;
        }
    }
    false
}

/// The bytes, besides digits, at which [`may_match_builtin`] looks closer: one table lookup
/// lets every other byte through fast.
const ANCHOR_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let anchors = b"BJ/@:= \tA_-";
    let mut i = 0;
    while i < anchors.len() {
        table[anchors[i] as usize] = true;
        i += 1;
    }
    table
};

/// The AWS access key id prefixes of the `aws_access_key_id` rule, but `A3T?`.
const AWS_KEY_ID_PREFIXES: [&[u8]; 10] = [
    b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"AIPA", b"ANPA", b"ANVA", b"ABIA", b"ACCA",
];

/// True when `before` (the text before a `:` or `=`) ends with a key word of the
/// `key_value_pair` rule, possibly followed by a quote and blanks: its last two letters are
/// checked, which is enough for a gate.
fn ends_with_key_word(before: &[u8]) -> bool {
    let mut end = before.len();
    while end > 0 && matches!(before[end - 1], b' ' | b'\t' | b'"' | b'\'' | b'\\') {
        end -= 1;
    }
    let [.., a, b] = &before[..end] else {
        return false;
    };
    matches!(
        [a.to_ascii_lowercase(), b.to_ascii_lowercase()],
        // password, passwd/pwd, passphrase, secret, token, …key, auth, authorization,
        // credential, credentials
        [b'r' | b'w', b'd']
            | [b's', b'e']
            | [b'e', b't' | b'n' | b'y']
            | [b't', b'h']
            | [b'o', b'n']
            | [b'a', b'l']
            | [b'l', b's']
    )
}

/// `s.ends_with(suffix)`, ignoring ASCII case.
fn ends_with_ignore_ascii_case(s: &[u8], suffix: &[u8]) -> bool {
    s.len() >= suffix.len() && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// True when the digits of `text` (other characters ignored) pass the Luhn check.
fn luhn_valid(text: &str) -> bool {
    let sum: u32 = text
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
        .map(|(i, d)| match (i % 2 == 1, d * 2) {
            (false, _) => d,
            (true, doubled) if doubled > 9 => doubled - 9,
            (true, doubled) => doubled,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// True when the digit group at `span` is part of a longer dash-separated sequence (such as an
/// all-digit UUID or a longer id), which is not a card number or an SSN.
fn runs_on(s: &str, span: &Range<usize>) -> bool {
    let before = &s.as_bytes()[..span.start];
    let after = &s.as_bytes()[span.end..];
    matches!(before, [.., b'0'..=b'9', b'-']) || matches!(after, [b'-', b'0'..=b'9', ..])
}

/// `ddd-dd-dddd` with an area other than 000, 666 and 9xx, a group other than 00 and a serial
/// other than 0000 (the SSA never issues those).
fn plausible_ssn(text: &str) -> bool {
    let mut parts = text.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// True when a `Bearer`/`Basic` credential has a digit, a punctuation character of token68, or
/// an upper-case letter after its first character: "Authentication" and "settings" do not.
fn looks_like_credential(token: &str) -> bool {
    token.bytes().enumerate().any(|(i, b)| {
        b.is_ascii_digit() || b"._~+/=-".contains(&b) || (i > 0 && b.is_ascii_uppercase())
    })
}

/// The user's extra value patterns: one set to find out, in one scan, whether any matches, then
/// each pattern alone for the spans.
///
/// NOTE: they are kept apart from the built-in regex because splicing a user's pattern into an
/// alternation is not always safe (an `(?x)` comment would swallow the closing parenthesis).
#[derive(Clone, Debug)]
struct ExtraPatterns {
    set: RegexSet,
    each: Vec<Regex>,
}

impl ExtraPatterns {
    fn new(patterns: &[String]) -> Result<Self> {
        let mut each = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let regex = Regex::new(pattern).map_err(|e| {
                Error::InvalidConfig(format!("redaction pattern {pattern:?} is invalid: {e}"))
            })?;
            if regex.is_match("") {
                return Err(Error::InvalidConfig(format!(
                    "redaction pattern {pattern:?} matches the empty string"
                )));
            }
            each.push(regex);
        }
        let set = RegexSet::new(patterns).map_err(|e| {
            Error::InvalidConfig(format!("redaction patterns cannot be combined: {e}"))
        })?;
        Ok(ExtraPatterns { set, each })
    }

    fn find_spans(&self, s: &str, spans: &mut Vec<Range<usize>>) {
        if !self.set.is_match(s) {
            return;
        }
        for regex in &self.each {
            spans.extend(
                regex
                    .find_iter(s)
                    .filter(|m| !m.is_empty() && m.as_str() != REDACTED)
                    .map(|m| m.range()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Builds test secrets from pieces, so that no literal in this file trips a secret scanner.
    fn joined(parts: &[&str]) -> String {
        parts.concat()
    }

    fn github_token() -> String {
        joined(&["ghp", "_", "R8kq2LmN4pX7vT1sW9yZ3bC6dF0gH5jK2aQe"])
    }

    fn slack_token() -> String {
        joined(&["xoxb", "-", "2048-77551123-Qm9RkT2xYw7Lp3Vn"])
    }

    fn stripe_key() -> String {
        joined(&["sk", "_live_", "4eC39HqLyjWDarjtT1zdp7dc"])
    }

    fn google_key() -> String {
        joined(&["AIza", "SyD-8fK2mQ9xL4vN7pR1tW3yB6cE0gH5jZa"])
    }

    fn aws_key_id() -> String {
        joined(&["AKIA", "IOSFODNN7EXAMPLE"])
    }

    fn jwt() -> String {
        joined(&[
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ",
            ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ])
    }

    fn pem() -> String {
        joined(&[
            "-----BEGIN RSA ",
            "PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq2\nx9Lm3Qw==\n",
            "-----END RSA ",
            "PRIVATE KEY-----",
        ])
    }

    /// Every value-rule secret of the tests, with the text the test embeds it in.
    fn secrets() -> Vec<String> {
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

    fn redact(s: &str) -> String {
        Redactor::default().redact_str(s).into_owned()
    }

    fn assert_kept(s: &str) {
        let redactor = Redactor::default();
        assert!(
            matches!(redactor.redact_str(s), Cow::Borrowed(_)),
            "{s:?} was redacted to {:?}",
            redactor.redact_str(s)
        );
    }

    // --- keys ---------------------------------------------------------------------------

    #[test]
    fn every_builtin_key_word_is_sensitive() {
        let redactor = Redactor::default();
        for word in SENSITIVE_KEY_WORDS {
            assert!(redactor.is_sensitive_key(word), "{word}");
            assert!(redactor.is_sensitive_key(&word.to_uppercase()), "{word}");
            assert!(redactor.is_sensitive_key(&format!("x_{word}_y")), "{word}");
        }
    }

    #[test]
    fn camel_case_and_separated_keys_are_split_into_words() {
        let redactor = Redactor::default();
        for key in [
            "apiKey",
            "API_KEY",
            "APIKey",
            "api-key",
            "x-api-key",
            "x-auth-token",
            "db.password",
            "Authorization",
            "user_password2",
            "SessionToken",
            "set-cookie",
            "client secret",
            "userPIN",
            "cvv2",
            "2fa_otp",
        ] {
            assert!(redactor.is_sensitive_key(key), "{key}");
        }
    }

    #[test]
    fn adjacent_words_joined_are_sensitive() {
        let redactor = Redactor::default();
        for key in [
            "access_key",
            "privateKey",
            "secret-key",
            "cardNumber",
            "account_number",
            "birth_date",
            "pass_word",
        ] {
            assert!(redactor.is_sensitive_key(key), "{key}");
        }
    }

    #[test]
    fn three_adjacent_words_joined_are_sensitive() {
        let redactor = Redactor::default();
        for key in [
            "date_of_birth",
            "dateOfBirth",
            "DATE-OF-BIRTH",
            "patient.date.of.birth",
        ] {
            assert!(redactor.is_sensitive_key(key), "{key}");
        }
    }

    #[test]
    fn keys_that_only_contain_a_sensitive_word_are_kept() {
        let redactor = Redactor::default();
        for key in [
            "author",
            "authority",
            "shipping",
            "tokenizer",
            "mapping",
            "pinned",
            "cardinality",
            "keyboard",
            "secretary",
            "passwordless",
            "public_key",
            "account_id",
            "spin",
            "",
            "_-.",
            "1234",
        ] {
            assert!(!redactor.is_sensitive_key(key), "{key}");
        }
    }

    #[test]
    fn tokens_plural_is_kept_as_a_usage_counter() {
        let redactor = Redactor::default();
        for key in ["tokens_used", "max_tokens", "inputTokens", "tokens"] {
            assert!(!redactor.is_sensitive_key(key), "{key}");
        }
    }

    #[test]
    fn plurals_naming_secrets_are_sensitive() {
        let redactor = Redactor::default();
        for key in ["passwords", "client_secrets", "cookies", "apiKeys"] {
            assert!(redactor.is_sensitive_key(key), "{key}");
        }
    }

    #[test]
    fn non_ascii_keys_are_split_and_lowercased() {
        let redactor = Redactor::default();
        assert!(redactor.is_sensitive_key("ÜberPassword"));
        assert!(!redactor.is_sensitive_key("Straße"));
    }

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
    fn object_keys_are_not_rewritten() {
        let key = github_token();
        let mut v = json!({ key.clone(): "value" });
        Redactor::default().redact_value(&mut v);
        assert_eq!(v[key.as_str()], "value");
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

    // --- values ---------------------------------------------------------------------------

    #[test]
    fn jwt_is_redacted() {
        assert_eq!(
            redact(&format!("session {} ok", jwt())),
            "session **REDACTED** ok"
        );
    }

    #[test]
    fn bearer_credential_is_redacted_keeping_the_scheme() {
        assert_eq!(
            redact("curl -H 'Authorization: Bearer abc123DEF456ghi'"),
            "curl -H 'Authorization: Bearer **REDACTED**'"
        );
        assert_eq!(redact("bearer Zm9vYmFyYmF6cXV4"), "bearer **REDACTED**");
    }

    #[test]
    fn bearer_jwt_is_redacted() {
        assert_eq!(redact(&format!("Bearer {}", jwt())), "Bearer **REDACTED**");
    }

    #[test]
    fn basic_credential_is_redacted_keeping_the_scheme() {
        assert_eq!(
            redact("sent Basic dXNlcjpwYXNzd29yZA== to the proxy"),
            "sent Basic **REDACTED** to the proxy"
        );
        assert_eq!(redact("BASIC dXNlcjpwYXNz"), "BASIC **REDACTED**");
    }

    #[test]
    fn scheme_words_in_prose_are_kept() {
        assert_kept("Basic authentication is disabled; use Basic Settings");
        assert_kept("the bearer of this letter");
    }

    #[test]
    fn aws_access_key_id_is_redacted() {
        assert_eq!(
            redact(&format!("key {} used", aws_key_id())),
            "key **REDACTED** used"
        );
        assert_eq!(redact(&joined(&["ASIA", "Y34FZKBOKMUTVV7A"])), REDACTED);
    }

    #[test]
    fn github_tokens_are_redacted() {
        for prefix in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"] {
            let token = joined(&[prefix, "11ABCDEFG0aBcDeFgHiJkLmNoPqRsTuV"]);
            assert_eq!(
                redact(&format!("use {token}.")),
                "use **REDACTED**.",
                "{prefix}"
            );
        }
    }

    #[test]
    fn slack_tokens_are_redacted() {
        for prefix in ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"] {
            let token = joined(&[prefix, "1234567890-abcdefABCDEF"]);
            assert_eq!(redact(&format!("({token})")), "(**REDACTED**)", "{prefix}");
        }
        assert_eq!(redact(&slack_token()), REDACTED);
    }

    #[test]
    fn stripe_keys_are_redacted() {
        for prefix in ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_"] {
            let key = joined(&[prefix, "51H8aBcDeFgHiJkLm"]);
            assert_eq!(
                redact(&format!("key={key}")),
                "key=**REDACTED**",
                "{prefix}"
            );
        }
    }

    #[test]
    fn google_api_key_is_redacted() {
        assert_eq!(
            redact(&format!("maps?key {} end", google_key())),
            "maps?key **REDACTED** end"
        );
    }

    #[test]
    fn pem_private_key_block_is_redacted() {
        assert_eq!(
            redact(&format!("before\n{}\nafter", pem())),
            "before\n**REDACTED**\nafter"
        );
        let bare = joined(&[
            "-----BEGIN ",
            "PRIVATE KEY-----\nabc\n-----END ",
            "PRIVATE KEY-----",
        ]);
        assert_eq!(redact(&bare), REDACTED);
    }

    #[test]
    fn unterminated_pem_block_is_redacted_to_the_end() {
        let cut = joined(&[
            "x -----BEGIN OPENSSH ",
            "PRIVATE KEY-----\nb3BlbnNzaC1rZXkt",
        ]);
        assert_eq!(redact(&cut), "x **REDACTED**");
    }

    #[test]
    fn pem_public_key_and_certificate_are_kept() {
        assert_kept("-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----");
        assert_kept("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    }

    #[test]
    fn url_password_is_redacted_keeping_scheme_user_and_host() {
        assert_eq!(
            redact("postgres://app:s3cr3t@db.internal:5432/prod"),
            "postgres://app:**REDACTED**@db.internal:5432/prod"
        );
        assert_eq!(
            redact("redis://:pa@ss:w0rd@cache/0 ok"),
            "redis://:**REDACTED**@cache/0 ok"
        );
    }

    #[test]
    fn url_without_password_is_kept() {
        assert_kept("https://example.com/a?b=c");
        assert_kept("https://user@example.com:8443/path");
        assert_kept("https://example.com:8080/x?mail=a@b.com");
        assert_kept("mailto:someone@example.com");
    }

    #[test]
    fn key_value_pairs_in_free_text_are_redacted_keeping_the_key() {
        let cases = [
            (
                "login password=hunter2 ok",
                "login password=**REDACTED** ok",
            ),
            ("token: abc.def", "token: **REDACTED**"),
            ("api_key=XYZ&page=2", "api_key=**REDACTED**&page=2"),
            ("secret=s3, next", "secret=**REDACTED**, next"),
            ("a=1;pwd=x;b=2", "a=1;pwd=**REDACTED**;b=2"),
            (
                "https://x.io/cb?access_token=abc&state=1",
                "https://x.io/cb?access_token=**REDACTED**&state=1",
            ),
            ("X-Api-Key: k-123", "X-Api-Key: **REDACTED**"),
            (
                r#"{"password": "hunter2"}"#,
                r#"{"password": "**REDACTED**"}"#,
            ),
            (
                r#"{\"password\":\"hunter2\"}"#,
                r#"{\"password\":\"**REDACTED**\"}"#,
            ),
            ("PASSWORD = 'p w'", "PASSWORD = '**REDACTED** w'"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn authorization_header_pair_redacts_the_credential_after_the_scheme() {
        assert_eq!(
            redact("Authorization: Basic dXNlcjpwYXNz"),
            "Authorization: Basic **REDACTED**"
        );
        assert_eq!(
            redact("authorization=token abc"),
            "authorization=token **REDACTED**"
        );
    }

    #[test]
    fn sensitive_words_in_prose_without_a_pair_are_kept() {
        assert_kept("reset your password please");
        assert_kept("the token is invalid");
        assert_kept("tokenizer=bert max_tokens=100 author=ann");
        assert_kept("password_hint=blue");
    }

    #[test]
    fn card_numbers_passing_luhn_are_redacted() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "5555-5555-5555-4444",
            "378282246310005",
            "6011111111111117",
            "4222222222222",
        ] {
            assert_eq!(
                redact(&format!("paid with {card}.")),
                "paid with **REDACTED**.",
                "{card}"
            );
        }
    }

    #[test]
    fn card_number_followed_by_a_year_is_redacted_alone() {
        assert_eq!(redact("4111 1111 1111 1111 2026"), "**REDACTED** 2026");
    }

    #[test]
    fn card_number_followed_by_a_short_number_is_redacted_alone() {
        assert_eq!(redact("4111111111111111 12 26"), "**REDACTED** 12 26");
        assert_eq!(redact("12 4111111111111111"), "12 **REDACTED**");
    }

    #[test]
    fn digit_run_failing_luhn_is_kept() {
        assert_kept("order 4111111111111112");
        assert_kept("4111 1111 1111 1112");
    }

    #[test]
    fn luhn_valid_millisecond_timestamp_is_kept() {
        // 1736937600003 passes the Luhn check but starts with 1, as every timestamp until 2033.
        assert!(luhn_valid("1736937600003"));
        assert_kept("at 1736937600003");
    }

    #[test]
    fn digit_group_inside_a_longer_dashed_number_is_kept() {
        // 4111-1111-1111-1111 passes Luhn, but here it is part of a longer id.
        assert_kept("id 4111-1111-1111-1111-0042");
        assert_kept("id 9-4111-1111-1111-1111");
    }

    #[test]
    fn dashed_digit_run_is_scanned_in_linear_time() {
        // Regression: a rule starting with `[A-Za-z0-9_.-]*` made this take minutes.
        let s = "4-".repeat(100_000);
        let started = std::time::Instant::now();
        assert_kept(&s);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn us_ssn_is_redacted() {
        assert_eq!(
            redact("ssn on file: 123-45-6789."),
            "ssn on file: **REDACTED**."
        );
    }

    #[test]
    fn impossible_ssns_are_kept() {
        for s in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert_kept(s);
        }
        assert_kept("ref 1-123-45-6789 and 123-45-6789-1");
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

    // --- look-alikes ------------------------------------------------------------------------

    #[test]
    fn uuid_is_kept() {
        assert_kept("request 123e4567-e89b-12d3-a456-426614174000");
        assert_kept("12345678-1234-5678-1234-567812345678");
    }

    #[test]
    fn sha256_digest_is_kept() {
        assert_kept("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
        assert_kept("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn iso_timestamp_is_kept() {
        assert_kept("2026-01-15T10:20:30.123456Z");
        assert_kept("2026-01-15 10:20:30+02:00");
    }

    #[test]
    fn phone_number_is_kept() {
        assert_kept("+1 415-555-0100");
        assert_kept("call (415) 555-0100 or +44 20 7946 0958");
    }

    #[test]
    fn order_id_and_version_are_kept() {
        assert_kept("ORD-2026-000123");
        assert_kept("v1.2.3");
        assert_kept("1.2.3");
    }

    #[test]
    fn plain_prose_and_paths_are_kept() {
        assert_kept("");
        assert_kept("list the files in /home/ann/projects and summarise README.md");
        assert_kept("Grüße, 東京 🚀 naïve café");
    }

    #[test]
    fn ordinary_http_headers_are_kept() {
        assert_kept("Content-Type: application/json; charset=utf-8");
        assert_kept("Content-Length: 42, Accept: */*, Host: example.com:8443");
        assert_kept("token_type=bearer&expires_in=3600&scope=read");
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

    // --- internals ----------------------------------------------------------------------------

    #[test]
    fn builtin_patterns_compile_with_a_group_per_rule() {
        let compiled = BuiltinPatterns::compile();
        assert!(compiled.is_ok(), "{:?}", compiled.err());
        if let Ok(patterns) = compiled {
            assert_eq!(patterns.rules.len(), RULES.len());
        }
    }

    #[test]
    fn ascii_fast_path_agrees_with_the_unicode_path() {
        let trie = &Redactor::default().keys;
        let parts = [
            "api", "API", "Key", "key", "_", "-", ".", " ", "2", "pass", "Word", "WORD", "date",
            "Of", "birth", "PIN", "pinned", "token", "s", "X", "auth", "or", "Card", "Number",
        ];
        for a in parts {
            for b in parts {
                for c in parts {
                    let key = format!("{a}{b}{c}");
                    assert_eq!(
                        trie.matches_ascii_key(key.as_bytes()),
                        trie.matches_key(&key),
                        "{key}"
                    );
                }
            }
        }
    }

    #[test]
    fn gate_lets_common_clean_strings_skip_the_regex() {
        for s in [
            "list the files in /home/ann/projects and summarise README.md",
            "2026-01-15T10:20:30.123456Z",
            "https://example.com/api/v1/items?page=2&limit=50",
            "SELECT id FROM users WHERE created_at > '2026-01-01' LIMIT 100",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "cargo test --lib -- --nocapture",
        ] {
            assert!(!may_match_builtin(s.as_bytes()), "{s}");
        }
    }

    /// Strings that match a built-in rule (each generator is a simplified copy of its rule),
    /// with random text around them.
    fn near_builtin_match() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        use proptest::string::string_regex;
        let cores = [
            "-----BEGIN[A-Z ]{0,4}PRIVATE KEY-----[a-z0-9\n]{0,5}(-----END[A-Z ]{0,4}PRIVATE KEY-----)?",
            r"eyJ[A-Za-z0-9_-]{10,14}\.[A-Za-z0-9_-]{10,14}\.[A-Za-z0-9_-]{0,5}",
            r"[A-Za-z][a-z0-9+.-]{0,5}://[a-z]{0,4}:[^\s/?#]{1,6}@",
            concat!(
                r"[A-Za-z0-9_.-]{0,3}(?i:password|passwd|pwd|passphrase|secret|token|api[_-]?key",
                r"|access[_-]?key|private[_-]?key|auth|authorization|credentials?)",
                r#"(\\?["'])?[ \t]{0,2}[:=][ \t]{0,2}(\\?["'])?((?i:bearer|basic|token)[ \t]+)?"#,
                r"[a-zA-Z0-9]{1,5}",
            ),
            r"(?i:bearer|basic)[ \t]{1,2}[A-Za-z0-9._~+/-]{8,12}=*",
            r"(A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}",
            r"gh[pousr]_[A-Za-z0-9]{20,24}|github_pat_[A-Za-z0-9_]{20,24}",
            r"xox[abprs]-[A-Za-z0-9-]{10,14}",
            r"[rsp]k_(live|test)_[A-Za-z0-9]{10,14}",
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        #[test]
        fn gate_never_hides_a_builtin_match(s in near_builtin_match()) {
            if BUILTIN_PATTERNS.regex.is_match(&s) {
                proptest::prop_assert!(may_match_builtin(s.as_bytes()), "{:?}", s);
            }
        }

        #[test]
        fn digit_shortcut_agrees_with_the_capture_groups(s in near_builtin_match()) {
            let builtin = &*BUILTIN_PATTERNS;
            let mut locs = builtin.regex.capture_locations();
            for found in builtin.regex.find_iter(&s) {
                if s.as_bytes()[found.start()].is_ascii_digit() {
                    proptest::prop_assert_eq!(
                        digit_candidate_span(&s, found.range()),
                        builtin.accepted_span(&s, found.start(), &mut locs),
                        "{:?}", s
                    );
                }
            }
        }
    }

    #[test]
    fn key_words_are_split_at_every_documented_boundary() {
        let words = |key: &str| {
            let mut out: Vec<String> = Vec::new();
            for letter in Letters::new(key) {
                if letter.start {
                    out.push(String::new());
                }
                if let Some(word) = out.last_mut() {
                    word.extend(letter.ch.to_lowercase());
                }
            }
            out
        };
        assert_eq!(words("APIKey"), ["api", "key"]);
        assert_eq!(words("apiKey"), ["api", "key"]);
        assert_eq!(
            words("x-auth.token_id 2b"),
            ["x", "auth", "token", "id", "b"]
        );
        assert_eq!(words("user2Name"), ["user", "name"]);
        assert_eq!(words("HTTPServerURL"), ["http", "server", "url"]);
    }
}
