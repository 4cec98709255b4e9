"""Structural tension charts: the rules of ``coaia_store.charts.Charts``, through its public API on a real store.

Also one test per bug of today's coaia servers (landscape.md 1.5 and 2.1), proving it is gone.
"""

from __future__ import annotations

import errno
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coaia_store import ConflictError, InvalidInputError, NotFoundError, StorageError, Store
from coaia_store.charts import ChartResult, Charts
from coaia_store.errors import InvalidContextError
from coaia_store.graph.contexts import context_file
from coaia_store.storage.fileio import FileIO

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, days: int) -> None:
        self.now += timedelta(days=days)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def charts(store: Store, clock: FakeClock) -> Charts:
    return Charts(store, clock=clock)


def make_chart(charts: Charts, steps: list[Any] | None = None, **fields: Any) -> ChartResult:
    values = {"desiredOutcome": "A cabin by the lake", "currentReality": "We own the land", "dueDate": "2026-12-31"}
    return charts.create_chart(
        **{**values, **fields}, actionSteps=steps if steps is not None else ["Draw plans", "Pour foundation"]
    )


def step_names(result: ChartResult) -> list[str]:
    return [s.name for s in result.chart.actionSteps]


def telescope(charts: Charts, step: str, steps: list[Any] | None = None, **fields: Any) -> ChartResult:
    return charts.telescope_action_step(
        actionStep=step, currentReality="Nothing yet", actionSteps=steps or ["Sub step"], **fields
    )


def file_lines(store: Store, context: str = "default") -> list[dict[str, Any]]:
    path = context_file(store.path, context)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def chain(charts: Charts, depth: int) -> list[ChartResult]:
    """A master chart and ``depth`` sub-charts, each telescoped from the first step of the one above."""
    results = [make_chart(charts, ["Level 0 step"])]
    for level in range(1, depth + 1):
        results.append(telescope(charts, step_names(results[-1])[0], [f"Level {level} step"]))
    return results


# ----------------------------------------------------------------- create_chart


def test_create_chart_is_one_line_on_disk(charts: Charts, store: Store) -> None:
    make_chart(charts, ["a", "b", "c"])
    lines = file_lines(store)
    assert [line["type"] for line in lines] == ["_coaia", "batch"]


def test_create_chart_stores_the_coaia_memory_entity_shape(charts: Charts, store: Store) -> None:
    result = make_chart(charts, ["Draw plans"])
    chart_id, (step,) = result.chart.chartId, step_names(result)
    types = {e.name: e.entityType for e in store.read_graph().entities}
    assert types == {
        f"{chart_id}_chart": "structural_tension_chart",
        f"{chart_id}_desired_outcome": "desired_outcome",
        f"{chart_id}_current_reality": "current_reality",
        step: "action_step",
    }
    assert re.fullmatch(rf"{chart_id}_action_1_[0-9a-f]{{8}}", step)


def test_create_chart_writes_contains_tension_and_advances_relations(charts: Charts, store: Store) -> None:
    result = make_chart(charts, ["Draw plans"])
    c, (step,) = result.chart.chartId, step_names(result)
    relations = {(r.from_, r.relationType, r.to) for r in store.read_graph().relations}
    assert relations == {
        (f"{c}_chart", "contains", f"{c}_desired_outcome"),
        (f"{c}_chart", "contains", f"{c}_current_reality"),
        (f"{c}_chart", "contains", step),
        (f"{c}_current_reality", "creates_tension_with", f"{c}_desired_outcome"),
        (step, "advances_toward", f"{c}_desired_outcome"),
    }


def test_missing_step_dates_are_spread_between_now_and_the_due_date(charts: Charts) -> None:
    steps = ["a", "b", {"title": "c", "dueDate": "2026-01-20"}]
    result = make_chart(charts, steps, dueDate="2026-01-31T09:00:00Z")  # 30 days from START: quarters of 7.5 days
    due = {s.title: s.dueDate for s in result.chart.actionSteps}
    assert due == {"a": "2026-01-08T21:00:00.000Z", "b": "2026-01-16T09:00:00.000Z", "c": "2026-01-20"}


def test_zoned_datetime_due_date_is_stored_in_utc(charts: Charts) -> None:
    result = make_chart(charts, [], dueDate="2026-06-30T17:00:00+02:00")
    assert result.chart.dueDate == "2026-06-30T15:00:00.000Z"


