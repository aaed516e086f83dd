//! Where a secret found by a built-in value pattern starts and ends: the post-checks (Luhn,
//! SSN plausibility, credential shape) and the extents of URL passwords, `key=value` pairs,
//! YAML list items and quoted values.

use std::ops::Range;

use super::{KeyClass, KeyRule, NAME_REST, REDACTED};

/// [`BuiltinPatterns::accepted_span`] for a match that starts with a digit, without the capture
/// engine: only the card-number and SSN rules start with a digit, and their matches differ in
/// length (13 digits or more against 9), so the match alone says which rule it is.
///
/// NOTE: digit runs (timestamps, long ids) are the commonest rejected candidates, and the
/// capture engine costs a microsecond or so a candidate; this costs a few nanoseconds.
/// `digit_shortcut_agrees_with_the_capture_groups` pins the equivalence.
pub(super) fn digit_candidate_span(s: &str, whole: Range<usize>) -> Option<Range<usize>> {
    if s[whole.clone()].bytes().filter(u8::is_ascii_digit).count() >= 13 {
        let start = whole.start;
        card_number_span(s, whole).or_else(|| ssn_at(s, start))
    } else {
        ssn_span(s, whole)
    }
}

/// The SSN candidate `whole`, if plausible and not part of a longer dashed number.
pub(super) fn ssn_span(s: &str, whole: Range<usize>) -> Option<Range<usize>> {
    (plausible_ssn(&s[whole.clone()]) && !runs_on(s, &whole)).then_some(whole)
}

/// An SSN starting at `start` (where the card-number rule found a longer digit run that is
/// not a card): `ddd-dd-dddd` followed by a word boundary, as the `us_ssn` rule would match.
///
/// NOTE: the combined regex prefers the card-number rule when both start at the same place, so
/// an SSN followed by other digit groups ("123-45-6789 12") would be lost without this.
pub(super) fn ssn_at(s: &str, start: usize) -> Option<Range<usize>> {
    let b = s.as_bytes();
    let end = start + 11;
    let shape = b.get(start..end).is_some_and(|c| {
        c.iter().enumerate().all(|(i, d)| match i {
            3 | 6 => *d == b'-',
            _ => d.is_ascii_digit(),
        })
    });
    let boundary = b
        .get(end)
        .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
    if shape && boundary {
        ssn_span(s, start..end)
    } else {
        None
    }
}

