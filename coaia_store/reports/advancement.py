"""How charts advanced over a recent window: steps completed per week, charts completed, overdue steps.

The figures come from each context's current charts (the ``action_step`` and ``structural_tension_chart``
entities, sub-charts included). Times come from the entities' own metadata first: ``createdAt``,
``completedAt`` (with ``completionStatus: true``) and ``dueDate``, as the chart tools write them. Only
where a time is missing (files written by other tools, or a step completed through ``update_entity``
without ``completedAt``) is it taken from the chart's history timeline (:meth:`History.chart_history`):
the time of a step's ``step_added`` event for its creation, of the latest ``step_completed`` or
``chart_completed`` event for a completion. Metadata wins because it travels with
the chart when it is moved or archived to another context, where the history would only show the move.

Steps and charts deleted since are not counted; an archived chart counts under the context it is in
now (``completed``). Weeks start on Monday, in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..charts.rules import deadline, is_overdue
from ..charts.tree import ChartIndex, first_observation, is_completed, meta
from ..errors import InvalidInputError, NotFoundError
from ..graph.contexts import validate_context_name
from ..models import check_date_range
from ..safety.history import ChartHistory, History
from ..storage.clock import iso_timestamp
from ..storage.lines import Record

if TYPE_CHECKING:
    from ..store import Store

WINDOWS: tuple[int, ...] = (7, 30, 90)
MAX_WINDOW_DAYS = 366


# ----------------------------------------------------------------- result models


class WeekCount(BaseModel):
    weekStart: str = Field(description="The Monday the week starts on (ISO date, UTC).")
    count: int


class OverdueStep(BaseModel):
    name: str = Field(description="The action step's entity name.")
    title: str
    dueDate: str
    chartId: str
    context: str


class Advancement(BaseModel):
    stepsCompleted: int = Field(description="Action steps completed within the window.")
    stepsCompletedPerWeek: list[WeekCount] = Field(
        description="The same, per week (Monday first), oldest first; "
        "every week of the window is listed, zero included."
    )
    chartsCompleted: int = Field(description="Charts (sub-charts included) completed within the window.")
    stepsAdded: int = Field(description="Action steps created within the window.")
    overdueSteps: list[OverdueStep] = Field(
        description="Steps not completed whose due date has passed (any age), earliest due first."
    )
    averageDaysToComplete: float | None = Field(
        description="Mean days from a step's creation to its completion, over the steps completed within the "
        "window (2 decimals); None when there are none."
    )


class ContextAdvancement(Advancement):
    context: str


class AdvancementReport(BaseModel):
    windowDays: int
    windowStart: str = Field(description="Start of the window (ISO date-time, UTC).")
    now: str = Field(description="End of the window: when the report was made (ISO date-time, UTC).")
    contexts: list[ContextAdvancement] = Field(description="One entry per context holding charts.")
    totals: Advancement = Field(description="Every listed context together.")


# ----------------------------------------------------------------- times


def parse_moment(value: object) -> datetime | None:
    """A stored time: an ISO date-time (no zone: UTC) or a date (its start, UTC); ``None`` if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        check_date_range(moment, value)
    except ValueError:  # written by another tool: it would leave the calendar once moved to UTC
        return None
    return moment.astimezone(UTC)


def week_start(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def weeks_between(start: datetime, end: datetime) -> list[date]:
    """Every Monday from the week holding ``start`` to the week holding ``end``."""
    first, last = week_start(start), week_start(end)
    return [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]


# ----------------------------------------------------------------- gathering one context


@dataclass
class _Tally:
    """What one context (or all of them) contributes, before it is shaped into a model."""

    completions: list[datetime] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)  # days, for completions with a known creation
    charts_completed: int = 0
    steps_added: int = 0
    overdue: list[OverdueStep] = field(default_factory=list)

    def merge(self, other: _Tally) -> None:
        self.completions += other.completions
        self.durations += other.durations
        self.charts_completed += other.charts_completed
        self.steps_added += other.steps_added
        self.overdue += other.overdue


class _Timeline:
    """History times per entity, read (once per chart) only when metadata lacks them."""

    def __init__(self, history: History, context: str) -> None:
        self.history = history
        self.context = context
        self._charts: dict[str, ChartHistory | None] = {}

    def _events(self, chart_id: str) -> ChartHistory | None:
        if chart_id not in self._charts:
            try:
                self._charts[chart_id] = self.history.chart_history(chart_id, self.context, limit=None)
            except NotFoundError:
                self._charts[chart_id] = None
        return self._charts[chart_id]

    def first(self, chart_id: str, entity: str, kinds: tuple[str, ...]) -> datetime | None:
        found = self._times(chart_id, entity, kinds)
        return found[0] if found else None

    def last(self, chart_id: str, entity: str, kinds: tuple[str, ...]) -> datetime | None:
        found = self._times(chart_id, entity, kinds)
        return found[-1] if found else None

    def _times(self, chart_id: str, entity: str, kinds: tuple[str, ...]) -> list[datetime]:
        events = self._events(chart_id)
        found = [e for e in (events.events if events else []) if e.entity == entity and e.kind in kinds]
        moments = [parse_moment(e.time) for e in found]
        return [m for m in moments if m is not None]


