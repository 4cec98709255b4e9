"""Sizes of history and briefing replies: a moved and archived chart's timeline, the brief, a page of operations.

    python bench/bench_history_brief.py                 # 200 charts for the brief
    python bench/bench_history_brief.py --charts 1000

Prints byte counts of compact JSON (as a reply carries it) and of the brief's text. Nothing here is
timed: these are sizes, the same on every machine.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime

from coaia_store import Store, StoreConfig
from coaia_store.brief import BRIEF_BYTES, build_brief
from coaia_store.charts import Charts
from coaia_store.history import History

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def moved_and_archived(store: Store) -> str:
    """A chart with 5 steps, telescoped 2 levels, moved to 'work', completed there and archived."""
    charts = Charts(store)
    chart = charts.create_chart(
        desiredOutcome="A launched product",
        currentReality="An idea",
        dueDate="2027-06-01",
        actionSteps=[f"Step {i}" for i in range(1, 6)],
    ).chart
    sub = charts.telescope_action_step(
        actionStep=chart.actionSteps[0].name, currentReality="Nothing yet", actionSteps=["a", "b", "c"]
    ).chart
    charts.telescope_action_step(actionStep=sub.actionSteps[0].name, currentReality="Zero", actionSteps=["x", "y"])
    charts.update_current_reality(chartId=chart.chartId, observations=["Team of two"])
    charts.complete_action_step(actionStep=chart.actionSteps[1].name)
    charts.move_chart(chartId=chart.chartId, toContext="work")
    charts.complete_chart(chartId=chart.chartId)
    charts.archive_chart(chartId=chart.chartId)
    return chart.chartId


def history_figures(directory: str) -> None:
    store = Store(directory, config=StoreConfig(fsync="never"))
    chart_id = moved_and_archived(store)
    history = History(store)
    whole = history.chart_history(chart_id, limit=None)
    halves = [history.chart_history(chart_id, c, limit=None) for c in store.contexts()]  # each context alone
    print(
        f"moved+archived chart, history as one timeline: {len(whole.events)} events, "
        f"{len(whole.model_dump_json())} bytes"
    )
    print(
        f"the same, each context read alone (a move as removal + re-creation, as 0.1 showed it): "
        f"{sum(len(h.events) for h in halves)} events, {sum(len(h.model_dump_json()) for h in halves)} bytes"
    )
    ops = history.operations(limit=50)
    print(
        f"operations: {ops.total}, first page {len(ops.model_dump_json())} bytes; "
        f"actions: {', '.join(op.action for op in ops.operations)}"
    )


def brief_figures(directory: str, count: int) -> None:
    store = Store(directory, clock=lambda: NOW, config=StoreConfig(fsync="never"))
    charts = Charts(store)
    for n in range(count):
        charts.create_chart(
            desiredOutcome=f"Outcome number {n} stated as a result",
            currentReality="Where it stands",
            dueDate="2026-06-01",
            context=f"c{n % 8}",
            actionSteps=[
                {"title": "A step already late", "dueDate": "2026-02-20"},
                {"title": "A step due this week", "dueDate": "2026-03-05"},
                {"title": "A later step", "dueDate": "2026-04-01"},
            ],
        )
    brief = build_brief(store)
    print(
        f"brief at {count} charts in 8 contexts: text {len(brief.text().encode())} bytes, "
        f"JSON {len(brief.model_dump_json().encode())} bytes (bound {BRIEF_BYTES}); "
        f"kept {len(brief.overdue)} overdue, "
        f"{len(brief.dueSoon)} due soon, {len(brief.charts)} charts of {brief.totals}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charts", type=int, default=200, help="charts in the store the brief is made of")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        history_figures(first)
        brief_figures(second, args.charts)


if __name__ == "__main__":
    main()
