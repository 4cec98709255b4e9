"""Rich renderables for charts: a tree per chart with progress bars, due dates and overdue in red."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from rich.tree import Tree

from ..charts.models import ActionStepView, ChartView

_BAR = 20


def progress_text(fraction: float) -> Text:
    """``━━━━━━━━────────────  40%``: a bar that also reads well when piped."""
    filled = round(max(0.0, min(1.0, fraction)) * _BAR)
    return Text.assemble(("━" * filled, "green"), ("─" * (_BAR - filled), "bright_black"), f" {fraction:4.0%}")


def _due(due: str | None, overdue: bool, completed: bool) -> Text:
    if completed:
        return Text("done", style="green")
    if due is None:
        return Text("no due date", style="bright_black")
    return Text(f"OVERDUE {due}", style="bold red") if overdue else Text(f"due {due}")


def chart_label(chart: ChartView) -> Text:
    label = Text.assemble((chart.desiredOutcome, "bold"), "  ")
    label.append_text(progress_text(chart.progress))
    label.append(f" {chart.completedSteps}/{chart.totalSteps}  ")
    label.append_text(_due(chart.dueDate, chart.overdue, chart.completed))
    label.append(f"  {chart.chartId}", style="bright_black")
    return label


def _step_label(step: ActionStepView) -> Text:
    box = Text("[x] " if step.completed else "[ ] ", style="green" if step.completed else "")
    label = Text.assemble(box, step.title, "  ")
    label.append_text(progress_text(step.progress))
    label.append("  ")
    label.append_text(_due(step.dueDate, step.overdue, step.completed))
    label.append(f"  {step.name}", style="bright_black")
    return label


def add_chart(parent: Tree, chart: ChartView, *, full: bool) -> Tree:
    """``chart`` under ``parent``: its steps, each step's sub-chart nested under it; ``full`` adds reality and notes."""
    node = parent.add(chart_label(chart))
    if full:
        reality = node.add(Text("current reality", style="italic"))
        for fact in chart.currentReality:
            reality.add(Text(fact))
    for step in chart.actionSteps:
        step_node = node.add(_step_label(step))
        if full:
            for note in step.notes:
                step_node.add(Text(f"note: {note}", style="bright_black"))
        if step.subChart is not None:
            add_chart(step_node, step.subChart, full=full)
        elif step.subChartId:
            step_node.add(Text(f"sub-chart {step.subChartId} (deeper than --depth)", style="bright_black"))
    return node


def charts_tree(groups: Sequence[tuple[str, Sequence[ChartView]]]) -> Tree:
    """Every context's charts in one tree: context, then chart, then its steps and sub-charts."""
    root = Tree(Text("charts", style="bold"), guide_style="bright_black")
    for context, charts in groups:
        branch = root.add(Text(f"{context} ({len(charts)})", style="bold cyan"))
        for chart in charts:
            add_chart(branch, chart, full=False)
    return root


def chart_tree(chart: ChartView) -> Tree:
    """One chart in full: a header line, current reality, steps with their notes, sub-charts."""
    status = "completed" if chart.completed else ("OVERDUE" if chart.overdue else "active")
    root = Tree(
        Text(
            f"chart {chart.chartId} in context {chart.context!r}, level {chart.level}, {status}", style="bright_black"
        ),
        guide_style="bright_black",
    )
    add_chart(root, chart, full=True)
    return root
