"""The chart tools: create, telescope, add to, update, complete, move, read and list structural tension charts.
A write replies with what it changed, not the whole chart: the tree is get_chart's job."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field, StrictBool

from ..charts import Charts
from ..charts.models import ListCharts, StepInput
from ..charts.reads import list_charts_pager
from ..graph.paging import REPLY_BUDGET
from .arguments import ChartContext, ChartId, ContextArg, Cursor, DueDate, Limit, StepName, WriteContext
from .hints import ADD, CHANGE, NEW, OVERWRITE, READ, Tool
from .replies import as_data, bounded, compact_json, recut, reply

ChartSteps = Annotated[
    list[StepInput | str],
    Field(
        description="Action steps: a title, or {title, dueDate, owner}; missing dates are spread up to the due date."
    ),
]


def chart_write(result: Any) -> CallToolResult:
    """What a chart write changed, not the whole chart: the tree is get_chart's job."""
    chart = result.chart
    data = as_data(
        {
            "chartId": chart.chartId,
            "operationId": result.operationId,
            "changed": getattr(result, "changed", True),
            "added": getattr(result, "added", None),
            "completed": getattr(result, "completed", None),
            "reopened": getattr(result, "reopened", None),
            "removed": getattr(result, "removed", None),
            "chartCompleted": chart.completed or None,
            "progress": round(chart.progress, 3),
            "nextStep": chart.nextStep.model_dump() if chart.nextStep else None,
            "warnings": getattr(result, "warnings", None),
        }
    )
    for key in ("added", "completed", "reopened", "removed"):
        data = bounded(data, key, "get_chart shows the chart's steps", REPLY_BUDGET // 4)
    return reply(data)


def _chart_view(
    charts: Charts, chart_id: str, depth: int | None, context: str | None, as_of: str | None
) -> CallToolResult:
    """The tree, as deep as asked and as fits: deeper levels are left out (with a note) when it would be too long."""
    view = charts.get_chart(chartId=chart_id, depth=depth, context=context, asOf=as_of)
    data = as_data(view)
    shown = depth
    while len(compact_json(data)) > REPLY_BUDGET and shown != 0:
        shown = 2 if shown is None else shown - 1
        data = as_data(charts.get_chart(chartId=chart_id, depth=shown, context=context, asOf=as_of))
    if shown != depth:
        data["note"] = (
            f"sub-charts below depth {shown} left out to keep the reply short; "
            "call get_chart on a step's subChartId for them"
        )
    data = bounded(data, "currentReality", "the chart's current reality is long; history shows it in pages")
    return reply(bounded(data, "actionSteps", "list_charts and get_chart on sub-charts show the rest"))


class ChartTools:
    """The chart tools over one :class:`Charts`."""

    def __init__(self, charts: Charts) -> None:
        self.charts = charts

    def tools(self) -> dict[str, Tool]:
        return {
            "create_chart": (self.create_chart, NEW),
            "telescope_action_step": (self.telescope_action_step, NEW),
            "add_action_steps": (self.add_action_steps, NEW),
            "update_action_step": (self.update_action_step, OVERWRITE),
            "remove_action_step": (self.remove_action_step, CHANGE),
            "complete": (self.complete, ADD),
            "update_chart": (self.update_chart, OVERWRITE),
            "move_chart": (self.move_chart, ADD),
            "get_chart": (self.get_chart, READ),
            "list_charts": (self.list_charts, READ),
        }

    def create_chart(
        self,
        desiredOutcome: Annotated[str, Field(description="The result you want to create (not a problem to remove).")],  # noqa: N803
        currentReality: Annotated[str, Field(description="Honest facts about where things stand now.")],  # noqa: N803
        dueDate: Annotated[str, Field(description="ISO date, or date-time with timezone.")],  # noqa: N803
        actionSteps: ChartSteps = [],  # noqa: B006, N803
        context: WriteContext = None,
    ) -> CallToolResult:
        """Create a structural tension chart (desired outcome, current reality, due date, action steps) in one
        atomic write. Returns the chartId and step names; warns when the outcome names a problem to remove."""
        return chart_write(
            self.charts.create_chart(
                desiredOutcome=desiredOutcome,
                currentReality=currentReality,
                dueDate=dueDate,
                actionSteps=actionSteps,
                context=context,
            )
        )

    def telescope_action_step(
        self,
        actionStep: StepName,  # noqa: N803
        currentReality: Annotated[str, Field(description="Where this step stands now.")],  # noqa: N803
        actionSteps: ChartSteps = [],  # noqa: B006, N803
        dueDate: DueDate = None,  # noqa: N803
        desiredOutcome: Annotated[str | None, Field(description="Omitted: the step's title.")] = None,  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Turn an action step into a sub-chart with its own current reality and steps, to plan it in detail (due
        no later than the step)."""
        return chart_write(
            self.charts.telescope_action_step(
                actionStep=actionStep,
                currentReality=currentReality,
                actionSteps=actionSteps,
                dueDate=dueDate,
                desiredOutcome=desiredOutcome,
                context=context,
            )
        )

    def add_action_steps(
        self,
        chartId: ChartId,  # noqa: N803
        actionSteps: Annotated[list[StepInput | str], Field(min_length=1, description="One or more steps.")],  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Add action steps to a chart (dueDate omitted: halfway to the chart's). Adding to a completed chart
        reopens it, with a warning."""
        return chart_write(self.charts.add_action_steps(chartId=chartId, actionSteps=actionSteps, context=context))

    def update_action_step(
        self,
        actionStep: StepName,  # noqa: N803
        title: str | None = None,
        dueDate: DueDate = None,  # noqa: N803
        owner: Annotated[str | None, Field(description="Who takes the step (a name).")] = None,
        note: Annotated[str | None, Field(description="A progress note.")] = None,
        noteToReality: Annotated[StrictBool, Field(description="Also add the dated note to current reality.")] = False,  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Retitle an action step, move its due date, set its owner, or record a progress note. To finish it use
        complete."""
        return chart_write(
            self.charts.update_action_step(
                actionStep=actionStep,
                title=title,
                dueDate=dueDate,
                owner=owner,
                progressNote=note,
                addToCurrentReality=noteToReality,
                context=context,
            )
        )

    def remove_action_step(self, actionStep: StepName, context: ChartContext = None) -> CallToolResult:  # noqa: N803
        """Delete an action step and, recursively, the sub-chart it telescopes into. Destructive."""
        return chart_write(self.charts.remove_action_step(actionStep=actionStep, context=context))

    def complete(
        self,
        target: Annotated[str, Field(description="An action step's name or a chart id.")],
        reopen: Annotated[StrictBool, Field(description="Reopen it instead.")] = False,
        context: ChartContext = None,
    ) -> CallToolResult:
        """Complete an action step or a chart, with everything below it. A sub-chart whose last step completes
        completes too, with its parent step, level by level; a top-level chart only when named. reopen: true
        reverses it, reopening the levels above."""
        return chart_write(self.charts.complete(target=target, reopen=reopen, context=context))

    def update_chart(
        self,
        chartId: ChartId,  # noqa: N803
        addToReality: Annotated[list[str], Field(description="New facts for current reality.")] = [],  # noqa: B006, N803
        desiredOutcome: Annotated[str | None, Field(description="Restated outcome.")] = None,  # noqa: N803
        dueDate: DueDate = None,  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Add facts to a chart's current reality, restate its desired outcome, or move its due date."""
        return chart_write(
            self.charts.update_chart(
                chartId=chartId,
                addToReality=addToReality,
                desiredOutcome=desiredOutcome,
                dueDate=dueDate,
                context=context,
            )
        )

    def move_chart(
        self,
        chartId: ChartId,  # noqa: N803
        toContext: Annotated[str, Field(description="Target context; 'completed' archives a completed chart.")],  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """Move a top-level chart with its sub-charts to another context, safely across files."""
        return reply(self.charts.move_chart(chartId=chartId, toContext=toContext, context=context))

    def get_chart(
        self,
        chartId: ChartId,  # noqa: N803
        depth: Annotated[int | None, Field(ge=0, description="Sub-chart levels to expand; omitted: all.")] = None,
        asOf: Annotated[str | None, Field(description="The chart as it was then (ISO date-time or date).")] = None,  # noqa: N803
        context: ChartContext = None,
    ) -> CallToolResult:
        """One chart as a tree: outcome, current reality, steps with due dates, owners and overdue flags,
        telescoped sub-charts, recursive progress at every level, and the next step due."""
        return _chart_view(self.charts, chartId, depth, context, asOf)

    def list_charts(
        self,
        status: Literal["active", "completed", "all"] = "active",
        overdue: StrictBool = False,
        dueWithinDays: Annotated[int | None, Field(ge=0)] = None,  # noqa: N803
        owner: Annotated[str | None, Field(description="Charts with an open step of this owner.")] = None,
        topLevelOnly: StrictBool = False,  # noqa: N803
        context: ContextArg = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """Chart summaries with progress and next step, across every context or one, filtered; paginated."""
        request = ListCharts(
            status=status,
            overdue=overdue,
            dueWithinDays=dueWithinDays,
            owner=owner,
            includeSubCharts=not topLevelOnly,
            context=context,
            limit=limit,
            cursor=cursor,
        )
        page = self.charts.list_charts(request)
        data = bounded(as_data(page), "charts", "page on with nextCursor")
        return reply(recut(data, "charts", list_charts_pager(request), cursor, page.total))
