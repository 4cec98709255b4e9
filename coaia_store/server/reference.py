"""Generate docs/tools.md, the MCP tool reference, from the live server.

    python -m coaia_store.server.reference > docs/tools.md

For every profile the server is built in memory; every tool it publishes is listed once (a tool
whose schema differs between profiles, such as the ``memory`` profile's ``read_graph``, gets an
entry per variant) with its description, annotations, an arguments table taken from its input
schema, and one example call with its real result: each example runs through ``mcp.Client``
against a fresh temporary store seeded with a small example, with a fixed clock. Random parts of
the output (operation ids, chart-id suffixes, digests, the temporary path, file times) are
replaced by stable placeholders, so the page only changes when a tool, a schema or a result
shape changes. ``tests/test_docs.py`` fails when the committed page differs from a fresh one.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from .. import __version__
from ..charts import Charts
from ..charts import rules as chart_rules
from ..storage.fileio import FileIO
from ..store import Store
from .app import PROFILES, build_server, tools_list_bytes

START = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)
DOC_DIR = "/home/me/project/.coaia"
CHART_ID = "{chart}"
STEP_1, STEP_2 = "{chart}_action_1_00000001", "{chart}_action_2_00000002"

# One example call per tool (per profile variant). A tool not listed here gets a call built from its
# required arguments (see _guess_arguments); write one here when that is not a good example.
EXAMPLES: dict[str, dict[str, Any]] = {
    # chart tools
    "create_chart": {
        "desiredOutcome": "A cabin by the lake that sleeps six",
        "currentReality": "We own the land; no plans yet",
        "dueDate": "2027-09-30",
        "actionSteps": ["Draw plans", {"title": "Pour foundation", "dueDate": "2027-05-01", "owner": "Sam"}],
        "context": "personal",
    },
    "add_action_steps": {
        "chartId": CHART_ID,
        "actionSteps": [{"title": "Order seed potatoes", "dueDate": "2027-03-01"}],
    },
    "update_action_step": {"actionStep": STEP_1, "note": "Bought the lumber", "noteToReality": True, "owner": "Ana"},
    "remove_action_step": {"actionStep": STEP_2},
    "telescope_action_step": {
        "actionStep": STEP_1,
        "currentReality": "Lumber bought, no tools yet",
        "actionSteps": ["Borrow a saw", "Cut the boards"],
    },
    "complete": {"target": STEP_2},
    "update_chart": {"chartId": CHART_ID, "addToReality": ["Compost delivered"], "dueDate": "2027-07-01"},
    "move_chart": {"chartId": "{done_chart}", "toContext": "completed"},
    "get_chart": {"chartId": CHART_ID, "depth": 1},
    "list_charts": {"status": "active"},
    "advancement_report": {"windowDays": 30},
    # graph tools
    "create_entity": {
        "entities": [{"name": "grace", "entityType": "person", "observations": ["Reviews the billing code"]}],
        "context": "work",
    },
    "add_relation": {
        "relations": [{"from": "ada", "to": "billing-service", "relationType": "reviews"}],
        "context": "work",
    },
    "add_observations": {
        "observations": [{"entityName": "ada", "contents": ["Prefers mornings for reviews"]}],
        "context": "work",
    },
    "update_entity": {
        "name": "billing-service",
        "newName": "billing",
        "metadata": {"repo": "git@example.org:billing"},
        "context": "work",
    },
    "delete_from_graph": {
        "observations": [{"entityName": "ada", "observations": ["Leads the billing rewrite"]}],
        "relations": [{"from": "ada", "to": "billing-service", "relationType": "works_on"}],
        "context": "work",
    },
    "open_entities": {"names": ["ada"]},
    "search": {"query": "billing"},
    "read_graph": {"context": "work", "mode": "summary", "limit": 10},
    # store tools
    "storage_status": {},
    "validate_integrity": {"context": "work"},
    "backups": {"action": "list", "context": "work"},
    "history": {"chartId": CHART_ID, "limit": 5},
    "undo": {"context": "work"},
}

# The memory profile's tools take the official memory server's arguments.
MEMORY_EXAMPLES: dict[str, dict[str, Any]] = {
    "create_entities": {"entities": [{"name": "linus", "entityType": "person", "observations": ["Owns a rototiller"]}]},
    "create_relations": {
        "relations": [{"from": "grace", "to": "{chart}_desired_outcome", "relationType": "helps_with"}]
    },
    "add_observations": {"observations": [{"entityName": "grace", "contents": ["Free on Saturdays"]}]},
    "delete_entities": {"entityNames": ["grace"]},
    "delete_observations": {"deletions": [{"entityName": "grace", "observations": ["Grows tomatoes"]}]},
    "delete_relations": {
        "relations": [{"from": "ada", "to": "billing-service", "relationType": "works_on"}],
        "context": "work",
    },
    "read_graph": {"context": "work"},
    "search_nodes": {"query": "mornings"},
    "open_nodes": {"names": ["grace"]},
}

# Values used to fill the required arguments of a tool without an example.
GUESSES: dict[str, Any] = {
    "chartId": CHART_ID,
    "actionStep": STEP_1,
    "name": "ada",
    "names": ["ada"],
    "query": "billing",
    "context": "work",
    "title": "A new step",
    "observations": ["A new fact"],
}


# ----------------------------------------------------------------------------------------- the example store


class FixedClock:
    """Starts at ``START`` and moves one second per reading, so times are stable and ordered."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> datetime:
        return START + timedelta(seconds=next(self._ticks))


