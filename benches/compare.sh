#!/usr/bin/env bash
# Times nexus-audit's commands on a generated log next to the standard tools, and prints the
# ratios the performance targets are stated in (README.md, "Performance").
#
#   benches/compare.sh               # a 1 GiB log (about 1.7 million records) in bench-data/
#   SIZE_MIB=256 benches/compare.sh  # a smaller one
#   THREADS="1 2 4 8" benches/compare.sh  # the core counts for the scaling lines
#
# Installs hyperfine, jq and openssl with apt-get when they are missing (not part of CI).
# The log is written by the project's own writer: gen_events | nexus-audit append --stdin.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
DIR=${BENCH_DIR:-bench-data}
THREADS=${THREADS:-"1 $(nproc)"}
RECORDS=$((SIZE_MIB * 1024 * 1024 / 640))
LOG="$DIR/bench-${SIZE_MIB}m.jsonl"
EVENTS="$DIR/events-${SIZE_MIB}m.jsonl"
BIN=target/release/nexus-audit

need=()
for tool in hyperfine jq openssl python3; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
    echo "installing ${need[*]} with apt-get" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --quiet --bin nexus-audit --example gen_events
mkdir -p "$DIR"

if [ ! -s "$EVENTS" ]; then
    echo "generating $RECORDS events" >&2
    target/release/examples/gen_events "$RECORDS" >"$EVENTS"
fi
# The append measurement writes the log the other commands read.
rm -f "$LOG"
start=$(date +%s.%N)
"$BIN" --file "$LOG" append --stdin --durability none <"$EVENTS" >/dev/null
end=$(date +%s.%N)
bytes=$(stat -c %s "$LOG")
records=$(wc -l <"$LOG")

# Warm the page cache: every tool below reads the same cached file.
cat "$LOG" >/dev/null

RESULTS="$DIR/compare-results"
mkdir -p "$RESULTS"
run() { # name, runs, command...
    local name=$1 runs=$2 warmup=1
    shift 2
    ((runs > 1)) || warmup=0
    hyperfine --style none --warmup "$warmup" --runs "$runs" --export-json "$RESULTS/$name.json" \
        --command-name "$name" "$@" >/dev/null 2>&1 || {
        echo "failed: $*" >&2
        exit 1
    }
}

JQ_STATS='reduce inputs as $r ({}; .tool[$r.tool] += 1 | .status[$r.status] += 1 | .shard[$r.shard] += 1)'

echo "timing (hyperfine) on $LOG" >&2
run openssl 5 "openssl dgst -sha256 $LOG"
run verify 5 "$BIN --file $LOG verify --output json"
run stats 5 "$BIN --file $LOG stats --output json"
run jq 1 "jq -n '$JQ_STATS' $LOG"
run query 5 "$BIN --file $LOG query --user 'alice*' --status error --limit 0 --output jsonl"
run tail 20 "$BIN --file $LOG tail -n 100 --output jsonl"
run gnu-tail 20 "tail -n 100 $LOG"
for t in $THREADS; do
    run "verify-t$t" 3 "$BIN --file $LOG verify --threads $t --output json"
    run "stats-t$t" 3 "$BIN --file $LOG stats --threads $t --output json"
done

# Peak anonymous memory (heap and stacks, not the mapped file) of verify and stats, on this
# log and on one a quarter of its size: the two must be about equal.
peak_anon_kib() {
    "$@" >/dev/null &
    local pid=$! peak=0 v
    while kill -0 "$pid" 2>/dev/null; do
        v=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        ((v > peak)) && peak=$v
        sleep 0.005
    done
    wait "$pid" || true
    echo "$peak"
}
QUARTER="$DIR/bench-quarter.jsonl"
head -c $((bytes / 4)) "$LOG" | sed '$d' >"$QUARTER"
heap_verify_full=$(peak_anon_kib "$BIN" --file "$LOG" verify --output json)
heap_verify_quarter=$(peak_anon_kib "$BIN" --file "$QUARTER" verify --output json)
heap_stats_full=$(peak_anon_kib "$BIN" --file "$LOG" stats --output json)
heap_stats_quarter=$(peak_anon_kib "$BIN" --file "$QUARTER" stats --output json)
rm -f "$QUARTER"

python3 - "$RESULTS" "$bytes" "$records" "$start" "$end" "$THREADS" \
    "$heap_verify_full" "$heap_verify_quarter" "$heap_stats_full" "$heap_stats_quarter" <<'EOF'
import json, os, sys
(results, size, records, t0, t1, threads,
 hv_full, hv_quarter, hs_full, hs_quarter) = sys.argv[1:]
size, records = int(size), int(records)
mean = lambda name: json.load(open(os.path.join(results, name + ".json")))["results"][0]["mean"]
gib = size / 2**30
append_s = float(t1) - float(t0)
openssl, verify, stats, jq, query, tail, gnu_tail = (mean(n) for n in
    ["openssl", "verify", "stats", "jq", "query", "tail", "gnu-tail"])
print(f"log: {size:,} bytes ({gib:.2f} GiB), {records:,} records, {size / records:.0f} bytes a record")
print(f"cores: {os.cpu_count()}, {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}")
print()
print(f"| operation | nexus-audit | comparison | ratio | target |")
print(f"|---|---|---|---|---|")
print(f"| verify | {verify:.3f} s | openssl dgst -sha256 {openssl:.3f} s | {verify / openssl:.2f}x openssl | <= 0.8x |")
print(f"| stats --output json | {stats:.3f} s = {gib / stats:.2f} GiB/s | jq reduce {jq:.1f} s | {jq / stats:.0f}x faster than jq | >= 1 GiB/s, >= 40x jq |")
print(f"| tail -n 100 | {tail * 1000:.1f} ms | GNU tail {gnu_tail * 1000:.1f} ms | {tail / gnu_tail:.2f}x GNU tail | <= 5 ms |")
print(f"| query, two filters, whole file | {query:.3f} s | stats {stats:.3f} s | {query / stats:.2f}x stats | <= 1.5x |")
print(f"| append --stdin --durability none | {records / append_s:,.0f} records/s ({append_s:.2f} s) | | | >= 1,000,000/s |")
print()
for t in threads.split():
    v, s = mean(f"verify-t{t}"), mean(f"stats-t{t}")
    print(f"--threads {t}: verify {v:.3f} s ({gib / v:.2f} GiB/s), stats {s:.3f} s ({gib / s:.2f} GiB/s)")
print()
print(f"peak anonymous memory (heap, not the mapped file): verify {int(hv_full) / 1024:.1f} MiB "
      f"on the whole log, {int(hv_quarter) / 1024:.1f} MiB on a quarter of it; "
      f"stats {int(hs_full) / 1024:.1f} MiB / {int(hs_quarter) / 1024:.1f} MiB")
EOF
