"""Reading charts out of a context's graph: which entities form a chart, its tree, its progress.

A chart ``C`` is the entities ``C_chart`` (structural_tension_chart), ``C_desired_outcome``,
``C_current_reality`` and its ``action_step`` entities (``metadata.chartId == C``). An action step
owns at most one sub-chart: the chart whose ``metadata.parentActionStep`` names it (also linked by
a ``telescopes_into`` relation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..errors import NotFoundError
from ..storage.lines import Record
from .models import ActionStepView, ChartSummary, ChartView, NextStep
from .rules import deadline, is_overdue

CHART, OUTCOME, REALITY, STEP = "structural_tension_chart", "desired_outcome", "current_reality", "action_step"
_STEP_NUMBER = re.compile(r"_action_(\d+)(?:_[0-9a-f]{8})?$")  # <chartId>_action_<N>[_<random hex>]


def chart_name(chart_id: str) -> str:
    return f"{chart_id}_chart"


def outcome_name(chart_id: str) -> str:
    return f"{chart_id}_desired_outcome"


def reality_name(chart_id: str) -> str:
    return f"{chart_id}_current_reality"


def meta(record: Record | None) -> dict[str, Any]:
    data = (record or {}).get("metadata")
    return data if isinstance(data, dict) else {}


def first_observation(record: Record | None) -> str:
    observations = (record or {}).get("observations") or []
    return str(observations[0]) if observations else ""


def is_completed(record: Record | None) -> bool:
    return meta(record).get("completionStatus") is True


def step_number(name: str) -> int:
    match = _STEP_NUMBER.search(name)
    return int(match.group(1)) if match else 0


def _step_order(step: Record) -> tuple[bool, datetime | None, int, str]:
    end = deadline(meta(step).get("dueDate"))
    return (end is None, end, step_number(step["name"]), step["name"])


class ChartIndex:
    """One pass over a context's entities: charts by id, their members, steps and sub-charts."""

    def __init__(self, entities: Mapping[str, Record]) -> None:
        self.entities = entities
        self.charts: dict[str, Record] = {}
        self.members: dict[str, list[str]] = {}
        self._steps: dict[str, list[Record]] = {}
        self.sub_chart: dict[str, str] = {}
        for name, record in entities.items():
            self._add(name, record)
        self._progress: dict[str, float] = {}

    def _add(self, name: str, record: Record) -> None:
        data = meta(record)
        chart_id = data.get("chartId")
        if record.get("entityType") == CHART:
            chart_id = chart_id if isinstance(chart_id, str) else name.removesuffix("_chart")
            self.charts[chart_id] = record
            step = data.get("parentActionStep")
            if isinstance(step, str):  # telescoped twice (two clones at once): the same one wins on every clone
                self.sub_chart[step] = min(self.sub_chart.get(step, chart_id), chart_id)
        if not isinstance(chart_id, str):
            return
        self.members.setdefault(chart_id, []).append(name)
        if record.get("entityType") == STEP:
            self._steps.setdefault(chart_id, []).append(record)

    def chart(self, chart_id: str, context: str) -> Record:
        record = self.charts.get(chart_id)
        if record is None:
            raise NotFoundError(f"no chart {chart_id!r} in context {context!r}; list_charts shows the charts there")
        return record

    def steps(self, chart_id: str) -> list[Record]:
        return sorted(self._steps.get(chart_id, []), key=_step_order)

    def subtree(self, chart_id: str) -> list[str]:
        """``chart_id`` and every chart telescoped below it, parents first."""
        found: list[str] = []
        pending = [chart_id]
        while pending:
            current = pending.pop(0)
            if current in found:
                continue
            found.append(current)
            pending += [self.sub_chart[s["name"]] for s in self.steps(current) if s["name"] in self.sub_chart]
        return found

    def entity_names(self, chart_id: str) -> list[str]:
        """Every entity of the chart's subtree: its own three, its steps, anything else tagged with its id."""
        names: dict[str, None] = {}
        for current in self.subtree(chart_id):
            own = (chart_name(current), outcome_name(current), reality_name(current), *self.members.get(current, []))
            names.update((n, None) for n in own if n in self.entities)
        return list(names)

    def progress(self, chart_id: str) -> float:
        """1 for a completed chart, else the mean of its steps' progress (0 without steps)."""
        if chart_id not in self._progress:
            self._progress[chart_id] = 0.0  # guards against a cycle in damaged data
            self._progress[chart_id] = self._compute_progress(chart_id)
        return self._progress[chart_id]

    def _compute_progress(self, chart_id: str) -> float:
        if is_completed(self.charts.get(chart_id)):
            return 1.0
        steps = self.steps(chart_id)
        return sum(self.step_progress(s) for s in steps) / len(steps) if steps else 0.0

    def step_progress(self, step: Record) -> float:
        if is_completed(step):
            return 1.0
        sub = self.sub_chart.get(step["name"])
        return self.progress(sub) if sub in self.charts else 0.0


