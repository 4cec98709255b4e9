"""The MCP server: each tool is a thin wrapper over one library call.

Profiles pick the published tool set (see ``PROFILE_TOOLS``): ``full`` (all 24 tools), ``charts``
(the chart tools with history, undo, status and the report), ``graph`` (the knowledge-graph and
store tools) and ``memory`` (exactly the official memory server's nine tools, each with an
optional ``context``, so an agent set up for that server switches by changing its command line).

Replies are short and bounded: a write says what changed (with its ``operationId``), the text
block is compact JSON without nulls or empty lists, and every reply stays under ``REPLY_BUDGET``
characters per copy, saying what it left out and how to get it. Arguments are strict: an
unknown argument is refused with the nearest valid name. Errors the caller can fix come back as
tool errors whose text says what to do; nothing is written by a refused call. stdout belongs to
the protocol: logs go to stderr.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, StrictBool, ValidationError

from .. import __version__
from ..charts import Charts
from ..charts.api import list_charts_pager
from ..charts.models import ListCharts, StepInput
from ..errors import CoaiaError, InvalidInputError
from ..graph.config import describe_validation_error
from ..graph.metrics import CallMetrics
from ..graph.paging import REPLY_BUDGET, Pager
from ..models import Entity, EntityInput, ObservationDeletion, ObservationsInput, Relation, RelationInput
from ..reports.advancement import advancement_report as build_advancement_report
from ..safety.history import History
from ..search.index import MAX_LIMIT, SearchIndex
from ..store import Store
from ..store import validate_integrity as check_integrity
from . import stdio
from .prompts import register_prompts
from .resources import register_resources

log = logging.getLogger(__name__)

Profile = Literal["full", "charts", "graph", "memory"]
PROFILES: tuple[str, ...] = ("full", "charts", "graph", "memory")
ToolFn = Callable[..., CallToolResult]
Tools = list[tuple[ToolFn, ToolAnnotations]]

MAX_REPLY_CHARS = REPLY_BUDGET
SUMMARY_TEXT = 160

ContextArg = Annotated[str | None, Field(description="Context (life domain), e.g. 'work'; omitted: every context.")]
WriteContext = Annotated[str | None, Field(description="Context to write to; omitted: 'default'.")]
ChartContext = Annotated[str | None, Field(description="Context holding it; omitted: found in any.")]
ChartId = Annotated[str, Field(description="A chart id ('chart_...').")]
StepName = Annotated[str, Field(description="An action step's name ('<chartId>_action_N').")]
Limit = Annotated[int, Field(ge=1, le=100)]
Cursor = Annotated[str | None, Field(description="nextCursor of the previous page.")]
DueDate = Annotated[str | None, Field(description="ISO date, or date-time with timezone.")]

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
NEW = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
CHANGE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
OVERWRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)

INSTRUCTIONS = (
    "Durable storage for structural tension charts (desired outcome, current reality, action steps that "
    "telescope into sub-charts) and the knowledge graph beneath them. Data lives in contexts (life domains such "
    "as 'work'); omit `context` to write to 'default' and to read every context. Usual order: list_charts or "
    "storage_status to see what exists; create_chart; get_chart for the tree; add_action_steps, "
    "update_action_step, telescope_action_step while planning; complete (reopen: true reverses) as steps get "
    "done; update_chart for new facts; move_chart to 'completed' to archive. Graph: search, open_entities, "
    "create_entity, add_relation. Every write returns an operationId; history lists them and undo reverts one. "
    "Calls are atomic, durable and safe to retry."
)

# The published tools of each profile, in the order tools/list gives them.
CHART_TOOLS = (
    "create_chart",
    "telescope_action_step",
    "add_action_steps",
    "update_action_step",
    "remove_action_step",
    "complete",
    "update_chart",
    "move_chart",
    "get_chart",
    "list_charts",
)
GRAPH_TOOLS = (
    "create_entity",
    "add_relation",
    "add_observations",
    "update_entity",
    "delete_from_graph",
    "open_entities",
    "read_graph",
    "search",
)
STORE_TOOLS = ("storage_status", "validate_integrity", "backups", "history", "undo")
REPORT_TOOLS = ("advancement_report",)
MEMORY_TOOLS = (
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
    "read_graph",
    "search_nodes",
    "open_nodes",
)
PROFILE_TOOLS: dict[str, tuple[str, ...]] = {
    "full": CHART_TOOLS + GRAPH_TOOLS + STORE_TOOLS + REPORT_TOOLS,
    "charts": CHART_TOOLS + ("history", "undo", "storage_status") + REPORT_TOOLS,
    "graph": GRAPH_TOOLS + STORE_TOOLS,
    "memory": MEMORY_TOOLS,
}


# ------------------------------------------------------------------ replies (every reply is finished here)


def _pruned(value: Any) -> Any:
    """JSON without nulls and empty lists (a reply carries what is there, not what is not)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _as_data(value: BaseModel | dict[str, Any]) -> dict[str, Any]:
    data = value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value
    return _pruned(data)


def reply(value: BaseModel | dict[str, Any], summary: str | None = None) -> CallToolResult:
    """A tool result: compact JSON as structured content, the same JSON as text (after a one-line summary)."""
    data = _as_data(value)
    text = compact_json(data)
    return CallToolResult(
        content=[TextContent(type="text", text=f"{summary}\n{text}" if summary else text)], structured_content=data
    )


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


