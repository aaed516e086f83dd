"""The logger's contract beyond the old module: defaults from the environment, the stderr copy,
every field through `log`, durability, close and the context manager, the file's mode, the GIL
released while writing and reading, pickling for spawned processes."""

from __future__ import annotations

import os
import pickle
import stat
import textwrap
from pathlib import Path

import pytest

import nexus_audit
from conftest import assert_one_chain, assert_verifies, records, run_python


def call(logger: nexus_audit.AuditLogger, event_id: str = "e") -> None:
    logger.record(event_id=event_id, tool="workday_get_worker", args={"id": 1}, status="success", latency_ms=5)


def test_default_log_file_is_logs_audit_jsonl_with_its_directory_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with nexus_audit.AuditLogger() as logger:
        assert logger.log_file == Path("logs/audit.jsonl")
        call(logger)
    assert len(records(tmp_path / "logs" / "audit.jsonl")) == 1
    assert [r["event_id"] for r in nexus_audit.tail_audit_log()] == ["e"]
    assert nexus_audit.audit_log_stats()["total_entries"] == 1
    assert nexus_audit.verify()["records"] == 1


def test_nexus_audit_file_names_the_default_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "env" / "audit.jsonl"
    monkeypatch.setenv("NEXUS_AUDIT_FILE", str(log))
    with nexus_audit.AuditLogger() as logger:
        call(logger)
    assert len(records(log)) == 1
    assert len(nexus_audit.tail_audit_log(5)) == 1
    assert nexus_audit.verify()["ok"]


@pytest.mark.parametrize("value,on", [("true", True), ("1", True), ("YES", True), ("on", True), ("false", False), ("0", False), ("", False)])
def test_log_to_stderr_defaults_from_the_environment(log: Path, monkeypatch: pytest.MonkeyPatch, value: str, on: bool) -> None:
    monkeypatch.setenv("NEXUS_AUDIT_LOG_TO_STDERR", value)
    assert nexus_audit.AuditLogger(log).log_to_stderr is on


