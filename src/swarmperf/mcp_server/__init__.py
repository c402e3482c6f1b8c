"""The MCP server: swarmperf's questions as MCP tools and resources, for agents to call."""

from swarmperf.mcp_server.server import build_server

__all__ = ["build_server"]
