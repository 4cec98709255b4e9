"""The MCP server: each tool is a thin wrapper over one library call.

Profiles pick the published tool set: ``full`` (everything), ``graph`` (the knowledge-graph
tools) and ``memory`` (exactly the official memory server's nine tools, each with an optional
``context``, so an agent set up for that server switches by changing its command line).
Errors the caller can fix come back as a ``ToolError`` whose text says what to do; nothing
is written by a refused call. stdout belongs to the protocol: logs go to stderr.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, get_type_hints

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from . import __version__
from .backup import BackupInfo, RestoreResult
from .charts import Charts
from .charts.models import (
    ActionStepRef,
    AddActionStep,
    ChartRef,
    CreateChart,
    GetChart,
    ListCharts,
    MoveChart,
    TelescopeActionStep,
    UpdateActionStep,
    UpdateCurrentReality,
    UpdateDesiredOutcome,
)
from .errors import CoaiaError
from .history import ChartHistory, EntityHistory, History, OperationList, UndoResult
from .integrity import IntegrityReport
from .metrics import CallMetrics
from .integrity import validate_integrity as check_integrity
from .models import (
    AddObservationsResult,
    ContextInfo,
    CreateEntitiesResult,
    CreateRelationsResult,
    DeleteResult,
    Entity,
    EntityInput,
    ObservationDeletion,
    ObservationsInput,
    OpenResult,
    Relation,
    RelationInput,
    StoreStatus,
    UpdateEntityResult,
)
from .prompts import register_prompts
from .report import AdvancementReport
from .report import advancement_report as build_advancement_report
from .resources import register_resources
from .paging import cursor_offset, page_cursor
from .search import MAX_LIMIT, SearchIndex, SearchPage
from .store import Store

log = logging.getLogger(__name__)

Profile = Literal["full", "charts", "graph", "memory"]
PROFILES: tuple[str, ...] = ("full", "charts", "graph", "memory")
F = TypeVar("F", bound=Callable[..., Any])

ContextArg = Annotated[
    str | None,
    Field(description="Context (life domain) to use, e.g. 'work'; omitted: 'default' for writes, every context for reads."),
]
WriteContext = Annotated[str | None, Field(description="Context to write to, e.g. 'work'; omitted: 'default'.")]

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
CHANGE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)

INSTRUCTIONS = (
    "Durable storage for structural tension charts and the knowledge graph beneath them. Data is split into "
    "contexts (life domains such as 'work' or 'personal'); omit `context` to use 'default' when writing and to "
    "read every context. Calls are atomic, durable and safe to retry. Start with storage_status or list_contexts."
)


def _tool_errors(fn: F, calls: CallMetrics) -> F:
    """Turn the library's errors into messages the agent sees; hide anything unexpected; time every call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with calls.timed(fn.__name__):
            try:
                return fn(*args, **kwargs)
            except CoaiaError as exc:
                raise ToolError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------ the official memory server's shapes


class MemoryEntity(BaseModel):
    name: str = Field(description="Unique name of the entity")
    entityType: str = Field(description="Type of the entity")
    observations: list[str] = Field(description="Facts about the entity")


class MemoryRelation(BaseModel):
    model_config = {"populate_by_name": True, "serialize_by_alias": True}
    from_: str = Field(alias="from", description="Name of the entity where the relation starts")
    to: str = Field(description="Name of the entity where the relation ends")
    relationType: str = Field(description="Type of the relation, in active voice")


class MemoryEntities(BaseModel):
    entities: list[MemoryEntity]


class MemoryRelations(BaseModel):
    relations: list[MemoryRelation]


class MemoryGraph(BaseModel):
    entities: list[MemoryEntity]
    relations: list[MemoryRelation]


class MemoryDone(BaseModel):
    success: bool
    message: str


def _memory_entity(e: Entity) -> MemoryEntity:
    return MemoryEntity(name=e.name, entityType=e.entityType, observations=e.observations)


def _memory_relation(r: Relation) -> MemoryRelation:
    return MemoryRelation(from_=r.from_, to=r.to, relationType=r.relationType)


