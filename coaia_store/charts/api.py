"""``Charts``: structural tension charts over a :class:`~coaia_store.Store`.

The operations that create and change charts are here: creating a chart; adding, telescoping,
updating, removing and completing action steps; completing, reopening and updating charts. The
reads come from :class:`.reads.ChartReads`, moving and archiving from :class:`.moves.ChartMoves`,
and :mod:`.writes` composes the records each write appends.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConflictError, InvalidInputError
from ..graph.contexts import DEFAULT_CONTEXT, validate_context_name
from ..storage.lines import Record
from .access import Request, parse_request
from .models import (
    ActionStepRef,
    AddActionStep,
    AddActionSteps,
    ChartRef,
    ChartResult,
    Complete,
    CreateChart,
    RemoveResult,
    TelescopeActionStep,
    UpdateActionStep,
    UpdateChart,
    UpdateCurrentReality,
    UpdateDesiredOutcome,
)
from .moves import ChartMoves
from .reads import ChartReads
from .rules import (
    check_not_later,
    deadline,
    new_chart_id,
    outcome_warnings,
    reality_warnings,
    spread_dates,
)
from .tree import (
    CHART,
    OUTCOME,
    STEP,
    Viewer,
    chart_name,
    first_observation,
    is_completed,
    meta,
    outcome_name,
    reality_name,
)
from .writes import (
    Change,
    Tx,
    add_step,
    chart_due,
    complete_chart,
    complete_step,
    new_chart,
    remove_subtree,
    reopen_chart,
    reopen_step,
)


class Charts(ChartReads, ChartMoves):
    """Structural tension charts (Robert Fritz) stored as a knowledge graph, one context per file.

    Each method takes a model or a mapping of its fields, or the fields as keywords:
    ``charts.create_chart(desiredOutcome=..., currentReality=..., dueDate="2026-06-30")``.
    """

    # ------------------------------------------------------------- creating

    def create_chart(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """A chart with its desired outcome, current reality, due date and action steps, in one write."""
        req = parse_request(CreateChart, request, fields)
        for step in req.actionSteps:
            check_not_later(step.dueDate, req.dueDate, f"action step {step.title!r}", "the chart")
        context = validate_context_name(req.context or DEFAULT_CONTEXT)

        def plan(tx: Tx) -> Change:
            chart_id = new_chart_id(tx.now)
            while tx.get(chart_name(chart_id)) is not None:
                chart_id = new_chart_id(tx.now)
            change = Change(chart_id)
            change.added = new_chart(
                tx,
                chart_id,
                outcome=req.desiredOutcome,
                reality=req.currentReality,
                due=req.dueDate,
                steps=req.actionSteps,
                parent_step=None,
            )
            return change

        warnings = outcome_warnings(req.desiredOutcome) + reality_warnings(req.currentReality)
        return self._result(context, self._write(context, plan), warnings)

    def add_action_step(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """One more action step; its due date defaults to halfway between now and the chart's."""
        req = parse_request(AddActionStep, request, fields)
        step = {"title": req.title, "dueDate": req.dueDate, "owner": req.owner}
        result = self.add_action_steps(chartId=req.chartId, actionSteps=[step], context=req.context)
        return result.model_copy(
            update={"actionStep": next((s for s in result.chart.actionSteps if s.name in result.added), None)}
        )

    def add_action_steps(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """One or more action steps (due dates omitted: halfway to the chart's). A completed chart reopens."""
        req = parse_request(AddActionSteps, request, fields)
        context = self._chart_context(req.chartId, req.context)

        def plan(tx: Tx) -> Change:
            tx.index.chart(req.chartId, context)
            change = Change(req.chartId)
            if is_completed(tx.get(chart_name(req.chartId))):
                reopen_chart(tx, req.chartId, change)
                change.warnings.append(
                    f"chart {req.chartId} was completed; adding a step reopened it "
                    f"(and {len(change.reopened) - 1} level(s) above it)"
                )
            for step in req.actionSteps:
                due = step.dueDate or _halfway(tx, req.chartId)
                change.added.append(add_step(tx, req.chartId, step.title, due, step.owner))
            return change

        return self._result(context, self._write(context, plan))

    def telescope_action_step(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Turn an action step into a sub-chart (one level below its chart, due no later than the step)."""
        req = parse_request(TelescopeActionStep, request, fields)
        context = self._entity_context(req.actionStep, req.context)

        def plan(tx: Tx) -> Change:
            step = tx.need(req.actionStep, STEP, "action step")
            existing = tx.index.sub_chart.get(req.actionStep)
            if existing is not None:
                raise ConflictError(f"action step {req.actionStep!r} is already telescoped into chart {existing!r}")
            if is_completed(step):
                raise ConflictError(
                    f"action step {req.actionStep!r} is completed; reopen it first with "
                    f'complete {{"target": "{req.actionStep}", "reopen": true}}, then telescope it'
                )
            step_due = meta(step).get("dueDate") or chart_due(tx, meta(step)["chartId"])
            due = req.dueDate or step_due
            if not isinstance(due, str):
                raise InvalidInputError(f"action step {req.actionStep!r} has no due date; pass dueDate")
            check_not_later(due, step_due, "the sub-chart", f"its action step {req.actionStep}")
            chart_id = new_chart_id(tx.now)
            change = Change(chart_id, req.actionStep)
            change.added = new_chart(
                tx,
                chart_id,
                outcome=req.desiredOutcome or first_observation(step),
                reality=req.currentReality,
                due=due,
                steps=req.actionSteps,
                parent_step=step,
            )
            return change

        warnings = outcome_warnings(req.desiredOutcome or "") + reality_warnings(req.currentReality)
        return self._result(context, self._write(context, plan), warnings)

    # ------------------------------------------------------------- action steps

    def update_action_step(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Change a step's title or due date, or add a progress note (optionally to current reality too)."""
        req = parse_request(UpdateActionStep, request, fields)
        context = self._entity_context(req.actionStep, req.context)

        def plan(tx: Tx) -> Change:
            step = tx.need(req.actionStep, STEP, "action step")
            chart_id = meta(step)["chartId"]
            if req.dueDate is not None:
                _check_step_due(tx, req.actionStep, req.dueDate)
            observations = [str(o) for o in step.get("observations") or []] or [""]
            if req.title is not None:
                observations[0] = req.title
            if req.progressNote is not None and req.progressNote not in observations[1:]:
                observations.append(req.progressNote)
            tx.update(req.actionStep, observations=observations, dueDate=req.dueDate, owner=req.owner)
            if req.progressNote is not None and req.addToCurrentReality:
                tx.append(reality_name(chart_id), f"Progress on {observations[0]}: {req.progressNote} ({tx.today})")
            return Change(chart_id, req.actionStep)

        return self._result(context, self._write(context, plan))

    def remove_action_step(self, request: Request = None, /, **fields: Any) -> RemoveResult:
        """Delete an action step and, recursively, the sub-charts telescoped from it (destructive)."""
        req = parse_request(ActionStepRef, request, fields)
        context = self._entity_context(req.actionStep, req.context)

        def plan(tx: Tx) -> Change:
            step = tx.need(req.actionStep, STEP, "action step")
            change = Change(meta(step)["chartId"], req.actionStep)
            sub = tx.index.sub_chart.get(req.actionStep)
            change.removed = [req.actionStep, *(remove_subtree(tx, sub) if sub else [])]
            change.removed_charts = tx.index.subtree(sub) if sub else []
            tx.delete(req.actionStep)
            return change

        change = self._write(context, plan)
        chart = self._view(context, change.chart_id, 0)
        return RemoveResult(
            chart=chart, removed=change.removed, removedCharts=change.removed_charts, operationId=change.operation_id
        )

    def complete_action_step(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Mark one step done (never the whole chart), with completedAt and a dated line in current reality.

        A telescoped step also completes its sub-chart. Naming a sub-chart's ``_desired_outcome``
        completes that sub-chart, which completes the step it telescopes from.
        """
        req = parse_request(ActionStepRef, request, fields)
        context = self._entity_context(req.actionStep, req.context)

        def plan(tx: Tx) -> Change:
            record = tx.get(req.actionStep)
            if record is not None and record.get("entityType") == OUTCOME:
                return self._complete_chart_plan(tx, meta(record).get("chartId") or "", context)
            step = tx.need(req.actionStep, STEP, "action step")
            change = Change(meta(step)["chartId"], req.actionStep)
            complete_step(tx, req.actionStep, change)
            return change

        return self._result(context, self._write(context, plan))

    # ------------------------------------------------------------- charts

    def update_current_reality(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Add observations (facts as they are now) to a chart's current reality; repeats are ignored."""
        req = parse_request(UpdateCurrentReality, request, fields)
        return self.update_chart(chartId=req.chartId, addToReality=req.observations, context=req.context)

    def update_desired_outcome(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Rename what the chart creates and/or move its due date (within its parent step, after its steps)."""
        req = parse_request(UpdateDesiredOutcome, request, fields)
        return self.update_chart(
            chartId=req.chartId, desiredOutcome=req.desiredOutcome, dueDate=req.dueDate, context=req.context
        )

    def complete_chart(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Mark a chart's desired outcome achieved; a sub-chart also completes the step it came from."""
        req = parse_request(ChartRef, request, fields)
        context = self._chart_context(req.chartId, req.context)
        return self._result(
            context, self._write(context, lambda tx: self._complete_chart_plan(tx, req.chartId, context))
        )

    @staticmethod
    def _complete_chart_plan(tx: Tx, chart_id: str, context: str) -> Change:
        tx.index.chart(chart_id, context)
        change = Change(chart_id)
        complete_chart(tx, chart_id, change)
        return change

    def complete(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Complete (``reopen``: reopen) an action step or a chart, named by ``target``.

        Completing completes everything below it and flows up through telescoped sub-charts whose
        last open step it was; reopening reopens the completed levels above it. Each level gets a
        dated "Completed: ..." or "Reopened: ..." line in its current reality.
        """
        req = parse_request(Complete, request, fields)
        context = self._entity_context_any(req.target, req.context)

        def plan(tx: Tx) -> Change:
            record = tx.get(req.target) or tx.get(chart_name(req.target))
            if record is not None and record.get("entityType") in (CHART, OUTCOME):
                chart_id = meta(record).get("chartId") or req.target
                change = Change(chart_id)
                (reopen_chart if req.reopen else complete_chart)(tx, chart_id, change)
                return change
            step = tx.need(req.target, STEP, "action step or chart")
            change = Change(meta(step)["chartId"], req.target)
            (reopen_step if req.reopen else complete_step)(tx, req.target, change)
            return change

        return self._result(context, self._write(context, plan))

    def update_chart(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Add facts to current reality, restate the desired outcome and/or move the due date, in one write."""
        req = parse_request(UpdateChart, request, fields)
        if not (req.addToReality or req.desiredOutcome is not None or req.dueDate is not None):
            raise InvalidInputError("nothing to change: pass addToReality, desiredOutcome and/or dueDate")
        context = self._chart_context(req.chartId, req.context)

        def plan(tx: Tx) -> Change:
            chart = tx.index.chart(req.chartId, context)
            for line in req.addToReality:
                tx.append(reality_name(req.chartId), line)
            if req.dueDate is not None:
                _check_chart_due(tx, req.chartId, chart, req.dueDate)
                tx.update(chart_name(req.chartId), dueDate=req.dueDate)
            if req.desiredOutcome is not None or req.dueDate is not None:
                outcome = tx.get(outcome_name(req.chartId)) or {}
                observations = [str(o) for o in outcome.get("observations") or []] or [""]
                if req.desiredOutcome is not None:
                    observations[0] = req.desiredOutcome
                tx.update(outcome_name(req.chartId), observations=observations, dueDate=req.dueDate)
            return Change(req.chartId)

        warnings = outcome_warnings(req.desiredOutcome or "") + [
            w for x in req.addToReality for w in reality_warnings(x)
        ]
        return self._result(context, self._write(context, plan), warnings)

    def _result(self, context: str, change: Change, warnings: list[str] | None = None) -> ChartResult:
        """The reply to a write: the chart and the step it touched as they are now, and what changed."""

        def build(viewer: Viewer) -> ChartResult:
            step = viewer.index.entities.get(change.step or "")
            return ChartResult(
                chart=viewer.chart(change.chart_id, 0),
                actionStep=viewer.step(step, 0) if step is not None else None,
                changed=change.changed,
                operationId=change.operation_id,
                added=change.added,
                completed=change.completed,
                reopened=change.reopened,
                warnings=[*(warnings or []), *change.warnings],
            )

        return self._read(context, build)


# ----------------------------------------------------------------- helpers


def _halfway(tx: Tx, chart_id: str) -> str:
    due = chart_due(tx, chart_id)
    if due is None:
        raise InvalidInputError(f"chart {chart_id!r} has no due date; pass dueDate")
    return spread_dates(tx.now, due, 1)[0]


def _check_step_due(tx: Tx, step_name: str, due: str) -> None:
    step = tx.get(step_name)
    chart_id = meta(step)["chartId"]
    check_not_later(due, chart_due(tx, chart_id), f"action step {step_name}", f"its chart {chart_id}")
    sub = tx.index.sub_chart.get(step_name)
    sub_due = chart_due(tx, sub) if sub is not None else None
    if sub_due is not None and deadline(sub_due) > deadline(due):  # type: ignore[operator]
        raise InvalidInputError(
            f"the step's sub-chart {sub} is due {sub_due}; choose {sub_due} or later for action step {step_name}, "
            "or move the sub-chart's due date first (update_chart)"
        )


def _check_chart_due(tx: Tx, chart_id: str, chart: Record, due: str) -> None:
    parent_step = meta(chart).get("parentActionStep")
    if isinstance(parent_step, str):
        check_not_later(
            due, meta(tx.get(parent_step)).get("dueDate"), f"chart {chart_id}", f"its action step {parent_step}"
        )
    latest = max(
        (s for s in tx.index.steps(chart_id) if deadline(meta(s).get("dueDate")) is not None),
        key=lambda s: deadline(meta(s).get("dueDate")),  # type: ignore[arg-type,return-value]
        default=None,
    )
    latest_due = meta(latest).get("dueDate") if latest is not None else None
    if latest_due is not None and deadline(latest_due) > deadline(due):  # type: ignore[operator]
        raise InvalidInputError(
            f"chart {chart_id}'s latest action step {latest['name']} is due {latest_due}; choose {latest_due} or later, "  # type: ignore[index]
            "or move that step first (update_action_step)"
        )
