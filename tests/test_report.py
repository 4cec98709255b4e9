"""The advancement report: how charts advanced over a window, per context (library, MCP tool, CLI, PNG).

The clock is injected: 2026-11-02 is a Monday; "now" is moved by assignment, so weeks are known in advance.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from coaia_store import Store
from coaia_store.charts import Charts
from coaia_store.charts.models import ChartView
from coaia_store.errors import CoaiaError, NotFoundError
from coaia_store.reports.advancement import AdvancementReport, ContextAdvancement, advancement_report
from coaia_store.server.app import build_server

MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(
    not HAS_MATPLOTLIB, reason="matplotlib is not installed (pip install 'coaia-store[plot]')"
)


class FakeClock:
    def __init__(self, now: datetime = MONDAY) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, days: float) -> None:
        """Move to ``days`` after MONDAY."""
        self.now = MONDAY + timedelta(days=days)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked(store_dir: Path, clock: FakeClock) -> Store:
    store = Store(store_dir, clock=clock)
    yield store  # type: ignore[misc]
    store.close()


@pytest.fixture
def charts(clocked: Store, clock: FakeClock) -> Charts:
    return Charts(clocked, clock=clock)


def new_chart(charts: Charts, *steps: str | dict[str, str], context: str | None = None) -> ChartView:
    return charts.create_chart(
        desiredOutcome="A garden that feeds us",
        currentReality="Lawn",
        dueDate="2027-06-30",
        actionSteps=list(steps) or ["Build beds"],
        context=context,
    ).chart


def step_names(chart: ChartView) -> list[str]:
    return [s.name for s in chart.actionSteps]


def weekly(row: ContextAdvancement | Any) -> dict[str, int]:
    return {w.weekStart: w.count for w in row.stepsCompletedPerWeek}


def only(report: AdvancementReport) -> ContextAdvancement:
    assert len(report.contexts) == 1
    return report.contexts[0]


# ----------------------------------------------------------------- the library


def test_steps_are_counted_in_the_week_they_were_completed(charts: Charts, clocked: Store, clock: FakeClock) -> None:
    first, second, third = step_names(new_chart(charts, "Beds", "Soil", "Seeds"))
    clock.at(2)
    charts.complete_action_step(actionStep=first)
    clock.at(15)
    charts.complete_action_step(actionStep=second)
    charts.complete_action_step(actionStep=third)
    clock.at(17)

    row = only(advancement_report(clocked, window_days=30))

    assert row.stepsCompleted == 3
    assert weekly(row) == {"2026-10-19": 0, "2026-10-26": 0, "2026-11-02": 1, "2026-11-09": 0, "2026-11-16": 2}


def test_every_week_of_the_window_is_listed_monday_first_zero_weeks_included(
    charts: Charts, clocked: Store, clock: FakeClock
) -> None:
    new_chart(charts)
    clock.at(3)

    weeks = [w.weekStart for w in only(advancement_report(clocked, window_days=90)).stepsCompletedPerWeek]

    days = [datetime.fromisoformat(w) for w in weeks]
    assert all(d.weekday() == 0 for d in days)
    assert all(b - a == timedelta(weeks=1) for a, b in zip(days, days[1:], strict=False))
    assert weeks[0] == "2026-08-03" and weeks[-1] == "2026-11-02"  # the window's first day is 2026-08-07


def test_charts_completed_in_the_window_are_counted(charts: Charts, clocked: Store, clock: FakeClock) -> None:
    done, open_ = new_chart(charts), new_chart(charts)
    clock.at(1)
    charts.complete_chart(chartId=done.chartId)

    row = only(advancement_report(clocked, window_days=7))

    assert row.chartsCompleted == 1 and open_.chartId != done.chartId


def test_overdue_steps_are_listed_with_title_and_due_date(charts: Charts, clocked: Store, clock: FakeClock) -> None:
    chart = new_chart(
        charts,
        {"title": "Test soil", "dueDate": "2026-11-05"},
        {"title": "Build beds", "dueDate": "2026-11-04"},
        {"title": "Done early", "dueDate": "2026-11-03"},
        {"title": "Later", "dueDate": "2026-12-20"},
    )
    by_title = {s.title: s.name for s in chart.actionSteps}
    charts.complete_action_step(actionStep=by_title["Done early"])
    clock.at(10)

    overdue = only(advancement_report(clocked, window_days=7)).overdueSteps

    assert [(s.title, s.dueDate, s.name) for s in overdue] == [
        ("Build beds", "2026-11-04", by_title["Build beds"]),
        ("Test soil", "2026-11-05", by_title["Test soil"]),
    ]
    assert all(s.chartId == chart.chartId and s.context == "default" for s in overdue)


def test_average_days_runs_from_step_creation_to_completion(charts: Charts, clocked: Store, clock: FakeClock) -> None:
    first, second = step_names(new_chart(charts, "Beds", "Soil"))
    clock.at(2)
    charts.complete_action_step(actionStep=first)
    clock.at(4)
    charts.complete_action_step(actionStep=second)

    assert only(advancement_report(clocked, window_days=7)).averageDaysToComplete == 3.0


def test_average_days_is_none_when_no_step_was_completed(charts: Charts, clocked: Store) -> None:
    new_chart(charts)

    assert only(advancement_report(clocked, window_days=7)).averageDaysToComplete is None


def test_the_window_leaves_out_older_completions_and_additions(
    charts: Charts, clocked: Store, clock: FakeClock
) -> None:
    (old,) = step_names(new_chart(charts, "Beds"))
    clock.at(1)
    charts.complete_action_step(actionStep=old)
    clock.at(20)
    charts.add_action_step(chartId=charts.list_charts().charts[0].chartId, title="Mulch", dueDate="2027-01-01")

    week, month = (only(advancement_report(clocked, window_days=days)) for days in (7, 30))

    assert (week.stepsCompleted, week.stepsAdded, week.averageDaysToComplete) == (0, 1, None)
    assert (month.stepsCompleted, month.stepsAdded, month.averageDaysToComplete) == (1, 2, 1.0)


def test_each_context_is_reported_separately_and_totalled(charts: Charts, clocked: Store, clock: FakeClock) -> None:
    home = step_names(new_chart(charts, "Beds", "Soil"))
    work = new_chart(charts, "Draft", {"title": "Review", "dueDate": "2026-11-03"}, context="work").actionSteps
    clock.at(1)
    for name in (*home, *(s.name for s in work if s.title == "Draft")):
        charts.complete_action_step(actionStep=name)
    clock.at(3)

    report = advancement_report(clocked, window_days=7)
    rows = {c.context: c for c in report.contexts}

    assert [(n, r.stepsCompleted, len(r.overdueSteps)) for n, r in rows.items()] == [("default", 2, 0), ("work", 1, 1)]
    assert (report.totals.stepsCompleted, report.totals.stepsAdded, len(report.totals.overdueSteps)) == (3, 4, 1)
    assert weekly(report.totals) == {"2026-10-26": 0, "2026-11-02": 3}
    assert advancement_report(clocked, window_days=7, context="work").contexts == [rows["work"]]


def test_a_completion_without_completed_at_takes_its_time_from_the_history(
    charts: Charts, clocked: Store, clock: FakeClock
) -> None:
    (name,) = step_names(new_chart(charts, "Beds"))
    clock.at(8)  # the next week
    clocked.update_entity({"name": name, "metadata": {"completionStatus": True}})  # another tool: no completedAt
    clock.at(9)

    row = only(advancement_report(clocked, window_days=30))

    assert weekly(row)["2026-11-09"] == 1 and row.averageDaysToComplete == 8.0


def test_metadata_times_win_over_the_history_after_a_move(charts: Charts, clocked: Store, clock: FakeClock) -> None:
    chart = new_chart(charts, "Beds")
    clock.at(1)
    charts.complete_action_step(actionStep=chart.actionSteps[0].name)
    clock.at(9)
    charts.move_chart(chartId=chart.chartId, toContext="work")  # in work's history everything appears today

    row = only(advancement_report(clocked, window_days=30))

    assert row.context == "work" and weekly(row)["2026-11-02"] == 1 and row.averageDaysToComplete == 1.0


def test_an_unknown_context_is_refused(charts: Charts, clocked: Store) -> None:
    new_chart(charts)

    with pytest.raises(NotFoundError, match="no context 'nowhere'"):
        advancement_report(clocked, context="nowhere")


# ----------------------------------------------------------------- the MCP tool


@pytest.mark.anyio
async def test_the_mcp_tool_returns_the_structured_report(charts: Charts, clocked: Store, clock: FakeClock) -> None:
    (name,) = step_names(new_chart(charts, "Beds"))
    clock.at(1)
    charts.complete_action_step(actionStep=name)

    async with Client(build_server(clocked, "charts")) as client:
        result = await client.call_tool("advancement_report", {"windowDays": 7})
        refused = await client.call_tool("advancement_report", {"windowDays": 8})

    report = result.structured_content
    assert not result.is_error and report is not None
    assert report["windowDays"] == 7 and report["contexts"][0]["stepsCompleted"] == 1
    assert report["totals"]["stepsCompletedPerWeek"] == [
        {"weekStart": "2026-10-26", "count": 0},
        {"weekStart": "2026-11-02", "count": 1},
    ]
    assert refused.is_error


# ----------------------------------------------------------------- the CLI and the PNG


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coaia_store", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def recent(store_dir: Path) -> Path:
    """Two days ago (real time, since the command uses the real clock): a chart, one step completed, one overdue."""
    then = datetime.now(UTC) - timedelta(days=2)
    overdue = (then - timedelta(days=3)).date().isoformat()
    with Store(store_dir, clock=lambda: then) as store:
        api = Charts(store)
        chart = api.create_chart(
            desiredOutcome="A garden",
            currentReality="Lawn",
            dueDate="2099-01-01",
            actionSteps=["Beds", {"title": "Order soil", "dueDate": overdue}],
        ).chart
        api.complete_action_step(actionStep=chart.actionSteps[-1].name)  # "Beds" (due later) sorts last
    return store_dir


def test_report_json_from_the_command_line(recent: Path) -> None:
    result = _run("report", "--dir", str(recent), "--window", "7", "--json")

    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["windowDays"] == 7
    assert (report["totals"]["stepsCompleted"], report["totals"]["stepsAdded"]) == (1, 2)
    assert [s["title"] for s in report["totals"]["overdueSteps"]] == ["Order soil"]


def test_report_table_from_the_command_line(recent: Path) -> None:
    result = _run("report", "--dir", str(recent))

    assert result.returncode == 0
    assert all(text in result.stdout for text in ("steps completed", "default", "week of", "overdue", "Order soil"))


def test_report_refuses_another_window(recent: Path) -> None:
    result = _run("report", "--dir", str(recent), "--window", "14")

    assert result.returncode == 2 and "choose 7, 30 or 90" in result.stderr


@needs_matplotlib
def test_report_plot_writes_a_png(recent: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "advancement.png"

    result = _run("report", "--dir", str(recent), "--window", "30", "--plot", str(target), "--json")

    assert result.returncode == 0 and json.loads(result.stdout)["totals"]["stepsCompleted"] == 1
    assert target.read_bytes().startswith(PNG_SIGNATURE)


def test_plotting_without_matplotlib_says_how_to_install_it(
    charts: Charts, clocked: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coaia_store.reports.plot import plot_report

    new_chart(charts)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail

    with pytest.raises(CoaiaError, match=r"pip install 'coaia-store\[plot\]'"):
        plot_report(advancement_report(clocked), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
