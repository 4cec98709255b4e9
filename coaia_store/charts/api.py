"""``Charts``: structural tension charts over a :class:`~coaia_store.Store`.

Every operation is one ``Journal.write`` on one context, so one atomic line on disk, validated
on fresh state under that context's write lock. Moving a chart between contexts is two writes:
the copy to the target first, then the delete from the source (see :meth:`Charts.move_chart`), both
under one operation id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..graph.config import describe_validation_error
from ..graph.contexts import ARCHIVE_CONTEXT, DEFAULT_CONTEXT, validate_context_name
from ..graph.paging import Pager
from ..graph.state import RECORD_META_KEYS, GraphState, relation_key
from ..safety.history import History, parse_as_of
from ..storage.caller import check_write
from ..storage.clock import Clock
from ..storage.envelope import new_op_id
from ..storage.lines import Record
from ..store import Store
from .models import (
    ActionStepRef,
    AddActionStep,
    AddActionSteps,
    ChartPage,
    ChartRef,
    ChartResult,
    ChartSummary,
    ChartView,
    Complete,
    CreateChart,
    GetChart,
    ListCharts,
    MoveChart,
    MoveResult,
    RemoveResult,
    TelescopeActionStep,
    UpdateActionStep,
    UpdateChart,
    UpdateCurrentReality,
    UpdateDesiredOutcome,
)
from .rules import (
    check_not_later,
    deadline,
    is_overdue,
    new_chart_id,
    outcome_warnings,
    reality_warnings,
    spread_dates,
    within_days,
)
from .tree import (
    CHART,
    OUTCOME,
    STEP,
    ChartIndex,
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

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
Request = Mapping[str, Any] | BaseModel | None


def _parse(model: type[M], request: Request, fields: dict[str, Any]) -> M:
    if isinstance(request, model) and not fields:
        return request
    data = request.model_dump(exclude_unset=True) if isinstance(request, BaseModel) else dict(request or {})
    try:
        return model.model_validate({**data, **fields})
    except ValidationError as exc:
        raise InvalidInputError(f"invalid arguments: {describe_validation_error(exc)} Nothing was written.") from None


class Charts:
    """Structural tension charts (Robert Fritz) stored as a knowledge graph, one context per file.

    Each method takes a model or a mapping of its fields, or the fields as keywords:
    ``charts.create_chart(desiredOutcome=..., currentReality=..., dueDate="2026-06-30")``.
    """

    def __init__(self, store: Store, *, clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or store.clock

    # ------------------------------------------------------------- creating

    def create_chart(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """A chart with its desired outcome, current reality, due date and action steps, in one write."""
        req = _parse(CreateChart, request, fields)
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
        req = _parse(AddActionStep, request, fields)
        step = {"title": req.title, "dueDate": req.dueDate, "owner": req.owner}
        result = self.add_action_steps(chartId=req.chartId, actionSteps=[step], context=req.context)
        return result.model_copy(
            update={"actionStep": next((s for s in result.chart.actionSteps if s.name in result.added), None)}
        )

    def add_action_steps(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """One or more action steps (due dates omitted: halfway to the chart's). A completed chart reopens."""
        req = _parse(AddActionSteps, request, fields)
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
        req = _parse(TelescopeActionStep, request, fields)
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
        req = _parse(UpdateActionStep, request, fields)
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
        req = _parse(ActionStepRef, request, fields)
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
        req = _parse(ActionStepRef, request, fields)
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
        req = _parse(UpdateCurrentReality, request, fields)
        return self.update_chart(chartId=req.chartId, addToReality=req.observations, context=req.context)

    def update_desired_outcome(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Rename what the chart creates and/or move its due date (within its parent step, after its steps)."""
        req = _parse(UpdateDesiredOutcome, request, fields)
        return self.update_chart(
            chartId=req.chartId, desiredOutcome=req.desiredOutcome, dueDate=req.dueDate, context=req.context
        )

    def complete_chart(self, request: Request = None, /, **fields: Any) -> ChartResult:
        """Mark a chart's desired outcome achieved; a sub-chart also completes the step it came from."""
        req = _parse(ChartRef, request, fields)
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
        req = _parse(Complete, request, fields)
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
        req = _parse(UpdateChart, request, fields)
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

    def archive_chart(self, request: Request = None, /, **fields: Any) -> MoveResult:
        """Move a completed top-level chart (and its sub-charts) to the ``completed`` context."""
        req = _parse(ChartRef, request, fields)
        return self._move(req.chartId, ARCHIVE_CONTEXT, req.context, require_completed=True)

    def move_chart(self, request: Request = None, /, **fields: Any) -> MoveResult:
        """Move a top-level chart (and its sub-charts) to another context.

        Two writes: the copy to the target first (idempotent by chart id), then the delete from the
        source, which only goes ahead if the source still holds exactly what was copied. A crash
        between them leaves the chart in both contexts, never in neither; running the same call
        again finishes the move.
        """
        req = _parse(MoveChart, request, fields)
        target = validate_context_name(req.toContext)
        return self._move(req.chartId, target, req.context, require_completed=target == ARCHIVE_CONTEXT)

    # ------------------------------------------------------------- reading

    def get_chart(self, request: Request = None, /, **fields: Any) -> ChartView:
        """The chart as a tree (sub-charts to ``depth`` levels), with recursive progress and overdue flags."""
        req = _parse(GetChart, request, fields)
        if req.asOf is not None:
            return self._past_view(req)
        context = self._chart_context(req.chartId, req.context)
        return self._view(context, req.chartId, req.depth)

    def _past_view(self, req: GetChart) -> ChartView:
        """The chart as it was at ``req.asOf`` (overdue flags as seen then), from the context's history."""
        assert req.asOf is not None
        moment = parse_as_of(req.asOf)
        for past in History(self.store).past_graphs(req.context, req.asOf):
            if chart_name(req.chartId) in past.state.entities:
                return Viewer(ChartIndex(past.state.entities), past.context, moment).chart(req.chartId, req.depth)
        where = f"context {req.context!r}" if req.context is not None else "any context"
        raise NotFoundError(f"no chart {req.chartId!r} in {where} as of {req.asOf}")

    def list_charts(self, request: Request = None, /, **fields: Any) -> ChartPage:
        """Chart summaries across all contexts (or one), filtered and paginated."""
        req = _parse(ListCharts, request, fields)
        now = self.clock()
        contexts = self.store.contexts() if req.context is None else [validate_context_name(req.context)]
        found = [s for c in contexts for s in self._summaries(c, now) if _keep(s, req, now)]
        pager = list_charts_pager(req)
        offset = pager.offset(req.cursor, len(found))
        end = min(len(found), offset + req.limit)
        return ChartPage(charts=found[offset:end], total=len(found), nextCursor=pager.cursor(end, len(found)))

    # ------------------------------------------------------------- internals

    def _write(self, context: str, plan: Callable[[Tx], R], op_id: str | None = None) -> R:
        result, op = self._write_op(context, plan, op_id)
        if isinstance(result, Change):
            result.operation_id = op
        return result

    def _write_op(self, context: str, plan: Callable[[Tx], R], op_id: str | None = None) -> tuple[R, str | None]:
        graph = self.store.graph(context)
        now = self.clock()

        def build() -> tuple[list[Record], R]:
            tx = Tx(graph.state, graph.context, now)
            result = plan(tx)
            if isinstance(result, Change):
                result.changed = bool(tx.records())
            return tx.records(), result

        return graph.journal.write_op(build, op_id)

    def _read(self, context: str, fn: Callable[[Viewer], R]) -> R:
        now = self.clock()
        graph = self.store.graph(context)
        return graph.read(lambda state: fn(Viewer(ChartIndex(state.entities), graph.context, now)))

    def _view(self, context: str, chart_id: str, depth: int | None) -> ChartView:
        return self._read(context, lambda viewer: viewer.chart(chart_id, depth))

    def _summaries(self, context: str, now: datetime) -> list[ChartSummary]:
        def collect(viewer: Viewer) -> list[ChartSummary]:
            summaries = [viewer.summary(c) for c in viewer.index.charts]
            return sorted(summaries, key=lambda s: (s.dueDate is None, s.dueDate or "", s.chartId))

        return self._read(context, collect)

    def _result(self, context: str, change: Change, warnings: list[str] | None = None) -> ChartResult:
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

    def _entity_context(self, name: str, context: str | None) -> str:
        """The context holding entity ``name``: ``context`` if given, else the first that has it."""
        candidates = [validate_context_name(context)] if context is not None else self.store.contexts()
        for candidate in candidates:
            if self.store.graph(candidate).read(lambda state: name in state.entities):
                return candidate
        where = f"context {context!r}" if context is not None else "any context"
        raise NotFoundError(
            f"no entity named {name!r} in {where}; list_charts shows the charts and get_chart their steps"
        )

    def _entity_context_any(self, target: str, context: str | None) -> str:
        """The context holding an action step or chart named ``target``."""
        try:
            return self._entity_context(target, context)
        except NotFoundError:
            try:
                return self._chart_context(target, context)
            except NotFoundError:
                where = f"context {context!r}" if context is not None else "any context"
                raise NotFoundError(
                    f"no action step or chart {target!r} in {where}; list_charts shows the charts "
                    "and get_chart their steps"
                ) from None

    def _chart_context(self, chart_id: str, context: str | None) -> str:
        try:
            return self._entity_context(chart_name(chart_id), context)
        except NotFoundError:
            where = f"context {context!r}" if context is not None else "any context"
            raise NotFoundError(f"no chart {chart_id!r} in {where}; list_charts shows the charts") from None

    def _move(self, chart_id: str, target: str, context: str | None, *, require_completed: bool) -> MoveResult:
        source = self._move_source(chart_id, target, context)
        if source is None:
            entities, relations = self.store.graph(target).read(
                lambda state: _tree_records(ChartIndex(state.entities), state, chart_id)
            )
            return MoveResult(
                chartId=chart_id,
                fromContext=None,
                toContext=target,
                entities=len(entities),
                relations=len(relations),
                moved=False,
            )
        op_id = new_op_id()  # both writes are one operation: history shows one move, undo reverts both
        check_write(source)  # both ends before either is written: a token allowed only one changes nothing
        check_write(target)
        for _ in range(5):
            entities, relations = self._copy_plan(source, chart_id, require_completed)
            self._write(target, lambda tx: _put_all(tx, entities + relations), op_id)
            if self._write(source, lambda tx: _delete_if_unchanged(tx, chart_id, entities), op_id):
                return MoveResult(
                    chartId=chart_id,
                    fromContext=source,
                    toContext=target,
                    entities=len(entities),
                    relations=len(relations),
                    moved=True,
                    operationId=op_id,
                )
        raise ConflictError(f"chart {chart_id!r} kept changing in context {source!r} while being moved; try again")

    def _move_source(self, chart_id: str, target: str, context: str | None) -> str | None:
        """Where the chart is moved from; ``None`` when it is already only in ``target``."""
        if context is not None:
            source = self._chart_context(chart_id, context)
            return None if source == target else source
        holders = [c for c in self.store.contexts() if self._has_chart(c, chart_id)]
        if not holders:
            raise NotFoundError(f"no chart {chart_id!r} in any context; list_charts shows the charts")
        others = [c for c in holders if c != target]
        return others[0] if others else None

    def _has_chart(self, context: str, chart_id: str) -> bool:
        return bool(self.store.graph(context).read(lambda state: chart_name(chart_id) in state.entities))

    def _copy_plan(self, source: str, chart_id: str, require_completed: bool) -> tuple[list[Record], list[Record]]:
        graph = self.store.graph(source)

        def collect(state: GraphState) -> tuple[list[Record], list[Record]]:
            index = ChartIndex(state.entities)
            chart = index.chart(chart_id, source)
            if meta(chart).get("parentChart"):
                raise ConflictError(
                    f"chart {chart_id!r} is a sub-chart of {meta(chart)['parentChart']!r}; move its top-level chart"
                )
            if require_completed and meta(chart).get("completionStatus") is not True:
                raise ConflictError(
                    f"chart {chart_id!r} is not completed; complete it first "
                    f'(complete {{"target": "{chart_id}"}}), then move it to {ARCHIVE_CONTEXT!r}'
                )
            return _tree_records(index, state, chart_id)

        return graph.read(collect)


# ----------------------------------------------------------------- helpers


def list_charts_pager(req: ListCharts) -> Pager:
    """The cursors of :meth:`Charts.list_charts` with these arguments (for a caller that cuts its pages shorter)."""
    return Pager("list_charts", req.model_dump(exclude={"limit", "cursor"}))


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


def _keep(summary: ChartSummary, req: ListCharts, now: datetime) -> bool:
    if req.status != "all" and summary.completed != (req.status == "completed"):
        return False
    if not req.includeSubCharts and summary.parentChart:
        return False
    if req.overdue and not is_overdue(summary.dueDate, summary.completed, now):
        return False
    if req.owner is not None and req.owner.casefold() not in {o.casefold() for o in summary.owners}:
        return False
    return req.dueWithinDays is None or within_days(summary.dueDate, req.dueWithinDays, now)


def _strip(record: Record) -> Record:
    return {k: v for k, v in record.items() if k not in RECORD_META_KEYS}


def _tree_records(index: ChartIndex, state: GraphState, chart_id: str) -> tuple[list[Record], list[Record]]:
    """The entities of a chart's subtree and the relations between them, as they would be written."""
    names = set(index.entity_names(chart_id))
    entities = [_strip(state.entities[n]) for n in index.entity_names(chart_id)]
    keys = dict.fromkeys(k for n in names for k in state.links.get(n, ()) if k[0] in names and k[2] in names)
    return entities, [_strip(state.relations[k]) for k in keys]


def _put_all(tx: Tx, records: list[Record]) -> None:
    """Write records the target lacks or holds differently (a re-run after a crash writes nothing twice)."""
    for record in records:
        if record.get("type") == "relation":
            stored = tx.state.relations.get(relation_key(record))
        else:
            stored = tx.state.entities.get(record["name"])
        if stored is None or _strip(stored) != record:
            tx.put_copy(record)


def _delete_if_unchanged(tx: Tx, chart_id: str, copied: list[Record]) -> bool:
    """Delete the chart's subtree from the source if it is still exactly what was copied."""
    if not tx.state.entities.get(chart_name(chart_id)):
        return True
    names = tx.index.entity_names(chart_id)
    if [_strip(tx.state.entities[n]) for n in names] != copied:
        return False
    for name in names:
        tx.delete(name)
    return True
