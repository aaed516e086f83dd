//! Redaction (SPEC §5) end to end: what reaches the log file, through the binary and through
//! the library. Every secret used here is checked to appear nowhere in the file's bytes.

mod common;

use std::path::Path;

use common::{cli, lines, verify_json};
use nexus_audit::redact::{MAX_ERROR_MESSAGE_CHARS, REDACTED};
use nexus_audit::{Durability, Event, LogOptions, RedactionRules};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

// --- helpers ------------------------------------------------------------------------------

/// Builds test secrets from pieces, so that no literal in this file trips a secret scanner.
fn joined(parts: &[&str]) -> String {
    parts.concat()
}

/// A value-pattern secret: the `secret` itself, a `text` that carries it, and what the text
/// must become in the log.
struct Secret {
    name: &'static str,
    secret: String,
    text: String,
    redacted: String,
}

fn secret(name: &'static str, secret: String, text: &str) -> Secret {
    Secret {
        name,
        text: text.replace("{}", &secret),
        redacted: text.replace("{}", REDACTED),
        secret,
    }
}

/// One secret for every value pattern of SPEC §5.
fn value_secrets() -> Vec<Secret> {
    let jwt = joined(&[
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        ".eyJzdWIiOiJhdWRpdC10ZXN0IiwibmFtZSI6Ik1hbGxvcnkifQ",
        ".Xq3vN8pL2mT7wR5yZ1bC4dF6gH9jK0aSe_uV-iO",
    ]);
    let google = joined(&["AIza", "SyC4mK8qW2eR6tY0uI3oP7aS1dF5gH9jKlZ"]);
    assert_eq!(google.len(), 39, "AIza plus 35 characters");
    let pem_body = "MIIEpQIBAAKCAQEAxUniqueBodyForTheTest42";
    let pem = joined(&[
        "-----BEGIN RSA ",
        "PRIVATE KEY-----\n",
        pem_body,
        "\nT3stL1ne2==\n-----END RSA ",
        "PRIVATE KEY-----",
    ]);
    let mut pem_secret = secret(
        "pem",
        pem.clone(),
        "key material follows\n{}\nend of message",
    );
    // NOTE: JSON escapes the block's newlines, so the body is what must be absent.
    pem_secret.secret = pem_body.to_owned();
    vec![
        secret("jwt", jwt, "session {} expired"),
        secret(
            "bearer",
            joined(&["q8Zt3", "LmN0pRx7Vw2"]),
            "sent Bearer {} upstream",
        ),
        secret(
            "basic",
            joined(&["YWxpY2U6", "czNjcjN0UGFzcw=="]),
            "proxy got Basic {} today",
        ),
        secret(
            "aws",
            joined(&["AKIA", "ZQ3M5N7P9R2T4V6X"]),
            "key {} was used",
        ),
        secret(
            "github",
            joined(&["ghp", "_", "Z9yX8wV7uT6sR5qP4oN3mL2kJ1iH0gFeDcBa"]),
            "clone with {} please",
        ),
        secret(
            "slack",
            joined(&["xoxb", "-", "4096-88112233-Zx8CvB7nM6qW5eR4"]),
            "posting as ({})",
        ),
        secret(
            "stripe",
            joined(&["sk", "_live_", "9fH2kL4mN6pQ8rS0tU1vW3xY"]),
            "charge via {} now",
        ),
        secret("google", google, "maps {} quota"),
        pem_secret,
        secret(
            "url_password",
            "Tr0ub4dor-xyz".to_owned(),
            "connect to postgres://svc:{}@db.internal:5432/prod",
        ),
        secret(
            "password_pair",
            "Hunter2Gamma".to_owned(),
            "login password={} ok",
        ),
        secret(
            "token_pair",
            "tkn-9Q7W-quartz".to_owned(),
            "header token: {} rejected",
        ),
        secret(
            "card",
            "4111 1111 1111 1111".to_owned(),
            "paid with {} yesterday",
        ),
        secret(
            "card_plain",
            "5555555555554444".to_owned(),
            "card on file {}.",
        ),
        secret("ssn", "123-45-6789".to_owned(), "ssn on file: {}."),
    ]
}

