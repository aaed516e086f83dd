"""Shared helpers: the repository's paths, the nexus-audit binary, a clean environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
BIN = ROOT / "target" / "debug" / "nexus-audit"

sys.path.insert(0, str(Path(__file__).resolve().parent))


def nexus_audit_bin() -> Path:
    """The CLI the tests run beside the package; built by scripts/test-python."""
    if not BIN.is_file():
        pytest.fail(f"{BIN} is missing: run `cargo build --bin nexus-audit` (scripts/test-python does)")
    return BIN


def clean_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment without NEXUS_AUDIT_* and USE_MOCK, so a developer's setup cannot leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_AUDIT_") and k != "USE_MOCK"}
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def cli(log: os.PathLike, *args: str, input: Optional[bytes] = None, check: bool = True, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Runs `nexus-audit --file LOG ARGS…` and returns the finished process."""
    proc = subprocess.run(
        [str(nexus_audit_bin()), "--file", os.fspath(log), *args],
        input=input,
        capture_output=True,
        env=clean_env(),
        cwd=cwd,
        timeout=120,
    )
    if check and proc.returncode not in (0, 1):
        raise AssertionError(f"nexus-audit {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc


def cli_json(log: os.PathLike, *args: str, cwd: Optional[Path] = None) -> Any:
    return json.loads(cli(log, *args, "--output", "json", cwd=cwd).stdout)


def records(log: os.PathLike) -> List[Dict[str, Any]]:
    """Every line of the log, parsed (every line must be a JSON object)."""
    with open(log, "rb") as fh:
        return [json.loads(line) for line in fh.read().splitlines()]


def assert_verifies(log: os.PathLike) -> None:
    proc = cli(log, "verify", "--output", "json", check=False)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def assert_one_chain(recs: Sequence[Dict[str, Any]]) -> None:
    assert [r["seq"] for r in recs] == list(range(len(recs))), "seq is 0, 1, 2, … with no gap"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("NEXUS_AUDIT_") or key == "USE_MOCK":
            monkeypatch.delenv(key)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def run_python(code: str, *args: str, timeout: float = 60, env: Optional[Dict[str, str]] = None, **kwargs: Any) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (so a hang, a crash or a fork cannot take pytest down)
    and fails the test unless it exits 0. `code` is a path to a script, or the code itself."""
    argv = [code] if code.endswith(".py") and os.path.isfile(code) else ["-c", code]
    try:
        proc = subprocess.run([sys.executable, *argv, *args], capture_output=True, timeout=timeout,
                              env=clean_env(env), **kwargs)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the interpreter did not finish in {timeout} s (a deadlock?): {e.stderr!r}")
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout: {proc.stdout.decode(errors='replace')}\nstderr: {proc.stderr.decode(errors='replace')}"
    )
    return proc