class DocDisk(FileIO):
    """A disk of fixed size and free space, so ``storage_status``'s capacity is stable on the page."""

    def disk_usage(self, path: str | Path) -> tuple[int, int]:
        return 100 << 30, 40 << 30


class _CountingSecrets:
    """Stands in for ``secrets`` in id generation: chart ids end ``000000000001``, ``000000000002``, ...;
    step names, counted apart, ``00000001``, ``00000002``, ..."""

    def __init__(self) -> None:
        self._counters: dict[int, itertools.count[int]] = {}

    def token_hex(self, nbytes: int) -> str:
        return f"{next(self._counters.setdefault(nbytes, itertools.count(1))):0{nbytes * 2}x}"


@contextlib.contextmanager
def _deterministic_chart_ids() -> Iterator[None]:
    original = chart_rules.secrets
    chart_rules.secrets = _CountingSecrets()  # type: ignore[assignment]
    try:
        yield
    finally:
        chart_rules.secrets = original


def seed(store: Store) -> dict[str, str]:
    """A chart in ``default`` (plus a completed one), two related people-and-project entities in ``work``,
    and a manual backup of ``work``. Returns the placeholders examples may use."""
    charts = Charts(store)
    made = charts.create_chart(
        desiredOutcome="A vegetable garden that feeds the household from June to September",
        currentReality="The yard is lawn; we have seeds and a budget of 300 EUR",
        dueDate="2027-06-01",
        actionSteps=["Build three raised beds", "Test the soil"],
    )
    done = charts.create_chart(
        desiredOutcome="A tidy shed",
        currentReality="Tools everywhere",
        dueDate="2026-12-01",
        actionSteps=["Hang the tools"],
    )
    charts.complete_chart(chartId=done.chart.chartId)
    store.create_entities([{"name": "grace", "entityType": "person", "observations": ["Grows tomatoes"]}])
    store.create_entities(
        [
            {
                "name": "ada",
                "entityType": "person",
                "observations": ["Leads the billing rewrite", "Prefers mornings for reviews"],
            },
            {
                "name": "billing-service",
                "entityType": "project",
                "observations": ["Invoices customers monthly"],
                "metadata": {"owner": "ada"},
            },
        ],
        context="work",
    )
    store.create_relations([{"from": "ada", "to": "billing-service", "relationType": "works_on"}], context="work")
    backup = store.backups.backup_context("work", "manual")
    assert backup is not None
    return {"{chart}": made.chart.chartId, "{done_chart}": done.chart.chartId, "{work_backup}": backup.id}


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, real in names.items():
            value = value.replace(key, real)
        return value
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------------------- normalising output

_VOLATILE_KEYS = {"lastModified": "2026-11-02T09:00:00.000Z", "sha256": "<sha256>"}
_HEX16 = re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])")
_RANDOM_SUFFIX = re.compile(r"(\d{8}T\d{6,12}Z)-[0-9a-f]{6}\b")
_INODE_SUFFIX = re.compile(r"(\d{8}T\d{6,12}Z)-\d+(\.jsonl\.gz)")


