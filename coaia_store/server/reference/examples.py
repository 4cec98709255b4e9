"""The examples of the tool reference: one example call per tool, and the small example store they run
against, with a fixed clock, a disk of fixed size and counted (not random) chart ids."""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ...charts import Charts
from ...charts import rules as chart_rules
from ...storage.fileio import FileIO
from ...store import Store

START = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)
DOC_DIR = "/home/me/project/.coaia"
CHART_ID = "{chart}"
STEP_1, STEP_2 = "{chart}_action_1_00000001", "{chart}_action_2_00000002"

# One example call per tool (per profile variant). A tool not listed here gets a call built from its
# required arguments (see collect._guess_arguments); write one here when that is not a good example.
EXAMPLES: dict[str, dict[str, Any]] = {
    # chart tools
    "create_chart": {
        "desiredOutcome": "A cabin by the lake that sleeps six",
        "currentReality": "We own the land; no plans yet",
        "dueDate": "2027-09-30",
        "actionSteps": ["Draw plans", {"title": "Pour foundation", "dueDate": "2027-05-01", "owner": "Sam"}],
        "context": "personal",
    },
    "add_action_steps": {
        "chartId": CHART_ID,
        "actionSteps": [{"title": "Order seed potatoes", "dueDate": "2027-03-01"}],
    },
    "update_action_step": {"actionStep": STEP_1, "note": "Bought the lumber", "noteToReality": True, "owner": "Ana"},
    "remove_action_step": {"actionStep": STEP_2},
    "telescope_action_step": {
        "actionStep": STEP_1,
        "currentReality": "Lumber bought, no tools yet",
        "actionSteps": ["Borrow a saw", "Cut the boards"],
    },
    "complete": {"target": STEP_2},
    "update_chart": {"chartId": CHART_ID, "addToReality": ["Compost delivered"], "dueDate": "2027-07-01"},
    "move_chart": {"chartId": "{done_chart}", "toContext": "completed"},
    "get_chart": {"chartId": CHART_ID, "depth": 1},
    "list_charts": {"status": "active"},
    "advancement_report": {"windowDays": 30},
    # graph tools
    "create_entity": {
        "entities": [{"name": "grace", "entityType": "person", "observations": ["Reviews the billing code"]}],
        "context": "work",
    },
    "add_relation": {
        "relations": [{"from": "ada", "to": "billing-service", "relationType": "reviews"}],
        "context": "work",
    },
    "add_observations": {
        "observations": [{"entityName": "ada", "contents": ["Prefers mornings for reviews"]}],
        "context": "work",
    },
    "update_entity": {
        "name": "billing-service",
        "newName": "billing",
        "metadata": {"repo": "git@example.org:billing"},
        "context": "work",
    },
    "delete_from_graph": {
        "observations": [{"entityName": "ada", "observations": ["Leads the billing rewrite"]}],
        "relations": [{"from": "ada", "to": "billing-service", "relationType": "works_on"}],
        "context": "work",
    },
    "open_entities": {"names": ["ada"]},
    "search": {"query": "billing"},
    "read_graph": {"context": "work", "mode": "summary", "limit": 10},
    # store tools
    "storage_status": {},
    "validate_integrity": {"context": "work"},
    "backups": {"action": "list", "context": "work"},
    "history": {"chartId": CHART_ID, "limit": 5},
    "undo": {"context": "work"},
}

# The memory profile's tools take the official memory server's arguments.
MEMORY_EXAMPLES: dict[str, dict[str, Any]] = {
    "create_entities": {"entities": [{"name": "linus", "entityType": "person", "observations": ["Owns a rototiller"]}]},
    "create_relations": {
        "relations": [{"from": "grace", "to": "{chart}_desired_outcome", "relationType": "helps_with"}]
    },
    "add_observations": {"observations": [{"entityName": "grace", "contents": ["Free on Saturdays"]}]},
    "delete_entities": {"entityNames": ["grace"]},
    "delete_observations": {"deletions": [{"entityName": "grace", "observations": ["Grows tomatoes"]}]},
    "delete_relations": {
        "relations": [{"from": "ada", "to": "billing-service", "relationType": "works_on"}],
        "context": "work",
    },
    "read_graph": {"context": "work"},
    "search_nodes": {"query": "mornings"},
    "open_nodes": {"names": ["grace"]},
}

