//! The gate: a cheap pass over a string's bytes that proves no built-in value rule can match,
//! so that nearly every string skips the regex.

use super::values::NAME_REST;

/// The key words the `key_value_pair` rule starts at (lower case; matched in any case). Every
/// built-in sensitive key word holds one of them, so a name that the key rule finds sensitive
/// holds one too (`api_key` holds `key`, `date_of_birth` holds `birth`).
pub(super) const KEY_ANCHORS: &[&[u8]] = &[
    b"pass",
    b"pwd",
    b"secret",
    b"token",
    b"key",
    b"auth",
    b"credential",
    b"cookie",
    b"ssn",
    b"dob",
    b"birth",
    b"card",
    b"cvv",
    b"cvc",
    b"pin",
    b"account",
    b"iban",
    b"otp",
];

/// The longest of [`KEY_ANCHORS`].
const LONGEST_ANCHOR: usize = 10;

/// A necessary condition for any of the built-in rules to match `s`, checked in one cheap pass:
/// each rule needs an anchor (a run of 13 digits, or of 9 with a dash, `eyJ`, `://` then `:`, a key word in the name
/// before `:` or `=`, …), and a string with none cannot match.
///
/// NOTE: a regex call costs tens of nanoseconds even on a short string, and the lazy DFA a
/// couple of nanoseconds a byte, while this loop costs a fraction of that; nearly every string
/// in a log is clean, so it pays for itself many times over. It must stay a superset of the
/// regex: `gate_never_hides_a_builtin_match` checks that on generated strings. When a rule is
/// added or changed, add its anchor here.
pub(super) fn may_match_builtin(s: &[u8]) -> bool {
    // Digits in the current run, where a single space or dash may separate two digits, and
    // whether a dash did.
    let mut run_digits = 0;
    let mut after_separator = false;
    let mut dashed = false;
    let mut scheme_seen = false;
    for (i, &b) in s.iter().enumerate() {
        if b.is_ascii_digit() {
            run_digits += 1;
            after_separator = false;
            // Card numbers have 13 digits at least; SSNs 9, with two dashes among them (a
            // run of 9 to 12 bare digits, an order or request number, matches neither).
            if run_digits >= 13 || (run_digits >= 9 && dashed) {
                return true;
            }
            continue;
        }
        if !ANCHOR_BYTES[usize::from(b)] {
            run_digits = 0;
            after_separator = false;
            dashed = false;
            continue;
        }
        if matches!(b, b' ' | b'-') && run_digits > 0 && !after_separator {
            after_separator = true;
            dashed |= b == b'-';
        } else {
            run_digits = 0;
            after_separator = false;
            dashed = false;
        }
        let before = &s[..i];
        let anchor = match b {
            // `-----BEGIN` (PEM)
            b'B' => before.ends_with(b"-----"),
            // `eyJ` (JWT)
            b'J' => before.ends_with(b"ey"),
            // `://` (then `:`: a password in a URL), `hooks.slack.com/` (Slack webhook)
            b'/' => {
                scheme_seen |= before.ends_with(b":");
                before.ends_with(b"hooks.slack.com")
            }
            // `://user:`, `password=`, `"token": `, `"DB_PASSWORD", "value":` …
            b':' => scheme_seen || key_value_anchor(before),
            // `password=`, `X-Amz-Signature=`, `sig=` …
            b'=' => {
                key_value_anchor(before)
                    || ends_with_ignore_ascii_case(before, b"signature")
                    || ends_with_ignore_ascii_case(before, b"sig")
            }
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
            // `ghp_` … `github_` (GitHub), `sk_` … (Stripe), `whsec_` (Stripe webhooks)
            b'_' => {
                matches!(before, [.., b'g', b'h', c] if b"pousr".contains(c))
                    || before.ends_with(b"github")
                    || matches!(before, [.., c, b'k'] if b"rsp".contains(c))
                    || before.ends_with(b"whsec")
            }
            // `xoxb-`, `xapp-` (Slack), `sk-` (OpenAI, Anthropic), `glpat-` … (GitLab)
            b'-' => {
                matches!(before, [.., b'x', b'o', b'x', c] if b"abeoprs".contains(c))
                    || before.ends_with(b"xapp")
                    || before.ends_with(b"sk")
                    || (matches!(before.last(), Some(b't' | b's'))
                        && GITLAB_PREFIXES.iter().any(|p| before.ends_with(p)))
            }
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
    let anchors = b"BJ/:= \tA_-";
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

/// The token prefixes of the `gitlab_token` rule, before their `-`.
const GITLAB_PREFIXES: [&[u8]; 13] = [
    b"glpat", b"gldt", b"glrt", b"glcbt", b"glptt", b"glft", b"glimt", b"glagent", b"gloas",
    b"glsoat", b"glffct", b"gltst", b"glwt",
];

/// True when `before` (the text before a `:` or `=`) could end the name of a `key_value_pair`
/// match: past blanks, quotes, backslashes and `]`, the run of name characters before them holds a
/// key word in its last [`NAME_REST`] + [`LONGEST_ANCHOR`] bytes. For `"name", "value":`, the
/// name before `, "value"` is checked the same way.
fn key_value_anchor(before: &[u8]) -> bool {
    let end = skip_back(before, before.len());
    let start = name_start(before, end);
    if holds_anchor(&before[start..end]) {
        return true;
    }
    let name = &before[start..end];
    if !(name.eq_ignore_ascii_case(b"value") || name.eq_ignore_ascii_case(b"val")) {
        return false;
    }
    let comma = skip_back(before, start);
    if comma == 0 || before[comma - 1] != b',' {
        return false;
    }
    let end = skip_back(before, comma - 1);
    holds_anchor(&before[name_start(before, end)..end])
}

/// Where the blanks, quotes, backslashes and `]` that end `s[..end]` begin.
fn skip_back(s: &[u8], mut end: usize) -> usize {
    while end > 0 && matches!(s[end - 1], b' ' | b'\t' | b'"' | b'\'' | b'\\' | b']') {
        end -= 1;
    }
    end
}

/// Where the run of name characters (`A-Z a-z 0-9 _ . -`) that ends `s[..end]` begins.
fn name_start(s: &[u8], mut end: usize) -> usize {
    while end > 0 && (s[end - 1].is_ascii_alphanumeric() || b"_.-".contains(&s[end - 1])) {
        end -= 1;
    }
    end
}

/// True when the last [`NAME_REST`] + [`LONGEST_ANCHOR`] bytes of `name` hold a key word.
///
/// NOTE: called at every `:` and `=` (a time, a URL, every `key: value` in text), so it looks at
/// each byte once and compares only the key words that start with it.
fn holds_anchor(name: &[u8]) -> bool {
    let window = &name[name.len().saturating_sub(NAME_REST + LONGEST_ANCHOR)..];
    window.windows(2).enumerate().any(|(i, pair)| {
        let (a, b) = (pair[0].to_ascii_lowercase(), pair[1].to_ascii_lowercase());
        if !a.is_ascii_lowercase()
            || !b.is_ascii_lowercase()
            || ANCHOR_SECOND_LETTERS[usize::from(a - b'a')] & (1 << (b - b'a')) == 0
        {
            return false;
        }
        let rest = &window[i..];
        anchors_starting_with(a).iter().any(|anchor| {
            rest.len() >= anchor.len() && rest[..anchor.len()].eq_ignore_ascii_case(anchor)
        })
    })
}

/// For each first letter of a key word (`a`..=`z`), the set of its second letters, as bits:
/// two table lookups turn away nearly every position of a name.
const ANCHOR_SECOND_LETTERS: [u32; 26] = {
    let mut table = [0_u32; 26];
    let mut i = 0;
    while i < KEY_ANCHORS.len() {
        let anchor = KEY_ANCHORS[i];
        table[(anchor[0] - b'a') as usize] |= 1 << (anchor[1] - b'a');
        i += 1;
    }
    table
};

/// The [`KEY_ANCHORS`] that start with the lower-case letter `first`
/// (`anchors_by_first_letter_are_the_key_anchors` checks the two agree).
fn anchors_starting_with(first: u8) -> &'static [&'static [u8]] {
    match first {
        b'p' => &[b"pass", b"pwd", b"pin"],
        b's' => &[b"secret", b"ssn"],
        b't' => &[b"token"],
        b'k' => &[b"key"],
        b'a' => &[b"auth", b"account"],
        b'c' => &[b"credential", b"cookie", b"card", b"cvv", b"cvc"],
        b'd' => &[b"dob"],
        b'b' => &[b"birth"],
        b'i' => &[b"iban"],
        b'o' => &[b"otp"],
        _ => &[],
    }
}

/// `s.ends_with(suffix)`, ignoring ASCII case.
fn ends_with_ignore_ascii_case(s: &[u8], suffix: &[u8]) -> bool {
    s.len() >= suffix.len() && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::test_support::near_builtin_match;
    use crate::redact::values::BUILTIN_PATTERNS;

    #[test]
    fn gate_lets_common_clean_strings_skip_the_regex() {
        for s in [
            "list the files in /home/ann/projects and summarise README.md",
            "2026-01-15T10:20:30.123456Z",
            "https://example.com/api/v1/items?page=2&limit=50",
            "SELECT id FROM users WHERE created_at > '2026-01-01' LIMIT 100",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "cargo test --lib -- --nocapture",
            "workday-mcp:workday_get_worker",
            "Content-Type: application/json; charset=utf-8",
            "upstream identity-mcp timed out after 30s (request 17)",
            "req-0000000042",
            "order 123456789012 shipped",
            "{\"query\": \"item 7\", \"limit\": 7, \"filters\": [{\"field\": \"dept\"}]}",
        ] {
            assert!(!may_match_builtin(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn anchors_by_first_letter_are_the_key_anchors() {
        let mut by_letter: Vec<&[u8]> = (b'a'..=b'z')
            .flat_map(|c| anchors_starting_with(c).iter().copied())
            .collect();
        let mut all = KEY_ANCHORS.to_vec();
        by_letter.sort_unstable();
        all.sort_unstable();
        assert_eq!(by_letter, all);
        assert!(KEY_ANCHORS.iter().all(|a| a.len() <= LONGEST_ANCHOR));
    }

    #[test]
    fn gate_sees_the_smallest_match_of_each_new_rule() {
        // What the proptest found when each of these anchors was left out of the gate.
        for s in [
            "a://:",
            "whsec_AAA0=a0=aA+0aAA=",
            "glpat-a_-Aa-Aa0_0AAA_Aa_A0",
            "hooks.slack.com/services/A",
            "x&sig=a",
            "\"key\",\"VAL\":",
            // The shortest digit runs of the card and SSN rules.
            "1234567890123",
            "1 2-3 4 5 6 7 8 9 0 1 2 3",
            "123-45-6789",
        ] {
            assert!(BUILTIN_PATTERNS.regex.is_match(s), "{s}");
            assert!(may_match_builtin(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn gate_sees_a_key_word_followed_by_the_longest_name_rest() {
        for anchor in KEY_ANCHORS {
            let anchor = String::from_utf8_lossy(anchor);
            for upper in [false, true] {
                let word = if upper {
                    anchor.to_uppercase()
                } else {
                    anchor.to_string()
                };
                let s = format!("x {word}{}= v", "_".repeat(NAME_REST));
                assert!(BUILTIN_PATTERNS.regex.is_match(&s), "{s}");
                assert!(may_match_builtin(s.as_bytes()), "{s}");
                let s = format!(
                    "x \\\"{word}{}\\\", \\\"Value\\\": v",
                    "_".repeat(NAME_REST)
                );
                assert!(BUILTIN_PATTERNS.regex.is_match(&s), "{s}");
                assert!(may_match_builtin(s.as_bytes()), "{s}");
            }
            let longer = format!("x {anchor}{}= v", "_".repeat(NAME_REST + 1));
            assert!(!BUILTIN_PATTERNS.regex.is_match(&longer), "{longer}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        #[test]
        fn gate_never_hides_a_builtin_match(s in near_builtin_match()) {
            if BUILTIN_PATTERNS.regex.is_match(&s) {
                proptest::prop_assert!(may_match_builtin(s.as_bytes()), "{:?}", s);
            }
        }
    }
}