def _memory_graph(entities: list[Entity], relations: list[Relation]) -> MemoryGraph:
    return MemoryGraph(entities=[_memory_entity(e) for e in entities], relations=[_memory_relation(r) for r in relations])


def _relation_inputs(relations: list[MemoryRelation]) -> list[dict[str, str]]:
    return [r.model_dump(by_alias=True) for r in relations]


def _memory_tools(store: Store, index: SearchIndex) -> list[tuple[Callable[..., Any], ToolAnnotations]]:
    def create_entities(entities: list[MemoryEntity], context: WriteContext = None) -> MemoryEntities:
        """Create multiple new entities in the knowledge graph. Names that already exist are left as they are."""
        result = store.create_entities([e.model_dump() for e in entities], context=context, if_exists="skip")
        return MemoryEntities(entities=[_memory_entity(e) for e in result.created])

    def create_relations(relations: list[MemoryRelation], context: WriteContext = None) -> MemoryRelations:
        """Create multiple new relations between entities (in active voice). Both entities must exist."""
        result = store.create_relations(_relation_inputs(relations), context=context)
        return MemoryRelations(relations=[_memory_relation(r) for r in result.created])

    def add_observations(observations: list[ObservationsInput], context: WriteContext = None) -> AddObservationsResult:
        """Add new observations to existing entities. Observations already present are not added twice."""
        return store.add_observations(observations, context=context)

    def delete_entities(entityNames: list[str], context: WriteContext = None) -> MemoryDone:
        """Delete multiple entities and their associated relations."""
        store.delete_entities(entityNames, context=context)
        return MemoryDone(success=True, message="Entities deleted successfully")

    def delete_observations(deletions: list[ObservationDeletion], context: WriteContext = None) -> MemoryDone:
        """Delete specific observations from entities."""
        store.delete_observations(deletions, context=context)
        return MemoryDone(success=True, message="Observations deleted successfully")

    def delete_relations(relations: list[MemoryRelation], context: WriteContext = None) -> MemoryDone:
        """Delete multiple relations."""
        store.delete_relations(_relation_inputs(relations), context=context)
        return MemoryDone(success=True, message="Relations deleted successfully")

    def read_graph(context: ContextArg = None) -> MemoryGraph:
        """Read the entire knowledge graph (of one context, or every context)."""
        page = store.read_graph(context=context)
        return _memory_graph(page.entities, page.relations)

    def search_nodes(query: str, context: ContextArg = None) -> MemoryGraph:
        """Search for nodes: every word of the query is matched (as a prefix) against names, types, observations
        and metadata, best matches first (up to 100), with the relations that touch them."""
        hits = index.search(query, context=context, limit=MAX_LIMIT).hits
        names = [h.entity.name for h in hits]
        opened = store.open_entities(names, context=context) if names else None
        return _memory_graph([h.entity for h in hits], opened.relations if opened else [])

    def open_nodes(names: list[str], context: ContextArg = None) -> MemoryGraph:
        """Open specific nodes by name, with the relations that touch them."""
        result = store.open_entities(names, context=context)
        return _memory_graph(result.entities, result.relations)

    return [
        (create_entities, ADD),
        (create_relations, ADD),
        (add_observations, ADD),
        (delete_entities, CHANGE),
        (delete_observations, CHANGE),
        (delete_relations, CHANGE),
        (read_graph, READ),
        (search_nodes, READ),
        (open_nodes, READ),
    ]


# ------------------------------------------------------------------ the graph tools


class ReadGraphResult(BaseModel):
    mode: Literal["full", "summary", "names"]
    entities: list[dict[str, Any]] = Field(description="Entities in the shape the mode gives.")
    relations: list[Relation] = Field(description="Relations leaving the returned entities (mode 'full' only).")
    totalEntities: int = Field(description="Entities matching the filters, across all pages.")
    returned: int
    remaining: int = Field(description="Matching entities after this page; fetch them with nextCursor.")
    nextCursor: str | None = None


MAX_REPLY_CHARS = 60_000  # about 15k tokens: well under the 25k clients accept
SUMMARY_TEXT = 160


