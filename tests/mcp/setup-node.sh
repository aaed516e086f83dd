#!/usr/bin/env bash
# Installs the official MCP TypeScript SDK (tests/mcp/node/package.json, every version pinned by
# its package-lock.json) into target/mcp-node for tests/proxy_ts.rs. Idempotent; parallel runs
# wait on a lock. Fails loudly when node, npm or the npm registry is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=target/mcp-node
mkdir -p target
exec 9>target/mcp-node.lock
flock 9
stamp="$dir/.installed-$(sha256sum tests/mcp/node/package-lock.json | cut -c1-16)"
if [ -f "$stamp" ]; then
    exit 0
fi
for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "tests/mcp/setup-node.sh: $tool is not installed; install Node.js 20 or later with npm" >&2
        exit 1
    fi
done
rm -rf "$dir"
mkdir -p "$dir"
cp tests/mcp/node/package.json tests/mcp/node/package-lock.json "$dir/"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
node -e 'require.resolve("@modelcontextprotocol/sdk/server/mcp.js", { paths: [process.argv[1]] })' "$PWD/$dir"
touch "$stamp"
