//! Checkpoints, verifier state and forward-secure sealing, end to end through the binary:
//! what the chain alone cannot catch (the newest records removed, a rewrite with every link
//! recomputed) is caught by each mechanism.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use common::{cli, lines, write_lines, write_log};
use nexus_audit::hash_line;
use serde_json::Value;

/// Runs `verify --output json` with extra arguments; returns (exit code, report).
fn verify_with(log: &Path, extra: &[&str]) -> (i32, Value) {
    let out = cli(log)
        .args(["verify", "--output", "json"])
        .args(extra)
        .output()
        .expect("run verify");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// `n` JSON events for `append --stdin`, their correlation ids starting with `tag`.
fn tool_calls(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| format!("{{\"tool\":\"ad_get_user\",\"correlation_id\":\"{tag}{i}\"}}\n"))
        .collect()
}

fn kinds(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["kind"].as_str().expect("kind").to_owned())
        .collect()
}

fn keygen(dir: &Path, name: &str, prefix: &str) -> (PathBuf, PathBuf) {
    let out = cli(&dir.join("unused.jsonl"))
        .args(["keygen", "--name", name, "--out"])
        .arg(dir.join(prefix))
        .output()
        .expect("keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = dir.join(format!("{prefix}.key"));
    let public = dir.join(format!("{prefix}.pub"));
    let printed = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(
        printed,
        std::fs::read_to_string(&public).expect("pub"),
        "prints the verifier key"
    );
    (key, public)
}

fn checkpoint(log: &Path, key: &Path, out: &Path) {
    let o = cli(log)
        .args(["checkpoint", "--key"])
        .arg(key)
        .arg("-o")
        .arg(out)
        .output()
        .expect("checkpoint");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// Changes one record and recomputes every later link: the chain verifies again.
fn rewrite(log: &Path, line: usize, from: &str, to: &str) {
    let mut ls = lines(log);
    let text = String::from_utf8(ls[line - 1].clone()).expect("utf8");
    assert!(text.contains(from), "line {line} holds {from}");
    ls[line - 1] = text.replacen(from, to, 1).into_bytes();
    for i in line..ls.len() {
        let prev = hex::encode(hash_line(&ls[i - 1]));
        let text = String::from_utf8(ls[i].clone()).expect("utf8");
        let at = text.find("\"prev_hash\":\"").expect("prev_hash") + 13;
        ls[i] = format!("{}{prev}{}", &text[..at], &text[at + 64..]).into_bytes();
    }
    write_lines(log, &ls);
}

#[test]
fn keys_are_written_private_and_never_replaced() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, public) = keygen(dir.path(), "audit.example.com/prod", "ck");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    let text = std::fs::read_to_string(&key).expect("key");
    assert!(text.starts_with("PRIVATE+KEY+audit.example.com/prod+"));
    assert!(
        std::fs::read_to_string(&public)
            .expect("pub")
            .starts_with("audit.example.com/prod+")
    );
    let again = cli(&dir.path().join("x.jsonl"))
        .args(["keygen", "--name", "other", "--out"])
        .arg(dir.path().join("ck"))
        .output()
        .expect("keygen");
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&key).expect("key"),
        text,
        "untouched"
    );
    let bad = cli(&dir.path().join("x.jsonl"))
        .args(["keygen", "--name", "has space", "--out"])
        .arg(dir.path().join("bad"))
        .output()
        .expect("keygen");
    assert_eq!(bad.status.code(), Some(2));
}

/// An independent Ed25519 implementation (Python's `cryptography`) accepts the checkpoint's
/// signature and the key hash, computed as Go's note package does.
#[test]
fn checkpoints_verify_with_an_independent_ed25519_implementation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 50);
    let (key, public) = keygen(dir.path(), "audit.example.com/prod", "ck");
    let cp = dir.path().join("cp.txt");
    checkpoint(&log, &key, &cp);
    let script = r"
