"""One Python process of the concurrency test: THREADS threads share one AuditLogger and each
records COUNT tool calls with event ids `py-PROC-THREAD-I`, after GO_FILE appears.

    python appender.py LOG PROC THREADS COUNT DURABILITY GO_FILE
"""

import os
import sys
import threading
import time

import nexus_audit


def main() -> None:
    log, proc, threads, count, durability, go = sys.argv[1:]
    logger = nexus_audit.AuditLogger(log, False, durability=durability)
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("appender: the go file never appeared")
        time.sleep(0.005)

    errors = []

    def work(t: int) -> None:
        try:
            for i in range(int(count)):
                logger.record(
                    event_id=f"py-{proc}-{t}-{i}",
                    tool="workday_get_worker",
                    args={"proc": int(proc), "thread": t, "i": i, "api_key": "sk-never-in-the-log"},
                    status="success",
                    latency_ms=i,
                )
        except BaseException as e:  # noqa: BLE001 - reported to the test below
            errors.append(repr(e))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(int(threads))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    logger.close()
    if errors:
        sys.exit(f"appender {proc}: {errors}")


if __name__ == "__main__":
    main()
