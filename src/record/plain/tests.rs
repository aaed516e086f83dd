//! The fast path against the slow path, byte for byte, on generated lines.

use proptest::prelude::*;
use proptest::string::string_regex;

use super::*;
use crate::chain::FIELD_ORDER;
use crate::redact::RedactionRules;
use crate::taxonomy::Taxonomy;

/// The slow path's body for a line, as `append --stdin` makes it.
fn slow(encoder: &Encoder, text: &str, defaults: &Event) -> crate::error::Result<Vec<u8>> {
    let mut event = Event::from_json_str(text)?;
    event.fill_from(defaults);
    encoder.encode(event)
}

/// The fast path's body for a line. One scratch serves every call of a thread, as one serves a
/// batch's lines in `append --stdin`: what a line leaves in it must not change the next.
fn fast(encoder: &Encoder, text: &str, defaults: &Event) -> Option<Vec<u8>> {
    let defaults = PlainDefaults::new(defaults).expect("plain defaults");
    Scratch::with(|scratch| encoder.encode_plain(text, &defaults, scratch, std::process::id()))
}

/// An encoder with the built-in rules, and one with extra keys, patterns, allowed keys, a
/// taxonomy of its own and another default source.
fn encoders() -> [Encoder; 2] {
    let rules = RedactionRules::new()
        .extra_key("badge")
        .extra_pattern("EMP-[0-9]{6}")
        .allow_key("token_count")
        .allow_key("password");
    let taxonomy = Taxonomy::default()
        .with_default_category("OTHER")
        .with_default_shard("misc");
    [
        Encoder::default(),
        Encoder::new(
            Redactor::new(&rules).expect("rules"),
            taxonomy,
            "src \"q\"".to_owned(),
        ),
    ]
}

/// Blanks out the generated `event_id` (36 bytes after `"event_id":"`) and, when `time`, the
/// generated `timestamp`, which differ from call to call.
fn masked(mut body: Vec<u8>, id: bool, time: bool) -> Vec<u8> {
    let prefix = b"\"event_id\":\"";
    assert!(
        body.starts_with(prefix),
        "{}",
        String::from_utf8_lossy(&body)
    );
    if id {
        body[prefix.len()..prefix.len() + 36].fill(b'#');
    }
    if time {
        let at = memchr::memmem::find(&body, b",\"timestamp\":\"").expect("a timestamp") + 14;
        body[at..at + 27].fill(b'#');
    }
    body
}

/// Builds a secret from pieces, so that no literal here trips a secret scanner.
fn joined(parts: &[&str]) -> String {
    parts.concat()
}

/// JSON string literals (with their quotes): clean, escaped, unicode, secrets, key words.
fn string_literal() -> impl Strategy<Value = String> {
    let pool: Vec<String> = vec![
        String::new(),
        "alice@example.com".into(),
        "workday_get_worker".into(),
        "fedex_track_shipment".into(),
        "logistics-mcp".into(),
        "success".into(),
        "error".into(),
        "info".into(),
        "W1963828".into(),
        "é ünïcode 日本 \u{7f}".into(),
        "list the files in /home/ann and summarise README.md".into(),
        "a\\nb".into(),
        "\\\"quoted\\\"".into(),
        "caf\\u00e9".into(),
        "\\/path".into(),
        "password=hunter2".into(),
        "token: abc".into(),
        joined(&["ghp", "_", "R8kq2LmN4pX7vT1sW9yZ3bC6dF0gH5jK2aQe"]),
        joined(&["Bear", "er abcdefghijklmnop"]),
        "4111 1111 1111 1111".into(),
        "123-45-6789".into(),
        "postgres://app:hunter2@db:5432/prod".into(),
        "EMP-123456".into(),
        "**REDACTED**".into(),
        "password".into(),
        "api_key".into(),
        "token_count".into(),
        "badge".into(),
        "name".into(),
        "value".into(),
        "Key".into(),
        "v".into(),
        "$serde_json::private::Number".into(),
        "x".repeat(600),
        "é".repeat(501),
    ];
    prop_oneof![
        3 => proptest::sample::select(pool),
        2 => string_regex("[a-zA-Z0-9 _.:=/@-]{0,14}").expect("valid"),
    ]
    .prop_map(|s| format!("\"{s}\""))
}

