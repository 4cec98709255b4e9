"""Integrity checks of every context, and the safe repairs.

Checked per context: lines read, records applied, damaged lines (with line numbers) and how many
failed their checksum, a torn tail, relations whose ends do not exist, sub-charts whose parent
chart or step is gone, and due dates that break the timeline (a step due after its chart, a
sub-chart due after its step). ``repair=True`` then applies what is safe: it rewrites a file without
its damaged lines (the old file kept whole in history/, the bad lines in quarantine), cuts a torn tail (its bytes go
to quarantine) and removes dangling relations, each change logged. A second repair changes nothing.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, computed_field

from .charts.rules import deadline
from .charts.tree import ChartIndex, meta
from .graph import Graph, GraphState
from .models import DamagedLine
from .storage.lines import Record
from .store import Store


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
    repairs: list[str] = Field([], description="What repair=true changed in this context.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not (self.damagedLines or self.tornTail or self.danglingRelations or self.orphanSubCharts
                    or self.timelineViolations)


class IntegrityReport(BaseModel):
    ok: bool
    contexts: list[ContextIntegrity]


def validate_integrity(store: Store, *, context: str | None = None, repair: bool = False) -> IntegrityReport:
    names = store.contexts() if context is None else [context]
    reports = [_check_context(store.graph(name), store, repair) for name in names]
    return IntegrityReport(ok=all(r.ok for r in reports), contexts=reports)


def _check_context(graph: Graph, store: Store, repair: bool) -> ContextIntegrity:
    repairs = _repair(graph, store) if repair else []
    info = graph.journal.info()
    dangling, orphans, timeline = graph.read(lambda s: (_dangling(s), _orphans(s), _timeline(s)))
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
        repairs=repairs,
    )


def _repair(graph: Graph, store: Store) -> list[str]:
    """Drop damaged lines by compacting (the whole file as it was goes to history/ first, its bad lines are
    already in quarantine); the journal cuts a torn tail under the write lock; dangling relations go in one
    write. A backup cannot stand in for the history copy here: backups hold only verified lines."""
    info = graph.journal.info()
    tail, damaged = info.tail, info.damage
    if damaged:
        graph.journal.compact(drop_damaged=True)

    def plan(state: GraphState) -> tuple[list[Record], list[Record]]:
        dangling = _dangling(state)
        return [{"type": "delete_relation", "from": r["from"], "relationType": r["relationType"], "to": r["to"]}
                for r in dangling], dangling

    removed = graph.journal.write(lambda: plan(graph.state))
    done = [f"rewrote the file without {len(damaged)} damaged line(s); the file as it was is in history/ and "
            "the bad lines in .recovery/quarantine/"] if damaged else []
    done += [f"cut a torn tail of {tail.length} bytes at line {tail.line} (kept in .recovery/quarantine/)"] if tail else []
    done += [f"removed dangling relation {_describe(r)}" for r in removed]
    for change in done:
        store.recovery.log(file=graph.journal.path.name, found="integrity check", action=change)
    return done


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