import base64, hashlib, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
vkey = open(sys.argv[1]).read().strip()
name, khash, kb64 = vkey.split('+', 2)
raw = base64.b64decode(kb64)
assert raw[0] == 1, 'Ed25519 algorithm byte'
assert hashlib.sha256(name.encode() + b'\n' + raw).digest()[:4].hex() == khash, 'key hash'
msg = open(sys.argv[2], 'rb').read()
split = msg.rindex(b'\n\n')
text, sigs = msg[:split + 1], msg[split + 2:]
line = sigs.decode().rstrip('\n')
assert line.startswith('\u2014 ' + name + ' '), line
blob = base64.b64decode(line.split(' ')[2])
assert blob[:4].hex() == khash
Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[4:], text)
lines = text.decode().split('\n')
assert lines[1] == sys.argv[3], lines
assert lines[3].startswith('time ')
print('ok')
";
    // The SDK's virtual environment (set up by .ci/run) has `cryptography`; else the system's.
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python");
    let python = if venv.exists() {
        venv.into_os_string()
    } else {
        "python3".into()
    };
    let out = StdCommand::new(python)
        .args(["-c", script, s(&public), s(&cp), "50"])
        .output()
        .expect("python3 with the cryptography package must be installed for this test");
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "python cryptography rejected the checkpoint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The head in the checkpoint is the SHA-256 of the last line.
    let text = std::fs::read_to_string(&cp).expect("cp");
    let last = lines(&log).pop().expect("a line");
    let head = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, hash_line(&last));
    assert_eq!(text.lines().nth(2), Some(head.as_str()));
}

#[test]
fn dropping_the_last_lines_passes_plain_verify_but_not_a_checkpoint_or_the_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 200);
    let (key, public) = keygen(dir.path(), "audit.example.com/prod", "ck");
    let cp = dir.path().join("cp.txt");
    checkpoint(&log, &key, &cp);
    let state = dir.path().join("state.json");
    let (code, first) = verify_with(&log, &["--state", s(&state)]);
    assert_eq!((code, first["ok"].clone()), (0, Value::Bool(true)));
    assert!(state.exists(), "a clean run writes the state");

    let mut ls = lines(&log);
    ls.truncate(190);
    write_lines(&log, &ls);

    let (code, plain) = verify_with(&log, &[]);
    assert_eq!(code, 0, "the chain alone cannot see it: {plain}");
    let (code, r) = verify_with(&log, &["--checkpoint", s(&cp), "--pub", s(&public)]);
    assert_eq!((code, kinds(&r)), (1, vec!["truncated".to_owned()]), "{r}");
    assert_eq!(r["checkpoints_checked"], 1);
    let (code, r) = verify_with(&log, &["--state", s(&state)]);
    assert_eq!((code, kinds(&r)), (1, vec!["truncated".to_owned()]), "{r}");
    // The human report names the problem too.
    let out = cli(&log)
        .args(["verify", "--output", "table", "--state", s(&state)])
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("truncated") && text.contains("200 records"),
        "{text}"
    );
}

#[test]
fn a_rewrite_with_every_link_recomputed_is_caught_by_checkpoint_state_and_seal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let seal_dir = dir.path().join("seal");
    let init = cli(&log)
        .args(["seal", "init", "--out", s(&seal_dir)])
        .output()
        .expect("seal init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let input: String = (0..200)
        .map(|i| {
            format!(
                "{{\"tool\":\"ad_get_user\",\"user_id\":\"alice\",\"correlation_id\":\"r{i}\"}}\n"
            )
        })
        .collect();
    let out = cli(&log)
        .args([
            "append",
            "--stdin",
            "--durability",
            "none",
            "--seal-every",
            "20",
            "--seal-key",
        ])
        .arg(seal_dir.join("seal.key"))
        .write_stdin(input)
        .output()
        .expect("append");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify_key = seal_dir.join("seal.verify");
    let (key, public) = keygen(dir.path(), "audit.example.com/prod", "ck");
    let cp = dir.path().join("cp.txt");
    checkpoint(&log, &key, &cp);
    let state = dir.path().join("state.json");
    let (code, r) = verify_with(
        &log,
        &["--state", s(&state), "--seal-verify", s(&verify_key)],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["unsealed_records"], 0, "{r}");
    assert!(r["sealed_through_seq"].as_u64().expect("sealed") > 200);

    rewrite(&log, 50, "\"user_id\":\"alice\"", "\"user_id\":\"mallory\"");

    let (code, plain) = verify_with(&log, &[]);
    assert_eq!(code, 0, "every link was recomputed: {plain}");
    let (code, r) = verify_with(&log, &["--checkpoint", s(&cp), "--pub", s(&public)]);
    assert_eq!(
        (code, kinds(&r)),
        (1, vec!["checkpoint_mismatch".to_owned()]),
        "{r}"
    );
    let (code, r) = verify_with(&log, &["--state", s(&state)]);
    assert_eq!(
        (code, kinds(&r)),
        (1, vec!["checkpoint_mismatch".to_owned()]),
        "{r}"
    );
    let (code, r) = verify_with(&log, &["--seal-verify", s(&verify_key)]);
    assert_eq!(code, 1, "{r}");
    let k = kinds(&r);
    assert!(
        !k.is_empty() && k.iter().all(|k| k == "seal_mismatch"),
        "{r}"
    );
    // Seals before the change still vouch for what they cover.
    let first_bad = r["problems"][0]["line"].as_u64().expect("line");
    assert!(first_bad > 50, "{r}");
}

