"""Charts behave as a person expects: completion flows up, reaches everything below, reopens, and warns."""

from __future__ import annotations

from typing import Any

import pytest
from test_charts import FakeClock, chain, make_chart, step_names, telescope

from coaia_store import ConflictError, InvalidInputError, Store
from coaia_store.charts import ChartResult, Charts
from coaia_store.store import validate_integrity


@pytest.fixture
def charts(store: Store) -> Charts:
    return Charts(store, clock=FakeClock())


def _chart(charts: Charts, result: ChartResult) -> Any:
    return charts.get_chart(chartId=result.chart.chartId)


def test_completing_the_deepest_last_step_completes_every_sub_chart_up_to_the_top_level_step(charts: Charts) -> None:
    levels = chain(charts, 3)
    deepest = step_names(levels[3])[0]

    result = charts.complete(target=deepest)

    assert all(_chart(charts, level).completed for level in levels[1:])
    assert _chart(charts, levels[0]).actionSteps[0].completed and not _chart(charts, levels[0]).completed
    assert [line for line in _chart(charts, levels[2]).currentReality if line.startswith("Completed:")]
    assert "complete" in result.warnings[-1] and levels[0].chart.chartId in result.warnings[-1]


def test_a_sub_chart_with_an_open_step_left_stays_open(charts: Charts) -> None:
    parent = make_chart(charts, ["Buy lumber"])
    sub = telescope(charts, step_names(parent)[0], ["Measure", "Cut"])

    charts.complete(target=step_names(sub)[0])

    assert not _chart(charts, sub).completed and not _chart(charts, parent).actionSteps[0].completed


def test_completing_a_telescoped_step_completes_everything_below_it(charts: Charts) -> None:
    levels = chain(charts, 2)

    charts.complete(target=step_names(levels[0])[0])

    for level in levels[1:]:
        view = _chart(charts, level)
        assert view.completed and all(s.completed for s in view.actionSteps)


def test_completing_a_chart_completes_its_open_steps_each_with_a_line(charts: Charts) -> None:
    chart = make_chart(charts, ["Draw plans", "Pour foundation"])

    charts.complete(target=chart.chart.chartId)

    view = _chart(charts, chart)
    assert all(s.completed for s in view.actionSteps)
    assert view.currentReality[-3:] == [
        "Completed: Draw plans (2026-01-01)",
        "Completed: Pour foundation (2026-01-01)",
        "Completed: A cabin by the lake (2026-01-01)",
    ]


def test_reopen_reopens_the_step_and_the_levels_its_completion_closed(charts: Charts) -> None:
    levels = chain(charts, 2)
    deepest = step_names(levels[2])[0]
    charts.complete(target=deepest)

    result = charts.complete(target=deepest, reopen=True)

    assert not any(_chart(charts, level).completed for level in levels)
    assert not _chart(charts, levels[0]).actionSteps[0].completed
    assert result.reopened[0] == deepest and levels[1].chart.chartId in result.reopened
    assert "Reopened: Level 2 step (2026-01-01)" in _chart(charts, levels[2]).currentReality


def test_a_step_completed_by_mistake_reopens_after_another_step_completed(charts: Charts) -> None:
    chart = make_chart(charts, ["Draw plans", "Pour foundation", "Frame walls"])
    first, second, _ = step_names(chart)
    charts.complete(target=first)
    charts.complete(target=second)

    charts.complete(target=first, reopen=True)

    steps = _chart(charts, chart).actionSteps
    assert not steps[0].completed and steps[0].completedAt is None and steps[1].completed


def test_adding_a_step_to_a_completed_chart_reopens_it_with_a_warning(charts: Charts) -> None:
    chart = make_chart(charts, ["Draw plans"])
    charts.complete(target=chart.chart.chartId)

    result = charts.add_action_steps(chartId=chart.chart.chartId, actionSteps=["Paint"])

    assert not result.chart.completed and result.reopened == [chart.chart.chartId] and "reopened" in result.warnings[0]


def test_telescoping_a_completed_step_is_refused_with_the_reopen_call(charts: Charts, store: Store) -> None:
    chart = make_chart(charts, ["Draw plans"])
    step = step_names(chart)[0]
    charts.complete(target=step)

    with pytest.raises(ConflictError, match=f'"target": "{step}", "reopen": true'):
        telescope(charts, step)


def test_an_owner_is_shown_filtered_on_and_kept_through_a_move(charts: Charts) -> None:
    chart = make_chart(charts, [{"title": "Draw plans", "owner": "Ana"}, "Pour foundation"])
    make_chart(charts, ["Other"])

    charts.move_chart(chartId=chart.chart.chartId, toContext="work")

    listed = charts.list_charts(owner="ana")
    assert [c.chartId for c in listed.charts] == [chart.chart.chartId]
    assert charts.get_chart(chartId=chart.chart.chartId).actionSteps[0].owner == "Ana"


def test_moving_a_telescoped_step_before_its_sub_chart_names_the_sub_charts_date(charts: Charts) -> None:
    chart = make_chart(charts, [{"title": "Draw plans", "dueDate": "2026-12-19"}])
    telescope(charts, step_names(chart)[0], dueDate="2026-12-19")

    with pytest.raises(InvalidInputError, match="due 2026-12-19; choose 2026-12-19 or later"):
        charts.update_action_step(actionStep=step_names(chart)[0], dueDate="2026-12-01")


def test_archiving_requires_completion_and_leaves_nothing_open_in_the_archive(charts: Charts) -> None:
    levels = chain(charts, 2)
    top = levels[0].chart.chartId
    with pytest.raises(ConflictError, match="not completed"):
        charts.move_chart(chartId=top, toContext="completed")

    charts.complete(target=top)
    charts.move_chart(chartId=top, toContext="completed")

    archived = charts.list_charts(context="completed", status="all").charts
    assert len(archived) == 3 and all(c.completed for c in archived)


def test_integrity_reports_an_open_step_under_a_completed_chart(charts: Charts, store: Store) -> None:
    chart = make_chart(charts, ["Draw plans"])
    store.update_entity({"name": f"{chart.chart.chartId}_chart", "metadata": {"completionStatus": True}})

    report = validate_integrity(store)

    assert not report.ok and "open in completed chart" in report.contexts[0].openUnderCompleted[0]
