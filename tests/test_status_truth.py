"""Status that tells the truth (issue 9 item 6): after a repair, status, validate and doctor agree."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from faults import damage_line, data_file, entity, line_spans

from coaia_store import Store
from coaia_store.charts import Charts


def cli(store_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coaia_store", *args, "--dir", str(store_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def exit_codes(store_dir: Path) -> dict[str, int]:
    return {command: cli(store_dir, command).returncode for command in ("status", "validate", "doctor")}


@pytest.fixture
def chart_lost_with_a_damaged_line(store_dir: Path) -> Path:
    """A chart whose line is damaged (no backup or history holds it), and its sub-chart, whose line is intact."""
    with Store(store_dir) as store:
        store.create_entities([entity("first")])  # the day's backups hold only this
        charts = Charts(store)
        chart = charts.create_chart(
            desiredOutcome="A garden", currentReality="Lawn", dueDate="2027-05-01", actionSteps=["Beds"]
        ).chart
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
    (store_dir / "charts.jsonl").write_text(
        '{"type":"entity","name":"a","entityType":"t","observations":[]}\n'
        '{"type":"relation","from":"a","to":"ghost","relationType":"knows"}\n'
    )

    status = Store(store_dir).status()

    assert status.degraded and any("dangling relation" in p and "validate --fix" in p for p in status.problems)


# ---------------------------------------------------------------- a file that lost what its backup holds


@pytest.fixture
def backed_up(store_dir: Path) -> str:
    """Five entities, one line each, then a manual backup of them; its id."""
    with Store(store_dir) as store:
        for name in "abcde":
            store.create_entities([entity(name)])
        taken = store.backups.backup_context()
        assert taken is not None
        return taken.id


def lost_problem(store_dir: Path) -> list[str]:
    return [p for p in Store(store_dir).status().problems if "holds" in p and "coaia-store restore" in p]


def test_a_file_truncated_to_zero_bytes_is_flagged_with_the_restore_command(store_dir: Path, backed_up: str) -> None:
    data_file(store_dir).write_bytes(b"")

    [problem] = lost_problem(store_dir)

    assert "charts.jsonl is empty" in problem and f"coaia-store restore {backed_up}" in problem
    assert cli(store_dir, "status").returncode == 3 and cli(store_dir, "validate").returncode == 3


def test_a_file_cut_at_a_line_boundary_is_flagged(store_dir: Path, backed_up: str) -> None:
    path = data_file(store_dir)
    spans = line_spans(path.read_bytes())
    os.truncate(path, spans[3][0])  # the header and two entities are left

    [problem] = lost_problem(store_dir)

    assert "was cut to" in problem and f"coaia-store restore {backed_up}" in problem


def test_a_newer_generation_that_got_the_backed_up_file_s_inode_number_is_not_a_cut(
    store_dir: Path, backed_up: str, tmp_path: Path
) -> None:
    with Store(tmp_path / "elsewhere" / ".coaia") as other:  # a compaction writes a file with a header of its own
        other.create_entities([entity("a")])
        other.compact(force=True)
        newer = data_file(other.path).read_bytes()
    path = data_file(store_dir)
    inode, size = path.stat().st_ino, path.stat().st_size
    with path.open("r+b") as file:  # what a new file given the freed inode number looks like to stat
        file.truncate(0)
        file.write(newer)

    assert path.stat().st_ino == inode and len(newer) < size
    assert lost_problem(store_dir) == []


def test_a_file_emptied_then_written_again_is_flagged_as_created_afresh(store_dir: Path, backed_up: str) -> None:
    data_file(store_dir).write_bytes(b"")
    with Store(store_dir) as store:
        store.create_entities([entity("new")])

    [problem] = lost_problem(store_dir)

    assert "was created afresh" in problem


def test_the_day_s_automatic_backup_does_not_accept_the_loss(store_dir: Path, backed_up: str) -> None:
    data_file(store_dir).write_bytes(b"")
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    with Store(store_dir, clock=lambda: tomorrow) as store:
        store.create_entities([entity("new")])  # the first write of a new day: the day's backups are due

        assert not [b for b in store.backups.list_backups() if b.time.startswith(tomorrow.date().isoformat())]
    assert lost_problem(store_dir)


def test_a_manual_backup_accepts_the_file_as_it_is(store_dir: Path, backed_up: str) -> None:
    os.truncate(data_file(store_dir), line_spans(data_file(store_dir).read_bytes())[3][0])

    assert cli(store_dir, "backup", "--context", "default").returncode == 0

    assert lost_problem(store_dir) == []


def test_a_restore_clears_it_and_brings_the_records_back(store_dir: Path, backed_up: str) -> None:
    data_file(store_dir).write_bytes(b"")
    with Store(store_dir) as store:
        store.backups.restore_backup(backed_up)

    assert lost_problem(store_dir) == [] and len(Store(store_dir).read_graph().entities) == 5


def test_compaction_and_growth_are_not_flagged(store_dir: Path, backed_up: str) -> None:
    with Store(store_dir) as store:
        store.delete_entities(["a", "b", "c"])
        store.compact()
        store.create_entities([entity("f")])

    assert lost_problem(store_dir) == [] and not Store(store_dir).status().degraded


def test_status_and_doctor_agree_on_a_daily_backup_replaced_by_a_symbolic_link(store_dir: Path) -> None:
    with Store(store_dir) as store:
        store.create_entities([entity("a")])
        [daily] = [b for b in store.backups.list_backups() if b.kind == "daily"]
    backup = store_dir / daily.file
    backup.rename(store_dir.parent / "elsewhere.jsonl.gz")
    backup.symlink_to(store_dir.parent / "elsewhere.jsonl.gz")

    assert exit_codes(store_dir) == {"status": 3, "validate": 3, "doctor": 3}