#[test]
fn a_wrong_key_an_edited_checkpoint_an_unknown_signer_and_a_bad_state_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 30);
    let (key, public) = keygen(dir.path(), "audit.example.com/prod", "ck");
    let (_, same_name_other_key) = keygen(dir.path(), "audit.example.com/prod", "other");
    let (stranger_key, _) = keygen(dir.path(), "someone.else", "stranger");
    let cp = dir.path().join("cp.txt");
    checkpoint(&log, &key, &cp);

    let (code, r) = verify_with(
        &log,
        &["--checkpoint", s(&cp), "--pub", s(&same_name_other_key)],
    );
    assert_eq!(
        (code, kinds(&r)),
        (1, vec!["unknown_key".to_owned()]),
        "{r}"
    );

    let edited = dir.path().join("edited.txt");
    let text = std::fs::read_to_string(&cp).expect("cp");
    std::fs::write(&edited, text.replacen("\n30\n", "\n29\n", 1)).expect("write");
    let (code, r) = verify_with(&log, &["--checkpoint", s(&edited), "--pub", s(&public)]);
    assert_eq!(
        (code, kinds(&r)),
        (1, vec!["bad_signature".to_owned()]),
        "{r}"
    );
    assert_eq!(r["checkpoints_checked"], 0);

    let by_stranger = dir.path().join("stranger.txt");
    checkpoint(&log, &stranger_key, &by_stranger);
    let (code, r) = verify_with(
        &log,
        &["--checkpoint", s(&by_stranger), "--pub", s(&public)],
    );
    assert_eq!(
        (code, kinds(&r)),
        (1, vec!["unknown_key".to_owned()]),
        "{r}"
    );

    // Both good and bad: each is reported, the good one counted.
    let (code, r) = verify_with(
        &log,
        &[
            "--checkpoint",
            s(&cp),
            "--checkpoint",
            s(&edited),
            "--pub",
            s(&public),
        ],
    );
    assert_eq!(
        (code, r["checkpoints_checked"].clone()),
        (1, Value::from(1)),
        "{r}"
    );

    for (args, says) in [
        (vec!["--checkpoint", s(&cp)], "--pub"),
        (
            vec!["--checkpoint", s(&cp), "--pub", s(&key)],
            "not a verifier key",
        ),
    ] {
        let out = cli(&log)
            .arg("verify")
            .args(&args)
            .output()
            .expect("verify");
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
        assert!(!err.contains("PRIVATE"), "no key material in errors: {err}");
    }

    let state = dir.path().join("state.json");
    std::fs::write(&state, "").expect("empty state");
    let out = cli(&log)
        .args(["verify", "--state", s(&state)])
        .output()
        .expect("verify");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("empty or corrupt") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(std::fs::read(&state).expect("state"), b"", "left as it was");
}

