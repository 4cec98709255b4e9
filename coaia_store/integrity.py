"""Integrity checks of every context, and the safe repairs.

Checked per context: lines read, records applied, damaged lines (with line numbers) and how many
failed their checksum, a torn tail, relations whose ends do not exist, sub-charts whose parent
chart or step is gone, due dates that break the timeline (a step due after its chart, a sub-chart
due after its step), and the backups: the newest daily and weekly, and whether they verify (no
backup yet is fine; one that does not verify is a problem).

``repair=True`` then applies what is safe, each change logged to the recovery log:

* A file with damaged lines is rewritten without them (a forced compaction: the old file is kept
  whole in history/, the bad lines are already in quarantine; a backup cannot be taken first, as
  backups hold only verified lines). Then the records those lines held are recovered where
  possible. The damaged bytes cannot tell which records they held, so the rule is: every entity
  or relation that is in the newest backup of the context that verifies, or at the end of the
  newest history file that reads back whole, and is absent from the repaired file, is restored,
  unless a valid operation (a delete, a cascade, an undo, a restore) removed it after that copy's
  ``_ts`` (or at an unknown time). When both sources hold it, the copy with the later ``_ts`` wins.
  A relation comes back only if both its ends exist. The restored records are one new operation;
  each is logged with its source (the backup id or the history file).
* Otherwise, before cutting a torn tail or removing dangling relations, a ``pre-repair`` backup is
  taken. The torn tail is cut (its bytes go to quarantine) and dangling relations are removed in one write.

A second repair changes nothing. Lost updates to records that still exist are not restored.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, computed_field

from .backup import DAILY, WEEKLY, BackupError, BackupInfo
from .charts.rules import deadline
from .charts.tree import ChartIndex, meta
from .errors import os_errors_reported
from .graph import ENTITY_TYPES, RECORD_META_KEYS, Graph, GraphState
from .history import Key, newest_verified_segment, removals, replay
from .models import Conflict, DamagedLine
from .storage.lines import Record, decode_legacy_line
from .store import Store


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
    danglingRelations: list[str] = Field([], description="'from -[type]-> to' where an end does not exist.")
    orphanSubCharts: list[str] = Field([], description="Sub-charts whose parent chart or action step is gone.")
    timelineViolations: list[str] = []
    duplicateNames: list[str] = Field([], description="In a file of another tool (not yet migrated): entity names "
                                                      "written as separate entities more than once; the last one is "
                                                      "used, and the first write here migrates the file to one each.")
    conflicts: list[Conflict] = Field([], description="Fields two clones changed without seeing each other's change "
                                                      "(met in a git merge), open and settled, up to 50; the later "
                                                      "value is in effect. Not damage: nothing was lost.")
    conflictCount: int = 0
    repairs: list[str] = Field([], description="What repair=true changed in this context.")
    lastDaily: BackupRef | None = Field(None, description="The newest daily backup of this context.")
    lastWeekly: BackupRef | None = Field(None, description="The newest weekly backup of this context.")
    backupsVerified: bool | None = Field(None, description="Whether the newest daily and weekly backups verify "
                                                           "(None: no daily or weekly backup yet).")
    backupProblems: list[str] = Field([], description="Backups that do not verify, and why.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not (self.damagedLines or self.tornTail or self.danglingRelations or self.orphanSubCharts
                    or self.timelineViolations or self.backupsVerified is False)


class IntegrityReport(BaseModel):
    ok: bool
    contexts: list[ContextIntegrity]


def validate_integrity(store: Store, *, context: str | None = None, repair: bool = False) -> IntegrityReport:
    doing = "the repair" if repair else "the integrity check"
    with os_errors_reported(f"{doing} failed", "each repair is all-or-nothing and logged: run it again once the disk is fine"):
        names = store.contexts() if context is None else [context]
        reports = [_check_context(store.graph(name), store, repair) for name in names]
    return IntegrityReport(ok=all(r.ok for r in reports), contexts=reports)


def _check_context(graph: Graph, store: Store, repair: bool) -> ContextIntegrity:
    repairs = _repair(graph, store) if repair else []
    info = graph.journal.info()
    dangling, orphans, timeline = graph.read(lambda s: (_dangling(s), _orphans(s), _timeline(s)))
    conflicts = store.conflicts(graph.context, settled=True)
    return ContextIntegrity(
        context=graph.context,
        file=info.path.name,
        linesRead=info.lines,
        recordsApplied=info.records_applied,
        checksummed=info.checksummed,
        damagedLines=[DamagedLine(line=d.line, offset=d.offset, length=d.length, problem=d.problem) for d in info.damage],
        checksumFailures=sum(d.problem == "checksum mismatch" for d in info.damage),
        tornTail=DamagedLine(line=info.tail.line, offset=info.tail.offset, length=info.tail.length,
                             problem=info.tail.problem) if info.tail else None,
        danglingRelations=[_describe(r) for r in dangling],
        orphanSubCharts=orphans,
        timelineViolations=timeline,
        duplicateNames=[] if info.checksummed else _duplicate_names(info.path),
        repairs=repairs,
        conflicts=conflicts[:_SHOWN_CONFLICTS],
        conflictCount=len(conflicts),
        **_backup_state(store, graph.context),
    )


def _duplicate_names(path: Path) -> list[str]:
    """Entity names a legacy file holds more than once (other tools rewrite whole files: no updates appended)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    names = Counter(
        record["name"] for record, _ in map(decode_legacy_line, data.splitlines())
        if record is not None and record.get("type") in ENTITY_TYPES and isinstance(record.get("name"), str)
    )
    return sorted(name for name, count in names.items() if count > 1)


