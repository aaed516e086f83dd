//! Redaction (SPEC §5) end to end: what reaches the log file, through the binary and through
//! the library. Every secret used here is checked to appear nowhere in the file's bytes.

mod common;

use std::path::Path;

use common::{cli, lines, verify_json};
use nexus_audit::{Durability, Event, LogOptions, RedactionRules};
use nexus_audit::{MAX_ERROR_MESSAGE_CHARS, REDACTED};
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
    value: String,
    text: String,
    redacted: String,
}

fn secret(name: &'static str, secret: String, text: &str) -> Secret {
    Secret {
        name,
        text: text.replace("{}", &secret),
        redacted: text.replace("{}", REDACTED),
        value: secret,
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
    pem_body.clone_into(&mut pem_secret.value);
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
    let all: Vec<String> = secrets.iter().map(|s| s.value.clone()).collect();
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
                assert!(!r[field].as_str().unwrap_or("").contains(&s.value));
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
    let all: Vec<String> = secrets.iter().map(|s| s.value.clone()).collect();
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
    let all: Vec<String> = secrets.iter().map(|s| s.value.clone()).collect();
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
    assert!(!bytes.contains(&long_jwt.value[..20]));
}

// --- configured rules ---------------------------------------------------------------------

#[test]
fn configured_extra_keys_patterns_and_allow_list_apply_through_log_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let rules = RedactionRules::new()
        .extra_key("badge_id")
        .extra_pattern(r"EMP-[0-9]{6}")
        .allow_key("auth");
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
        let rules = RedactionRules::new().extra_pattern(pattern);
        let result = LogOptions::new(&path).redaction(rules).open();
        assert!(result.is_err(), "{pattern:?} was accepted");
    }
}

// --- issue 9, item 7: the classes the attack showed ---------------------------------------

/// Appends each object with `append --json`, one process each, and returns the records.
fn append_json_each(path: &Path, objects: &[Value]) -> Vec<Value> {
    for o in objects {
        let out = cli(path)
            .args(["append", "--durability", "none", "--json"])
            .arg(o.to_string())
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    records(path)
}

/// Strings and what each must become in the log, appended through `--stdin` inside
/// `args_summary`, `details`, `error_message` and an extra field; then every `secret` is checked
/// to be absent from the file's bytes and the chain to verify.
fn assert_texts_redacted(cases: &[(String, String)], secrets: &[String]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let events: Vec<Value> = cases
        .iter()
        .map(|(text, _)| {
            json!({
                "tool": "t",
                "args_summary": {"q": text, "list": [{"deep": text}]},
                "details": {"why": [text]},
                "error_message": text,
                "comment": text,
            })
        })
        .collect();
    append_stdin(&log, &events);
    let stored = records(&log);
    assert_eq!(stored.len(), cases.len());
    for (r, (text, want)) in stored.iter().zip(cases) {
        assert_eq!(r["args_summary"]["q"], want.as_str(), "{text:?}");
        assert_eq!(
            r["args_summary"]["list"][0]["deep"],
            want.as_str(),
            "{text:?}"
        );
        assert_eq!(r["details"]["why"][0], want.as_str(), "{text:?}");
        assert_eq!(r["error_message"], want.as_str(), "{text:?}");
        assert_eq!(r["comment"], want.as_str(), "{text:?}");
    }
    assert_absent(&log, secrets);
}

/// `(text with {} for the secret, secret)` → `(text, text with REDACTED)`.
fn cases(pairs: &[(&str, &str)]) -> (Vec<(String, String)>, Vec<String>) {
    let cases = pairs
        .iter()
        .map(|(t, s)| (t.replace("{}", s), t.replace("{}", REDACTED)))
        .collect();
    let secrets = pairs.iter().map(|(_, s)| (*s).to_owned()).collect();
    (cases, secrets)
}

#[test]
fn ssn_beside_other_digit_groups_is_redacted_through_the_binary() {
    let (cases, secrets) = cases(&[
        ("member {} 7781", "078-05-1120"),
        ("ids 45 {} 0042 11", "219-09-9999"),
        ("ssn:{};ref 8 8 8 8", "536-22-1234"),
        ("2026 11 29 {}", "401-36-8870"),
        ("{}, 7 7 7 7 7", "401-36-8871"),
    ]);
    assert_texts_redacted(&cases, &secrets);
}

#[test]
fn url_passwords_with_reserved_characters_and_spaces_are_redacted_through_the_binary() {
    let (cases, secrets) = cases(&[
        ("amqps://svc:{}@broker.internal:5671/vh", "Zq/7?x#w"),
        ("sftp://ann:{}@files.corp.example/in ok", "s@fe/P4ss"),
        (
            "jdbc:postgresql://app:{}@pg.local:5432/db",
            "with space@and/slash",
        ),
        (
            "mongodb+srv://u:{}@cluster0.x.mongodb.net/?retryWrites=true",
            "a#b@c?d",
        ),
        ("url=\"https://u:{}@h.example\"", "q w e r"),
    ]);
    assert_texts_redacted(&cases, &secrets);
}

#[test]
fn urls_without_a_password_are_kept_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let kept = [
        "http://127.0.0.1:8080/reset?user=ann@corp.example",
        "https://grafana.corp.example:3000 is down, ping ops@corp.example",
        "ssh://git@github.com/org/repo.git",
    ];
    let events: Vec<Value> = kept
        .iter()
        .map(|t| json!({"tool": "t", "args_summary": {"q": t}}))
        .collect();
    append_stdin(&log, &events);
    for (r, t) in records(&log).iter().zip(kept) {
        assert_eq!(r["args_summary"]["q"], t);
    }
}