/// The card number within the candidate `whole`, if any.
///
/// The regex takes the longest digit run it can (up to 19 digits), which may swallow a short
/// number written after the card ("4111 1111 1111 1111 12"); so when the whole run fails, its
/// prefixes ending at a separator are tried too, longest first, down to 13 digits.
pub(super) fn card_number_span(s: &str, whole: Range<usize>) -> Option<Range<usize>> {
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

/// True when the digits of `text` (other characters ignored) pass the Luhn check.
pub(in crate::redact) fn luhn_valid(text: &str) -> bool {
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
pub(super) fn runs_on(s: &str, span: &Range<usize>) -> bool {
    let before = &s.as_bytes()[..span.start];
    let after = &s.as_bytes()[span.end..];
    matches!(before, [.., b'0'..=b'9', b'-']) || matches!(after, [b'-', b'0'..=b'9', ..])
}

/// `ddd-dd-dddd` with an area other than 000, 666 and 9xx, a group other than 00 and a serial
/// other than 0000 (the SSA never issues those).
pub(super) fn plausible_ssn(text: &str) -> bool {
    let mut parts = text.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// True when a `Bearer`/`Basic` credential has a digit, a punctuation character of token68, or
/// an upper-case letter after its first character: "Authentication" and "settings" do not.
pub(super) fn looks_like_credential(token: &str) -> bool {
    token.bytes().enumerate().any(|(i, b)| {
        b.is_ascii_digit() || b"._~+/=-".contains(&b) || (i > 0 && b.is_ascii_uppercase())
    })
}

// ---------------------------------------------------------------------------------------------
// Passwords in URLs

/// How far past its first word a password with spaces may run, in bytes.
pub(super) const URL_PASSWORD_SPACES_WINDOW: usize = 128;

/// The password of a URL whose `scheme://user:` ends at `p`, if there is one.
///
/// The password runs to the `@` that begins the host, and may itself hold `/ ? # @` and
/// spaces, so that `@` is chosen as follows, never past the end of the line or the next `://`:
///
/// 1. In the first word after `user:` (up to whitespace or a quote), the last `@` followed by a
///    host name. When that host is followed by `:port`, `/`, `?` or `#`, it is the one.
/// 2. Otherwise the password may hold spaces: in the following words, up to
///    [`URL_PASSWORD_SPACES_WINDOW`] bytes further and not past a quote, the first word with an
///    `@` followed by a host that ends the URL (`:port`, `/`, `?`, `#`, or the end of the text,
///    the line or the quoted string) gives it (its last such `@`).
/// 3. Otherwise the `@` of step 1, if any.
///
/// A first word that starts with a port (`8080`, `8080/path?mail=a@b.com`) is no password: the
/// "user" was a host.
pub(super) fn url_password_span(s: &str, p: usize) -> Option<Range<usize>> {
    let rest = &s[p..];
    // NOTE: one scan that stops at the first line break or `://`: candidates start at every
    // `://`, so scanning each to the end of the text would be quadratic.
    let region_end = rest
        .as_bytes()
        .iter()
        .enumerate()
        .find(|(i, c)| matches!(c, b'\n' | b'\r') || rest.as_bytes()[*i..].starts_with(b"://"))
        .map_or(rest.len(), |(i, _)| i);
    let region = &rest[..region_end];
    let word_end = region
        .find(|c: char| c.is_whitespace() || is_quote_char(c))
        .unwrap_or(region.len());
    if is_port(&region[..word_end]) {
        return None;
    }
    let first = last_host_at(region, 0, word_end);
    if let Some(HostAt {
        at,
        continues: true,
        ..
    }) = first
    {
        return nonempty(p, p + at);
    }
    // The quote that ends the window, with the backslashes escaping it (`\"` in escaped JSON).
    let quote = region[word_end..]
        .find(is_quote_char)
        .map_or(region.len(), |q| {
            word_end + q
                - region.as_bytes()[word_end..word_end + q]
                    .iter()
                    .rev()
                    .take_while(|c| **c == b'\\')
                    .count()
        });
    let mut window_end = quote.min(word_end + URL_PASSWORD_SPACES_WINDOW);
    while !region.is_char_boundary(window_end) {
        window_end -= 1;
    }
    let mut pos = word_end;
    while pos < window_end {
        let start = pos
            + region[pos..window_end]
                .find(|c: char| !c.is_whitespace())
                .unwrap_or(window_end - pos);
        let end = start
            + region[start..window_end]
                .find(char::is_whitespace)
                .unwrap_or(window_end - start);
        if let Some(host) = last_host_at(region, start, end)
            && (host.continues || (host.host_end == window_end && window_end == quote))
        {
            return nonempty(p, p + host.at);
        }
        pos = end;
    }
    first.and_then(|host| nonempty(p, p + host.at))
}

/// An `@` followed by a host name, in a URL's password search.
#[derive(Clone, Copy, Debug)]
pub(super) struct HostAt {
    /// Where the `@` is.
    at: usize,
    /// Where the host name ends.
    host_end: usize,
    /// The host is followed by `:`, `/`, `?` or `#`: the rest of a URL.
    continues: bool,
}

/// The last `@` in `region[from..to]` followed by a host name (letters, digits, `. _ ~ % -`,
/// or a bracketed IPv6 address) that is not followed by another `@`.
pub(super) fn last_host_at(region: &str, from: usize, to: usize) -> Option<HostAt> {
    let b = region.as_bytes();
    let mut search_end = to;
    while let Some(at) = region[from..search_end].rfind('@').map(|i| from + i) {
        search_end = at;
        let host_start = at + 1;
        let host_end = if b.get(host_start) == Some(&b'[') {
            match region[host_start..to].find(']') {
                Some(close) => host_start + close + 1,
                None => continue,
            }
        } else {
            host_start
                + b[host_start..to]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || b"._~%-".contains(c))
                    .count()
        };
        if host_end == host_start
            || (!b[host_start].is_ascii_alphanumeric() && b[host_start] != b'[')
        {
            continue;
        }
        match b.get(host_end) {
            Some(b'@') if host_end < to => {}
            next => {
                return Some(HostAt {
                    at,
                    host_end,
                    continues: host_end < to && next.is_some_and(|c| b":/?#".contains(c)),
                });
            }
        }
    }
    None
}

/// `8080`, `8080/path`, `443?x`: a port, perhaps followed by the rest of a URL (which may hold
/// an `@`, as in `?mail=a@b.com`).
pub(super) fn is_port(word: &str) -> bool {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    (1..=5).contains(&digits)
        && word
            .as_bytes()
            .get(digits)
            .is_none_or(|c| b"/?#".contains(c))
}

pub(super) fn is_quote_char(c: char) -> bool {
    matches!(c, '"' | '\'' | '<' | '>' | '`')
}

pub(super) fn nonempty(start: usize, end: usize) -> Option<Range<usize>> {
    (end > start).then_some(start..end)
}

// ---------------------------------------------------------------------------------------------
// `name=value` pairs in text

/// The value of the `name=value` pair whose name (from its key word on) is at `name`, if the key
/// rule redacts it. `quote` is the quote that closed a quoted name (`"`, `\"`, …); `p` is where
/// the value starts (after the separator and blanks, and at most one line break).
///
/// The whole name is the name characters (`A-Z a-z 0-9 _ . -`) around the key word, at most
/// [`NAME_REST`] bytes before it; when that name alone is not sensitive, the word before it (one
/// space apart) is joined to it (`api key: …`). The value is:
///
/// - a quoted string (`"…"`, `'…'`, also escaped as `\"…\"`): its contents, up to the matching
///   quote (or the end of the line when there is none), after an authorization scheme
///   (`Bearer `, `Basic `, `token `) if one begins it;
/// - a JSON array or object (`[…]`, `{…}`): all of it, to the matching bracket (or the end of
///   the text);
/// - otherwise: after an authorization scheme, up to whitespace, `&`, `,`, `;`, a quote, or,
///   after a quoted name, `}` or `]`; for a cookie (`Cookie:`, `Set-Cookie:`), up to the end
///   of the line or a quote.
pub(super) fn pair_value_span(
    s: &str,
    name: Range<usize>,
    quote: Option<&str>,
    p: usize,
    keys: &KeyRule,
) -> Option<Range<usize>> {
    let key = pair_name(s, &name, keys)?;
    let backslashes = quote.map_or(0, |q| q.len() - 1);
    let cookie = key.to_ascii_lowercase().contains("cookie");
    let next_line = s[name.end..p].contains('\n');
    let span = if next_line && s[p..].starts_with("- ") {
        yaml_list_span(s, p)?
    } else {
        value_extent(s, p, quote.is_some(), backslashes, cookie)?
    };
    let text = &s[span.clone()];
    // NOTE: after a line break, `name:` is the next key of a YAML mapping, not a value.
    let next_line_key = next_line && text.ends_with(':');
    if next_line_key || text.starts_with(REDACTED) || !keys.redacts_text(key, text) {
        return None;
    }
    Some(span)
}

/// The items of the YAML list whose first `- ` is at `p`: from the first item to the end of the
/// last line that starts, with the same indentation, with `- `.
pub(super) fn yaml_list_span(s: &str, p: usize) -> Option<Range<usize>> {
    let line_start = s[..p].rfind('\n').map_or(0, |i| i + 1);
    let indent = &s[line_start..p];
    let start = p + 2 + s[p + 2..].len() - s[p + 2..].trim_start_matches([' ', '\t']).len();
    let mut end = line_end(s, start);
    while let Some(next) = s[end..].strip_prefix('\n') {
        let Some(item) = next.strip_prefix(indent).and_then(|l| l.strip_prefix("- ")) else {
            break;
        };
        end = line_end(s, s.len() - item.len());
    }
    nonempty(start, end)
}

/// The whole name around the key word at `name`, if the key rule finds it sensitive.
pub(super) fn pair_name<'s>(s: &'s str, name: &Range<usize>, keys: &KeyRule) -> Option<&'s str> {
    let b = s.as_bytes();
    let is_name = |c: u8| c.is_ascii_alphanumeric() || b"_.-".contains(&c);
    let floor = name.start.saturating_sub(NAME_REST);
    let mut start = name.start;
    while start > floor && is_name(b[start - 1]) {
        start -= 1;
    }
    let key = &s[start..name.end];
    if keys.classify(key) != KeyClass::Plain {
        return Some(key);
    }
    // `api key: …`: the word before, one space apart.
    if start >= 2 && b[start - 1] == b' ' && is_name(b[start - 2]) {
        let mut word = start - 1;
        while word > floor && is_name(b[word - 1]) {
            word -= 1;
        }
        let joined = &s[word..name.end];
        if keys.classify(joined) != KeyClass::Plain {
            return Some(joined);
        }
    }
    None
}