def tools_list_bytes(tools: Sequence[Any]) -> int:
    """The size of a ``tools/list`` result's ``tools`` array as sent: compact JSON, UTF-8."""
    listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    return len(json.dumps(listed, ensure_ascii=False, separators=(",", ":")).encode())


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _finish(name: str, result: CallToolResult) -> CallToolResult:
    """The one place every tool reply passes through before it is sent."""
    return result


# ------------------------------------------------------------------ strict arguments


# Arguments of the 0.1 tools that have another name now (see CHANGELOG.md).
RENAMED = {
    "progressNote": "note",
    "addToCurrentReality": "noteToReality",
    "observations": "addToReality",
    "includeSubCharts": "topLevelOnly",
    "names": "entities",
    "deletions": "observations",
    "opIds": "operationId",
    "count": "operationId",
    "actionStep": "target",
    "chartId": "target",
    "name": "entity",
}


def _normal(name: str) -> str:
    return name.replace("_", "").replace("-", "").casefold()


def unknown_argument_error(tool: str, given: Sequence[str], schema: dict[str, Any]) -> str | None:
    """The refusal of arguments ``tool`` does not take: each named, with the nearest valid name and the list."""
    valid = list(schema.get("properties") or {})
    unknown = [g for g in given if g not in valid]
    if not unknown:
        return None
    by_normal = {_normal(v): v for v in valid}
    parts = []
    for name in unknown:
        renamed = RENAMED.get(name)
        near = (
            [_normal(renamed)]
            if renamed is not None and renamed in valid
            else difflib.get_close_matches(_normal(name), list(by_normal), n=1, cutoff=0.6)
        )
        hint = f"; did you mean '{by_normal[near[0]]}'?" if near else ";"
        parts.append(f"unknown argument '{name}' for {tool}{hint}")
    return f"{' '.join(parts)} It takes: {', '.join(valid) or 'no arguments'}. Nothing was written."


def _validation_message(tool: str, exc: ValidationError) -> str:
    return f"invalid arguments for {tool}: {describe_validation_error(exc)} Nothing was written."


class CoaiaServer(MCPServer):
    """``MCPServer`` with strict arguments, plain error texts, and a warning line on every reply that touches
    a degraded or read-only context (:meth:`Store.warnings`), so an agent can tell its person."""

    def __init__(self, store: Store, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store = store

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None) -> Any:
        result = await self._strict_call(name, arguments, context)
        context_arg = arguments.get("context")
        warnings = self.store.warnings(context_arg if isinstance(context_arg, str) else None)
        if warnings and isinstance(result, CallToolResult):
            result.content.extend(TextContent(type="text", text=w) for w in warnings)
        return result

    async def _strict_call(self, name: str, arguments: dict[str, Any], context: Context | None) -> Any:
        schema = self._tool_input_schema(name)
        if schema is not None and (problem := unknown_argument_error(name, list(arguments), schema)):
            return _finish(name, _error(problem))
        try:
            result = await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                return _finish(name, _error(_validation_message(name, cause)))
            return _finish(name, _error(str(cause) if isinstance(cause, ToolError) else str(exc)))
        return _finish(name, result) if isinstance(result, CallToolResult) else result


def _tool_errors(fn: ToolFn, calls: CallMetrics) -> ToolFn:
    """The library's errors become tool errors with their own text (anything unexpected stays hidden); every
    call is timed for the monitoring that storage_status reports."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> CallToolResult:
        with calls.timed(fn.__name__):
            try:
                return fn(*args, **kwargs)
            except CoaiaError as exc:
                raise ToolError(str(exc)) from exc
            except ValidationError as exc:  # a model built from the arguments inside the tool
                raise ToolError(f"invalid arguments for {fn.__name__}: {describe_validation_error(exc)}") from exc

    return wrapper


# ------------------------------------------------------------------ compact schemas


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


# ------------------------------------------------------------------ the official memory server's nine tools


class MemoryEntity(BaseModel):
    name: str = Field(description="The name of the entity")
    entityType: str = Field(description="The type of the entity")
    observations: list[str] = Field(description="An array of observation contents associated with the entity")


class MemoryRelation(BaseModel):
    model_config = {"populate_by_name": True, "serialize_by_alias": True}
    from_: str = Field(alias="from", description="The name of the entity where the relation starts")
    to: str = Field(description="The name of the entity where the relation ends")
    relationType: str = Field(description="The type of the relation")


class MemoryObservationsInput(BaseModel):
    model_config = {"extra": "forbid"}
    entityName: str = Field(description="The name of the entity to add the observations to")
    contents: list[str] = Field(description="An array of observation contents to add")


class MemoryDeletion(BaseModel):
    model_config = {"extra": "forbid"}
    entityName: str = Field(description="The name of the entity containing the observations")
    observations: list[str] = Field(description="An array of observations to delete")


class MemoryEntities(BaseModel):
    entities: list[MemoryEntity]


class MemoryRelations(BaseModel):
    relations: list[MemoryRelation]


class MemoryAdded(BaseModel):
    entityName: str
    addedObservations: list[str]


class MemoryObservations(BaseModel):
    results: list[MemoryAdded]


class MemoryGraph(BaseModel):
    entities: list[MemoryEntity]
    relations: list[MemoryRelation]


class MemoryDone(BaseModel):
    success: bool
    message: str


MEMORY_GRAPH_BUDGET = 30_000  # characters of the compact graph: its pretty text and structured copy stay < 100 kB


def _official(text_value: Any, structured: BaseModel) -> CallToolResult:
    """The official server's reply: ``JSON.stringify(result, null, 2)`` as text, the object as structured content."""
    text = text_value if isinstance(text_value, str) else json.dumps(text_value, ensure_ascii=False, indent=2)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json", by_alias=True),
    )


