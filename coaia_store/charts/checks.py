"""The integrity checks of the charts a context holds: sub-charts without their parent, due dates out of
order, open work under completed work. Pure functions over a :class:`GraphState`; the Store facade hands
them to the safety layer's checks (``status``, ``validate_integrity``), which know nothing of charts."""

from __future__ import annotations

from ..graph.state import GraphState
from ..safety.integrity import ChartFindings
from .rules import deadline
from .tree import ChartIndex, is_completed, meta


def chart_findings(state: GraphState) -> ChartFindings:
    """Every chart check of one context's state."""
    index = ChartIndex(state.entities)
    return ChartFindings(
        orphan_sub_charts=_orphans(state, index),
        timeline_violations=_timeline(index),
        open_under_completed=_open_under_completed(index),
    )


def _orphans(state: GraphState, index: ChartIndex) -> list[str]:
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


def _timeline(index: ChartIndex) -> list[str]:
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


def _open_under_completed(index: ChartIndex) -> list[str]:
    """Open steps of a completed chart, and open sub-charts of a completed step (what completion should have closed)."""
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
