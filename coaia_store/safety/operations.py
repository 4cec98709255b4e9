"""Operations across the whole store: listed newest first with their ids, and undone by id.

An operation is one call: one line in one context, or, for a chart move or archive, one line in
each of its two contexts sharing one ``_op`` (the copy into the target, then the removal from the
source). :mod:`coaia_store.history` reads each context's timeline; this module merges them across
contexts and names each operation by what it changed ("complete step", "move chart"...): the
records do not say which interface or tool made the call, and the names stay true for all of them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..graph.contexts import ARCHIVE_CONTEXT, validate_context_name
from ..graph.paging import PAGE_BUDGET, Pager, bounded_page
from ..graph.state import GraphState
from ..storage.envelope import new_op_id
from ..storage.lines import Record
from .history import (
    MAX_PAGE,
    UNDO_TYPE,
    Key,
    Operation,
    OperationList,
    UndoResult,
    _Event,
    _meta,
    _observations,
    _same,
    _show,
    _Source,
    _strip,
    _value,
    timeline,
)

if TYPE_CHECKING:
    from ..store import Store

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


@dataclass(eq=False)
class _Op:
    """One operation: its event in each context it wrote, oldest first."""

    id: str
    parts: list[tuple[str, _Event]] = field(default_factory=list)

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


def _store_operations(store: Store, contexts: Sequence[str]) -> list[_Op]:
    """Every operation of ``contexts``, newest first."""
    ops: dict[tuple[str, ...], _Op] = {}
    owners: dict[str, list[_Op]] = {}  # each context's timeline, as the operations its events belong to
    for context in contexts:
        _, events = timeline(_Source(store, context).generations())
        for event in events:
            # 'restore:<file>' and the like name one context's event; a write's id may span contexts (a move)
            key = (event.id,) if event.kind in ("write", "undo") else (context, event.id)
            op = ops.setdefault(key, _Op(event.id))
            op.parts.append((context, event))
            owners.setdefault(context, []).append(op)
    return list(reversed(_Merge(owners).run()))


class _Merge:
    """The contexts' timelines merged into one, oldest first: by time, and an operation that wrote several
    contexts (a move) only once it heads all of them, so that each context's own order is kept even for
    operations written in the same millisecond."""

    def __init__(self, owners: dict[str, list[_Op]]) -> None:
        self.owners = owners
        self.rank = {context: index for index, context in enumerate(owners)}
        self.pos = dict.fromkeys(owners, 0)
        self.heap: list[tuple[bool, datetime, int, str]] = []
        self.arrived: dict[_Op, int] = {}
        self.done: set[_Op] = set()
        self.merged: list[_Op] = []

    def run(self) -> list[_Op]:
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

    def _finish(self, op: _Op) -> None:
        self.arrived.pop(op, None)
        self.done.add(op)
        self.merged.append(op)
        for context in op.contexts:
            queue = self.owners[context]
            if self.pos[context] < len(queue) and queue[self.pos[context]] is op:
                self.pos[context] += 1
                self._push(context)


# ----------------------------------------------------------------- describing


def describe(op: _Op, known: dict[str, _Op] | None = None) -> Operation:
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
        time=_show(op.time),
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
    chart = _meta(record).get("chartId")
    return chart if isinstance(chart, str) else key[1].removesuffix("_chart")


def _action(op: _Op, known: dict[str, _Op]) -> tuple[str, str]:
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
        parent = _meta(record).get("parentActionStep")
        if isinstance(parent, str):
            return "telescope step", f"telescope step {parent} into chart {chart}{_outcome(op, chart)} in {where}"
        return "create chart", f"create chart {chart}{_outcome(op, chart)} in {where}"
    facts = _facts(op)
    action = next((a for a in _ACTIONS if a in facts), "no visible change")
    return action, f"{_facts_text(facts)} in {where}"


def _move(op: _Op) -> tuple[str, str, list[str]] | None:
    """A chart move or archive: its action, its summary and its contexts (the target first)."""
    made = [(c, a) for c, _, b, a in op.changes if b is None and (a or {}).get("entityType") == _CHART]
    gone = {c for c, _, b, a in op.changes if a is None and (b or {}).get("entityType") == _CHART}
    sources, targets = gone - {c for c, _ in made}, {c for c, _ in made} - gone
    if not sources or not targets:
        return None
    target = sorted(targets)[0]
    charts = [r for c, r in made if c == target]
    top = next((r for r in charts if not isinstance(_meta(r).get("parentChart"), str)), charts[0])
    verb = "archive chart" if target == ARCHIVE_CONTEXT else "move chart"
    source, chart = sorted(sources)[0], str(_meta(top).get("chartId"))
    return verb, f"{verb} {chart}{_outcome(op, chart)} from {source!r} to {target!r}", [target, source]


def _outcome(op: _Op, chart: str | None) -> str:
    """`` ("the chart's desired outcome")`` when the operation holds it, else nothing."""
    for _, key, before, after in op.changes:
        if key == ("e", f"{chart}_desired_outcome"):
            text = (_observations(after or before) or [""])[0]
            return f" ({text[:60] + '…' if len(text) > 60 else text!r})" if text else ""
    return ""


def _facts(op: _Op) -> dict[str, list[str]]:
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
    was, now = _meta(before).get("completionStatus") is True, _meta(after).get("completionStatus") is True
    if kind == _STEP:
        title = (_observations(record) or [key[1]])[0]
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
        sub = isinstance(_meta(before).get("parentChart"), str)
        return ("remove sub-chart" if sub else "remove chart"), _chart_of(key, before, after) or key[1]
    if kind == _CHART:
        chart = _chart_of(key, before, after) or key[1]
        return ("complete chart" if now and not was else "reopen chart" if was and not now else "update chart"), chart
    if kind in (_REALITY, _OUTCOME) and before is not None:
        return f"update {kind.replace('_', ' ')}", _chart_of(key, before, after) or key[1]
    if before is None or after is None:
        return ("create entities" if before is None else "delete entities"), key[1]
    old, new = _observations(before), _observations(after)
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


def list_operations(store: Store, context: str | None, limit: int, cursor: str | None) -> OperationList:
    """The operations of the store (or one context), newest first, a bounded page at a time."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE} (got {limit})")
    name = None if context is None else validate_context_name(context)
    ops = _store_operations(store, store.contexts() if name is None else [name])
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


