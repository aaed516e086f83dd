"""Secrets given to the logger never reach the file, nor the stderr copy: in args at any depth,
in dicts inside lists, in string values, in error messages, in details and extra fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest

import nexus_audit
from conftest import assert_verifies, records

SECRETS = [
    "hunter2-pw",
    "sk-live-51HqLyjWDarjtT1zdp7dc",
    "ghp_4f9aQ2xLk8mZ7pR3tY6wE1uI0oP5sD9fG2hJ",
    "AKIAIOSFODNN7EXAMPLE",
    "4111111111111111",
    "123-45-6789",
    "S3cretPass",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]

ARGS: List[Dict[str, Any]] = [
    {"password": SECRETS[0]},
    {"user": {"profile": {"apiKey": SECRETS[1]}}},
    {"accounts": [{"name": "a", "token": SECRETS[2]}, {"name": "b", "aws": {"accessKey": SECRETS[3]}}]},
    {"rows": ["plain", {"cardNumber": SECRETS[4]}]},
    {"matrix": [[{"ssn": SECRETS[5]}]]},
    {"url": f"https://svc:{SECRETS[6]}@host.example/x"},
    {"header": f"Bearer {SECRETS[7]}"},
    {"note": f"customer card {SECRETS[4]} and ssn {SECRETS[5]}"},
]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


@pytest.mark.parametrize("args", ARGS, ids=[str(i) for i in range(len(ARGS))])
def test_secrets_in_args_never_reach_the_file(log: Path, args: Dict[str, Any]) -> None:
    with nexus_audit.AuditLogger(log) as logger:
        logger.record(event_id="e", tool="workday_get_worker", args=args, status="success", latency_ms=1)
    assert_no_secret(log.read_text(encoding="utf-8"))
    assert "**REDACTED**" in log.read_text(encoding="utf-8")


def test_secrets_in_error_messages_never_reach_the_file(log: Path) -> None:
    message = (
        f"login failed: password={SECRETS[0]} api_key: {SECRETS[1]} via https://svc:{SECRETS[6]}@idp/ "
        f"with Authorization: Bearer {SECRETS[7]} " + "x" * 1000
    )
    with nexus_audit.AuditLogger(log) as logger:
        logger.record(event_id="e", tool="ad_reset_password", args={}, status="error", latency_ms=3,
                      error_type="AuthError", error_message=message)
        logger.record(event_id="f", tool="ad_reset_password", args={}, status="error", latency_ms=3,
                      error_type="AuthError", error_message=ValueError(f"token={SECRETS[2]}"))
    assert_no_secret(log.read_text(encoding="utf-8"))
    first, second = records(log)
    assert len(first["error_message"]) <= 500
    assert second["error_message"].startswith("token=")


def test_secrets_in_log_fields_details_and_extra_fields_never_reach_the_file(log: Path) -> None:
    with nexus_audit.AuditLogger(log) as logger:
        logger.log(
            action="server_configure",
            server_id="workday-mcp",
            details={"env": {"WORKDAY_CLIENT_SECRET": SECRETS[1]}, "dsn": f"postgres://u:{SECRETS[6]}@db/x"},
            args={"items": [{"password": SECRETS[0]}]},
            client_secret=SECRETS[3],
            remark=f"card {SECRETS[4]}",
        )
    assert_no_secret(log.read_text(encoding="utf-8"))
    (rec,) = records(log)
    assert rec["client_secret"] == "**REDACTED**"
    assert rec["details"]["env"]["WORKDAY_CLIENT_SECRET"] == "**REDACTED**"
    assert_verifies(log)


def test_the_stderr_copy_is_redacted_too(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with nexus_audit.AuditLogger(log, log_to_stderr=True) as logger:
        for args in ARGS:
            logger.record(event_id="e", tool="t", args=args, status="success", latency_ms=1)
    err = capsys.readouterr().err
    assert_no_secret(err)
    assert err == log.read_text(encoding="utf-8")
