//! The value rule (SPEC §5): the shapes of secrets found inside any string. See the parent
//! module for the table of rules.

use std::ops::Range;
use std::sync::LazyLock;

use regex::{CaptureLocations, Regex, RegexSet};

use super::gate::{KEY_ANCHORS, may_match_builtin};
use super::keys::{KeyClass, KeyRule};
use super::{REDACTED, next_char_boundary};
use crate::error::{Error, Result};

pub(super) mod spans;
use spans::{
    card_number_span, digit_candidate_span, looks_like_credential, pair_value_span, ssn_at,
    ssn_span, url_password_span,
};

/// A post-check a built-in pattern's candidate must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Every match is redacted.
    None,
    /// The digits pass the Luhn check, start with 2–6, and do not run on into more `-digit`s;
    /// failing that, an SSN at the same place.
    CardNumber,
    /// A plausible SSN that does not run on into more `-digit`s.
    Ssn,
    /// The secret group looks like a credential rather than an English word.
    Credential,
    /// The part after the first `-` looks like a credential (`sk-…`, not `sk-learn`).
    CredentialBody,
    /// The match ends after `scheme://user:`; [`url_password_span`] finds the password.
    UrlPassword,
    /// The match ends after `name=`; the key rule judges the name, and [`pair_value_span`]
    /// finds the value.
    KeyValue,
}

/// A built-in value pattern. In `pattern`, the group `(?P<secret>…)`, when present, is the span
/// replaced; otherwise the whole match is. `{ANCHORS}` stands for the key-word anchors of the
/// gate ([`KEY_ANCHORS`]).
struct Rule {
    name: &'static str,
    pattern: &'static str,
    check: Check,
}

/// The longest run of name characters after the key word in a `name=value` pair, and before it.
pub(super) const NAME_REST: usize = 32;