fn number_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0_u64..100_000).prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        2 => proptest::sample::select(vec![
            "0", "-0", "-3", "18446744073709551615", "18446744073709551616",
            "9223372036854775808", "-9223372036854775808", "99999999999999999999999",
            "1.5", "1e5", "-0.0", "2.50", "1E400", "0.1", "01", "-", "1.", "3e-2",
        ])
        .prop_map(str::to_owned),
    ]
}

fn blank() -> impl Strategy<Value = &'static str> {
    prop_oneof![12 => Just(""), 2 => Just(" "), 1 => Just("\t"), 1 => Just(" \r "), 1 => Just("\n")]
}

fn key_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "id", "fields", "limit", "query", "team", "name", "value", "Value", "key", "val",
            "values", "password", "api_key", "token_count", "tokens", "card_type", "badge",
            "auth_required", "ParameterKey", "ParameterValue", "t\\u006fol", "a b", "é",
            "$serde_json::private::Number", "tool", "args_summary",
        ])
        .prop_map(|k| format!("\"{k}\"")),
        1 => string_literal(),
    ]
}

/// Any JSON value's text (sometimes not valid JSON), with blanks between tokens.
fn value_literal() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => string_literal(),
        3 => number_literal(),
        1 => proptest::sample::select(vec!["true", "false", "null", "nul", "tru"])
            .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec((blank(), inner.clone(), blank()), 0..5).prop_map(|items| {
                let items: Vec<String> = items
                    .into_iter()
                    .map(|(a, v, b)| format!("{a}{v}{b}"))
                    .collect();
                format!("[{}]", items.join(","))
            }),
            proptest::collection::vec((key_literal(), blank(), inner, blank()), 0..5).prop_map(
                |pairs| {
                    let pairs: Vec<String> = pairs
                        .into_iter()
                        .map(|(k, a, v, b)| format!("{k}{a}:{b}{v}"))
                        .collect();
                    format!("{{{}}}", pairs.join(","))
                }
            ),
        ]
    })
}

/// Times in and near the stored form, and in other shapes.
const TIMES: &[&str] = &[
    "2026-11-22T10:05:04.5+01:00",
    "2026-11-22T10:05:04Z",
    "2026-11-22T10:05:04.123456",
    "2026-11-22T10:05:04.123456+00:00",
    "2024-02-29T00:00:00.000000Z",
    "2023-02-29T00:00:00.000000Z",
    "2000-02-29T00:00:00.000000Z",
    "1900-02-29T00:00:00.000000Z",
    "2026-06-30T23:59:60.500000Z",
    "2026-06-30T23:59:60.000000Z",
    "2026-04-31T00:00:00.000000Z",
    "2026-04-30T00:00:00.000000Z",
    "2026-00-10T00:00:00.000000Z",
    "2026-01-00T00:00:00.000000Z",
    "0000-01-01T00:00:00.000000Z",
    "0000-02-29T00:00:00.000000Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-13-01T00:00:00.000000Z",
    "2026-01-01T24:00:00.000000Z",
    "2026-01-01T23:60:00.000000Z",
    "2026-01-01t00:00:00.000000z",
    "2026-01-01T00:00:00,000000Z",
    "2026-01-01 00:00:00.000000Z",
    "+026-01-01T00:00:00.000000Z",
    "yesterday",
    "",
];

fn timestamp_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0_i64..4_000_000_000, 0_u32..1_000_000).prop_map(|(s, us)| {
            let t = DateTime::from_timestamp(s, us * 1000).expect("in range");
            format!("\"{}\"", format_timestamp(t))
        }),
        2 => proptest::sample::select(TIMES).prop_map(|t| format!("\"{t}\"")),
        1 => value_literal(),
    ]
}

/// Each time of [`TIMES`] is stored by the fast path as by the slow path (or left to it).
#[test]
fn times_are_stored_as_the_slow_path_stores_them() {
    let encoder = Encoder::default();
    let none = Event::default();
    for time in TIMES {
        let text = format!(r#"{{"event_id":"e","timestamp":"{time}"}}"#);
        let slow = slow(&encoder, &text, &none);
        match fast(&encoder, &text, &none) {
            Some(body) => assert_eq!(
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&slow.expect("slow takes it")),
                "{time}"
            ),
            None => assert!(slow.is_err(), "{time}: {slow:?}"),
        }
    }
}

