"""The safe repairs of ``validate_integrity`` with ``repair=True``, each change logged to the recovery log.

(First, an unreadable backup manifest is rebuilt from the backup files that verify, and verified backup
files the manifest does not list are added to it: :meth:`Backups.repair_manifest`.) Then, per context:

* A file with damaged lines: first the records those lines held are recovered where possible. The
  damaged bytes cannot tell which records they held, so the rule is: every entity or relation that
  is in the newest backup of the context that verifies, or at the end of the newest history file
  that reads back whole, and is absent from the file, is restored, unless a valid operation (a
  delete, a cascade, an undo, a restore) removed it after that copy's ``_ts`` (or at an unknown
  time). When both sources hold it, the copy with the later ``_ts`` wins. A relation comes back
  only if both its ends exist. The restored records are one new operation, appended; each is
  logged with its source (the backup id or the history file). Then the file is rewritten without
  the damaged lines (a forced compaction: the old file is kept whole in history/, the bad lines
  are already in quarantine; a backup cannot be taken first, as backups hold only verified lines).
  Appending first makes a killed repair safe to rerun: until the atomic rewrite, the damaged lines
  are still there for the next repair to find, and what was restored is not restored twice.
* Otherwise, before cutting a torn tail or removing dangling relations, a ``pre-repair`` backup is
  taken. The torn tail is cut (its bytes go to quarantine).
* Dangling relations are removed in one write (before the rewrite, for the same reason), except
  those *waiting*: a relation whose missing end may have been lost with a damaged line (it was
  written after the first damaged line, or the context had damage that a repair already dropped)
  and that no valid operation removed. They are kept and reported; they count again once their
  end is restored or created anew.

A second repair changes nothing. Lost updates to records that still exist are not restored.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ..graph.context_graph import Graph
from ..graph.state import RECORD_META_KEYS, GraphState, relation_key
from ..storage.lines import Record
from .backup import Backups
from .backupfiles import BackupError
from .dangling import dangling, describe_relation, removable, waiting
from .generations import newest_verified_segment, replay
from .timeline import Key, removals

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore


def repair_context(graph: Graph, graphs: GraphStore, backups: Backups) -> list[str]:
    """Restore what damaged lines lost and remove the relations that were dangling before the damage, then
    drop the damaged lines by compacting; or, on a file without damage, take a pre-repair backup. The
    journal cuts a torn tail under the write lock.

    The order makes a killed repair safe to rerun: the restored records and the removals are appended (each
    an all-or-nothing write) while the damaged lines are still in the file, so a repair killed after them
    still finds the damage and finishes the job; the compaction that drops them is one atomic rename. A
    backup cannot stand in for the history copy of a damaged file: backups hold only verified lines."""
    info = graph.journal.info()
    tail, damaged = info.tail, info.damage
    done: list[str] = []
    if not damaged and (tail or removable(graph, graphs)):
        done.append(_pre_repair_backup(backups, graph.context))
    restored = _recover(graph, graphs, backups) if damaged else []
    _log(graphs, graph, [(change, source, "integrity check: lost with a damaged line") for change, source in restored])
    waits = waiting(graph, graphs, damaged)

    def plan(state: GraphState) -> tuple[list[Record], list[Record]]:
        found = [r for r in dangling(state) if relation_key(r) not in waits]
        return [
            {"type": "delete_relation", "from": r["from"], "relationType": r["relationType"], "to": r["to"]}
            for r in found
        ], found

    removed = graph.journal.write(lambda: plan(graph.state))
    if damaged:
        graph.journal.compact(drop_damaged=True)
        done.append(
            f"rewrote the file without {len(damaged)} damaged line(s); the file as it was is in history/ and "
            "the bad lines in .recovery/quarantine/"
        )
    done += (
        [f"cut a torn tail of {tail.length} bytes at line {tail.line} (kept in .recovery/quarantine/)"] if tail else []
    )
    done += [f"removed dangling relation {describe_relation(r)}" for r in removed]
    _log(graphs, graph, [(change, None, "integrity check") for change in done])
    return done[:1] + [change for change, _ in restored] + done[1:]


def _log(graphs: GraphStore, graph: Graph, changes: list[tuple[str, str | None, str]]) -> None:
    for change, source, found in changes:
        extra = {} if source is None else {"source": source}
        graphs.recovery.log(file=graph.journal.path.name, found=found, action=change, **extra)


def _pre_repair_backup(backups: Backups, context: str) -> str:
    try:
        taken = backups.backup_context(context, "repair")
    except (BackupError, OSError) as exc:
        return f"could not take a backup before repairing ({exc}); repairing anyway"
    return f"backed up the file first as {taken.id}" if taken else "no file to back up before repairing"


# ---------------------------------------------------------------------- partial recovery

Copy = tuple[Record, str]  # a record and where it came from ("backup <id>" or "history <file>")


def _recover(graph: Graph, graphs: GraphStore, backups: Backups) -> list[tuple[str, str]]:
    """Restore, as one operation, the records the sources hold that the repaired file lacks (see the module docstring)."""
    sources = _sources(graphs, backups, graph.context)
    if not sources:
        return []

    def build() -> tuple[list[Record], list[tuple[str, str]]]:
        chosen = _lost(graph.state, sources, removals(graphs, graph.context))
        records = [{k: v for k, v in record.items() if k not in RECORD_META_KEYS} for record, _ in chosen.values()]
        return records, [(f"restored {_name(key)} from {source}", source) for key, (_, source) in chosen.items()]

    return graph.journal.write(build)


def _sources(graphs: GraphStore, backups: Backups, context: str) -> list[tuple[str, GraphState]]:
    """The newest backup of ``context`` that verifies, and the end of its newest history file that reads back whole."""
    found: list[tuple[str, GraphState]] = []
    taken = backups.list_backups(context)  # with an unreadable manifest: the backup files that verify
    for info in reversed(taken):
        try:
            found.append((f"backup {info.id}", replay([backups.verified_content(info)])))
            break
        except BackupError:
            continue
    segment = newest_verified_segment(graphs, context)
    if segment is not None:
        found.append((f"history {segment[0]}", segment[1]))
    return found


def _lost(
    state: GraphState, sources: list[tuple[str, GraphState]], removed: dict[Key, datetime | None]
) -> dict[Key, Copy]:
    """The newest copy of each entity and relation absent from ``state`` and not removed after that copy."""
    best: dict[Key, Copy] = {}
    for label, past in sources:
        copies: list[tuple[Key, Record]] = [
            (("e", name), r) for name, r in past.entities.items() if name not in state.entities
        ]
        copies += [(("r", *k), r) for k, r in past.relations.items() if k not in state.relations]
        for key, record in copies:
            if key not in best or _newer(record, best[key][0]):
                best[key] = (record, label)
    kept = {key: copy for key, copy in best.items() if not _removed_after(removed, key, copy[0])}
    names = set(state.entities) | {key[1] for key in kept if key[0] == "e"}
    return {key: copy for key, copy in kept.items() if key[0] == "e" or {key[1], key[3]} <= names}


def _ts(record: Record) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(record.get("_ts")))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _newer(record: Record, than: Record) -> bool:
    mine, theirs = _ts(record), _ts(than)
    return mine is not None and (theirs is None or mine > theirs)


def _removed_after(removed: dict[Key, datetime | None], key: Key, record: Record) -> bool:
    """Whether a valid operation removed ``key`` after ``record`` was written (or either time is unknown)."""
    if key not in removed:
        return False
    gone, written = removed[key], _ts(record)
    return gone is None or written is None or gone >= written


def _name(key: Key) -> str:
    return f"entity {key[1]}" if key[0] == "e" else f"relation {key[1]} -[{key[2]}]-> {key[3]}"
