"""Dates at the edges of the calendar: every interface refuses them with one clear error naming the field
and the accepted range (1000-01-01 to 9998-12-31, UTC), and every stored date is 4-digit ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from chartsteps import step
from faults import SCALE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from coaia_store import InvalidInputError, Store
from coaia_store.charts import Charts
from coaia_store.models import MAX_DAYS
from coaia_store.reports.advancement import advancement_report
from coaia_store.server.app import build_server

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
RANGE = "1000-01-01 to 9998-12-31"
OUT_OF_RANGE = [
    "9999-12-31T23:59:59-01:00",  # year 10000 once in UTC
    "0001-01-01T00:00:00+01:00",  # year 0 once in UTC
    "0999-06-01T00:00:00Z",  # was stored as "999-06-01T..." and never parsed again
    "0999-06-01",
    "9999-12-31",
]


@pytest.fixture
def charts(store: Store) -> Charts:
    return Charts(store, clock=lambda: NOW)


def _chart_ids(charts: Charts) -> set[str]:
    ids, cursor = set(), None
    while True:
        page = charts.list_charts(status="all", limit=500, cursor=cursor)
        ids |= {c.chartId for c in page.charts}
        if (cursor := page.nextCursor) is None:
            return ids


def _chart(charts: Charts, due: str = "2026-12-31") -> str:
    before = _chart_ids(charts)
    charts.create_chart(desiredOutcome="A cabin", currentReality="Land", dueDate=due, actionSteps=["Plan"])
    (created,) = _chart_ids(charts) - before
    return created


def _file_bytes(store_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(store_dir.glob("*.jsonl")))


@pytest.mark.parametrize("due", OUT_OF_RANGE)
def test_a_due_date_outside_the_calendar_is_refused_naming_the_field_and_range(charts: Charts, due: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        _chart(charts, due)

    assert "dueDate" in str(refused.value) and RANGE in str(refused.value)
    assert charts.list_charts().total == 0


@pytest.mark.parametrize("due", OUT_OF_RANGE)
def test_moving_a_step_outside_the_calendar_is_refused_and_changes_nothing(
    charts: Charts, store_dir: Path, due: str
) -> None:
    chart_id = _chart(charts)
    before = _file_bytes(store_dir)

    with pytest.raises(InvalidInputError, match=RANGE):
        charts.update_action_step(actionStep=step(charts, chart_id, 1), dueDate=due)

    assert _file_bytes(store_dir) == before


@pytest.mark.parametrize(
    ("due", "stored"),
    [
        ("1000-01-01", "1000-01-01"),
        ("1000-01-01T00:00:00Z", "1000-01-01T00:00:00.000Z"),
        ("9998-12-31T23:59:59.999Z", "9998-12-31T23:59:59.999Z"),
        ("9998-12-31T22:00:00-01:00", "9998-12-31T23:00:00.000Z"),
    ],
)
def test_the_edges_of_the_range_are_stored_as_four_digit_iso_dates(charts: Charts, due: str, stored: str) -> None:
    chart_id = _chart(charts, due)

    view = charts.get_chart(chartId=chart_id)
    assert view.dueDate == stored
    assert datetime.fromisoformat(stored.replace("Z", "+00:00")).year in (1000, 9998)


def test_due_within_days_beyond_the_calendar_is_refused_naming_the_field(charts: Charts) -> None:
    _chart(charts)

    with pytest.raises(InvalidInputError) as refused:
        charts.list_charts(dueWithinDays=2**31)

    assert "dueWithinDays" in str(refused.value) and str(MAX_DAYS) in str(refused.value)


def test_due_within_the_largest_span_finds_a_chart_due_at_the_end_of_the_range(charts: Charts) -> None:
    _chart(charts, "9998-12-31")

    assert charts.list_charts(dueWithinDays=MAX_DAYS).total == 1


@pytest.mark.parametrize("as_of", [*OUT_OF_RANGE, "0001-01-01"])
def test_as_of_outside_the_calendar_is_refused_naming_the_field_and_range(store: Store, as_of: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        store.read_graph(as_of=as_of)

    assert "asOf" in str(refused.value) and RANGE in str(refused.value)


def test_get_chart_as_of_outside_the_calendar_is_refused(charts: Charts) -> None:
    chart_id = _chart(charts)

    with pytest.raises(InvalidInputError, match=RANGE):
        charts.get_chart(chartId=chart_id, asOf="9999-12-31T23:59:59-01:00")


def test_a_stored_time_beyond_the_calendar_written_by_another_tool_is_ignored_by_reports(store: Store) -> None:
    charts = Charts(store)
    chart_id = _chart(charts, "2099-12-31")
    charts.complete_action_step(actionStep=step(charts, chart_id, 1))
    store.update_entity({"name": step(charts, chart_id, 1), "metadata": {"completedAt": "9999-12-31T23:59:59-01:00"}})

    report = advancement_report(store, window_days=30)

    assert report.totals.stepsCompleted == 1  # the time is unreadable: the step's history says when it was done


@pytest.mark.anyio
async def test_an_out_of_range_as_of_is_a_readable_tool_error_not_error_executing_tool(store: Store) -> None:
    async with Client(build_server(store, "full")) as client:
        result = await client.call_tool("read_graph", {"asOf": "0001-01-01T00:00:00+01:00"})

    assert result.is_error and "asOf" in result.content[0].text and RANGE in result.content[0].text


@pytest.mark.anyio
async def test_an_out_of_range_due_date_is_a_readable_tool_error(store: Store) -> None:
    arguments = {"desiredOutcome": "A cabin", "currentReality": "Land", "dueDate": "9999-12-31T23:59:59-01:00"}
    async with Client(build_server(store, "full")) as client:
        result = await client.call_tool("create_chart", arguments)

    assert result.is_error and "dueDate" in result.content[0].text and RANGE in result.content[0].text


_offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
_moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_offsets)


def _in_range(moment: datetime) -> bool:
    return datetime(1000, 1, 1, tzinfo=UTC) <= moment <= datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moment=_moments)
def test_any_zoned_due_date_is_refused_or_stored_as_a_four_digit_utc_date_time(
    charts: Charts, moment: datetime
) -> None:
    try:
        chart_id = _chart(charts, moment.isoformat())
    except InvalidInputError as refused:
        assert not _in_range(moment) and "dueDate" in str(refused)
        return
    stored = charts.get_chart(chartId=chart_id).dueDate
    assert _in_range(moment) and stored is not None and len(stored.split("-")[0]) == 4
    assert datetime.fromisoformat(stored) == moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moment=_moments)
def test_any_zoned_as_of_is_refused_naming_the_range_or_read(store: Store, moment: datetime) -> None:
    try:
        store.read_graph(as_of=moment.isoformat())
    except InvalidInputError as refused:
        assert not _in_range(moment) and RANGE in str(refused)
        return
    assert _in_range(moment)


@settings(max_examples=50 * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.integers(min_value=-5) | st.integers(0, 2**70))
def test_any_due_within_days_is_refused_naming_the_field_or_answered(charts: Charts, days: int) -> None:
    try:
        charts.list_charts(dueWithinDays=days)
    except InvalidInputError as refused:
        assert not 0 <= days <= MAX_DAYS and "dueWithinDays" in str(refused)
        return
    assert 0 <= days <= MAX_DAYS