/// The text of a value for the field called `name`: mostly of the field's type, sometimes not.
fn field_value(name: &'static str) -> BoxedStrategy<String> {
    let kind = crate::chain::field(name).map(|f| f.kind);
    let typed = match kind {
        _ if name == "timestamp" => timestamp_literal().boxed(),
        Some(Kind::Text) => string_literal().boxed(),
        Some(Kind::Count | Kind::Signed) => number_literal().boxed(),
        Some(Kind::Flag) => proptest::sample::select(vec!["true", "false"])
            .prop_map(str::to_owned)
            .boxed(),
        Some(Kind::Json) | None => value_literal().boxed(),
    };
    prop_oneof![8 => typed, 1 => value_literal(), 1 => Just("null".to_owned())].boxed()
}

/// A top-level key: a standard field, an extra one, or any.
fn top_key() -> impl Strategy<Value = &'static str> {
    let mut keys: Vec<&'static str> = FIELD_ORDER.to_vec();
    keys.extend([
        "team",
        "password",
        "name",
        "value",
        "api_key",
        "token_count",
        "t\\u006fol",
        "badge",
        "$serde_json::private::Number",
    ]);
    proptest::sample::select(keys)
}

/// A line: `(text, gives event_id, gives timestamp)`.
fn line() -> impl Strategy<Value = (String, bool, bool)> {
    let pair = top_key().prop_flat_map(|k| (Just(k), blank(), field_value(k), blank()));
    (
        proptest::collection::vec(pair, 0..9),
        blank(),
        prop_oneof![20 => Just(""), 1 => Just(" x"), 1 => Just(",")],
        any::<bool>(),
    )
        .prop_map(|(pairs, lead, tail, cut)| {
            let id = pairs.iter().any(|(k, ..)| *k == "event_id");
            let time = pairs.iter().any(|(k, ..)| *k == "timestamp");
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, a, v, b)| format!("\"{k}\"{a}:{b}{v}"))
                .collect();
            let mut text = format!("{lead}{{{}}}{tail}", body.join(","));
            if cut && text.len() > 40 && text.len() % 7 == 0 {
                let mut half = text.len() / 2;
                while !text.is_char_boundary(half) {
                    half -= 1;
                }
                text.truncate(half);
            }
            (text, id, time)
        })
}

/// Defaults as `append --stdin`'s flags give them: none, or some strings, numbers and flags.
fn defaults() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => Just(Event::default()),
        1 => Just(
            Event::default()
                .tool("ad_get_user")
                .server("identity-mcp")
                .user("bob")
                .status("error")
                .latency_ms(7)
                .sizes(100, 25)
                .mock(false)
                .error_message("password=hunter2 in a message"),
        ),
        1 => Just(Event {
            timestamp: Some("2026-11-22T10:05:04.5+01:00".to_owned()),
            event_id: Some("given-id".to_owned()),
            level: Some("warn".to_owned()),
            reduction_percent: Some(-4),
            ..Event::default()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Whenever the fast path takes a line, the slow path takes it too and writes the same
    /// bytes (the generated id and time aside).
    #[test]
    fn fast_path_writes_what_the_slow_path_writes(
        (text, id, time) in line(),
        defaults in defaults(),
        which in 0_usize..2,
    ) {
        let encoder = &encoders()[which];
        if let Some(body) = fast(encoder, &text, &defaults) {
            let expected = slow(encoder, &text, &defaults);
            prop_assert!(expected.is_ok(), "{text}: fast wrote, slow failed: {expected:?}");
            let id = !id && defaults.event_id.is_none();
            let time = !time && defaults.timestamp.is_none();
            let got = masked(body, id, time);
            let expected = masked(expected.expect("ok"), id, time);
            prop_assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected),
                "{}", text
            );
        }
    }
}

/// The lines the generator makes take the fast path often enough for the property to mean
/// something, and the slow path often enough too.
#[test]
fn generated_lines_take_both_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let encoder = Encoder::default();
    let mut runner = TestRunner::deterministic();
    let strategy = line();
    let (mut fast_taken, mut total) = (0, 0);
    for _ in 0..2000 {
        let (text, ..) = strategy.new_tree(&mut runner).expect("a line").current();
        total += 1;
        if fast(&encoder, &text, &Event::default()).is_some() {
            fast_taken += 1;
        }
    }
    assert!(fast_taken * 10 > total, "{fast_taken} of {total}");
    assert!(fast_taken * 10 < total * 9, "{fast_taken} of {total}");
}