def test_log_to_stderr_writes_exactly_the_stored_lines(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with nexus_audit.AuditLogger(log, log_to_stderr=True) as logger:
        call(logger, "a")
        logger.log(action="server_start", server_id="s", details={"password": "x"})
        call(logger, "c")
    assert capsys.readouterr().err == log.read_text(encoding="utf-8")


def test_log_to_stderr_finds_its_line_among_other_writers_lines(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with nexus_audit.AuditLogger(log, log_to_stderr=True, durability="none") as loud, nexus_audit.AuditLogger(log) as quiet:
        for i in range(20):
            call(quiet, f"q{i}")
            call(loud, f"l{i}")
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    assert capsys.readouterr().err == "".join(l for l in lines if '"event_id":"l' in l)


def test_nothing_goes_to_stderr_by_default(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with nexus_audit.AuditLogger(log) as logger:
        call(logger)
    assert capsys.readouterr().err == ""


def test_use_mock_true_marks_every_record_as_before(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USE_MOCK", "true")
    with nexus_audit.AuditLogger(log) as logger:
        assert logger.mock_mode
        call(logger)
        logger.log(action="server_start")
    assert [r["mock_mode"] for r in records(log)] == [True, True]
    assert nexus_audit.audit_log_stats(log)["mock_mode_calls"] == 2


def test_log_takes_every_field_of_the_record_format(log: Path) -> None:
    with nexus_audit.AuditLogger(log, source="nexus-orchestrator") as logger:
        seq = logger.log(
            action="mcp_call",
            event_id="evt-1",
            timestamp="2026-11-22T10:05:04.5+01:00",
            level="warn",
            user_id="alice@corp.example",
            session_id="sess-1",
            correlation_id="req-9",
            server_id="workday-mcp",
            tool="workday_get_worker",
            shard="hr",
            action_category="WRITE",
            resource="worker/W1",
            args={"worker_id": "W1"},
            details={"retries": 2},
            status="error",
            latency_ms=42,
            response_size=2000,
            filtered_size=500,
            error_type="Timeout",
            error_message="took too long",
            mock_mode=True,
            team="blue",
        )
        assert seq == 0
        assert logger.log(action="server_stop", server_id="workday-mcp") == 1
    first, second = records(log)
    assert first == {
        "seq": 0,
        "prev_hash": "0" * 64,
        "event_id": "evt-1",
        "timestamp": "2026-11-22T09:05:04.500000Z",
        "schema_version": "1",
        "source": "nexus-orchestrator",
        "level": "warn",
        "action": "mcp_call",
        "user_id": "alice@corp.example",
        "session_id": "sess-1",
        "correlation_id": "req-9",
        "server_id": "workday-mcp",
        "tool": "workday_get_worker",
        "shard": "hr",
        "action_category": "WRITE",
        "resource": "worker/W1",
        "args_summary": {"worker_id": "W1"},
        "details": {"retries": 2},
        "status": "error",
        "latency_ms": 42,
        "response_size": 2000,
        "filtered_size": 500,
        "reduction_percent": 75,
        "error_type": "Timeout",
        "error_message": "took too long",
        "mock_mode": True,
        "team": "blue",
    }
    assert second["action"] == "server_stop" and second["seq"] == 1 and second["source"] == "nexus-orchestrator"
    assert "tool" not in second


def test_buffered_records_reach_the_file_on_flush_and_close(log: Path) -> None:
    logger = nexus_audit.AuditLogger(log, durability="buffered")
    assert logger.log(action="a") is None, "queued: no seq yet"
    call(logger, "b")
    assert not log.exists() or log.read_bytes() == b"", "nothing written before flush"
    logger.flush()
    assert [r["event_id"] for r in records(log)] == [records(log)[0]["event_id"], "b"]
    call(logger, "c")
    logger.close()
    assert [r["event_id"] for r in records(log)][1:] == ["b", "c"]
    assert_verifies(log)


def test_durability_none_writes_at_once(log: Path) -> None:
    logger = nexus_audit.AuditLogger(log, durability="none")
    call(logger)
    assert len(records(log)) == 1
    logger.close()


def test_close_is_idempotent_and_the_context_manager_closes(log: Path) -> None:
    with nexus_audit.AuditLogger(log) as logger:
        assert not logger.closed
        call(logger)
    assert logger.closed
    logger.close()
    with pytest.raises(ValueError, match="closed"):
        call(logger)
    with pytest.raises(ValueError, match="closed"):
        logger.flush()
    assert "closed" in repr(logger)


def test_the_log_is_created_0600(log: Path) -> None:
    old = os.umask(0)
    try:
        with nexus_audit.AuditLogger(log) as logger:
            assert not log.exists(), "the file is created by the first record"
            logger.log(action="first")
    finally:
        os.umask(old)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_threads_share_one_logger(log: Path) -> None:
    import threading

    logger = nexus_audit.AuditLogger(log, durability="sync")

    def work(t: int) -> None:
        for i in range(50):
            call(logger, f"{t}-{i}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logger.close()
    recs = records(log)
    assert_one_chain(recs)
    assert sorted(r["event_id"] for r in recs) == sorted(f"{t}-{i}" for t in range(8) for i in range(50))
    assert_verifies(log)


GIL_CHECK = """
import fcntl, sys, threading, time
import nexus_audit
path = sys.argv[1]
logger = nexus_audit.AuditLogger(path)
logger.record(event_id="first", tool="t", args={}, status="success", latency_ms=0)
holder = open(path, "rb")
fcntl.flock(holder, fcntl.LOCK_EX)        # another process's append, in effect
done = threading.Event()
def blocked():
    OPERATION
    done.set()
worker = threading.Thread(target=blocked)
worker.start()
# If the call held the GIL while it waits for the lock, this thread could not run again and
# the interpreter would hang here (the test's timeout then fails it).
spins = 0
deadline = time.monotonic() + 0.5
while time.monotonic() < deadline:
    spins += 1
assert not done.is_set(), "the call returned while the log was locked"
fcntl.flock(holder, fcntl.LOCK_UN)
worker.join(30)
assert done.is_set(), "the call never finished after the lock was released"
assert spins > 1000, spins
"""


@pytest.mark.parametrize(
    "operation",
    [
        'logger.record(event_id="second", tool="t", args={}, status="success", latency_ms=0)',
        "assert len(nexus_audit.tail_audit_log(5, path)) == 1",
        'assert nexus_audit.audit_log_stats(path)["total_entries"] == 1',
        'assert nexus_audit.verify(path)["ok"]',
    ],
    ids=["record", "tail", "stats", "verify"],
)
def test_other_threads_run_while_a_call_waits_for_the_log(log: Path, operation: str) -> None:
    run_python(GIL_CHECK.replace("OPERATION", operation), str(log), timeout=60)


def test_a_pickled_logger_opens_the_same_log(log: Path) -> None:
    with nexus_audit.AuditLogger(log, durability="none", source="svc") as logger:
        call(logger, "a")
        copy = pickle.loads(pickle.dumps(logger))
        assert (copy.log_file, copy.durability, copy.mock_mode) == (logger.log_file, "none", False)
        call(copy, "b")
        copy.close()
    recs = records(log)
    assert [r["event_id"] for r in recs] == ["a", "b"] and recs[1]["source"] == "svc"


def test_a_logger_passed_to_a_spawned_process_extends_the_chain(log: Path, tmp_path: Path) -> None:
    script = tmp_path / "spawner.py"  # "spawn" imports the main module again: it must be a file
    script.write_text(textwrap.dedent(
        """
        import multiprocessing, sys
        import nexus_audit
        def work(logger, i):
            logger.record(event_id=f"spawned-{i}", tool="t", args={}, status="success", latency_ms=i)
        if __name__ == "__main__":
            logger = nexus_audit.AuditLogger(sys.argv[1])
            logger.record(event_id="parent", tool="t", args={}, status="success", latency_ms=0)
            ctx = multiprocessing.get_context("spawn")
            procs = [ctx.Process(target=work, args=(logger, i)) for i in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
                assert p.exitcode == 0, p.exitcode
        """
    ))
    run_python(str(script), str(log), timeout=120)
    recs = records(log)
    assert_one_chain(recs)
    assert sorted(r["event_id"] for r in recs) == ["parent", "spawned-0", "spawned-1", "spawned-2"]


def test_buffered_records_are_written_when_the_interpreter_exits(log: Path) -> None:
    run_python(textwrap.dedent(
        """
        import sys
        import nexus_audit
        logger = nexus_audit.AuditLogger(sys.argv[1], durability="buffered")
        logger.cycle = [logger]          # kept alive past module teardown
        for i in range(5):
            logger.record(event_id=f"e{i}", tool="t", args={}, status="success", latency_ms=i)
        """
    ), str(log))
    assert [r["event_id"] for r in records(log)] == [f"e{i}" for i in range(5)]
    assert_verifies(log)
