"""The package ships type stubs and py.typed: mypy sees the API, and the stubs match the
module that runs (mypy's stubtest)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nexus_audit


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is not installed: run `pip install mypy` in the test venv (scripts/test-python does)")
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_the_package_ships_py_typed_and_stubs() -> None:
    package = Path(nexus_audit.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "__init__.pyi").is_file() and (package / "_native.pyi").is_file()


def test_the_stubs_match_the_runtime_module(tmp_path: Path) -> None:
    proc = mypy("mypy.stubtest", "nexus_audit", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_accepts_the_api_and_flags_its_misuse(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(textwrap.dedent(
        """
        from pathlib import Path
        from typing import Any, Dict, List, Optional
        from nexus_audit import AuditLogger, audit_log_stats, tail_audit_log, verify

        with AuditLogger(Path("logs/audit.jsonl"), False, durability="none") as log:
            log.record(event_id="e", tool="t", args={"a": 1}, status="success", latency_ms=3)
            seq: Optional[int] = log.log(action="server_start", server_id="s", details={})
            log.flush()
        rows: List[Dict[str, Any]] = tail_audit_log(10, "logs/audit.jsonl")
        total: int = audit_log_stats(last=5)["total_entries"]
        ok: bool = verify("logs/audit.jsonl")["ok"]
        """
    ))
    (tmp_path / "bad.py").write_text(textwrap.dedent(
        """
        from nexus_audit import AuditLogger, tail_audit_log
        log = AuditLogger(durability=5)
        log.record(event_id="e", tool="t")
        tail_audit_log("10")
        log.nonexistent()
        """
    ))
    good = mypy("mypy", "--strict", "good.py", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = mypy("mypy", "bad.py", cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout
    for line in (3, 4, 5, 6):
        assert f"bad.py:{line}: error" in bad.stdout, bad.stdout
