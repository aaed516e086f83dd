//! The configuration file end to end through the real binary: taxonomy and redaction reach
//! appended and proxied records, precedence flag > environment > file > default, bad files
//! are one sentence and exit 2, `config_loaded` records, `config example`/`check`, shell
//! completions and man pages.

mod common;
#[path = "mcp/session.rs"]
mod session;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use common::cli;
use serde_json::{Value, json};
use session::{Session, call_record, initialize, peer, tool_call};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/config")
        .join(name)
}

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

fn loaded(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["action"] == "config_loaded")
        .collect()
}

/// The binary with a clean environment and no `--file`.
fn bare() -> Command {
    let mut cmd = Command::cargo_bin("nexus-audit").expect("binary built");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_AUDIT_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn appended_records_get_the_configured_shard_category_and_redaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let config = fixture("sample.toml");
    cli(&log)
        .arg("--config")
        .arg(&config)
        .args(["append", "--tool", "acme_delete_user", "--args"])
        .arg(r#"{"badge_pin":"4921","note":"worker EMP-123456 left","token_count":7}"#)
        .assert()
        .success();
    let stdin = [
        json!({"tool": "acme_update_badge", "status": "error", "args_summary": {"badgePin": "7351"}}),
        json!({"tool": "workday_get_worker", "details": {"employee": "EMP-654321"}}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    cli(&log)
        .env("NEXUS_AUDIT_CONFIG", &config)
        .args(["append", "--stdin"])
        .write_stdin(stdin + "\n")
        .assert()
        .success();

    let text = std::fs::read_to_string(&log).expect("log");
    for secret in ["4921", "7351", "EMP-123456", "EMP-654321"] {
        assert!(!text.contains(secret), "{secret} reached the file:\n{text}");
    }
    let recs = records(&log);
    assert_eq!(recs.len(), 4, "{recs:#?}");
    assert_eq!(recs[0]["action"], "config_loaded");
    let first = &recs[1];
    assert_eq!(first["shard"], "acme");
    assert_eq!(first["action_category"], "ADMIN");
    assert_eq!(first["args_summary"]["badge_pin"], "**REDACTED**");
    assert_eq!(first["args_summary"]["note"], "worker **REDACTED** left");
    assert_eq!(first["args_summary"]["token_count"], 7);
    assert_eq!(recs[2]["shard"], "acme");
    assert_eq!(recs[2]["action_category"], "WRITE");
    assert_eq!(recs[2]["level"], "error");
    assert_eq!(
        recs[3]["shard"], "workday",
        "the built-in table still applies"
    );
    assert_eq!(recs[3]["level"], "info");
    cli(&log).arg("verify").assert().success();
}

#[test]
fn proxied_calls_get_the_configured_shard_category_and_redaction() {
    let config = fixture("sample.toml");
    let mut s = Session::start_with(&[], &peer(), |c| {
        c.env("NEXUS_AUDIT_CONFIG", &config);
    });
    s.send(&initialize(0, "raw-client"));
    s.recv();
    s.send(&tool_call(
        1,
        "echo",
        &json!({"badge_pin": "4921", "text": "EMP-123456"}),
    ));
    s.recv();
    let (_, recs) = s.finish();
    let text = serde_json::to_string(&recs).expect("json");
    assert!(
        !text.contains("4921") && !text.contains("EMP-123456"),
        "{text}"
    );
    assert_eq!(recs[0]["action"], "config_loaded", "{recs:#?}");
    let r = call_record(&recs, "1");
    assert_eq!(r["shard"], "echoes");
    assert_eq!(r["action_category"], "WRITE");
    assert_eq!(r["server_id"], "acme-hr");
    assert_eq!(r["user_id"], "svc-agent");
    assert_eq!(r["args_summary"]["badge_pin"], "**REDACTED**");
}

#[test]
fn config_loaded_is_written_only_when_the_configuration_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let config = dir.path().join("c.toml");
    let append = |tool: &str| {
        cli(&log)
            .arg("--config")
            .arg(&config)
            .args(["append", "--tool", tool])
            .assert()
            .success();
    };
    std::fs::write(&config, "[redaction]\nkeys = [\"badge_pin\"]\n").expect("write");
    append("a_1");
    // The same rules written another way: the same configuration.
    std::fs::write(
        &config,
        "# reformatted\n[redaction]\nkeys = [ \"badge_pin\" ]\n",
    )
    .expect("write");
    append("a_2");
    std::fs::write(&config, "[redaction]\nkeys = [\"badge_pin\", \"locker\"]\n").expect("write");
    append("a_3");
    // No configuration: nothing announced.
    cli(&log)
        .args(["append", "--tool", "a_4"])
        .assert()
        .success();

    let recs = records(&log);
    let stamps = loaded(&recs);
    assert_eq!(stamps.len(), 2, "{recs:#?}");
    assert_ne!(
        stamps[0]["details"]["config_sha256"],
        stamps[1]["details"]["config_sha256"]
    );
    let canonical = std::fs::canonicalize(&config).expect("canonical");
    assert_eq!(
        stamps[0]["details"]["source"],
        canonical.display().to_string()
    );
    assert_eq!(recs.len(), 6);
    assert_eq!(recs[3]["action"], "config_loaded", "announced before a_3");
    // `config check` prints the hash the record holds.
    let out = bare()
        .args(["config", "check"])
        .arg(&config)
        .output()
        .expect("runs");
    let hash = stamps[1]["details"]["config_sha256"]
        .as_str()
        .expect("hash");
    assert!(String::from_utf8_lossy(&out.stdout).contains(hash));
}

#[test]
fn a_first_append_that_fails_leaves_no_config_loaded_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    cli(&log)
        .arg("--config")
        .arg(fixture("sample.toml"))
        .args([
            "append",
            "--json",
            r#"{"tool":"t","timestamp":"yesterday"}"#,
        ])
        .assert()
        .code(2);
    assert!(
        !log.exists(),
        "the announcement is written with the first record or not at all"
    );
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(
        !Path::new("/etc/nexus-audit/config.toml").exists(),
        "this test needs no /etc/nexus-audit/config.toml on the machine (it would be the default configuration)"
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "file = \"from-file.jsonl\"\n").expect("write");
    let append = |setup: &dyn Fn(&mut Command)| {
        let mut cmd = bare();
        cmd.current_dir(dir.path());
        setup(&mut cmd);
        cmd.args(["append", "--tool", "t"]).assert().success();
    };
    append(&|_| {});
    append(&|c| {
        c.arg("--config").arg(&config);
    });
    append(&|c| {
        c.env("NEXUS_AUDIT_CONFIG", &config)
            .env("NEXUS_AUDIT_FILE", "from-env.jsonl");
    });
    append(&|c| {
        c.env("NEXUS_AUDIT_CONFIG", &config)
            .env("NEXUS_AUDIT_FILE", "from-env.jsonl")
            .args(["--file", "from-flag.jsonl"]);
    });
    for name in [
        "audit.jsonl",
        "from-file.jsonl",
        "from-env.jsonl",
        "from-flag.jsonl",
    ] {
        let recs = records(&dir.path().join(name));
        let calls = recs.iter().filter(|r| r["tool"] == "t").count();
        assert_eq!(calls, 1, "{name} should hold one call: {recs:#?}");
    }

    // The proxy's user: --user, then NEXUS_AUDIT_USER, then the file.
    let config = fixture("sample.toml");
    let user_of = |flags: &[&str], env: Option<&str>| {
        let mut s = Session::start_with(flags, &peer(), |c| {
            c.env("NEXUS_AUDIT_CONFIG", &config);
            if let Some(user) = env {
                c.env("NEXUS_AUDIT_USER", user);
            }
        });
        s.send(&tool_call(1, "echo", &json!({})));
        s.recv();
        let (_, recs) = s.finish();
        call_record(&recs, "1")["user_id"].clone()
    };
    assert_eq!(user_of(&[], None), "svc-agent");
    assert_eq!(user_of(&[], Some("env-user")), "env-user");
    assert_eq!(
        user_of(&["--user", "flag-user"], Some("env-user")),
        "flag-user"
    );
}

/// Runs `append` with `config` and checks it is refused in one sentence naming the file,
/// `line` and `key`, with exit 2 and no log written.
fn refused(config: &Path, line: &str, key: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let out = cli(&log)
        .arg("--config")
        .arg(config)
        .args(["append", "--tool", "t"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "one sentence: {stderr}");
    let name = config.display().to_string();
    for part in [name.as_str(), line, key] {
        assert!(stderr.contains(part), "{part:?} missing from: {stderr}");
    }
    assert!(!log.exists(), "nothing is written with a bad configuration");
    stderr
}

#[test]
fn an_unknown_key_is_one_sentence_naming_file_line_and_key() {
    let e = refused(&fixture("unknown-key.toml"), "line 4", "proxy.server");
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn a_value_of_the_wrong_type_is_one_sentence_without_the_value() {
    let e = refused(&fixture("wrong-type.toml"), "line 5", "ship.batch");
    assert!(!e.contains("five hundred"), "{e}");
}

#[test]
fn a_secret_written_inline_is_refused_without_repeating_it() {
    let e = refused(&fixture("inline-secret.toml"), "line 3", "ship.hec_token");
    assert!(!e.contains("hunter2"), "{e}");
    assert!(e.contains("_file") && e.contains("_env"), "{e}");
    // The same for every command's section, and a header that carries a credential.
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, key) in [
        ("[serve]\ntoken = \"pw-Zq81x\"\n", "serve.token"),
        ("[proxy]\napi_key = \"pw-Zq81x\"\n", "proxy.api_key"),
        ("db_password = \"pw-Zq81x\"\n", "db_password"),
        (
            "[ship]\ntoken_file = \"/run/pw-Zq81x\"\ntoken_env = \"PW_ZQ\"\n",
            "ship.token_env",
        ),
        (
            "[ship]\nheader = [\"Authorization: Bearer pw-Zq81x\"]\n",
            "ship.header",
        ),
    ] {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, text).expect("write");
        let e = refused(&config, "line", key);
        assert!(!e.contains("pw-Zq81x"), "{e}");
    }
}

#[test]
fn a_missing_configuration_file_is_one_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nowhere.toml");
    let out = cli(&dir.path().join("audit.jsonl"))
        .env("NEXUS_AUDIT_CONFIG", &missing)
        .arg("query")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()) && stderr.contains("does not exist"));
}

