"""Undo: revert operations by appending one new operation to each context they wrote, never rewriting history.

Each entity and relation the operations touched goes back to its value just before the earliest of them;
refused when an operation not being undone changed one of them afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..graph.contexts import validate_context_name
from ..graph.state import GraphState
from ..storage.envelope import new_op_id
from ..storage.lines import Record
from .generations import HistoryFiles
from .operations import Op, Operation, describe, store_operations
from .timeline import UNDO_TYPE, Event, Key, same_content, strip_meta, timeline, value_at

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore


class UndoResult(BaseModel):
    context: str = Field(description="The context it wrote (the first, when the operation spanned several).")
    contexts: list[str] = Field([], description="Every context the undo wrote.")
    opId: str | None = Field(
        description="The id of the new operation that reverted them (None if nothing had to change)."
    )
    undone: list[Operation] = Field(description="The operations reverted, newest first.")
    summary: str = Field("", description="What was undone, in one line.")
    entities: list[str] = Field(description="Entities the undo created, changed or deleted.")
    relations: int = Field(description="Relations the undo added or removed.")


def undo_operations(
    store: GraphStore, operation_id: str | None, context: str | None, count: int, op_ids: Sequence[str] | None
) -> UndoResult:
    """See :meth:`coaia_store.history.History.undo`."""
    wanted = _wanted(operation_id, op_ids)
    if wanted is None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise InvalidInputError(f"count must be at least 1 (got {count})")
    name = None if context is None else validate_context_name(context)
    # an id names one operation wherever it wrote (a move: both contexts), whatever context is passed
    scope = [name] if name is not None and wanted is None else store.contexts()
    chosen = _choose(store_operations(store, scope), count, wanted, name if wanted is None else None)
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


def _choose(ops: list[Op], count: int, wanted: list[str] | None, context: str | None) -> list[Op]:
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


def _plan(store: GraphStore, chosen: list[Op]) -> list[tuple[str, list[str]]]:
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
        _, events = timeline(HistoryFiles(store, ctx).generations())
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


def _undone_by(events: list[Event], ids: set[str]) -> str | None:
    """The undo that reverted all of ``ids`` in this context and still stands (was not itself undone)."""
    undoer = None
    for event in events:
        if event.kind == "undo" and ids <= set(event.undoes):
            undoer = event.id
        elif undoer is not None and event.kind == "undo" and undoer in event.undoes:
            undoer = None
    return undoer


def _undo_in(store: GraphStore, context: str, ids: list[str], op_id: str) -> list[Key]:
    """One line in ``context`` putting back what operations ``ids`` changed there; the keys it changed."""
    graph = store.graph(context)

    def build() -> tuple[list[Record], list[Key]]:
        final, events = timeline(HistoryFiles(store, context).generations())
        if _undone_by(events, set(ids)) is not None:  # another process's undo of the same did it meanwhile
            return [], []
        targets = _targets(events, ids, context)
        _check_fresh(graph.state, final, targets, context)
        records = _undo_records(graph.state, targets)
        touched = [k for k in targets if not same_content(value_at(graph.state, k), targets[k])]
        return ([{"type": UNDO_TYPE, "undoes": ids}, *records] if records else []), touched

    return graph.journal.write(build, op_id)


def _targets(events: list[Event], ids: list[str], context: str) -> dict[Key, Record | None]:
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
            later = describe(Op(event.id, [(context, event)]))
            raise ConflictError(
                f"cannot undo operation {origin[clash[0]]}: {_key_text(clash[0])} was changed afterwards by operation "
                f"{event.id} ({later.summary}, {later.time}), which is not being undone; undo operation {event.id} "
                f"first, then operation {origin[clash[0]]} (the history lists operations with their ids)"
            )
    return targets


def _check_fresh(state: GraphState, final: GraphState, targets: dict[Key, Record | None], context: str) -> None:
    for key in targets:
        if not same_content(value_at(state, key), value_at(final, key)):
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
    changed = {k: v for k, v in targets.items() if not same_content(value_at(state, k), v)}
    gone = {k[1] for k, v in changed.items() if k[0] == "e" and v is None}
    records: list[Record] = [
        {"type": "delete_entity", "name": k[1]} for k, v in changed.items() if k[0] == "e" and v is None
    ]
    records += [strip_meta(v) for k, v in changed.items() if k[0] == "e" and v is not None]  # type: ignore[misc]
    records += [
        {"type": "delete_relation", "from": k[1], "relationType": k[2], "to": k[3]}
        for k, v in changed.items()
        if k[0] == "r" and v is None and not ({k[1], k[3]} & gone)
    ]
    records += [strip_meta(v) for k, v in changed.items() if k[0] == "r" and v is not None]  # type: ignore[misc]
    return records


def _key_text(key: Key) -> str:
    return f"entity {key[1]!r}" if key[0] == "e" else f"relation {key[1]} -[{key[2]}]-> {key[3]}"