def _summary(e: Entity) -> dict[str, Any]:
    first = e.observations[0] if e.observations else ""
    return {
        "name": e.name,
        "entityType": e.entityType,
        "context": e.context,
        "observationCount": len(e.observations),
        "firstObservation": first if len(first) <= SUMMARY_TEXT else first[:SUMMARY_TEXT] + "…",
    }


def _shape(e: Entity, mode: str) -> dict[str, Any]:
    if mode == "names":
        return {"name": e.name, "entityType": e.entityType, "context": e.context}
    if mode == "summary":
        return _summary(e)
    return e.model_dump(mode="json", by_alias=True, exclude_none=True)


def _graph_tools(store: Store, index: SearchIndex) -> list[tuple[Callable[..., Any], ToolAnnotations]]:
    history = History(store)

    def create_entity(
        entities: Annotated[list[EntityInput], Field(min_length=1, description="One or more entities to create.")],
        context: WriteContext = None,
        ifExists: Annotated[
            Literal["error", "skip"], Field(description="A name that exists with other content: fail the call, or skip it.")
        ] = "error",
    ) -> CreateEntitiesResult:
        """Create one or many entities in one atomic call. Re-sending identical entities is harmless (reported
        'unchanged'). To add facts to an existing entity use add_observations; to rename or retype it, update_entity."""
        return store.create_entities(entities, context=context, if_exists=ifExists)

    def add_relation(
        relations: Annotated[list[RelationInput], Field(min_length=1, description="One or more relations.")],
        context: WriteContext = None,
    ) -> CreateRelationsResult:
        """Relate existing entities (relationType in active voice, e.g. 'advances_toward'). Both ends must exist
        in the context; an existing relation is reported 'unchanged'."""
        return store.create_relations(relations, context=context)

    def add_observations(observations: list[ObservationsInput], context: WriteContext = None) -> AddObservationsResult:
        """Append observations (facts) to existing entities; ones already present are skipped."""
        return store.add_observations(observations, context=context)

    def update_entity(
        name: Annotated[str, Field(description="The entity to change.")],
        newName: Annotated[str | None, Field(description="Rename to this; relations follow.")] = None,
        entityType: Annotated[str | None, Field(description="New type.")] = None,
        observations: Annotated[list[str] | None, Field(description="Replace ALL observations with these.")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Merged key by key; null removes a key.")] = None,
        context: WriteContext = None,
    ) -> UpdateEntityResult:
        """Rename, retype, replace the observations of, or merge metadata into one entity."""
        change = {"name": name, "newName": newName, "entityType": entityType, "observations": observations,
                  "metadata": metadata}
        return store.update_entity({k: v for k, v in change.items() if v is not None}, context=context)

    def delete_entities(names: list[str], context: WriteContext = None) -> DeleteResult:
        """Delete entities and every relation that touches them. Destructive; names already gone are listed."""
        return store.delete_entities(names, context=context)

    def delete_observations(deletions: list[ObservationDeletion], context: WriteContext = None) -> DeleteResult:
        """Remove specific observations from entities."""
        return store.delete_observations(deletions, context=context)

    def delete_relations(relations: list[RelationInput], context: WriteContext = None) -> DeleteResult:
        """Remove relations; the entities stay."""
        return store.delete_relations(relations, context=context)

    def open_entities(names: Annotated[list[str], Field(min_length=1)], context: ContextArg = None) -> OpenResult:
        """Entities by exact name, with every relation that has one of them at either end. Use search to find names."""
        return store.open_entities(names, context=context)

    def search(
        query: Annotated[str, Field(description="Words to find; each matches as a prefix ('telesc' finds 'telescope').")],
        context: ContextArg = None,
        entityTypes: Annotated[list[str] | None, Field(description="Only entities of these types.")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 20,
        cursor: Annotated[str | None, Field(description="nextCursor of the previous page.")] = None,
    ) -> SearchPage:
        """Ranked full-text search over entity names, types, observations and metadata (BM25). Every word must
        match somewhere; if no entity holds them all, the reply falls back to entities holding any (match='any').
        Each hit has its score and a short snippet. Use open_entities on a hit for its relations."""
        return index.search(query, context=context, entity_types=entityTypes, limit=limit, cursor=cursor)

    def read_graph(
        context: ContextArg = None,
        entityTypes: Annotated[list[str] | None, Field(description="Only entities of these types.")] = None,
        mode: Annotated[
            Literal["full", "summary", "names"],
            Field(description="'names': name and type; 'summary': plus observation count and the first one; "
                              "'full': everything, with relations."),
        ] = "summary",
        limit: Annotated[int, Field(ge=1, le=500, description="Most entities to return.")] = 100,
        cursor: Annotated[str | None, Field(description="nextCursor of the previous page.")] = None,
        asOf: Annotated[str | None, Field(description="Read the graph as it was then: ISO date-time with timezone, "
                                                      "or a date (its end, UTC).")] = None,
    ) -> ReadGraphResult:
        """Browse the graph a page at a time (now, or as of a past moment). Replies stay well under 25,000 tokens
        however large the graph is: a page stops early when it would grow too long, and says how many remain."""
        page = store.read_graph(context=context, entity_types=entityTypes, limit=limit, cursor=cursor, as_of=asOf)
        leaving: dict[tuple[str, str], list[Relation]] = {}
        for relation in page.relations if mode == "full" else []:
            leaving.setdefault((relation.context, relation.from_), []).append(relation)
        shaped: list[dict[str, Any]] = []
        relations: list[Relation] = []
        size = 0
        for entity in page.entities:
            item, own = _shape(entity, mode), leaving.get((entity.context, entity.name), [])
            size += len(json.dumps(item, ensure_ascii=False)) + sum(len(r.model_dump_json(by_alias=True)) for r in own)
            if shaped and size > MAX_REPLY_CHARS:
                break
            shaped.append(item)
            relations += own
        end = cursor_offset(cursor) + len(shaped)
        return ReadGraphResult(
            mode=mode,
            entities=shaped,
            relations=relations,
            totalEntities=page.totalEntities,
            returned=len(shaped),
            remaining=page.totalEntities - end,
            nextCursor=page_cursor(end) if end < page.totalEntities else None,
        )

    def entity_history(name: str, context: ContextArg = None) -> EntityHistory:
        """Every version of an entity, oldest first, with its time and the operation (id) that produced it."""
        return history.entity_history(name, context)

    def chart_history(chartId: str, context: ContextArg = None) -> ChartHistory:  # noqa: N803 - argument name agents see
        """A chart's evolution as a timeline: created, reality added, steps added, completed, telescoped, due dates
        moved, outcome restated, each with its time and operation id."""
        return history.chart_history(chartId, context)

    def advancement_report(
        windowDays: Annotated[Literal[7, 30, 90], Field(description="The window: days up to now.")] = 30,  # noqa: N803
        context: ContextArg = None,
    ) -> AdvancementReport:
        """How charts advanced over the last 7, 30 or 90 days, per context and in total: action steps completed
        (and per week), charts completed, steps added, steps now overdue, and the average days from a step's
        creation to its completion."""
        return build_advancement_report(store, window_days=windowDays, context=context)

    def list_operations(
        context: WriteContext = None, limit: Annotated[int, Field(ge=1, le=500)] = 20
    ) -> OperationList:
        """The latest operations in a context, newest first: id, time, kind and a summary (ids are what undo takes)."""
        return history.operations(context, limit)

    def undo(
        context: WriteContext = None,
        count: Annotated[int, Field(ge=1, le=100, description="How many of the latest operations to revert.")] = 1,
        opIds: Annotated[list[str] | None, Field(description="Or exactly these operations (from list_operations).")] = None,
    ) -> UndoResult:
        """Revert operations by appending one new operation (history is never rewritten; undoing an undo redoes).
        Refused, with nothing written, when a later operation changed the same entities."""
        return history.undo(context, count=count, op_ids=opIds)

    def list_contexts() -> list[ContextInfo]:
        """Every context (one JSONL file each) with entity and relation counts, size, last change and health."""
        return store.list_contexts()

    def validate_integrity(
        context: ContextArg = None,
        repair: Annotated[bool, Field(description="Apply the safe repairs (rewrite without damaged lines and restore "
                                                  "what they lost from the newest verified backup or history, cut a "
                                                  "torn tail, drop dangling relations), each logged.")] = False,
    ) -> IntegrityReport:
        """Check every context (or one): damaged lines with their line numbers, checksum failures, a torn tail,
        relations to missing entities, orphan sub-charts, due dates that break the timeline, and the newest daily
        and weekly backups (verified or not)."""
        return check_integrity(store, context=context, repair=repair)

    def create_backup(context: ContextArg = None) -> list[BackupInfo]:
        """Back up one context, or every context (omit it), now. Backups are also taken automatically on the
        first write of each day and week, and before anything rewrites a file."""
        if context is None:
            return store.backups.backup_all()
        taken = store.backups.backup_context(context)
        return [taken] if taken else []

    def list_backups(context: ContextArg = None) -> list[BackupInfo]:
        """Recorded backups, oldest first, with kind (daily, weekly, manual, pre-<operation>), time and sha256."""
        return store.backups.list_backups(context)

    def restore_backup(
        backupId: Annotated[str, Field(description="A backup id from list_backups, or a group id ('daily/2026-11-21').")],
        context: Annotated[str | None, Field(description="With a group id: restore only this context.")] = None,
    ) -> RestoreResult:
        """Put a context back to a backup. The backup must verify; the current state is backed up first and the
        replaced file kept in history/, so a restore can itself be undone. Destructive."""
        return store.backups.restore_backup(backupId, context)

    def storage_status() -> StoreStatus:
        """Where the data lives and why that directory was chosen, the format version, any problem (damaged
        lines, torn tail, read-only context) with what to do about it, and monitoring: per tool, calls, errors and
        p50/p99 latency since the server started; per context, growth over 7 and 30 days; the disk's free space
        and the days left at that rate, with a warning when either runs low."""
        return store.status()

    return [
        (create_entity, ADD),
        (add_relation, ADD),
        (add_observations, ADD),
        (update_entity, ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)),
        (delete_entities, CHANGE),
        (delete_observations, CHANGE),
        (delete_relations, CHANGE),
        (open_entities, READ),
        (search, READ),
        (read_graph, READ),
        (entity_history, READ),
        (chart_history, READ),
        (advancement_report, READ),
        (list_operations, READ),
        (undo, ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)),
        (list_contexts, READ),
        (validate_integrity, ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                             open_world_hint=False)),
        (create_backup, ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                        open_world_hint=False)),
        (list_backups, READ),
        (restore_backup, ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                         open_world_hint=False)),
        (storage_status, READ),
    ]


