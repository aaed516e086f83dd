"""The old Nexus-MCP logger's behaviour, call for call.

fixtures/python/*.json* hold what the old module answered (made once by
fixtures/python/generate.py from the reference module); each test gives nexus_audit the same
calls and compares. The only differences allowed are the ones named here: the chain fields and
the fields the format adds (NEW_FIELDS), the timestamp's spelling of UTC, fields the old logger
wrote as null being left out, and the per-case differences listed in cases.py (stricter
redaction, whole-word key matching, the sanitised error message, whole milliseconds).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

import nexus_audit
from cases import CASES
from conftest import FIXTURES, assert_one_chain, assert_verifies, records

OLD = FIXTURES / "python"

#: Fields every new record has that the old one did not: the chain (SPEC section 2), the
#: `action` and `resource` the format fills for a tool call, and the `level` every record gets
#: (issue 16: `error` for status error, else `info`).
NEW_FIELDS = {"seq", "prev_hash", "action", "resource", "level"}

OLD_TIMESTAMP_SUFFIX = "+00:00"
NEW_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def old_records() -> Dict[str, Dict[str, Any]]:
    with open(OLD / "old_records.json", encoding="utf-8") as fh:
        return {o["case"]: o["record"] for o in json.load(fh)}


def leaves(value: Any, path: str = "") -> Iterator[Tuple[str, Any]]:
    """(dotted path, value) of every leaf; an empty dict or list is a leaf."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from leaves(v, f"{path}.{i}")
    else:
        yield path, value


