"""Replaying a context's generations: its state at any moment, and its timeline of changes, one event per operation.

The state at time ``T`` is found in the generation whose interval holds ``T``, by replaying its lines whose
time is at most ``T`` (the rule, with its edge cases, is written down in ``docs/history.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..graph.state import RECORD_META_KEYS, GraphState, relation_key
from ..storage.clock import iso_timestamp
from ..storage.lines import Record
from .generations import Generation, HistoryFiles, Line, OpKind

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore

UNDO_TYPE = "_undo"  # marker record written with an undo: which operations it reverts (kept as an extra)
Key = tuple[str, ...]  # ("e", name) or ("r", from, relationType, to)


@dataclass
class Event:
    """One operation in one context: what it changed (each key's value before and after), when and by whom."""

    id: str
    time: datetime | None
    kind: OpKind
    changes: dict[Key, list[Record | None]] = field(default_factory=dict)  # key -> [before, after]
    undoes: list[str] = field(default_factory=list)
    by: str | None = None

    def note(self, changes: dict[Key, list[Record | None]]) -> None:
        for key, (before, after) in changes.items():
            if key in self.changes:
                self.changes[key][1] = after
            else:
                self.changes[key] = [before, after]


def strip_meta(record: Record | None) -> Record | None:
    return None if record is None else {k: v for k, v in record.items() if k not in RECORD_META_KEYS}


def same_content(a: Record | None, b: Record | None) -> bool:
    return a is b or strip_meta(a) == strip_meta(b)


def value_at(state: GraphState, key: Key) -> Record | None:
    return state.entities.get(key[1]) if key[0] == "e" else state.relations.get(key[1:])  # type: ignore[arg-type]


def _touched(state: GraphState, members: list[Record]) -> list[Key]:
    keys: dict[Key, None] = {}
    for m in members:
        kind = m.get("type")
        if kind in ("entity", "narrative_beat", "delete_entity"):
            keys[("e", m["name"])] = None
            if kind == "delete_entity":
                keys.update((("r", *k), None) for k in state.links.get(m["name"], ()))
        elif kind in ("relation", "delete_relation"):
            keys[("r", *relation_key(m))] = None
    return list(keys)


def _apply(state: GraphState, line: Line) -> dict[Key, list[Record | None]]:
    keys = _touched(state, line.members)
    before = {k: value_at(state, k) for k in keys}
    state.apply_all(line.members)
    changes: dict[Key, list[Record | None]] = {}
    for key in keys:
        after = value_at(state, key)
        if not same_content(before[key], after):
            changes[key] = [before[key], after]
    return changes


def _diff(old: GraphState, new: GraphState) -> dict[Key, list[Record | None]]:
    changes: dict[Key, list[Record | None]] = {}
    for name in dict.fromkeys([*new.entities, *old.entities]):  # in creation order
        a, b = old.entities.get(name), new.entities.get(name)
        if not same_content(a, b):
            changes[("e", name)] = [a, b]
    for rkey in dict.fromkeys([*new.relations, *old.relations]):
        a, b = old.relations.get(rkey), new.relations.get(rkey)
        if not same_content(a, b):
            changes[("r", *rkey)] = [a, b]
    return changes


def _base_state(gen: Generation) -> GraphState:
    state = GraphState()
    for line in gen.base():
        state.apply_all(line.members)
    return state


def state_at(gens: Sequence[Generation], moment: datetime) -> GraphState:
    """The rule: the generation live at ``moment``, replayed up to ``moment``."""
    for gen in gens:
        if gen.covers(moment):
            state = _base_state(gen)
            for line in gen.rest(moment):
                state.apply_all(line.members)
            return state
    return GraphState()


def timeline(gens: Sequence[Generation]) -> tuple[GraphState, list[Event]]:
    """Every change, oldest first, and the final state; one event per operation id."""
    state = GraphState()
    events: list[Event] = []
    by_id: dict[str, Event] = {}
    for index, gen in enumerate(gens):
        if index > 0:
            base = _base_state(gen)
            changes = _diff(state, base)
            if changes:  # a migration of another tool's file imports its content
                kind: OpKind = "import" if gens[index - 1].legacy and gen.kind == "compaction" else gen.kind
                events.append(Event(f"{kind}:{gen.replaced}", gen.start, kind, changes))
            state = base
        for line in gen.rest():
            changes = _apply(state, line)
            op = line.op or f"import:{gen.name}"
            event = by_id.get(op)
            if event is None:
                event = by_id[op] = Event(op, line.time, "write" if line.op else "import", by=line.by)
                events.append(event)
            for member in line.members:
                if member.get("type") == UNDO_TYPE:
                    event.kind = "undo"
                    event.undoes += [str(u) for u in member.get("undoes") or []]
            event.note(changes)
    return state, events


def removals(store: GraphStore, context: str) -> dict[Key, datetime | None]:
    """When each entity and relation was last removed by a valid operation (a write, an undo, a restore),
    from the history and the live file; a compaction (the repair's dropping of damaged lines) does not
    count. ``None``: removed at an unknown time."""
    _, events = timeline(HistoryFiles(store, context).generations())
    gone: dict[Key, datetime | None] = {}
    for event in events:
        if event.kind == "compaction":
            continue
        for key, (before, after) in event.changes.items():
            if before is not None and after is None:
                gone[key] = _latest(gone[key], event.time) if key in gone else event.time
    return gone


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return None if a is None or b is None else max(a, b)


def show_time(moment: datetime | None) -> str | None:
    """A moment as the history replies show it (ISO, UTC)."""
    return None if moment is None else iso_timestamp(moment)


def meta_of(record: Record | None) -> dict[str, Any]:
    data = (record or {}).get("metadata")
    return data if isinstance(data, dict) else {}


def observations_of(record: Record | None) -> list[str]:
    return [str(o) for o in (record or {}).get("observations") or []]
