#!/usr/bin/env bash
# Creates target/mcp-venv with the official MCP Python SDK (mcp 2.3.0) for the proxy's SDK
# tests. Idempotent; parallel runs wait on a lock. Fails loudly when PyPI cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/mcp-venv
mkdir -p target
exec 9>target/mcp-venv.lock
flock 9
if [ -f "$venv/.mcp-2.3.0" ]; then
    exit 0
fi
python3 -m venv --clear "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'mcp==2.3.0'
"$venv/bin/python" -c 'import mcp, mcp_types'
touch "$venv/.mcp-2.3.0"
