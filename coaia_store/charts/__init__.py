"""Structural tension charts (Robert Fritz) on top of the store: ``Charts(store)`` is the entry point."""

from .api import Charts
from .models import (
    ActionStepView,
    ChartPage,
    ChartResult,
    ChartSummary,
    ChartView,
    MoveResult,
    NextStep,
    RemoveResult,
    StepInput,
)

__all__ = [
    "ActionStepView",
    "ChartPage",
    "ChartResult",
    "ChartSummary",
    "ChartView",
    "Charts",
    "MoveResult",
    "NextStep",
    "RemoveResult",
    "StepInput",
]