# ------------------------------------------------------------------ the chart tools

NEW = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
OVERWRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)

_CHART_TOOLS: list[tuple[str, type[BaseModel], ToolAnnotations, str]] = [
    ("create_chart", CreateChart, NEW,
     "Create a structural tension chart: the desired outcome (what you want to create), the current reality "
     "(honest facts about now), a due date, and action steps (a title each, optional due dates; missing ones are "
     "spread up to the chart's due date). One atomic write. The reply may carry warnings when the outcome names a "
     "problem to remove rather than a result to create."),
    ("add_action_step", AddActionStep, NEW,
     "Add one action step to a chart (dueDate omitted: halfway to the chart's due date, never later)."),
    ("update_action_step", UpdateActionStep, OVERWRITE,
     "Change an action step's title or due date, or record a progress note (optionally also in the chart's "
     "current reality). Use complete_action_step to finish it."),
    ("remove_action_step", ActionStepRef, CHANGE,
     "Delete an action step and, recursively, the sub-chart it telescopes into. Destructive."),
    ("telescope_action_step", TelescopeActionStep, NEW,
     "Turn an action step into a sub-chart with its own current reality and steps, to plan it in detail. The "
     "sub-chart's due date is the step's (never later); completing the sub-chart completes the step."),
    ("complete_action_step", ActionStepRef, ADD,
     "Mark one action step complete (never the whole chart): records completedAt and adds a dated 'Completed: ...' "
     "line to its chart's current reality; completion flows up through telescoped parents."),
    ("update_current_reality", UpdateCurrentReality, ADD,
     "Add observations (facts about where things stand now) to a chart's current reality."),
    ("update_desired_outcome", UpdateDesiredOutcome, OVERWRITE,
     "Restate a chart's desired outcome or move its due date."),
    ("complete_chart", ChartRef, ADD, "Mark a whole chart complete, with a dated line in its current reality."),
    ("archive_chart", ChartRef, ADD,
     "Move a completed chart (with its sub-charts) to the 'completed' archive context; safe across files."),
    ("move_chart", MoveChart, ADD, "Move a top-level chart and its sub-charts to another context; safe across files."),
    ("get_chart", GetChart, READ,
     "One chart as a tree to a chosen depth: outcome, current reality, steps with due dates and overdue flags, "
     "recursive progress at every level, and the next step due."),
    ("list_charts", ListCharts, READ,
     "Chart summaries with progress across every context or one: filter by status (active, completed, all), due "
     "within N days, or overdue; paginated."),
]