class Normaliser:
    """Replaces what differs between runs: the temporary directory, operation ids (16 hex digits, numbered
    in order of appearance), random backup-name suffixes, digests and file modification times."""

    def __init__(self, directory: Path) -> None:
        self._paths = [(str(directory), DOC_DIR), (str(directory.parent), str(Path(DOC_DIR).parent))]
        self._ops: dict[str, str] = {}

    def __call__(self, value: Any, key: str | None = None) -> Any:
        if key in _VOLATILE_KEYS and isinstance(value, str):
            return _VOLATILE_KEYS[key]
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return self._record(value)
        return value

    def _record(self, value: dict[str, Any]) -> dict[str, Any]:
        out = {k: self(v, k) for k, v in value.items()}
        if "sha256" in out and isinstance(out.get("size"), int):
            out["size"] = "<gzip size>"  # the compressed size depends on the random operation ids
        stamp = out.get("sourceStamp")
        if isinstance(stamp, list) and len(stamp) == 3:
            out["sourceStamp"] = ["<inode>", stamp[1], "<mtime_ns>"]
        return out

    def _text(self, text: str) -> str:
        for real, shown in self._paths:
            text = text.replace(real, shown)
        text = _RANDOM_SUFFIX.sub(r"\1-000000", text)
        text = _INODE_SUFFIX.sub(r"\1-<inode>\2", text)
        return _HEX16.sub(self._op, text)

    def _op(self, match: re.Match[str]) -> str:
        return self._ops.setdefault(match.group(0), f"{len(self._ops) + 1:016x}")


# ----------------------------------------------------------------------------------------- collecting tools


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
        doc.note = "No example yet: add one to `EXAMPLES` in `coaia_store/server/reference.py`."
        return
    with tempfile.TemporaryDirectory() as tmp, _deterministic_chart_ids():
        directory = Path(tmp) / ".coaia"
        with Store(directory, clock=FixedClock(), io=DocDisk()) as store:
            names = seed(store)
            args = _fill(template, names)
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


# ----------------------------------------------------------------------------------------- rendering


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def schema_type(schema: dict[str, Any]) -> str:
    """A short, readable type for a JSON schema: ``string``, ``list of EntityInput``, ``"error" | "skip"``."""
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    if "anyOf" in schema:
        parts = [schema_type(s) for s in schema["anyOf"]]
        return " | ".join(dict.fromkeys(parts))
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {schema_type(schema.get('items', {}))}"
    if kind == "object":
        extra = schema.get("additionalProperties")
        return f"object of {schema_type(extra)}" if isinstance(extra, dict) and extra else "object"
    if isinstance(kind, list):
        return " | ".join(kind)
    return str(kind or "any")


def _constraints(schema: dict[str, Any]) -> str:
    bits = []
    for key, label in (
        ("minimum", ">="),
        ("maximum", "<="),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ):
        if key in schema:
            bits.append(f"{label} {schema[key]}")
    for option in schema.get("anyOf", []):
        bits.extend(b for b in _constraints(option).split("; ") if b)
    return "; ".join(bits)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _fields_table(schema: dict[str, Any]) -> list[str]:
    props: dict[str, Any] = schema.get("properties", {})
    if not props:
        return ["No arguments."]
    required = set(schema.get("required", []))
    rows = ["| name | type | required | default | description |", "|---|---|---|---|---|"]
    for name, prop in props.items():
        default = "" if name in required or "default" not in prop else f"`{json.dumps(prop['default'])}`"
        kind = schema_type(prop)
        limits = _constraints(prop)
        desc = prop.get("description", "") + (f" ({limits})" if limits else "")
        rows.append(f"| `{name}` | {_cell(kind)} | {'yes' if name in required else 'no'} | {default} | {_cell(desc)} |")
    return rows


def _referenced(schema: Any, defs: dict[str, Any], seen: list[str]) -> list[str]:
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = _ref_name(schema["$ref"])
            if name not in seen and name in defs:
                seen.append(name)
                _referenced(defs[name], defs, seen)
        for key, value in schema.items():
            if key != "$defs":
                _referenced(value, defs, seen)
    elif isinstance(schema, list):
        for item in schema:
            _referenced(item, defs, seen)
    return seen


