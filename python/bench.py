"""AuditLogger.record calls per second, nexus_audit next to the old Nexus-MCP logger.

    target/py-venv/bin/python python/bench.py --old PATH/TO/old_audit_logger.py

(scripts/test-python makes that venv with the package installed.) For each logger it times
`record` from one Python thread, then from 4 processes appending to the same file at once,
each for --seconds, and prints calls/s (and, for one thread, the CPU time a call costs, which
other work on a shared machine does not inflate). nexus_audit runs with durability "none" and "sync";
the old logger has neither a lock nor a sync, so it has one row. The logs go to a fresh
directory under --dir (default: target/py-bench, on the same disk as the repository: a tmpfs
would make "sync" free).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, List, Tuple

# NOTE: run as a script, this file's folder (python/, which holds the package's sources
# without the built extension) comes first on sys.path; the installed package is wanted.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ARGS = {"employee_id": "E004217", "fields": ["name", "title", "manager"], "include_history": False, "api_key": "sk-bench"}


def make_logger(kind: str, log: Path, old_path: str) -> Any:
    if kind == "old":
        spec = importlib.util.spec_from_file_location("old_audit_logger", old_path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.AuditLogger(log_file=log, log_to_stderr=False)
    import nexus_audit

    return nexus_audit.AuditLogger(log, False, durability=kind.split("-")[1])


def run_for(logger: Any, seconds: float) -> int:
    n = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(10):
            logger.record(event_id=str(uuid.uuid4()), tool="workday_get_worker", args=ARGS, status="success", latency_ms=42)
        n += 10
    return n


def worker(kind: str, log: Path, old_path: str, seconds: float, barrier: Any, out: Any) -> None:
    logger = make_logger(kind, log, old_path)
    barrier.wait()
    out.put(run_for(logger, seconds))
    if hasattr(logger, "close"):
        logger.close()


def one_thread(kind: str, log: Path, old_path: str, seconds: float) -> Tuple[float, float]:
    """calls/s, and CPU µs per call (user + system: what a busy machine does not inflate)."""
    logger = make_logger(kind, log, old_path)
    run_for(logger, min(0.2, seconds))  # warm up
    start, cpu = time.perf_counter(), time.process_time()
    n = run_for(logger, seconds)
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1e6


def processes(kind: str, log: Path, old_path: str, seconds: float, count: int) -> float:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(count + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(kind, log, old_path, seconds, barrier, out)) for _ in range(count)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    total = sum(out.get() for _ in procs)
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="path of the old audit_logger module")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default 3)")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--dir", default=str(Path(__file__).resolve().parent.parent / "target" / "py-bench"))
    a = parser.parse_args()

    base = Path(a.dir)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    rows: List[Tuple[str, float, float, float]] = []
    for kind, label in [("old", "old logger (no lock, no sync)"), ("new-none", 'nexus_audit, durability "none"'), ("new-sync", 'nexus_audit, durability "sync"')]:
        single, cpu = one_thread(kind, base / f"{kind}-1.jsonl", a.old, a.seconds)
        multi = processes(kind, base / f"{kind}-{a.processes}.jsonl", a.old, a.seconds, a.processes)
        rows.append((label, single, cpu, multi))
        print(f"{label:34} {single:>10,.0f} {cpu:>8.1f} {multi:>12,.0f}", file=sys.stderr)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} cores (load average {load}), {a.seconds:g} s per run\n")
    print(f"| logger | 1 thread, calls/s | 1 thread, CPU µs a call | {a.processes} processes, calls/s |")
    print("|---|---:|---:|---:|")
    for label, single, cpu, multi in rows:
        print(f"| {label} | {single:,.0f} | {cpu:.1f} | {multi:,.0f} |")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
