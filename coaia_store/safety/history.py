"""History and time travel: every past state of a context, the versions of an entity, how a chart evolved,
the operations of the store and their undo.

The past is replayed from each context's live file and ``history/`` (:mod:`.generations`, :mod:`.timeline`).
Everything here only reads files (no lock, no writes), except :meth:`History.undo`, which appends
one new operation through the journal, never rewriting history.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, Field

from ..errors import InvalidInputError, NotFoundError
from ..graph.contexts import DEFAULT_CONTEXT, validate_context_name
from ..graph.paging import PAGE_BUDGET, Pager, bounded_page
from ..graph.state import GraphState, entity_view
from ..models import Conflict, Entity, check_date_range
from .chartevents import ChartEvent, chart_events, with_moves
from .generations import Generation, HistoryFiles, OpKind
from .operations import MAX_PAGE, Operation, OperationList, list_operations
from .timeline import Event, show_time, state_at, timeline
from .undo import UndoResult, undo_operations

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore

R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_END_OF_DAY = time(23, 59, 59, 999999, tzinfo=UTC)


class EntityVersion(BaseModel):
    context: str
    time: str | None
    opId: str
    opKind: OpKind
    by: str | None = Field(None, description="Who made it: the name of the HTTP token used (None when unknown).")
    action: Literal["created", "updated", "deleted"]
    entity: Entity | None = Field(description="The entity as this operation left it; None once deleted.")


class EntityHistory(BaseModel):
    name: str
    versions: list[EntityVersion] = Field(description="Oldest first.")
    total: int = Field(0, description="Versions in all.")
    nextCursor: str | None = Field(None, description="Pass it back as cursor for the next (later) versions.")
    note: str | None = Field(None, description="What this page left out, and how to get it.")


class ChartHistory(BaseModel):
    chartId: str
    events: list[ChartEvent] = Field(description="Oldest first.")
    total: int = Field(0, description="Events in the chart's history in all.")
    nextCursor: str | None = Field(None, description="Pass it back as cursor for the next (later) events.")
    note: str | None = Field(None, description="What this page left out, and how to get it.")
    conflicts: list[Conflict] = Field(
        [],
        description="Fields of this chart two clones changed without seeing each "
        "other's change (git merges): both values, who and when.",
    )


def parse_as_of(text: str) -> datetime:
    """An ``asOf`` value: a date-time with timezone, or a date (meaning the end of that day, UTC)."""
    if not isinstance(text, str):
        raise InvalidInputError(f"asOf must be text, an ISO date-time with timezone (got {type(text).__name__})")
    value = text.strip()
    try:
        if _DATE_ONLY.fullmatch(value):
            moment = datetime.combine(date.fromisoformat(value), _END_OF_DAY)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInputError(
            f"invalid asOf {text!r}: give an ISO date-time with a timezone ('2026-03-31T17:00:00Z', "
            "'2026-03-31T19:00:00+02:00') or a date ('2026-03-31', meaning the end of that day, UTC)"
        )
    try:
        check_date_range(moment, text)
    except ValueError as exc:
        raise InvalidInputError(f"invalid asOf: {exc}") from None
    return moment.astimezone(UTC)


class PastGraph:
    """A context's state at a past moment, shaped like a :class:`~coaia_store.graph.context_graph.Graph` for reading."""

    def __init__(self, context: str, state: GraphState) -> None:
        self.context = context
        self.state = state

    def read(self, fn: Callable[[GraphState], R]) -> R:
        return fn(self.state)