def _flat_tool(name: str, method: Callable[..., Any], model: type[BaseModel], description: str) -> Callable[..., Any]:
    """A tool whose arguments are ``model``'s fields at the top level (not nested under one object)."""

    def tool(**fields: Any) -> Any:
        return method(**fields)

    params = [
        inspect.Parameter(
            field_name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if field.is_required() else field.get_default(call_default_factory=True),
            annotation=Annotated[(field.annotation, *field.metadata, Field(description=field.description))],  # type: ignore[misc]
        )
        for field_name, field in model.model_fields.items()
    ]
    tool.__signature__ = inspect.Signature(params, return_annotation=get_type_hints(method)["return"])  # type: ignore[attr-defined]
    tool.__name__ = tool.__qualname__ = name
    tool.__doc__ = description
    return tool


def _chart_tools(charts: Charts) -> list[tuple[Callable[..., Any], ToolAnnotations]]:
    return [(_flat_tool(name, getattr(charts, name), model, text), hints) for name, model, hints, text in _CHART_TOOLS]


def _tools(store: Store, profile: Profile, index: SearchIndex) -> list[tuple[Callable[..., Any], ToolAnnotations]]:
    if profile == "memory":
        return _memory_tools(store, index)
    graph = _graph_tools(store, index)
    if profile == "graph":
        return graph
    chart_tools = _chart_tools(Charts(store))
    if profile == "charts":
        admin = ("list_contexts", "validate_integrity", "create_backup", "list_backups", "restore_backup",
                 "chart_history", "advancement_report", "list_operations", "undo", "storage_status")
        return chart_tools + [(fn, hints) for fn, hints in graph if fn.__name__ in admin]
    return chart_tools + graph


def build_server(store: Store, profile: Profile = "full", *, warm_up: float | None = None) -> MCPServer:
    """An MCP server publishing ``profile``'s tools over ``store``, with the resources and prompts.

    ``warm_up``: that many seconds after start, load every context and the search index in a
    thread, so later calls need not do it (``None``: never). Not at once: on 2 cores, loading
    during the MCP handshake slowed the handshake by 0.1-0.4 s (bench/bench_stdio.py), and a call
    that comes before the warm-up loads what it needs itself.
    """
    if profile not in PROFILES:
        raise CoaiaError(f"unknown tool profile {profile!r}: choose one of {', '.join(PROFILES)}")
    server = MCPServer("coaia-store", version=__version__, instructions=INSTRUCTIONS)
    index = SearchIndex(store)
    if warm_up is not None:
        timer = threading.Timer(warm_up, _warm_up, args=(index,))
        timer.name, timer.daemon = "coaia-warm-up", True
        timer.start()
    for fn, hints in _tools(store, profile, index):
        server.add_tool(_tool_errors(fn, store.calls), annotations=hints)
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
    build_server(store, profile, warm_up=WARM_UP_AFTER_S).run("stdio")
