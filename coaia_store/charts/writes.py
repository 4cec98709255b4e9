"""Composing chart changes into the records of ONE journal write (one atomic line on disk).

A :class:`Tx` runs inside ``Journal.write``'s build step, under the context's write lock, on
fresh state. It validates as it goes (raising before anything is written) and overlays its
own pending changes, so several changes to one entity in one call merge into one record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInputError, NotFoundError
from ..graph.state import GraphState, relation_key
from ..storage.clock import iso_timestamp
from ..storage.lines import Record
from .models import StepInput
from .rules import check_not_later, new_step_name, spread_dates
from .tree import (
    CHART,
    OUTCOME,
    REALITY,
    STEP,
    ChartIndex,
    chart_name,
    first_observation,
    is_completed,
    meta,
    outcome_name,
    reality_name,
    step_number,
)


class Tx:
    """Pending changes to one context on top of its current state."""

    def __init__(self, state: GraphState, context: str, now: datetime) -> None:
        self.state = state
        self.context = context
        self.now = now
        self.stamp = iso_timestamp(now)
        self.today = now.astimezone(UTC).date().isoformat()
        self._ops: dict[tuple[str, ...], Record] = {}
        self._index: ChartIndex | None = None

    @property
    def index(self) -> ChartIndex:
        """The chart structure as stored before this call (ask it before changing structure)."""
        if self._index is None:
            self._index = ChartIndex(self.state.entities)
        return self._index

    def records(self) -> list[Record]:
        return list(self._ops.values())

    def get(self, name: str) -> Record | None:
        pending = self._ops.get(("e", name))
        if pending is not None:
            return pending
        return None if ("d", name) in self._ops else self.state.entities.get(name)

    def need(self, name: str, entity_type: str, what: str) -> Record:
        record = self.get(name)
        if record is None:
            raise NotFoundError(f"no {what} named {name!r} in context {self.context!r}")
        if record.get("entityType") != entity_type:
            raise InvalidInputError(f"{name!r} is a {record.get('entityType')} entity; expected {what}")
        return record

    def put(self, record: Record) -> Record:
        self._ops.pop(("d", record["name"]), None)
        self._ops[("e", record["name"])] = record
        return record

    def update(
        self, name: str, *, observations: list[str] | None = None, unset: Sequence[str] = (), **metadata: Any
    ) -> Record:
        """Merge metadata (``None`` leaves a key alone, ``unset`` removes keys) and/or replace observations;
        no-op if nothing changes."""
        old = self.get(name)
        if old is None:
            raise NotFoundError(f"no entity named {name!r} in context {self.context!r}; the chart is incomplete")
        merged = {**meta(old), **{k: v for k, v in metadata.items() if v is not None}}
        for key in unset:
            merged.pop(key, None)
        kept = list(old.get("observations") or [])
        new_observations = kept if observations is None else observations
        if merged == meta(old) and new_observations == kept:
            return old
        return self.put({**old, "observations": new_observations, "metadata": {**merged, "updatedAt": self.stamp}})

    def append(self, name: str, line: str) -> bool:
        """Add an observation unless the entity already has it; ``True`` if added."""
        observations = [str(o) for o in (self.get(name) or {}).get("observations") or []]
        if line in observations:
            return False
        self.update(name, observations=[*observations, line])
        return True

    def delete(self, name: str) -> None:
        self._ops.pop(("e", name), None)
        self._ops[("d", name)] = {"type": "delete_entity", "name": name}

    def relate(self, source: str, relation_type: str, target: str) -> None:
        self.put_relation(
            {
                "type": "relation",
                "from": source,
                "to": target,
                "relationType": relation_type,
                "metadata": {"createdAt": self.stamp},
            }
        )

    def put_relation(self, record: Record) -> None:
        """Add a relation unless one with the same (from, relationType, to) exists."""
        key = relation_key(record)
        if key not in self.state.relations:
            self._ops[("r", *key)] = record

    def put_copy(self, record: Record) -> None:
        """Write an entity or relation record as it is (used to copy a chart to another context)."""
        if record.get("type") == "relation":
            self._ops[("r", *relation_key(record))] = record
        else:
            self.put(record)


class Change:
    """What a chart write did, for its reply: the chart, the step, what completed or reopened on the way."""

    def __init__(self, chart_id: str, step: str | None = None) -> None:
        self.chart_id = chart_id
        self.step = step
        self.changed = False
        self.operation_id: str | None = None
        self.added: list[str] = []
        self.completed: list[str] = []
        self.reopened: list[str] = []
        self.warnings: list[str] = []
        self.removed: list[str] = []
        self.removed_charts: list[str] = []


def _entity(name: str, entity_type: str, observations: list[str], metadata: dict[str, Any]) -> Record:
    return {
        "type": "entity",
        "name": name,
        "entityType": entity_type,
        "observations": observations,
        "metadata": metadata,
    }


def chart_due(tx: Tx, chart_id: str) -> str | None:
    due = meta(tx.get(chart_name(chart_id))).get("dueDate") or meta(tx.get(outcome_name(chart_id))).get("dueDate")
    return due if isinstance(due, str) else None


def new_chart(
    tx: Tx,
    chart_id: str,
    *,
    outcome: str,
    reality: str,
    due: str,
    steps: Sequence[StepInput],
    parent_step: Record | None,
) -> list[str]:
    """The chart's three entities, its relations, and its action steps (missing dates spread to ``due``)."""
    if tx.get(chart_name(chart_id)) is not None:
        raise InvalidInputError(f"chart id {chart_id!r} is taken in context {tx.context!r}")
    data: dict[str, Any] = {
        "chartId": chart_id,
        "dueDate": due,
        "level": 0,
        "completionStatus": False,
        "createdAt": tx.stamp,
        "updatedAt": tx.stamp,
    }
    if parent_step is not None:
        parent_id = meta(parent_step)["chartId"]
        level = meta(tx.get(chart_name(parent_id))).get("level")
        data |= {
            "parentChart": parent_id,
            "parentActionStep": parent_step["name"],
            "level": (level if isinstance(level, int) else 0) + 1,
        }
    tx.put(_entity(chart_name(chart_id), CHART, [f"Chart created on {tx.stamp}"], data))
    tx.put(
        _entity(
            outcome_name(chart_id), OUTCOME, [outcome], {"chartId": chart_id, "dueDate": due, "createdAt": tx.stamp}
        )
    )
    tx.put(_entity(reality_name(chart_id), REALITY, [reality], {"chartId": chart_id, "createdAt": tx.stamp}))
    tx.relate(chart_name(chart_id), "contains", outcome_name(chart_id))
    tx.relate(chart_name(chart_id), "contains", reality_name(chart_id))
    tx.relate(reality_name(chart_id), "creates_tension_with", outcome_name(chart_id))
    if parent_step is not None:
        tx.relate(parent_step["name"], "telescopes_into", chart_name(chart_id))
        tx.relate(outcome_name(chart_id), "advances_toward", outcome_name(meta(parent_step)["chartId"]))
    spread = spread_dates(tx.now, due, len(steps))
    return [
        add_step(tx, chart_id, step.title, step.dueDate or default, step.owner)
        for step, default in zip(steps, spread, strict=False)
    ]