@pytest.mark.parametrize("bad", ["next friday", "2026-02-30", "2026-06-30T17:00:00", "", "31/12/2026"])
def test_invalid_due_dates_are_rejected_and_nothing_is_written(charts: Charts, store: Store, bad: str) -> None:
    with pytest.raises(InvalidInputError, match="dueDate"):
        make_chart(charts, dueDate=bad)
    assert file_lines(store) == []


def test_invalid_step_due_date_is_rejected(charts: Charts, store: Store) -> None:
    with pytest.raises(InvalidInputError, match="actionSteps.0.dueDate"):
        make_chart(charts, [{"title": "a", "dueDate": "soon"}])
    assert file_lines(store) == []


def test_step_due_after_the_chart_due_date_is_rejected(charts: Charts, store: Store) -> None:
    with pytest.raises(InvalidInputError, match="later than the chart"):
        make_chart(charts, [{"title": "late", "dueDate": "2027-01-05"}])
    assert file_lines(store) == []


def test_unknown_fields_are_rejected(charts: Charts) -> None:
    with pytest.raises(InvalidInputError, match="dueDat"):
        charts.create_chart(desiredOutcome="x", currentReality="y", dueDat="2026-01-01")


def test_invalid_context_is_rejected_and_nothing_is_written(charts: Charts, store: Store) -> None:
    with pytest.raises(InvalidContextError):
        make_chart(charts, context="../escape")
    assert store.contexts() == []


def test_chart_ids_never_collide_within_one_second(charts: Charts) -> None:
    ids = {make_chart(charts, []).chart.chartId for _ in range(200)}
    assert len(ids) == 200


def test_twenty_concurrent_create_chart_calls_all_persist(open_store: Callable[..., Store], clock: FakeClock) -> None:
    created: list[str] = []
    barrier = threading.Barrier(20)

    def create(i: int) -> None:
        charts = Charts(open_store(), clock=clock)
        barrier.wait()
        created.append(make_chart(charts, [f"step {i}"], desiredOutcome=f"Outcome {i}").chart.chartId)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listed = Charts(open_store(), clock=clock).list_charts(limit=100)
    assert sorted(s.chartId for s in listed.charts) == sorted(created) and len(set(created)) == 20


# ----------------------------------------------------------------- creative orientation


def test_prefix_free_stopwatch_outcome_is_not_flagged(charts: Charts) -> None:
    assert make_chart(charts, desiredOutcome="Create a prefix-free stopwatch app").warnings == []


def test_problem_language_in_the_outcome_is_a_warning_and_the_chart_is_saved(charts: Charts) -> None:
    result = make_chart(charts, desiredOutcome="Eliminate bugs")
    assert (
        "eliminate" in result.warnings[0]
        and charts.get_chart(chartId=result.chart.chartId).desiredOutcome == "Eliminate bugs"
    )


def test_readiness_in_current_reality_is_a_warning(charts: Charts) -> None:
    assert "ready to" in make_chart(charts, currentReality="I am ready to start").warnings[0]


def test_reset_to_is_not_mistaken_for_readiness(charts: Charts) -> None:
    assert make_chart(charts, currentReality="The counter was reset to zero").warnings == []


# ----------------------------------------------------------------- action steps


def test_add_action_step_defaults_its_due_date_to_halfway(charts: Charts) -> None:
    chart_id = make_chart(charts, [], dueDate="2026-01-21").chart.chartId
    result = charts.add_action_step(chartId=chart_id, title="Order windows")
    assert result.actionStep is not None and result.actionStep.dueDate == "2026-01-11"


def test_add_action_step_persists_all_its_relations(charts: Charts, store: Store) -> None:
    chart_id = make_chart(charts, []).chart.chartId
    name = charts.add_action_step(chartId=chart_id, title="Order windows").actionStep.name  # type: ignore[union-attr]
    relations = {(r.from_, r.relationType, r.to) for r in store.open_entities([name]).relations}
    assert relations == {
        (f"{chart_id}_chart", "contains", name),
        (name, "advances_toward", f"{chart_id}_desired_outcome"),
    }


def test_add_action_step_to_an_unknown_chart_is_not_found(charts: Charts) -> None:
    with pytest.raises(NotFoundError, match="chart_nope"):
        charts.add_action_step(chartId="chart_nope", title="x")


