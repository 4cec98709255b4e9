"""Integrity checks of every context, and the safe repairs.

Checked per context: lines read, records applied, damaged lines (with line numbers) and how many
failed their checksum, a torn tail, relations whose ends do not exist, sub-charts whose parent
chart or step is gone, due dates that break the timeline (a step due after its chart, a sub-chart
due after its step), open steps or sub-charts under completed ones, and the backups: the newest daily and weekly, and whether they verify (no
backup yet is fine; one that does not verify is a problem); a read-only context; a file that lost
what its newest backup holds (:meth:`Backups.shrunk`). For the whole store: an unreadable backup
manifest and a context whose file is gone though a backup holds it. :func:`context_problems` is the
cheap part of this, for every ``status``, so that status, validate and doctor agree.

``repair=True`` then applies what is safe, each change logged to the recovery log (first, an
unreadable backup manifest is rebuilt from the backup files that verify, and verified backup files
the manifest does not list are added to it):

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

import os
import stat
from collections import Counter
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, computed_field

from ..charts.rules import deadline
from ..charts.tree import ChartIndex, is_completed, meta
from ..errors import CoaiaError, os_errors_reported
from ..graph.state import ENTITY_TYPES, RECORD_META_KEYS, Graph, GraphState, RelKey, relation_key
from ..models import Conflict, DamagedLine
from ..storage.compaction import HISTORY_DIR
from ..storage.journal_reader import Damage
from ..storage.lines import Record, decode_legacy_line
from ..store import Store
from .backup import DAILY, WEEKLY, BackupError, BackupInfo
from .history import Key, newest_verified_segment, removals, replay

_SHOWN_CONFLICTS = 50


class BackupRef(BaseModel):
    id: str
    time: str


class ContextIntegrity(BaseModel):
    context: str
    file: str
    linesRead: int
    recordsApplied: int
    checksummed: bool
    damagedLines: list[DamagedLine] = []
    checksumFailures: int = 0
    tornTail: DamagedLine | None = None
    danglingRelations: list[str] = Field(
        [], description="'from -[type]-> to' where an end does not exist (repair removes them)."
    )
    waitingRelations: list[str] = Field(
        [],
        description="'from -[type]-> to' whose missing end may have been lost with a "
        "damaged line: kept (repair never removes them), they count again "
        "once the end is restored or created anew; delete_relations removes one.",
    )
    orphanSubCharts: list[str] = Field(
        [],
        description="Sub-charts whose parent chart or action step is gone, or "
        "whose step shows another sub-chart (telescoped twice, as two "
        "clones can do at once).",
    )
    timelineViolations: list[str] = []
    openUnderCompleted: list[str] = Field(
        [],
        description="Open action steps or sub-charts under a completed chart "
        "or step; complete them, or reopen the level above.",
    )
    duplicateNames: list[str] = Field(
        [],
        description="In a file of another tool (not yet migrated): entity names "
        "written as separate entities more than once; the last one is "
        "used, and the first write here migrates the file to one each.",
    )
    conflicts: list[Conflict] = Field(
        [],
        description="Fields two clones changed without seeing each other's change "
        "(met in a git merge), open and settled, up to 50; the later "
        "value is in effect. Not damage: nothing was lost.",
    )
    conflictCount: int = 0
    repairs: list[str] = Field([], description="What repair=true changed in this context.")
    lastDaily: BackupRef | None = Field(None, description="The newest daily backup of this context.")
    lastWeekly: BackupRef | None = Field(None, description="The newest weekly backup of this context.")
    backupsVerified: bool | None = Field(
        None, description="Whether the newest daily and weekly backups verify (None: no daily or weekly backup yet)."
    )
    backupProblems: list[str] = Field([], description="Backups that do not verify, and why.")

    readOnly: str | None = Field(None, description="Why the context cannot be written, and what to do.")
    lostSinceBackup: str | None = Field(
        None,
        description="The file is empty, cut short, or created afresh although "
        "its newest backup holds more: which backup, and the restore command.",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not (
            self.damagedLines
            or self.tornTail
            or self.danglingRelations
            or self.orphanSubCharts
            or self.timelineViolations
            or self.openUnderCompleted
            or self.backupsVerified is False
            or self.readOnly
            or self.lostSinceBackup
        )


class IntegrityReport(BaseModel):
    ok: bool
    contexts: list[ContextIntegrity]
    problems: list[str] = Field(
        [], description="Problems of the whole store (an unreadable backup manifest), with the fix."
    )
    repairs: list[str] = Field([], description="What repair=true changed outside the contexts (the manifest rebuilt).")


def validate_integrity(store: Store, *, context: str | None = None, repair: bool = False) -> IntegrityReport:
    doing = "the repair" if repair else "the integrity check"
    with os_errors_reported(
        f"{doing} failed", "each repair is all-or-nothing and logged: run it again once the disk is fine"
    ):
        repairs = [done for done in [store.backups.repair_manifest()] if done] if repair else []
        names = store.contexts() if context is None else [context]
        reports = [_check_context(store.graph(name), store, repair) for name in names]
        problems = store.store_problems()
    for done in repairs:
        store.recovery.log(file=".backup/MANIFEST.json", found="integrity check", action=done)
    return IntegrityReport(
        ok=all(r.ok for r in reports) and not problems, contexts=reports, problems=problems, repairs=repairs
    )


def _check_context(graph: Graph, store: Store, repair: bool) -> ContextIntegrity:
    repairs = _repair(graph, store) if repair else []
    info = graph.journal.info()
    dangling, orphans, timeline, open_under = graph.read(
        lambda s: (_dangling(s), _orphans(s), _timeline(s), _open_under_completed(s))
    )
    waiting = _waiting(graph, store, info.damage)
    conflicts = store.conflicts(graph.context, settled=True)
    return ContextIntegrity(
        context=graph.context,
        file=info.path.name,
        linesRead=info.lines,
        recordsApplied=info.records_applied,
        checksummed=info.checksummed,
        damagedLines=[
            DamagedLine(line=d.line, offset=d.offset, length=d.length, problem=d.problem) for d in info.damage
        ],
        checksumFailures=sum(d.problem == "checksum mismatch" for d in info.damage),
        tornTail=DamagedLine(
            line=info.tail.line, offset=info.tail.offset, length=info.tail.length, problem=info.tail.problem
        )
        if info.tail
        else None,
        danglingRelations=[_describe(r) for r in dangling if relation_key(r) not in waiting],
        waitingRelations=[_describe(r) for r in dangling if relation_key(r) in waiting],
        orphanSubCharts=orphans,
        timelineViolations=timeline,
        openUnderCompleted=open_under,
        duplicateNames=[] if info.checksummed else _duplicate_names(info.path),
        repairs=repairs,
        readOnly=info.read_only,
        lostSinceBackup=store.backups.shrunk(graph.context),
        conflicts=conflicts[:_SHOWN_CONFLICTS],
        conflictCount=len(conflicts),
        **_backup_state(store, graph.context),
    )


def context_problems(store: Store, graph: Graph, taken: list[BackupInfo]) -> list[str]:
    """What :func:`validate_integrity` finds in a context beyond its file's damage, cheaply enough for every
    status (``taken``: the context's backups, oldest first): dangling relations (but those waiting for a lost
    end), orphan sub-charts, due dates out of order, and a newest daily or weekly backup whose file is gone or
    changed size (only validate reads the backups through)."""
    name = graph.journal.path.name
    try:
        dangling, orphans, timeline = graph.read(lambda s: (_dangling(s), _orphans(s), _timeline(s)))
        waiting = _waiting(graph, store, graph.journal.info().damage) if dangling else set()
    except CoaiaError:  # a context that cannot be read: status reports that with the context itself
        return []
    removable = [_describe(r) for r in dangling if relation_key(r) not in waiting]
    found = (
        [
            f"{name}: {len(removable)} dangling relation(s) ({'; '.join(removable[:3])}): an end does not exist; "
            "coaia-store validate --fix removes them"
        ]
        if removable
        else []
    )
    found += (
        [
            f"{name}: {len(orphans)} sub-chart(s) whose parent chart or action step is gone ({', '.join(orphans[:3])}); "
            "coaia-store validate lists them"
        ]
        if orphans
        else []
    )
    found += (
        [f"{name}: {len(timeline)} due date(s) out of order ({timeline[0]}); coaia-store validate lists them"]
        if timeline
        else []
    )
    lost = store.backups.shrunk(graph.context, taken)
    found += [lost] if lost else []
    newest = {b.kind: b for b in taken if b.kind in (DAILY, WEEKLY)}
    return found + [
        f"backup {b.id}: {problem}; coaia-store validate checks it, coaia-store backup takes a new one"
        for b in newest.values()
        if (problem := _file_problem(store, b))
    ]


def _file_problem(store: Store, info: BackupInfo) -> str | None:
    try:
        st = (store.local_dir / info.file).lstat()  # a link is not followed: validate refuses to open one
    except FileNotFoundError:
        return "its file is missing"
    if not stat.S_ISREG(st.st_mode):
        return "its file is not a regular file (a symbolic link?)"
    return None if st.st_size == info.size else f"its file is {st.st_size} bytes, the manifest says {info.size}"


def _duplicate_names(path: Path) -> list[str]:
    """Entity names a legacy file holds more than once (other tools rewrite whole files: no updates appended)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    names = Counter(
        record["name"]
        for record, _ in map(decode_legacy_line, data.splitlines())
        if record is not None and record.get("type") in ENTITY_TYPES and isinstance(record.get("name"), str)
    )
    return sorted(name for name, count in names.items() if count > 1)


