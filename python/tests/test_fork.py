"""A logger used before `fork` keeps working in parent and child: one chain, each record once.

Each scenario runs in a fresh interpreter, so a deadlock or a crash after fork fails the test
instead of hanging pytest."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from conftest import assert_one_chain, assert_verifies, records, run_python


def run(code: str, log: Path, timeout: float = 90) -> None:
    run_python(textwrap.dedent(code), str(log), timeout=timeout)


def event_ids(log: Path) -> Counter:
    recs = records(log)
    assert_one_chain(recs)
    assert_verifies(log)
    return Counter(r["event_id"] for r in recs)


@pytest.mark.parametrize("durability", ["sync", "none", "buffered"])
def test_parent_and_child_append_after_fork_to_one_chain(log: Path, durability: str) -> None:
    run(
        f"""
        import os, sys, threading
        import nexus_audit
        log = nexus_audit.AuditLogger(sys.argv[1], durability={durability!r})
        log.record(event_id="before", tool="t", args={{}}, status="success", latency_ms=1)
        log.flush()
        def burst(who):
            for i in range(50):
                log.record(event_id=f"{{who}}-{{i}}", tool="t", args={{}}, status="success", latency_ms=i)
        pid = os.fork()
        if pid == 0:
            try:
                burst("child")
                log.close()
            except BaseException as e:
                print("child failed:", repr(e), file=sys.stderr)
                os._exit(1)
            os._exit(0)
        burst("parent")
        log.close()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        """,
        log,
    )
    ids = event_ids(log)
    assert set(ids) == {"before"} | {f"{w}-{i}" for w in ("parent", "child") for i in range(50)}
    assert max(ids.values()) == 1


def test_multiprocessing_fork_pool_workers_share_the_parents_logger(log: Path) -> None:
    run(
        """
        import multiprocessing, sys
        import nexus_audit
        LOG = nexus_audit.AuditLogger(sys.argv[1])
        LOG.record(event_id="parent", tool="t", args={}, status="success", latency_ms=0)
        def work(i):
            LOG.record(event_id=f"task-{i}", tool="workday_get_worker", args={"i": i}, status="success", latency_ms=i)
            return i
        if __name__ == "__main__":
            with multiprocessing.get_context("fork").Pool(4) as pool:
                assert sorted(pool.map(work, range(200))) == list(range(200))
            LOG.record(event_id="parent-after", tool="t", args={}, status="success", latency_ms=0)
        """,
        log,
    )
    ids = event_ids(log)
    assert set(ids) == {"parent", "parent-after"} | {f"task-{i}" for i in range(200)}
    assert max(ids.values()) == 1


def test_buffered_records_queued_before_fork_are_written_once_by_the_parent(log: Path) -> None:
    # The child ends normally (interpreter shutdown drops its copy of the logger): it must not
    # write the parent's queued records a second time, nor hang joining the parent's flusher.
    run(
        """
        import gc, os, sys
        import nexus_audit
        log = nexus_audit.AuditLogger(sys.argv[1], durability="buffered")
        for i in range(10):
            log.record(event_id=f"queued-{i}", tool="t", args={}, status="success", latency_ms=i)
        pid = os.fork()
        if pid == 0:
            log.record(event_id="child", tool="t", args={}, status="success", latency_ms=0)
            log.flush()
            del log
            gc.collect()
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        log.close()
        """,
        log,
    )
    ids = event_ids(log)
    assert set(ids) == {"child"} | {f"queued-{i}" for i in range(10)}
    assert max(ids.values()) == 1


def test_fork_while_other_threads_append_does_not_deadlock_the_child(log: Path) -> None:
    run(
        """
        import os, sys, threading
        import nexus_audit
        log = nexus_audit.AuditLogger(sys.argv[1], durability="none")
        stop = threading.Event()
        def spin(t):
            i = 0
            while not stop.is_set():
                log.record(event_id=f"spin-{t}-{i}", tool="t", args={"i": i}, status="success", latency_ms=1)
                i += 1
        threads = [threading.Thread(target=spin, args=(t,)) for t in range(3)]
        for t in threads:
            t.start()
        children = []
        for c in range(20):
            pid = os.fork()
            if pid == 0:
                try:
                    log.record(event_id=f"child-{c}", tool="t", args={}, status="success", latency_ms=0)
                    os._exit(0)
                except BaseException as e:
                    print(repr(e), file=sys.stderr)
                    os._exit(1)
            children.append(pid)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
        stop.set()
        for t in threads:
            t.join()
        log.close()
        """,
        log,
        timeout=120,
    )
    ids = event_ids(log)
    assert {f"child-{c}" for c in range(20)} <= set(ids)
    assert max(ids.values()) == 1


def test_a_child_that_closes_the_inherited_logger_leaves_the_parents_open(log: Path) -> None:
    run(
        """
        import os, sys
        import nexus_audit
        log = nexus_audit.AuditLogger(sys.argv[1])
        log.record(event_id="a", tool="t", args={}, status="success", latency_ms=0)
        pid = os.fork()
        if pid == 0:
            log.close()
            os._exit(0 if log.closed else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not log.closed
        log.record(event_id="b", tool="t", args={}, status="success", latency_ms=0)
        """,
        log,
    )
    assert set(event_ids(log)) == {"a", "b"}