def _annotations(tool: Any) -> str:
    hints = tool.annotations
    if hints is None:
        return "none"
    data = hints.model_dump(by_alias=True, exclude_none=True)
    return ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in data.items())


def _json_block(value: Any) -> list[str]:
    return ["```json", json.dumps(value, indent=2, ensure_ascii=False), "```"]


def render_tool(doc: ToolDoc) -> list[str]:
    tool = doc.tool
    out = [f"## {doc.title}", "", _cell(tool.description or ""), ""]
    out += [f"**Profiles:** {', '.join(doc.profiles)}  ", f"**Annotations:** {_annotations(tool)}", ""]
    out += ["### Arguments", ""] + _fields_table(tool.input_schema) + [""]
    defs = tool.input_schema.get("$defs", {})
    for name in _referenced(tool.input_schema.get("properties", {}), defs, []):
        out += [f"`{name}`:", ""] + _fields_table(defs[name]) + [""]
    output = tool.output_schema or {}
    if output.get("properties"):
        fields = ", ".join(f"`{k}`" for k in output["properties"])
        out += [f"**Result** (`structuredContent`): {output.get('title', 'object')} with {fields}.", ""]
    out += ["### Example", ""]
    if doc.call is None:
        return out + [doc.note, ""]
    if doc.note:
        out += [doc.note, ""]
    out += ["Call:", ""] + _json_block(doc.call) + [""]
    if doc.is_error:
        out += ["Result (`isError: true`):", "", "```text", str(doc.result), "```", ""]
    else:
        out += ["Result (`structuredContent`):", ""] + _json_block(doc.result) + [""]
    return out


HEADER = """\
# MCP tool reference

<!-- GENERATED by `python -m coaia_store.server.reference > docs/tools.md`: do not edit by hand.
     tests/test_docs.py fails when this page no longer matches the server. -->

Every tool `coaia-store serve` publishes, read from the server itself (coaia-store {version}).
Each example was run through `mcp.Client` against a fresh store holding a small example: in
context `default`, the chart `{chart}` ("A vegetable garden that feeds the household from June to
September", steps `_action_1_00000001` "Build three raised beds" and `_action_2_00000002` "Test the soil") and a
completed chart `{done}` ("A tidy shed") and the entity `grace` (person); in context `work`, the entities `ada` (person) and
`billing-service` (project), `ada works_on billing-service`, and a manual backup of `work`. The
clock starts at {start} and moves one second per reading. Operation ids (16 hex digits), random
suffixes of backup names, digests, file times and the directory are replaced by placeholders.

Arguments named `context` are optional everywhere: writes default to `default`, reads to every
context. A tool error comes back as a result with `isError: true` and a message saying what to fix.
"""


def _profile_table(ref: Reference) -> list[str]:
    rows = [
        "## Profiles",
        "",
        "`coaia-store serve --tools PROFILE` (or `COAIA_TOOLS`) picks the published set. "
        "Bytes: the compact JSON of the `tools` array of `tools/list`, as sent (the official memory server's "
        "nine tools, server-memory 2026.8.31: 10,750).",
        "",
        "| profile | bytes | tools |",
        "|---|---|---|",
    ]
    for profile, names in ref.profiles.items():
        rows.append(f"| `{profile}` | {ref.sizes[profile]:,} | {len(names)}: {', '.join(f'`{n}`' for n in names)} |")
    return rows + [""]


def render(ref: Reference, names: dict[str, str]) -> str:
    head = HEADER.format(
        version=__version__,
        chart=names["{chart}"],
        done=names["{done_chart}"],
        start=START.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    lines = [head] + _profile_table(ref)
    for doc in ref.tools:
        lines += render_tool(doc)
    return "\n".join(lines).rstrip() + "\n"


def _seed_names() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp, _deterministic_chart_ids():
        with Store(Path(tmp) / ".coaia", clock=FixedClock()) as store:
            return seed(store)


def generate() -> str:
    """The whole page, as ``docs/tools.md`` should hold it."""
    ref = anyio.run(collect)
    return render(ref, _seed_names())


def main(write: Callable[[str], Any] = sys.stdout.write) -> None:
    write(generate())


if __name__ == "__main__":
    main()