def differences(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
    """Leaves whose values differ; a null in the old record and a missing field are the same."""
    a = {p: v for p, v in leaves(old) if v is not None}
    b = {p: v for p, v in leaves(new) if v is not None}
    return {p: (a.get(p), b.get(p)) for p in a.keys() | b.keys() if a.get(p) != b.get(p)}


def record_with(log: Path, kwargs: Dict[str, Any], env: Dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Dict[str, Any]:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    logger = nexus_audit.AuditLogger(log_file=log, log_to_stderr=False)
    for k in env:
        monkeypatch.delenv(k)
    logger.record(**kwargs)
    logger.close()
    return records(log)[-1]


@pytest.mark.parametrize("name,kwargs,env,differs", CASES, ids=[c[0] for c in CASES])
def test_record_writes_the_old_fields_apart_from_the_named_differences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, kwargs: Dict[str, Any], env: Dict[str, str], differs: Dict[str, str]
) -> None:
    old = dict(old_records()[name])
    new = record_with(tmp_path / "audit.jsonl", kwargs, env, monkeypatch)

    assert old.pop("timestamp_suffix") == OLD_TIMESTAMP_SUFFIX
    assert NEW_TIMESTAMP.match(new.pop("timestamp")), "RFC 3339 UTC with microseconds and Z"
    assert new["seq"] == 0 and new["prev_hash"] == "0" * 64
    assert new["action"] == "mcp_call"
    assert new["resource"] == f"unknown:{kwargs['tool']}"
    for field in NEW_FIELDS:
        new.pop(field)

    found = differences(old, new)
    unexplained = {p: d for p, d in found.items() if p not in differs}
    assert not unexplained, f"differences from the old logger that no reason names: {unexplained}"
    missing = set(differs) - set(found)
    assert not missing, f"named differences that did not happen: {missing}"
    for path, (before, after) in found.items():
        reason = differs[path]
        if reason.startswith("stricter redaction"):
            assert "**REDACTED**" in str(after) and "**REDACTED**" not in str(before), path
        elif reason.startswith("redaction by whole words"):
            assert before == "**REDACTED**" and after != "**REDACTED**", path


def test_record_returns_none_like_the_old_one(log: Path) -> None:
    logger = nexus_audit.AuditLogger(log)
    assert logger.record(event_id="e", tool="t", args={}, status="success", latency_ms=1) is None


def test_record_needs_the_same_keyword_arguments_as_before(log: Path) -> None:
    logger = nexus_audit.AuditLogger(log)
    with pytest.raises(TypeError):
        logger.record("e", "t", {}, "success", 1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        logger.record(event_id="e", tool="t", args={}, status="success")  # type: ignore[call-arg]


def test_stats_over_the_same_calls_give_the_old_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "audit.jsonl"
    for _name, kwargs, env, _differs in CASES:
        record_with(log, kwargs, env, monkeypatch)
    assert_verifies(log)
    assert_one_chain(records(log))

    old = json.loads((OLD / "old_stats_cases.json").read_text(encoding="utf-8"))
    new = nexus_audit.audit_log_stats(log)
    assert_old_keys_match(old, new, sanitised_messages=True)


def assert_old_keys_match(old: Dict[str, Any], new: Dict[str, Any], sanitised_messages: bool = False) -> None:
    for key in ("total_entries", "status_breakdown", "shard_breakdown", "action_category_breakdown", "error_count", "mock_mode_calls"):
        assert new[key] == old[key], key
    # Named difference: among tools with the same count, the old answer kept first-seen order,
    # the new one sorts by name (SPEC section 7), so which of the tied tools make the top 10
    # may differ. The counts, and each tool's count, agree.
    assert [c for _, c in new["top_10_tools"]] == [c for _, c in old["top_10_tools"]]
    counts = {t: c for t, c in old["top_10_tools"]}
    tied_at_cut = old["top_10_tools"][-1][1]
    for tool, count in new["top_10_tools"]:
        assert counts.get(tool, tied_at_cut) == count, tool
    assert new["top_10_tools"] == sorted(new["top_10_tools"], key=lambda tc: (-tc[1], tc[0]))
    assert len(new["recent_errors"]) == len(old["recent_errors"])
    for a, b in zip(old["recent_errors"], new["recent_errors"]):
        assert b["tool"] == a["tool"] and b["error_type"] == a["error_type"]
        if "timestamp" in a:
            assert b["timestamp"] == a["timestamp"]
        if not sanitised_messages:
            assert b["error_message"] == a["error_message"]
        elif a["error_message"] is not None:
            # Named difference: the message as sanitised when written (cases.SANITISED).
            assert b["error_message"] is not None and len(b["error_message"]) <= 500


def test_tail_and_stats_of_an_old_format_log_give_the_old_answers() -> None:
    legacy = FIXTURES / "legacy-unchained.jsonl"
    old_tail = json.loads((OLD / "old_tail_legacy.json").read_text(encoding="utf-8"))
    assert nexus_audit.tail_audit_log(5, legacy) == old_tail

    old_stats = json.loads((OLD / "old_stats_legacy.json").read_text(encoding="utf-8"))
    new_stats = nexus_audit.audit_log_stats(legacy)
    assert_old_keys_match(old_stats, new_stats)
    assert set(old_stats) <= set(new_stats), "every old key is still there"


def test_tail_of_a_missing_log_is_empty_like_before(tmp_path: Path) -> None:
    assert nexus_audit.tail_audit_log(10, tmp_path / "nothing-here.jsonl") == []
    assert nexus_audit.tail_audit_log(10, tmp_path / "no" / "such" / "dir.jsonl") == []


def test_stats_of_a_missing_log_say_no_entries_like_before(tmp_path: Path) -> None:
    stats = nexus_audit.audit_log_stats(tmp_path / "nothing-here.jsonl")
    assert stats["total_entries"] == 0
    assert stats["top_10_tools"] == [] and stats["recent_errors"] == []


def test_logger_creates_the_parent_directory_like_before(tmp_path: Path) -> None:
    log = tmp_path / "a" / "b" / "audit.jsonl"
    nexus_audit.AuditLogger(log_file=log, log_to_stderr=False).record(
        event_id="e", tool="t", args={}, status="success", latency_ms=1
    )
    assert len(records(log)) == 1
