// An MCP server for the proxy tests on the official MCP TypeScript SDK, over stdio, in plain
// JavaScript (no compiler): `node server.mjs SDK_DIR`, where SDK_DIR holds the SDK's
// node_modules (target/mcp-node, set up by tests/mcp/setup-node.sh). The same tools as
// tests/mcp/server.py, so the Python SDK's client (tests/mcp/client.py) can drive both.
import { createRequire } from "node:module";
import { resolve } from "node:path";

const require = createRequire(resolve(process.argv[2], "package.json"));
const { McpServer } = require("@modelcontextprotocol/sdk/server/mcp.js");
const { StdioServerTransport } = require("@modelcontextprotocol/sdk/server/stdio.js");
const { z } = require("zod");

const server = new McpServer({ name: "nexus-ts-server", version: "1.0.0" });

server.registerTool(
  "add",
  { description: "Add two numbers.", inputSchema: { a: z.number(), b: z.number() } },
  async ({ a, b }) => ({ content: [{ type: "text", text: String(a + b) }] }),
);

server.registerTool(
  "explode",
  { description: "Always fails.", inputSchema: { reason: z.string() } },
  async ({ reason }) => {
    throw new Error(`exploded: ${reason}`);
  },
);

server.registerTool(
  "login",
  { description: "Pretends to log in.", inputSchema: { username: z.string(), password: z.string() } },
  async ({ username }) => ({ content: [{ type: "text", text: `welcome ${username}` }] }),
);

await server.connect(new StdioServerTransport());