/// Every sensitive key of SPEC §5 with the spellings it names, plus common variants.
const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "apiKey",
    "API_KEY",
    "accesskey",
    "access_key",
    "privatekey",
    "privateKey",
    "secretkey",
    "secret-key",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "Authorization",
    "cookie",
    "Set-Cookie",
    "ssn",
    "dob",
    "dateofbirth",
    "date_of_birth",
    "birthdate",
    "card",
    "cardnumber",
    "cardNumber",
    "cvv",
    "cvc",
    "pin",
    "userPIN",
    "accountnumber",
    "account_number",
    "iban",
    "otp",
    "x-auth-token",
    "db.password",
    "client secret",
];

/// Keys that only resemble sensitive words.
const LOOK_ALIKE_KEYS: &[&str] = &[
    "author",
    "shipping",
    "tokenizer",
    "mapping",
    "authority",
    "tokens_used",
    "pinned",
    "cardinality",
];

/// Values that resemble secrets but are not.
fn look_alike_values() -> Vec<String> {
    vec![
        "3f2b8c1e-9d4a-4f6b-8e2c-7a1d5b9c0e4f".to_owned(),
        hex::encode(Sha256::digest(b"nexus-audit")),
        "2026-11-22T09:05:04.123456Z".to_owned(),
        "+1 (555) 123-4567".to_owned(),
        "call 555-123-4567 after 5".to_owned(),
        "4111111111111112".to_owned(),
        "4111 1111 1111 1112".to_owned(),
        "https://example.com/reports?id=42&page=2".to_owned(),
        "https://user@example.com:8443/path".to_owned(),
        "reset your password please".to_owned(),
    ]
}

/// The value stored under `key` with place `place`: unique, and shaped like no value pattern.
fn key_value(key: &str, place: &str) -> String {
    let tag: String = key.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("kv{tag}x{place}Qz")
}

fn log_bytes(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).expect("read log")).expect("UTF-8 log")
}

fn records(path: &Path) -> Vec<Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_slice(l).expect("JSON line"))
        .collect()
}

fn append_stdin(path: &Path, objects: &[Value]) {
    let input: String = objects.iter().map(|o| format!("{o}\n")).collect();
    let out = cli(path)
        .args(["append", "--stdin", "--durability", "none"])
        .write_stdin(input)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn open_log(path: &Path) -> nexus_audit::Logger {
    LogOptions::new(path)
        .durability(Durability::None)
        .open()
        .expect("open log")
}

/// Asserts that no secret appears anywhere in the file, and that the chain still verifies.
fn assert_absent(path: &Path, secrets: &[String]) {
    let bytes = log_bytes(path);
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!bytes.contains(s.as_str()), "{s:?} reached the log");
    }
    assert_eq!(verify_json(path).0, 0, "the redacted log verifies");
}

/// The record with every placement of `key` that the key tests use.
fn keyed_event(key: &str) -> Value {
    let v = |place: &str| Value::String(key_value(key, place));
    let mut top = Map::new();
    top.insert("tool".into(), json!("ad_get_user"));
    top.insert(key.into(), v("top"));
    top.insert(
        "args_summary".into(),
        json!({
            key: v("args"),
            "outer": {"inner": {key: v("nested")}},
            "items": [{key: v("array")}, {"ok": 1}],
        }),
    );
    top.insert(
        "details".into(),
        json!({
            key: v("details"),
            "mixed": [1, "x", {key: v("mixed")}],
            "typed": [{key: 4242}, {key: {"user": v("object")}}, {key: [v("list")]}],
        }),
    );
    Value::Object(top)
}

fn assert_keyed_record(r: &Value, key: &str) {
    let a = &r["args_summary"];
    let d = &r["details"];
    for (place, got) in [
        ("top", &r[key]),
        ("args", &a[key]),
        ("nested", &a["outer"]["inner"][key]),
        ("array", &a["items"][0][key]),
        ("details", &d[key]),
        ("mixed", &d["mixed"][2][key]),
        ("number", &d["typed"][0][key]),
        ("object", &d["typed"][1][key]),
        ("list", &d["typed"][2][key]),
    ] {
        assert_eq!(got, REDACTED, "key {key:?} at {place}: {r}");
    }
    assert_eq!(a["items"][1]["ok"], 1);
    assert_eq!(d["mixed"][0], 1);
    assert_eq!(d["mixed"][1], "x");
}

