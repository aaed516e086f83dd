//! Properties of the writer and `verify` over generated input: any event text survives the
//! trip through a line intact (modulo redaction), and any single changed byte is found.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use nexus_audit::FIELD_ORDER;
use nexus_audit::REDACTED;
use nexus_audit::{Durability, Event, LogOptions, RecordView, Redactor, VerifyOptions};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // NOTE: shrinking a failure re-runs file I/O; keep it bounded.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// Characters that break naive JSON or line handling, mixed with any Unicode scalar value.
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            '\n', '\r', '\t', '"', '\\', '/', '\0', '\u{1}', '\u{8}', '\u{c}', '\u{1b}',
            '\u{1f}', '\u{7f}', '\u{85}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{202e}',
            '\u{fffd}', '\u{d7ff}', '\u{e000}', '\u{10000}', '\u{1f600}', '\u{10ffff}', 'é',
            '{', '}', ':', ',',
        ]),
        3 => any::<char>(),
        4 => prop::char::range('a', 'z'),
    ]
}

fn nasty_string() -> impl Strategy<Value = String> {
    prop::collection::vec(nasty_char(), 0..24).prop_map(|chars| chars.into_iter().collect())
}

fn nasty_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((nasty_string(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn nasty_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((nasty_string(), nasty_value()), 0..5)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

/// Extra top-level fields: any name that is not a standard field.
fn extra_fields() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(
        (
            nasty_string().prop_filter("not a standard field", |k| {
                !FIELD_ORDER.contains(&k.as_str())
            }),
            nasty_value(),
        ),
        0..3,
    )
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.8, s)
}

prop_compose! {
    fn nasty_event()(
        strings in prop::collection::vec(opt(nasty_string()), 9),
        action in nasty_string(),
        error_message in opt(nasty_string()),
        args in opt(nasty_object()),
        details in opt(nasty_object()),
        extra in extra_fields(),
        latency in opt(any::<u64>()),
        mock in opt(any::<bool>()),
    ) -> Event {
        let mut e = Event::new(action);
        e.tool.clone_from(&strings[0]);
        e.user_id.clone_from(&strings[1]);
        e.session_id.clone_from(&strings[2]);
        e.correlation_id.clone_from(&strings[3]);
        e.server_id.clone_from(&strings[4]);
        e.status.clone_from(&strings[5]);
        e.level.clone_from(&strings[6]);
        e.error_type.clone_from(&strings[7]);
        e.resource.clone_from(&strings[8]);
        e.error_message = error_message;
        e.args_summary = args;
        e.details = details;
        e.latency_ms = latency;
        e.mock_mode = mock;
        e.extra = extra.into_iter().collect();
        e
    }
}

/// The stored form of `e`'s caller-given fields: what the writer must keep, after the
/// built-in redaction (applied here by the same public [`Redactor`]).
fn expected_fields(e: &Event, r: &Redactor) -> Map<String, Value> {
    let mut out = Map::new();
    let mut string = |name: &str, v: &Option<String>| {
        if let Some(v) = v {
            out.insert(name.to_owned(), json!(r.redact_str(v)));
        }
    };
    string("action", &e.action);
    string("tool", &e.tool);
    string("user_id", &e.user_id);
    string("session_id", &e.session_id);
    string("correlation_id", &e.correlation_id);
    string("server_id", &e.server_id);
    string("status", &e.status);
    string("level", &e.level);
    string("error_type", &e.error_type);
    let resource = e.resource.clone().or_else(|| {
        e.tool
            .as_ref()
            .map(|t| format!("{}:{t}", e.server_id.as_deref().unwrap_or("unknown")))
    });
    string("resource", &resource);
    if let Some(m) = &e.error_message {
        out.insert("error_message".into(), json!(r.sanitize_error_message(m)));
    }
    for (name, v) in [("args_summary", &e.args_summary), ("details", &e.details)] {
        if let Some(v) = v {
            let mut v = v.clone();
            r.redact_value(&mut v);
            out.insert(name.into(), v);
        }
    }
    if let Some(n) = e.latency_ms {
        out.insert("latency_ms".into(), json!(n));
    }
    if let Some(b) = e.mock_mode {
        out.insert("mock_mode".into(), json!(b));
    }
    for (name, v) in &e.extra {
        let mut v = v.clone();
        if r.is_sensitive_key(name) {
            v = json!(REDACTED);
        } else {
            r.redact_value(&mut v);
        }
        out.insert(r.redact_str(name).into_owned(), v);
    }
    out
}

fn quiet_verify(path: &Path) -> nexus_audit::Report {
    let opts = VerifyOptions::new().max_problems(10).threads(1);
    nexus_audit::verify(path, &opts).expect("verify runs")
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn any_event_text_round_trips_through_a_line(
        events in prop::collection::vec(nasty_event(), 1..5),
        as_batch in any::<bool>(),
    ) {
        // Two extra keys that redact to the same name would collide in the object; skip those.
        let r = Redactor::default();
        for e in &events {
            let names: std::collections::HashSet<_> =
                e.extra.keys().map(|k| r.redact_str(k).into_owned()).collect();
            prop_assume!(names.len() == e.extra.len());
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = LogOptions::new(&path)
            .durability(Durability::None)
            .open()
            .expect("open log");
        if as_batch {
            log.append_batch(events.clone()).expect("append batch");
        } else {
            for e in &events {
                log.append(e.clone()).expect("append");
            }
        }
        drop(log);

        let lines = common::lines(&path);
        prop_assert_eq!(lines.len(), events.len(), "one line per event");
        for (i, (line, e)) in lines.iter().zip(&events).enumerate() {
            let text = std::str::from_utf8(line).expect("a line is UTF-8");
            prop_assert!(
                !text.chars().any(|c| c < ' '),
                "no raw control character in a stored line: {:?}", text
            );
            let stored: Map<String, Value> =
                serde_json::from_str(text).expect("a line is one JSON object");
            prop_assert!(RecordView::parse(line).is_ok());
            prop_assert_eq!(&stored["seq"], &json!(i));
            for (name, want) in expected_fields(e, &r) {
                prop_assert_eq!(stored.get(&name), Some(&want), "field {}", name);
            }
        }
        let report = quiet_verify(&path);
        prop_assert!(report.ok, "{:?}", report.problems);
        prop_assert_eq!(report.records, events.len() as u64);
    }
}

/// A small, healthy log's bytes, written once.
fn small_log() -> &'static [u8] {
    static LOG: OnceLock<Vec<u8>> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = common::write_log(dir.path(), "audit.jsonl", 4);
        std::fs::read(path).expect("read log")
    })
}

