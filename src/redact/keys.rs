//! The key rule (SPEC §5): an object key is split into words, and its value is redacted when
//! one word, or several adjacent words joined, is a sensitive word. See the parent module.

use std::sync::LazyLock;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Redactor;

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