def test_add_action_step_past_the_chart_due_date_is_rejected(charts: Charts, store: Store) -> None:
    chart_id = make_chart(charts, []).chart.chartId
    before = file_lines(store)
    with pytest.raises(InvalidInputError, match="later than its chart"):
        charts.add_action_step(chartId=chart_id, title="x", dueDate="2027-02-01")
    assert file_lines(store) == before


def test_removed_step_numbers_are_not_reused(charts: Charts) -> None:
    result = make_chart(charts, ["a", "b"])
    charts.remove_action_step(actionStep=step_names(result)[1])
    added = charts.add_action_step(chartId=result.chart.chartId, title="c").actionStep
    assert added is not None and re.search(r"_action_3_[0-9a-f]{8}$", added.name)


def test_update_action_step_changes_title_due_date_and_adds_a_note(charts: Charts) -> None:
    name = step_names(make_chart(charts, ["Draw plans"]))[0]
    step = charts.update_action_step(
        actionStep=name, title="Draw final plans", dueDate="2026-03-01", progressNote="Sketches done"
    ).actionStep
    assert step is not None and (step.title, step.dueDate, step.notes) == (
        "Draw final plans",
        "2026-03-01",
        ["Sketches done"],
    )


def test_progress_note_can_be_added_to_current_reality(charts: Charts) -> None:
    name = step_names(make_chart(charts, ["Draw plans"]))[0]
    result = charts.update_action_step(actionStep=name, progressNote="Sketches done", addToCurrentReality=True)
    assert result.chart.currentReality[-1] == "Progress on Draw plans: Sketches done (2026-01-01)"


def test_update_action_step_that_changes_nothing_writes_nothing(charts: Charts, store: Store) -> None:
    name = step_names(make_chart(charts, ["Draw plans"]))[0]
    before = file_lines(store)
    result = charts.update_action_step(actionStep=name, title="Draw plans")
    assert not result.changed and file_lines(store) == before


def test_update_action_step_due_date_past_the_chart_is_rejected(charts: Charts) -> None:
    name = step_names(make_chart(charts, ["Draw plans"]))[0]
    with pytest.raises(InvalidInputError, match="later than its chart"):
        charts.update_action_step(actionStep=name, dueDate="2027-01-01")


def test_telescoped_step_cannot_move_before_its_sub_chart(charts: Charts) -> None:
    name = step_names(make_chart(charts, [{"title": "Draw plans", "dueDate": "2026-06-01"}]))[0]
    telescope(charts, name)
    with pytest.raises(InvalidInputError, match="sub-chart"):
        charts.update_action_step(actionStep=name, dueDate="2026-03-01")


def test_unknown_action_step_is_not_found(charts: Charts) -> None:
    with pytest.raises(NotFoundError, match="chart_x_action_9"):
        charts.complete_action_step(actionStep="chart_x_action_9")


def test_a_chart_entity_is_not_an_action_step(charts: Charts) -> None:
    chart_id = make_chart(charts).chart.chartId
    with pytest.raises(InvalidInputError, match="expected action step"):
        charts.update_action_step(actionStep=f"{chart_id}_chart", title="x")


# ----------------------------------------------------------------- completion


def test_completing_a_simple_step_does_not_complete_the_chart(charts: Charts) -> None:
    result = make_chart(charts, ["a", "b"])
    chart = charts.complete_action_step(actionStep=step_names(result)[0]).chart
    assert not chart.completed and (chart.completedSteps, chart.totalSteps, chart.progress) == (1, 2, 0.5)


def test_completing_a_step_adds_a_dated_line_to_a_master_charts_current_reality(charts: Charts) -> None:
    result = make_chart(charts, ["Draw plans"])
    chart = charts.complete_action_step(actionStep=step_names(result)[0]).chart
    assert chart.currentReality == ["We own the land", "Completed: Draw plans (2026-01-01)"]


def test_completing_a_step_records_completed_at(charts: Charts, clock: FakeClock) -> None:
    name = step_names(make_chart(charts, ["a"]))[0]
    clock.advance(3)
    step = charts.complete_action_step(actionStep=name).actionStep
    assert step is not None and step.completed and step.completedAt == "2026-01-04T09:00:00.000Z"