#[test]
fn name_value_text_forms_are_redacted_through_the_binary() {
    let (cases, secrets) = cases(&[
        ("GITHUB_TOKEN_RO={} make", "tkRo81QzvB"),
        ("env OPENAI_API_KEY_2={}", "keyTwo72Lm"),
        ("passphrase2: {}", "Pp2WwQ81"),
        ("Secrets_Manager_Secret_Value={}", "smv-91-Xq"),
        ("config[:db_password] => '{}'", "ru by pw"),
        ("user[password]={}&commit=Save", "form-pw-9"),
        ("{'client_secret' => \"{}\"}", "py dict"),
        ("refresh_token:\n    {}", "rT0k3nLine"),
        ("password =\r\n\t{} rest", "crlfPw77"),
        ("db_passwords:\n  - {}\nhost: db", "yaml-item-1"),
    ]);
    assert_texts_redacted(&cases, &secrets);
}

#[test]
fn serialized_json_with_an_array_or_object_secret_is_redacted_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let texts = [
        (
            r#"{"apiKeys": ["ak-one-11", "ak-two-22"], "region": "eu"}"#,
            r#"{"apiKeys": **REDACTED**, "region": "eu"}"#,
        ),
        (
            r#"{"credentials":{"user":"svc","pass":"cr-obj-33"},"n":2}"#,
            r#"{"credentials":**REDACTED**,"n":2}"#,
        ),
        (
            r#"{\"private_key\": {\"d\": \"pk-esc-44\", \"k\": [\"]\"]}, \"kid\": \"k1\"}"#,
            r#"{\"private_key\": **REDACTED**, \"kid\": \"k1\"}"#,
        ),
    ];
    let events: Vec<Value> = texts
        .iter()
        .map(|(t, _)| json!({"tool": "t", "args_summary": {"body": t}}))
        .collect();
    append_stdin(&log, &events);
    for (r, (_, want)) in records(&log).iter().zip(&texts) {
        assert_eq!(r["args_summary"]["body"], *want);
    }
    assert_absent(
        &log,
        &[
            "ak-one-11".into(),
            "ak-two-22".into(),
            "cr-obj-33".into(),
            "pk-esc-44".into(),
        ],
    );
}

#[test]
fn name_value_pair_arrays_are_redacted_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let stored = append_json_each(
        &log,
        &[
            json!({"tool": "ecs_register_task", "args_summary": {"environment": [
                {"name": "DATABASE_PASSWORD", "value": "nv-pw-01"},
                {"name": "LOG_LEVEL", "value": "debug"},
            ]}}),
            json!({"tool": "ec2_create_tags", "args_summary": {"Tags": [
                {"Key": "SlackWebhookSecret", "Value": "nv-pw-02"},
                {"Key": "team", "Value": "blue"},
            ]}}),
            json!({"tool": "cfn_create_stack", "args_summary": {"Parameters": [
                {"ParameterKey": "DbMasterPassword", "ParameterValue": "nv-pw-03"},
            ]}}),
            json!({"tool": "har_replay", "args_summary": {"headers": [
                {"NAME": "X-Auth-Token", "VALUE": ["nv-pw-04"]},
                {"key": "stripeSecret", "val": {"live": "nv-pw-05"}},
            ]}}),
            json!({"tool": "http_call", "args_summary": {"headers": [
                ["Authorization", "Token nv-pw-06"],
                ["Content-Type", "application/json"],
                ["cookie", "sid=nv-pw-07"],
            ]}}),
            json!({"tool": "metrics", "args_summary": {"series": [
                {"name": "prompt_token_count", "value": 812},
                {"name": "token_count", "value": "nv-pw-08"},
            ]}}),
        ],
    );
    let a = |i: usize| &stored[i]["args_summary"];
    assert_eq!(
        a(0)["environment"],
        json!([{"name": "DATABASE_PASSWORD", "value": REDACTED}, {"name": "LOG_LEVEL", "value": "debug"}])
    );
    assert_eq!(
        a(1)["Tags"],
        json!([{"Key": "SlackWebhookSecret", "Value": REDACTED}, {"Key": "team", "Value": "blue"}])
    );
    assert_eq!(a(2)["Parameters"][0]["ParameterValue"], REDACTED);
    assert_eq!(a(3)["headers"][0]["VALUE"], REDACTED);
    assert_eq!(a(3)["headers"][1]["val"], REDACTED);
    assert_eq!(
        a(4)["headers"],
        json!([
            ["Authorization", REDACTED],
            ["Content-Type", "application/json"],
            ["cookie", REDACTED]
        ])
    );
    assert_eq!(
        a(5)["series"],
        json!([{"name": "prompt_token_count", "value": 812}, {"name": "token_count", "value": REDACTED}])
    );
    let secrets: Vec<String> = (1..=8).map(|i| format!("nv-pw-0{i}")).collect();
    assert_absent(&log, &secrets);
}

