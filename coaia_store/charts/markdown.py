"""A chart as Markdown, for people and for agents reading an MCP resource."""

from __future__ import annotations

from .models import ActionStepView, ChartView

_BAR = 20


def progress_bar(fraction: float) -> str:
    filled = round(fraction * _BAR)
    return f"[{'#' * filled}{'.' * (_BAR - filled)}] {fraction:.0%}"


def chart_markdown(chart: ChartView) -> str:
    """The chart tree (as deep as ``chart`` was read) as one Markdown document."""
    return "\n".join(_chart_lines(chart, level=1)).rstrip() + "\n"


def _chart_lines(chart: ChartView, level: int) -> list[str]:
    heading = "#" * min(level, 6)
    status = "completed" if chart.completed else ("OVERDUE" if chart.overdue else "active")
    lines = [
        f"{heading} {chart.desiredOutcome}",
        "",
        f"- chart `{chart.chartId}` in context `{chart.context}`, level {chart.level}, {status}",
        f"- due {chart.dueDate or 'no date'}; progress {progress_bar(chart.progress)}"
        f" ({chart.completedSteps}/{chart.totalSteps} steps)",
    ]
    if chart.nextStep:
        lines.append(f"- next step: {chart.nextStep.title} (due {chart.nextStep.dueDate or 'no date'})")
    lines += ["", "**Current reality**", ""] + [f"- {fact}" for fact in chart.currentReality]
    lines += ["", "**Action steps**", ""] + [_step_line(step) for step in chart.actionSteps] + [""]
    for step in chart.actionSteps:
        if step.subChart is not None:
            lines += _chart_lines(step.subChart, level + 1)
    return lines


def _step_line(step: ActionStepView) -> str:
    box = "x" if step.completed else " "
    flags = " **overdue**" if step.overdue else ""
    sub = f" → sub-chart `{step.subChartId}` ({step.progress:.0%})" if step.subChartId else ""
    return f"- [{box}] {step.title} (due {step.dueDate or 'no date'}){flags}{sub} `{step.name}`"
