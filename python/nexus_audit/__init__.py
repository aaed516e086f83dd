"""nexus_audit: a tamper-evident, hash-chained audit log for MCP tool calls.

A drop-in replacement for the Nexus-MCP ``audit_logger`` module: the same class, methods and
module functions, with the same answers, but every record is chained to the one before it,
written under an exclusive lock (so threads, processes, the ``nexus-audit`` CLI and the proxy
can all append to one file) and synced to disk before ``record`` returns::

    from nexus_audit import AuditLogger      # was: from audit_logger import AuditLogger

The work is done by the ``nexus-audit`` Rust library (``nexus_audit._native``); the GIL is
released while a record is written and while a log is read.
"""

from __future__ import annotations

import atexit
import json
import math
import operator
import os
import sys
import weakref
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from . import _native

__all__ = [
    "DEFAULT_LOG_FILE",
    "AuditLogger",
    "audit_log_stats",
    "tail_audit_log",
    "verify",
]

#: The log used when neither ``log_file`` nor ``NEXUS_AUDIT_FILE`` names one.
DEFAULT_LOG_FILE = Path("logs") / "audit.jsonl"

_DURABILITIES = ("sync", "buffered", "none")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})

_StrPath = Union[str, "os.PathLike[str]"]


def _log_path(log_file: _StrPath | None) -> Path:
    """``log_file``, else ``$NEXUS_AUDIT_FILE``, else ``logs/audit.jsonl``."""
    if log_file is None:
        env = os.environ.get("NEXUS_AUDIT_FILE")
        return Path(env) if env else DEFAULT_LOG_FILE
    return Path(log_file)


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{name} must be true or false (1/0, yes/no, on/off), not {os.environ[name]!r}"
    )


def _count(value: Any, name: str) -> int:
    """A non-negative ``int`` argument (``bool`` is refused: it is surely a mistake)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    n = operator.index(value)
    if n < 0:
        raise ValueError(f"{name} must be 0 or more, not {n}")
    return n


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON cannot hold) turned into their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_finite(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _encode(event: Dict[str, Any]) -> bytes:
    """The event as UTF-8 JSON, as the old logger serialised it: anything JSON cannot hold
    (a datetime, a UUID, a set, an object) becomes ``str(value)``."""
    try:
        text = json.dumps(event, default=str, ensure_ascii=False, allow_nan=False)
    except ValueError as e:
        if "Out of range float" not in str(e):
            raise
        text = json.dumps(_finite(event), default=str, ensure_ascii=False, allow_nan=False)
    # NOTE: a lone surrogate (from a badly decoded byte string) cannot be UTF-8; it becomes
    # "?" rather than costing the record.
    return text.encode("utf-8", "replace")


class AuditLogger:
    """Appends audit records to a hash-chained JSONL log.

    ``log_file``: the log; default ``$NEXUS_AUDIT_FILE``, else ``logs/audit.jsonl``. Its parent
    directory is created. ``log_to_stderr``: also write every record to ``sys.stderr``, as the
    exact line stored; default ``$NEXUS_AUDIT_LOG_TO_STDERR``. ``durability``: ``"sync"`` (a
    call returns once the record is on disk; concurrent callers share one sync), ``"buffered"``
    (records are written in groups, at most 100 records or 1 s late, and on ``flush``,
    ``close`` and exit) or ``"none"`` (written at once, synced when the OS decides). ``source``:
    the ``source`` field of every record.

    ``mock_mode`` is ``$USE_MOCK == "true"`` when the logger is made, as before.

    One logger may be shared by any number of threads. It survives ``fork``: a child process
    (multiprocessing, gunicorn workers) opens the log again on its first append and extends
    the same chain.
    """

    def __init__(
        self,
        log_file: _StrPath | None = None,
        log_to_stderr: bool | None = None,
        *,
        durability: str = "sync",
        source: str = "nexus-mcp",
    ) -> None:
        if durability not in _DURABILITIES:
            raise ValueError(
                f'durability must be "sync", "buffered" or "none", not {durability!r}'
            )
        if not isinstance(source, str) or not source:
            raise ValueError(f"source must be a non-empty string, not {source!r}")
        if log_to_stderr is None:
            log_to_stderr = _env_flag("NEXUS_AUDIT_LOG_TO_STDERR")
        if log_to_stderr and durability == "buffered":
            raise ValueError(
                'log_to_stderr needs durability "sync" or "none": a buffered record is not '
                "written, so its line is not known, when record() returns"
            )
        self._log_file = _log_path(log_file)
        self._log_to_stderr = bool(log_to_stderr)
        self._mock_mode = os.getenv("USE_MOCK", "false").lower() == "true"
        self._durability = durability
        self._source = source
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        self._native = _native.Logger(os.fspath(self._log_file), durability, source)
        if durability == "buffered":
            _BUFFERED.add(self)

    @property
    def log_file(self) -> Path:
        """The log's path."""
        return self._log_file

    @property
    def log_to_stderr(self) -> bool:
        """Whether every record is also written to ``sys.stderr``."""
        return self._log_to_stderr

    @property
    def mock_mode(self) -> bool:
        """The ``mock_mode`` of every record (``USE_MOCK=true`` when the logger was made)."""
        return self._mock_mode

    @property
    def durability(self) -> str:
        """``"sync"``, ``"buffered"`` or ``"none"``."""
        return self._durability

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return bool(self._native.closed)

    def record(
        self,
        *,
        event_id: Any,
        tool: Any,
        args: Any,
        status: Any,
        latency_ms: Any,
        error_type: Any = None,
        error_message: Any = None,
    ) -> None:
        """Records one tool call, as the old logger's ``record`` did.

        ``args`` are redacted (sensitive keys at any depth, secrets in any string) and
        ``error_message`` sanitised before anything is written; ``shard``,
        ``action_category``, ``action`` and ``resource`` are inferred from ``tool``. Values
        JSON cannot hold are written as ``str(value)``. ``None`` fields are left out.

        Raises ``OSError`` when the record cannot be written (nothing is then left in the
        file) and ``ValueError`` for a field of the wrong type (``latency_ms`` must be a
        non-negative number).
        """
        self._append(
            {
                "event_id": event_id,
                "tool": tool,
                "args_summary": args,
                "mock_mode": self._mock_mode,
                "status": status,
                "latency_ms": latency_ms,
                "error_type": error_type,
                "error_message": error_message,
            }
        )

    def log(self, action: str | None = "mcp_call", **fields: Any) -> Optional[int]:
        """Records one event with any fields of the record format: ``user_id``,
        ``session_id``, ``correlation_id``, ``server_id``, ``tool``, ``resource``, ``level``,
        ``status``, ``latency_ms``, ``args_summary`` (or ``args``), ``details``,
        ``response_size``, ``filtered_size``, ``error_type``, ``error_message``,
        ``mock_mode``, ``event_id``, ``timestamp``, ``shard``, ``action_category``, … Other
        names are kept as extra top-level fields, redacted like ``details``.

        Returns the record's ``seq``, or ``None`` when it was queued (``"buffered"``).
        """
        if "args" in fields:
            if "args_summary" in fields:
                raise ValueError("give args or args_summary, not both")
            fields["args_summary"] = fields.pop("args")
        for name in ("seq", "prev_hash"):
            if name in fields:
                raise ValueError(f"{name} is set by the writer, not by the caller")
        event: Dict[str, Any] = {"action": action}
        event.update(fields)
        event.setdefault("mock_mode", self._mock_mode)
        return self._append(event)

    def _append(self, event: Dict[str, Any]) -> Optional[int]:
        written = self._native.append(_encode(event), self._log_to_stderr)
        if written is None:
            return None
        seq, line = written
        if line is not None:
            sys.stderr.write(line + "\n")
        return seq

    def flush(self) -> None:
        """Writes queued records (``"buffered"``) and returns once they are on disk."""
        self._native.flush()

    def close(self) -> None:
        """Flushes and closes the log. Later records raise ``ValueError``; closing again is
        harmless."""
        self._native.close()

    def __enter__(self) -> AuditLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        # NOTE: for multiprocessing's "spawn" and "forkserver": the other process opens the
        # same log with the same settings.
        return (
            _reopen,
            (
                os.fspath(self._log_file),
                self._log_to_stderr,
                self._durability,
                self._source,
                self._mock_mode,
            ),
        )

    def __repr__(self) -> str:
        return (
            f"AuditLogger({os.fspath(self._log_file)!r}, durability={self._durability!r}"
            f"{', closed' if self.closed else ''})"
        )


