"""Interfaces, for agents: the MCP server (tools, resources, prompts) and its stdio and HTTP transports.

May import every layer below. A tool is a thin call of the same library function as its CLI command.
"""
