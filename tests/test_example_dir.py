"""The shipped .coaia.example/ directory stays loadable and healthy."""

from __future__ import annotations

import shutil
from pathlib import Path

from coaia_store import Store

EXAMPLE = Path(__file__).resolve().parent.parent / ".coaia.example"


def test_example_directory_loads_healthy_and_checksummed() -> None:
    status = Store(EXAMPLE).status()

    assert not status.degraded, status.problems
    assert {c.name for c in status.contexts} == {"work", "personal", "learning", "completed"}
    assert all(c.checksummed and c.entities for c in status.contexts)


def test_example_config_is_valid() -> None:
    assert Store(EXAMPLE).config.fsync == "always"


def test_example_charts_have_no_dangling_relations(tmp_path: Path) -> None:
    store = Store(shutil.copytree(EXAMPLE, tmp_path / ".coaia"))
    page = store.read_graph()
    names = {(e.context, e.name) for e in page.entities}

    assert all((r.context, r.to) in names and (r.context, r.from_) in names for r in page.relations)


def test_example_shows_telescoping_three_levels_deep_an_overdue_step_and_an_archived_chart() -> None:
    from coaia_store.charts import Charts

    charts = Charts(Store(EXAMPLE))
    summaries = charts.list_charts(status="all", limit=100).charts

    assert max(c.level for c in summaries) == 2
    assert any(c.context == "completed" and c.completed for c in summaries)
    work = next(c for c in summaries if c.context == "work" and c.level == 0)
    assert any(step.overdue for step in charts.get_chart(chartId=work.chartId).actionSteps)


def test_example_charts_have_a_history_to_show() -> None:
    from coaia_store.charts import Charts
    from coaia_store.history import History

    store = Store(EXAMPLE)
    sub = next(c for c in Charts(store).list_charts(context="work", limit=100).charts if c.level == 1)
    kinds = {e.kind for e in History(store).chart_history(sub.chartId, "work").events}

    assert {"chart_created", "step_telescoped", "step_note", "step_completed"} <= kinds