def test_completing_a_step_twice_writes_nothing_the_second_time(charts: Charts, store: Store) -> None:
    name = step_names(make_chart(charts, ["a"]))[0]
    charts.complete_action_step(actionStep=name)
    before = file_lines(store)
    assert not charts.complete_action_step(actionStep=name).changed and file_lines(store) == before


def test_completing_a_sub_chart_completes_its_step_and_notes_it_in_the_parent(charts: Charts) -> None:
    parent = make_chart(charts, ["Buy lumber", "Build walls"])
    step = step_names(parent)[0]
    sub = telescope(charts, step).chart.chartId
    charts.complete_chart(chartId=sub)
    view = charts.get_chart(chartId=parent.chart.chartId)
    assert view.actionSteps[0].completed and view.currentReality[-1] == "Completed: Buy lumber (2026-01-01)"


def test_completing_a_sub_chart_leaves_the_parent_chart_open(charts: Charts) -> None:
    parent = make_chart(charts, ["Buy lumber"])
    telescoped = telescope(charts, step_names(parent)[0])
    sub = telescoped.chart.chartId
    result = charts.complete_chart(chartId=sub)
    assert result.completed == [sub, step_names(telescoped)[0], step_names(parent)[0]]
    assert not charts.get_chart(chartId=parent.chart.chartId).completed
    assert "complete" in result.warnings[-1] and parent.chart.chartId in result.warnings[-1]


def test_completion_flows_up_through_every_telescoped_level(charts: Charts) -> None:
    levels = chain(charts, 2)
    charts.complete_chart(chartId=levels[2].chart.chartId)
    middle = charts.get_chart(chartId=levels[1].chart.chartId)
    top = charts.get_chart(chartId=levels[0].chart.chartId)
    assert middle.actionSteps[0].completed and middle.completed  # its last open step: the sub-chart completes
    assert top.actionSteps[0].completed and not top.completed  # a top-level chart waits to be completed


def test_naming_a_sub_charts_desired_outcome_completes_the_sub_chart(charts: Charts) -> None:
    parent = make_chart(charts, ["Buy lumber"])
    sub = telescope(charts, step_names(parent)[0]).chart.chartId
    result = charts.complete_action_step(actionStep=f"{sub}_desired_outcome")
    assert result.chart.completed and charts.get_chart(chartId=parent.chart.chartId).actionSteps[0].completed


def test_completing_a_telescoped_step_completes_its_sub_chart(charts: Charts) -> None:
    parent = make_chart(charts, ["Buy lumber"])
    sub = telescope(charts, step_names(parent)[0]).chart.chartId
    charts.complete_action_step(actionStep=step_names(parent)[0])
    assert charts.get_chart(chartId=sub).completed


def test_complete_chart_records_completed_at_and_a_line_in_its_reality(charts: Charts) -> None:
    chart = charts.complete_chart(chartId=make_chart(charts).chart.chartId).chart
    assert chart.completed and chart.completedAt == "2026-01-01T09:00:00.000Z"
    assert chart.currentReality[-1] == "Completed: A cabin by the lake (2026-01-01)"


# ----------------------------------------------------------------- telescoping


def test_telescoped_step_stays_one_action_step_that_owns_its_sub_chart(charts: Charts, store: Store) -> None:
    parent = make_chart(charts, ["Buy lumber"])
    step = step_names(parent)[0]
    sub = telescope(charts, step).chart
    relations = {(r.from_, r.relationType, r.to) for r in store.open_entities([step]).relations}
    assert (step, "telescopes_into", f"{sub.chartId}_chart") in relations
    assert (sub.parentChart, sub.parentActionStep, sub.level, sub.desiredOutcome) == (
        parent.chart.chartId,
        step,
        1,
        "Buy lumber",
    )


def test_sub_chart_due_date_defaults_to_its_steps(charts: Charts) -> None:
    step = step_names(make_chart(charts, [{"title": "Buy lumber", "dueDate": "2026-03-01"}]))[0]
    assert telescope(charts, step).chart.dueDate == "2026-03-01"


def test_sub_chart_due_after_its_step_is_rejected_and_nothing_written(charts: Charts, store: Store) -> None:
    step = step_names(make_chart(charts, [{"title": "Buy lumber", "dueDate": "2026-03-01"}]))[0]
    before = file_lines(store)
    with pytest.raises(InvalidInputError, match="later than its action step"):
        telescope(charts, step, dueDate="2026-03-02")
    assert file_lines(store) == before