#[test]
fn incremental_verification_checks_only_new_records_and_their_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 100);
    let state = dir.path().join("state.json");
    let (code, _) = verify_with(&log, &["--state", s(&state)]);
    assert_eq!(code, 0);
    let more = tool_calls(50, "n");
    let out = cli(&log)
        .args(["append", "--stdin", "--durability", "none"])
        .write_stdin(more)
        .output()
        .expect("append");
    assert!(out.status.success());
    let (code, r) = verify_with(&log, &["--state", s(&state), "--incremental"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["records"], 50, "only the new records: {r}");
    assert_eq!(r["first_seq"], 100);
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    assert_eq!(saved["size"], 150, "the state moved forward");

    // A changed new record is found; a changed remembered head is refused.
    let more = tool_calls(50, "m");
    let out = cli(&log)
        .args(["append", "--stdin", "--durability", "none"])
        .write_stdin(more)
        .output()
        .expect("append");
    assert!(out.status.success());
    let mut ls = lines(&log);
    let changed =
        String::from_utf8(ls[179].clone())
            .expect("utf8")
            .replacen("ad_get_user", "ad_get_usEr", 1);
    ls[179] = changed.into_bytes();
    write_lines(&log, &ls);
    let (code, r) = verify_with(&log, &["--state", s(&state), "--incremental"]);
    assert_eq!(
        (code, kinds(&r)),
        (1, vec!["hash_mismatch".to_owned()]),
        "{r}"
    );
    assert_eq!(r["problems"][0]["line"], 180, "{r}");
    let saved_again: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    assert_eq!(
        saved_again["size"], 150,
        "a failed run does not move the state"
    );
    let mut ls = lines(&log);
    ls[149].push(b' ');
    write_lines(&log, &ls);
    let (code, r) = verify_with(&log, &["--state", s(&state), "--incremental"]);
    assert_eq!(code, 1);
    assert!(kinds(&r).contains(&"checkpoint_mismatch".to_owned()), "{r}");
}

/// Reads a state file as JSON.
fn state_json(state: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(state).expect("state")).expect("state is JSON")
}

