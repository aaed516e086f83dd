#!/usr/bin/env bash
# Installs what tests/serve.rs needs beyond Rust: Debian's `prometheus` (prometheus, promtool)
# and `chromium`. Idempotent: does nothing when they are already there. Fails loudly.
set -euo pipefail

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
# Unique package names, in order.
pkgs=$(printf '%s\n' "${need[@]}" | awk '!seen[$0]++' | tr '\n' ' ')

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "tests/serve/setup.sh: need root (or sudo) to install: $pkgs" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "tests/serve/setup.sh: installing $pkgs" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
# shellcheck disable=SC2086
"${sudo[@]}" apt-get install -y -q --no-install-recommends $pkgs

for tool in prometheus promtool chromium; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "tests/serve/setup.sh: $tool is still missing after installing $pkgs" >&2
        exit 1
    fi
done