# Values used to fill the required arguments of a tool without an example.
GUESSES: dict[str, Any] = {
    "chartId": CHART_ID,
    "actionStep": STEP_1,
    "name": "ada",
    "names": ["ada"],
    "query": "billing",
    "context": "work",
    "title": "A new step",
    "observations": ["A new fact"],
}


# ----------------------------------------------------------------------------------------- the example store


class FixedClock:
    """Starts at ``START`` and moves one second per reading, so times are stable and ordered."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> datetime:
        return START + timedelta(seconds=next(self._ticks))


class DocDisk(FileIO):
    """A disk of fixed size and free space, so ``storage_status``'s capacity is stable on the page."""

    def disk_usage(self, path: str | Path) -> tuple[int, int]:
        return 100 << 30, 40 << 30


class _CountingSecrets:
    """Stands in for ``secrets`` in id generation: chart ids end ``000000000001``, ``000000000002``, ...;
    step names, counted apart, ``00000001``, ``00000002``, ..."""

    def __init__(self) -> None:
        self._counters: dict[int, itertools.count[int]] = {}

    def token_hex(self, nbytes: int) -> str:
        return f"{next(self._counters.setdefault(nbytes, itertools.count(1))):0{nbytes * 2}x}"


@contextlib.contextmanager
def deterministic_chart_ids() -> Iterator[None]:
    original = chart_rules.secrets
    chart_rules.secrets = _CountingSecrets()  # type: ignore[assignment]
    try:
        yield
    finally:
        chart_rules.secrets = original


def seed(store: Store) -> dict[str, str]:
    """A chart in ``default`` (plus a completed one), two related people-and-project entities in ``work``,
    and a manual backup of ``work``. Returns the placeholders examples may use."""
    charts = Charts(store)
    made = charts.create_chart(
        desiredOutcome="A vegetable garden that feeds the household from June to September",
        currentReality="The yard is lawn; we have seeds and a budget of 300 EUR",
        dueDate="2027-06-01",
        actionSteps=["Build three raised beds", "Test the soil"],
    )
    done = charts.create_chart(
        desiredOutcome="A tidy shed",
        currentReality="Tools everywhere",
        dueDate="2026-12-01",
        actionSteps=["Hang the tools"],
    )
    charts.complete_chart(chartId=done.chart.chartId)
    store.create_entities([{"name": "grace", "entityType": "person", "observations": ["Grows tomatoes"]}])
    store.create_entities(
        [
            {
                "name": "ada",
                "entityType": "person",
                "observations": ["Leads the billing rewrite", "Prefers mornings for reviews"],
            },
            {
                "name": "billing-service",
                "entityType": "project",
                "observations": ["Invoices customers monthly"],
                "metadata": {"owner": "ada"},
            },
        ],
        context="work",
    )
    store.create_relations([{"from": "ada", "to": "billing-service", "relationType": "works_on"}], context="work")
    backup = store.backups.backup_context("work", "manual")
    assert backup is not None
    return {"{chart}": made.chart.chartId, "{done_chart}": done.chart.chartId, "{work_backup}": backup.id}


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, real in names.items():
            value = value.replace(key, real)
        return value
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def seed_names() -> dict[str, str]:
    """The placeholders :func:`seed` returns, as every example store has them."""
    with tempfile.TemporaryDirectory() as tmp, deterministic_chart_ids():
        with Store(Path(tmp) / ".coaia", clock=FixedClock()) as store:
            return seed(store)
