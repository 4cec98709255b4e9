"""Integrity checks of every context, and of the backups (the repairs are in :mod:`.repair`).

Checked per context: lines read, records applied, damaged lines (with line numbers) and how many
failed their checksum, a torn tail, relations whose ends do not exist, the chart checks the layer above
hands in (sub-charts whose parent chart or step is gone, due dates that break the timeline, open steps or
sub-charts under completed ones: ``charts/checks.py``), and the backups: the newest daily and weekly, and
whether they verify (no backup yet is fine; one that does not verify is a problem); a read-only context; a
file that lost what its newest backup holds (:meth:`Backups.shrunk`). For the whole store: an unreadable
backup manifest and a context whose file is gone though a backup holds it. :func:`context_problems` is the
cheap part of this, for every ``status``, so that status, validate and doctor agree.
"""

from __future__ import annotations

import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel, Field, computed_field

from ..errors import CoaiaError, os_errors_reported
from ..graph.context_graph import Graph
from ..graph.state import ENTITY_TYPES, GraphState, relation_key
from ..models import Conflict, DamagedLine
from ..storage.lines import decode_legacy_line
from .backup import Backups
from .backupfiles import BackupInfo
from .dangling import dangling, describe_relation, waiting
from .repair import repair_context
from .retention import DAILY, WEEKLY

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore

_SHOWN_CONFLICTS = 50


class ChartFindings(NamedTuple):
    """What the chart checks (``charts/checks.py``, in the layer above) find in one context's state."""

    orphan_sub_charts: list[str]
    timeline_violations: list[str]
    open_under_completed: list[str]


ChartCheck = Callable[[GraphState], ChartFindings]


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


def check_integrity(
    graphs: GraphStore, backups: Backups, check_charts: ChartCheck, *, context: str | None = None, repair: bool = False
) -> IntegrityReport:
    """What ``validate_integrity`` reports (and, with ``repair``, repairs): see the module docstring."""
    doing = "the repair" if repair else "the integrity check"
    with os_errors_reported(
        f"{doing} failed", "each repair is all-or-nothing and logged: run it again once the disk is fine"
    ):
        repairs = [done for done in [backups.repair_manifest()] if done] if repair else []
        names = graphs.contexts() if context is None else [context]
        reports = [_check_context(graphs.graph(name), graphs, backups, check_charts, repair) for name in names]
        problems = problems_outside_contexts(graphs, backups)
    for done in repairs:
        graphs.recovery.log(file=".backup/MANIFEST.json", found="integrity check", action=done)
    return IntegrityReport(
        ok=all(r.ok for r in reports) and not problems, contexts=reports, problems=problems, repairs=repairs
    )


def _check_context(
    graph: Graph, graphs: GraphStore, backups: Backups, check_charts: ChartCheck, repair: bool
) -> ContextIntegrity:
    repairs = repair_context(graph, graphs, backups) if repair else []
    info = graph.journal.info()
    found, charts = graph.read(lambda s: (dangling(s), check_charts(s)))
    waits = waiting(graph, graphs, info.damage)
    conflicts = graphs.conflicts(graph.context, settled=True)
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
        danglingRelations=[describe_relation(r) for r in found if relation_key(r) not in waits],
        waitingRelations=[describe_relation(r) for r in found if relation_key(r) in waits],
        orphanSubCharts=charts.orphan_sub_charts,
        timelineViolations=charts.timeline_violations,
        openUnderCompleted=charts.open_under_completed,
        duplicateNames=[] if info.checksummed else _duplicate_names(info.path),
        repairs=repairs,
        readOnly=info.read_only,
        lostSinceBackup=backups.shrunk(graph.context),
        conflicts=conflicts[:_SHOWN_CONFLICTS],
        conflictCount=len(conflicts),
        **_backup_state(backups, graph.context),
    )


