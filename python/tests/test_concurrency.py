"""Python processes and threads, the Rust CLI and the proxy all append to one log at once: one
chain, every record present exactly once, `nexus-audit verify` clean."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

import pytest

from conftest import ROOT, assert_one_chain, assert_verifies, clean_env, nexus_audit_bin, records

HERE = Path(__file__).resolve().parent
PROCS, THREADS, PER_THREAD = 4, 4, 40
CLI_RECORDS = 200
PROXY_CALLS = 60


def send(stdin: Any, obj: Dict[str, Any]) -> None:
    stdin.write(json.dumps(obj).encode() + b"\n")
    stdin.flush()


def drive_proxy(proxy: subprocess.Popen, errors: List[str]) -> None:
    """Plays an MCP client: initialize, then one echo call at a time, each answered."""
    try:
        send(proxy.stdin, {"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "pytest", "version": "1"}}})
        assert proxy.stdout.readline(), "the proxy answers initialize"
        send(proxy.stdin, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        for i in range(PROXY_CALLS):
            send(proxy.stdin, {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                               "params": {"name": "echo", "arguments": {"n": i, "password": "never-in-the-log"}}})
            answer = json.loads(proxy.stdout.readline())
            assert answer["id"] == i, answer
        proxy.stdin.close()
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(f"proxy client: {e!r}")


def feed_cli(append: subprocess.Popen, errors: List[str]) -> None:
    """Feeds `append --stdin` a few lines at a time, so it writes while the others do."""
    try:
        for i in range(CLI_RECORDS):
            event = {"event_id": f"cli-{i}", "tool": "helix_get_ticket", "status": "success", "latency_ms": i}
            append.stdin.write(json.dumps(event).encode() + b"\n")
            if i % 5 == 4:
                append.stdin.flush()
                time.sleep(0.002)
        append.stdin.close()
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(f"append --stdin feeder: {e!r}")


@pytest.mark.parametrize("durability", ["sync", "buffered"])
def test_processes_threads_cli_and_proxy_extend_one_chain(tmp_path: Path, durability: str) -> None:
    log = tmp_path / "audit.jsonl"
    go = tmp_path / "go"
    env = clean_env()
    binary = str(nexus_audit_bin())

    appenders = [
        subprocess.Popen(
            [sys.executable, str(HERE / "appender.py"), str(log), str(p), str(THREADS), str(PER_THREAD), durability, str(go)],
            env=env, stderr=subprocess.PIPE)
        for p in range(PROCS)
    ]
    cli = subprocess.Popen([binary, "--file", str(log), "append", "--stdin", "--batch", "5", "--durability", durability],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    proxy = subprocess.Popen(
        [binary, "--file", str(log), "proxy", "--durability", durability, "--", sys.executable, str(ROOT / "tests" / "mcp" / "peer.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    errors: List[str] = []
    drivers = [threading.Thread(target=drive_proxy, args=(proxy, errors)),
               threading.Thread(target=feed_cli, args=(cli, errors))]
    go.touch()
    for d in drivers:
        d.start()
    for d in drivers:
        d.join(timeout=120)
    for name, proc in [*((f"appender {i}", a) for i, a in enumerate(appenders)), ("append --stdin", cli), ("proxy", proxy)]:
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "timeout"
        if code != 0:
            errors.append(f"{name} exited {code}: {proc.stderr.read().decode(errors='replace') if proc.stderr else ''}")
    assert not errors, errors

    recs = records(log)
    assert_one_chain(recs)
    assert_verifies(log)

    ids = Counter(r.get("event_id") for r in recs)
    expected_py = {f"py-{p}-{t}-{i}" for p in range(PROCS) for t in range(THREADS) for i in range(PER_THREAD)}
    expected_cli = {f"cli-{i}" for i in range(CLI_RECORDS)}
    assert {i for i in ids if i.startswith("py-")} == expected_py
    assert {i for i in ids if i.startswith("cli-")} == expected_cli
    assert max(ids.values()) == 1, "no record written twice"
    calls = Counter(r["correlation_id"] for r in recs if r.get("action") == "mcp_call" and "correlation_id" in r)
    assert calls == Counter({str(i): 1 for i in range(PROXY_CALLS)})
    actions = Counter(r.get("action") for r in recs)
    assert actions["server_start"] == 1 and actions["server_stop"] == 1

    # Secrets given by every writer stayed out of the file.
    text = log.read_text(encoding="utf-8")
    assert "sk-never-in-the-log" not in text and "never-in-the-log" not in text