def _repair(graph: Graph, store: Store) -> list[str]:
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
    if not damaged and (tail or _removable(graph, store)):
        done.append(_pre_repair_backup(store, graph.context))
    restored = _recover(graph, store) if damaged else []
    _log(store, graph, [(change, source, "integrity check: lost with a damaged line") for change, source in restored])
    waiting = _waiting(graph, store, damaged)

    def plan(state: GraphState) -> tuple[list[Record], list[Record]]:
        dangling = [r for r in _dangling(state) if relation_key(r) not in waiting]
        return [
            {"type": "delete_relation", "from": r["from"], "relationType": r["relationType"], "to": r["to"]}
            for r in dangling
        ], dangling

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
    done += [f"removed dangling relation {_describe(r)}" for r in removed]
    _log(store, graph, [(change, None, "integrity check") for change in done])
    return done[:1] + [change for change, _ in restored] + done[1:]


def _log(store: Store, graph: Graph, changes: list[tuple[str, str | None, str]]) -> None:
    for change, source, found in changes:
        extra = {} if source is None else {"source": source}
        store.recovery.log(file=graph.journal.path.name, found=found, action=change, **extra)


def _pre_repair_backup(store: Store, context: str) -> str:
    try:
        taken = store.backups.backup_context(context, "repair")
    except (BackupError, OSError) as exc:
        return f"could not take a backup before repairing ({exc}); repairing anyway"
    return f"backed up the file first as {taken.id}" if taken else "no file to back up before repairing"