/// The line numbers a state sampled.
fn sampled(state: &Path) -> Vec<u64> {
    state_json(state)["proof"]["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| s["line"].as_u64().expect("line"))
        .collect()
}

/// Changes one digit of a record's latency: the same length, other bytes, links untouched.
fn edit_in_place(ls: &mut [Vec<u8>], line: usize) {
    let l = &mut ls[line - 1];
    let at = l
        .windows(13)
        .position(|w| w == b"\"latency_ms\":")
        .expect("latency_ms")
        + 13;
    l[at] = if l[at] == b'9' { b'1' } else { l[at] + 1 };
}

fn fails_with_one_sentence(cmd: &mut assert_cmd::Command, says: &[&str]) {
    let out = cmd.output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for s in says {
        assert!(err.contains(s), "{err:?} should say {s:?}");
    }
}

/// A log of about 4 MB: its window (the last 1 MiB) leaves most records to the sample.
const BIG: u64 = 8000;

#[test]
fn the_state_keeps_a_random_sample_the_window_and_the_head_each_at_its_byte_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", BIG);
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    for state in [&a, &b] {
        let (code, r) = verify_with(&log, &["--state", s(state)]);
        assert_eq!(code, 0, "{r}");
    }
    let ls = lines(&log);
    let bytes = std::fs::read(&log).expect("log");
    let st = state_json(&a);
    assert_eq!(st["format"], 2);
    assert_eq!(st["size"], BIG);
    let proof = &st["proof"];
    assert_eq!(proof["bytes"], bytes.len() as u64);
    assert_eq!(proof["sample_size"], 1024);
    let samples = proof["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 1024);
    let mut offset = vec![0u64];
    for l in &ls {
        offset.push(offset.last().expect("offset") + l.len() as u64 + 1);
    }
    for smp in samples {
        let line = smp["line"].as_u64().expect("line") as usize;
        assert_eq!(smp["offset"], offset[line - 1], "sample at line {line}");
        assert_eq!(smp["sha256"], hex::encode(hash_line(&ls[line - 1])));
    }
    let w = &proof["window"];
    let w_at = w["offset"].as_u64().expect("window offset") as usize;
    let first = w["first_line"].as_u64().expect("first_line") as usize;
    assert_eq!(offset[first - 1], w_at as u64);
    assert!(bytes.len() - w_at <= 1 << 20 && bytes.len() - w_at > (1 << 20) - 2000);
    assert_eq!(w["sha256"], hex::encode(hash_line(&bytes[w_at..])));
    assert_eq!(proof["head_offset"], offset[BIG as usize - 1]);

    // Drawn at random: two full runs pick other records, spread over the whole log.
    let (sa, sb) = (sampled(&a), sampled(&b));
    assert_ne!(sa, sb, "each full run draws a new sample");
    for quarter in 0..4 {
        let range = (quarter * BIG / 4 + 1)..=((quarter + 1) * BIG / 4);
        let n = sa.iter().filter(|l| range.contains(l)).count();
        assert!((150..=362).contains(&n), "{n} samples in quarter {quarter}");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&a).expect("state").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn incremental_runs_catch_edits_of_old_records_in_the_window_the_sample_or_their_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", BIG);
    let state = dir.path().join("state.json");
    let all = dir.path().join("all.json");
    let clean = lines(&log);
    let (code, _) = verify_with(&log, &["--state", s(&state)]);
    assert_eq!(code, 0);
    let (code, _) = verify_with(&log, &["--state", s(&all), "--samples", "65536"]);
    assert_eq!(code, 0);
    assert_eq!(sampled(&all).len(), BIG as usize, "every record sampled");
    let window_first = state_json(&state)["proof"]["window"]["first_line"]
        .as_u64()
        .expect("first_line") as usize;
    assert!(
        window_first > 5000,
        "the window holds the last records only"
    );

    let incremental = |st: &Path| {
        verify_with(
            &log,
            &["--state", s(st), "--incremental", "--max-problems", "3"],
        )
    };
    let check = |edit: &dyn Fn(&mut Vec<Vec<u8>>), st: &Path, line: u64, why: &str| {
        let mut ls = clean.clone();
        edit(&mut ls);
        write_lines(&log, &ls);
        let (code, r) = incremental(st);
        assert_eq!(code, 1, "{why}: {r}");
        let state_problem = r["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .find(|p| p["kind"] == "checkpoint_mismatch")
            .unwrap_or_else(|| panic!("{why}: no checkpoint_mismatch in {r}"));
        assert_eq!(state_problem["line"], line, "{why}: {r}");
        // The state no longer matching, the whole log was verified: the edit is named too.
        assert!(r["problems_total"].as_u64() >= Some(2), "{why}: {r}");
        write_lines(&log, &clean);
    };
    // In the window: caught whatever the sample (at the edited record when it is sampled).
    let samples = sampled(&state);
    let edited = window_first as u64 + 10;
    check(
        &|ls| edit_in_place(ls, edited as usize),
        &state,
        if samples.contains(&edited) {
            edited
        } else {
            window_first as u64
        },
        "an edit in the window",
    );
    // Half of the old records edited in place: some sampled record is among them.
    let first_sampled = sampled(&state)[0] as usize;
    check(
        &|ls| {
            for line in (first_sampled..window_first).step_by(2) {
                edit_in_place(ls, line);
            }
        },
        &state,
        first_sampled as u64,
        "half the old records edited",
    );
    // One old record, with every record sampled: caught at that line.
    check(
        &|ls| edit_in_place(ls, 1234),
        &all,
        1234,
        "one edit, all sampled",
    );
    // A record deleted, or moved: the records after it change place.
    check(
        &|ls| {
            ls.remove(100);
        },
        &state,
        *samples
            .iter()
            .find(|l| **l > 100)
            .expect("a sample after line 100"),
        "a record deleted",
    );
    check(
        &|ls| {
            ls.remove(100);
        },
        &all,
        101,
        "a record deleted, all sampled",
    );
    check(
        &|ls| {
            let copy = ls[2000].clone();
            ls.remove(3000);
            ls.insert(2000, copy);
        },
        &all,
        2002,
        "a record moved",
    );
    // The clean log passes, and an incremental run after appends moves the proof forward.
    let (code, r) = incremental(&state);
    assert_eq!(code, 0, "{r}");
}

#[test]
fn an_edit_the_sample_misses_passes_incremental_runs_but_not_a_full_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", BIG);
    let state = dir.path().join("state.json");
    let (code, _) = verify_with(&log, &["--state", s(&state), "--samples", "1"]);
    assert_eq!(code, 0);
    let sampled_line = sampled(&state)[0];
    let line = if sampled_line == 10 { 11 } else { 10 };
    let mut ls = lines(&log);
    edit_in_place(&mut ls, line);
    write_lines(&log, &ls);
    let (code, r) = verify_with(&log, &["--state", s(&state), "--incremental"]);
    assert_eq!((code, r["records"].clone()), (0, Value::from(0)), "{r}");
    let (code, r) = verify_with(&log, &["--state", s(&state)]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(kinds(&r), vec!["hash_mismatch".to_owned()], "{r}");
}

#[test]
fn a_record_deleted_after_every_sampled_one_is_caught_by_the_head_moving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", BIG);
    let state = dir.path().join("state.json");
    // One sample, drawn until it lies before line 7000 (7 in 8 draws do).
    let sampled_line = loop {
        let (code, _) = verify_with(&log, &["--state", s(&state), "--samples", "1"]);
        assert_eq!(code, 0);
        let line = sampled(&state)[0];
        if line < 7000 {
            break line;
        }
    };
    let mut ls = lines(&log);
    ls.remove(sampled_line as usize); // the line after the sampled one
    write_lines(&log, &ls);
    let (code, r) = verify_with(&log, &["--state", s(&state), "--incremental"]);
    assert_eq!(code, 1, "{r}");
    let p = r["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .find(|p| p["kind"] == "checkpoint_mismatch")
        .unwrap_or_else(|| panic!("no checkpoint_mismatch in {r}"));
    assert_eq!(p["line"], BIG - 1, "{r}");
    assert!(
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("remembers as line {BIG}"))),
        "{r}"
    );
    assert!(kinds(&r).contains(&"seq_gap".to_owned()), "{r}");
}

