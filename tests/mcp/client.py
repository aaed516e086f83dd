"""Calls the test server's tools over stdio and prints what the client gets, one JSON line per
call: `python client.py MODE COMMAND [ARGS...]`, MODE `legacy` (initialize handshake) or
`modern` (the 2026-07-28 stateless protocol)."""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import Implementation

CALLS = [
    ("add", {"a": 2, "b": 3}),
    ("explode", {"reason": "on purpose"}),
    ("login", {"username": "alice", "password": "hunter2-SECRET"}),
    ("add", {"a": 40, "b": 2}),
]


async def main() -> None:
    mode = {"legacy": "legacy", "modern": "2026-07-28"}[sys.argv[1]]
    server = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:])
    info = Implementation(name="nexus-test-client", version="1.0")
    async with Client(server, mode=mode, client_info=info) as client:
        for name, args in CALLS:
            result = await client.call_tool(name, args)
            dumped = result.model_dump(mode="json", exclude_none=True)
            dumped.pop("_meta", None)
            dumped.pop("meta", None)
            print(json.dumps({"tool": name, "result": dumped}, sort_keys=True), flush=True)


asyncio.run(main())