def _done(message: str) -> CallToolResult:
    return _official(message, MemoryDone(success=True, message=message))


def _memory_entity(e: Entity) -> dict[str, Any]:
    return {"name": e.name, "entityType": e.entityType, "observations": e.observations}


def _memory_relation(r: Relation) -> dict[str, Any]:
    return {"from": r.from_, "to": r.to, "relationType": r.relationType}


def _memory_graph(
    entities: Sequence[Entity], relations: Sequence[Relation], total: int | None = None
) -> CallToolResult:
    """A graph reply in the official shape, cut to ``MEMORY_GRAPH_BUDGET`` with a note of what was left out."""
    shown, size = [], 0
    for entity in entities:
        item = _memory_entity(entity)
        size += len(compact_json(item))
        if size > MEMORY_GRAPH_BUDGET:
            break
        shown.append(item)
    names = {e["name"] for e in shown}
    links = [_memory_relation(r) for r in relations if r.from_ in names or r.to in names]
    kept_links = []
    for link in links:
        size += len(compact_json(link))
        if size > MEMORY_GRAPH_BUDGET:
            break
        kept_links.append(link)
    graph = {"entities": shown, "relations": kept_links}
    result = _official(graph, MemoryGraph.model_validate(graph))
    all_entities = len(entities) if total is None else total
    if len(shown) < all_entities or len(kept_links) < len(links):
        result.content.append(
            TextContent(
                type="text",
                text=(
                    f"Note: this reply holds {len(shown)} of {all_entities} entities and {len(kept_links)} of {len(links)} "
                    "of their relations, to stay under the size hosts accept; use search_nodes or open_nodes for the rest."
                ),
            )
        )
    return result


def memory_tools(store: Store, index: SearchIndex) -> dict[str, tuple[ToolFn, ToolAnnotations]]:
    def create_entities(
        entities: list[MemoryEntity], context: WriteContext = None
    ) -> Annotated[CallToolResult, MemoryEntities]:
        """Create multiple new entities in the knowledge graph"""
        result = store.create_entities([e.model_dump() for e in entities], context=context, if_exists="skip")
        created = {e.name for e in result.created}
        new = [e.model_dump() for e in entities if e.name in created]
        return _official(new, MemoryEntities.model_validate({"entities": new}))

    def create_relations(
        relations: list[MemoryRelation], context: WriteContext = None
    ) -> Annotated[CallToolResult, MemoryRelations]:
        """Create multiple new relations between entities in the knowledge graph. Relations should be in active voice"""
        result = store.create_relations([r.model_dump(by_alias=True) for r in relations], context=context)
        new = [_memory_relation(r) for r in result.created]
        return _official(new, MemoryRelations.model_validate({"relations": new}))

    def add_observations(
        observations: list[MemoryObservationsInput], context: WriteContext = None
    ) -> Annotated[CallToolResult, MemoryObservations]:
        """Add new observations to existing entities in the knowledge graph"""
        result = store.add_observations([o.model_dump() for o in observations], context=context)
        added = [{"entityName": r.entityName, "addedObservations": r.addedObservations} for r in result.results]
        return _official(added, MemoryObservations.model_validate({"results": added}))

    def delete_entities(
        entityNames: Annotated[list[str], Field(description="An array of entity names to delete")],  # noqa: N803
        context: WriteContext = None,
    ) -> Annotated[CallToolResult, MemoryDone]:
        """Delete multiple entities and their associated relations from the knowledge graph"""
        store.delete_entities(entityNames, context=context)
        return _done("Entities deleted successfully")

    def delete_observations(
        deletions: list[MemoryDeletion], context: WriteContext = None
    ) -> Annotated[CallToolResult, MemoryDone]:
        """Delete specific observations from entities in the knowledge graph"""
        store.delete_observations([d.model_dump() for d in deletions], context=context)
        return _done("Observations deleted successfully")

    def delete_relations(
        relations: Annotated[list[MemoryRelation], Field(description="An array of relations to delete")],
        context: WriteContext = None,
    ) -> Annotated[CallToolResult, MemoryDone]:
        """Delete multiple relations from the knowledge graph"""
        store.delete_relations([r.model_dump(by_alias=True) for r in relations], context=context)
        return _done("Relations deleted successfully")

    def read_graph(context: ContextArg = None) -> Annotated[CallToolResult, MemoryGraph]:
        """Read the entire knowledge graph (a very large graph is cut short, with a note)"""
        page = store.read_graph(context=context)
        return _memory_graph(page.entities, page.relations)

    def search_nodes(
        query: Annotated[
            str, Field(description="The search query to match against entity names, types, and observation content")
        ],
        context: ContextArg = None,
    ) -> Annotated[CallToolResult, MemoryGraph]:
        """Search for nodes in the knowledge graph based on a query"""
        hits = index.search(query, context=context, limit=MAX_LIMIT).hits
        names = [h.entity.name for h in hits]
        opened = store.open_entities(names, context=context) if names else None
        return _memory_graph([h.entity for h in hits], opened.relations if opened else [])

    def open_nodes(
        names: Annotated[list[str], Field(description="An array of entity names to retrieve")],
        context: ContextArg = None,
    ) -> Annotated[CallToolResult, MemoryGraph]:
        """Open specific nodes in the knowledge graph by their names"""
        result = store.open_entities(names, context=context)
        return _memory_graph(result.entities, result.relations)

    return {
        "create_entities": (create_entities, ADD),
        "create_relations": (create_relations, ADD),
        "add_observations": (add_observations, ADD),
        "delete_entities": (delete_entities, CHANGE),
        "delete_observations": (delete_observations, CHANGE),
        "delete_relations": (delete_relations, CHANGE),
        "read_graph": (read_graph, READ),
        "search_nodes": (search_nodes, READ),
        "open_nodes": (open_nodes, READ),
    }