def test_sub_chart_steps_cannot_be_due_after_the_sub_chart(charts: Charts) -> None:
    step = step_names(make_chart(charts, [{"title": "Buy lumber", "dueDate": "2026-03-01"}]))[0]
    with pytest.raises(InvalidInputError, match="later than its chart"):
        telescope(charts, step, [{"title": "late", "dueDate": "2026-04-01"}])


def test_level_comes_from_the_parent_at_depth_three_and_more(charts: Charts) -> None:
    assert [r.chart.level for r in chain(charts, 4)] == [0, 1, 2, 3, 4]


def test_telescoping_a_step_twice_is_a_conflict(charts: Charts) -> None:
    step = step_names(make_chart(charts, ["Buy lumber"]))[0]
    telescope(charts, step)
    with pytest.raises(ConflictError, match="already telescoped"):
        telescope(charts, step)


def test_telescoping_is_one_line_on_disk(charts: Charts, store: Store) -> None:
    step = step_names(make_chart(charts, ["Buy lumber"]))[0]
    before = len(file_lines(store))
    telescope(charts, step, ["a", "b"])
    assert len(file_lines(store)) == before + 1


# ----------------------------------------------------------------- progress and get_chart


def test_parent_progress_counts_telescoped_steps(charts: Charts) -> None:
    parent = make_chart(charts, ["Buy lumber", "Build walls"])
    sub = telescope(charts, step_names(parent)[0], ["a", "b"])
    charts.complete_action_step(actionStep=step_names(sub)[0])
    assert charts.get_chart(chartId=parent.chart.chartId).progress == 0.25


def test_get_chart_shows_sub_charts_deeper_than_one_level(charts: Charts) -> None:
    levels = chain(charts, 3)
    view = charts.get_chart(chartId=levels[0].chart.chartId)
    deepest = view.actionSteps[0].subChart.actionSteps[0].subChart.actionSteps[0].subChart  # type: ignore[union-attr]
    assert deepest is not None and deepest.chartId == levels[3].chart.chartId


def test_get_chart_depth_limits_the_tree(charts: Charts) -> None:
    levels = chain(charts, 2)
    first = charts.get_chart(chartId=levels[0].chart.chartId, depth=1).actionSteps[0]
    assert first.subChart is not None and first.subChart.actionSteps[0].subChart is None
    assert first.subChart.actionSteps[0].subChartId == levels[2].chart.chartId


def test_next_step_is_the_earliest_due_open_step(charts: Charts) -> None:
    result = make_chart(
        charts, [{"title": "late", "dueDate": "2026-05-01"}, {"title": "early", "dueDate": "2026-02-01"}]
    )
    charts.complete_action_step(actionStep=result.chart.actionSteps[0].name)
    next_step = charts.get_chart(chartId=result.chart.chartId).nextStep
    assert next_step is not None and next_step.title == "late"


def test_overdue_flags_follow_the_clock(charts: Charts, clock: FakeClock) -> None:
    result = make_chart(
        charts, [{"title": "a", "dueDate": "2026-01-10"}, {"title": "b", "dueDate": "2026-01-10"}], dueDate="2026-01-20"
    )
    charts.complete_action_step(actionStep=step_names(result)[0])
    clock.advance(10)
    view = charts.get_chart(chartId=result.chart.chartId)
    assert [s.overdue for s in view.actionSteps] == [False, True] and not view.overdue


def test_get_chart_of_an_unknown_id_is_not_found(charts: Charts) -> None:
    with pytest.raises(NotFoundError, match="chart_missing"):
        charts.get_chart(chartId="chart_missing")


# ----------------------------------------------------------------- removal


def test_remove_action_step_cascades_to_grandchildren(charts: Charts, store: Store) -> None:
    levels = chain(charts, 2)
    result = charts.remove_action_step(actionStep=step_names(levels[0])[0])
    remaining = {e.name for e in store.read_graph().entities}
    master = levels[0].chart.chartId
    assert remaining == {f"{master}_chart", f"{master}_desired_outcome", f"{master}_current_reality"}
    assert result.removedCharts == [levels[1].chart.chartId, levels[2].chart.chartId]


