"""An MCP server for the proxy tests, on the official Python SDK (mcp 2.3.0), over stdio."""

from mcp.server import MCPServer

mcp = MCPServer("nexus-test-server")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@mcp.tool()
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"exploded: {reason}")


@mcp.tool()
def login(username: str, password: str) -> str:
    """Pretends to log in."""
    return f"welcome {username}"


if __name__ == "__main__":
    mcp.run()