/// Where the value that starts at `p` ends (see [`pair_value_span`]). `quoted_name` tells
/// whether the name was quoted, and `backslashes` how many backslashes escaped its quote.
pub(super) fn value_extent(
    s: &str,
    p: usize,
    quoted_name: bool,
    backslashes: usize,
    cookie: bool,
) -> Option<Range<usize>> {
    let b = s.as_bytes();
    let rest = &b[p..];
    let lead = rest.iter().take_while(|c| **c == b'\\').count();
    if lead <= 3
        && let Some(&q) = rest.get(lead)
        && (q == b'"' || q == b'\'')
    {
        let open = p + lead + 1;
        let close = closing_quote(s, open, q, lead).unwrap_or_else(|| line_end(s, open));
        let start = skip_scheme(s, open, close);
        return nonempty(start, close);
    }
    if matches!(rest.first(), Some(b'[' | b'{')) {
        return nonempty(p, bracket_end(s, p, backslashes));
    }
    if cookie {
        let end = p + rest
            .iter()
            .position(|c| matches!(c, b'\r' | b'\n' | b'"' | b'\''))
            .unwrap_or(rest.len());
        let end = end
            - s.as_bytes()[p..end]
                .iter()
                .rev()
                .take_while(|c| **c == b'\\')
                .count();
        return nonempty(p, end);
    }
    let start = skip_scheme(s, p, s.len());
    let mut end = start;
    while end < b.len() {
        match b[end] {
            b'\\' if matches!(b.get(end + 1), Some(c) if *c != b'"' && *c != b'\'') => end += 2,
            b'\\' | b'&' | b',' | b';' | b'"' | b'\'' => break,
            b'}' | b']' if quoted_name => break,
            c if c.is_ascii_whitespace() => break,
            _ => end += 1,
        }
    }
    while !s.is_char_boundary(end) {
        end += 1;
    }
    nonempty(start, end.min(s.len()))
}

