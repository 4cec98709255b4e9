"""The session briefing: overdue steps, steps due soon, active charts; short at any store size.

Through the library (``build_brief``), the ``coaia-store brief`` command as a subprocess and the
``coaia://brief`` MCP resource.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from chartsteps import step

from coaia_store import Store, StoreConfig
from coaia_store.brief import BRIEF_BYTES, build_brief
from coaia_store.charts import Charts

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    return open_store(clock=lambda: NOW, config=StoreConfig(fsync="never"))


@pytest.fixture
def charts(store: Store) -> Charts:
    return Charts(store)


def garden(charts: Charts, context: str | None = None) -> str:
    """A chart with one overdue step, one due in 3 days, one due next month."""
    return charts.create_chart(
        desiredOutcome="A garden that feeds us",
        currentReality="A lawn",
        dueDate="2026-06-01",
        context=context,
        actionSteps=[
            {"title": "Build beds", "dueDate": "2026-02-20"},
            {"title": "Buy seeds", "dueDate": "2026-03-05"},
            {"title": "Plant", "dueDate": "2026-04-01"},
        ],
    ).chart.chartId


def test_the_brief_lists_overdue_steps_steps_due_soon_and_active_charts(charts: Charts, store: Store) -> None:
    chart_id = garden(charts, "home")
    brief = build_brief(store)
    assert [(s.title, s.actionStep, s.chart) for s in brief.overdue] == [
        ("Build beds", step(charts, chart_id, 1), "A garden that feeds us")
    ]
    assert [s.title for s in brief.dueSoon] == ["Buy seeds"]
    assert [(c.context, c.chartId, c.nextStep, c.totalSteps) for c in brief.charts] == [
        ("home", chart_id, "Build beds", 3)
    ]
    assert brief.leftOut is None


def test_the_brief_leaves_out_completed_charts_and_lists_sub_charts_only_by_their_steps(
    charts: Charts, store: Store
) -> None:
    done = garden(charts)
    charts.complete_chart(chartId=done)
    chart_id = garden(charts)
    sub = charts.telescope_action_step(
        actionStep=step(charts, chart_id, 3),
        currentReality="Nothing",
        actionSteps=[{"title": "Dig", "dueDate": "2026-03-03"}],
    ).chart.chartId
    brief = build_brief(store)
    assert [c.chartId for c in brief.charts] == [chart_id]
    assert [s.actionStep for s in brief.dueSoon] == [step(charts, sub, 1), step(charts, chart_id, 2)]


def test_the_brief_text_reads_by_section_and_context(charts: Charts, store: Store) -> None:
    chart_id = garden(charts, "home")
    text = build_brief(store).text()
    assert text.splitlines()[1] == "1 active chart, 1 overdue step, 1 step due within 7 days."
    assert f"- 2026-02-20 Build beds [home: A garden that feeds us] `{step(charts, chart_id, 1)}`" in text
    assert "### home\n- A garden that feeds us: 0% (0/3 steps), due 2026-06-01" in text


def test_the_brief_of_one_context(charts: Charts, store: Store) -> None:
    garden(charts, "home")
    work = garden(charts, "work")
    assert [c.chartId for c in build_brief(store, "work").charts] == [work]


def test_a_brief_of_200_charts_stays_under_its_bound_and_says_what_it_left_out(charts: Charts, store: Store) -> None:
    for n in range(200):
        garden(charts, f"c{n % 4}")
    brief = build_brief(store)
    assert len(brief.text().encode()) <= BRIEF_BYTES and len(brief.model_dump_json().encode()) <= BRIEF_BYTES
    assert brief.totals == {"charts": 200, "overdue": 200, "dueSoon": 200}
    assert brief.overdue and brief.dueSoon and brief.charts  # each section keeps a share
    assert brief.leftOut is not None and f"{200 - len(brief.charts)} active charts" in brief.leftOut
    assert brief.leftOut in brief.text()


# ------------------------------------------------------------------ interfaces


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "coaia_store", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_the_brief_command_prints_the_text_and_compact_json(store_dir: Path) -> None:
    chart_id = (
        Charts(Store(store_dir))
        .create_chart(
            desiredOutcome="A garden that feeds us",
            currentReality="A lawn",
            dueDate="2099-06-01",
            actionSteps=["Build beds"],
        )
        .chart.chartId
    )
    text = run("brief", "--dir", str(store_dir))
    as_json = run("brief", "--json", "--dir", str(store_dir))
    assert text.returncode == 0
    assert f"- A garden that feeds us: 0% (0/1 steps), due 2099-06-01 `{chart_id}`" in text.stdout
    assert json.loads(as_json.stdout)["charts"][0]["chartId"] == chart_id and "\n " not in as_json.stdout


def test_the_brief_of_a_store_not_yet_made_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    result = run("brief", "--dir", str(tmp_path / "none" / ".coaia"))
    assert result.returncode == 0 and "0 active charts" in result.stdout and not (tmp_path / "none").exists()


def test_a_short_brief_keeps_charts_of_every_context(charts: Charts, store: Store) -> None:
    for n in range(200):
        charts.create_chart(
            desiredOutcome="A quiet month", currentReality="Busy", dueDate="2026-12-01", context=f"c{n % 4}"
        )
    brief = build_brief(store)
    assert brief.leftOut is not None and {c.context for c in brief.charts} == {"c0", "c1", "c2", "c3"}


def test_the_size_benchmark_runs() -> None:
    script = Path(__file__).resolve().parents[1] / "bench" / "bench_history_brief.py"
    env = {**os.environ, "PYTHONPATH": str(script.parents[1])}
    result = subprocess.run(
        [sys.executable, str(script), "--charts", "16"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"moved\+archived chart, history as one timeline: \d+ events", result.stdout)
    assert "brief at 16 charts in 8 contexts" in result.stdout


def test_a_context_that_cannot_be_read_is_named_and_the_others_are_briefed(charts: Charts, store: Store) -> None:
    chart_id = garden(charts, "home")
    (store.path / "charts-odd.jsonl").mkdir()
    brief = build_brief(store)
    assert [c.chartId for c in brief.charts] == [chart_id]
    assert brief.unreadable == [
        "odd (charts-odd.jsonl is a directory, not a file of records; coaia-store skips it. "
        "What to do: move it out of .coaia/ (nothing in it is read))"
    ]
    assert "Could not read: odd (" in brief.text()
