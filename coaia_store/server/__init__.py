"""Interfaces, for agents: the MCP server (tools, resources, prompts) and its stdio and HTTP transports.

May import every layer below. A tool is a thin call of the same library function as its CLI command.
``app`` builds the server; ``profiles`` picks the published tools; ``tools_*`` hold one tool area each;
``replies``, ``arguments``, ``schemas`` and ``hints`` shape what every tool sends and takes.
"""

from .app import build_server

__all__ = ["build_server"]