#[test]
fn the_example_is_accepted_by_check_and_is_the_one_in_contrib() {
    let example = bare().args(["config", "example"]).output().expect("runs");
    assert!(example.status.success());
    let contrib = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/config.toml"))
        .expect("contrib/config.toml");
    assert_eq!(
        example.stdout, contrib,
        "contrib/config.toml is `config example`"
    );
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    assert!(
        readme.contains(&format!(
            "```toml\n{}```",
            String::from_utf8_lossy(&contrib)
        )),
        "README's Configuration section shows the example as it is"
    );
    let checked = bare()
        .args(["config", "check", "-"])
        .write_stdin(example.stdout)
        .output()
        .expect("runs");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let printed = String::from_utf8_lossy(&checked.stdout);
    // What check prints is itself a configuration check accepts.
    bare()
        .args(["config", "check", "-"])
        .write_stdin(printed.as_bytes().to_vec())
        .assert()
        .success();
    assert!(printed.contains("workday_update_ = \"WRITE\""), "{printed}");
    assert!(printed.contains("config_sha256"));
}

#[test]
fn check_without_a_file_uses_the_configuration_named_by_the_environment() {
    bare()
        .env("NEXUS_AUDIT_CONFIG", fixture("sample.toml"))
        .args(["config", "check"])
        .assert()
        .success()
        .stdout(predicates::str::contains("acme_ = \"acme\""));
    // The log it prints is the one a command would use: the environment wins over the file.
    bare()
        .env("NEXUS_AUDIT_FILE", "/srv/audit/env.jsonl")
        .args(["config", "check"])
        .arg(fixture("sample.toml"))
        .assert()
        .success()
        .stdout(predicates::str::contains("file = \"/srv/audit/env.jsonl\""));
    bare()
        .args(["--config"])
        .arg(fixture("wrong-type.toml"))
        .args(["config", "check"])
        .assert()
        .code(2);
}

