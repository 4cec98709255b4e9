"""The session briefing: what an agent should know at the start of a session, in under 2,000 tokens.

Overdue action steps, steps due within 7 days, and the active top-level charts of each context with
their progress and next step. The same content is given as readable text (``coaia-store brief``,
the ``coaia://brief`` resource, a ``SessionStart`` hook's output) and as JSON. Both stay under
:data:`BRIEF_BYTES` however large the store is: the most urgent items come first, and the end says
how many of each kind were left out and where to see them.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from itertools import zip_longest
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..charts.rules import deadline, is_overdue, within_days
from ..charts.tree import ChartIndex, Viewer, first_observation, is_completed, meta, outcome_name
from ..errors import CoaiaError
from ..graph.contexts import validate_context_name
from ..graph.state import GraphState
from ..storage.clock import iso_timestamp

if TYPE_CHECKING:
    from ..store import Store

BRIEF_BYTES = 8_000  # about 2,000 tokens
DUE_SOON_DAYS = 7
_TEXT = 80  # characters of a title or outcome kept in the brief


class BriefChart(BaseModel):
    context: str
    chartId: str
    desiredOutcome: str
    dueDate: str | None
    overdue: bool
    progress: float = Field(description="0..1, recursive through sub-charts.")
    completedSteps: int
    totalSteps: int
    nextStep: str | None = Field(None, description="The earliest-due open action step's title.")
    nextStepDue: str | None = None


class BriefStep(BaseModel):
    context: str
    actionStep: str = Field(description="The step's entity name (what completing or updating it takes).")
    title: str
    dueDate: str
    chart: str = Field(description="The desired outcome of the chart the step belongs to.")


class Brief(BaseModel):
    generatedAt: str
    overdue: list[BriefStep] = Field(description="Open action steps past their due date, oldest first.")
    dueSoon: list[BriefStep] = Field(description=f"Open action steps due within {DUE_SOON_DAYS} days, soonest first.")
    charts: list[BriefChart] = Field(
        description="Active top-level charts, by context, then due date; when they do "
        "not all fit, each context keeps a share."
    )
    totals: dict[str, int] = Field(description="How many of each there are in all (charts, overdue, dueSoon).")
    leftOut: str | None = Field(None, description="What the brief left out to stay short, and where to see it.")
    unreadable: list[str] = Field(
        [], description="Contexts that could not be read, with why (`coaia-store doctor` says what to do)."
    )

    def text(self) -> str:
        return _render(self)


def build_brief(store: Store, context: str | None = None, max_bytes: int = BRIEF_BYTES) -> Brief:
    """The briefing for every context (or one), bounded to ``max_bytes`` as text and as compact JSON."""
    now = store.clock()
    contexts = store.contexts() if context is None else [validate_context_name(context)]
    per_context: list[list[BriefChart]] = []
    steps: list[BriefStep] = []
    unreadable = [
        f"{name} ({why})"[:200] for name, why in store.unreadable_contexts().items() if context in (None, name)
    ]
    for name in contexts:
        try:
            found_charts, found_steps = store.graph(name).read(partial(_context_items, context=name, now=now))
        except CoaiaError as exc:  # one unreadable context must not hide the others (a hook shows nothing on error)
            unreadable.append(f"{name} ({exc})"[:200])
            continue
        per_context.append(found_charts)
        steps += found_steps
    charts = [c for turn in zip_longest(*per_context) for c in turn if c is not None]  # each context in turn
    overdue, soon = [], []
    for step in steps:
        if is_overdue(step.dueDate, False, now):
            overdue.append(step)
        elif within_days(step.dueDate, DUE_SOON_DAYS, now):
            soon.append(step)
    overdue.sort(key=_due_order)
    soon.sort(key=_due_order)
    totals = {"charts": len(charts), "overdue": len(overdue), "dueSoon": len(soon)}
    full = Brief(
        generatedAt=iso_timestamp(now),
        overdue=overdue,
        dueSoon=soon,
        charts=charts,
        unreadable=unreadable[:5],
        totals=totals,
    )
    return _fit(full, max_bytes)


def _context_items(state: GraphState, context: str, now: datetime) -> tuple[list[BriefChart], list[BriefStep]]:
    entities = state.entities
    index = ChartIndex(entities)
    viewer = Viewer(index, context, now)
    charts: list[BriefChart] = []
    steps: list[BriefStep] = []
    for chart_id, record in index.charts.items():
        if is_completed(record):
            continue
        outcome = _short(first_observation(entities.get(outcome_name(chart_id))))
        steps += [
            BriefStep(
                context=context,
                actionStep=s["name"],
                title=_short(first_observation(s)),
                chart=outcome,
                dueDate=str(meta(s)["dueDate"]),
            )
            for s in index.steps(chart_id)
            if not is_completed(s) and deadline(meta(s).get("dueDate")) is not None
        ]
        if not isinstance(meta(record).get("parentChart"), str):
            summary = viewer.summary(chart_id)
            charts.append(
                BriefChart(
                    context=context,
                    chartId=chart_id,
                    desiredOutcome=outcome,
                    dueDate=summary.dueDate,
                    overdue=summary.overdue,
                    progress=round(summary.progress, 2),
                    completedSteps=summary.completedSteps,
                    totalSteps=summary.totalSteps,
                    nextStep=_short(summary.nextStep.title) if summary.nextStep else None,
                    nextStepDue=summary.nextStep.dueDate if summary.nextStep else None,
                )
            )
    charts.sort(key=lambda c: (deadline(c.dueDate) is None, deadline(c.dueDate) or now, c.chartId))
    return charts, steps


def _due_order(step: BriefStep) -> tuple[datetime | None, str]:
    return deadline(step.dueDate), step.actionStep


def _short(text: str) -> str:
    return text if len(text) <= _TEXT else text[: _TEXT - 1] + "…"


# ----------------------------------------------------------------- staying short


_SECTIONS = ("overdue", "dueSoon", "charts")  # most urgent first


def _fit(full: Brief, max_bytes: int) -> Brief:
    """The brief with as many items of each section as fit, taken in turn, most urgent section first."""
    counts = dict.fromkeys(_SECTIONS, 0)
    growing = [s for s in _SECTIONS if getattr(full, s)]
    while growing:
        for section in list(growing):
            trial = {**counts, section: counts[section] + 1}
            if _size(_cut(full, trial)) > max_bytes:
                growing.remove(section)
                continue
            counts = trial
            if counts[section] == len(getattr(full, section)):
                growing.remove(section)
    return _cut(full, counts)


def _cut(full: Brief, counts: dict[str, int]) -> Brief:
    kept = {s: getattr(full, s)[: counts[s]] for s in _SECTIONS}
    rank = {c.context: i for i, c in reversed(list(enumerate(full.charts)))}
    kept["charts"] = sorted(kept["charts"], key=lambda c: rank[c.context])  # the charts kept, grouped by context
    missing = {s: len(getattr(full, s)) - counts[s] for s in _SECTIONS}
    return full.model_copy(update={**kept, "leftOut": _left_out(missing)})


def _left_out(missing: dict[str, int]) -> str | None:
    words = {"overdue": "overdue steps", "dueSoon": "steps due soon", "charts": "active charts"}
    parts = [f"{n} {words[s]}" for s, n in missing.items() if n]
    if not parts:
        return None
    return (
        f"left out to stay short: {', '.join(parts)}; see them with list_charts (MCP) or `coaia-store charts` "
        "(command line), with their overdue and due-within filters"
    )


def _size(brief: Brief) -> int:
    return max(len(brief.model_dump_json().encode()), len(_render(brief).encode()))


# ----------------------------------------------------------------- text


def _render(brief: Brief) -> str:
    totals = brief.totals
    lines = [
        f"# coaia-store brief, {brief.generatedAt[:16].replace('T', ' ')} UTC",
        f"{_count(totals['charts'], 'active chart')}, {_count(totals['overdue'], 'overdue step')}, "
        f"{_count(totals['dueSoon'], 'step')} due within {DUE_SOON_DAYS} days.",
    ]
    lines += _step_lines("Overdue steps", brief.overdue)
    lines += _step_lines(f"Due within {DUE_SOON_DAYS} days", brief.dueSoon)
    if brief.charts:
        lines += ["", "## Active charts"]
    context = None
    for chart in brief.charts:
        if chart.context != context:
            context = chart.context
            lines.append(f"### {context}")
        lines.append(_chart_line(chart))
    if brief.unreadable:
        lines += [
            "",
            f"Could not read: {'; '.join(brief.unreadable)}. "
            "`coaia-store doctor` (or validate_integrity) says what to do.",
        ]
    if brief.leftOut:
        lines += ["", f"({brief.leftOut})"]
    return "\n".join(lines) + "\n"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _step_lines(title: str, steps: list[BriefStep]) -> list[str]:
    if not steps:
        return []
    return [
        "",
        f"## {title}",
        *(f"- {s.dueDate[:10]} {s.title} [{s.context}: {s.chart}] `{s.actionStep}`" for s in steps),
    ]


def _chart_line(chart: BriefChart) -> str:
    due = f"due {chart.dueDate[:10]}" if chart.dueDate else "no due date"
    late = " OVERDUE" if chart.overdue else ""
    line = (
        f"- {chart.desiredOutcome}: {round(chart.progress * 100)}% "
        f"({chart.completedSteps}/{chart.totalSteps} steps), {due}{late} `{chart.chartId}`"
    )
    if chart.nextStep:
        line += f"; next: {chart.nextStep}" + (f" (due {chart.nextStepDue[:10]})" if chart.nextStepDue else "")
    return line