def _key(op: _Op) -> str:
    return f"{op.contexts[0]}:{op.id}"  # 'restore:<file>' ids are per context


def _start(ops: list[_Op], after: str | None) -> int:
    """Where the page after operation ``after`` starts (new operations at the head do not move it)."""
    if after is None:
        return 0
    for index, op in enumerate(ops):
        if _key(op) == after:
            return index + 1
    raise InvalidInputError("the cursor names an operation this list no longer holds; omit it to start over")


# ----------------------------------------------------------------- undo


def undo_operations(
    store: Store, operation_id: str | None, context: str | None, count: int, op_ids: Sequence[str] | None
) -> UndoResult:
    """See :meth:`coaia_store.history.History.undo`."""
    wanted = _wanted(operation_id, op_ids)
    if wanted is None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise InvalidInputError(f"count must be at least 1 (got {count})")
    name = None if context is None else validate_context_name(context)
    # an id names one operation wherever it wrote (a move: both contexts), whatever context is passed
    scope = [name] if name is not None and wanted is None else store.contexts()
    chosen = _choose(_store_operations(store, scope), count, wanted, name if wanted is None else None)
    plan = _plan(store, chosen)
    undo_id = new_op_id()
    entities: list[str] = []
    relations = 0
    written: list[str] = []
    for ctx, ids in plan:
        touched = _undo_in(store, ctx, ids, undo_id)
        entities += [key[1] for key in touched if key[0] == "e"]
        relations += sum(key[0] == "r" for key in touched)
        if touched:
            written.append(ctx)
    undone = [describe(op) for op in chosen]
    return UndoResult(
        context=(written or [ctx for ctx, _ in plan] or chosen[0].contexts)[0],
        contexts=written,
        opId=undo_id if written else None,
        undone=undone,
        entities=entities,
        relations=relations,
        summary="undid " + "; ".join(f"{op.summary} (operation {op.id}, {op.time})" for op in undone),
    )


def _wanted(operation_id: str | None, op_ids: Sequence[str] | None) -> list[str] | None:
    if operation_id is None and op_ids is None:
        return None
    wanted = list(dict.fromkeys([*([operation_id] if operation_id is not None else []), *(op_ids or [])]))
    if not wanted or not all(isinstance(i, str) and i for i in wanted):
        raise InvalidInputError("give operation ids as non-empty text; the history lists the operations with their ids")
    return wanted


def _choose(ops: list[_Op], count: int, wanted: list[str] | None, context: str | None) -> list[_Op]:
    """The operations to undo, newest first."""
    where = "the store" if context is None else f"context {context!r}"
    if wanted is None:
        if not ops:
            raise NotFoundError(f"nothing to undo: {where} has no operations")
        if count > len(ops):
            raise InvalidInputError(f"cannot undo {count} operations: {where} has {len(ops)}")
        return ops[:count]
    found = [op for op in ops if op.id in wanted]
    missing = [i for i in wanted if i not in {op.id for op in found}]
    if missing:
        raise NotFoundError(
            f"no operation {', '.join(map(repr, missing))} in {where}; the history lists the operations with their ids"
        )
    return found