def add_step(tx: Tx, chart_id: str, title: str, due: str, owner: str | None = None) -> str:
    """One ``action_step`` entity, contained in the chart and advancing toward its outcome."""
    chart = tx.get(chart_name(chart_id))
    assert chart is not None
    check_not_later(due, chart_due(tx, chart_id), f"action step {title!r}", f"its chart {chart_id}")
    used = [step_number(s["name"]) for s in tx.index.steps(chart_id)]
    number = max([meta(chart).get("actionSeq") or 0, *used]) + 1
    name = new_step_name(chart_id, number)
    data = {
        "chartId": chart_id,
        "dueDate": due,
        "completionStatus": False,
        "createdAt": tx.stamp,
        "updatedAt": tx.stamp,
    }
    tx.put(_entity(name, STEP, [title], data | ({"owner": owner} if owner else {})))
    tx.update(chart_name(chart_id), actionSeq=number)
    tx.relate(chart_name(chart_id), "contains", name)
    tx.relate(name, "advances_toward", outcome_name(chart_id))
    return name


def complete_step(tx: Tx, name: str, change: Change, *, upward: bool = True) -> None:
    """Mark one action step done with a dated line in its chart's reality; everything below it completes too.

    ``upward``: when that was the last open step of a sub-chart, the sub-chart completes, and so on up.
    """
    step = tx.need(name, STEP, "action step")
    if is_completed(step):
        return
    tx.update(name, completionStatus=True, completedAt=tx.stamp)
    change.completed.append(name)
    chart_id = meta(step)["chartId"]
    tx.append(reality_name(chart_id), f"Completed: {first_observation(step)} ({tx.today})")
    sub = tx.index.sub_chart.get(name)
    if sub is not None and tx.get(chart_name(sub)) is not None:
        complete_chart(tx, sub, change, upward=False)
    if upward:
        _flow_up(tx, chart_id, change)


