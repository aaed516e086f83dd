//! The gate: a cheap pass over a string's bytes that proves no built-in value rule can match,
//! so that nearly every string skips the regex.

/// A necessary condition for any of [`RULES`] to match `s`, checked in one cheap pass: each rule
/// needs an anchor (a run of 9 digits, `eyJ`, `://` then `@`, a key word's last two letters
/// before `:` or `=`, …), and a string with none cannot match.
///
/// NOTE: a regex call costs tens of nanoseconds even on a short string, and the lazy DFA a
/// couple of nanoseconds a byte, while this loop costs a fraction of that; nearly every string
/// in a log is clean, so it pays for itself many times over. It must stay a superset of the
/// regex: `gate_never_hides_a_builtin_match` checks that on generated strings. When a rule is
/// added or changed, add its anchor here.
pub(super) fn may_match_builtin(s: &[u8]) -> bool {
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
        ] {
            assert!(!may_match_builtin(s.as_bytes()), "{s}");
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