#[test]
fn widely_used_token_shapes_are_redacted_through_the_binary() {
    let openai = joined(&["sk-", "proj-", "R4nd0mPr0j3ctK3yV4lu3_9xQ-Lm2Zt7"]);
    let openai_svc = joined(&["sk-", "svcacct-", "Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8"]);
    let openai_legacy = joined(&["sk-", "Zx9Cv8Bn7Mm6Ll5Kk4Jj3Hh2Gg1Ff0Dd"]);
    let anthropic = joined(&["sk-", "ant-", "admin01-", "Qq1Ww2Ee3Rr4Tt5Yy6Uu7Ii8Oo9Pp0"]);
    let gitlab = joined(&["glpat-", "Yy7Uu6Ii5Oo4Pp3Aa2Ss1D"]);
    let gitlab_deploy = joined(&["gldt-", "Mm2Nn3Bb4Vv5Cc6Xx7Zz8L"]);
    let slack_app = joined(&["xapp-", "1-A07XYZ-6789012345-0f1e2d3c4b5a69788796"]);
    let slack_hook_path = joined(&["T01ABCDEF/B02GHIJKL/", "q1W2e3R4t5Y6u7I8o9P0a1S2"]);
    let whsec = joined(&["whsec_", "Nq8mZ3kP0wR6tY2uI4oA7sD9fG1hJ5kL"]);
    let amz = "4f8d2a9c0b1e7f6a5d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e";
    let goog = "7a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let sas = "Zk3mQ9%2Bp0wR6tY2uI4oA7sD9fG1hJ5%3D";
    let (cases, secrets) = cases(&[
        ("using {} for embeddings", &openai),
        ("svc key {}", &openai_svc),
        ("old key {}", &openai_legacy),
        ("claude via {}", &anthropic),
        (
            "git clone https://oauth2:{}@gitlab.example.com/g/r.git",
            &gitlab,
        ),
        ("deploy token {}.", &gitlab_deploy),
        ("socket mode with {}", &slack_app),
        (
            "notify https://hooks.slack.com/services/{}",
            &slack_hook_path,
        ),
        ("stripe listen --secret {}", &whsec),
        (
            "GET https://b.s3.us-east-1.amazonaws.com/o.pdf?X-Amz-Date=20261130T101010Z&X-Amz-Signature={}&X-Amz-Expires=900",
            amz,
        ),
        (
            "https://storage.googleapis.com/b/o.csv?X-Goog-Signature={}",
            goog,
        ),
        (
            "https://a.blob.core.windows.net/c/b.zip?sv=2024-05-04&sp=r&sig={}",
            sas,
        ),
        ("Cookie: {}", "session=ck-val-1; theme=dark"),
        (
            "HTTP/1.1 200 OK\nSet-Cookie: {}\nServer: x",
            "__Host-sid=ck-val-2; Secure; Path=/",
        ),
    ]);
    assert_texts_redacted(&cases, &secrets);
}

