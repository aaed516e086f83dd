# Type stubs for nexus_audit (the docstrings are in __init__.py).
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from typing_extensions import Self, TypeAlias

_StrPath: TypeAlias = Union[str, os.PathLike[str]]

__all__ = [
    "DEFAULT_LOG_FILE",
    "AuditLogger",
    "audit_log_stats",
    "tail_audit_log",
    "verify",
]

DEFAULT_LOG_FILE: Path

class AuditLogger:
    def __init__(
        self,
        log_file: Optional[_StrPath] = None,
        log_to_stderr: Optional[bool] = None,
        *,
        durability: str = "sync",
        source: str = "nexus-mcp",
    ) -> None: ...
    @property
    def log_file(self) -> Path: ...
    @property
    def log_to_stderr(self) -> bool: ...
    @property
    def mock_mode(self) -> bool: ...
    @property
    def durability(self) -> str: ...
    @property
    def closed(self) -> bool: ...
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
    ) -> None: ...
    def log(self, action: Optional[str] = "mcp_call", **fields: Any) -> Optional[int]: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc_info: object) -> None: ...

def tail_audit_log(n: int = 100, log_file: Optional[_StrPath] = None) -> List[Dict[str, Any]]: ...
def audit_log_stats(log_file: Optional[_StrPath] = None, last: Optional[int] = None) -> Dict[str, Any]: ...
def verify(log_file: Optional[_StrPath] = None, *, max_problems: int = 100) -> Dict[str, Any]: ...