fn keyed_secrets() -> Vec<String> {
    SENSITIVE_KEYS
        .iter()
        .flat_map(|k| {
            [
                "top", "args", "nested", "array", "details", "mixed", "object", "list",
            ]
            .map(|p| key_value(k, p))
        })
        .collect()
}

/// The record carrying `text` in every string field that the value rule covers.
fn texted_event(text: &str) -> Value {
    json!({
        "tool": text,
        "user_id": text,
        "server_id": text,
        "session_id": text,
        "correlation_id": text,
        "resource": text,
        "error_type": text,
        "error_message": text,
        "args_summary": {"note": text, "list": [7, {"q": text}], "deep": {"deeper": [text]}},
        "details": {"why": text, "list": [text]},
        "comment": text,
    })
}

fn assert_texted_record(r: &Value, want: &str, name: &str) {
    for field in [
        "tool",
        "user_id",
        "server_id",
        "session_id",
        "correlation_id",
        "resource",
        "error_type",
        "error_message",
        "comment",
    ] {
        assert_eq!(r[field], want, "{name}: {field}");
    }
    let a = &r["args_summary"];
    assert_eq!(a["note"], want, "{name}: args");
    assert_eq!(a["list"][1]["q"], want, "{name}: args array");
    assert_eq!(a["list"][0], 7, "{name}");
    assert_eq!(a["deep"]["deeper"][0], want, "{name}: nested args");
    assert_eq!(r["details"]["why"], want, "{name}: details");
    assert_eq!(r["details"]["list"][0], want, "{name}: details array");
}

// --- keys ---------------------------------------------------------------------------------

#[test]
fn every_sensitive_key_is_redacted_wherever_it_sits_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let events: Vec<Value> = SENSITIVE_KEYS.iter().map(|k| keyed_event(k)).collect();
    append_stdin(&log, &events);
    let stored = records(&log);
    assert_eq!(stored.len(), SENSITIVE_KEYS.len());
    for (r, key) in stored.iter().zip(SENSITIVE_KEYS) {
        assert_keyed_record(r, key);
    }
    assert_absent(&log, &keyed_secrets());
}

#[test]
fn every_sensitive_key_is_redacted_wherever_it_sits_through_the_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("audit.jsonl");
    let log = open_log(&log_path);
    let events: Vec<Event> = SENSITIVE_KEYS
        .iter()
        .map(|k| Event::from_json(keyed_event(k)).expect("an event"))
        .collect();
    log.append_batch(events).expect("append");
    log.close().expect("close");
    for (r, key) in records(&log_path).iter().zip(SENSITIVE_KEYS) {
        assert_keyed_record(r, key);
    }
    assert_absent(&log_path, &keyed_secrets());
}

#[test]
fn sensitive_keys_in_args_and_details_flags_are_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let args =
        json!({"apiKey": "flagArgsSecretQz", "query": "W123", "nested": [1, {"pin": 987_654_321}]});
    let details = json!({"x-auth-token": "flagDetailsSecretQz", "attempt": 2});
    let out = cli(&log)
        .args(["append", "--tool", "workday_get_worker", "--args"])
        .arg(args.to_string())
        .arg("--details")
        .arg(details.to_string())
        .output()
        .expect("run");
    assert!(out.status.success());
    let r = &records(&log)[0];
    assert_eq!(
        r["args_summary"],
        json!({"apiKey": REDACTED, "query": "W123", "nested": [1, {"pin": REDACTED}]})
    );
    assert_eq!(
        r["details"],
        json!({"x-auth-token": REDACTED, "attempt": 2})
    );
    assert_absent(
        &log,
        &[
            "flagArgsSecretQz".into(),
            "flagDetailsSecretQz".into(),
            "987654321".into(),
        ],
    );
}