def _repair(graph: Graph, store: Store) -> list[str]:
    """Drop damaged lines by compacting (the whole file as it was goes to history/ first, its bad lines are
    already in quarantine), then restore what they lost; or, on a file without damage, take a pre-repair
    backup. The journal cuts a torn tail under the write lock; dangling relations go in one write.
    A backup cannot stand in for the history copy of a damaged file: backups hold only verified lines."""
    info = graph.journal.info()
    tail, damaged = info.tail, info.damage
    done: list[str] = []
    if damaged:
        graph.journal.compact(drop_damaged=True)
        done.append(f"rewrote the file without {len(damaged)} damaged line(s); the file as it was is in history/ and "
                    "the bad lines in .recovery/quarantine/")
    elif tail or graph.read(_dangling):
        done.append(_pre_repair_backup(store, graph.context))

    def plan(state: GraphState) -> tuple[list[Record], list[Record]]:
        dangling = _dangling(state)
        return [{"type": "delete_relation", "from": r["from"], "relationType": r["relationType"], "to": r["to"]}
                for r in dangling], dangling

    restored = _recover(graph, store) if damaged else []
    removed = graph.journal.write(lambda: plan(graph.state))
    done += [f"cut a torn tail of {tail.length} bytes at line {tail.line} (kept in .recovery/quarantine/)"] if tail else []
    done += [f"removed dangling relation {_describe(r)}" for r in removed]
    for change in done:
        store.recovery.log(file=graph.journal.path.name, found="integrity check", action=change)
    for change, source in restored:
        store.recovery.log(file=graph.journal.path.name, found="integrity check: lost with a damaged line",
                           action=change, source=source)
    return done[:1] + [change for change, _ in restored] + done[1:]


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
    try:
        taken = store.backups.list_backups(context)
    except BackupError:  # an unreadable manifest: the report says so; history may still help
        taken = []
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


def _lost(state: GraphState, sources: list[tuple[str, GraphState]], removed: dict[Key, datetime | None]) -> dict[Key, Copy]:
    """The newest copy of each entity and relation absent from ``state`` and not removed after that copy."""
    best: dict[Key, Copy] = {}
    for label, past in sources:
        copies = [(("e", name), r) for name, r in past.entities.items() if name not in state.entities]
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
    try:
        taken = store.backups.list_backups(context)
    except BackupError as exc:
        return {"backupsVerified": False, "backupProblems": [str(exc)]}
    newest: dict[str, BackupInfo] = {b.kind: b for b in taken if b.kind in (DAILY, WEEKLY)}  # oldest first: last wins
    if not newest:
        return {}
    results = [store.backups.verify(b.id)[0] for b in newest.values()]
    problems = [f"backup {r.id} does not verify: {'; '.join(r.problems[:3])}" for r in results if not r.ok]
    refs = {kind: BackupRef(id=b.id, time=b.time) for kind, b in newest.items()}
    return {"lastDaily": refs.get(DAILY), "lastWeekly": refs.get(WEEKLY), "backupsVerified": not problems,
            "backupProblems": problems}


def _dangling(state: GraphState) -> list[Record]:
    return [r for (source, _, target), r in state.relations.items()
            if source not in state.entities or target not in state.entities]


def _describe(relation: Record) -> str:
    return f"{relation['from']} -[{relation['relationType']}]-> {relation['to']}"


def _orphans(state: GraphState) -> list[str]:
    index = ChartIndex(state.entities)
    found = []
    for chart_id, record in index.charts.items():
        data = meta(record)
        parent, step = data.get("parentChart"), data.get("parentActionStep")
        if (parent and parent not in index.charts) or (step and step not in state.entities):
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
