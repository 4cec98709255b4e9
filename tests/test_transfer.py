"""The import/export library: other tools' files in, clean memory-server snapshots out, and the merge rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coaia_store import Store, StoreConfig
from coaia_store.safety.transfer import export_records, import_file, jsonl_lines, read_source

FIXTURES = Path(__file__).parent / "fixtures"
ALL_FIXTURES = sorted(FIXTURES.glob("*.jsonl"))
GRAPH_TYPES = ("entity", "narrative_beat", "relation")


def _graph_lines(path: Path) -> list[dict[str, Any]]:
    """The entity and relation records of a fixture, as the tool wrote them."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    return [r for r in records if r.get("type") in GRAPH_TYPES]


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record's fields, the record type aside (a ``narrative_beat`` line exports as an entity of that type)."""
    fields = {k: v for k, v in record.items() if k != "type"}
    if record["type"] != "relation":
        fields.setdefault("entityType", record["type"])
    return fields


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _entity(name: str, *observations: str, **extra: Any) -> dict[str, Any]:
    return {"type": "entity", "name": name, "entityType": "person", "observations": list(observations), **extra}


@pytest.mark.parametrize("fixture", ALL_FIXTURES, ids=lambda p: p.name)
def test_import_then_export_gives_back_every_entity_and_relation_with_its_fields(store: Store, fixture: Path) -> None:
    import_file(store, fixture, context="imported")

    entities, relations = export_records(store, "imported")

    exported = sorted(json.dumps(_comparable(r), sort_keys=True) for r in entities + relations)
    original = sorted(json.dumps(_comparable(r), sort_keys=True) for r in _graph_lines(fixture))
    assert exported == original


@pytest.mark.parametrize("fixture", ALL_FIXTURES, ids=lambda p: p.name)
def test_exported_jsonl_reads_line_by_line_as_the_official_server_reads_it(store: Store, fixture: Path) -> None:
    import_file(store, fixture, context="imported")

    lines = b"".join(jsonl_lines(*export_records(store, "imported"))).decode().splitlines()

    records = [json.loads(line) for line in lines]
    assert records and all(r["type"] in ("entity", "relation") for r in records)
    assert not any(key in r for r in records for key in ("_crc", "_op", "_ts"))
    assert len(records) == len(_graph_lines(fixture))


def test_comment_and_marker_lines_are_ignored_not_imported(store: Store) -> None:
    spiral, aim = read_source(FIXTURES / "coaia-spiral-work.jsonl"), read_source(FIXTURES / "aim-memory.jsonl")

    assert (spiral.ignoredLines, aim.ignoredLines) == (1, 1)
    assert not spiral.problems and not aim.problems


def test_a_coaia_store_file_is_replayed_to_its_final_state(store: Store, tmp_path: Path) -> None:
    other = Store(tmp_path / "other")
    other.create_entities([{"name": "a", "entityType": "t"}, {"name": "b", "entityType": "t"}])
    other.add_observations([{"entityName": "a", "contents": ["later"]}])
    other.delete_entities(["b"])

    source = read_source(tmp_path / "other" / "charts.jsonl")

    assert [(e["name"], e["observations"]) for e in source.entities] == [("a", ["later"])]
    assert not any(key in source.entities[0] for key in ("_op", "_ts", "_crc"))