def test_remove_action_step_leaves_no_dangling_relations(charts: Charts, store: Store) -> None:
    levels = chain(charts, 2)
    charts.remove_action_step(actionStep=step_names(levels[0])[0])
    names = {e.name for e in store.read_graph().entities}
    assert all(r.from_ in names and r.to in names for r in store.read_graph().relations)


# ----------------------------------------------------------------- chart updates


def test_update_current_reality_appends_without_repeats(charts: Charts) -> None:
    chart_id = make_chart(charts).chart.chartId
    charts.update_current_reality(chartId=chart_id, observations=["Plans drawn"])
    result = charts.update_current_reality(chartId=chart_id, observations=["Plans drawn", "Permit filed"])
    assert result.chart.currentReality == ["We own the land", "Plans drawn", "Permit filed"]


def test_update_desired_outcome_replaces_text_and_due_date(charts: Charts) -> None:
    chart_id = make_chart(charts, []).chart.chartId
    chart = charts.update_desired_outcome(chartId=chart_id, desiredOutcome="A timber cabin", dueDate="2027-03-01").chart
    assert (chart.desiredOutcome, chart.dueDate) == ("A timber cabin", "2027-03-01")


def test_chart_due_date_cannot_move_before_its_steps(charts: Charts) -> None:
    chart_id = make_chart(charts, [{"title": "a", "dueDate": "2026-06-01"}]).chart.chartId
    with pytest.raises(InvalidInputError, match="action step"):
        charts.update_desired_outcome(chartId=chart_id, dueDate="2026-05-01")


def test_sub_chart_due_date_cannot_move_past_its_step(charts: Charts) -> None:
    step = step_names(make_chart(charts, [{"title": "a", "dueDate": "2026-06-01"}]))[0]
    sub = telescope(charts, step, []).chart.chartId
    with pytest.raises(InvalidInputError, match="later than its action step"):
        charts.update_desired_outcome(chartId=sub, dueDate="2026-07-01")


# ----------------------------------------------------------------- contexts and listing


def test_operations_find_a_chart_in_any_context(charts: Charts) -> None:
    chart_id = make_chart(charts, [], context="work").chart.chartId
    result = charts.add_action_step(chartId=chart_id, title="Call the client")
    assert result.chart.context == "work" and result.chart.totalSteps == 1


def test_a_chart_asked_for_in_the_wrong_context_is_not_found(charts: Charts) -> None:
    chart_id = make_chart(charts, [], context="work").chart.chartId
    with pytest.raises(NotFoundError, match="'personal'"):
        charts.get_chart(chartId=chart_id, context="personal")


def test_list_charts_spans_all_contexts(charts: Charts) -> None:
    make_chart(charts, [])
    make_chart(charts, [], context="work")
    assert sorted(s.context for s in charts.list_charts().charts) == ["default", "work"]


def test_list_charts_filters_by_status(charts: Charts) -> None:
    done = make_chart(charts, []).chart.chartId
    charts.complete_chart(chartId=done)
    open_id = make_chart(charts, []).chart.chartId
    assert [s.chartId for s in charts.list_charts().charts] == [open_id]
    assert [s.chartId for s in charts.list_charts(status="completed").charts] == [done]
    assert charts.list_charts(status="all").total == 2


def test_list_charts_due_within_days_and_overdue(charts: Charts, clock: FakeClock) -> None:
    soon = make_chart(charts, [], dueDate="2026-01-05").chart.chartId
    later = make_chart(charts, [], dueDate="2026-03-01").chart.chartId
    assert [s.chartId for s in charts.list_charts(dueWithinDays=7).charts] == [soon]
    clock.advance(10)
    assert [s.chartId for s in charts.list_charts(overdue=True).charts] == [soon]
    assert later in {s.chartId for s in charts.list_charts(dueWithinDays=60).charts}


def test_list_charts_paginates(charts: Charts) -> None:
    created = {make_chart(charts, []).chart.chartId for _ in range(5)}
    first = charts.list_charts(limit=3)
    second = charts.list_charts(limit=3, cursor=first.nextCursor)
    assert (
        first.total == 5 and second.nextCursor is None and {s.chartId for s in first.charts + second.charts} == created
    )


def test_list_charts_can_leave_out_sub_charts(charts: Charts) -> None:
    levels = chain(charts, 1)
    assert [s.chartId for s in charts.list_charts(includeSubCharts=False).charts] == [levels[0].chart.chartId]