/// Where the string opened at `open` (after a quote `q` escaped by `backslashes`) closes: the
/// next `q` escaped the same way, not by more; `None` when the line ends first.
///
/// NOTE: JSON inside a JSON string escapes its quotes as `\"` and its own escaped quotes as
/// `\\\"`: a closing quote at `backslashes` = b has n backslashes with n ≡ b (mod 2b + 2).
pub(super) fn closing_quote(s: &str, open: usize, q: u8, backslashes: usize) -> Option<usize> {
    let b = s.as_bytes();
    let modulus = 2 * backslashes + 2;
    let mut run = 0;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'\\' => run += 1,
            b'\n' | b'\r' => return None,
            _ if c == q && run % modulus == backslashes => return Some(i - backslashes),
            _ => run = 0,
        }
    }
    None
}

/// The end of the line that `from` is on.
pub(super) fn line_end(s: &str, from: usize) -> usize {
    s[from..].find(['\n', '\r']).map_or(s.len(), |i| from + i)
}

/// Past an authorization scheme (`Bearer`, `Basic`, `token`, `Digest`) and its blanks at `p`,
/// when a value follows it before `end`.
pub(super) fn skip_scheme(s: &str, p: usize, end: usize) -> usize {
    let b = &s.as_bytes()[p..end];
    for scheme in [&b"bearer"[..], b"basic", b"token", b"digest"] {
        if b.len() > scheme.len() && b[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let blanks = b[scheme.len()..]
                .iter()
                .take_while(|c| matches!(c, b' ' | b'\t'))
                .count();
            let value = scheme.len() + blanks;
            if blanks > 0 && b.get(value).is_some_and(|c| !c.is_ascii_whitespace()) {
                return p + value;
            }
        }
    }
    p
}

/// The end of the JSON array or object that opens at `p`: after its matching bracket, or the
/// end of `s`. Brackets inside strings (quoted with `backslashes` before each quote, as the
/// name was) do not count.
pub(super) fn bracket_end(s: &str, p: usize, backslashes: usize) -> usize {
    let b = s.as_bytes();
    let modulus = 2 * backslashes + 2;
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut run = 0;
    for (i, &c) in b.iter().enumerate().skip(p) {
        if c == b'\\' {
            run += 1;
            continue;
        }
        if c == b'"' && run % modulus == backslashes {
            in_string = !in_string;
        } else if !in_string {
            match c {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        run = 0;
    }
    s.len()
}
