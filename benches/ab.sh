#!/usr/bin/env bash
# Two builds of nexus-audit, run alternately on the same log, the minimum of N runs each:
# a before/after comparison that a busy machine disturbs less than two separate compare.sh runs.
#
#   benches/ab.sh BEFORE_BIN AFTER_BIN LOG EVENTS [N]
#
# LOG: a log both builds read (e.g. bench-data/bench-256m.jsonl from compare.sh); EVENTS: the
# events compare.sh generated for it (bench-data/events-256m.jsonl), appended to a temporary log.
set -euo pipefail
before=$1 after=$2 log=$3 events=$4 n=${5:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
secs() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(((e - s) / 1000)); }
declare -A best
keep() { if [ -z "${best[$1]:-}" ] || [ "$2" -lt "${best[$1]}" ]; then best[$1]=$2; fi; }
for _ in $(seq "$n"); do
    for v in before after; do
        bin=${!v}
        keep "$v verify" "$(secs "$bin" --file "$log" verify --output json)"
        keep "$v stats" "$(secs "$bin" --file "$log" stats --output json)"
        keep "$v query" "$(secs "$bin" --file "$log" query --user 'alice*' --status error --limit 0 --output jsonl)"
        keep "$v tail" "$(secs "$bin" --file "$log" tail -n 100 --output jsonl)"
        rm -f "$tmp/a.jsonl"
        keep "$v append" "$(secs "$bin" --file "$tmp/a.jsonl" append --stdin --durability none <"$events")"
    done
    keep "openssl" "$(secs openssl dgst -sha256 "$log")"
done
records=$(wc -l <"$events")
printf '| operation | before | after |\n|---|---|---|\n'
for op in verify stats query tail; do
    printf '| %s | %d ms | %d ms |\n' "$op" $((best["before $op"] / 1000)) $((best["after $op"] / 1000))
done
printf '| append --stdin (records/s) | %d | %d |\n' \
    $((records * 1000000 / best["before append"])) $((records * 1000000 / best["after append"]))
printf 'openssl dgst -sha256 on the log: %d ms\n' $((best[openssl] / 1000))
