"""Operations across the whole store: listed newest first with their ids, each named by what it changed.

An operation is one call: one line in one context, or, for a chart move or archive, one line in
each of its two contexts sharing one ``_op`` (the copy into the target, then the removal from the
source). :mod:`.timeline` reads each context's timeline; this module merges them across
contexts and names each operation by what it changed ("complete step", "move chart"...): the
records do not say which interface or tool made the call, and the names stay true for all of them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..errors import InvalidInputError
from ..graph.contexts import ARCHIVE_CONTEXT, validate_context_name
from ..graph.paging import PAGE_BUDGET, Pager, bounded_page
from ..storage.lines import Record
from .generations import HistoryFiles, OpKind
from .timeline import Event, Key, meta_of, observations_of, show_time, timeline

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore

MAX_PAGE = 500  # most events or operations one page holds (PAGE_BUDGET may stop it earlier)
_CHART, _STEP, _OUTCOME, _REALITY = "structural_tension_chart", "action_step", "desired_outcome", "current_reality"
_NAMES = 20  # chart ids and entity names listed per operation
_SHOWN = 3  # names per kind of change in a summary
# The kinds of change, most telling first: an operation is named for the first it holds.
_ACTIONS = (
    "remove chart",
    "remove step",
    "complete step",
    "complete chart",
    "reopen step",
    "reopen chart",
    "add step",
    "update step",
    "update desired outcome",
    "update chart",
    "update current reality",
    "remove sub-chart",
    "create entities",
    "delete entities",
    "add observations",
    "delete observations",
    "update entities",
    "add relations",
    "delete relations",
)
_OTHER_KINDS = {"restore": "restore a backup", "compaction": "repair", "import": "import"}


class Operation(BaseModel):
    id: str = Field(
        description="The operation id (the '_op' of its records; 'restore:<file>' for a restore): what undo takes."
    )
    context: str = Field(description="The context it wrote (a move: the one it moved to).")
    contexts: list[str] = Field(description="Every context it wrote: two for a chart move or archive.")
    time: str | None = Field(description="When it was written (ISO, UTC).")
    kind: OpKind
    action: str = Field(
        description="The kind of call, read from what it changed: 'create chart', 'complete step', "
        "'move chart', 'create entities'..."
    )
    summary: str = Field(description="What it did, in one line.")
    charts: list[str] = Field([], description="The charts it touched (their ids; the first 20).")
    entities: list[str] = Field(
        description="Other entities (not part of a chart) it created, changed or deleted (the first 20)."
    )
    entityCount: int = Field(0, description="How many entities it touched in all, those of its charts included.")
    relations: int = Field(description="How many relations it added or removed.")
    undoes: list[str] = Field([], description="For an undo: the operations it reverted.")
    by: str | None = Field(None, description="Who made it: the name of the HTTP token used (None when unknown).")


class OperationList(BaseModel):
    context: str | None = Field(description="The context listed; None: every context.")
    operations: list[Operation] = Field(description="Newest first.")
    total: int = Field(description="Operations in the context (or the store) in all.")
    nextCursor: str | None = Field(None, description="Pass it back as cursor for the next (older) page.")
    note: str | None = Field(None, description="What this page left out, and how to get it.")


@dataclass(eq=False)
class Op:
    """One operation: its event in each context it wrote, oldest first."""

    id: str
    parts: list[tuple[str, Event]] = field(default_factory=list)

    @property
    def time(self) -> datetime | None:
        times = [event.time for _, event in self.parts if event.time is not None]
        return max(times) if times else None

    @property
    def contexts(self) -> list[str]:
        return list(dict.fromkeys(context for context, _ in self.parts))

    @property
    def changes(self) -> list[tuple[str, Key, Record | None, Record | None]]:
        return [(c, key, before, after) for c, event in self.parts for key, (before, after) in event.changes.items()]


def store_operations(store: GraphStore, contexts: Sequence[str]) -> list[Op]:
    """Every operation of ``contexts``, newest first."""
    ops: dict[tuple[str, ...], Op] = {}
    owners: dict[str, list[Op]] = {}  # each context's timeline, as the operations its events belong to
    for context in contexts:
        _, events = timeline(HistoryFiles(store, context).generations())
        for event in events:
            # 'restore:<file>' and the like name one context's event; a write's id may span contexts (a move)
            key = (event.id,) if event.kind in ("write", "undo") else (context, event.id)
            op = ops.setdefault(key, Op(event.id))
            op.parts.append((context, event))
            owners.setdefault(context, []).append(op)
    return list(reversed(_Merge(owners).run()))


class _Merge:
    """The contexts' timelines merged into one, oldest first: by time, and an operation that wrote several
    contexts (a move) only once it heads all of them, so that each context's own order is kept even for
    operations written in the same millisecond."""

    def __init__(self, owners: dict[str, list[Op]]) -> None:
        self.owners = owners
        self.rank = {context: index for index, context in enumerate(owners)}
        self.pos = dict.fromkeys(owners, 0)
        self.heap: list[tuple[bool, datetime, int, str]] = []
        self.arrived: dict[Op, int] = {}
        self.done: set[Op] = set()
        self.merged: list[Op] = []

    def run(self) -> list[Op]:
        for context in self.owners:
            self._push(context)
        while self.heap or self.arrived:
            if not self.heap:  # operations waiting for each other (lines written out of order): oldest first
                self._finish(min(self.arrived, key=lambda op: (op.time is not None, op.time or datetime.min)))
                continue
            context = heapq.heappop(self.heap)[3]
            op = self.owners[context][self.pos[context]]
            self.arrived[op] = self.arrived.get(op, 0) + 1
            if self.arrived[op] == len(op.parts):
                self._finish(op)
        return self.merged

    def _push(self, context: str) -> None:
        queue = self.owners[context]
        while self.pos[context] < len(queue) and queue[self.pos[context]] in self.done:
            self.pos[context] += 1
        if self.pos[context] < len(queue):
            part = next(event for c, event in queue[self.pos[context]].parts if c == context)
            heapq.heappush(self.heap, (part.time is not None, part.time or datetime.min, self.rank[context], context))

    def _finish(self, op: Op) -> None:
        self.arrived.pop(op, None)
        self.done.add(op)
        self.merged.append(op)
        for context in op.contexts:
            queue = self.owners[context]
            if self.pos[context] < len(queue) and queue[self.pos[context]] is op:
                self.pos[context] += 1
                self._push(context)


# ----------------------------------------------------------------- describing


def describe(op: Op, known: dict[str, Op] | None = None) -> Operation:
    """``known``: operations by id, to say what an undo reverted."""
    changes = op.changes
    names = list(dict.fromkeys(key[1] for _, key, _, _ in changes if key[0] == "e"))
    charts = list(dict.fromkeys(c for _, key, before, after in changes if (c := _chart_of(key, before, after))))
    others = list(dict.fromkeys(key[1] for _, key, b, a in changes if key[0] == "e" and not _chart_of(key, b, a)))
    last = op.parts[-1][1]
    moved = _move(op)
    action, summary = moved[:2] if moved else _action(op, known or {})
    contexts = moved[2] if moved else op.contexts
    return Operation(
        id=op.id,
        context=contexts[0],
        contexts=contexts,
        time=show_time(op.time),
        kind=last.kind,
        action=action,
        summary=summary,
        charts=charts[:_NAMES],
        entities=others[:_NAMES],
        entityCount=len(names),
        relations=len({key for _, key, _, _ in changes if key[0] == "r"}),
        undoes=last.undoes,
        by=last.by,
    )


def _chart_of(key: Key, before: Record | None, after: Record | None) -> str | None:
    record = after or before or {}
    if key[0] != "e" or record.get("entityType") not in (_CHART, _STEP, _OUTCOME, _REALITY):
        return None
    chart = meta_of(record).get("chartId")
    return chart if isinstance(chart, str) else key[1].removesuffix("_chart")


def _action(op: Op, known: dict[str, Op]) -> tuple[str, str]:
    """The kind of call (read from what the operation changed) and a one-line summary; a move aside."""
    kind = op.parts[-1][1].kind
    where = " and ".join(repr(c) for c in op.contexts)
    if kind == "undo":
        undoes = op.parts[-1][1].undoes
        first = known.get(undoes[0]) if undoes else None
        what = f" ({describe(first).summary})" if first is not None and len(undoes) == 1 else ""
        return "undo", f"undo of operation {', '.join(undoes)}{what}"
    if kind in _OTHER_KINDS:
        return _OTHER_KINDS[kind], f"{_OTHER_KINDS[kind]} in {where}: {_facts_text(_facts(op))}"
    made = [
        (after, key[1])
        for _, key, before, after in op.changes
        if before is None and after is not None and after.get("entityType") == _CHART
    ]
    if made:
        record, name = made[0]
        chart = _chart_of(("e", name), None, record)
        parent = meta_of(record).get("parentActionStep")
        if isinstance(parent, str):
            return "telescope step", f"telescope step {parent} into chart {chart}{_outcome(op, chart)} in {where}"
        return "create chart", f"create chart {chart}{_outcome(op, chart)} in {where}"
    facts = _facts(op)
    action = next((a for a in _ACTIONS if a in facts), "no visible change")
    return action, f"{_facts_text(facts)} in {where}"


def _move(op: Op) -> tuple[str, str, list[str]] | None:
    """A chart move or archive: its action, its summary and its contexts (the target first)."""
    made = [(c, a) for c, _, b, a in op.changes if b is None and (a or {}).get("entityType") == _CHART]
    gone = {c for c, _, b, a in op.changes if a is None and (b or {}).get("entityType") == _CHART}
    sources, targets = gone - {c for c, _ in made}, {c for c, _ in made} - gone
    if not sources or not targets:
        return None
    target = sorted(targets)[0]
    charts = [r for c, r in made if c == target]
    top = next((r for r in charts if not isinstance(meta_of(r).get("parentChart"), str)), charts[0])
    verb = "archive chart" if target == ARCHIVE_CONTEXT else "move chart"
    source, chart = sorted(sources)[0], str(meta_of(top).get("chartId"))
    return verb, f"{verb} {chart}{_outcome(op, chart)} from {source!r} to {target!r}", [target, source]


def _outcome(op: Op, chart: str | None) -> str:
    """`` ("the chart's desired outcome")`` when the operation holds it, else nothing."""
    for _, key, before, after in op.changes:
        if key == ("e", f"{chart}_desired_outcome"):
            text = (observations_of(after or before) or [""])[0]
            return f" ({text[:60] + '…' if len(text) > 60 else text!r})" if text else ""
    return ""


def _facts(op: Op) -> dict[str, list[str]]:
    """Each kind of change the operation made, with what it changed (step titles, chart ids, names); the
    relations only when no entity changed (an entity's change says more than the links it took along)."""
    facts: dict[str, list[str]] = {}
    entities = any(key[0] == "e" for _, key, _, _ in op.changes)
    gone = {_chart_of(key, b, a) for _, key, b, a in op.changes if a is None and (b or {}).get("entityType") == _CHART}
    for _, key, before, after in op.changes:
        part = (before or {}).get("entityType") in (_OUTCOME, _REALITY)
        if after is None and part and _chart_of(key, before, after) in gone:
            continue  # told by its chart's removal
        if key[0] == "e" or not entities:
            verb, label = _fact(key, before, after)
            facts.setdefault(verb, []).append(label)
    return facts


def _fact(key: Key, before: Record | None, after: Record | None) -> tuple[str, str]:
    if key[0] == "r":
        return (
            "add relations" if before is None else "delete relations" if after is None else "update relations"
        ), f"{key[1]} -[{key[2]}]-> {key[3]}"
    record = after or before or {}
    kind = record.get("entityType")
    was, now = meta_of(before).get("completionStatus") is True, meta_of(after).get("completionStatus") is True
    if kind == _STEP:
        title = (observations_of(record) or [key[1]])[0]
        verb = (
            "add step"
            if before is None
            else "remove step"
            if after is None
            else "complete step"
            if now and not was
            else "reopen step"
            if was and not now
            else "update step"
        )
        return verb, f"{title!r} ({key[1]})"
    if kind == _CHART and after is None:
        sub = isinstance(meta_of(before).get("parentChart"), str)
        return ("remove sub-chart" if sub else "remove chart"), _chart_of(key, before, after) or key[1]
    if kind == _CHART:
        chart = _chart_of(key, before, after) or key[1]
        return ("complete chart" if now and not was else "reopen chart" if was and not now else "update chart"), chart
    if kind in (_REALITY, _OUTCOME) and before is not None:
        return f"update {kind.replace('_', ' ')}", _chart_of(key, before, after) or key[1]
    if before is None or after is None:
        return ("create entities" if before is None else "delete entities"), key[1]
    old, new = observations_of(before), observations_of(after)
    if before.get("entityType") == after.get("entityType") and new[: len(old)] == old and len(new) > len(old):
        return "add observations", key[1]
    if before.get("entityType") == after.get("entityType") and set(new) < set(old):
        return "delete observations", key[1]
    return "update entities", key[1]


def _facts_text(facts: dict[str, list[str]]) -> str:
    parts = []
    for verb, labels in facts.items():
        shown = ", ".join(dict.fromkeys(labels[:_SHOWN]))
        parts.append(f"{verb} {shown}" + (f" and {len(labels) - _SHOWN} more" if len(labels) > _SHOWN else ""))
    return "; ".join(parts) or "no visible change"


# ----------------------------------------------------------------- listing


def list_operations(store: GraphStore, context: str | None, limit: int, cursor: str | None) -> OperationList:
    """The operations of the store (or one context), newest first, a bounded page at a time."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE} (got {limit})")
    name = None if context is None else validate_context_name(context)
    ops = store_operations(store, store.contexts() if name is None else [name])
    pager = Pager("operations", name)
    start = _start(ops, pager.key_after(cursor))
    known = {op.id: op for op in ops}
    described = [describe(op, known) for op in ops[start : start + limit]]
    page, end = bounded_page(described, 0, limit, lambda op: len(op.model_dump_json()), PAGE_BUDGET)
    end += start
    more = end < len(ops)
    note = f"operations {start + 1}-{end} of {len(ops)}, newest first; pass nextCursor for older ones" if more else None
    return OperationList(
        context=name,
        operations=page,
        total=len(ops),
        note=note,
        nextCursor=pager.after(_key(ops[end - 1])) if more else None,
    )


def _key(op: Op) -> str:
    return f"{op.contexts[0]}:{op.id}"  # 'restore:<file>' ids are per context


def _start(ops: list[Op], after: str | None) -> int:
    """Where the page after operation ``after`` starts (new operations at the head do not move it)."""
    if after is None:
        return 0
    for index, op in enumerate(ops):
        if _key(op) == after:
            return index + 1
    raise InvalidInputError("the cursor names an operation this list no longer holds; omit it to start over")