#: Buffered loggers still alive, flushed when the interpreter exits (a logger kept alive by a
#: reference cycle may not be dropped, and so not flushed, before that).
_BUFFERED: "weakref.WeakSet[AuditLogger]" = weakref.WeakSet()


@atexit.register
def _flush_buffered_at_exit() -> None:
    for logger in list(_BUFFERED):
        if logger.closed:
            continue
        try:
            logger.flush()
        except OSError as e:
            sys.stderr.write(f"nexus_audit: queued audit records were not written: {e}\n")


def _reopen(
    log_file: str, log_to_stderr: bool, durability: str, source: str, mock_mode: bool
) -> AuditLogger:
    logger = AuditLogger(log_file, log_to_stderr, durability=durability, source=source)
    logger._mock_mode = mock_mode
    return logger


def tail_audit_log(n: int = 100, log_file: _StrPath | None = None) -> List[Dict[str, Any]]:
    """The last ``n`` records of the log, oldest first, as dicts; ``[]`` when the log does not
    exist. Reads from the end of the file, not all of it. Lines that are not records (a torn
    tail, a blank or damaged line) are skipped, as ``nexus-audit tail`` skips them."""
    n = _count(n, "n")
    path = _log_path(log_file)
    try:
        records: List[Dict[str, Any]] = _native.tail(os.fspath(path), n)
    except FileNotFoundError:
        return []
    return records


def audit_log_stats(
    log_file: _StrPath | None = None, last: int | None = None
) -> Dict[str, Any]:
    """The log's summary, over the whole file or its ``last`` records: the old keys
    (``total_entries``, ``status_breakdown``, ``shard_breakdown``,
    ``action_category_breakdown``, ``top_10_tools``, ``error_count``, ``recent_errors``,
    ``mock_mode_calls``) and the rest of what ``nexus-audit stats --output json`` prints
    (``first_timestamp``, ``last_timestamp``, ``latency_ms``, ``by_user``, ``by_server``,
    ``by_action``, ``errors_by_tool``, ``unreadable_lines``). A log that does not exist counts
    as empty."""
    if last is not None:
        last = _count(last, "last")
    stats: Dict[str, Any] = _native.stats(os.fspath(_log_path(log_file)), last, True)
    return stats


def verify(log_file: _StrPath | None = None, *, max_problems: int = 100) -> Dict[str, Any]:
    """Checks every line and link of the log and returns the report ``nexus-audit verify
    --output json`` prints: ``ok``, ``records``, ``problems`` (each ``kind``, ``line``,
    ``offset``, ``seq``, ``message``), … A damaged log is reported, never raised; ``OSError``
    means the file cannot be read."""
    max_problems = _count(max_problems, "max_problems")
    report: Dict[str, Any] = _native.verify(os.fspath(_log_path(log_file)), max_problems)
    return report