def test_list_charts_reports_recursive_progress(charts: Charts) -> None:
    parent = make_chart(charts, ["a"])
    sub = telescope(charts, step_names(parent)[0], ["x", "y"])
    charts.complete_action_step(actionStep=step_names(sub)[0])
    summary = next(s for s in charts.list_charts().charts if s.chartId == parent.chart.chartId)
    assert summary.progress == 0.5


def test_bad_cursor_is_rejected(charts: Charts) -> None:
    with pytest.raises(InvalidInputError, match="cursor"):
        charts.list_charts(cursor="!!")


# ----------------------------------------------------------------- move and archive


class FailingWrites(FileIO):
    """Fails every write to one file while ``armed`` (as a crash right before that write would)."""

    def __init__(self, file_name: str) -> None:
        self.file_name = file_name
        self.armed = False
        self._names: dict[int, str] = {}

    def open(self, path: str | Path, flags: int, mode: int = 0o644) -> int:
        fd = super().open(path, flags, mode)
        self._names[fd] = Path(path).name
        return fd

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self.armed and self._names.get(fd) == self.file_name:
            raise OSError(errno.EIO, "injected failure")
        return super().write(fd, data)


def test_move_chart_moves_the_whole_tree(charts: Charts, store: Store) -> None:
    levels = chain(charts, 2)
    master = levels[0].chart.chartId
    result = charts.move_chart(chartId=master, toContext="work")
    view = charts.get_chart(chartId=master)
    assert result.moved and view.context == "work" and view.actionSteps[0].subChart is not None
    assert store.read_graph(context="default").entities == []


def test_moved_chart_keeps_its_relations(charts: Charts, store: Store) -> None:
    master = chain(charts, 1)[0].chart.chartId
    before = {(r.from_, r.relationType, r.to) for r in store.read_graph().relations}
    charts.move_chart(chartId=master, toContext="work")
    assert {(r.from_, r.relationType, r.to) for r in store.read_graph(context="work").relations} == before


def test_moving_a_chart_already_there_changes_nothing(charts: Charts) -> None:
    chart_id = make_chart(charts, []).chart.chartId
    charts.move_chart(chartId=chart_id, toContext="work")
    assert not charts.move_chart(chartId=chart_id, toContext="work").moved


def test_moving_a_sub_chart_is_refused(charts: Charts) -> None:
    sub = chain(charts, 1)[1].chart.chartId
    with pytest.raises(ConflictError, match="top-level"):
        charts.move_chart(chartId=sub, toContext="work")


def test_move_to_an_invalid_context_is_rejected(charts: Charts, store: Store) -> None:
    chart_id = make_chart(charts, []).chart.chartId
    with pytest.raises(InvalidContextError):
        charts.move_chart(chartId=chart_id, toContext="a/b")
    assert store.contexts() == ["default"]


def test_archive_requires_a_completed_chart(charts: Charts) -> None:
    chart_id = make_chart(charts, []).chart.chartId
    with pytest.raises(ConflictError, match="not completed"):
        charts.archive_chart(chartId=chart_id)


def test_archive_chart_moves_it_to_completed_charts_jsonl(charts: Charts, store: Store) -> None:
    chart_id = make_chart(charts, []).chart.chartId
    charts.complete_chart(chartId=chart_id)
    charts.archive_chart(chartId=chart_id)
    archived = charts.list_charts(status="completed").charts
    assert [(s.chartId, s.context) for s in archived] == [(chart_id, "completed")]
    assert (store.path / "completed-charts.jsonl").exists()


def test_a_crash_between_copy_and_delete_leaves_a_duplicate_that_a_rerun_resolves(
    open_store: Callable[..., Store], clock: FakeClock
) -> None:
    io = FailingWrites("charts.jsonl")
    charts = Charts(open_store(io=io), clock=clock)
    chart_id = make_chart(charts, ["a"]).chart.chartId
    io.armed = True
    with pytest.raises(StorageError):
        charts.move_chart(chartId=chart_id, toContext="work")
    assert sorted(s.context for s in charts.list_charts().charts) == ["default", "work"]
    io.armed = False
    assert charts.move_chart(chartId=chart_id, toContext="work").moved
    assert [s.context for s in charts.list_charts().charts] == ["work"]
