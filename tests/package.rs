//! Packaging: the systemd units pass `systemd-analyze verify` and carry the hardening the
//! project promises; the Debian package (scripts/package, cargo-deb) holds what README says,
//! installs with `dpkg -i`, runs, and is removed again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const UNITS: [&str; 2] = ["nexus-audit-serve.service", "nexus-audit-ship.service"];

fn run(cmd: &mut Command, missing: &str) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{missing} ({e})"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value of each `key=` line of a unit.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = assert_cmd::cargo::cargo_bin("nexus-audit");
    let mut paths = Vec::new();
    for unit in UNITS {
        let text =
            std::fs::read_to_string(root().join("contrib/systemd").join(unit)).expect("unit file");
        // verify checks that ExecStart's program exists: point it at the binary just built.
        let path = dir.path().join(unit);
        std::fs::write(
            &path,
            text.replace("/usr/bin/nexus-audit", &bin.display().to_string()),
        )
        .expect("write");
        paths.push(path);
    }
    let out = run(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(&paths),
        "systemd-analyze is needed for this test: install Debian's systemd (scripts/test does)",
    );
    // NOTE: verify exits 0 on an unknown key and only says so on stderr, so stderr must be
    // empty too.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn systemd_units_are_hardened_and_write_nowhere_but_their_own_directories() {
    for unit in UNITS {
        let text =
            std::fs::read_to_string(root().join("contrib/systemd").join(unit)).expect("unit file");
        let user = values(&text, "User");
        assert!(
            values(&text, "DynamicUser") == ["yes"] || user == ["nexus-audit"],
            "{unit}: a dedicated user"
        );
        for (key, value) in [
            ("ProtectSystem", "strict"),
            ("NoNewPrivileges", "yes"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("CapabilityBoundingSet", ""),
            ("UMask", "0077"),
        ] {
            assert_eq!(values(&text, key), [value], "{unit}: {key}");
        }
        for path in values(&text, "ReadWritePaths") {
            assert_eq!(
                path, "/var/log/nexus-audit",
                "{unit}: writes only the log's directory"
            );
        }
    }
}

/// Removes the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-r", "nexus-audit"]).output();
    }
}

#[test]
fn the_debian_package_installs_runs_verify_and_is_removed() {
    let is_root = run(Command::new("id").arg("-u"), "id is needed");
    assert_eq!(
        text(&is_root.stdout).trim(),
        "0",
        "this test installs a package with dpkg -i: run it as root (CI does)"
    );
    run(
        Command::new("cargo-deb").arg("--version"),
        "cargo-deb is needed for this test: run cargo install cargo-deb --locked (scripts/test does)",
    );
    let built = run(
        Command::new(root().join("scripts/package")).current_dir(root()),
        "scripts/package could not be started",
    );
    assert!(
        built.status.success(),
        "scripts/package failed: {}",
        text(&built.stderr)
    );
    let deb = text(&built.stdout)
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap_or_else(|| panic!("scripts/package printed no .deb: {}", text(&built.stdout)));
    let deb = if deb.is_absolute() {
        deb
    } else {
        root().join(deb)
    };

    let contents = text(
        &run(
            Command::new("dpkg-deb").arg("-c").arg(&deb),
            "dpkg-deb is needed",
        )
        .stdout,
    );
    for file in [
        "./usr/bin/nexus-audit",
        "./usr/share/man/man1/nexus-audit.1.gz",
        "./usr/share/man/man1/nexus-audit-append.1.gz",
        "./usr/share/man/man1/nexus-audit-serve.1.gz",
        "./usr/share/bash-completion/completions/nexus-audit",
        "./usr/share/zsh/vendor-completions/_nexus-audit",
        "./usr/share/fish/vendor_completions.d/nexus-audit.fish",
        "./usr/lib/systemd/system/nexus-audit-serve.service",
        "./usr/lib/systemd/system/nexus-audit-ship.service",
        "./usr/lib/sysusers.d/nexus-audit.conf",
        "./usr/lib/tmpfiles.d/nexus-audit.conf",
        "./usr/share/nexus-audit/config.toml",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(file)),
            "{file} missing from the package:\n{contents}"
        );
    }

    let install = run(
        Command::new("dpkg").arg("-i").arg(&deb),
        "dpkg is needed for this test (Debian)",
    );
    let _installed = Installed;
    assert!(
        install.status.success(),
        "dpkg -i failed: {}",
        text(&install.stderr)
    );
    let bin = Path::new("/usr/bin/nexus-audit");
    let version = run(Command::new(bin).arg("--version"), "the installed binary");
    assert!(version.status.success());
    assert_eq!(
        text(&version.stdout).trim(),
        format!("nexus-audit {}", env!("CARGO_PKG_VERSION"))
    );
    let verify = run(
        Command::new(bin)
            .current_dir(root())
            .env_remove("NEXUS_AUDIT_CONFIG")
            .args(["--file", "fixtures/sample.jsonl", "verify"]),
        "the installed binary",
    );
    assert!(
        verify.status.success(),
        "verify of the sample failed: {}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    let example = run(
        Command::new(bin).args(["config", "check", "/usr/share/nexus-audit/config.toml"]),
        "the installed binary",
    );
    assert!(example.status.success(), "{}", text(&example.stderr));

    let removed = run(
        Command::new("dpkg").args(["-r", "nexus-audit"]),
        "dpkg is needed",
    );
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    assert!(!bin.exists(), "dpkg -r left the binary");
}