#[test]
fn incremental_runs_move_the_sample_forward_over_new_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 1000);
    let state = dir.path().join("state.json");
    let (code, _) = verify_with(&log, &["--state", s(&state), "--samples", "100"]);
    assert_eq!(code, 0);
    let before = sampled(&state);
    assert_eq!(before.len(), 100);
    let out = cli(&log)
        .args(["append", "--stdin", "--durability", "none"])
        .write_stdin(tool_calls(1000, "n"))
        .output()
        .expect("append");
    assert!(out.status.success());
    let (code, r) = verify_with(&log, &["--state", s(&state), "--incremental"]);
    assert_eq!((code, r["records"].clone()), (0, Value::from(1000)), "{r}");
    let after = sampled(&state);
    assert_eq!(after.len(), 100);
    let new = after.iter().filter(|l| **l > 1000).count();
    assert!(
        (20..=80).contains(&new),
        "{new} of 100 samples among the new half"
    );
    assert!(
        after
            .iter()
            .filter(|l| **l <= 1000)
            .all(|l| before.contains(l)),
        "old records stay only if they were sampled before"
    );
    let ls = lines(&log);
    let st = state_json(&state);
    for smp in st["proof"]["samples"].as_array().expect("samples") {
        let line = smp["line"].as_u64().expect("line") as usize;
        assert_eq!(smp["sha256"], hex::encode(hash_line(&ls[line - 1])));
    }
    assert_eq!(st["size"], 2000);
    // --samples belongs to full runs.
    fails_with_one_sentence(
        cli(&log).args([
            "verify",
            "--state",
            s(&state),
            "--incremental",
            "--samples",
            "10",
        ]),
        &["--samples", "100 samples"],
    );
    for bad in ["0", "65537"] {
        fails_with_one_sentence(
            cli(&log).args(["verify", "--state", s(&state), "--samples", bad]),
            &["between 1 and 65536"],
        );
    }
}