# ------------------------------------------------------------------ the chart tools

ChartSteps = Annotated[
    list[StepInput | str],
    Field(
        description="Action steps: a title, or {title, dueDate, owner}; missing dates are spread up to the due date."
    ),
]


def chart_write(result: Any) -> CallToolResult:
    """What a chart write changed, not the whole chart: the tree is get_chart's job."""
    chart = result.chart
    data = _as_data(
        {
            "chartId": chart.chartId,
            "operationId": result.operationId,
            "changed": getattr(result, "changed", True),
            "added": getattr(result, "added", None),
            "completed": getattr(result, "completed", None),
            "reopened": getattr(result, "reopened", None),
            "removed": getattr(result, "removed", None),
            "chartCompleted": chart.completed or None,
            "progress": round(chart.progress, 3),
            "nextStep": chart.nextStep.model_dump() if chart.nextStep else None,
            "warnings": getattr(result, "warnings", None),
        }
    )
    for key in ("added", "completed", "reopened", "removed"):
        data = bounded(data, key, "get_chart shows the chart's steps", REPLY_BUDGET // 4)
    return reply(data)


def _chart_view(
    charts: Charts, chart_id: str, depth: int | None, context: str | None, as_of: str | None
) -> CallToolResult:
    """The tree, as deep as asked and as fits: deeper levels are left out (with a note) when it would be too long."""
    view = charts.get_chart(chartId=chart_id, depth=depth, context=context, asOf=as_of)
    data = _as_data(view)
    shown = depth
    while len(compact_json(data)) > REPLY_BUDGET and shown != 0:
        shown = 2 if shown is None else shown - 1
        data = _as_data(charts.get_chart(chartId=chart_id, depth=shown, context=context, asOf=as_of))
    if shown != depth:
        data["note"] = (
            f"sub-charts below depth {shown} left out to keep the reply short; "
            "call get_chart on a step's subChartId for them"
        )
    data = bounded(data, "currentReality", "the chart's current reality is long; history shows it in pages")
    return reply(bounded(data, "actionSteps", "list_charts and get_chart on sub-charts show the rest"))


def chart_tools(charts: Charts) -> dict[str, tuple[ToolFn, ToolAnnotations]]:
    def create_chart(
        desiredOutcome: Annotated[str, Field(description="The result you want to create (not a problem to remove).")],  # noqa: N803
        currentReality: Annotated[str, Field(description="Honest facts about where things stand now.")],  # noqa: N803
        dueDate: Annotated[str, Field(description="ISO date, or date-time with timezone.")],  # noqa: N803
        actionSteps: ChartSteps = [],  # noqa: B006, N803
        context: WriteContext = None,
    ) -> CallToolResult:
        """Create a structural tension chart (desired outcome, current reality, due date, action steps) in one
        atomic write. Returns the chartId and step names; warns when the outcome names a problem to remove."""
        return chart_write(
            charts.create_chart(
                desiredOutcome=desiredOutcome,
                currentReality=currentReality,
                dueDate=dueDate,
                actionSteps=actionSteps,
                context=context,
            )
        )

    def telescope_action_step(
        actionStep: StepName,  # noqa: N803
        currentReality: Annotated[str, Field(description="Where this step stands now.")],  # noqa: N803
        actionSteps: ChartSteps = [],  # noqa: B006, N803
        dueDate: DueDate = None,  # noqa: N803
        desiredOutcome: Annotated[str | None, Field(description="Omitted: the step's title.")] = None,  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Turn an action step into a sub-chart with its own current reality and steps, to plan it in detail (due
        no later than the step)."""
        return chart_write(
            charts.telescope_action_step(
                actionStep=actionStep,
                currentReality=currentReality,
                actionSteps=actionSteps,
                dueDate=dueDate,
                desiredOutcome=desiredOutcome,
                context=context,
            )
        )

    def add_action_steps(
        chartId: ChartId,  # noqa: N803
        actionSteps: Annotated[list[StepInput | str], Field(min_length=1, description="One or more steps.")],  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Add action steps to a chart (dueDate omitted: halfway to the chart's). Adding to a completed chart
        reopens it, with a warning."""
        return chart_write(charts.add_action_steps(chartId=chartId, actionSteps=actionSteps, context=context))

    def update_action_step(
        actionStep: StepName,  # noqa: N803
        title: str | None = None,
        dueDate: DueDate = None,  # noqa: N803
        owner: Annotated[str | None, Field(description="Who takes the step (a name).")] = None,
        note: Annotated[str | None, Field(description="A progress note.")] = None,
        noteToReality: Annotated[StrictBool, Field(description="Also add the dated note to current reality.")] = False,  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Retitle an action step, move its due date, set its owner, or record a progress note. To finish it use
        complete."""
        return chart_write(
            charts.update_action_step(
                actionStep=actionStep,
                title=title,
                dueDate=dueDate,
                owner=owner,
                progressNote=note,
                addToCurrentReality=noteToReality,
                context=context,
            )
        )

    def remove_action_step(actionStep: StepName, context: ChartContext = None) -> CallToolResult:  # noqa: N803
        """Delete an action step and, recursively, the sub-chart it telescopes into. Destructive."""
        return chart_write(charts.remove_action_step(actionStep=actionStep, context=context))

    def complete(
        target: Annotated[str, Field(description="An action step's name or a chart id.")],
        reopen: Annotated[StrictBool, Field(description="Reopen it instead.")] = False,
        context: ChartContext = None,
    ) -> CallToolResult:
        """Complete an action step or a chart, with everything below it. A sub-chart whose last step completes
        completes too, with its parent step, level by level; a top-level chart only when named. reopen: true
        reverses it, reopening the levels above."""
        return chart_write(charts.complete(target=target, reopen=reopen, context=context))

    def update_chart(
        chartId: ChartId,  # noqa: N803
        addToReality: Annotated[list[str], Field(description="New facts for current reality.")] = [],  # noqa: B006, N803
        desiredOutcome: Annotated[str | None, Field(description="Restated outcome.")] = None,  # noqa: N803
        dueDate: DueDate = None,  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Add facts to a chart's current reality, restate its desired outcome, or move its due date."""
        return chart_write(
            charts.update_chart(
                chartId=chartId,
                addToReality=addToReality,
                desiredOutcome=desiredOutcome,
                dueDate=dueDate,
                context=context,
            )
        )

    def move_chart(
        chartId: ChartId,  # noqa: N803
        toContext: Annotated[str, Field(description="Target context; 'completed' archives a completed chart.")],  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Move a top-level chart with its sub-charts to another context, safely across files."""
        return reply(charts.move_chart(chartId=chartId, toContext=toContext, context=context))

    def get_chart(
        chartId: ChartId,  # noqa: N803
        depth: Annotated[int | None, Field(ge=0, description="Sub-chart levels to expand; omitted: all.")] = None,
        asOf: Annotated[str | None, Field(description="The chart as it was then (ISO date-time or date).")] = None,  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """One chart as a tree: outcome, current reality, steps with due dates, owners and overdue flags,
        telescoped sub-charts, recursive progress at every level, and the next step due."""
        return _chart_view(charts, chartId, depth, context, asOf)

    def list_charts(
        status: Literal["active", "completed", "all"] = "active",
        overdue: StrictBool = False,
        dueWithinDays: Annotated[int | None, Field(ge=0)] = None,  # noqa: N803
        owner: Annotated[str | None, Field(description="Charts with an open step of this owner.")] = None,
        topLevelOnly: StrictBool = False,  # noqa: N803
        context: ContextArg = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """Chart summaries with progress and next step, across every context or one, filtered; paginated."""
        request = ListCharts(
            status=status,
            overdue=overdue,
            dueWithinDays=dueWithinDays,
            owner=owner,
            includeSubCharts=not topLevelOnly,
            context=context,
            limit=limit,
            cursor=cursor,
        )
        page = charts.list_charts(request)
        return reply(
            _recut(
                bounded(_as_data(page), "charts", "page on with nextCursor"),
                "charts",
                list_charts_pager(request),
                cursor,
                page.total,
            )
        )

    return {
        "create_chart": (create_chart, NEW),
        "telescope_action_step": (telescope_action_step, NEW),
        "add_action_steps": (add_action_steps, NEW),
        "update_action_step": (update_action_step, OVERWRITE),
        "remove_action_step": (remove_action_step, CHANGE),
        "complete": (complete, ADD),
        "update_chart": (update_chart, OVERWRITE),
        "move_chart": (move_chart, ADD),
        "get_chart": (get_chart, READ),
        "list_charts": (list_charts, READ),
    }


# ------------------------------------------------------------------ the graph tools


def _shape(e: Entity, mode: str) -> dict[str, Any]:
    if mode == "names":
        return {"name": e.name, "entityType": e.entityType, "context": e.context}
    if mode == "summary":
        first = e.observations[0] if e.observations else ""
        return {
            "name": e.name,
            "entityType": e.entityType,
            "context": e.context,
            "observationCount": len(e.observations),
            "firstObservation": first if len(first) <= SUMMARY_TEXT else first[:SUMMARY_TEXT] + "…",
        }
    return e.model_dump(mode="json", by_alias=True, exclude_none=True)


def graph_tools(store: Store, index: SearchIndex) -> dict[str, tuple[ToolFn, ToolAnnotations]]:
    def create_entity(
        entities: Annotated[list[EntityInput], Field(min_length=1)],
        ifExists: Annotated[
            Literal["error", "skip"], Field(description="A name holding other content: fail, or skip it.")
        ] = "error",  # noqa: N803
        context: WriteContext = None,
    ) -> CallToolResult:
        """Create one or many entities in one atomic call; identical repeats are reported unchanged. To add facts
        to an existing entity use add_observations; to rename or retype it, update_entity."""
        result = store.create_entities(entities, context=context, if_exists=ifExists)
        return reply(
            {
                "operationId": result.operationId,
                "created": [e.name for e in result.created],
                "unchanged": result.unchanged,
                "skipped": result.skipped,
            }
        )

    def add_relation(
        relations: Annotated[list[RelationInput], Field(min_length=1, description="relationType in active voice.")],
        context: WriteContext = None,
    ) -> CallToolResult:
        """Relate existing entities, one or many; both ends must exist in the context."""
        result = store.create_relations(relations, context=context)
        return reply(
            {"operationId": result.operationId, "created": len(result.created), "unchanged": len(result.unchanged)}
        )

    def add_observations(observations: list[ObservationsInput], context: WriteContext = None) -> CallToolResult:
        """Append observations (facts) to existing entities; ones already present are skipped."""
        return reply(store.add_observations(observations, context=context))

    def update_entity(
        name: str,
        newName: Annotated[str | None, Field(description="Rename; relations follow.")] = None,  # noqa: N803
        entityType: str | None = None,  # noqa: N803
        observations: Annotated[list[str] | None, Field(description="Replaces ALL observations.")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Merged by key; null removes a key.")] = None,
        context: WriteContext = None,
    ) -> CallToolResult:
        """Rename, retype, replace the observations of, or merge metadata into one entity."""
        change = {
            "name": name,
            "newName": newName,
            "entityType": entityType,
            "observations": observations,
            "metadata": metadata,
        }
        result = store.update_entity({k: v for k, v in change.items() if v is not None}, context=context)
        return reply(
            {
                "operationId": result.operationId,
                "changed": result.changed,
                "name": result.entity.name,
                "relationsMoved": result.relationsMoved,
            }
        )

    def delete_from_graph(
        entities: Annotated[list[str], Field(description="Entity names; their relations go too.")] = [],  # noqa: B006
        observations: list[ObservationDeletion] = [],  # noqa: B006
        relations: list[RelationInput] = [],  # noqa: B006
        context: WriteContext = None,
    ) -> CallToolResult:
        """Delete entities, observations and/or relations in one atomic write. Destructive (undo reverts it)."""
        return reply(
            store.delete_from_graph(entities=entities, observations=observations, relations=relations, context=context)
        )

    def open_entities(names: Annotated[list[str], Field(min_length=1)], context: ContextArg = None) -> CallToolResult:
        """Entities by exact name, with every relation touching them. Use search to find names."""
        data = _as_data(store.open_entities(names, context=context))
        data = bounded(data, "relations", "open fewer entities at a time")
        return reply(bounded(data, "entities", "open fewer entities at a time"))

    def read_graph(
        mode: Annotated[
            Literal["full", "summary", "names"], Field(description="names; summary (first observation); full.")
        ] = "summary",
        entityTypes: list[str] | None = None,  # noqa: N803
        context: ContextArg = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 100,
        cursor: Cursor = None,
        asOf: Annotated[str | None, Field(description="The graph as it was then.")] = None,  # noqa: N803
    ) -> CallToolResult:
        """Browse the graph a page at a time, now or as of a past moment; a page stops early rather than grow too
        long, and says how many entities remain."""
        page = store.read_graph(context=context, entity_types=entityTypes, limit=limit, cursor=cursor, as_of=asOf)
        leaving: dict[tuple[str, str], list[Relation]] = {}
        for relation in page.relations if mode == "full" else []:
            leaving.setdefault((relation.context, relation.from_), []).append(relation)
        shaped: list[dict[str, Any]] = []
        relations: list[dict[str, Any]] = []
        size = 0
        for entity in page.entities:
            item = _shape(entity, mode)
            own = [_as_data(r) for r in leaving.get((entity.context, entity.name), [])]
            size += len(compact_json(item)) + len(compact_json(own))
            if shaped and size > REPLY_BUDGET - 1000:
                break
            shaped.append(item)
            relations += own
        pager = store.graph_pager(context, entityTypes, asOf)
        end = pager.offset(cursor, page.totalEntities) + len(shaped)
        data = {
            "mode": mode,
            "entities": shaped,
            "relations": relations,
            "totalEntities": page.totalEntities,
            "returned": len(shaped),
            "remaining": page.totalEntities - end,
            "nextCursor": pager.cursor(end, page.totalEntities),
        }
        return reply(bounded(data, "relations", "open_entities on one entity lists all of its relations"))

    def search(
        query: Annotated[str, Field(description="Words; each matches as a prefix.")],
        entityTypes: list[str] | None = None,  # noqa: N803
        context: ContextArg = None,
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 20,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """Ranked full-text search (BM25) over names, types, observations and metadata: every word must match,
        else entities holding any. Each hit has a score and snippet; open_entities gives its relations."""
        page = index.search(query, context=context, entity_types=entityTypes, limit=limit, cursor=cursor)
        return reply(bounded(_as_data(page), "hits", "pass a smaller limit"))

    return {
        "create_entity": (create_entity, ADD),
        "add_relation": (add_relation, ADD),
        "add_observations": (add_observations, ADD),
        "update_entity": (update_entity, CHANGE),
        "delete_from_graph": (delete_from_graph, CHANGE),
        "open_entities": (open_entities, READ),
        "read_graph": (read_graph, READ),
        "search": (search, READ),
    }


# ------------------------------------------------------------------ the store tools and the report


def _recut(data: dict[str, Any], key: str, pager: Pager, cursor: str | None, total: int) -> dict[str, Any]:
    """After :func:`bounded` cut a page short, its nextCursor starts right after what was kept."""
    if "leftOut" in data:
        data["nextCursor"] = pager.cursor(pager.offset(cursor, total) + len(data[key]), total)
    return data


def _page(items: list[Any], limit: int, cursor: str | None, pager: Pager) -> tuple[list[Any], str | None]:
    start = pager.offset(cursor, len(items))
    end = min(start + limit, len(items))
    return items[start:end], pager.cursor(end, len(items))


def _status(store: Store, context: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    status = store.status()
    backups = {b.context: b.latest for b in status.backups}
    growth = {g.context: g for g in status.capacity.contexts} if status.capacity else {}
    rows = [
        {
            "name": c.name,
            "entities": c.entities,
            "relations": c.relations,
            "bytes": c.bytes,
            "lastModified": c.lastModified,
            "health": _health(c),
            "problem": c.unreadable or c.housekeeping,
            "lastBackup": backups.get(c.name),
            "damagedLines": len(c.damagedLines) or None,
            "checksummed": None if c.checksummed else False,
            "grewLast7Days": growth[c.name].last7Days if c.name in growth else None,
            "grewLast30Days": growth[c.name].last30Days if c.name in growth else None,
        }
        for c in status.contexts
        if context is None or c.name == context
    ]
    shown, next_cursor = _page(rows, limit, cursor, Pager("storage_status", context))
    data = {
        "directory": status.directory,
        "reason": status.reason,
        "formatVersion": status.formatVersion,
        "fsync": status.fsync,
        "degraded": status.degraded,
        "problems": status.problems[:20],
        "totalContexts": len(rows),
        "contexts": shown,
        "nextCursor": next_cursor,
        "disk": status.capacity.model_dump(exclude={"contexts"}) if status.capacity else None,
        "tools": [t.model_dump() for t in status.tools],
    }
    if len(status.problems) > 20:
        data["note"] = f"{len(status.problems) - 20} more problems: validate_integrity lists them per context"
    return bounded(data, "contexts", "pass a smaller limit and page with nextCursor")


def _health(info: Any) -> str:
    if info.unreadable:
        return "unreadable"
    return "degraded" if info.degraded or info.housekeeping else ("read-only" if info.readOnly else "ok")


def _operation(op: Any) -> dict[str, Any]:
    """An operation as history and undo list it: the summary names what it touched."""
    return _as_data(
        {
            "id": op.id,
            "contexts": op.contexts,
            "time": op.time,
            "action": op.action,
            "summary": op.summary,
            "by": op.by,
            "undoes": op.undoes,
        }
    )


def store_tools(store: Store) -> dict[str, tuple[ToolFn, ToolAnnotations]]:
    history = History(store)

    def storage_status(context: ContextArg = None, limit: Limit = 100, cursor: Cursor = None) -> CallToolResult:
        """Where the data lives and why, each context's counts, size, health and last backup (paginated), and any
        problem with what to do about it. Start here to see which contexts exist."""
        return reply(_status(store, context, limit, cursor))

    def validate_integrity(
        context: ContextArg = None,
        repair: Annotated[StrictBool, Field(description="Apply the safe repairs, each logged.")] = False,
    ) -> CallToolResult:
        """Check every context (or one): damaged lines, checksum failures, a torn tail, dangling relations, orphan
        sub-charts, due dates that break the timeline, open items under completed ones, backups."""
        data = _as_data(check_integrity(store, context=context, repair=repair))
        data["contexts"] = sorted(data["contexts"], key=lambda c: c.get("ok", False))
        return reply(bounded(data, "contexts", "the ones shown first have problems; pass context for one"))

    def backups(
        action: Literal["list", "create", "restore"] = "list",
        backupId: Annotated[str | None, Field(description="For restore: a backup or group id.")] = None,  # noqa: N803
        context: ContextArg = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """List backups (newest first), back up now (one context or all), or restore one: a restore backs up the
        current state first, so it can be undone. Backups are also taken daily, weekly and before rewrites."""
        if action == "restore":
            if backupId is None:
                raise InvalidInputError('restore needs backupId: backups {"action": "list"} shows them')
            return reply(
                bounded(_as_data(store.backups.restore_backup(backupId, context)), "restored", "restore one context")
            )
        if backupId is not None:
            raise InvalidInputError(f"backupId is only for action 'restore' (got action {action!r})")
        if action == "create":
            taken = (
                store.backups.backup_all()
                if context is None
                else [b for b in [store.backups.backup_context(context)] if b]
            )
            return reply(bounded({"created": [_as_data(b) for b in taken]}, "created", "list them with backups"))
        listed = list(reversed(store.backups.list_backups(context)))
        shown, next_cursor = _page(listed, limit, cursor, Pager("backups", context))
        return reply(
            bounded(
                {"backups": [_as_data(b) for b in shown], "total": len(listed), "nextCursor": next_cursor},
                "backups",
                "pass a smaller limit",
            )
        )

    def history_tool(
        chartId: Annotated[str | None, Field(description="A chart's timeline.")] = None,  # noqa: N803
        entity: Annotated[str | None, Field(description="An entity's versions.")] = None,
        context: ContextArg = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """A chart's timeline (chartId), an entity's versions (entity), or else the latest operations with their
        ids, newest first: what undo takes. Paginated."""
        if chartId is not None and entity is not None:
            raise InvalidInputError("pass chartId or entity, not both")
        if chartId is not None:
            page: BaseModel = history.chart_history(chartId, context, limit, cursor)
        elif entity is not None:
            page = history.entity_history(entity, context, limit, cursor)
        else:
            page = history.operations(context, limit, cursor)
        return reply(page)  # the library's pages are bounded to fit a reply

    history_tool.__name__ = "history"

    def undo(
        operationId: Annotated[str | None, Field(description="From history; omitted: the latest operation.")] = None,  # noqa: N803
        context: ContextArg = None,
    ) -> CallToolResult:
        """Revert one operation by appending a new one (history is never rewritten; undoing an undo redoes). Refused,
        with nothing written, when a later operation changed the same things; the reply says what was undone."""
        result = history.undo(operationId, context=context)
        data = {
            "operationId": result.opId,
            "summary": result.summary,
            "contexts": result.contexts,
            "undone": [_operation(o) for o in result.undone],
            "entities": result.entities,
            "relations": result.relations,
        }
        return reply(bounded(data, "entities", "history shows them all"))

    return {
        "storage_status": (storage_status, READ),
        "validate_integrity": (
            validate_integrity,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False),
        ),
        "backups": (backups, OVERWRITE),
        "history": (history_tool, READ),
        "undo": (undo, OVERWRITE),
    }


def report_tools(store: Store) -> dict[str, tuple[ToolFn, ToolAnnotations]]:
    def advancement_report(
        windowDays: Annotated[Literal[7, 30, 90], Field(description="Days up to now.")] = 30,  # noqa: N803
        context: ContextArg = None,
    ) -> CallToolResult:
        """How charts advanced over the last 7, 30 or 90 days, per context and in total: steps completed (per
        week), charts completed, steps added, steps overdue, average days from a step's creation to completion."""
        data = _as_data(build_advancement_report(store, window_days=windowDays, context=context))
        return reply(bounded(data, "contexts", "pass context for one"))

    return {"advancement_report": (advancement_report, READ)}


def _tools(store: Store, profile: Profile, index: SearchIndex) -> Tools:
    if profile == "memory":
        found = memory_tools(store, index)
    else:
        found = {**chart_tools(Charts(store)), **graph_tools(store, index), **store_tools(store), **report_tools(store)}
    return [found[name] for name in PROFILE_TOOLS[profile]]


def build_server(store: Store, profile: Profile = "full", *, warm_up: float | None = None) -> MCPServer:
    """An MCP server publishing ``profile``'s tools over ``store``, with the resources and prompts.

    ``warm_up``: that many seconds after start, load every context and the search index in a
    thread, so later calls need not do it (``None``: never). Not at once: on 2 cores, loading
    during the MCP handshake slowed the handshake by 0.1-0.4 s (bench/bench_stdio.py), and a call
    that comes before the warm-up loads what it needs itself.
    """
    if profile not in PROFILES:
        raise CoaiaError(f"unknown tool profile {profile!r}: choose one of {', '.join(PROFILES)}")
    server = CoaiaServer(store, "coaia-store", version=__version__, instructions=INSTRUCTIONS)
    index = SearchIndex(store)
    if warm_up is not None:
        timer = threading.Timer(warm_up, _warm_up, args=(index,))
        timer.name, timer.daemon = "coaia-warm-up", True
        timer.start()
    for fn, hints in _tools(store, profile, index):
        server.add_tool(
            _tool_errors(fn, store.calls),
            description=one_line(fn.__doc__),
            annotations=hints,
            structured_output=profile == "memory",
        )
        tool = server._tool_manager.get_tool(fn.__name__)  # the published schema, compacted once
        assert tool is not None
        tool.parameters = compact_schema(tool.parameters)
    charts = Charts(store)
    register_resources(server, store, charts)
    register_prompts(server, charts)
    return server


def _warm_up(index: SearchIndex) -> None:
    try:
        index.refresh()
    except CoaiaError as exc:  # the first call that needs it will report the problem
        log.warning("loading at start-up failed: %s", exc)


def startup_report(store: Store, profile: str) -> str:
    contexts = ", ".join(store.contexts()) or "none yet"
    return (
        f"coaia-store {__version__}: data in {store.path} ({store.location.reason}); "
        f"contexts: {contexts}; tools: {profile}"
    )


WARM_UP_AFTER_S = 1.0


def log_to_stderr() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def serve_stdio(store: Store, profile: Profile) -> None:
    log_to_stderr()
    log.info(startup_report(store, profile))
    anyio.run(stdio.serve, build_server(store, profile, warm_up=WARM_UP_AFTER_S))
