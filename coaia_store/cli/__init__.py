"""Interfaces, for people: the ``coaia-store`` command (typer) and its views.

May import every layer below. Each command calls the same library function as its MCP tool.
"""

from .app import app, main

__all__ = ["app", "main"]
