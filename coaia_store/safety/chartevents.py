"""A chart's history told as events: created, reality added, steps added, completed or telescoped, dates moved,
moved or archived; read from a context's timeline (:func:`~coaia_store.safety.timeline.timeline`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..storage.lines import Record
from .generations import OpKind
from .timeline import Event, meta_of, observations_of, show_time

ChartEventKind = Literal[
    "chart_created",
    "chart_removed",
    "chart_completed",
    "chart_reopened",
    "due_moved",
    "outcome_changed",
    "reality_added",
    "reality_removed",
    "step_added",
    "step_removed",
    "step_completed",
    "step_reopened",
    "step_due_moved",
    "step_renamed",
    "step_note",
    "step_telescoped",
    "chart_moved",
]


class ChartEvent(BaseModel):
    time: str | None
    context: str
    opId: str
    opKind: OpKind
    kind: ChartEventKind
    entity: str = Field(description="The entity that changed (the chart, its reality, an action step...).")
    text: str | None = Field(
        None, description="What was added or the new title/outcome; the sub-chart id for step_telescoped."
    )
    previous: str | None = Field(None, description="The value before (a due date, a title).")
    value: str | None = Field(None, description="The value after (a due date, a title).")
    fromContext: str | None = Field(None, description="chart_moved: the context the chart left.")
    toContext: str | None = Field(None, description="chart_moved: the context it went to ('completed': archived).")
    by: str | None = Field(None, description="Who made it: the name of the HTTP token used (None when unknown).")


def _first(items: list[str]) -> str | None:
    return items[0] if items else None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def chart_events(event: Event, chart_id: str, context: str) -> list[ChartEvent]:
    found: list[ChartEvent] = []

    def add(
        kind: ChartEventKind, entity: str, text: object = None, previous: object = None, value: object = None
    ) -> None:
        found.append(
            ChartEvent(
                time=show_time(event.time),
                context=context,
                opId=event.id,
                opKind=event.kind,
                kind=kind,
                entity=entity,
                text=_text(text),
                previous=_text(previous),
                value=_text(value),
                by=event.by,
            )
        )

    for key, (before, after) in event.changes.items():
        if key[0] != "e":
            continue
        name = key[1]
        old, new = meta_of(before), meta_of(after)
        if name == f"{chart_id}_chart":
            _chart_changes(add, name, before, after)
        elif name == f"{chart_id}_desired_outcome":
            if before is not None and after is not None and observations_of(before)[:1] != observations_of(after)[:1]:
                add("outcome_changed", name, _first(observations_of(after)), _first(observations_of(before)))
        elif name == f"{chart_id}_current_reality":
            previous, current = observations_of(before), observations_of(after)
            for line in current:
                if line not in previous:
                    add("reality_added", name, line)
            for line in previous:
                if line not in current:
                    add("reality_removed", name, line)
        elif (
            chart_id in (old.get("chartId"), new.get("chartId"))
            and (after or before or {}).get("entityType") == "action_step"
        ):
            _step_changes(add, name, before, after)
        if (
            before is None
            and after is not None
            and new.get("parentChart") == chart_id
            and after.get("entityType") == "structural_tension_chart"
        ):
            add("step_telescoped", str(new.get("parentActionStep")), new.get("chartId") or name.removesuffix("_chart"))
    return found


def _chart_changes(add: Any, name: str, before: Record | None, after: Record | None) -> None:
    old, new = meta_of(before), meta_of(after)
    if before is None:
        add("chart_created", name, None, None, new.get("dueDate"))
    elif after is None:
        add("chart_removed", name)
    else:
        if old.get("completionStatus") is not True and new.get("completionStatus") is True:
            add("chart_completed", name, None, None, new.get("completedAt"))
        elif old.get("completionStatus") is True and new.get("completionStatus") is not True:
            add("chart_reopened", name)
        if old.get("dueDate") != new.get("dueDate"):
            add("due_moved", name, None, old.get("dueDate"), new.get("dueDate"))


def _step_changes(add: Any, name: str, before: Record | None, after: Record | None) -> None:
    old, new = meta_of(before), meta_of(after)
    previous, current = observations_of(before), observations_of(after)
    if before is None:
        add("step_added", name, current[0] if current else None, None, new.get("dueDate"))
        return
    if after is None:
        add("step_removed", name, previous[0] if previous else None)
        return
    if old.get("completionStatus") is not True and new.get("completionStatus") is True:
        add("step_completed", name, current[0] if current else None, None, new.get("completedAt"))
    elif old.get("completionStatus") is True and new.get("completionStatus") is not True:
        add("step_reopened", name, current[0] if current else None)
    if old.get("dueDate") != new.get("dueDate"):
        add("step_due_moved", name, current[0] if current else None, old.get("dueDate"), new.get("dueDate"))
    if previous[:1] != current[:1]:
        add("step_renamed", name, None, previous[0] if previous else None, current[0] if current else None)
    for note in current[1:]:
        if note not in previous[1:]:
            add("step_note", name, note)


def with_moves(touched: list[tuple[str, Event, list[ChartEvent]]], chart_id: str) -> list[ChartEvent]:
    """The events, oldest first, with each move (a copy into one context, then the removal from
    another: ``Charts.move_chart``) shown as ONE ``chart_moved`` event, at the copy, instead of both halves."""
    chart = f"{chart_id}_chart"
    touched.sort(key=lambda item: (item[1].time is None, item[1].time or datetime.min, _removes(item[2], chart)))
    live: set[str] = set()
    held: dict[str, tuple[set[str], list[ChartEvent], list[ChartEvent]]] = {}  # target: sources, its slot, the copy
    slots: list[list[ChartEvent]] = []
    for context, event, events in touched:
        if _creates(events, chart) and live - {context}:
            slots.append(
                [
                    ChartEvent(
                        time=show_time(event.time),
                        context=context,
                        opId=event.id,
                        opKind=event.kind,
                        kind="chart_moved",
                        entity=chart,
                        toContext=context,
                        by=event.by,
                    )
                ]
            )
            held[context] = (live - {context}, slots[-1], events)
        elif _removes(events, chart) and (target := next((t for t, h in held.items() if context in h[0]), None)):
            held.pop(target)[1][0].fromContext = context
        else:
            slots.append(events)
        if _creates(events, chart):
            live.add(context)
        elif _removes(events, chart):
            live.discard(context)
    for _, slot, events in held.values():  # a move that never finished: the copy stands as it is
        slot[:] = events
    found = [e for slot in slots for e in slot]
    found.sort(key=lambda e: e.time or "")
    return found


def _creates(events: list[ChartEvent], chart: str) -> bool:
    return any(e.kind == "chart_created" and e.entity == chart for e in events)


def _removes(events: list[ChartEvent], chart: str) -> bool:
    return any(e.kind == "chart_removed" and e.entity == chart for e in events)