/// The built-in value patterns, in priority order (the first wins when two start at the same
/// place). Word boundaries are ASCII (`(?-u:\b)`), which keeps the lazy DFA usable on any text.
///
/// IMPORTANT: no rule may begin with an unbounded run of common characters (a URL scheme, the
/// `access_` of `access_token`). A rejected candidate restarts the search one character later;
/// a thread like that, alive from the same start as a rejected card-number candidate, would
/// make each restart scan to the end of the run: quadratic time on attacker-chosen text such
/// as `4-4-4-4-…` (see `dashed_digit_run_is_scanned_in_linear_time`). The key and the scheme
/// are kept anyway, so the rules start at the key word and at `://`; the code looks back for
/// the rest of the name, at most [`NAME_REST`] bytes, and the name after the key word is
/// bounded the same way.
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
        pattern: r"://[^\s:/?#@]*:",
        check: Check::UrlPassword,
    },
    Rule {
        name: "presigned_url_signature",
        pattern: r"[?&](?i-u:x-amz-signature|x-goog-signature|signature|sig)=(?P<secret>[^&#\s\x22'<>\\]+)",
        check: Check::None,
    },
    Rule {
        name: "key_value_pair",
        pattern: concat!(
            r"(?P<name>(?i-u:{ANCHORS})[A-Za-z0-9_.-]{0,32})",
            r#"(?:(?P<quote>\\{0,3}["'])?\]?[ \t]*(?:=>|:=|[:=])"#,
            r#"|(?P<pairquote>\\{0,3}")[ \t]*,[ \t]*\\{0,3}"(?i-u:value|val)\\{0,3}"[ \t]*:)"#,
            r"[ \t]*(?:\r?\n[ \t]*)?",
        ),
        check: Check::KeyValue,
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
        name: "gitlab_token",
        pattern: r"(?-u:\b)gl(?:pat|dt|rt|cbt|ptt|ft|imt|agent|oas|soat|ffct|tst|wt)-[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*",
        check: Check::None,
    },
    Rule {
        name: "openai_anthropic_key",
        pattern: r"(?-u:\b)sk-(?:proj|svcacct|admin|ant|None)-[A-Za-z0-9_-]{20,}",
        check: Check::None,
    },
    Rule {
        name: "openai_legacy_key",
        pattern: r"(?-u:\b)sk-[A-Za-z0-9]{20,}(?-u:\b)",
        check: Check::CredentialBody,
    },
    Rule {
        name: "slack_token",
        pattern: r"(?-u:\b)(?:xox[abeoprs]|xapp)-[A-Za-z0-9-]{10,}",
        check: Check::None,
    },
    Rule {
        name: "slack_webhook",
        pattern: r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/+-]+)",
        check: Check::None,
    },
    Rule {
        name: "stripe_key",
        pattern: r"(?-u:\b)[rsp]k_(?:live|test)_[A-Za-z0-9]{10,}",
        check: Check::None,
    },
    Rule {
        name: "stripe_webhook_secret",
        pattern: r"(?-u:\b)whsec_[A-Za-z0-9+/=]{16,}",
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
pub(super) struct BuiltinPatterns {
    pub(super) regex: Regex,
    rules: Vec<CompiledRule>,
}

/// Where a rule's groups sit in the combined regex.
#[derive(Clone, Copy, Debug)]
struct CompiledRule {
    whole: usize,
    secret: Option<usize>,
    /// `key_value_pair`: the name from the key word on, and the quote closing a quoted name
    /// (`quote` for `"name": value`, `pairquote` for `"name", "value": value`).
    name: Option<usize>,
    quote: Option<usize>,
    pairquote: Option<usize>,
    check: Check,
}

pub(super) static BUILTIN_PATTERNS: LazyLock<BuiltinPatterns> = LazyLock::new(|| {
    BuiltinPatterns::compile().expect("the built-in redaction patterns are valid (see tests)")
});

impl BuiltinPatterns {
    fn compile() -> std::result::Result<Self, String> {
        let anchors = KEY_ANCHORS
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join("|");
        let combined = RULES
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let body = rule
                    .pattern
                    .replace("{ANCHORS}", &anchors)
                    .replace("(?P<", &format!("(?P<r{i}_"));
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
                Ok(CompiledRule {
                    whole,
                    secret: group(&format!("r{i}_secret")),
                    name: group(&format!("r{i}_name")),
                    quote: group(&format!("r{i}_quote")),
                    pairquote: group(&format!("r{i}_pairquote")),
                    check: rule.check,
                })
            })
            .collect::<std::result::Result<_, String>>()?;
        Ok(BuiltinPatterns { regex, rules })
    }

    /// Pushes the span to replace of every accepted match in `s`, in order. `keys` judges the
    /// names of `name=value` pairs.
    pub(super) fn find_spans(&self, s: &str, spans: &mut Vec<Range<usize>>, keys: &KeyRule) {
        // The fast path: most strings hold none of the patterns' anchors and skip the regex.
        if !may_match_builtin(s.as_bytes()) {
            return;
        }
        // NOTE: made on first need: digit runs, the commonest candidates, do without.
        let mut locations: Option<CaptureLocations> = None;
        self.scan(s, 0, spans, keys, &mut locations);
    }

    /// Pushes the spans of the accepted matches in `s[at..]`.
    fn scan(
        &self,
        s: &str,
        mut at: usize,
        spans: &mut Vec<Range<usize>>,
        keys: &KeyRule,
        locations: &mut Option<CaptureLocations>,
    ) {
        while at <= s.len() {
            let Some(found) = self.regex.find_at(s, at) else {
                break;
            };
            let after_start = next_char_boundary(s, found.start());
            let accepted = if s.as_bytes()[found.start()].is_ascii_digit() {
                digit_candidate_span(s, found.range())
            } else {
                let locs = locations.get_or_insert_with(|| self.regex.capture_locations());
                self.accepted_span(s, found.start(), locs, keys)
            };
            let Some(span) = accepted else {
                // A rejected candidate may hide a real match that starts inside it.
                at = after_start;
                continue;
            };
            // NOTE: the part of the match before its span (a pair's name and separator, a
            // URL's user) is kept, so it is scanned on its own: it may hold a secret too
            // (`https://ghp_…:x@github.com`). It is short or a URL's user, and scanned once.
            if span.start > after_start {
                self.scan(&s[..span.start], after_start, spans, keys, locations);
            }
            if !s[span.clone()].starts_with(REDACTED) {
                spans.push(span.clone());
            }
            // NOTE: from the end of the span, not of the match: a card number may be a prefix
            // of its match, and an SSN may follow it.
            at = span.end.max(after_start);
        }
    }

    /// The span to replace for the match that starts at `start`, if its rule's post-check
    /// passes: the general (slower) way, through the capture groups.
    fn accepted_span(
        &self,
        s: &str,
        start: usize,
        locs: &mut CaptureLocations,
        keys: &KeyRule,
    ) -> Option<Range<usize>> {
        // NOTE: searching again from the match start finds the same leftmost-first match,
        // this time with its groups, which tell which rule matched.
        self.regex.captures_read_at(locs, s, start)?;
        let (rule, whole) = self
            .rules
            .iter()
            .find_map(|rule| locs.get(rule.whole).map(|(start, end)| (rule, start..end)))?;
        let group = |g: Option<usize>| g.and_then(|g| locs.get(g)).map(|(a, b)| a..b);
        let span = group(rule.secret).unwrap_or_else(|| whole.clone());
        let text = &s[span.clone()];
        match rule.check {
            Check::None => Some(span),
            Check::CardNumber => {
                card_number_span(s, whole.clone()).or_else(|| ssn_at(s, whole.start))
            }
            Check::Ssn => ssn_span(s, whole),
            Check::Credential => looks_like_credential(text).then_some(span),
            Check::CredentialBody => text
                .split_once('-')
                .is_some_and(|(_, body)| looks_like_credential(body))
                .then_some(span),
            Check::UrlPassword => url_password_span(s, whole.end),
            Check::KeyValue => {
                let name = group(rule.name)?;
                let quote = group(rule.quote).or_else(|| group(rule.pairquote));
                pair_value_span(s, name, quote.map(|q| &s[q]), whole.end, keys)
            }
        }
    }
}

