"""Charts from the command line: list them as a tree (``charts``), show one (``chart``), and the writes
``chart-create``, ``step-add``, ``step-complete`` and ``reality-add``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from . import views
from .options import ContextOption, DirOption, JsonFlag, one_of, open_store
from .output import emit_json, out

_StatusOption = Annotated[str, typer.Option("--status", "-s", help="active, completed or all.")]
_AllFlag = Annotated[bool, typer.Option("--all", help="Every context (the default).")]
_WriteContext = Annotated[
    str | None,
    typer.Option("--context", "-c", help="The chart's context (default: found in any context).", show_default=False),
]


def _charts_api(directory: str | None) -> Any:
    from ..charts import Charts

    return Charts(open_store(directory))


def all_summaries(api: Any, **filters: Any) -> list[Any]:
    """Every chart summary that matches ``filters``, sub-charts included, read page by page."""
    found, cursor = [], None
    while True:
        page = api.list_charts(limit=500, cursor=cursor, includeSubCharts=True, **filters)
        found += page.charts
        cursor = page.nextCursor
        if cursor is None:
            return found


def _confirm(result: Any, message: str, as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    out.print(message, highlight=False)
    for warning in result.warnings:
        out.print(f"[yellow]! {escape(warning)}[/yellow]", highlight=False, soft_wrap=True)


def charts(
    context: ContextOption = None,
    all_contexts: _AllFlag = False,
    status_filter: _StatusOption = "active",
    due_within: Annotated[
        int | None,
        typer.Option(
            "--due-within", min=0, help="Only charts due within N days (overdue included).", show_default=False
        ),
    ] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue charts.")] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """The charts as a tree: each chart with its action steps and their progress, sub-charts nested under
    their step, due dates, overdue in red. Default: every context, active charts.

    Example: coaia-store charts --context work --due-within 14
    """
    one_of(context, all_contexts)
    if status_filter not in ("active", "completed", "all"):
        raise typer.BadParameter(f"{status_filter!r}: choose active, completed or all", param_hint="--status")
    api = _charts_api(directory)
    summaries = all_summaries(api, context=context, status=status_filter, dueWithinDays=due_within, overdue=overdue)
    if as_json:
        emit_json({"charts": [c.model_dump(mode="json") for c in summaries], "total": len(summaries)})
        return
    if not summaries:
        out.print("no charts match (see --status, --context, --due-within, --overdue)")
        return
    listed = {(c.context, c.chartId) for c in summaries}
    roots = [c for c in summaries if (c.context, c.parentChart) not in listed]
    groups: dict[str, list[Any]] = {}
    for root in roots:
        groups.setdefault(root.context, []).append(api.get_chart(chartId=root.chartId, context=root.context))
    out.print(views.charts_tree(list(groups.items())))


def chart(
    chart_id: Annotated[str, typer.Argument(help="The chart's id, as `coaia-store charts` shows it.")],
    depth: Annotated[
        int | None,
        typer.Option("--depth", min=0, help="Levels of sub-charts to expand (default: all).", show_default=False),
    ] = None,
    context: _WriteContext = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """One chart in full: desired outcome, current reality, action steps with their notes, sub-charts.

    Example: coaia-store chart chart_20261121050656_d8f5b983fbe6 --depth 1
    """
    view = _charts_api(directory).get_chart(chartId=chart_id, depth=depth, context=context)
    if as_json:
        emit_json(view)
    else:
        out.print(views.chart_tree(view))


def chart_create(
    outcome: Annotated[str, typer.Option("--outcome", "-o", help="What you want to create, stated as the result.")],
    reality: Annotated[str, typer.Option("--reality", "-r", help="Honest facts about where things stand now.")],
    due: Annotated[str, typer.Option("--due", "-d", help="Due date: 2026-12-31 or 2026-12-31T17:00:00Z.")],
    steps: Annotated[
        list[str] | None, typer.Option("--step", help="An action step title (repeat for several).", show_default=False)
    ] = None,
    context: Annotated[str, typer.Option("--context", "-c", help="The context to create it in.")] = "default",
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Create a structural tension chart: desired outcome, current reality, due date, action steps.

    Example: coaia-store chart-create --outcome "Guide published" --reality "Outline only" --due 2026-12-31
    --step "Draft" --step "Review"
    """
    result = _charts_api(directory).create_chart(
        desiredOutcome=outcome, currentReality=reality, dueDate=due, actionSteps=steps or [], context=context
    )
    _confirm(
        result,
        f"created chart {result.chart.chartId} in context {result.chart.context!r} "
        f"({result.chart.totalSteps} steps, due {result.chart.dueDate})",
        as_json,
    )


def step_add(
    chart_id: Annotated[str, typer.Argument(help="The chart's id.")],
    title: Annotated[str, typer.Argument(help="The action step's title.")],
    due: Annotated[
        str | None, typer.Option("--due", "-d", help="Due date (default: halfway to the chart's).", show_default=False)
    ] = None,
    context: _WriteContext = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Add an action step to a chart.

    Example: coaia-store step-add chart_20261121050656_d8f5b983fbe6 "Ask two readers for feedback" --due 2026-12-01
    """
    result = _charts_api(directory).add_action_step(chartId=chart_id, title=title, dueDate=due, context=context)
    step = result.actionStep
    _confirm(result, f"added step {step.name if step else title} (due {step.dueDate if step else '?'})", as_json)


def step_complete(
    step_name: Annotated[str, typer.Argument(help="The action step's name, e.g. <chartId>_action_2.")],
    context: _WriteContext = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Mark an action step done (a telescoped step also completes its sub-chart).

    Example: coaia-store step-complete chart_20261121050656_d8f5b983fbe6_action_2
    """
    result = _charts_api(directory).complete_action_step(actionStep=step_name, context=context)
    done = ", ".join(result.completed) or f"nothing: {step_name} was already complete"
    _confirm(result, f"completed {done}; chart {result.chart.chartId} at {result.chart.progress:.0%}", as_json)


def reality_add(
    chart_id: Annotated[str, typer.Argument(help="The chart's id.")],
    facts: Annotated[list[str], typer.Argument(help="One or more facts about where things stand now.")],
    context: _WriteContext = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Add facts to a chart's current reality (repeats are ignored).

    Example: coaia-store reality-add chart_20261121050656_d8f5b983fbe6 "Draft has 3 of 5 chapters"
    """
    result = _charts_api(directory).update_current_reality(chartId=chart_id, observations=facts, context=context)
    _confirm(
        result,
        f"current reality of {chart_id}: {len(result.chart.currentReality)} facts"
        + ("" if result.changed else " (nothing new)"),
        as_json,
    )