class History:
    """The history of a store's contexts: versions, operations, past states, undo."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store

    # ------------------------------------------------------------- reading

    def generations(self, context: str | None = None) -> list[Generation]:
        return HistoryFiles(self.store, _context(context)).generations()

    def state_as_of(self, context: str | None, as_of: str | datetime) -> GraphState:
        """The context's graph as it was at ``as_of`` (empty before its first write)."""
        moment = as_of if isinstance(as_of, datetime) else parse_as_of(as_of)
        if moment.tzinfo is None:
            raise InvalidInputError("asOf needs a timezone")
        return state_at(self.generations(context), moment)

    def past_graphs(self, context: str | None, as_of: str) -> list[PastGraph]:
        """Each context (``None``: every context) as it was at ``as_of``."""
        moment = parse_as_of(as_of)
        names = self.store.contexts() if context is None else [validate_context_name(context)]
        return [PastGraph(name, self.state_as_of(name, moment)) for name in names]

    def operations(self, context: str | None = None, limit: int = 50, cursor: str | None = None) -> OperationList:
        """The operations of the whole store (or of one context), newest first, each with its id, the
        contexts it wrote, when, and what it touched: what :meth:`undo` takes. Paginated by ``cursor``."""
        return list_operations(self.store, context, limit, cursor)

    def every_operation(self, context: str | None = None) -> Iterator[Operation]:
        """:meth:`operations`, every page of them, newest first."""
        cursor: str | None = None
        while True:
            page = self.operations(context, MAX_PAGE, cursor)
            yield from page.operations
            if page.nextCursor is None:
                return
            cursor = page.nextCursor

    def entity_history(
        self, name: str, context: str | None = None, limit: int | None = 100, cursor: str | None = None
    ) -> EntityHistory:
        """Every version of entity ``name`` (in one context, or in every context), oldest first, ``limit`` a page."""
        if not isinstance(name, str) or not name:
            raise InvalidInputError("name must be a non-empty entity name")
        _check_limit(limit)
        versions: list[EntityVersion] = []
        for ctx in self._contexts(context):
            _, events = timeline(self.generations(ctx))
            versions += _versions(events, name, ctx)
        versions.sort(key=lambda v: v.time or "")
        page, note, more = _page(versions, Pager("entity_history", name, context), limit, cursor, "versions")
        return EntityHistory(name=name, versions=page, total=len(versions), note=note, nextCursor=more)

    def chart_history(
        self, chart_id: str, context: str | None = None, limit: int | None = 100, cursor: str | None = None
    ) -> ChartHistory:
        """How a chart evolved, oldest first: created, reality added, steps added/completed/telescoped, dates
        moved, moved or archived (one ``chart_moved`` event). ``limit`` events a page (``None``: all)."""
        if not isinstance(chart_id, str) or not chart_id:
            raise InvalidInputError("chartId must be a non-empty chart id")
        _check_limit(limit)
        touched: list[tuple[str, Event, list[ChartEvent]]] = []
        for ctx in self._contexts(context):
            _, events = timeline(self.generations(ctx))
            touched += [(ctx, e, found) for e in events if (found := chart_events(e, chart_id, ctx))]
        if not touched:
            where = f"context {context!r}" if context is not None else "any context"
            raise NotFoundError(f"no history of chart {chart_id!r} in {where}; list_charts shows the charts")
        found = with_moves(touched, chart_id)
        conflicts = [c for c in self.store.conflicts(context, settled=True) if c.target.startswith(f"{chart_id}_")]
        page, note, more = _page(found, Pager("chart_history", chart_id, context), limit, cursor, "events")
        return ChartHistory(
            chartId=chart_id, events=page, total=len(found), note=note, nextCursor=more, conflicts=conflicts
        )

    def _contexts(self, context: str | None) -> list[str]:
        return self.store.contexts() if context is None else [validate_context_name(context)]

    # ------------------------------------------------------------- undo

    def undo(
        self,
        operation_id: str | None = None,
        context: str | None = None,
        count: int = 1,
        op_ids: Sequence[str] | None = None,
    ) -> UndoResult:
        """Revert one operation by its id, or (without one) the latest ``count`` operations of the whole store
        (or of ``context``), by appending ONE new operation to each context they wrote.

        Each entity and relation they touched goes back to its value just before the earliest of
        them. Refused (:class:`ConflictError`, nothing written) when an operation that is not being
        undone changed one of them afterwards. The undo is itself an operation: undoing it redoes.
        """
        return undo_operations(self.store, operation_id, context, count, op_ids)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE):
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE} (got {limit})")


def _page(
    items: list[M], pager: Pager, limit: int | None, cursor: str | None, what: str
) -> tuple[list[M], str | None, str | None]:
    """One bounded page of a timeline: the items, the note saying what is left, the next page's cursor."""
    start = pager.offset(cursor, len(items))
    page, end = bounded_page(items, start, limit or len(items), lambda i: len(i.model_dump_json()), PAGE_BUDGET)
    more = end < len(items)
    note = (
        f"{what} {start + 1}-{end} of {len(items)}, oldest first; pass nextCursor for the later ones"
        if more or start
        else None
    )
    return page, note, pager.cursor(end, len(items))


def _context(context: str | None) -> str:
    return DEFAULT_CONTEXT if context is None else validate_context_name(context)


def _versions(events: list[Event], name: str, context: str) -> list[EntityVersion]:
    found = []
    for event in events:
        change = event.changes.get(("e", name))
        if change is None:
            continue
        before, after = change
        action = "created" if before is None else "deleted" if after is None else "updated"
        found.append(
            EntityVersion(
                context=context,
                time=show_time(event.time),
                opId=event.id,
                opKind=event.kind,
                by=event.by,
                action=action,
                entity=entity_view(after, context) if after is not None else None,
            )
        )
    return found
