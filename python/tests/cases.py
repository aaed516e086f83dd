"""The calls the compatibility tests make to the old logger's ``record`` and to
``nexus_audit.AuditLogger.record``.

fixtures/python/generate.py runs each case through the old module (once, by hand) and stores
what it wrote in fixtures/python/old_records.json; test_compat.py runs the same case through
the new logger and compares the two records field by field.

Each case is ``(name, kwargs, env, differs)``: the keyword arguments of ``record``, the
environment when the logger is made (``USE_MOCK``), and the fields where the new record is
*meant* to differ from the old one, each with the reason. Paths are dotted
(``args_summary.items.1.secret``); the test fails on any other difference, and on a listed
difference that does not happen.
"""

from __future__ import annotations

import datetime
import decimal
import pathlib
import uuid
from typing import Any, Dict, List, Tuple


class Widget:
    """An object JSON cannot hold: both loggers write ``str(widget)``."""

    def __str__(self) -> str:
        return "Widget#7"


# The reasons the new record may differ, named once.
STRICTER_KEY = "stricter redaction: a sensitive word in the key, matched by words, at any depth"
STRICTER_LIST = (
    "stricter redaction: every dict in a list is redacted (the old logger looked only at "
    "lists whose first item was a dict)"
)
STRICTER_VALUE = (
    "stricter redaction: secrets inside any string value (JWT, Bearer, URL password, "
    "password=...) are cut out"
)
WORD_MATCH = (
    "redaction by whole words: the old logger redacted any key containing 'auth', 'pin', "
    "'token', 'card', 'secret' or 'birth' as a substring (author, shipping, tokenizer, "
    "discard, secretary, birthday); the new one keeps those values"
)
SANITISED = (
    "error_message is sanitised (secrets cut out) and at most 500 characters: the old "
    "record() wrote it raw"
)
WHOLE_MS = "latency_ms is a whole number of milliseconds (rounded)"

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

Case = Tuple[str, Dict[str, Any], Dict[str, str], Dict[str, str]]


CASES: List[Case] = [
    (
        "issue_example",
        {
            "event_id": "6f1c2e9a-7d41-4b8e-9a3c-2f5d8e1b4c70",
            "tool": "workday_get_worker",
            "args": {"employee_id": "E1", "password": "x"},
            "status": "success",
            "latency_ms": 42,
            "error_type": None,
            "error_message": None,
        },
        {},
        {},
    ),
]

# Shard and category inference: one call per prefix, and a tool no prefix matches.
for i, tool in enumerate(
    [
        "ad_get_user",
        "entra_list_groups",
        "workday_search_workers",
        "helix_create_ticket",
        "lansweeper_find_asset",
        "intune_get_device",
        "fedex_track_shipment",
        "audit_log_stats",
        "generate_compliance_report",
        "slack_post_message",
        "",
    ]
):
    CASES.append(
        (
            f"shard_{tool or 'empty_tool'}",
            {
                "event_id": f"00000000-0000-4000-8000-{i:012d}",
                "tool": tool,
                "args": {"q": i},
                "status": "success",
                "latency_ms": i * 10,
            },
            {},
            {},
        )
    )