def complete_chart(tx: Tx, chart_id: str, change: Change, *, upward: bool = True) -> None:
    """Mark a chart done, with every open step below it; a sub-chart also completes the step it telescopes from."""
    chart = tx.need(chart_name(chart_id), CHART, "chart")
    if is_completed(chart):
        return
    tx.update(chart_name(chart_id), completionStatus=True, completedAt=tx.stamp)
    change.completed.append(chart_id)
    for step in tx.index.steps(chart_id):
        complete_step(tx, step["name"], change, upward=False)
    outcome = first_observation(tx.get(outcome_name(chart_id)))
    if tx.get(reality_name(chart_id)) is not None:
        tx.append(reality_name(chart_id), f"Completed: {outcome} ({tx.today})")
    parent_step = meta(chart).get("parentActionStep")
    if upward and isinstance(parent_step, str) and tx.get(parent_step) is not None:
        complete_step(tx, parent_step, change)


def _flow_up(tx: Tx, chart_id: str, change: Change) -> None:
    """A sub-chart whose steps are all done completes; a top-level chart only says so."""
    chart = tx.get(chart_name(chart_id))
    steps = tx.index.steps(chart_id)
    if chart is None or is_completed(chart) or not all(is_completed(tx.get(s["name"])) for s in steps):
        return
    if isinstance(meta(chart).get("parentActionStep"), str):
        complete_chart(tx, chart_id, change)
    else:
        change.warnings.append(
            f"all {len(steps)} action steps of chart {chart_id} are done; the chart stays open until you complete it: "
            f'complete {{"target": "{chart_id}"}}'
        )


def reopen_step(tx: Tx, name: str, change: Change) -> None:
    """Reopen a completed step, and every completed level above it (nothing open sits under something completed)."""
    step = tx.need(name, STEP, "action step")
    if not is_completed(step):
        return
    tx.update(name, completionStatus=False, unset=("completedAt",))
    change.reopened.append(name)
    chart_id = meta(step)["chartId"]
    tx.append(reality_name(chart_id), f"Reopened: {first_observation(step)} ({tx.today})")
    reopen_chart(tx, chart_id, change)


def reopen_chart(tx: Tx, chart_id: str, change: Change) -> None:
    """Reopen a completed chart and the completed step it telescopes from (and so on up)."""
    chart = tx.need(chart_name(chart_id), CHART, "chart")
    if not is_completed(chart):
        return
    tx.update(chart_name(chart_id), completionStatus=False, unset=("completedAt",))
    change.reopened.append(chart_id)
    if tx.get(reality_name(chart_id)) is not None:
        tx.append(reality_name(chart_id), f"Reopened: {first_observation(tx.get(outcome_name(chart_id)))} ({tx.today})")
    parent_step = meta(chart).get("parentActionStep")
    if isinstance(parent_step, str) and tx.get(parent_step) is not None:
        reopen_step(tx, parent_step, change)


def remove_subtree(tx: Tx, chart_id: str) -> list[str]:
    """Delete every entity of a chart and the charts below it (relations go with them)."""
    names = tx.index.entity_names(chart_id)
    for name in names:
        tx.delete(name)
    return names
