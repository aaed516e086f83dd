"""tail_audit_log, audit_log_stats and verify give the CLI's answers on the bundled fixtures:
the same objects `nexus-audit tail|stats|verify --output json` prints."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import nexus_audit
from conftest import FIXTURES, ROOT, cli, cli_json

LOGS = [FIXTURES / "sample.jsonl", FIXTURES / "legacy-unchained.jsonl", *sorted((FIXTURES / "tampered").glob("*.jsonl"))]
IDS = [p.relative_to(FIXTURES).as_posix() for p in LOGS]


@pytest.mark.parametrize("log", LOGS, ids=IDS)
@pytest.mark.parametrize("n", [0, 1, 7, 100, 100_000])
def test_tail_gives_the_records_cli_tail_prints(log: Path, n: int) -> None:
    assert nexus_audit.tail_audit_log(n, log) == cli_json(log, "tail", "-n", str(n))


def test_tail_default_is_the_last_100_records() -> None:
    log = FIXTURES / "sample.jsonl"
    got = nexus_audit.tail_audit_log(log_file=log)
    assert len(got) == 100
    assert got == cli_json(log, "tail", "-n", "100")
    assert [r["seq"] for r in got] == list(range(1100, 1200)), "oldest first"


@pytest.mark.parametrize("log", LOGS, ids=IDS)
def test_stats_give_the_object_cli_stats_prints(log: Path) -> None:
    assert nexus_audit.audit_log_stats(log) == cli_json(log, "stats")


@pytest.mark.parametrize("last", [0, 1, 50, 5000])
def test_stats_of_the_last_records_match_cli_stats_last(last: int) -> None:
    log = FIXTURES / "sample.jsonl"
    got = nexus_audit.audit_log_stats(log, last=last)
    assert got == cli_json(log, "stats", "--last", str(last))
    assert got["total_entries"] == min(last, 1200)


def test_stats_cover_the_whole_log_by_default_not_the_old_100000_cap(tmp_path: Path) -> None:
    log = tmp_path / "big.jsonl"
    line = (FIXTURES / "sample.jsonl").read_bytes().splitlines(keepends=True)[1]
    log.write_bytes(line * 100_050)
    assert nexus_audit.audit_log_stats(log)["total_entries"] == 100_050


@pytest.mark.parametrize("log", LOGS, ids=IDS)
def test_verify_gives_the_report_cli_verify_prints_and_never_raises(log: Path) -> None:
    rel = os.path.relpath(log, ROOT)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        report = nexus_audit.verify(rel)
    finally:
        os.chdir(cwd)
    assert report == cli_json(rel, "verify", cwd=ROOT)
    stored = log.with_suffix(".verify.json")
    assert report == json.loads(stored.read_text(encoding="utf-8")), f"as recorded in {stored.name}"
    assert report["ok"] == (log.name == "sample.jsonl")


def test_verify_lists_at_most_max_problems() -> None:
    log = FIXTURES / "tampered" / "two-problems.jsonl"
    report = nexus_audit.verify(log, max_problems=1)
    assert len(report["problems"]) == 1 and report["problems_total"] == 2
    assert report == cli_json(log, "verify", "--max-problems", "1")


def test_tail_reads_the_end_of_the_log_not_all_of_it(tmp_path: Path) -> None:
    # A 64 GiB sparse file: reading it whole would take minutes; tail reads the last lines.
    log = tmp_path / "huge.jsonl"
    lines = (FIXTURES / "sample.jsonl").read_bytes().splitlines(keepends=True)
    with open(log, "wb") as fh:
        fh.write(lines[0])
        fh.seek(64 << 30)
        fh.write(b"\n" + b"".join(lines[-3:]))
    start = time.monotonic()
    got = nexus_audit.tail_audit_log(3, log)
    assert time.monotonic() - start < 5
    assert [r["seq"] for r in got] == [1197, 1198, 1199]
    assert got == cli_json(log, "tail", "-n", "3")


def test_tail_skips_a_torn_tail_and_lines_that_are_not_records(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    lines = (FIXTURES / "sample.jsonl").read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0] + b"not json\n\n[1,2]\n" + lines[1] + b'{"seq":2,"prev_ha')
    got = nexus_audit.tail_audit_log(10, log)
    assert [r["seq"] for r in got] == [0, 1]
    assert got == cli_json(log, "tail", "-n", "10")


def test_cli_reads_what_the_package_writes(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with nexus_audit.AuditLogger(log) as logger:
        for i in range(5):
            logger.record(event_id=f"e{i}", tool="workday_get_worker", args={"i": i}, status="success", latency_ms=i)
    assert cli(log, "verify").returncode == 0
    assert [r["event_id"] for r in cli_json(log, "tail", "-n", "5")] == [f"e{i}" for i in range(5)]
    assert nexus_audit.audit_log_stats(log) == cli_json(log, "stats")
