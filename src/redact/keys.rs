//! The key rule (SPEC §5): an object key is split into words, and its value is redacted when
//! one word, or several adjacent words joined, is a sensitive word. See the parent module.

use std::sync::LazyLock;

use serde_json::Value;

/// The built-in sensitive key words, as joined lower-case letters (see the module docs).
pub(super) const SENSITIVE_KEY_WORDS: &[&str] = &[
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

/// One letter of a key, with where it sits in its word.
#[derive(Clone, Copy, Debug)]
pub(super) struct Letter {
    pub(super) ch: char,
    /// The first letter of a word.
    pub(super) start: bool,
    /// The last letter of a word.
    pub(super) end: bool,
}

/// The letters of a key, in order, marked with the word boundaries of SPEC §5. Non-letters
/// (separators, digits) are skipped; they only end words. Cloning it is free, so a match can be
/// tried from every word start without collecting the words.
#[derive(Clone, Debug)]
pub(super) struct Letters<'a> {
    rest: std::str::Chars<'a>,
    prev: Option<char>,
}

impl<'a> Letters<'a> {
    pub(super) fn new(key: &'a str) -> Self {
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
pub(super) struct KeyTrie {
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

pub(super) static BUILTIN_KEYS: LazyLock<KeyTrie> = LazyLock::new(|| {
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
    pub(super) fn insert(&mut self, word: &str) {
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
    pub(super) fn matches_key(&self, key: &str) -> bool {
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
    pub(super) fn matches_ascii_key(&self, key: &[u8]) -> bool {
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

/// Sensitive words whose secret is itself a date: a date under them is never descriptive.
const DATE_VALUED_WORDS: &[&str] = &["dob", "dateofbirth", "birthdate"];

/// The kinds of value a metadata word describes (a set of bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Kinds(u8);

impl Kinds {
    const NONE: Kinds = Kinds(0);
    /// A count, a size, a limit: a number.
    const NUMBER: Kinds = Kinds(1);
    /// A flag: a boolean.
    const FLAG: Kinds = Kinds(2);
    /// A moment: a timestamp, a date, an epoch number, a duration.
    const TIME: Kinds = Kinds(4);
    /// A kind, a method, a scheme: a short label.
    const LABEL: Kinds = Kinds(8);
    /// An identifier: a number, a UUID, a short id without spaces.
    const ID: Kinds = Kinds(16);
    /// Where: a URL or a host, without spaces.
    const PLACE: Kinds = Kinds(32);

    const fn or(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    fn has(self, other: Kinds) -> bool {
        self.0 & other.0 != 0
    }
}

/// The kinds a metadata word describes, if `word` (lower case) is one. A key with a sensitive
/// word *and* a metadata word outside it names something about the secret, not the secret: its
/// value is kept when it is plainly of a kind the word describes (see [`KeyRule::redacts`]).
///
/// | kinds | words |
/// |---|---|
/// | number | count, counts, length, len, size, total, num, max, min, limit, limits, attempts, attempt, retries, tries, remaining, used, usage, quota, bits, index, idx |
/// | number or label | version |
/// | number or time | ttl, age, lifetime, timeout, duration, seconds, secs, ms, minutes, hours, days |
/// | flag | required, require, requires, enabled, enable, disabled, disable, valid, invalid, verified, present, missing, exists, set, is, has, use, needs, allowed, allow, supported, optional, configured, provided, mandatory |
/// | time | at, on, time, timestamp, ts, date, change, expire, expiry, expiration, issued, since, until |
/// | flag or time | changed, updated, created, modified, rotated, expires, expired |
/// | label | type, types, kind, method, methods, scheme, format, mode, status, state, algorithm, alg, provider, source, brand, network, scope, scopes, category, level, class, strategy, flow, grant, policy, purpose, label, field |
/// | label or id | name, names |
/// | id | id, ids, uuid, ref, arn, kid, jti |
/// | place | url, uri, endpoint, host, domain, server, path, file |
/// | place or label | issuer, location |
fn metadata_kinds(word: &str) -> Option<Kinds> {
    Some(match word {
        "count" | "counts" | "length" | "len" | "size" | "total" | "num" | "max" | "min"
        | "limit" | "limits" | "attempts" | "attempt" | "retries" | "tries" | "remaining"
        | "used" | "usage" | "quota" | "bits" | "index" | "idx" => Kinds::NUMBER,
        "version" => Kinds::NUMBER.or(Kinds::LABEL),
        "ttl" | "age" | "lifetime" | "timeout" | "duration" | "seconds" | "secs" | "ms"
        | "minutes" | "hours" | "days" => Kinds::NUMBER.or(Kinds::TIME),
        "required" | "require" | "requires" | "enabled" | "enable" | "disabled" | "disable"
        | "valid" | "invalid" | "verified" | "present" | "missing" | "exists" | "set" | "is"
        | "has" | "use" | "needs" | "allowed" | "allow" | "supported" | "optional"
        | "configured" | "provided" | "mandatory" => Kinds::FLAG,
        "at" | "on" | "time" | "timestamp" | "ts" | "date" | "change" | "expire" | "expiry"
        | "expiration" | "issued" | "since" | "until" => Kinds::TIME,
        "changed" | "updated" | "created" | "modified" | "rotated" | "expires" | "expired" => {
            Kinds::FLAG.or(Kinds::TIME)
        }
        "type" | "types" | "kind" | "method" | "methods" | "scheme" | "format" | "mode"
        | "status" | "state" | "algorithm" | "alg" | "provider" | "source" | "brand"
        | "network" | "scope" | "scopes" | "category" | "level" | "class" | "strategy" | "flow"
        | "grant" | "policy" | "purpose" | "label" | "field" => Kinds::LABEL,
        "name" | "names" => Kinds::LABEL.or(Kinds::ID),
        "id" | "ids" | "uuid" | "ref" | "arn" | "kid" | "jti" => Kinds::ID,
        "url" | "uri" | "endpoint" | "host" | "domain" | "server" | "path" | "file" => Kinds::PLACE,
        "issuer" | "location" => Kinds::PLACE.or(Kinds::LABEL),
        _ => return None,
    })
}

/// What the key rule says about a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyClass {
    /// No sensitive word: the value goes through the value rule.
    Plain,
    /// A sensitive word and no metadata word: the value is redacted, whatever it is.
    Sensitive,
    /// A sensitive word qualified by metadata words: the value is kept when it is of one of
    /// `kinds` (and, under a date-valued word such as `dob`, not a date).
    Descriptive { kinds: Kinds, date_valued: bool },
}

/// The key rule: the sensitive words, the metadata words and the allow-list.
#[derive(Clone, Debug)]
pub(super) struct KeyRule {
    trie: KeyTrie,
    /// Lower-cased allow-listed keys.
    allow: Vec<String>,
}

impl Default for KeyRule {
    fn default() -> Self {
        KeyRule {
            trie: BUILTIN_KEYS.clone(),
            allow: Vec::new(),
        }
    }
}

impl KeyRule {
    /// Adds a sensitive word (lower-case letters).
    pub(super) fn insert(&mut self, word: &str) {
        self.trie.insert(word);
    }

    /// Adds a key never redacted by name (the whole key, compared case-insensitively).
    pub(super) fn allow(&mut self, key: &str) {
        self.allow.push(key.to_lowercase());
    }

    /// True when the key names a secret: one of its words, or several adjacent words joined,
    /// is a sensitive word, and the key is not allow-listed (metadata words aside).
    pub(super) fn is_sensitive(&self, key: &str) -> bool {
        !self.is_allowed(key) && self.trie.matches(key)
    }

    /// What the rule says about `key`.
    pub(super) fn classify(&self, key: &str) -> KeyClass {
        if !self.is_sensitive(key) {
            return KeyClass::Plain;
        }
        self.trie.classify_sensitive(key)
    }

    /// True when the value under `key` must be replaced wholesale.
    pub(super) fn redacts(&self, key: &str, value: &Value) -> bool {
        match self.classify(key) {
            KeyClass::Plain => false,
            KeyClass::Sensitive => true,
            KeyClass::Descriptive { kinds, date_valued } => {
                !value_is_described(value, kinds, date_valued)
            }
        }
    }

    /// [`KeyRule::redacts`] for a value written as text (`key=value` in a string).
    pub(super) fn redacts_text(&self, key: &str, value: &str) -> bool {
        match self.classify(key) {
            KeyClass::Plain => false,
            KeyClass::Sensitive => true,
            KeyClass::Descriptive { kinds, date_valued } => {
                !text_is_described(value, kinds, date_valued)
            }
        }
    }

    fn is_allowed(&self, key: &str) -> bool {
        if key.is_ascii() {
            // NOTE: `allowed` is lower-cased already, so ignoring ASCII case is enough here.
            return self
                .allow
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(key));
        }
        self.allow
            .iter()
            .any(|allowed| key.chars().flat_map(char::to_lowercase).eq(allowed.chars()))
    }
}

impl KeyTrie {
    /// [`KeyTrie::matches_key`], through the ASCII fast path when it applies.
    fn matches(&self, key: &str) -> bool {
        if key.is_ascii() {
            self.matches_ascii_key(key.as_bytes())
        } else {
            self.matches_key(key)
        }
    }

    /// The class of a key that holds a sensitive word: which words are covered by sensitive
    /// words, and what the other words say.
    ///
    /// NOTE: only keys with a sensitive word get here (a few in a record), so collecting the
    /// words costs nothing that matters.
    fn classify_sensitive(&self, key: &str) -> KeyClass {
        // Nearly every sensitive key has no metadata word at all: find that out without
        // collecting anything.
        if !has_metadata_word(key) {
            return KeyClass::Sensitive;
        }
        let words = split_words(key);
        let mut covered = vec![false; words.len()];
        let mut date_valued = false;
        for i in 0..words.len() {
            let mut node = 0;
            let mut joined = String::new();
            'words: for j in i..words.len() {
                for ch in words[j].chars() {
                    match self.child(node, ch) {
                        Some(next) => node = next,
                        None => break 'words,
                    }
                }
                joined.push_str(&words[j]);
                if self.nodes[node].terminal {
                    covered[i..=j].fill(true);
                    date_valued |= DATE_VALUED_WORDS.contains(&joined.as_str());
                }
            }
        }
        let kinds = words
            .iter()
            .zip(&covered)
            .filter(|(_, covered)| !**covered)
            .filter_map(|(word, _)| metadata_kinds(word))
            .fold(Kinds::NONE, Kinds::or);
        if kinds == Kinds::NONE {
            KeyClass::Sensitive
        } else {
            KeyClass::Descriptive { kinds, date_valued }
        }
    }
}

/// True when one of the words of `key` is a metadata word.
fn has_metadata_word(key: &str) -> bool {
    if key.is_ascii() {
        return has_ascii_metadata_word(key.as_bytes());
    }
    let mut word = [0_u8; 16];
    let mut len = 0;
    let mut fits = true;
    for letter in Letters::new(key) {
        if letter.start {
            len = 0;
            fits = true;
        }
        match u8::try_from(letter.ch) {
            Ok(b) if fits && b.is_ascii() && len < word.len() => {
                word[len] = b.to_ascii_lowercase();
                len += 1;
            }
            _ => fits = false,
        }
        if letter.end
            && fits
            && std::str::from_utf8(&word[..len]).is_ok_and(|w| metadata_kinds(w).is_some())
        {
            return true;
        }
    }
    false
}

/// [`has_metadata_word`] for an ASCII key, on bytes, with the word boundaries of
/// [`KeyTrie::matches_ascii_key`]: several times faster than walking [`Letters`].
fn has_ascii_metadata_word(key: &[u8]) -> bool {
    let mut word = [0_u8; 16];
    let mut len = 0;
    let mut fits = true;
    for (i, &b) in key.iter().enumerate() {
        if !b.is_ascii_alphabetic() {
            continue;
        }
        let starts = i == 0
            || !key[i - 1].is_ascii_alphabetic()
            || (b.is_ascii_uppercase()
                && (key[i - 1].is_ascii_lowercase()
                    || (key[i - 1].is_ascii_uppercase()
                        && key.get(i + 1).is_some_and(u8::is_ascii_lowercase))));
        if starts {
            len = 0;
            fits = true;
        }
        if fits && len < word.len() {
            word[len] = b.to_ascii_lowercase();
            len += 1;
        } else {
            fits = false;
        }
        let next = key.get(i + 1).copied();
        let ends = next.is_none_or(|n| {
            !n.is_ascii_alphabetic()
                || (n.is_ascii_uppercase()
                    && (b.is_ascii_lowercase()
                        || (b.is_ascii_uppercase()
                            && key.get(i + 2).is_some_and(u8::is_ascii_lowercase))))
        });
        if ends
            && fits
            && std::str::from_utf8(&word[..len]).is_ok_and(|w| metadata_kinds(w).is_some())
        {
            return true;
        }
    }
    false
}

/// The words of a key, lower-cased, split at the boundaries of SPEC §5.
fn split_words(key: &str) -> Vec<String> {
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
}

/// True when a JSON value is plainly of one of `kinds`, so not a secret: null, a boolean, a
/// number (not a card number), or a string that [`text_is_described`] accepts.
fn value_is_described(value: &Value, kinds: Kinds, date_valued: bool) -> bool {
    match value {
        Value::Null | Value::Bool(_) => true,
        Value::Number(n) => {
            let text = n.to_string();
            kinds.has(Kinds::NUMBER.or(Kinds::TIME).or(Kinds::ID))
                && !(date_valued && kinds.has(Kinds::TIME))
                && !is_card_number(&text)
        }
        Value::String(s) => text_is_described(s, kinds, date_valued),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// True when `text` is plainly a value of one of `kinds`:
///
/// | kind | text |
/// |---|---|
/// | any | `true`, `false`, `yes`, `no`, `on`, `off`, `null`, `none` (any case) |
/// | number, time, id | a decimal number of at most 15 digits |
/// | time | an ISO 8601 date or date-time; a duration such as `30s`, `15m`, `1h`, `7d` |
/// | label | 1 to 32 letters, digits, spaces and `_ . + / -`, starting with a letter, at most 4 digits |
/// | id | 1 to 128 letters, digits and `_ . : / @ + -` |
/// | place | a URL or host: 1 to 2048 characters, no whitespace or quotes |
///
/// A card number (13–19 digits passing the Luhn check) is never accepted, nor, under a
/// date-valued sensitive word (`dob`), a date.
fn text_is_described(text: &str, kinds: Kinds, date_valued: bool) -> bool {
    let t = text.trim();
    if ["true", "false", "yes", "no", "on", "off", "null", "none"]
        .iter()
        .any(|w| t.eq_ignore_ascii_case(w))
    {
        return true;
    }
    let date = is_date_time(t);
    if (date && date_valued) || is_card_number(t) {
        return false;
    }
    if is_decimal(t) {
        return kinds.has(Kinds::NUMBER.or(Kinds::TIME).or(Kinds::ID));
    }
    (kinds.has(Kinds::TIME) && (date || is_duration(t)))
        || (kinds.has(Kinds::LABEL) && is_label(t))
        || (kinds.has(Kinds::ID) && is_id(t))
        || (kinds.has(Kinds::PLACE) && is_place(t))
}

/// `-12`, `3.5`: at most 15 digits before the point.
fn is_decimal(t: &str) -> bool {
    let t = t.strip_prefix('-').unwrap_or(t);
    let (int, frac) = t.split_once('.').unwrap_or((t, "0"));
    (1..=15).contains(&int.len())
        && !frac.is_empty()
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
}

/// 13 to 19 digits, the first 2 to 6, passing the Luhn check (the card-number value rule).
fn is_card_number(t: &str) -> bool {
    (13..=19).contains(&t.len())
        && t.bytes().all(|b| b.is_ascii_digit())
        && t.as_bytes()
            .first()
            .is_some_and(|d| (b'2'..=b'6').contains(d))
        && super::values::spans::luhn_valid(t)
}

/// `2026-01-15`, `2026-01-15T10:20:30Z`, `2026-01-15 10:20:30.5+02:00`.
fn is_date_time(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 10
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
    {
        return false;
    }
    let rest = &b[10..];
    rest.is_empty()
        || (matches!(rest[0], b'T' | b't' | b' ')
            && rest.len() >= 6
            && rest[1..]
                .iter()
                .all(|c| c.is_ascii_digit() || b":.+-Zz".contains(c)))
}

/// `30s`, `15m`, `500ms`, `1h`, `7d`, `2w`.
fn is_duration(t: &str) -> bool {
    let unit_at = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    (1..=9).contains(&unit_at) && ["ms", "s", "m", "h", "d", "w"].contains(&&t[unit_at..])
}

/// `visa`, `Bearer`, `client_credentials`, `RS256`, `SHA-256`.
fn is_label(t: &str) -> bool {
    (1..=32).contains(&t.len())
        && t.as_bytes()[0].is_ascii_alphabetic()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" _.+/-".contains(&b))
        && t.bytes().filter(u8::is_ascii_digit).count() <= 4
}

/// `42`, `3f2b8c1e-9d4a-4f6b-8e2c-7a1d5b9c0e4f`, `tok_1Mz`, `arn:aws:…`.
fn is_id(t: &str) -> bool {
    (1..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/@+-".contains(&b))
}

/// `https://login.example.com/oauth2/token`, `vault.internal`.
fn is_place(t: &str) -> bool {
    (1..=2048).contains(&t.len())
        && !t
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'<>`".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Redactor;
    use serde_json::json;

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

    // --- metadata words -------------------------------------------------------------------

    fn rule() -> KeyRule {
        KeyRule::default()
    }

    #[test]
    fn sensitive_word_qualified_by_a_metadata_word_is_descriptive() {
        for key in [
            "token_count",
            "promptTokenCount",
            "candidatesTokenCount",
            "auth_required",
            "password_changed_at",
            "card_type",
            "tokenType",
            "secret_version",
            "has_password",
            "is_token_valid",
            "PIN_ATTEMPTS_REMAINING",
            "card_number_type",
            "oauth_token_url",
        ] {
            assert!(
                matches!(rule().classify(key), KeyClass::Descriptive { .. }),
                "{key}: {:?}",
                rule().classify(key)
            );
        }
        for key in [
            "password",
            "cardNumber",
            "card_number",
            "api_key",
            "ssn_last4",
            "pin_code",
        ] {
            assert_eq!(rule().classify(key), KeyClass::Sensitive, "{key}");
        }
        for key in ["count", "type", "max_tokens", "author_id"] {
            assert_eq!(rule().classify(key), KeyClass::Plain, "{key}");
        }
    }

    #[test]
    fn descriptive_key_keeps_a_value_of_the_kind_it_describes() {
        for (key, value) in [
            ("token_count", json!(42)),
            ("promptTokenCount", json!(1_234)),
            ("token_count", json!("42")),
            ("auth_required", json!(true)),
            ("auth_required", json!("false")),
            ("password_changed_at", json!("2026-01-15T10:20:30Z")),
            ("password_changed_at", json!(1_736_937_600_003_u64)),
            ("password_changed_at", json!(null)),
            ("card_type", json!("visa")),
            ("token_type", json!("Bearer")),
            ("token_ttl", json!("15m")),
            ("token_id", json!("3f2b8c1e-9d4a-4f6b-8e2c-7a1d5b9c0e4f")),
            (
                "token_endpoint",
                json!("https://login.example.com/oauth2/v2.0/token"),
            ),
        ] {
            assert!(!rule().redacts(key, &value), "{key}: {value}");
        }
    }

    #[test]
    fn descriptive_key_redacts_a_value_of_another_kind() {
        for (key, value) in [
            ("token_count", json!("sk9Qx1Lm")),
            ("token_count", json!({"a": 1})),
            ("auth_required", json!("hunter2")),
            ("password_changed_at", json!("yesterday, to hunter2")),
            ("card_type", json!(["visa"])),
            ("card_type", json!("correct horse battery staple plus")),
            ("card_id", json!(4_111_111_111_111_111_u64)),
            ("card_id", json!("4111111111111111")),
            ("token_endpoint", json!("hunter2 with spaces")),
        ] {
            assert!(rule().redacts(key, &value), "{key}: {value}");
        }
    }

    #[test]
    fn date_valued_words_never_keep_a_date() {
        for key in [
            "dob_updated_at",
            "birth_date_changed",
            "dateOfBirthTimestamp",
        ] {
            assert!(rule().redacts(key, &json!("1980-04-01")), "{key}");
            assert!(rule().redacts(key, &json!("1980-04-01T00:00:00Z")), "{key}");
        }
        assert!(!rule().redacts("dob_verified", &json!(true)));
    }

    #[test]
    fn allow_listed_key_is_plain_whatever_its_words() {
        let mut keys = rule();
        keys.allow("Token_Count");
        assert_eq!(keys.classify("TOKEN_COUNT"), KeyClass::Plain);
        assert!(!keys.redacts("token_count", &json!("anything")));
    }

    #[test]
    fn ascii_metadata_word_search_agrees_with_the_word_split() {
        let parts = [
            "token", "Token", "_", "-", "Count", "count", "COUNT", "At", "at", "ID", "Id", "x",
            "2", "URL", "url", "Type", "PIN", "s",
        ];
        for a in parts {
            for b in parts {
                for c in parts {
                    let key = format!("{a}{b}{c}");
                    let by_words = split_words(&key)
                        .iter()
                        .any(|w| metadata_kinds(w).is_some());
                    assert_eq!(has_ascii_metadata_word(key.as_bytes()), by_words, "{key}");
                }
            }
        }
    }

    #[test]
    fn ascii_fast_path_agrees_with_the_unicode_path() {
        let trie = &*BUILTIN_KEYS;
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