/// `(start, end)` of each line, the LF at `end`.
fn line_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            spans.push((start, i));
            start = i + 1;
        }
    }
    spans
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn any_single_byte_change_to_a_non_final_line_is_detected(
        line in any::<Index>(),
        pos in any::<Index>(),
        delta in 1u8..=255,
    ) {
        let original = small_log();
        let spans = line_spans(original);
        // Any line but the last, its LF included.
        let (start, end) = spans[line.index(spans.len() - 1)];
        let at = start + pos.index(end - start + 1);
        let mut bytes = original.to_vec();
        bytes[at] = bytes[at].wrapping_add(delta);

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, &bytes).expect("write changed log");
        let report = quiet_verify(&path);
        prop_assert!(
            !report.ok,
            "byte {} changed from {:#04x} to {:#04x} went unnoticed",
            at, original[at], bytes[at]
        );
    }

    #[test]
    fn a_log_cut_at_any_offset_reports_at_most_a_torn_tail_that_the_next_append_recovers(
        cut in any::<Index>(),
    ) {
        let original = small_log();
        let keep = cut.index(original.len() + 1);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, &original[..keep]).expect("write cut log");

        let torn = original[..keep].iter().rposition(|b| *b == b'\n').map_or(keep, |i| keep - i - 1);
        let report = quiet_verify(&path);
        if torn == 0 {
            prop_assert!(report.ok, "{:?}", report.problems);
        } else {
            let kinds: Vec<_> = report.problems.iter().map(|p| p.kind.as_str()).collect();
            prop_assert_eq!(kinds, vec!["torn_tail"]);
        }

        let log = LogOptions::new(&path)
            .durability(Durability::None)
            .open()
            .expect("open log");
        log.append(common::sample_event(99)).expect("append after a cut");
        drop(log);
        let report = quiet_verify(&path);
        prop_assert!(report.ok, "{:?}", report.problems);
        let lines = common::lines(&path);
        if torn > 0 {
            let recovered: Value =
                serde_json::from_slice(&lines[lines.len() - 2]).expect("JSON");
            prop_assert_eq!(&recovered["action"], &json!("log_recovered"));
            prop_assert_eq!(&recovered["details"]["torn_bytes"], &json!(torn));
        }
    }
}
