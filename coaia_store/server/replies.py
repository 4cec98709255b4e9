"""Reply shaping: every tool reply is compact JSON without nulls or empty lists, and a long list is cut to fit
``MAX_REPLY_CHARS`` with a note of how many were left out and how to get them."""

from __future__ import annotations

import json
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from ..graph.paging import REPLY_BUDGET, Pager

MAX_REPLY_CHARS = REPLY_BUDGET


def _pruned(value: Any) -> Any:
    """JSON without nulls and empty lists (a reply carries what is there, not what is not)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def as_data(value: BaseModel | dict[str, Any]) -> dict[str, Any]:
    data = value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value
    return _pruned(data)


def reply(value: BaseModel | dict[str, Any], summary: str | None = None) -> CallToolResult:
    """A tool result: compact JSON as structured content, the same JSON as text (after a one-line summary)."""
    data = as_data(value)
    text = compact_json(data)
    return CallToolResult(
        content=[TextContent(type="text", text=f"{summary}\n{text}" if summary else text)], structured_content=data
    )


def error_reply(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def bounded(data: dict[str, Any], key: str, how: str, budget: int = REPLY_BUDGET) -> dict[str, Any]:
    """Cut the list ``data[key]`` so the compact JSON fits ``budget``; say how many were left out and ``how`` to get them."""
    items = data.get(key) or []
    size = len(compact_json({k: v for k, v in data.items() if k != key})) + 200
    kept = 0
    for item in items:
        size += len(compact_json(item)) + 1
        if size > budget:
            break
        kept += 1
    if kept == len(items):
        return data
    return {
        **data,
        key: items[:kept],
        "leftOut": len(items) - kept,
        "note": f"{len(items) - kept} more {key} left out to keep the reply short; {how}",
    }


def recut(data: dict[str, Any], key: str, pager: Pager, cursor: str | None, total: int) -> dict[str, Any]:
    """After :func:`bounded` cut a page short, its nextCursor starts right after what was kept."""
    if "leftOut" in data:
        data["nextCursor"] = pager.cursor(pager.offset(cursor, total) + len(data[key]), total)
    return data


def page(items: list[Any], limit: int, cursor: str | None, pager: Pager) -> tuple[list[Any], str | None]:
    """One page of ``items`` from ``cursor``, and the cursor of the next page."""
    start = pager.offset(cursor, len(items))
    end = min(start + limit, len(items))
    return items[start:end], pager.cursor(end, len(items))