class Viewer:
    """Turns an index into result models, as seen at ``now``."""

    def __init__(self, index: ChartIndex, context: str, now: datetime) -> None:
        self.index = index
        self.context = context
        self.now = now

    def summary(self, chart_id: str) -> ChartSummary:
        return ChartSummary(**self._summary_fields(chart_id))

    def chart(self, chart_id: str, depth: int | None) -> ChartView:
        record = self.index.chart(chart_id, self.context)
        data = meta(record)
        reality = self.index.entities.get(reality_name(chart_id))
        return ChartView(
            **self._summary_fields(chart_id),
            parentActionStep=data.get("parentActionStep"),
            currentReality=[str(o) for o in (reality or {}).get("observations") or []],
            completedAt=data.get("completedAt"),
            createdAt=data.get("createdAt"),
            actionSteps=[self.step(s, depth) for s in self.index.steps(chart_id)],
        )

    def step(self, step: Record, depth: int | None) -> ActionStepView:
        data = meta(step)
        sub = self.index.sub_chart.get(step["name"])
        expand = sub in self.index.charts and (depth is None or depth > 0)
        observations = [str(o) for o in step.get("observations") or []]
        return ActionStepView(
            name=step["name"],
            title=observations[0] if observations else "",
            dueDate=data.get("dueDate"),
            owner=data.get("owner") if isinstance(data.get("owner"), str) else None,
            completed=is_completed(step),
            completedAt=data.get("completedAt") if is_completed(step) else None,
            overdue=is_overdue(data.get("dueDate"), is_completed(step), self.now),
            progress=self.index.step_progress(step),
            notes=observations[1:],
            subChartId=sub,
            subChart=self.chart(sub, None if depth is None else depth - 1) if expand and sub else None,
        )

    def _summary_fields(self, chart_id: str) -> dict[str, Any]:
        record = self.index.chart(chart_id, self.context)
        data = meta(record)
        steps = self.index.steps(chart_id)
        due = data.get("dueDate") or meta(self.index.entities.get(outcome_name(chart_id))).get("dueDate")
        return {
            "chartId": chart_id,
            "context": self.context,
            "level": data.get("level") if isinstance(data.get("level"), int) else 0,
            "parentChart": data.get("parentChart"),
            "desiredOutcome": first_observation(self.index.entities.get(outcome_name(chart_id))),
            "dueDate": due,
            "completed": is_completed(record),
            "overdue": is_overdue(due, is_completed(record), self.now),
            "progress": self.index.progress(chart_id),
            "completedSteps": sum(is_completed(s) for s in steps),
            "totalSteps": len(steps),
            "nextStep": _next_step(steps),
            "owners": sorted({o for s in steps if not is_completed(s) and isinstance(o := meta(s).get("owner"), str)}),
        }


def _next_step(steps: list[Record]) -> NextStep | None:
    for step in steps:  # already in due-date order
        if not is_completed(step):
            return NextStep(name=step["name"], title=first_observation(step), dueDate=meta(step).get("dueDate"))
    return None
