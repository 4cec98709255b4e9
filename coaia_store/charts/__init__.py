"""Charts layer: structural tension charts (Robert Fritz) kept as entities of a context's graph.

``Charts(store)`` is the entry point; it works on any graph-layer ``GraphStore`` (a ``Store`` is one).
May import ``safety``, ``graph``, ``storage``, ``models`` and ``errors``; never ``store.py`` or above.
"""

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
