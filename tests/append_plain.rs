//! `append --stdin` takes plain lines on a fast path (no `Event` in between, see
//! `src/record/plain.rs`) and every other line on the per-`Event` path: through the real binary,
//! a mixed input gives the log that the library's per-`Event` appends give, byte for byte.

mod common;

use std::path::Path;

use common::cli;
use nexus_audit::{Durability, Event, LogOptions};

/// Lines of every class the fast path takes or leaves, each with its own `event_id` and
/// `timestamp` so that the log is the same whichever path writes it.
fn mixed_lines(n: usize) -> Vec<String> {
    let secret = ["ghp", "_", "R8kq2LmN4pX7vT1sW9yZ3bC6dF0gH5jK2aQe"].concat();
    let shapes: Vec<Box<dyn Fn(usize) -> String>> = vec![
        // Plain, compact, as the benchmark's events.
        Box::new(|i| {
            format!(
                r#"{{"event_id":"id-{i}","timestamp":"2026-09-21T14:13:{:02}.787630Z","level":"info","action":"mcp_call","user_id":"alice@example.com","session_id":"sess-{}","correlation_id":"req-{i:010}","server_id":"logistics-mcp","tool":"fedex_track_shipment","args_summary":{{"id":"W{i}","fields":["name","email"],"limit":{i}}},"status":"success","latency_ms":94,"response_size":13171,"filtered_size":4390}}"#,
                i % 60,
                i / 25
            )
        }),
        // Plain, with the blanks of Python's json.dumps, extra fields, nested arguments.
        Box::new(|i| {
            format!(
                r#"{{"event_id": "id-{i}", "timestamp": "2026-09-21T14:13:20Z", "tool": "ad_get_user", "args_summary": {{"user": "bob", "groups": [1, 2, {{"x": null, "y": true}}], "big": 123456789012345678901234567890}}, "team": "blue", "mock_mode": false, "reduction_percent": -{i}}}"#
            )
        }),
        // Secrets in a value, under a sensitive key, in a name/value pair, in a [K, V] list,
        // in a key, in an extra field, in error_message.
        Box::new(move |i| {
            format!(
                r#"{{"event_id":"id-{i}","timestamp":"2026-09-21T14:13:20+02:00","tool":"t","args_summary":{{"q":"connect to postgres://app:hunter2@db:5432/prod","api_key":"k{i}","params":[{{"name":"password","value":"p"}}],"env":[["TOKEN","t"]],"{secret}":1}},"password":"x","status":"error","error_message":"token={secret} failed"}}"#
            )
        }),
        // Escapes, unicode, floats, -0, a timestamp with an offset.
        Box::new(|i| {
            format!(
                r#"{{"event_id":"id-{i}","timestamp":"2026-11-22T10:05:04.5+01:00","tool":"a\"b\\c\u00e9","user_id":"é ü 日本","args_summary":{{"t":0.70,"e":1e5,"z":-0,"n":[1.50]}},"details":"line\nbreak"}}"#
            )
        }),
        // Duplicate keys, at the top and inside; null fields; an escaped key.
        Box::new(|i| {
            format!(
                r#"{{"event_id":"id-{i}","timestamp":"2026-09-21T14:13:20.000001Z","tool":"a","tool":"b","args_summary":{{"a":1,"a":2}},"user_id":null,"t\u006fol":"c","x":null}}"#
            )
        }),
        // Missing fields: the writer infers the rest; a count as a float.
        Box::new(|i| {
            format!(
                r#"  {{ "event_id" : "id-{i}" , "timestamp" : "2026-09-21T14:13:20.5Z" , "response_size" : 10.0 , "filtered_size" : 5 }}  "#
            )
        }),
    ];
    (0..n).map(|i| shapes[i % shapes.len()](i)).collect()
}

/// The log the library's per-`Event` path writes for `lines`, each filled from `defaults`.
fn per_event_log(path: &Path, lines: &[String], defaults: &Event) -> Vec<u8> {
    let log = LogOptions::new(path)
        .durability(Durability::None)
        .open()
        .expect("open log");
    for line in lines {
        let mut event = Event::from_json_str(line).expect("an event");
        event.fill_from(defaults);
        log.append(event).expect("append");
    }
    drop(log);
    std::fs::read(path).expect("read log")
}

#[test]
fn append_stdin_writes_what_per_event_appends_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = mixed_lines(600);
    let input = lines.join("\n") + "\n";

    let log = dir.path().join("stdin.jsonl");
    cli(&log)
        .args(["append", "--stdin", "--durability", "none"])
        .write_stdin(input.clone())
        .assert()
        .success();
    let expected = per_event_log(&dir.path().join("events.jsonl"), &lines, &Event::default());
    assert!(
        std::fs::read(&log).expect("read log") == expected,
        "append --stdin and per-Event appends differ"
    );

    // The same with defaults from the flags, which fill what a line lacks.
    let log = dir.path().join("stdin-defaults.jsonl");
    cli(&log)
        .args(["append", "--stdin", "--durability", "none"])
        .args([
            "--user",
            "bob",
            "--server",
            "identity-mcp",
            "--latency-ms",
            "5",
        ])
        .args(["--mock", "--level", "warn"])
        .write_stdin(input)
        .assert()
        .success();
    let defaults = Event::default()
        .user("bob")
        .server("identity-mcp")
        .latency_ms(5)
        .mock(true)
        .level("warn");
    let expected = per_event_log(&dir.path().join("events-defaults.jsonl"), &lines, &defaults);
    assert!(
        std::fs::read(&log).expect("read log") == expected,
        "append --stdin with flags and per-Event appends differ"
    );
}

/// A bad line after plain ones is named with its number and its field, as before the fast path.
#[test]
fn a_bad_line_after_plain_lines_is_named_and_stops_the_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.jsonl");
    let mut lines = mixed_lines(4);
    lines[1] = r#"{"event_id":"x","timestamp":"2026-09-21T14:13:20Z"}"#.to_owned();
    lines.push(r#"{"tool":"a","latency_ms":-1}"#.to_owned());
    let out = cli(&log)
        .args(["append", "--stdin", "--durability", "none"])
        .write_stdin(lines.join("\n") + "\n")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 5"), "{stderr}");
    assert!(
        stderr.contains("`latency_ms` must be a non-negative integer"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
