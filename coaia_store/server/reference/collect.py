"""Collecting the tool reference: every tool each profile publishes (one entry per schema variant), each run
once through ``mcp.Client`` with its example against a fresh example store."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp import Client

from ...store import Store
from ..app import build_server
from ..profiles import PROFILES
from ..schemas import tools_list_bytes
from .examples import EXAMPLES, GUESSES, MEMORY_EXAMPLES, DocDisk, FixedClock, deterministic_chart_ids, fill, seed
from .normalise import Normaliser


@dataclass
class ToolDoc:
    name: str
    profiles: list[str]
    tool: Any  # mcp.types.Tool
    call: dict[str, Any] | None = None
    result: Any = None
    is_error: bool = False
    note: str = ""
    variant: str = ""  # "" or a profile name when this is a profile-specific variant

    @property
    def title(self) -> str:
        return f"`{self.name}` ({self.variant} profile)" if self.variant else f"`{self.name}`"


@dataclass
class Reference:
    tools: list[ToolDoc] = field(default_factory=list)
    profiles: dict[str, list[str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def _signature(tool: Any) -> str:
    data = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("_meta", None)
    data.pop("meta", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


async def _list_tools(profile: str) -> list[Any]:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / ".coaia", clock=FixedClock()) as store:
        async with Client(build_server(store, profile)) as client:  # type: ignore[arg-type]
            return list((await client.list_tools()).tools)


async def collect() -> Reference:
    ref = Reference()
    variants: dict[tuple[str, str], ToolDoc] = {}
    for profile in PROFILES:
        tools = await _list_tools(profile)
        ref.profiles[profile] = [t.name for t in tools]
        ref.sizes[profile] = tools_list_bytes(tools)
        for tool in tools:
            key = (tool.name, _signature(tool))
            if key in variants:
                variants[key].profiles.append(profile)
                continue
            variant = profile if any(name == tool.name for name, _ in variants) else ""
            doc = ToolDoc(tool.name, [profile], tool, variant=variant)
            variants[key] = doc
            ref.tools.append(doc)
    for doc in ref.tools:
        await _run_example(doc)
    return ref


def _example_arguments(doc: ToolDoc) -> tuple[dict[str, Any] | None, str]:
    table = MEMORY_EXAMPLES if doc.profiles[0] == "memory" else EXAMPLES
    if doc.name in table:
        return table[doc.name], ""
    return _guess_arguments(doc.tool.input_schema), "(arguments filled in from the schema: no example written yet)"


def _guess_arguments(schema: dict[str, Any]) -> dict[str, Any] | None:
    args: dict[str, Any] = {}
    for name in schema.get("required", []):
        if name not in GUESSES:
            return None
        args[name] = GUESSES[name]
    return args


async def _run_example(doc: ToolDoc) -> None:
    template, note = _example_arguments(doc)
    if template is None:
        doc.note = "No example yet: add one to `EXAMPLES` in `coaia_store/server/reference/examples.py`."
        return
    with tempfile.TemporaryDirectory() as tmp, deterministic_chart_ids():
        directory = Path(tmp) / ".coaia"
        with Store(directory, clock=FixedClock(), io=DocDisk()) as store:
            names = seed(store)
            args = fill(template, names)
            async with Client(build_server(store, doc.profiles[0])) as client:  # type: ignore[arg-type]
                result = await client.call_tool(doc.name, args)
        clean = Normaliser(directory)
        doc.call = {"name": doc.name, "arguments": clean(args)}
        doc.is_error = bool(result.is_error)
        if result.structured_content is not None and not result.is_error:
            doc.result = clean(result.structured_content)
        else:
            doc.result = clean("\n".join(getattr(c, "text", "") for c in result.content))
        doc.note = note