#[test]
fn look_alike_keys_keep_their_values_at_every_depth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let mut top = Map::new();
    let mut args = Map::new();
    for key in LOOK_ALIKE_KEYS {
        top.insert((*key).into(), json!(format!("top {key}")));
        args.insert((*key).into(), json!(format!("args {key}")));
    }
    top.insert("tool".into(), json!("ad_get_user"));
    top.insert(
        "details".into(),
        json!({"list": [1, Value::Object(args.clone())], "deep": {"deeper": Value::Object(args.clone())}}),
    );
    top.insert("args_summary".into(), Value::Object(args.clone()));
    append_stdin(&log, &[Value::Object(top)]);
    let r = &records(&log)[0];
    for key in LOOK_ALIKE_KEYS {
        assert_eq!(r[*key], format!("top {key}"), "{key}");
        let want = json!(format!("args {key}"));
        assert_eq!(r["args_summary"][*key], want, "{key}");
        assert_eq!(r["details"]["list"][1][*key], want, "{key}");
        assert_eq!(r["details"]["deep"]["deeper"][*key], want, "{key}");
    }
    assert!(!log_bytes(&log).contains(REDACTED));
}

// --- values -------------------------------------------------------------------------------

#[test]
fn every_value_pattern_is_redacted_in_every_field_through_the_binary_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let secrets = value_secrets();
    let events: Vec<Value> = secrets.iter().map(|s| texted_event(&s.text)).collect();
    append_stdin(&log, &events);
    for (r, s) in records(&log).iter().zip(&secrets) {
        assert_texted_record(r, &s.redacted, s.name);
    }
    let all: Vec<String> = secrets.iter().map(|s| s.secret.clone()).collect();
    assert_absent(&log, &all);
}

#[test]
fn every_value_pattern_is_redacted_in_flags_args_details_error_message_tool_and_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let secrets = value_secrets();
    for s in &secrets {
        let out = cli(&log)
            .args(["append", "--durability", "none", "--status", "error"])
            .args([
                "--tool",
                &s.text,
                "--user",
                &s.text,
                "--error-message",
                &s.text,
            ])
            .args([
                "--error-type",
                &s.text,
                "--session",
                &s.text,
                "--server",
                &s.text,
            ])
            .args(["--correlation", &s.text, "--source", &s.text])
            .arg("--args")
            .arg(json!({"note": s.text, "list": [1, {"q": s.text}]}).to_string())
            .arg("--details")
            .arg(json!({"why": [s.text]}).to_string())
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", s.name);
    }
    for (r, s) in records(&log).iter().zip(&secrets) {
        for field in [
            "tool",
            "user_id",
            "error_message",
            "error_type",
            "session_id",
            "server_id",
            "correlation_id",
            "source",
            "resource",
        ] {
            if field == "resource" {
                assert!(!r[field].as_str().unwrap_or("").contains(&s.secret));
            } else {
                assert_eq!(r[field], s.redacted.as_str(), "{}: {field}", s.name);
            }
        }
        assert_eq!(
            r["args_summary"],
            json!({"note": s.redacted, "list": [1, {"q": s.redacted}]}),
            "{}",
            s.name
        );
        assert_eq!(r["details"], json!({"why": [s.redacted]}), "{}", s.name);
    }
    let all: Vec<String> = secrets.iter().map(|s| s.secret.clone()).collect();
    assert_absent(&log, &all);
}

#[test]
fn every_value_pattern_is_redacted_through_the_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("audit.jsonl");
    let log = open_log(&log_path);
    let secrets = value_secrets();
    for s in &secrets {
        let mut e = Event::new("mcp_call")
            .tool(&s.text)
            .user(&s.text)
            .server(&s.text)
            .session(&s.text)
            .correlation(&s.text)
            .resource(&s.text)
            .args(json!({"note": s.text, "list": [7, {"q": s.text}], "deep": {"deeper": [s.text]}}))
            .details(json!({"why": s.text, "list": [s.text]}))
            .failed(s.text.clone(), s.text.clone());
        e.extra.insert("comment".into(), json!(s.text));
        log.append(e).expect("append");
    }
    log.close().expect("close");
    for (r, s) in records(&log_path).iter().zip(&secrets) {
        assert_texted_record(r, &s.redacted, s.name);
    }
    let all: Vec<String> = secrets.iter().map(|s| s.secret.clone()).collect();
    assert_absent(&log_path, &all);
}

#[test]
fn look_alike_values_are_kept_in_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let values = look_alike_values();
    let events: Vec<Value> = values.iter().map(|v| texted_event(v)).collect();
    append_stdin(&log, &events);
    for (r, v) in records(&log).iter().zip(&values) {
        assert_texted_record(r, v, v);
    }
    assert!(!log_bytes(&log).contains(REDACTED));
}

