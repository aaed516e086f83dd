#!/usr/bin/env bash
# Records/s shipped to a real rsyslogd (imtcp on loopback, omfile writing %rawmsg%): the number
# the README gives. Run as root (rsyslogd runs as nobody) after `cargo build --release`:
#   tests/ship/rsyslog_throughput.sh            # 100,000 records, --batch 500
#   N=100000 BATCH=10000 tests/ship/rsyslog_throughput.sh
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/nexus-audit}
N=${N:-100000}
BATCH=${BATCH:-500}
D=$(mktemp -d); mkdir -p $D/rs; chown nobody:nogroup $D/rs; chmod 755 $D
python3 - "$N" > $D/events.jsonl <<'PY'
import json, sys
n = int(sys.argv[1])
tools = ["workday_get_worker", "ad_get_user", "helix_create_ticket", "fedex_track_shipment"]
for i in range(n):
    print(json.dumps({"action": "mcp_call", "tool": tools[i % 4], "server_id": "mcp-%d" % (i % 7),
        "user_id": "user%d@example.com" % (i % 50), "session_id": "sess-%d" % (i // 25),
        "args_summary": {"query": "item %d" % i, "limit": i % 50}, "status": "success",
        "latency_ms": 5 + i % 900, "response_size": 1000 + i % 5000, "filtered_size": 200 + i % 900}))
PY
$BIN --file $D/audit.jsonl append --stdin < $D/events.jsonl
echo "log: $(wc -l < $D/audit.jsonl) records, $(stat -c %s $D/audit.jsonl) bytes"
cat > $D/rs/conf <<CONF
global(workDirectory="$D/rs" maxMessageSize="64k")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="nx") { action(type="omfile" file="$D/rs/out.log" template="raw") }
input(type="imtcp" port="0" address="127.0.0.1" listenPortFileName="$D/rs/port" ruleset="nx")
CONF
setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/sbin/rsyslogd -n -f $D/rs/conf -i $D/rs/pid &
RS=$!
trap 'kill $RS 2>/dev/null || true; rm -rf "$D"' EXIT
for _ in $(seq 100); do [ -s $D/rs/port ] && break; sleep 0.05; done
P=$(cat $D/rs/port)
t0=$(date +%s.%N)
/usr/bin/time -f "ship cpu: user %U s, sys %S s, wall %e s" $BIN --file $D/audit.jsonl ship --to syslog+tcp://127.0.0.1:$P --batch $BATCH --cursor $D/c.cursor
t1=$(date +%s.%N)
while [ "$(wc -l < $D/rs/out.log 2>/dev/null || echo 0)" -lt "$N" ]; do sleep 0.02; done
t2=$(date +%s.%N)
python3 -c "
n=$N; a=$t1-$t0; b=$t2-$t0
print(f'ship exited after {a:.2f} s: {n/a:,.0f} records/s; rsyslog had written all {n} after {b:.2f} s: {n/b:,.0f} records/s')"
echo "received: $(wc -l < $D/rs/out.log) messages"
