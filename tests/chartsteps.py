"""Test helper: an action step's name by its number (names carry a random part since 0.2)."""

from __future__ import annotations

from coaia_store.charts import Charts
from coaia_store.charts.tree import step_number


def step(charts: Charts, chart_id: str, number: int) -> str:
    """The name of step ``number`` (1, 2, ...) of chart ``chart_id``."""
    return next(
        s.name for s in charts.get_chart(chartId=chart_id, depth=1).actionSteps if step_number(s.name) == number
    )