#[test]
fn an_old_state_file_is_read_by_a_full_run_and_refused_by_an_incremental_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "audit.jsonl", 50);
    let ls = lines(&log);
    let state = dir.path().join("state.json");
    let old = format!(
        "{{\n  \"size\": 50,\n  \"head\": \"{}\",\n  \"seq\": 49,\n  \"verified_at\": \"2026-11-01T00:00:00.000000Z\"\n}}",
        hex::encode(hash_line(&ls[49]))
    );
    std::fs::write(&state, &old).expect("old state");
    fails_with_one_sentence(
        cli(&log).args(["verify", "--state", s(&state), "--incremental"]),
        &["earlier nexus-audit", "without --incremental"],
    );
    assert_eq!(
        std::fs::read_to_string(&state).expect("state"),
        old,
        "left as it was"
    );

    // A full run compares the old state's head, and writes the new format.
    let mut cut = ls.clone();
    cut.truncate(40);
    write_lines(&log, &cut);
    let (code, r) = verify_with(&log, &["--state", s(&state)]);
    assert_eq!((code, kinds(&r)), (1, vec!["truncated".to_owned()]), "{r}");
    write_lines(&log, &ls);
    let (code, r) = verify_with(&log, &["--state", s(&state)]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(state_json(&state)["format"], 2);
    let (code, r) = verify_with(&log, &["--state", s(&state), "--incremental"]);
    assert_eq!((code, r["records"].clone()), (0, Value::from(0)), "{r}");

    // A newer format is refused, not misread.
    let newer =
        std::fs::read_to_string(&state)
            .expect("state")
            .replacen("\"format\":2", "\"format\":3", 1);
    std::fs::write(&state, newer).expect("newer state");
    fails_with_one_sentence(
        cli(&log).args(["verify", "--state", s(&state)]),
        &["newer nexus-audit"],
    );
}

fn seal_init(dir: &Path) -> (PathBuf, PathBuf) {
    let seal_dir = dir.join("seal");
    let out = cli(&dir.join("x.jsonl"))
        .args(["seal", "init", "--out", s(&seal_dir)])
        .output()
        .expect("seal init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (seal_dir.join("seal.key"), seal_dir.join("seal.verify"))
}

fn epoch(key: &Path) -> u64 {
    let k: Value = serde_json::from_slice(&std::fs::read(key).expect("key")).expect("json");
    k["epoch"].as_u64().expect("epoch")
}

fn seal_count(log: &Path) -> u64 {
    lines(log)
        .iter()
        .filter(|l| serde_json::from_slice::<Value>(l).is_ok_and(|v| v["action"] == "seal"))
        .count() as u64
}

#[test]
fn many_processes_sealing_one_log_keep_one_gapless_run_of_epochs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let (key, verify_key) = seal_init(dir.path());
    let children: Vec<_> = (0..4)
        .map(|p| {
            let input = tool_calls(150, &format!("p{p}-"));
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("nexus-audit"));
            cmd.arg("--file")
                .arg(&log)
                .args(["append", "--stdin", "--durability", "none", "--batch", "7"])
                .args(["--seal-every", "10", "--seal-key"])
                .arg(&key)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null());
            let mut child = cmd.spawn().expect("spawn");
            let mut stdin = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                use std::io::Write as _;
                stdin.write_all(input.as_bytes()).expect("write");
            });
            child
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success());
    }
    let (code, r) = verify_with(&log, &["--seal-verify", s(&verify_key)]);
    assert_eq!(code, 0, "{r}");
    let seals = seal_count(&log);
    assert!(seals >= 50, "about one seal per 10 records: {seals}");
    assert_eq!(epoch(&key), seals, "the key moved once per seal");
    assert!(
        r["unsealed_records"].as_u64().expect("unsealed") < 10,
        "{r}"
    );
}