#[test]
fn bash_loads_the_completions_and_every_shell_gets_a_script() {
    let bin = assert_cmd::cargo::cargo_bin("nexus-audit");
    let status = StdCommand::new("bash")
        .arg("-c")
        .arg(r#"source <("$0" completions bash) && complete -p nexus-audit"#)
        .arg(&bin)
        .output()
        .expect("bash is needed for this test: install Debian's bash");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && stdout.contains("nexus-audit"),
        "bash could not load the completions: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    for shell in ["zsh", "fish", "powershell"] {
        let out = bare().args(["completions", shell]).output().expect("runs");
        assert!(out.status.success() && out.stdout.len() > 1000, "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("append"),
            "{shell}"
        );
    }
}

#[test]
fn man_pages_are_written_for_every_command_and_render() {
    let dir = tempfile::tempdir().expect("tempdir");
    bare().arg("man").arg(dir.path()).assert().success();
    for page in [
        "nexus-audit.1",
        "nexus-audit-append.1",
        "nexus-audit-proxy.1",
        "nexus-audit-config.1",
        "nexus-audit-config-check.1",
    ] {
        let path = dir.path().join(page);
        assert!(path.exists(), "{page} was not written");
        let out = StdCommand::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man is needed for this test: install Debian's man-db (scripts/test does)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("nexus-audit"),
            "man -l {page} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    bare()
        .arg("man")
        .arg(dir.path().join("missing"))
        .assert()
        .code(2);
}

#[test]
fn serve_takes_listen_and_token_file_from_the_file_unless_a_flag_sets_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = common::write_log(dir.path(), "audit.jsonl", 3);
    let config = dir.path().join("c.toml");
    let serve = |flags: &[&str]| {
        let out = cli(&log)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .args(flags)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // The file's address is used: serve refuses it without a token.
    std::fs::write(&config, "[serve]\nlisten = \"0.0.0.0:18081\"\n").expect("write");
    assert!(serve(&[]).contains("0.0.0.0:18081"));
    // A flag wins over the file.
    assert!(serve(&["--listen", "0.0.0.0:18082"]).contains("0.0.0.0:18082"));
    // The file's token file is read.
    let token = dir.path().join("missing.token");
    std::fs::write(
        &config,
        format!(
            "[serve]\nlisten = \"0.0.0.0:18081\"\ntoken_file = {:?}\n",
            token.display().to_string()
        ),
    )
    .expect("write");
    assert!(serve(&[]).contains("missing.token"));
}

#[test]
fn proxy_log_results_can_be_turned_on_by_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[proxy]\nlog_results = true\n").expect("write");
    let mut s = Session::start_with(&[], &peer(), |c| {
        c.env("NEXUS_AUDIT_CONFIG", &config);
    });
    s.send(&tool_call(1, "echo", &json!({})));
    s.recv();
    let (_, recs) = s.finish();
    assert!(
        call_record(&recs, "1")["details"]["response_sha256"].is_string(),
        "{recs:#?}"
    );
}