def _plan(store: Store, chosen: list[_Op]) -> list[tuple[str, list[str]]]:
    """Per context, the operation ids to revert there, newest writes first (a move: its source first, so
    an interrupted undo leaves the chart in both contexts, never in neither). Checked before anything is
    written: a refusal changes nothing. A context where they are already undone is left out."""
    newest: dict[str, datetime | None] = {}
    ids: dict[str, list[str]] = {}
    for op in chosen:
        for ctx, event in op.parts:
            ids.setdefault(ctx, []).append(op.id)
            newest[ctx] = max((t for t in (newest.get(ctx), event.time) if t is not None), default=None)
    order = sorted(ids, key=lambda c: (newest[c] is not None, newest[c] or datetime.min), reverse=True)
    plan, undone_by = [], None
    for ctx in order:
        _, events = timeline(_Source(store, ctx).generations())
        already = _undone_by(events, set(ids[ctx]))
        if already is None:
            _targets(events, ids[ctx], ctx)
            plan.append((ctx, ids[ctx]))
        undone_by = undone_by or already
    if not plan and undone_by is not None:
        raise ConflictError(
            f"operation {', '.join(op.id for op in chosen)} is already undone, by operation "
            f"{undone_by}; undoing operation {undone_by} would redo it"
        )
    return plan


def _undone_by(events: list[_Event], ids: set[str]) -> str | None:
    """The undo that reverted all of ``ids`` in this context and still stands (was not itself undone)."""
    undoer = None
    for event in events:
        if event.kind == "undo" and ids <= set(event.undoes):
            undoer = event.id
        elif undoer is not None and event.kind == "undo" and undoer in event.undoes:
            undoer = None
    return undoer


def _undo_in(store: Store, context: str, ids: list[str], op_id: str) -> list[Key]:
    """One line in ``context`` putting back what operations ``ids`` changed there; the keys it changed."""
    graph = store.graph(context)

    def build() -> tuple[list[Record], list[Key]]:
        final, events = timeline(_Source(store, context).generations())
        if _undone_by(events, set(ids)) is not None:  # another process's undo of the same did it meanwhile
            return [], []
        targets = _targets(events, ids, context)
        _check_fresh(graph.state, final, targets, context)
        records = _undo_records(graph.state, targets)
        touched = [k for k in targets if not _same(_value(graph.state, k), targets[k])]
        return ([{"type": UNDO_TYPE, "undoes": ids}, *records] if records else []), touched

    return graph.journal.write(build, op_id)


def _targets(events: list[_Event], ids: list[str], context: str) -> dict[Key, Record | None]:
    """Each key the chosen events touched, with its value just before the earliest of them."""
    targets: dict[Key, Record | None] = {}
    origin: dict[Key, str] = {}
    for event in events:
        if event.id in ids:
            for key, (before, _) in event.changes.items():
                targets.setdefault(key, before)
                origin.setdefault(key, event.id)
            continue
        clash = [k for k in event.changes if k in targets]
        if clash:
            later = describe(_Op(event.id, [(context, event)]))
            raise ConflictError(
                f"cannot undo operation {origin[clash[0]]}: {_key_text(clash[0])} was changed afterwards by operation "
                f"{event.id} ({later.summary}, {later.time}), which is not being undone; undo operation {event.id} "
                f"first, then operation {origin[clash[0]]} (the history lists operations with their ids)"
            )
    return targets


def _check_fresh(state: GraphState, final: GraphState, targets: dict[Key, Record | None], context: str) -> None:
    for key in targets:
        if not _same(_value(state, key), _value(final, key)):
            raise ConflictError(
                f"cannot undo: {_key_text(key)} in context {context!r} does not match its history "
                "(changed by another process meanwhile, or damaged lines); read the history again and retry"
            )
    for key, target in targets.items():
        if key[0] == "e" and target is None:
            later = [("r", *k) for k in state.links.get(key[1], ()) if ("r", *k) not in targets]
            if later:
                raise ConflictError(
                    f"cannot undo: entity {key[1]!r} would be removed, but {_key_text(later[0])} was added "
                    "to it by a later operation; undo that operation first"
                )


def _undo_records(state: GraphState, targets: dict[Key, Record | None]) -> list[Record]:
    changed = {k: v for k, v in targets.items() if not _same(_value(state, k), v)}
    gone = {k[1] for k, v in changed.items() if k[0] == "e" and v is None}
    records: list[Record] = [
        {"type": "delete_entity", "name": k[1]} for k, v in changed.items() if k[0] == "e" and v is None
    ]
    records += [_strip(v) for k, v in changed.items() if k[0] == "e" and v is not None]  # type: ignore[misc]
    records += [
        {"type": "delete_relation", "from": k[1], "relationType": k[2], "to": k[3]}
        for k, v in changed.items()
        if k[0] == "r" and v is None and not ({k[1], k[3]} & gone)
    ]
    records += [_strip(v) for k, v in changed.items() if k[0] == "r" and v is not None]  # type: ignore[misc]
    return records


def _key_text(key: Key) -> str:
    return f"entity {key[1]!r}" if key[0] == "e" else f"relation {key[1]} -[{key[2]}]-> {key[3]}"
