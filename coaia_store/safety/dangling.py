"""Dangling relations (an end does not exist), and which of them are *waiting*: their missing end may have
been lost with a damaged line, so a repair keeps them until the end is restored or created anew."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..graph.context_graph import Graph
from ..graph.state import GraphState, RelKey, relation_key
from ..storage.compaction import HISTORY_DIR
from ..storage.journal_reader import Damage
from ..storage.lines import Record
from .generations import replay
from .timeline import Key, removals

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore


def dangling(state: GraphState) -> list[Record]:
    return [
        r
        for (source, _, target), r in state.relations.items()
        if source not in state.entities or target not in state.entities
    ]


def waiting(graph: Graph, graphs: GraphStore, damage: list[Damage]) -> set[RelKey]:
    """Dangling relations whose missing end may have been lost with a damaged line; the others were dangling
    before the damage. While the damaged lines are in the file, a relation that was already dangling in the
    lines before the first of them is not waiting; once a repair dropped them, the recovery log still tells
    that the context had damage. A missing end that a valid operation removed was not lost."""
    found, names = graph.read(lambda s: (dangling(s), set(s.entities)))
    if not found or not (damage or _had_damage(graphs, graph.journal.path.name)):
        return set()
    before = _state_before(graph.journal.path, damage[0].offset) if damage else None
    removed = _removals(graphs, graph)

    def waits(relation: Record) -> bool:
        missing = [end for end in (relation["from"], relation["to"]) if end not in names]
        if any(("e", end) in removed for end in missing):
            return False
        return (
            before is None
            or relation_key(relation) not in before.relations
            or any(end in before.entities for end in missing)
        )

    return {relation_key(r) for r in found if waits(r)}


_removals_seen: dict[Path, tuple[tuple[object, ...], dict[Key, datetime | None]]] = {}


def _removals(graphs: GraphStore, graph: Graph) -> dict[Key, datetime | None]:
    """:func:`~.timeline.removals`, reused while the file and its history folder are unchanged (every status
    asks while a context has waiting relations; replaying the history each time took 0.45 s at 20k entities)."""
    path = graph.journal.path
    folder = graphs.path / HISTORY_DIR / path.stem
    try:
        st = path.stat()
        names = tuple(sorted(os.listdir(folder))) if folder.is_dir() else ()
    except OSError:
        return removals(graphs, graph.context)
    key = (st.st_ino, st.st_size, st.st_mtime_ns, names)
    seen = _removals_seen.get(path)
    if seen is None or seen[0] != key:
        seen = _removals_seen[path] = (key, removals(graphs, graph.context))
    return seen[1]


def _state_before(path: Path, offset: int) -> GraphState:
    """The state the lines of ``path`` before ``offset`` hold."""
    with path.open("rb") as fh:
        return replay([fh.read(offset)])


def removable(graph: Graph, graphs: GraphStore) -> bool:
    """Whether ``graph`` holds a dangling relation that is not waiting (a repair would remove it)."""
    waits = waiting(graph, graphs, [])
    return any(relation_key(r) not in waits for r in graph.read(dangling))


def _had_damage(graphs: GraphStore, file: str) -> bool:
    """Whether a damaged line of ``file`` was ever found (and quarantined) on load: the recovery log says so."""
    return any(e.get("file") == file and e.get("action") == "skipped on load" for e in graphs.recovery.entries())


def describe_relation(relation: Record) -> str:
    return f"{relation['from']} -[{relation['relationType']}]-> {relation['to']}"