/// The user's extra value patterns: one set to find out, in one scan, whether any matches, then
/// each pattern alone for the spans.
///
/// NOTE: they are kept apart from the built-in regex because splicing a user's pattern into an
/// alternation is not always safe (an `(?x)` comment would swallow the closing parenthesis).
#[derive(Clone, Debug)]
pub(super) struct ExtraPatterns {
    set: RegexSet,
    each: Vec<Regex>,
}

impl ExtraPatterns {
    pub(super) fn new(patterns: &[String]) -> Result<Self> {
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

    pub(super) fn find_spans(&self, s: &str, spans: &mut Vec<Range<usize>>) {
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
    use super::spans::luhn_valid;
    use super::*;
    use crate::redact::test_support::*;

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
            ("PASSWORD = 'p w'", "PASSWORD = '**REDACTED**'"),
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

    // --- SSNs and cards next to other digit groups ----------------------------------------

    #[test]
    fn ssn_next_to_other_digit_groups_is_redacted() {
        for (input, expected) in [
            ("ssn 123-45-6789 1234", "ssn **REDACTED** 1234"),
            ("12 123-45-6789 3456", "12 **REDACTED** 3456"),
            ("123-45-6789,234-56-7891", "**REDACTED**,**REDACTED**"),
            ("555 0199 123-45-6789 42 7", "555 0199 **REDACTED** 42 7"),
            (
                "acct 2026 04 123-45-6789 0001",
                "acct 2026 04 **REDACTED** 0001",
            ),
            ("id:123-45-6789 5 5 5 5", "id:**REDACTED** 5 5 5 5"),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn card_then_ssn_or_another_card_are_both_redacted() {
        assert_eq!(
            redact("4111 1111 1111 1111 123-45-6789"),
            "**REDACTED** **REDACTED**"
        );
        assert_eq!(
            redact("4111111111111111 5555555555554444"),
            "**REDACTED** **REDACTED**"
        );
    }

    // --- passwords in URLs ----------------------------------------------------------------

    #[test]
    fn url_password_with_reserved_characters_or_spaces_is_redacted() {
        for (input, expected) in [
            (
                "postgres://app:pa/ss@db/x",
                "postgres://app:**REDACTED**@db/x",
            ),
            (
                "https://bob:p?q#r@h.example/",
                "https://bob:**REDACTED**@h.example/",
            ),
            ("redis://u:a@b@host/0", "redis://u:**REDACTED**@host/0"),
            (
                "mysql://u:pa ss word@h:3306/d",
                "mysql://u:**REDACTED**@h:3306/d",
            ),
            (
                "amqp://u:p@ss w/rd@mq:5672 ok",
                "amqp://u:**REDACTED**@mq:5672 ok",
            ),
            (
                "ftp://u:a#1 2?@files.example.com",
                "ftp://u:**REDACTED**@files.example.com",
            ),
            (
                "dsn=\"postgresql://svc:x/y?z#w @db.internal\" other",
                "dsn=\"postgresql://svc:**REDACTED**@db.internal\" other",
            ),
            (
                "connect postgres://u:pass@db/x as alice@corp.example today",
                "connect postgres://u:**REDACTED**@db/x as alice@corp.example today",
            ),
            (
                "mongodb://u:p@[::1]:27017/db",
                "mongodb://u:**REDACTED**@[::1]:27017/db",
            ),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn a_secret_in_the_kept_part_of_a_match_is_redacted_too() {
        let token = github_token();
        assert_eq!(
            redact(&format!("https://{token}:x-oauth-basic@github.com/o/r")),
            "https://**REDACTED**:**REDACTED**@github.com/o/r"
        );
        assert_eq!(
            redact("password-123-45-6789: x"),
            "password-**REDACTED**: **REDACTED**"
        );
    }

    #[test]
    fn url_with_a_port_and_an_address_later_is_kept() {
        assert_kept("http://localhost:3000/invite?email=bob@x.example");
        assert_kept("see http://h.example:8080 then mail a@b.example");
        assert_kept("https://example.com:8443/a?next=u@h.example#x");
        assert_kept("two urls: http://a.example:80/x and https://c@d.example/");
    }

    // --- name=value pairs -------------------------------------------------------------------

    #[test]
    fn pair_whose_name_continues_after_the_key_word_is_redacted() {
        for (input, expected) in [
            ("SECRET_KEY=abc123", "SECRET_KEY=**REDACTED**"),
            (
                "DB_PASSWORD_PROD=xyz next",
                "DB_PASSWORD_PROD=**REDACTED** next",
            ),
            ("password1=foo", "password1=**REDACTED**"),
            (
                "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIbPxRfiCY",
                "export AWS_SECRET_ACCESS_KEY=**REDACTED**",
            ),
            ("MY_API_TOKEN_V2: t-1", "MY_API_TOKEN_V2: **REDACTED**"),
            ("stripe.apiKey=abc", "stripe.apiKey=**REDACTED**"),
            ("api key: k9", "api key: **REDACTED**"),
            ("client_secret_b64=AAA=", "client_secret_b64=**REDACTED**"),
            ("userPin=0000", "userPin=**REDACTED**"),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn pair_with_fat_arrow_or_walrus_is_redacted() {
        for (input, expected) in [
            ("password => 'foo bar'", "password => '**REDACTED**'"),
            ("{'secret' => \"x y\"}", "{'secret' => \"**REDACTED**\"}"),
            (
                "{:api_key => abc, :n => 1}",
                "{:api_key => **REDACTED**, :n => 1}",
            ),
            ("token := t0k", "token := **REDACTED**"),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn pair_with_a_line_break_after_the_separator_is_redacted() {
        for (input, expected) in [
            ("token:\n  abcdef", "token:\n  **REDACTED**"),
            (
                "password =\n hunter2 tail",
                "password =\n **REDACTED** tail",
            ),
            ("secret:\r\n\t\"s p\"", "secret:\r\n\t\"**REDACTED**\""),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
        // A YAML mapping: the next line is a key, not the value.
        assert_kept("auth:\n  user: bob\n");
        // A YAML list: its items are.
        assert_eq!(
            redact("passwords:\n  - hunter2\n  - x y\nuser: ann"),
            "passwords:\n  - **REDACTED**\nuser: ann"
        );
    }

    #[test]
    fn pair_in_serialized_json_whose_value_is_an_array_or_object_is_redacted_whole() {
        for (input, expected) in [
            (r#"{"secret": ["a","b"]}"#, r#"{"secret": **REDACTED**}"#),
            (
                r#"{"password": {"v": "x", "w": [1]}, "n": 1}"#,
                r#"{"password": **REDACTED**, "n": 1}"#,
            ),
            (
                r#"{\"credentials\":[{\"user\":\"a\",\"pass\":\"b]\"}],\"ok\":true}"#,
                r#"{\"credentials\":**REDACTED**,\"ok\":true}"#,
            ),
            ("token=[1, [2, 3]] end", "token=**REDACTED** end"),
            (r#"{"apiKey": ["unterminated"#, r#"{"apiKey": **REDACTED**"#),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn pair_in_serialized_json_with_a_quoted_value_is_redacted_to_its_closing_quote() {
        for (input, expected) in [
            (
                r#"{"password": "a b\"c", "n": 1}"#,
                r#"{"password": "**REDACTED**", "n": 1}"#,
            ),
            (
                r#"{\"password\":\"a b\\\"c\",\"n\":1}"#,
                r#"{\"password\":\"**REDACTED**\",\"n\":1}"#,
            ),
            (
                r#"{"Authorization": "Bearer abc def"}"#,
                r#"{"Authorization": "Bearer **REDACTED**"}"#,
            ),
            (r#"{"secret": 1234}"#, r#"{"secret": **REDACTED**}"#),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn name_value_pair_in_serialized_json_is_redacted() {
        for (input, expected) in [
            (
                r#"[{"name": "DB_PASSWORD", "value": "hunter2"}]"#,
                r#"[{"name": "DB_PASSWORD", "value": "**REDACTED**"}]"#,
            ),
            (
                r#"{\"Name\":\"API_TOKEN\",\"Value\":\"t0k\"}"#,
                r#"{\"Name\":\"API_TOKEN\",\"Value\":\"**REDACTED**\"}"#,
            ),
            (
                r#"{"key": "secret", "val": [1, 2]}"#,
                r#"{"key": "secret", "val": **REDACTED**}"#,
            ),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
        assert_kept(r#"[{"name": "region", "value": "eu-west-1"}]"#);
        assert_kept(r#"[{"name": "token_count", "value": 42}]"#);
    }

    #[test]
    fn pair_whose_name_has_a_metadata_word_keeps_a_plain_value() {
        for input in [
            "token_count=42",
            "promptTokenCount: 17",
            "auth_required: true",
            "password_changed_at=2026-01-01T00:00:00Z",
            "card_type: visa",
            r#"{"token_type": "Bearer", "expires_in": 3600}"#,
            "token_type=bearer&expires_in=3600&scope=read",
            "secret_version=3",
            "token_url=https://login.example.com/oauth2/token",
        ] {
            assert_kept(input);
        }
        for (input, expected) in [
            ("token_count=sk9Qx1Lm", "token_count=**REDACTED**"),
            ("auth_required: hunter2", "auth_required: **REDACTED**"),
            ("card_type: 4111111111111111", "card_type: **REDACTED**"),
            (
                "password_changed_at=yesterday",
                "password_changed_at=**REDACTED**",
            ),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn pair_whose_name_only_contains_a_key_word_is_kept() {
        assert_kept("tokenizer=bert monkey=banana author=ann keyboard: us");
        assert_kept("passwordless=true spin=3 cardinality: 4");
        assert_kept("the token count: 5");
    }

    // --- token shapes -----------------------------------------------------------------------

    #[test]
    fn openai_and_anthropic_keys_are_redacted() {
        for key in [
            joined(&["sk-", "proj-", "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_-Qq"]),
            joined(&["sk-", "svcacct-", "Zz9yXx8wVv7uUt6sSr5qQp4o"]),
            joined(&["sk-", "T3BlbkFJ", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"]),
            joined(&[
                "sk-",
                "ant-",
                "api03-",
                "Qw9Er8Ty7Ui6Op5As4Df3Gh2Jk1Lz0Xc-_",
            ]),
        ] {
            assert_eq!(
                redact(&format!("use {key} now")),
                "use **REDACTED** now",
                "{key}"
            );
        }
        assert_kept("sk-learn-compatible-pipelines and task-0123456789abcdefghij");
        assert_kept("sk-abcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn gitlab_tokens_are_redacted() {
        for key in [
            joined(&["glpat-", "xXyYzZ0123456789abcd"]),
            joined(&["glpat-", "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8.01.0w1z2y3x4"]),
            joined(&["gldt-", "aBcDeFgHiJkLmNoPqRsT12"]),
            joined(&["glrt-", "t1_aBcDeFgHiJkLmNoPqRsT"]),
        ] {
            assert_eq!(redact(&format!("({key})")), "(**REDACTED**)", "{key}");
        }
        assert_kept("glpat-short");
    }

    #[test]
    fn slack_app_tokens_and_webhook_urls_are_redacted() {
        let app = joined(&["xapp-", "1-A0123BCDE-4567890123-abcdef0123456789"]);
        assert_eq!(redact(&format!("socket {app}")), "socket **REDACTED**");
        let refresh = joined(&["xoxe-", "1-My4xLTItOTk5OS1hYmNk"]);
        assert_eq!(redact(&refresh), REDACTED);
        let hook = joined(&[
            "https://hooks.slack.com/services/",
            "T0AB1CD2E/B0FG3HI4J/Zk8Lm2Np4Qr6St8Uv0Wx2Yz4",
        ]);
        assert_eq!(
            redact(&format!("post to {hook} now")),
            "post to https://hooks.slack.com/services/**REDACTED** now"
        );
        assert_eq!(
            redact("https://hooks.slack.com/workflows/T01/A02/345/abc"),
            "https://hooks.slack.com/workflows/**REDACTED**"
        );
        assert_kept("see https://hooks.slack.com/ for docs");
    }

    #[test]
    fn stripe_webhook_secrets_are_redacted() {
        let secret = joined(&["whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        assert_eq!(redact(&format!("secret {secret}.")), "secret **REDACTED**.");
        assert_kept("whsec_short");
    }

    #[test]
    fn presigned_url_signatures_are_redacted() {
        for (input, expected) in [
            (
                "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=9f3a0c1d2e&X-Amz-Date=20261130T000000Z",
                "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=**REDACTED**&X-Amz-Date=20261130T000000Z",
            ),
            (
                "https://storage.googleapis.com/b/o?X-Goog-Date=1&x-goog-signature=ab12cd34",
                "https://storage.googleapis.com/b/o?X-Goog-Date=1&x-goog-signature=**REDACTED**",
            ),
            (
                "https://acct.blob.core.windows.net/c/f?sv=2022-11-02&sr=b&sig=abcDEF%2Bxyz%3D&se=2026",
                "https://acct.blob.core.windows.net/c/f?sv=2022-11-02&sr=b&sig=**REDACTED**&se=2026",
            ),
            (
                "https://d111.cloudfront.net/x?Expires=1&Signature=AbC~dEf-&Key-Pair-Id=K1",
                "https://d111.cloudfront.net/x?Expires=1&Signature=**REDACTED**&Key-Pair-Id=K1",
            ),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
        assert_kept("https://example.com/design?signage=1&sigma=2");
    }

    #[test]
    fn cookie_headers_are_redacted_to_the_end_of_the_line() {
        for (input, expected) in [
            ("Cookie: session=abc; other=def", "Cookie: **REDACTED**"),
            (
                "Set-Cookie: sid=xyz; Path=/; HttpOnly\nVary: Accept",
                "Set-Cookie: **REDACTED**\nVary: Accept",
            ),
            (
                "curl -H 'cookie: a=b; c=d' https://x.example",
                "curl -H 'cookie: **REDACTED**' https://x.example",
            ),
            (
                r#"{"headers": {"Cookie": "a=b; c=d", "Accept": "*/*"}}"#,
                r#"{"headers": {"Cookie": "**REDACTED**", "Accept": "*/*"}}"#,
            ),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn key_anchors_cover_every_builtin_sensitive_word() {
        for word in crate::redact::keys::SENSITIVE_KEY_WORDS {
            assert!(
                KEY_ANCHORS
                    .iter()
                    .any(|a| word.as_bytes().windows(a.len()).any(|w| w == *a)),
                "{word}"
            );
        }
    }

    #[test]
    fn every_new_value_class_is_scanned_in_linear_time() {
        let cases = [
            "token_count=\"".repeat(20_000),
            "://a:".repeat(20_000),
            "x@y ".repeat(20_000) + "://u:p",
            "passwordpassword=".repeat(10_000),
            "{\"secret\": [".repeat(10_000),
            "123-45-6789 ".repeat(20_000),
        ];
        for s in cases {
            let started = std::time::Instant::now();
            let _ = redact(&s);
            let took = started.elapsed();
            eprintln!("{:?}: {took:?}", &s[..20]);
            assert!(took < std::time::Duration::from_secs(5), "{}", &s[..20]);
        }
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
    fn builtin_patterns_compile_with_a_group_per_rule() {
        let compiled = BuiltinPatterns::compile();
        assert!(compiled.is_ok(), "{:?}", compiled.err());
        if let Ok(patterns) = compiled {
            assert_eq!(patterns.rules.len(), RULES.len());
        }
    }

    /// Text made of the pieces the new rules look at, with multi-byte characters among them.
    fn rule_soup() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("password".to_owned()),
            Just("token_count".to_owned()),
            Just("Cookie".to_owned()),
            Just("://u:".to_owned()),
            Just("@h".to_owned()),
            Just("\\\"".to_owned()),
            Just("- ".to_owned()),
            Just("123-45-6789".to_owned()),
            Just("4111 1111 1111 1111".to_owned()),
            Just("sk-proj-".to_owned()),
            Just("&sig=".to_owned()),
            proptest::string::string_regex(r#"[a-z0-9 :=>/@?#\[\]{}"'\\\n\r\t,;&_.-]{1,4}|é|🚀"#)
                .expect("valid"),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        #[test]
        fn any_text_is_redacted_without_panic_and_a_second_pass_only_redacts_more(s in rule_soup()) {
            let redactor = crate::redact::Redactor::default();
            let once = redactor.redact_str(&s).into_owned();
            let twice = redactor.redact_str(&once).into_owned();
            // A second pass may redact more (a span that only now looks like a secret), never
            // bring anything back: what it keeps of the first pass's output is in order.
            let mut rest = once.as_str();
            for piece in twice.split(REDACTED) {
                let found = rest.find(piece);
                proptest::prop_assert!(found.is_some(), "{:?} -> {:?} -> {:?}", s, once, twice);
                rest = &rest[found.unwrap_or(0) + piece.len()..];
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        #[test]
        fn digit_shortcut_agrees_with_the_capture_groups(s in near_builtin_match()) {
            let builtin = &*BUILTIN_PATTERNS;
            let mut locs = builtin.regex.capture_locations();
            for found in builtin.regex.find_iter(&s) {
                if s.as_bytes()[found.start()].is_ascii_digit() {
                    proptest::prop_assert_eq!(
                        digit_candidate_span(&s, found.range()),
                        builtin.accepted_span(&s, found.start(), &mut locs, &KeyRule::default()),
                        "{:?}", s
                    );
                }
            }
        }
    }
}