#[test]
fn a_number_under_a_non_sensitive_key_is_kept_even_when_it_looks_like_a_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    append_stdin(
        &log,
        &[
            json!({"tool": "t", "args_summary": {"amount": 4_111_111_111_111_111_u64, "max_tokens": 100}}),
        ],
    );
    let r = &records(&log)[0];
    assert_eq!(
        r["args_summary"],
        json!({"amount": 4_111_111_111_111_111_u64, "max_tokens": 100})
    );
}

// --- error_message ------------------------------------------------------------------------

fn stored_error_message(log: &Path, message: &str) -> String {
    let out = cli(log)
        .args([
            "append",
            "--durability",
            "none",
            "--tool",
            "t",
            "--error-message",
            message,
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    let all = records(log);
    all.last().expect("a record")["error_message"]
        .as_str()
        .expect("a string")
        .to_owned()
}

#[test]
fn error_message_is_cut_to_500_characters_on_a_character_boundary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    assert_eq!(MAX_ERROR_MESSAGE_CHARS, 500);
    let ascii = "a".repeat(1000);
    assert_eq!(stored_error_message(&log, &ascii), "a".repeat(500));
    let accents = "é".repeat(700);
    assert_eq!(stored_error_message(&log, &accents), "é".repeat(500));
    let emoji = "x🦀".repeat(400);
    let got = stored_error_message(&log, &emoji);
    assert_eq!(got.chars().count(), 500);
    assert!(emoji.starts_with(&got));
    for n in [499, 500] {
        let exact = "b".repeat(n);
        assert_eq!(stored_error_message(&log, &exact), exact, "{n}");
    }
    assert_eq!(verify_json(&log).0, 0);
}

#[test]
fn error_message_is_redacted_before_it_is_cut_so_no_part_of_a_straddling_secret_leaks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let secret = "StraddleSecret77";
    let message = format!("{} password={secret} trailing words", "x".repeat(485));
    let got = stored_error_message(&log, &message);
    assert_eq!(got.chars().count(), 500);
    assert!(
        got.starts_with(&format!("{} password=**", "x".repeat(485))),
        "{got}"
    );
    let long_jwt = value_secrets().remove(0);
    let message = format!("{}{}", "y".repeat(470), long_jwt.text);
    let got = stored_error_message(&log, &message);
    assert!(got.ends_with("session **REDACTED** expired"), "{got}");
    let bytes = log_bytes(&log);
    assert!(!bytes.contains("Straddle"), "no prefix of the secret leaks");
    assert!(!bytes.contains(&long_jwt.secret[..20]));
}

// --- configured rules ---------------------------------------------------------------------

#[test]
fn configured_extra_keys_patterns_and_allow_list_apply_through_log_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let rules = RedactionRules {
        extra_keys: vec!["badge_id".into()],
        extra_patterns: vec![r"EMP-[0-9]{6}".into()],
        allow_keys: vec!["auth".into()],
    };
    let log = LogOptions::new(&path)
        .durability(Durability::None)
        .redaction(rules)
        .open()
        .expect("open");
    log.append(
        Event::new("mcp_call")
            .tool("workday_get_worker")
            .args(json!({
                "BadgeId": "badge-7731",
                "note": "employee EMP-123456 moved",
                "auth": "saml",
                "password": "AlsoGone99",
            }))
            .error_message("lookup of EMP-654321 failed"),
    )
    .expect("append");
    log.close().expect("close");
    let r = &records(&path)[0];
    assert_eq!(
        r["args_summary"],
        json!({
            "BadgeId": REDACTED,
            "note": "employee **REDACTED** moved",
            "auth": "saml",
            "password": REDACTED,
        })
    );
    assert_eq!(r["error_message"], "lookup of **REDACTED** failed");
    assert_absent(
        &path,
        &[
            "badge-7731".into(),
            "EMP-123456".into(),
            "EMP-654321".into(),
            "AlsoGone99".into(),
        ],
    );
}

#[test]
fn an_invalid_configured_pattern_refuses_to_open_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    for pattern in ["(unclosed", "x*"] {
        let rules = RedactionRules {
            extra_patterns: vec![pattern.into()],
            ..RedactionRules::default()
        };
        let result = LogOptions::new(&path).redaction(rules).open();
        assert!(result.is_err(), "{pattern:?} was accepted");
    }
}