#[test]
fn metadata_about_secrets_is_kept_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let args = json!({
        "usage": {"promptTokenCount": 812, "candidatesTokenCount": 96, "totalTokenCount": 908},
        "token_count": 1024,
        "auth_required": false,
        "isPasswordSet": true,
        "password_changed_at": "2026-11-02T08:15:00Z",
        "password_expires_at": 1_767_225_600,
        "card_type": "mastercard",
        "card_brand": "Visa",
        "secret_version": 7,
        "token_type": "Bearer",
        "auth_method": "oauth2",
        "access_token_ttl": "15m",
        "api_key_id": "3f2b8c1e-9d4a-4f6b-8e2c-7a1d5b9c0e4f",
        "token_endpoint": "https://login.example.com/oauth2/v2.0/token",
        "otp_length": 6,
        "pin_attempts_remaining": 2,
    });
    let kept = args.clone();
    let stored = append_json_each(
        &log,
        &[json!({"tool": "login", "args_summary": args, "token_count": 12, "auth_required": true})],
    );
    assert_eq!(stored[0]["args_summary"], kept);
    assert_eq!(stored[0]["token_count"], 12);
    assert_eq!(stored[0]["auth_required"], true);
    assert!(!log_bytes(&log).contains(REDACTED));
}

#[test]
fn metadata_names_with_a_secret_shaped_value_are_still_redacted_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let stored = append_json_each(
        &log,
        &[json!({"tool": "t", "args_summary": {
            "token_count": "md-sec-1 x",
            "auth_required": "md-sec-2",
            "password_changed_at": {"value": "md-sec-3"},
            "card_type": "4111111111111111",
            "dob_updated_at": "1984-07-02",
            "text": "token_count=md-sec-4 auth_required=md-sec-5",
        }})],
    );
    let a = &stored[0]["args_summary"];
    for key in [
        "token_count",
        "auth_required",
        "password_changed_at",
        "card_type",
        "dob_updated_at",
    ] {
        assert_eq!(a[key], REDACTED, "{key}");
    }
    assert_eq!(
        a["text"],
        "token_count=**REDACTED** auth_required=**REDACTED**"
    );
    assert_absent(
        &log,
        &[
            "md-sec-1".into(),
            "md-sec-2".into(),
            "md-sec-3".into(),
            "md-sec-4".into(),
            "md-sec-5".into(),
            "4111111111111111".into(),
            "1984-07-02".into(),
        ],
    );
}

/// Fails on an object with two equal keys anywhere in `line` (`serde_json` keeps the last).
fn assert_no_duplicate_keys(line: &[u8]) {
    use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(UniqueVisitor)
        }
    }
    struct UniqueVisitor;
    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(A::Error::custom(format!("duplicate key {key:?}")));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
    }
    if let Err(e) = serde_json::from_slice::<Unique>(line) {
        panic!("{e}: {}", String::from_utf8_lossy(line));
    }
}

#[test]
fn keys_that_redact_to_the_same_text_never_duplicate_a_key_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let gh = |tail: &str| joined(&["ghp", "_", "Dup1icateK3yT0kenAbCdEf", tail]);
    let (k1, k2, k3) = (gh("01"), gh("02"), gh("03"));
    let event = json!({
        "tool": "t",
        format!("note {k1}"): 1,
        format!("note {k2}"): 2,
        "note **REDACTED**": 3,
        "args_summary": {
            "password=dupA1": "x",
            "password=dupB2": "y",
            "nested": [{ k1.clone(): "a", k2.clone(): "b", k3.clone(): "c" }],
        },
    });
    append_json_each(&log, std::slice::from_ref(&event));
    append_stdin(&log, &[event]);
    let raw = lines(&log);
    assert_eq!(raw.len(), 2);
    for line in &raw {
        assert_no_duplicate_keys(line);
    }
    for r in records(&log) {
        let top: Vec<&str> = r
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("note"))
            .collect();
        assert_eq!(
            top,
            [
                "note **REDACTED** (2)",
                "note **REDACTED** (3)",
                "note **REDACTED**"
            ]
        );
        assert_eq!(r["note **REDACTED**"], 3);
        let a = &r["args_summary"];
        assert_eq!(a["password=**REDACTED**"], REDACTED);
        assert_eq!(a["password=**REDACTED** (2)"], REDACTED);
        assert_eq!(
            a["nested"][0],
            json!({REDACTED: "a", "**REDACTED** (2)": "b", "**REDACTED** (3)": "c"})
        );
    }
    assert_absent(&log, &[k1, k2, k3, "dupA1".into(), "dupB2".into()]);
}

#[test]
fn a_token_used_as_a_url_user_is_redacted_with_the_password_through_the_binary() {
    let token = joined(&["ghp", "_", "Us3rT0kenInUrlAbCdEfGhIjKlMnOpQr12"]);
    let text = format!("git clone https://{token}:x-oauth-basic@github.com/o/r.git");
    let want = "git clone https://**REDACTED**:**REDACTED**@github.com/o/r.git".to_owned();
    assert_texts_redacted(&[(text, want)], &[token, "x-oauth-basic".into()]);
}
