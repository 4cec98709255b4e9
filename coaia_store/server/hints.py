"""A published tool: its function and its annotations, the hints a host reads before calling it (does it only
read, can it destroy, is a repeat harmless)."""

from __future__ import annotations

from collections.abc import Callable

from mcp.types import CallToolResult, ToolAnnotations

ToolFn = Callable[..., CallToolResult]
Tool = tuple[ToolFn, ToolAnnotations]

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
NEW = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
CHANGE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
OVERWRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