def context_problems(
    graphs: GraphStore, backups: Backups, graph: Graph, taken: list[BackupInfo], check_charts: ChartCheck
) -> list[str]:
    """What :func:`validate_integrity` finds in a context beyond its file's damage, cheaply enough for every
    status (``taken``: the context's backups, oldest first): dangling relations (but those waiting for a lost
    end), orphan sub-charts, due dates out of order, and a newest daily or weekly backup whose file is gone or
    changed size (only validate reads the backups through)."""
    name = graph.journal.path.name
    try:
        found_dangling, charts = graph.read(lambda s: (dangling(s), check_charts(s)))
        waits = waiting(graph, graphs, graph.journal.info().damage) if found_dangling else set()
    except CoaiaError:  # a context that cannot be read: status reports that with the context itself
        return []
    removable = [describe_relation(r) for r in found_dangling if relation_key(r) not in waits]
    found = (
        [
            f"{name}: {len(removable)} dangling relation(s) ({'; '.join(removable[:3])}): an end does not exist; "
            "coaia-store validate --fix removes them"
        ]
        if removable
        else []
    )
    orphans, timeline = charts.orphan_sub_charts, charts.timeline_violations
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
    lost = backups.shrunk(graph.context, taken)
    found += [lost] if lost else []
    newest = {b.kind: b for b in taken if b.kind in (DAILY, WEEKLY)}
    return found + [
        f"backup {b.id}: {problem}; coaia-store validate checks it, coaia-store backup takes a new one"
        for b in newest.values()
        if (problem := _file_problem(graphs.local_dir / b.file, b))
    ]


def _file_problem(path: Path, info: BackupInfo) -> str | None:
    try:
        st = path.lstat()  # a link is not followed: validate refuses to open one
    except FileNotFoundError:
        return "its file is missing"
    if not stat.S_ISREG(st.st_mode):
        return "its file is not a regular file (a symbolic link?)"
    return None if st.st_size == info.size else f"its file is {st.st_size} bytes, the manifest says {info.size}"


def problems_outside_contexts(graphs: GraphStore, backups: Backups) -> list[str]:
    """Problems outside the context files validate reads: a context file that cannot be read (a link, a
    directory, a pipe, not JSONL), a context whose file is gone though a backup holds it, and an unreadable
    backup manifest (each with what to do)."""
    taken, manifest_problem = backups.listing()
    unreadable = graphs.unreadable_contexts()
    return (
        [f"context {name!r} is unreadable and skipped: {why}" for name, why in unreadable.items()]
        + lost_contexts(taken, set(graphs.contexts()) | set(unreadable))
        + ([manifest_problem] if manifest_problem else [])
    )


def lost_contexts(taken: list[BackupInfo], present: set[str]) -> list[str]:
    """A context not in ``present`` that a backup holds (``taken``: oldest first), with the restore command."""
    newest = {b.context: b for b in taken}  # the last one wins
    return [
        f"context {b.context!r} has no file any more, but backup {b.id} ({b.time}) holds it: "
        f"restore it with coaia-store restore {b.id} (or the backups tool with action restore)"
        for context, b in sorted(newest.items())
        if context not in present
    ]


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


def _backup_state(backups: Backups, context: str) -> dict[str, object]:
    """The newest daily and weekly of ``context`` and whether they verify (only those two: cheap enough)."""
    taken = backups.list_backups(context)
    newest: dict[str, BackupInfo] = {b.kind: b for b in taken if b.kind in (DAILY, WEEKLY)}  # oldest first: last wins
    if not newest:
        return {}
    results = [backups.verify(b.id)[0] for b in newest.values()]
    problems = [f"backup {r.id} does not verify: {'; '.join(r.problems[:3])}" for r in results if not r.ok]
    refs = {kind: BackupRef(id=b.id, time=b.time) for kind, b in newest.items()}
    return {
        "lastDaily": refs.get(DAILY),
        "lastWeekly": refs.get(WEEKLY),
        "backupsVerified": not problems,
        "backupProblems": problems,
    }
