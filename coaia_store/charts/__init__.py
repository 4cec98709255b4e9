"""Charts layer: structural tension charts (Robert Fritz) kept as entities of a context's graph.

``Charts(store)`` is the entry point. May import ``graph``, ``safety``, ``storage``, ``models`` and
``errors``, never store.py's ``Store`` at run time (``charts/access.py`` still does, pending a
narrower graph-layer type).
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
