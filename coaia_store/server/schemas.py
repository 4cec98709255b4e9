"""The published tool definitions: input schemas compacted (no titles, optional arguments shown as their type,
models inlined, no extra arguments), descriptions on one line, and the size of a ``tools/list`` as sent."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The published input schema: no ``title`` keys, ``X | None = None`` shown as ``X``, models inlined without
    their docstrings, no extra arguments."""
    defs = {name: {k: v for k, v in d.items() if k != "description"} for name, d in schema.get("$defs", {}).items()}
    inlined = _inline({k: v for k, v in schema.items() if k != "$defs"}, defs)
    return _compact(inlined)  # type: ignore[no-any-return]


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _inline({**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    return {k: _inline(v, defs) for k, v in node.items()}


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _compact(node: Any, in_properties: bool = False) -> Any:
    if isinstance(node, list):
        return [_compact(n) for n in node]
    if not isinstance(node, dict):
        return node
    if in_properties:  # keys are argument names, values are schemas
        return {k: _compact(v) for k, v in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        out[key] = _compact(value, in_properties=key in ("properties", "$defs"))
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and {"type": "null"} in any_of and out.get("default", 0) is None:
        rest = [a for a in any_of if a != {"type": "null"}]
        out.pop("anyOf")
        out.pop("default")
        out = {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **out}
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def tools_list_bytes(tools: Sequence[Any]) -> int:
    """The size of a ``tools/list`` result's ``tools`` array as sent: compact JSON, UTF-8."""
    listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    return len(json.dumps(listed, ensure_ascii=False, separators=(",", ":")).encode())
