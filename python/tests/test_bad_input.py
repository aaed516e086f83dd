"""Bad input gets the old behaviour or one clear Python exception (an OSError subclass with
errno for I/O, ValueError or TypeError for bad arguments), never a crash of the interpreter,
and never a half-written or lost record."""

from __future__ import annotations

import errno
import os
import textwrap
from pathlib import Path

import pytest

import nexus_audit
from conftest import FIXTURES, cli_json, assert_one_chain, assert_verifies, records, run_python


def call(logger: nexus_audit.AuditLogger, **overrides: object) -> None:
    kwargs: dict = {"event_id": "e", "tool": "workday_get_worker", "args": {}, "status": "success", "latency_ms": 1}
    kwargs.update(overrides)
    logger.record(**kwargs)


def test_values_json_cannot_hold_are_written_as_their_str_like_before(log: Path) -> None:
    class Unprintable:
        def __str__(self) -> str:
            return "<unprintable #1>"

    with nexus_audit.AuditLogger(log) as logger:
        call(logger, args={"obj": Unprintable(), "ids": frozenset({7}), "nan": float("nan"), "inf": [float("-inf")],
                           1: "int key", None: "none key", 2.5: "float key", False: "bool key"},
             error_message=Unprintable())
    (rec,) = records(log)
    assert rec["args_summary"] == {
        "obj": "<unprintable #1>", "ids": "frozenset({7})", "nan": "nan", "inf": ["-inf"],
        "1": "int key", "null": "none key", "2.5": "float key", "false": "bool key",
    }
    assert rec["error_message"] == "<unprintable #1>"


def test_a_value_whose_str_raises_raises_that_and_writes_nothing(log: Path) -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    with nexus_audit.AuditLogger(log) as logger:
        with pytest.raises(RuntimeError, match="no str for you"):
            call(logger, args={"x": Broken()})
        with pytest.raises(ValueError, match="[Cc]ircular"):
            loop: dict = {}
            loop["self"] = loop
            call(logger, args=loop)
        with pytest.raises(TypeError, match="keys must be"):
            call(logger, args={("tuple", "key"): 1})
        call(logger, event_id="after")
    assert [r["event_id"] for r in records(log)] == ["after"]


def test_nul_and_control_characters_in_keys_and_values_are_kept_escaped(log: Path) -> None:
    with nexus_audit.AuditLogger(log) as logger:
        call(logger, args={"a\x00b": "c\x00d", "line\nbreak": "tab\there", "\x1b[31m": "esc"})
        logger.log(action="custom", **{"odd\x00key": "v"})
    raw = log.read_bytes()
    assert b"\x00" not in raw and raw.count(b"\n") == 2, "one line per record, NUL escaped"
    first, second = records(log)
    assert first["args_summary"] == {"a\x00b": "c\x00d", "line\nbreak": "tab\there", "\x1b[31m": "esc"}
    assert second["odd\x00key"] == "v"
    assert_verifies(log)


def test_a_nul_in_the_log_path_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NUL"):
        nexus_audit.AuditLogger(str(tmp_path / "a\x00b.jsonl"))
    with pytest.raises(ValueError):
        nexus_audit.verify(str(tmp_path / "a\x00b.jsonl"))


def test_lone_surrogates_are_replaced_not_fatal(log: Path) -> None:
    with nexus_audit.AuditLogger(log) as logger:
        call(logger, args={"name": "bad \udcff byte"})
    assert records(log)[0]["args_summary"]["name"] == "bad ? byte"


def test_args_nested_deeper_than_the_formats_limit_are_a_value_error(log: Path) -> None:
    # The library reads and writes JSON nested at most 128 levels deep (what `verify` can
    # check); the old logger wrote deeper values, this one says why it cannot.
    deep: object = "bottom"
    for _ in range(200):
        deep = {"d": deep}
    with nexus_audit.AuditLogger(log) as logger:
        with pytest.raises(ValueError, match="recursion limit"):
            call(logger, args=deep)
        shallow: object = "bottom"
        for _ in range(100):
            shallow = {"d": shallow}
        call(logger, args=shallow)
    assert len(records(log)) == 1
    assert_verifies(log)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": "slow"}, "latency_ms"),
        ({"tool": 5}, "`tool` must be a string"),
        ({"status": ["ok"]}, "`status` must be a string"),
    ],
)
def test_fields_of_the_wrong_type_are_value_errors_and_write_nothing(log: Path, overrides: dict, message: str) -> None:
    with nexus_audit.AuditLogger(log) as logger:
        with pytest.raises(ValueError, match=message):
            call(logger, **overrides)
    assert not log.exists(), "a refused record creates no file (issue 9, item 14)"