class _Window:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.end = start, end

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment <= self.end


def _created(record: Record, chart_id: str, timeline: _Timeline, kind: str) -> datetime | None:
    return parse_moment(meta(record).get("createdAt")) or timeline.first(chart_id, record["name"], (kind,))


def _completed(record: Record, chart_id: str, timeline: _Timeline, kind: str) -> datetime | None:
    if not is_completed(record):
        return None
    return parse_moment(meta(record).get("completedAt")) or timeline.last(chart_id, record["name"], (kind,))


def _tally_context(store: Store, history: History, context: str, window: _Window) -> _Tally | None:
    """``None`` when the context holds no chart."""
    index = store.graph(context).read(lambda state: ChartIndex(dict(state.entities)))
    if not index.charts:
        return None
    timeline = _Timeline(history, context)
    tally = _Tally()
    for chart_id, chart in index.charts.items():
        if window.holds(_completed(chart, chart_id, timeline, "chart_completed")):
            tally.charts_completed += 1
        for step in index.steps(chart_id):
            _tally_step(tally, step, chart_id, context, timeline, window)
    tally.overdue.sort(key=lambda s: (deadline(s.dueDate) or window.end, s.name))
    return tally


def _tally_step(tally: _Tally, step: Record, chart_id: str, context: str, timeline: _Timeline, window: _Window) -> None:
    created = _created(step, chart_id, timeline, "step_added")
    tally.steps_added += window.holds(created)
    completed = _completed(step, chart_id, timeline, "step_completed")
    if window.holds(completed):
        assert completed is not None
        tally.completions.append(completed)
        if created is not None and created <= completed:
            tally.durations.append((completed - created).total_seconds() / 86400)
    due = meta(step).get("dueDate")
    if is_overdue(due, is_completed(step), window.end):
        tally.overdue.append(
            OverdueStep(
                name=step["name"], title=first_observation(step), dueDate=str(due), chartId=chart_id, context=context
            )
        )


def _shape(tally: _Tally, weeks: list[date]) -> dict[str, object]:
    per_week = {w: 0 for w in weeks}
    for moment in tally.completions:
        per_week[week_start(moment)] = per_week.get(week_start(moment), 0) + 1
    average = round(sum(tally.durations) / len(tally.durations), 2) if tally.durations else None
    return {
        "stepsCompleted": len(tally.completions),
        "stepsCompletedPerWeek": [WeekCount(weekStart=w.isoformat(), count=n) for w, n in sorted(per_week.items())],
        "chartsCompleted": tally.charts_completed,
        "stepsAdded": tally.steps_added,
        "overdueSteps": tally.overdue,
        "averageDaysToComplete": average,
    }


# ----------------------------------------------------------------- the library call


def advancement_report(
    store: Store, window_days: int = 30, context: str | None = None, now: datetime | None = None
) -> AdvancementReport:
    """How charts advanced in the last ``window_days`` days up to ``now`` (default: the store's clock), per context.

    ``context``: only that one (it must exist); omitted: every context that holds charts.
    """
    if not isinstance(window_days, int) or isinstance(window_days, bool) or not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise InvalidInputError(
            f"window must be a whole number of days from 1 to {MAX_WINDOW_DAYS} (got {window_days!r})"
        )
    end = (now or store.clock()).astimezone(UTC)
    window = _Window(end - timedelta(days=window_days), end)
    weeks = weeks_between(window.start, window.end)
    history = History(store)
    per_context: list[ContextAdvancement] = []
    total = _Tally()
    for name in _contexts(store, context):
        tally = _tally_context(store, history, name, window)
        if tally is None and context is None:
            continue
        tally = tally or _Tally()
        per_context.append(ContextAdvancement(context=name, **_shape(tally, weeks)))  # type: ignore[arg-type]
        total.merge(tally)
    total.overdue.sort(key=lambda s: (deadline(s.dueDate) or window.end, s.context, s.name))
    return AdvancementReport(
        windowDays=window_days,
        windowStart=iso_timestamp(window.start),
        now=iso_timestamp(window.end),
        contexts=per_context,
        totals=Advancement(**_shape(total, weeks)),  # type: ignore[arg-type]
    )


def _contexts(store: Store, context: str | None) -> Iterable[str]:
    names = store.contexts()
    if context is None:
        return names
    validate_context_name(context)
    if context not in names:
        raise NotFoundError(f"no context {context!r}; storage_status shows the contexts")
    return [context]
