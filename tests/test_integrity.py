"""validate_integrity: what it finds, what repair changes, and that a second repair changes nothing."""

from __future__ import annotations

from pathlib import Path

from coaia_store import Store
from coaia_store.charts import Charts
from coaia_store.integrity import validate_integrity


def _legacy(store_dir: Path, *lines: str) -> None:
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / "charts.jsonl").write_text("\n".join(lines) + "\n")


def test_a_healthy_store_is_ok(store: Store) -> None:
    Charts(store).create_chart(desiredOutcome="A garden", currentReality="Lawn", dueDate="2027-05-01", actionSteps=["Beds"])

    report = validate_integrity(store)

    assert report.ok and report.contexts[0].linesRead == 2 and report.contexts[0].recordsApplied > 3


def test_relations_to_missing_entities_are_reported(store_dir: Path) -> None:
    _legacy(store_dir, '{"type":"entity","name":"a","entityType":"t","observations":[]}',
            '{"type":"relation","from":"a","to":"ghost","relationType":"knows"}')

    report = validate_integrity(Store(store_dir))

    assert not report.ok and report.contexts[0].danglingRelations == ["a -[knows]-> ghost"]


def test_repair_removes_dangling_relations_and_logs_it(store_dir: Path) -> None:
    _legacy(store_dir, '{"type":"entity","name":"a","entityType":"t","observations":[]}',
            '{"type":"relation","from":"a","to":"ghost","relationType":"knows"}')
    store = Store(store_dir)

    repaired = validate_integrity(store, repair=True)

    assert repaired.ok and repaired.contexts[0].repairs == ["removed dangling relation a -[knows]-> ghost"]
    assert any(e.get("action") == "removed dangling relation a -[knows]-> ghost" for e in store.recovery.entries())


def test_a_second_repair_changes_nothing(store_dir: Path) -> None:
    _legacy(store_dir, '{"type":"entity","name":"a","entityType":"t","observations":[]}',
            '{"type":"relation","from":"a","to":"ghost","relationType":"knows"}')
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
    assert repaired.ok and "torn tail" in repaired.contexts[0].repairs[0]
    assert (store_dir / "charts.jsonl").read_bytes().endswith(b"}\n")


def test_damaged_lines_are_reported_with_their_numbers_and_checksum_failures(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.create_entities([{"name": "b", "entityType": "t"}])
    path = store_dir / "charts.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"a"', b'"A"') + lines[2])

    ctx = validate_integrity(Store(store_dir)).contexts[0]

    assert [d.line for d in ctx.damagedLines] == [2] and ctx.checksumFailures == 1


def test_a_sub_chart_whose_parent_chart_is_gone_is_an_orphan(store: Store) -> None:
    charts = Charts(store)
    chart = charts.create_chart(desiredOutcome="A garden", currentReality="Lawn", dueDate="2027-05-01",
                                actionSteps=["Beds"]).chart
    sub = charts.telescope_action_step(actionStep=chart.actionSteps[0].name, currentReality="Lumber").chart
    store.delete_entities([f"{chart.chartId}_chart", chart.actionSteps[0].name])

    assert validate_integrity(store).contexts[0].orphanSubCharts == [sub.chartId]


def test_a_step_due_after_its_chart_breaks_the_timeline(store: Store) -> None:
    chart = Charts(store).create_chart(desiredOutcome="A garden", currentReality="Lawn", dueDate="2027-05-01",
                                       actionSteps=["Beds"]).chart
    step = chart.actionSteps[0].name
    store.update_entity({"name": step, "metadata": {"dueDate": "2027-06-01"}})

    violations = validate_integrity(store).contexts[0].timelineViolations

    assert violations == [f"action step {step} is due after its chart {chart.chartId}"]


def test_repair_keeps_the_old_file_then_rewrites_without_the_damaged_line(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.create_entities([{"name": "b", "entityType": "t"}])
    path = store_dir / "charts.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"a"', b'"A"') + lines[2])
    fresh = Store(store_dir)

    repaired = validate_integrity(fresh, repair=True)

    assert repaired.ok and "damaged line" in repaired.contexts[0].repairs[0]
    assert list((store_dir / "history" / "charts").glob("*.jsonl.gz"))
    assert [e.name for e in fresh.read_graph().entities] == ["b"]
    assert list((store_dir / ".recovery" / "quarantine").glob("charts.jsonl.*.bin"))
    assert validate_integrity(fresh, repair=True).contexts[0].repairs == []