/// Typical lines, compact or with the blanks of Python's `json.dumps`, take the fast path and
/// give the slow path's bytes; those with a secret, an escape or a float do not.
#[test]
fn typical_lines_take_the_fast_path_and_secrets_do_not() {
    let encoder = Encoder::default();
    let none = Event::default();
    for text in [
        r#"{"timestamp":"2026-09-21T14:13:20.787630Z","level":"info","action":"mcp_call","user_id":"alice@example.com","session_id":"sess-000000","correlation_id":"req-0000000000","server_id":"logistics-mcp","tool":"fedex_track_shipment","args_summary":{"id":"W1963828","fields":["name","email","department"],"limit":86},"status":"success","latency_ms":94,"response_size":13171,"filtered_size":4390}"#,
        r#"{"event_id": "e-1", "timestamp": "2026-09-21T14:13:20.787630Z", "tool": "ad_get_user", "args_summary": {"user": "bob", "groups": [1, 2, {"x": null}]}, "team": "blue", "mock_mode": true}"#,
        r#"{"event_id":"e-2","timestamp":"2026-09-21T14:13:20+02:00","status":"error","error_message":"upstream timed out after 30s","reduction_percent":-5}"#,
        r#"{"event_id":"e-3","timestamp":"2026-09-21T14:13:20Z","args_summary":{"name":"region","value":"eu"},"details":"text"}"#,
    ] {
        let body = fast(&encoder, text, &none).unwrap_or_else(|| panic!("fast path: {text}"));
        let id = !text.contains("event_id");
        assert_eq!(
            String::from_utf8_lossy(&masked(body, id, false)),
            String::from_utf8_lossy(&masked(
                slow(&encoder, text, &none).expect("slow"),
                id,
                false
            )),
            "{text}"
        );
    }
    for text in [
        r#"{"args_summary":{"password":"x"}}"#,
        r#"{"args_summary":{"q":"password=hunter2"}}"#,
        r#"{"args_summary":{"name":"api_key","value":"abc"}}"#,
        r#"{"args_summary":[["token","abc"]]}"#,
        r#"{"api_key":"abc"}"#,
        r#"{"name":"password","value":"abc"}"#,
        r#"{"tool":"a\nb"}"#,
        r#"{"args_summary":{"t":0.5}}"#,
        r#"{"args_summary":{"a":1,"a":2}}"#,
        r#"{"tool":"a","tool":"b"}"#,
        r#"{"latency_ms":-1}"#,
        r#"{"tool":null}"#,
        r#"{"tool":"a"} x"#,
    ] {
        assert!(fast(&encoder, text, &none).is_none(), "{text}");
    }
}

