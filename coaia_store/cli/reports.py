"""Reports from the command line: the session ``brief`` and the advancement ``report`` (with its plot)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .options import ContextOption, DirOption, JsonFlag, open_store
from .output import emit_json, err, out


def brief(context: ContextOption = None, as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """What to know at the start of a session, in under 2,000 tokens: overdue action steps, steps due within
    7 days, and each context's active top-level charts with progress and next step. Made for a Claude Code
    SessionStart hook (its output joins the session's context); --json prints compact JSON.

    Example: coaia-store brief --context work
    """
    from ..reports.brief import build_brief

    result = build_brief(open_store(directory), context)
    sys.stdout.write(result.model_dump_json() + "\n" if as_json else result.text())


def report(
    window: Annotated[int, typer.Option("--window", "-w", help="Days up to now: 7, 30 or 90.")] = 30,
    context: ContextOption = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot",
            show_default=False,
            help="Also draw the steps completed per week to this PNG file (needs: pip install 'coaia-store\\[plot]').",
        ),
    ] = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """How the charts advanced: steps completed per week, charts completed, steps added, overdue steps and the
    average days from a step's creation to its completion, per context.

    Example: coaia-store report --window 90 --plot advancement.png
    """
    from ..reports.advancement import WINDOWS, advancement_report

    if window not in WINDOWS:
        raise typer.BadParameter(f"{window}: choose 7, 30 or 90", param_hint="--window")
    result = advancement_report(open_store(directory), window_days=window, context=context)
    if plot is not None:
        from ..reports.plot import plot_report

        err.print(f"wrote {plot_report(result, plot)}", highlight=False)
    if as_json:
        emit_json(result)
        return
    _print_report(result)


def _print_report(result: Any) -> None:
    out.print(
        f"[bold]last {result.windowDays} days[/bold] ({result.windowStart[:10]} to {result.now[:10]})", highlight=False
    )
    if not result.contexts:
        out.print("no charts yet")
        return
    rows: list[tuple[str, Any]] = [(c.context, c) for c in result.contexts]
    if len(rows) > 1:
        rows.append(("total", result.totals))
    out.print(_totals_table(rows))
    out.print(_weekly_table(rows, result.totals.stepsCompletedPerWeek))
    for step in result.totals.overdueSteps:
        out.print(
            f"[red]overdue[/red] {escape(step.dueDate)}  {escape(step.title)}  ({escape(step.name)}, "
            f"{escape(step.context)})",
            highlight=False,
        )


def _totals_table(rows: list[tuple[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("context")
    for column in ("steps completed", "charts completed", "steps added", "overdue steps", "avg days to complete"):
        table.add_column(column, justify="right")
    for name, row in rows:
        average = "-" if row.averageDaysToComplete is None else f"{row.averageDaysToComplete:.1f}"
        table.add_row(
            escape(name),
            str(row.stepsCompleted),
            str(row.chartsCompleted),
            str(row.stepsAdded),
            str(len(row.overdueSteps)),
            average,
        )
    return table


def _weekly_table(rows: list[tuple[str, Any]], weeks: list[Any]) -> Table:
    weekly = Table("week of", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, _ in rows:
        weekly.add_column(escape(name), justify="right")
    for i, week in enumerate(weeks):
        weekly.add_row(week.weekStart, *(str(row.stepsCompletedPerWeek[i].count) for _, row in rows))
    return weekly