# ---------------------------------------------------------------------- partial recovery

Copy = tuple[Record, str]  # a record and where it came from ("backup <id>" or "history <file>")


def _recover(graph: Graph, store: Store) -> list[tuple[str, str]]:
    """Restore, as one operation, the records the sources hold that the repaired file lacks (see the module docstring)."""
    sources = _sources(store, graph.context)
    if not sources:
        return []

    def build() -> tuple[list[Record], list[tuple[str, str]]]:
        chosen = _lost(graph.state, sources, removals(store, graph.context))
        records = [{k: v for k, v in record.items() if k not in RECORD_META_KEYS} for record, _ in chosen.values()]
        return records, [(f"restored {_name(key)} from {source}", source) for key, (_, source) in chosen.items()]

    return graph.journal.write(build)


def _sources(store: Store, context: str) -> list[tuple[str, GraphState]]:
    """The newest backup of ``context`` that verifies, and the end of its newest history file that reads back whole."""
    found: list[tuple[str, GraphState]] = []
    taken = store.backups.list_backups(context)  # with an unreadable manifest: the backup files that verify
    for info in reversed(taken):
        try:
            found.append((f"backup {info.id}", replay([store.backups.verified_content(info)])))
            break
        except BackupError:
            continue
    segment = newest_verified_segment(store, context)
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


# ---------------------------------------------------------------------- backups in the report


def _backup_state(store: Store, context: str) -> dict[str, object]:
    """The newest daily and weekly of ``context`` and whether they verify (only those two: cheap enough)."""
    taken = store.backups.list_backups(context)
    newest: dict[str, BackupInfo] = {b.kind: b for b in taken if b.kind in (DAILY, WEEKLY)}  # oldest first: last wins
    if not newest:
        return {}
    results = [store.backups.verify(b.id)[0] for b in newest.values()]
    problems = [f"backup {r.id} does not verify: {'; '.join(r.problems[:3])}" for r in results if not r.ok]
    refs = {kind: BackupRef(id=b.id, time=b.time) for kind, b in newest.items()}
    return {
        "lastDaily": refs.get(DAILY),
        "lastWeekly": refs.get(WEEKLY),
        "backupsVerified": not problems,
        "backupProblems": problems,
    }


def _dangling(state: GraphState) -> list[Record]:
    return [
        r
        for (source, _, target), r in state.relations.items()
        if source not in state.entities or target not in state.entities
    ]


