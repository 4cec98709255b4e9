"""Inputs and results of the chart operations. Field names follow the file format (camelCase)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..models import MAX_DAYS, Name, Text
from .rules import normalize_due

DueDate = Annotated[str, AfterValidator(normalize_due)]
Context = Annotated[str | None, Field(None, description="Context holding the chart; omitted: found in any context.")]


def _nonblank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain a non-space character")
    return text


Title = Annotated[Text, AfterValidator(_nonblank)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


Owner = Annotated[Text, AfterValidator(_nonblank), Field(max_length=200)]


class StepInput(_In):
    """An action step to create: a title, an optional due date and owner (a bare string is a title)."""

    title: Title
    dueDate: DueDate | None = None
    owner: Owner | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_title(cls, value: Any) -> Any:
        return {"title": value} if isinstance(value, str) else value


class CreateChart(_In):
    desiredOutcome: Title = Field(
        description="What you want to create, stated as the result (not a problem to remove)."
    )
    currentReality: Title = Field(description="Honest facts about where things stand now, relative to the outcome.")
    dueDate: DueDate = Field(description="When the outcome is due: ISO date ('2026-12-31') or date-time with timezone.")
    actionSteps: list[StepInput] = Field([], description="Steps: titles, or {title, dueDate} objects.")
    context: Context


class AddActionStep(_In):
    chartId: Name = Field(description="The chart's id, e.g. 'chart_20261121050656_d8f5b983fbe6'.")
    title: Title
    dueDate: DueDate | None = Field(None, description="Omitted: halfway between now and the chart's due date.")
    owner: Owner | None = None
    context: Context


class AddActionSteps(_In):
    chartId: Name
    actionSteps: list[StepInput] = Field(min_length=1)
    context: Context


class UpdateActionStep(_In):
    actionStep: Name = Field(description="The action step's entity name, e.g. '<chartId>_action_2'.")
    title: Title | None = None
    dueDate: DueDate | None = None
    owner: Owner | None = None
    progressNote: Title | None = None
    addToCurrentReality: bool = Field(
        False, description="Also add the dated progress note to the chart's current reality."
    )
    context: Context


class ActionStepRef(_In):
    actionStep: Name = Field(description="The action step's entity name, e.g. '<chartId>_action_2'.")
    context: Context


class TelescopeActionStep(_In):
    actionStep: Name = Field(description="The action step to expand into a sub-chart.")
    currentReality: Title = Field(description="Where this step stands now.")
    actionSteps: list[StepInput] = []
    dueDate: DueDate | None = Field(None, description="Omitted: the action step's due date (never later).")
    desiredOutcome: Title | None = Field(None, description="Omitted: the action step's title.")
    context: Context


class UpdateCurrentReality(_In):
    chartId: Name
    observations: list[Title] = Field(min_length=1, description="New facts about the current reality.")
    context: Context


class UpdateDesiredOutcome(_In):
    chartId: Name
    desiredOutcome: Title | None = None
    dueDate: DueDate | None = None
    context: Context


class ChartRef(_In):
    chartId: Name
    context: Context


class Complete(_In):
    target: Name = Field(description="An action step's name or a chart id.")
    reopen: bool = False
    context: Context


class UpdateChart(_In):
    chartId: Name
    addToReality: list[Title] = []
    desiredOutcome: Title | None = None
    dueDate: DueDate | None = None
    context: Context


class MoveChart(_In):
    chartId: Name
    toContext: str = Field(description="The context to move the chart to, e.g. 'work'.")
    context: Context


class GetChart(_In):
    chartId: Name
    depth: int | None = Field(None, ge=0, description="Levels of sub-charts to expand; omitted: all.")
    context: Context
    asOf: str | None = Field(
        None, description="Show the chart as it was at this ISO date-time (with timezone) or date."
    )


class ListCharts(_In):
    context: Context
    status: Literal["active", "completed", "all"] = "active"
    dueWithinDays: int | None = Field(
        None, ge=0, le=MAX_DAYS, description="Due on or before now + N days (overdue included)."
    )
    overdue: bool = Field(False, description="Only charts past their due date and not completed.")
    includeSubCharts: bool = True
    owner: str | None = Field(
        None, description="Only charts with an open action step of this owner (case-insensitive)."
    )
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = None


# ---------------------------------------------------------------- results


class _Out(BaseModel):
    pass


class NextStep(_Out):
    name: str
    title: str
    dueDate: str | None


class ChartSummary(_Out):
    chartId: str
    context: str
    level: int
    parentChart: str | None = None
    desiredOutcome: str
    dueDate: str | None
    completed: bool
    overdue: bool
    progress: float = Field(description="0..1, recursive: a telescoped step counts as its sub-chart's progress.")
    completedSteps: int
    totalSteps: int
    nextStep: NextStep | None = Field(None, description="The earliest-due open action step.")
    owners: list[str] = Field([], description="Owners of the open action steps.")


class ActionStepView(_Out):
    name: str
    title: str
    dueDate: str | None
    owner: str | None = None
    completed: bool
    completedAt: str | None = None
    overdue: bool
    progress: float
    notes: list[str] = Field([], description="Progress notes, oldest first.")
    subChartId: str | None = None
    subChart: ChartView | None = Field(None, description="The telescoped sub-chart, when within the requested depth.")


class ChartView(ChartSummary):
    parentActionStep: str | None = None
    currentReality: list[str]
    completedAt: str | None = None
    createdAt: str | None = None
    actionSteps: list[ActionStepView]


class ChartResult(_Out):
    chart: ChartView
    actionStep: ActionStepView | None = None
    changed: bool = True
    operationId: str | None = Field(None, description="The operation this call wrote (for history and undo).")
    added: list[str] = Field([], description="Action steps this call created.")
    completed: list[str] = Field([], description="Action steps and charts this call marked complete.")
    reopened: list[str] = Field([], description="Action steps and charts this call reopened.")
    warnings: list[str] = []


class RemoveResult(_Out):
    chart: ChartView
    operationId: str | None = None
    removed: list[str] = Field(description="Every entity deleted: the step and its sub-charts, recursively.")
    removedCharts: list[str]


class MoveResult(_Out):
    chartId: str
    fromContext: str | None
    toContext: str
    entities: int
    relations: int
    moved: bool = Field(description="False when the chart was already (only) in the target context.")
    operationId: str | None = Field(None, description="The operation that wrote the chart into the target context.")


class ChartPage(_Out):
    charts: list[ChartSummary]
    total: int
    nextCursor: str | None = None


ActionStepView.model_rebuild()