def test_a_damaged_line_is_reported_and_the_rest_imported(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text(json.dumps(_entity("a")) + "\n{not json\n" + json.dumps(_entity("b")) + "\n")

    report = import_file(store, path)

    assert report.added == ["a", "b"]
    assert [line.line for line in report.invalidLines] == [2]


def test_dry_run_writes_nothing(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": "Zoë_Kraus", "entityType": "person"}])
    before = {p: p.read_bytes() for p in store_dir.rglob("*") if p.is_file()}

    report = import_file(store, FIXTURES / "official-memory.jsonl", on_conflict="merge", dry_run=True)

    assert {p: p.read_bytes() for p in store_dir.rglob("*") if p.is_file()} == before
    assert len(report.added) == 6 and report.merged == ["Zoë_Kraus"] and len(report.relationsAdded) == 8


def test_dry_run_into_a_new_context_creates_no_file(store: Store, store_dir: Path) -> None:
    import_file(store, FIXTURES / "aim-memory.jsonl", context="new", dry_run=True)

    assert not (store_dir / "charts-new.jsonl").exists()


def test_skip_leaves_an_existing_entity_as_it_is(store: Store, tmp_path: Path) -> None:
    store.create_entities([{"name": "ann", "entityType": "person", "observations": ["mine"]}])

    report = import_file(store, _write_jsonl(tmp_path / "in.jsonl", [_entity("ann", "theirs")]), on_conflict="skip")

    assert report.skipped == ["ann"]
    assert store.open_entities(["ann"]).entities[0].observations == ["mine"]


def test_merge_appends_new_observations_and_adds_only_missing_metadata_keys(store: Store, tmp_path: Path) -> None:
    store.create_entities([{"name": "ann", "entityType": "person", "observations": ["a", "b"], "metadata": {"k": 1}}])
    incoming = _entity("ann", "b", "c", metadata={"k": 2, "new": True}, entityType="robot", ceremonyLog={"x": 1})

    report = import_file(store, _write_jsonl(tmp_path / "in.jsonl", [incoming]), on_conflict="merge")

    ann = store.open_entities(["ann"]).entities[0].model_dump(by_alias=True)
    assert report.merged == ["ann"]
    assert (ann["entityType"], ann["observations"], ann["metadata"]) == (
        "person",
        ["a", "b", "c"],
        {"k": 1, "new": True},
    )
    assert ann["ceremonyLog"] == {"x": 1}


def test_replace_makes_the_entity_the_imported_record_and_keeps_its_relations(store: Store, tmp_path: Path) -> None:
    store.create_entities(
        [
            {"name": "ann", "entityType": "person", "observations": ["a"], "metadata": {"k": 1}},
            {"name": "bob", "entityType": "person"},
        ]
    )
    store.create_relations([{"from": "ann", "to": "bob", "relationType": "knows"}])
    incoming = {"type": "entity", "name": "ann", "entityType": "robot", "observations": ["z"], "metadata": {"j": 2}}

    report = import_file(store, _write_jsonl(tmp_path / "in.jsonl", [incoming]), on_conflict="replace")

    opened = store.open_entities(["ann"])
    assert report.replaced == ["ann"]
    assert (opened.entities[0].entityType, opened.entities[0].observations, opened.entities[0].metadata) == (
        "robot",
        ["z"],
        {"j": 2},
    )
    assert len(opened.relations) == 1


def test_an_identical_entity_is_unchanged_under_every_rule(store: Store, tmp_path: Path) -> None:
    store.create_entities([{"name": "ann", "entityType": "person", "observations": ["a"]}])
    path = _write_jsonl(tmp_path / "in.jsonl", [_entity("ann", "a")])

    reports = [import_file(store, path, on_conflict=rule) for rule in ("skip", "merge", "replace")]

    assert [r.unchanged for r in reports] == [["ann"]] * 3


def test_relation_metadata_follows_the_same_rules(store: Store, tmp_path: Path) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}, {"name": "b", "entityType": "t"}])
    store.create_relations([{"from": "a", "to": "b", "relationType": "r", "metadata": {"mine": 1}}])
    path = _write_jsonl(
        tmp_path / "in.jsonl",
        [{"type": "relation", "from": "a", "to": "b", "relationType": "r", "metadata": {"mine": 2, "theirs": 3}}],
    )

    skipped = import_file(store, path, on_conflict="skip")
    merged = import_file(store, path, on_conflict="merge")

    assert skipped.relationsSkipped == ["a -[r]-> b"] and merged.relationsMerged == ["a -[r]-> b"]
    assert store.open_entities(["a"]).relations[0].metadata == {"mine": 1, "theirs": 3}


def test_relations_whose_ends_are_missing_are_reported_and_skipped(store: Store, tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "in.jsonl",
        [_entity("a"), {"type": "relation", "from": "a", "to": "ghost", "relationType": "haunts"}],
    )

    report = import_file(store, path)

    assert report.dangling == ["a -[haunts]-> ghost"]
    assert store.open_entities(["a"]).relations == []


def test_a_relation_to_an_entity_already_in_the_context_is_imported(store: Store, tmp_path: Path) -> None:
    store.create_entities([{"name": "old", "entityType": "t"}])

    report = import_file(
        store,
        _write_jsonl(
            tmp_path / "in.jsonl",
            [_entity("new"), {"type": "relation", "from": "new", "to": "old", "relationType": "r"}],
        ),
    )

    assert report.relationsAdded == ["new -[r]-> old"] and not report.dangling


def test_a_large_import_is_written_in_batches_within_max_record_bytes(tmp_path: Path) -> None:
    store = Store(tmp_path / ".coaia", config=StoreConfig(maxRecordBytes=4096))
    records = [_entity(f"person_{i}", "x" * 200) for i in range(120)]

    report = import_file(store, _write_jsonl(tmp_path / "in.jsonl", records))

    lines = (tmp_path / ".coaia" / "charts.jsonl").read_bytes().splitlines()
    assert len(report.added) == 120 and not report.failed
    assert 1 < len(lines) and max(len(line) for line in lines) <= 4096
    assert store.read_graph().totalEntities == 120


def test_a_record_larger_than_max_record_bytes_is_reported_as_failed(tmp_path: Path) -> None:
    store = Store(tmp_path / ".coaia", config=StoreConfig(maxRecordBytes=2048))
    path = _write_jsonl(tmp_path / "in.jsonl", [_entity("small"), _entity("huge", "x" * 5000)])

    report = import_file(store, path)

    assert report.added == ["small"]
    assert len(report.failed) == 1 and report.failed[0].startswith("huge:")


def test_export_leaves_out_tombstones_and_superseded_records(store: Store) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}, {"name": "b", "entityType": "t"}])
    store.add_observations([{"entityName": "a", "contents": ["x"]}])
    store.delete_entities(["b"])

    entities, relations = export_records(store, "default")

    assert entities == [{"type": "entity", "name": "a", "entityType": "t", "observations": ["x"]}] and relations == []