/// A string the redactor kept for a field, then one it changes, then the first again: what is
/// remembered of kept strings does not keep the second.
#[test]
fn a_kept_string_remembered_does_not_keep_the_next() {
    let encoder = Encoder::default();
    let none = Event::default();
    let secret = "password=hunter2";
    for user in ["alice", "alice", secret, "alice", secret, secret] {
        let text =
            format!(r#"{{"event_id":"e","timestamp":"2026-01-01T00:00:00Z","user_id":"{user}"}}"#);
        let body = String::from_utf8(fast(&encoder, &text, &none).expect("plain")).expect("utf8");
        assert!(!body.contains("hunter2"), "{body}");
        assert_eq!(body.contains("alice"), user == "alice", "{body}");
    }
}

/// A string kept as a value is not taken for a kept key: `password` is a clean value but a
/// sensitive key.
#[test]
fn a_string_kept_as_a_value_is_not_kept_as_a_key() {
    let encoder = Encoder::default();
    let none = Event::default();
    let value =
        r#"{"event_id":"e","timestamp":"2026-01-01T00:00:00Z","args_summary":{"a":"password"}}"#;
    let key =
        r#"{"event_id":"e","timestamp":"2026-01-01T00:00:00Z","args_summary":{"password":"a"}}"#;
    for _ in 0..2 {
        assert!(fast(&encoder, value, &none).is_some());
        assert!(fast(&encoder, key, &none).is_none());
    }
}

/// What one encoder's redactor kept is not taken as kept by another's: a scratch that served an
/// encoder allowing `password` and keeping `EMP-…` then serves the default one (what the
/// proptest found when the scratch did not know its encoder).
#[test]
fn a_scratch_forgets_what_another_encoder_kept() {
    let [builtin, custom] = encoders();
    let event = Event::default();
    let none = PlainDefaults::new(&event).expect("plain");
    let mut scratch = Scratch::default();
    let line = r#"{"event_id":"e","timestamp":"2026-01-01T00:00:00Z","user_id":"EMP-123456","args_summary":{"password":"a"}}"#;
    assert!(builtin.encode_plain(line, &none, &mut scratch, 1).is_none());
    let line = r#"{"event_id":"e","timestamp":"2026-01-01T00:00:00Z","user_id":"EMP-123456","args_summary":{"password":"a","n":"EMP-123456"}}"#;
    assert!(custom.encode_plain(line, &none, &mut scratch, 1).is_none());
    let line = r#"{"event_id":"e","timestamp":"2026-01-01T00:00:00Z","user_id":"EMP-123456","args_summary":{"password":"a"}}"#;
    let kept = custom
        .encode_plain(line, &none, &mut scratch, 1)
        .expect("plain for custom");
    assert!(String::from_utf8_lossy(&kept).contains(r#""user_id":"**REDACTED**""#));
    assert!(builtin.encode_plain(line, &none, &mut scratch, 1).is_none());
    let line = r#"{"event_id":"e","timestamp":"2026-01-01T00:00:00Z","user_id":"EMP-123456"}"#;
    let body = builtin
        .encode_plain(line, &none, &mut scratch, 1)
        .expect("plain");
    assert!(String::from_utf8_lossy(&body).contains(r#""user_id":"EMP-123456""#));
    let body = custom
        .encode_plain(line, &none, &mut scratch, 1)
        .expect("plain");
    assert!(String::from_utf8_lossy(&body).contains(r#""user_id":"**REDACTED**""#));
}

/// A generated id is a lowercase v4 UUID, and a generated time has the stored form.
#[test]
fn generated_ids_and_times_have_the_stored_shapes() {
    let body = fast(&Encoder::default(), "{}", &Event::default()).expect("plain");
    let v: serde_json::Value =
        serde_json::from_slice(&[b"{\"seq\":0,\"prev_hash\":\"x\",".as_slice(), &body].concat())
            .expect("JSON");
    let id = v["event_id"].as_str().expect("an id");
    let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(id, uuid.hyphenated().to_string());
    let time = v["timestamp"].as_str().expect("a time");
    assert!(is_stored_form(time), "{time}");
}

/// The eight-bytes-at-a-time string scan stops where a byte-at-a-time one does: at the closing
/// quote, or at a backslash or control character (not plain), at every offset.
#[test]
fn string_scan_stops_at_the_first_quote_backslash_or_control_character() {
    let redactor = Redactor::default();
    let mut tried = 0;
    for len in 0..24 {
        for (stop, plain) in [(b'"', true), (b'\\', false), (0x1f, false), (0x00, false)] {
            for at in 0..=len {
                let mut line = vec![b'"'];
                line.extend((0..len).map(|i| {
                    if i == at {
                        stop
                    } else {
                        b"a\xc3\xa9z~\x7f "[i % 7]
                    }
                }));
                line.push(b'"');
                line.extend_from_slice(b"tail\"");
                let Ok(text) = std::str::from_utf8(&line) else {
                    continue;
                };
                let mut keys = Vec::new();
                let mut known = Known::default();
                let mut parser = Parser {
                    text,
                    bytes: text.as_bytes(),
                    pos: 0,
                    blanks: 0,
                    redactor: &redactor,
                    keys: &mut keys,
                    known: &mut known,
                };
                let end = if at < len { at } else { len };
                let expected = (at >= len || plain).then_some((1, 1 + end));
                assert_eq!(parser.string(), expected, "{text:?}");
                tried += 1;
            }
        }
    }
    assert!(tried > 500, "{tried}");
}
