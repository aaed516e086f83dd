#!/usr/bin/env bash
# Measures `ship` to PostgreSQL with a release build: records/s for 100,000 records, and the
# lag under `ship --follow` while records are appended at 1,000 a second for 30 s.
#
#   cargo build --release --bin nexus-audit && tests/ship/measure-pg.sh
#
# Starts its own server (initdb as nobody, unix socket in a temporary directory, fsync on as
# by default) and stops it by pid at the end. Needs Debian's postgresql and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-$PWD/target/release/nexus-audit}
PG=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
[ -x "$PG/initdb" ] || { echo "install Debian's postgresql first" >&2; exit 2; }
work=$(mktemp -d)
chmod 755 "$work"
mkdir "$work/pg" && chown nobody "$work/pg"
as_nobody() { if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
as_nobody "$PG/initdb" -D "$work/pg/data" -A trust -U postgres -E UTF8 >/dev/null
as_nobody "$PG/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -o "-k $work/pg -c listen_addresses=''" -w start >/dev/null
stop() {
    kill -INT "$(head -1 "$work/pg/data/postmaster.pid")" 2>/dev/null || true
    sleep 1
    rm -rf "$work"
}
trap stop EXIT
url="postgres://postgres@/postgres?host=$work/pg&table=audit_log"

python3 - "$work/in.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(100_000):
        f.write(json.dumps({"tool": "workday_get_worker", "server_id": "workday-mcp",
            "user_id": f"user{i % 40}@example.com", "status": "success", "latency_ms": i % 900,
            "args_summary": {"query": f"item {i}", "limit": i % 50}}) + "\n")
EOF
"$BIN" -f "$work/a.jsonl" append --stdin --durability none < "$work/in.jsonl" >/dev/null
start=$(date +%s.%N)
"$BIN" -f "$work/a.jsonl" ship --to "$url" --batch 1000 2>/dev/null
end=$(date +%s.%N)
python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'ship to PostgreSQL: 100,000 records in {s:.2f} s = {100000/s:,.0f} records/s')" "$start" "$end"
"$BIN" -f "$work/a.jsonl" verify --against "$url" --output table

# Lag under --follow at 1,000 appends a second for 30 s.
"$BIN" -f "$work/b.jsonl" append --tool warmup >/dev/null
"$BIN" -f "$work/b.jsonl" ship --to "$url" --follow --progress-ms 1000 2>"$work/follow.err" &
shipper=$!
python3 - "$BIN" "$work/b.jsonl" <<'EOF'
import subprocess, sys, time, json
p = subprocess.Popen([sys.argv[1], "-f", sys.argv[2], "append", "--stdin", "--durability", "none"],
                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
t0 = time.monotonic()
for tick in range(3000):           # 30 s, 10 records every 10 ms
    for j in range(10):
        p.stdin.write(json.dumps({"tool": "t", "status": "success", "n": tick * 10 + j}) + "\n")
    p.stdin.flush()
    delay = t0 + (tick + 1) * 0.01 - time.monotonic()
    if delay > 0:
        time.sleep(delay)
p.stdin.close()
p.wait()
EOF
sleep 3
kill -TERM "$shipper"
wait "$shipper" || true
grep 'behind:' "$work/follow.err" | python3 -c '
import re, sys
rows = [(int(m.group(1).replace(",", "")), float(m.group(2))) for m in
        (re.search(r"behind: ([\d,]+) records, ([\d.]+) s", l) for l in sys.stdin) if m]
recs = [r for r, _ in rows[:-1]] or [0]
secs = [s for _, s in rows[:-1]] or [0.0]
print(f"--follow at 1,000 appends/s: {len(rows)} progress lines; behind max {max(recs)} records / {max(secs):.2f} s, mean {sum(recs)/len(recs):.0f} records / {sum(secs)/len(secs):.2f} s; last line {rows[-1] if rows else None}")
'
tail -1 "$work/follow.err"
