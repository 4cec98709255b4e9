"""validate_integrity: what it finds, what repair changes, and that a second repair changes nothing."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coaia_store import Store
from coaia_store.charts import Charts
from coaia_store.store import validate_integrity


def _legacy(store_dir: Path, *lines: str) -> None:
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / "charts.jsonl").write_text("\n".join(lines) + "\n")


def test_a_healthy_store_is_ok(store: Store) -> None:
    Charts(store).create_chart(
        desiredOutcome="A garden", currentReality="Lawn", dueDate="2027-05-01", actionSteps=["Beds"]
    )

    report = validate_integrity(store)

    assert report.ok and report.contexts[0].linesRead == 2 and report.contexts[0].recordsApplied > 3


def test_relations_to_missing_entities_are_reported(store_dir: Path) -> None:
    _legacy(
        store_dir,
        '{"type":"entity","name":"a","entityType":"t","observations":[]}',
        '{"type":"relation","from":"a","to":"ghost","relationType":"knows"}',
    )

    report = validate_integrity(Store(store_dir))

    assert not report.ok and report.contexts[0].danglingRelations == ["a -[knows]-> ghost"]


def test_repair_removes_dangling_relations_and_logs_it(store_dir: Path) -> None:
    _legacy(
        store_dir,
        '{"type":"entity","name":"a","entityType":"t","observations":[]}',
        '{"type":"relation","from":"a","to":"ghost","relationType":"knows"}',
    )
    store = Store(store_dir)

    repaired = validate_integrity(store, repair=True)

    assert repaired.ok and repaired.contexts[0].repairs[1:] == ["removed dangling relation a -[knows]-> ghost"]
    assert any(e.get("action") == "removed dangling relation a -[knows]-> ghost" for e in store.recovery.entries())


def test_a_second_repair_changes_nothing(store_dir: Path) -> None:
    _legacy(
        store_dir,
        '{"type":"entity","name":"a","entityType":"t","observations":[]}',
        '{"type":"relation","from":"a","to":"ghost","relationType":"knows"}',
    )
    store = Store(store_dir)
    validate_integrity(store, repair=True)
    size = (store_dir / "charts.jsonl").stat().st_size

    again = validate_integrity(store, repair=True)

    assert again.contexts[0].repairs == [] and (store_dir / "charts.jsonl").stat().st_size == size


def test_a_torn_tail_is_reported_then_cut_by_repair(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    with (store_dir / "charts.jsonl").open("ab") as f:
        f.write(b'{"type":"entity","na')

    found = validate_integrity(Store(store_dir))
    repaired = validate_integrity(Store(store_dir), repair=True)

    assert found.contexts[0].tornTail is not None and not found.ok
    assert repaired.ok and "torn tail" in repaired.contexts[0].repairs[-1]
    assert (store_dir / "charts.jsonl").read_bytes().endswith(b"}\n")


def test_damaged_lines_are_reported_with_their_numbers_and_checksum_failures(damaged_store_dir: Path) -> None:
    ctx = validate_integrity(Store(damaged_store_dir)).contexts[0]

    assert [d.line for d in ctx.damagedLines] == [2] and ctx.checksumFailures == 1


def test_a_sub_chart_whose_parent_chart_is_gone_is_an_orphan(store: Store) -> None:
    charts = Charts(store)
    chart = charts.create_chart(
        desiredOutcome="A garden", currentReality="Lawn", dueDate="2027-05-01", actionSteps=["Beds"]
    ).chart
    sub = charts.telescope_action_step(actionStep=chart.actionSteps[0].name, currentReality="Lumber").chart
    store.delete_entities([f"{chart.chartId}_chart", chart.actionSteps[0].name])

    assert validate_integrity(store).contexts[0].orphanSubCharts == [sub.chartId]


def test_a_step_due_after_its_chart_breaks_the_timeline(store: Store) -> None:
    chart = (
        Charts(store)
        .create_chart(desiredOutcome="A garden", currentReality="Lawn", dueDate="2027-05-01", actionSteps=["Beds"])
        .chart
    )
    step = chart.actionSteps[0].name
    store.update_entity({"name": step, "metadata": {"dueDate": "2027-06-01"}})

    violations = validate_integrity(store).contexts[0].timelineViolations

    assert violations == [f"action step {step} is due after its chart {chart.chartId}"]


def test_repair_keeps_the_old_file_then_rewrites_without_the_damaged_line(damaged_store_dir: Path) -> None:
    fresh = Store(damaged_store_dir)

    repaired = validate_integrity(fresh, repair=True)

    assert repaired.ok and "damaged line" in repaired.contexts[0].repairs[0]
    assert list((damaged_store_dir / "history" / "charts").glob("*.jsonl.gz"))
    assert sorted(e.name for e in fresh.read_graph().entities) == ["a", "b"]  # a: from the day's backup
    assert list((damaged_store_dir / ".recovery" / "quarantine").glob("charts.jsonl.*.bin"))
    assert validate_integrity(fresh, repair=True).contexts[0].repairs == []


# ---------------------------------------------------------------- partial recovery from backups and history


def _damage_entity_lines(store_dir: Path, name: str) -> None:
    """Break the checksum of every line of charts.jsonl that writes entity ``name``."""
    path = store_dir / "charts.jsonl"
    marker = f'"name":"{name}"'.encode()
    path.write_bytes(
        b"".join(line.replace(marker, marker.upper()) for line in path.read_bytes().splitlines(keepends=True))
    )


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _restorations(store: Store) -> list[dict[str, Any]]:
    return [e for e in store.recovery.entries() if str(e.get("action", "")).startswith("restored ")]


def _names(store: Store) -> set[str]:
    return {e.name for e in store.read_graph().entities}


def test_repair_restores_an_entity_lost_with_a_damaged_line_from_the_newest_backup(
    store: Store, store_dir: Path
) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.create_entities([{"name": "b", "entityType": "t"}])
    backup = store.backups.backup_context(None, "manual")
    assert backup is not None
    _damage_entity_lines(store_dir, "a")
    fresh = Store(store_dir)

    repaired = validate_integrity(fresh, repair=True)

    assert repaired.ok and _names(fresh) == {"a", "b"}
    assert [(e["action"], e["source"]) for e in _restorations(fresh)] == [
        (f"restored entity a from backup {backup.id}", f"backup {backup.id}")
    ]


def test_repair_restores_a_lost_entity_from_history_when_there_is_no_backup(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.create_entities([{"name": "b", "entityType": "t"}])
    store.compact()
    shutil.rmtree(store_dir / ".backup")
    _damage_entity_lines(store_dir, "a")
    fresh = Store(store_dir)

    validate_integrity(fresh, repair=True)

    assert _names(fresh) == {"a", "b"}
    assert [e["source"].startswith("history history/charts/") for e in _restorations(fresh)] == [True]


def test_repair_does_not_resurrect_an_entity_deleted_after_the_backup(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.create_entities([{"name": "b", "entityType": "t"}])
    store.backups.backup_context(None, "manual")
    store.delete_entities(["a"])
    _damage_entity_lines(store_dir, "b")
    fresh = Store(store_dir)

    validate_integrity(fresh, repair=True)

    assert _names(fresh) == {"b"}


def test_repair_restores_the_newest_copy_between_backup_and_history(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "x", "entityType": "t", "observations": ["old"]}])
    store.backups.backup_context(None, "manual")
    store.add_observations([{"entityName": "x", "contents": ["new"]}])
    store.compact()  # history/ holds x with "new"; so does the pre-compaction backup, which we break
    [pre_compaction] = [b for b in store.backups.list_backups() if b.kind == "pre-compaction"]
    _flip_a_byte(store_dir / pre_compaction.file)
    store.create_entities([{"name": "y", "entityType": "t"}])  # a damaged last line would count as a torn tail
    _damage_entity_lines(store_dir, "x")
    fresh = Store(store_dir)

    validate_integrity(fresh, repair=True)

    assert fresh.open_entities(["x"]).entities[0].observations == ["old", "new"]
    assert _restorations(fresh)[0]["source"].startswith("history ")


def test_repair_twice_changes_nothing_the_second_time(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.create_entities([{"name": "b", "entityType": "t"}])
    store.backups.backup_context(None, "manual")
    _damage_entity_lines(store_dir, "a")
    fresh = Store(store_dir)
    validate_integrity(fresh, repair=True)
    before = (store_dir / "charts.jsonl").read_bytes()

    again = validate_integrity(fresh, repair=True)

    assert again.contexts[0].repairs == [] and (store_dir / "charts.jsonl").read_bytes() == before


def test_the_report_shows_the_last_daily_and_weekly_backups_and_that_they_verify(open_store: Any) -> None:
    store = open_store(clock=lambda: datetime(2026, 11, 16, 9, 0, tzinfo=UTC))
    store.create_entities([{"name": "a", "entityType": "t"}])

    ctx = validate_integrity(store).contexts[0]

    assert ctx.lastDaily is not None and ctx.lastDaily.id == "daily/charts-2026-11-16"
    assert ctx.lastWeekly is not None and ctx.lastWeekly.id == "weekly/charts-2026-W47"
    assert ctx.backupsVerified is True and ctx.ok


def test_a_store_without_backups_yet_is_ok(store_dir: Path) -> None:
    _legacy(store_dir, '{"type":"entity","name":"a","entityType":"t","observations":[]}')

    report = validate_integrity(Store(store_dir))

    assert report.ok and report.contexts[0].backupsVerified is None and report.contexts[0].lastDaily is None


def test_a_corrupted_backup_makes_the_report_not_ok_and_names_it(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    [daily] = [b for b in store.backups.list_backups() if b.kind == "daily"]
    _flip_a_byte(store_dir / daily.file)

    report = validate_integrity(store)

    assert not report.ok and report.contexts[0].backupsVerified is False
    assert [p.startswith(f"backup {daily.id} does not verify") for p in report.contexts[0].backupProblems] == [True]


def test_repair_takes_a_pre_repair_backup_before_cutting_a_torn_tail(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    with (store_dir / "charts.jsonl").open("ab") as f:
        f.write(b'{"type":"entity","na')
    fresh = Store(store_dir)

    repairs = validate_integrity(fresh, repair=True).contexts[0].repairs

    [backup] = [b for b in fresh.backups.list_backups() if b.kind == "pre-repair"]
    assert repairs[0] == f"backed up the file first as {backup.id}" and "torn tail" in repairs[1]
    assert b'"name":"a"' in gzip.decompress((store_dir / backup.file).read_bytes())


def test_an_entity_written_twice_in_a_file_of_another_tool_is_reported(store_dir: Path) -> None:
    _legacy(
        store_dir,
        '{"type":"entity","name":"a","entityType":"t","observations":["old"]}',
        '{"type":"entity","name":"b","entityType":"t","observations":[]}',
        '{"type":"entity","name":"a","entityType":"t","observations":["new"]}',
    )

    ctx = validate_integrity(Store(store_dir)).contexts[0]

    assert ctx.duplicateNames == ["a"] and ctx.ok
    assert Store(store_dir).open_entities(["a"]).entities[0].observations == ["new"]


# ---------------------------------------------------------------- relations whose end was lost with a damaged line


def test_repair_keeps_a_relation_whose_end_was_lost_with_a_damaged_line_and_reports_it_waiting(
    store: Store, store_dir: Path
) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.create_entities([{"name": "b", "entityType": "t"}])
    store.create_relations([{"from": "a", "to": "b", "relationType": "knows"}])
    shutil.rmtree(store_dir / ".backup")  # nothing can bring b back
    _damage_entity_lines(store_dir, "b")
    fresh = Store(store_dir)

    repaired = validate_integrity(fresh, repair=True)
    again = validate_integrity(fresh, repair=True)

    assert repaired.ok and repaired.contexts[0].waitingRelations == ["a -[knows]-> b"]
    assert repaired.contexts[0].danglingRelations == [] and len(fresh.open_entities(["a"]).relations) == 1
    assert again.contexts[0].repairs == [] and again.contexts[0].waitingRelations == ["a -[knows]-> b"]


def test_a_waiting_relation_counts_again_once_its_end_is_created_anew(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.create_entities([{"name": "b", "entityType": "t"}])
    store.create_relations([{"from": "a", "to": "b", "relationType": "knows"}])
    shutil.rmtree(store_dir / ".backup")
    _damage_entity_lines(store_dir, "b")
    fresh = Store(store_dir)
    validate_integrity(fresh, repair=True)

    fresh.create_entities([{"name": "b", "entityType": "t"}])

    assert validate_integrity(fresh).contexts[0].waitingRelations == []
    assert [r.to for r in fresh.open_entities(["a"]).relations] == ["b"]


def test_repair_removes_only_the_relations_that_were_dangling_before_the_damage(store_dir: Path) -> None:
    _legacy(
        store_dir,
        '{"type":"entity","name":"a","entityType":"t","observations":[]}',
        '{"type":"relation","from":"a","to":"ghost","relationType":"knows"}',
        '{"type":"entity","name":"b","entityType":"t","obser',
        '{"type":"relation","from":"a","to":"b","relationType":"knows"}',
    )
    store = Store(store_dir)

    repaired = validate_integrity(store, repair=True).contexts[0]

    assert repaired.repairs[-1] == "removed dangling relation a -[knows]-> ghost"
    assert repaired.waitingRelations == ["a -[knows]-> b"] and repaired.danglingRelations == []