def test_a_directory_as_log_file_is_an_is_a_directory_error(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as e:
        nexus_audit.AuditLogger(tmp_path)
    assert e.value.errno == errno.EISDIR
    assert str(tmp_path) in str(e.value)
    # The old tail_audit_log and audit_log_stats raised IsADirectoryError too (open on a directory).
    for read in (lambda: nexus_audit.tail_audit_log(5, tmp_path), lambda: nexus_audit.audit_log_stats(tmp_path),
                 lambda: nexus_audit.verify(tmp_path)):
        with pytest.raises(IsADirectoryError):
            read()


def test_a_symlink_as_log_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.jsonl"
    target.touch()
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with pytest.raises(OSError) as e:
        nexus_audit.AuditLogger(link)
    assert e.value.errno == errno.ELOOP
    assert "symbolic link" in str(e.value)


def test_an_old_unchained_log_is_refused_when_the_logger_is_made(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_bytes((FIXTURES / "legacy-unchained.jsonl").read_bytes())
    with pytest.raises(ValueError, match="unchained"):
        nexus_audit.AuditLogger(log)
    assert log.read_bytes() == (FIXTURES / "legacy-unchained.jsonl").read_bytes()


def test_a_torn_tail_is_quarantined_and_the_chain_goes_on(log: Path) -> None:
    lines = (FIXTURES / "sample.jsonl").read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3]) + lines[3][:40])
    with nexus_audit.AuditLogger(log) as logger:
        call(logger, event_id="after-torn")
    recs = records(log)
    assert_one_chain(recs)
    assert [r.get("action") for r in recs[3:]] == ["log_recovered", "mcp_call"]
    assert_verifies(log)


def test_a_read_only_directory_and_file_give_permission_errors() -> None:
    # As root, permissions do not apply: a forked child drops to `nobody` for the check, and the
    # parent cleans up after it.
    run_python(textwrap.dedent(
        """
        import errno, os, shutil, sys, tempfile
        import nexus_audit
        ro_dir = tempfile.mkdtemp()
        file_dir = tempfile.mkdtemp()
        ro_file = os.path.join(file_dir, "audit.jsonl")
        open(ro_file, "w").close()
        os.chmod(ro_file, 0o444)
        os.chmod(file_dir, 0o755)
        os.chmod(ro_dir, 0o555)

        def check():
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            for path in (os.path.join(ro_dir, "audit.jsonl"), ro_file):
                try:
                    nexus_audit.AuditLogger(path)
                except PermissionError as e:
                    assert e.errno == errno.EACCES, e
                    assert path in str(e), e
                else:
                    return f"no PermissionError for {path}"
            try:
                nexus_audit.AuditLogger(os.path.join(ro_dir, "sub", "audit.jsonl"))
            except PermissionError:
                return None
            return "no PermissionError for a new directory in a read-only one"

        pid = os.fork()
        if pid == 0:
            try:
                problem = check()
            except BaseException as e:
                problem = repr(e)
            if problem:
                print(problem, file=sys.stderr)
            os._exit(1 if problem else 0)
        _, status = os.waitpid(pid, 0)
        os.chmod(ro_dir, 0o755)
        shutil.rmtree(ro_dir)
        shutil.rmtree(file_dir)
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    ))


def test_bad_arguments_are_value_or_type_errors(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="durability"):
        nexus_audit.AuditLogger(log, durability="always")
    with pytest.raises(ValueError, match="source"):
        nexus_audit.AuditLogger(log, source="")
    with pytest.raises(ValueError, match="log_to_stderr"):
        nexus_audit.AuditLogger(log, True, durability="buffered")
    monkeypatch.setenv("NEXUS_AUDIT_LOG_TO_STDERR", "sometimes")
    with pytest.raises(ValueError, match="NEXUS_AUDIT_LOG_TO_STDERR"):
        nexus_audit.AuditLogger(log)
    monkeypatch.delenv("NEXUS_AUDIT_LOG_TO_STDERR")
    with pytest.raises(ValueError, match="n must be 0 or more"):
        nexus_audit.tail_audit_log(-1, log)
    with pytest.raises(TypeError):
        nexus_audit.tail_audit_log("10", log)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        nexus_audit.tail_audit_log(True, log)
    with pytest.raises(ValueError, match="last"):
        nexus_audit.audit_log_stats(log, last=-5)
    with pytest.raises(FileNotFoundError) as e:
        nexus_audit.verify(log)
    assert e.value.errno == errno.ENOENT
    logger = nexus_audit.AuditLogger(log)
    with pytest.raises(ValueError, match="set by the writer"):
        logger.log(seq=5)
    with pytest.raises(ValueError, match="not both"):
        logger.log(args={}, args_summary={})
    logger.close()
    with pytest.raises(ValueError, match="closed"):
        call(logger)


def test_reading_a_log_full_of_garbage_never_crashes(tmp_path: Path) -> None:
    log = tmp_path / "junk.jsonl"
    log.write_bytes(os.urandom(1 << 16) + b"\n\xff\xfe{}\n{\"seq\": \"x\"}\n[]\nnull\n")
    assert nexus_audit.tail_audit_log(100, log) == cli_json(log, "tail", "-n", "100")
    stats = nexus_audit.audit_log_stats(log)
    assert stats["unreadable_lines"] >= 2
    report = nexus_audit.verify(log)
    assert report["ok"] is False and report["problems"]