CASES += [
    (
        "error_without_secret",
        {
            "event_id": "11111111-0000-4000-8000-000000000001",
            "tool": "helix_get_ticket",
            "args": {"ticket_id": "INC0012"},
            "status": "error",
            "latency_ms": 30000,
            "error_type": "UpstreamTimeout",
            "error_message": "upstream helix-mcp timed out after 30s",
        },
        {},
        {},
    ),
    (
        "error_message_with_secrets",
        {
            "event_id": "11111111-0000-4000-8000-000000000002",
            "tool": "ad_reset_password",
            "args": {"upn": "bob@corp.example"},
            "status": "error",
            "latency_ms": 91,
            "error_type": "AuthenticationError",
            "error_message": "401 calling https://svc:Hunter2Pass@idp.corp.example/api with password=hunter2 token: ghp_4f9aQ2xLk8mZ7pR3tY6wE1uI0oP5sD9fG2hJ",
        },
        {},
        {"error_message": SANITISED},
    ),
    (
        "error_message_too_long",
        {
            "event_id": "11111111-0000-4000-8000-000000000003",
            "tool": "fedex_get_rates",
            "args": {},
            "status": "error",
            "latency_ms": 5,
            "error_type": "ValidationError",
            "error_message": "bad rate table: " + "x" * 700,
        },
        {},
        {"error_message": SANITISED},
    ),
    (
        "nested_dicts",
        {
            "event_id": "22222222-0000-4000-8000-000000000001",
            "tool": "workday_update_cost_center",
            "args": {
                "worker": {"id": "W1", "ssn": "123-45-6789", "profile": {"api_key": "k", "team": "HR"}},
                "page": 2,
            },
            "status": "success",
            "latency_ms": 7,
        },
        {},
        {},
    ),
    (
        "list_of_dicts",
        {
            "event_id": "22222222-0000-4000-8000-000000000002",
            "tool": "entra_assign_license",
            "args": {"users": [{"upn": "a@x", "secret": "s1"}, {"upn": "b@x", "password": "p"}]},
            "status": "success",
            "latency_ms": 8,
        },
        {},
        {},
    ),
    (
        "dict_after_a_scalar_in_a_list",
        {
            "event_id": "22222222-0000-4000-8000-000000000003",
            "tool": "helix_update_ticket",
            "args": {"mixed": ["first", {"token": "t0k3n", "note": "n"}], "deep": [[{"password": "p"}]]},
            "status": "success",
            "latency_ms": 9,
        },
        {},
        {"args_summary.mixed.1.token": STRICTER_LIST, "args_summary.deep.0.0.password": STRICTER_LIST},
    ),
    (
        "key_spellings",
        {
            "event_id": "22222222-0000-4000-8000-000000000004",
            "tool": "intune_wipe_device",
            "args": {
                "apiKey": "a",
                "API_KEY": "b",
                "x-auth-token": "c",
                "db.password": "d",
                "clientSecret": "e",
                "cardNumber": "f",
                "dateOfBirth": "g",
                "passphrase": "h",
                "device_id": "D-1",
            },
            "status": "success",
            "latency_ms": 10,
        },
        {},
        {"args_summary.passphrase": STRICTER_KEY},
    ),
    (
        "keys_that_only_contain_a_sensitive_substring",
        {
            "event_id": "22222222-0000-4000-8000-000000000005",
            "tool": "fedex_create_label",
            "args": {
                "author": "Ada",
                "shipping_address": "1 Main St",
                "tokenizer": "bpe",
                "discard": False,
                "secretary": "Sam",
                "birthday_party": "yes",
                "mapping": "m",
            },
            "status": "success",
            "latency_ms": 11,
        },
        {},
        {
            "args_summary.author": WORD_MATCH,
            "args_summary.shipping_address": WORD_MATCH,
            "args_summary.tokenizer": WORD_MATCH,
            "args_summary.discard": WORD_MATCH,
            "args_summary.secretary": WORD_MATCH,
            "args_summary.birthday_party": WORD_MATCH,
            "args_summary.mapping": WORD_MATCH,
        },
    ),
    (
        "secrets_in_values",
        {
            "event_id": "22222222-0000-4000-8000-000000000006",
            "tool": "helix_search_incidents",
            "args": {
                "header": "Bearer " + JWT,
                "url": "https://svc-user:S3cretPass@helix.corp.example/api",
                "query": "status:open password=hunter2",
                "plain": "nothing to hide here",
            },
            "status": "success",
            "latency_ms": 12,
        },
        {},
        {
            "args_summary.header": STRICTER_VALUE,
            "args_summary.url": STRICTER_VALUE,
            "args_summary.query": STRICTER_VALUE,
        },
    ),
    (
        "values_json_cannot_hold",
        {
            "event_id": uuid.UUID("33333333-0000-4000-8000-000000000001"),
            "tool": "lansweeper_list_software",
            "args": {
                "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
                "day": datetime.date(2026, 1, 2),
                "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
                "amount": decimal.Decimal("1.10"),
                "ids": {1, 2, 3},
                "raw": b"ab",
                "where": pathlib.PurePosixPath("/srv/data"),
                "widget": Widget(),
                "pair": (1, "two"),
            },
            "status": "success",
            "latency_ms": 13,
        },
        {},
        {},
    ),
    (
        "unicode",
        {
            "event_id": "33333333-0000-4000-8000-000000000002",
            "tool": "workday_get_org_chart",
            "args": {"name": "Zoë Ångström ✓ 日本語", "emoji": "🚀", "ctrl": "tab\there"},
            "status": "success",
            "latency_ms": 14,
        },
        {},
        {},
    ),
    (
        "empty_args_zero_latency",
        {
            "event_id": "33333333-0000-4000-8000-000000000003",
            "tool": "audit_search_events",
            "args": {},
            "status": "success",
            "latency_ms": 0,
        },
        {},
        {},
    ),
    (
        "float_latency",
        {
            "event_id": "33333333-0000-4000-8000-000000000004",
            "tool": "generate_access_review",
            "args": {"scope": "all"},
            "status": "success",
            "latency_ms": 12.4,
        },
        {},
        {"latency_ms": WHOLE_MS},
    ),
    (
        "mock_mode",
        {
            "event_id": "33333333-0000-4000-8000-000000000005",
            "tool": "workday_get_worker",
            "args": {"employee_id": "E2"},
            "status": "success",
            "latency_ms": 15,
        },
        {"USE_MOCK": "TRUE"},
        {},
    ),
    (
        "mock_mode_not_exactly_true",
        {
            "event_id": "33333333-0000-4000-8000-000000000006",
            "tool": "workday_get_worker",
            "args": {"employee_id": "E3"},
            "status": "success",
            "latency_ms": 16,
        },
        {"USE_MOCK": "1"},
        {},
    ),
    (
        "custom_status",
        {
            "event_id": "33333333-0000-4000-8000-000000000007",
            "tool": "ad_list_group_members",
            "args": {"group": "admins"},
            "status": "partial",
            "latency_ms": 17,
            "error_type": "Truncated",
        },
        {},
        {},
    ),
]