#[test]
fn a_crash_between_seal_and_key_update_is_finished_by_the_next_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let (key, verify_key) = seal_init(dir.path());
    let append = |tag: &str, crash: Option<&str>| {
        let mut cmd = cli(&log);
        cmd.args([
            "append",
            "--stdin",
            "--durability",
            "none",
            "--seal-every",
            "25",
        ])
        .arg("--seal-key")
        .arg(&key)
        .write_stdin(tool_calls(60, tag));
        if let Some(var) = crash {
            cmd.env(var, "1");
        }
        cmd.output().expect("append")
    };
    assert!(append("a", None).status.success());
    let before = epoch(&key);

    // Killed after the seals reached the log, before the key moved.
    let out = append("b", Some("NEXUS_AUDIT_TEST_CRASH_AFTER_SEAL"));
    assert!(
        !out.status.success(),
        "the test hook aborts (it needs the binary built with the fault-injection feature, as `cargo test` builds it)"
    );
    let pending: Value = serde_json::from_slice(&std::fs::read(&key).expect("key")).expect("json");
    assert!(pending["pending"].is_object(), "{pending}");
    assert_eq!(epoch(&key), before, "the key has not moved yet");
    assert!(append("c", None).status.success());
    assert_eq!(
        epoch(&key),
        seal_count(&log),
        "the next writer moved the key past them"
    );
    let (code, r) = verify_with(&log, &["--seal-verify", s(&verify_key)]);
    assert_eq!(code, 0, "{r}");

    // Killed after marking the seals pending, before they reached the log.
    let out = append("d", Some("NEXUS_AUDIT_TEST_CRASH_BEFORE_SEAL"));
    assert!(!out.status.success());
    let seals = seal_count(&log);
    assert!(append("e", None).status.success());
    assert!(seal_count(&log) > seals);
    assert_eq!(epoch(&key), seal_count(&log), "no epoch was skipped");
    let (code, r) = verify_with(&log, &["--seal-verify", s(&verify_key)]);
    assert_eq!(code, 0, "{r}");
}

/// Random single-bit flips anywhere in a 2,000-record log, the last line included: each one
/// is caught once a checkpoint vouches for the log's end. 2,000 flips through the library, a
/// few through the binary.
#[test]
fn every_bit_flip_is_detected_with_a_checkpoint() {
    use nexus_audit::Checkpoint;
    use nexus_audit::SignerKey;
    use nexus_audit::{Durability, Event, LogOptions, Snapshot, Verifier};

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let writer = LogOptions::new(&log)
        .durability(Durability::None)
        .open()
        .expect("open");
    writer
        .append_batch(
            (0..2000)
                .map(|i| {
                    Event::new("mcp_call")
                        .tool("ad_get_user")
                        .correlation(format!("{i}"))
                })
                .collect(),
        )
        .expect("append");
    writer.close().expect("close");
    let signer = SignerKey::generate("flips").expect("key");
    let note = Checkpoint::of(&Snapshot::open(&log).expect("snapshot"), "flips")
        .expect("checkpoint")
        .sign(&signer)
        .expect("sign");
    let verifier = Verifier::new()
        .max_problems(5)
        .threads(1)
        .checkpoint("cp", note.clone())
        .key(signer.verifier());
    let original = std::fs::read(&log).expect("read");
    let bits = original.len() as u64 * 8;

    let flipped = dir.path().join("flipped.jsonl");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut missed = Vec::new();
    for n in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // The last few flips land in the last line, which only the checkpoint covers.
        let bit = if n < 20 {
            bits - 1 - (x % 400)
        } else {
            x % bits
        };
        let mut data = original.clone();
        data[(bit / 8) as usize] ^= 1 << (bit % 8);
        std::fs::write(&flipped, &data).expect("write");
        let snapshot = Snapshot::open(&flipped).expect("snapshot");
        let report = verifier.run(&snapshot).expect("verify");
        if report.ok {
            missed.push(bit);
        }
    }
    assert!(missed.is_empty(), "undetected flips at bits {missed:?}");

    let cp = dir.path().join("cp.txt");
    std::fs::write(&cp, &note).expect("cp");
    let public = dir.path().join("k.pub");
    std::fs::write(&public, signer.verifier().encode()).expect("pub");
    for bit in [0, bits / 2, bits - 9, bits - 200] {
        let mut data = original.clone();
        data[(bit / 8) as usize] ^= 1 << (bit % 8);
        std::fs::write(&flipped, &data).expect("write");
        let (code, r) = verify_with(&flipped, &["--checkpoint", s(&cp), "--pub", s(&public)]);
        assert_eq!(code, 1, "bit {bit}: {r}");
    }
}