#[test]
fn every_record_gets_a_level_unless_the_caller_gave_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let input = [
        json!({"tool": "a", "status": "success"}),
        json!({"tool": "b", "status": "error", "error_type": "Timeout"}),
        json!({"action": "server_start"}),
        json!({"tool": "c", "status": "error", "level": "warn"}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    cli(&log)
        .args(["append", "--stdin"])
        .write_stdin(input + "\n")
        .assert()
        .success();
    let levels: Vec<Value> = records(&log).iter().map(|r| r["level"].clone()).collect();
    assert_eq!(
        levels,
        [json!("info"), json!("error"), json!("info"), json!("warn")]
    );
}

#[test]
fn rotation_and_retention_come_from_the_file_unless_a_flag_sets_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[rotation]\nmax_size = \"1KiB\"\ncompress = \"none\"\n\n[retention]\nolder_than = \"1d\"\n",
    )
    .expect("config");
    for i in 0..20 {
        cli(&log)
            .arg("--config")
            .arg(&config)
            .args(["append", "--tool", "ad_get_user", "--user"])
            .arg(format!("user-{i}@example.com"))
            .assert()
            .success();
    }
    let segments: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("audit.jsonl.0"))
        .collect();
    assert!(
        segments.len() >= 3,
        "max_size from the file rotates: {segments:?}"
    );
    assert!(
        segments.iter().all(|n| !n.contains(".zst")),
        "compress = \"none\" from the file: {segments:?}"
    );
    // A flag wins over the file: with --max-size 1MiB this append does not rotate.
    let before = segments.len();
    cli(&log)
        .arg("--config")
        .arg(&config)
        .args(["append", "--tool", "ad_get_user", "--max-size", "1MiB"])
        .assert()
        .success();
    let after = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl.0"))
        })
        .count();
    assert_eq!(after, before);
    // [retention] older_than = 1d: nothing is a day old, so a dry run prunes nothing.
    let out = cli(&log)
        .arg("--config")
        .arg(&config)
        .args(["prune", "--dry-run"])
        .output()
        .expect("prune");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("would prune audit"));
    cli(&log).arg("verify").assert().success();
}
