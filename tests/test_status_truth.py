"""Status that tells the truth (issue 9 item 6): after a repair, status, validate and doctor agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coaia_store import Store
from coaia_store.charts import Charts

from faults import damage_line, entity


def cli(store_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coaia_store", *args, "--dir", str(store_dir)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})


def exit_codes(store_dir: Path) -> dict[str, int]:
    return {command: cli(store_dir, command).returncode for command in ("status", "validate", "doctor")}


@pytest.fixture
def chart_lost_with_a_damaged_line(store_dir: Path) -> Path:
    """A chart whose line is damaged (no backup or history holds it), and its sub-chart, whose line is intact."""
    with Store(store_dir) as store:
        store.create_entities([entity("first")])  # the day's backups hold only this
        charts = Charts(store)
        chart = charts.create_chart(desiredOutcome="A garden", currentReality="Lawn", dueDate="2027-05-01",
                                    actionSteps=["Beds"]).chart
        charts.telescope_action_step(actionStep=chart.actionSteps[0].name, currentReality="Lumber")
    damage_line(store_dir, 2)
    return store_dir


def test_after_a_repair_status_validate_and_doctor_agree(chart_lost_with_a_damaged_line: Path) -> None:
    store_dir = chart_lost_with_a_damaged_line
    assert cli(store_dir, "validate", "--fix").returncode == 3  # the orphan sub-chart stays: no repair for it

    codes = exit_codes(store_dir)

    assert codes == {"status": 3, "validate": 3, "doctor": 3}
    assert "sub-chart" in cli(store_dir, "status").stdout


def test_a_clean_store_is_healthy_for_all_three(store_dir: Path) -> None:
    with Store(store_dir) as store:
        store.create_entities([entity("a")])

    assert exit_codes(store_dir) == {"status": 0, "validate": 0, "doctor": 0}


def test_status_reports_a_dangling_relation_that_validate_reports(store_dir: Path) -> None:
    store_dir.mkdir(parents=True)
    (store_dir / "charts.jsonl").write_text('{"type":"entity","name":"a","entityType":"t","observations":[]}\n'
                                            '{"type":"relation","from":"a","to":"ghost","relationType":"knows"}\n')

    status = Store(store_dir).status()

    assert status.degraded and any("dangling relation" in p and "validate --fix" in p for p in status.problems)