def _waiting(graph: Graph, store: Store, damage: list[Damage]) -> set[RelKey]:
    """Dangling relations whose missing end may have been lost with a damaged line; the others were dangling
    before the damage. While the damaged lines are in the file, a relation that was already dangling in the
    lines before the first of them is not waiting; once a repair dropped them, the recovery log still tells
    that the context had damage. A missing end that a valid operation removed was not lost."""
    dangling, names = graph.read(lambda s: (_dangling(s), set(s.entities)))
    if not dangling or not (damage or _had_damage(store, graph.journal.path.name)):
        return set()
    before = _state_before(graph.journal.path, damage[0].offset) if damage else None
    removed = _removals(store, graph)

    def waits(relation: Record) -> bool:
        missing = [end for end in (relation["from"], relation["to"]) if end not in names]
        if any(("e", end) in removed for end in missing):
            return False
        return (
            before is None
            or relation_key(relation) not in before.relations
            or any(end in before.entities for end in missing)
        )

    return {relation_key(r) for r in dangling if waits(r)}


_removals_seen: dict[Path, tuple[tuple[object, ...], dict[Key, datetime | None]]] = {}


def _removals(store: Store, graph: Graph) -> dict[Key, datetime | None]:
    """:func:`history.removals`, reused while the file and its history folder are unchanged (every status
    asks while a context has waiting relations; replaying the history each time took 0.45 s at 20k entities)."""
    path = graph.journal.path
    folder = store.path / HISTORY_DIR / path.stem
    try:
        st = path.stat()
        names = tuple(sorted(os.listdir(folder))) if folder.is_dir() else ()
    except OSError:
        return removals(store, graph.context)
    key = (st.st_ino, st.st_size, st.st_mtime_ns, names)
    seen = _removals_seen.get(path)
    if seen is None or seen[0] != key:
        seen = _removals_seen[path] = (key, removals(store, graph.context))
    return seen[1]


def _state_before(path: Path, offset: int) -> GraphState:
    """The state the lines of ``path`` before ``offset`` hold."""
    with path.open("rb") as fh:
        return replay([fh.read(offset)])


def _removable(graph: Graph, store: Store) -> bool:
    waiting = _waiting(graph, store, [])
    return any(relation_key(r) not in waiting for r in graph.read(_dangling))


def _had_damage(store: Store, file: str) -> bool:
    """Whether a damaged line of ``file`` was ever found (and quarantined) on load: the recovery log says so."""
    return any(e.get("file") == file and e.get("action") == "skipped on load" for e in store.recovery.entries())


def _describe(relation: Record) -> str:
    return f"{relation['from']} -[{relation['relationType']}]-> {relation['to']}"


def _orphans(state: GraphState) -> list[str]:
    index = ChartIndex(state.entities)
    found = []
    for chart_id, record in index.charts.items():
        data = meta(record)
        parent, step = data.get("parentChart"), data.get("parentActionStep")
        if (
            (parent and parent not in index.charts)
            or (step and step not in state.entities)
            or (step and index.sub_chart.get(step) != chart_id)
        ):  # its step shows another sub-chart
            found.append(chart_id)
    return found


def _timeline(state: GraphState) -> list[str]:
    index = ChartIndex(state.entities)
    found = []
    for chart_id, record in index.charts.items():
        chart_due = deadline(meta(record).get("dueDate"))
        for step in index.steps(chart_id):
            step_due = deadline(meta(step).get("dueDate"))
            if chart_due and step_due and step_due > chart_due:
                found.append(f"action step {step['name']} is due after its chart {chart_id}")
            sub = index.sub_chart.get(step["name"])
            sub_due = deadline(meta(index.charts.get(sub)).get("dueDate")) if sub else None
            if step_due and sub_due and sub_due > step_due:
                found.append(f"sub-chart {sub} is due after its action step {step['name']}")
    return found


def _open_under_completed(state: GraphState) -> list[str]:
    """Open steps of a completed chart, and open sub-charts of a completed step (what completion should have closed)."""
    index = ChartIndex(state.entities)
    found = []
    for chart_id, record in index.charts.items():
        chart_done = is_completed(record)
        for step in index.steps(chart_id):
            if chart_done and not is_completed(step):
                found.append(f"action step {step['name']} is open in completed chart {chart_id}")
            sub = index.sub_chart.get(step["name"])
            if sub in index.charts and is_completed(step) and not is_completed(index.charts[sub]):
                found.append(f"sub-chart {sub} is open under completed action step {step['name']}")
    return found
