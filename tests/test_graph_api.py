"""The graph API: entities, observations, relations, reads, pagination, idempotent retries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from coaia_store import ConflictError, InvalidInputError, NotFoundError, Store


def _entity(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "entityType": "person", "observations": [f"{name} exists"], **extra}


def test_created_entity_is_read_back_with_its_context(store: Store) -> None:
    store.create_entities([_entity("ada", metadata={"role": "engineer"})])

    [ada] = store.open_entities(["ada"]).entities

    assert (ada.name, ada.entityType, ada.observations, ada.metadata, ada.context) == (
        "ada",
        "person",
        ["ada exists"],
        {"role": "engineer"},
        "default",
    )


def test_data_survives_reopening_the_store(open_store: Callable[..., Store]) -> None:
    open_store().create_entities([_entity("ada")])

    assert [e.name for e in open_store().read_graph().entities] == ["ada"]


def test_creating_the_same_entity_twice_is_reported_unchanged_and_writes_nothing(store: Store, store_dir: Path) -> None:
    store.create_entities([_entity("ada")])
    size = (store_dir / "charts.jsonl").stat().st_size

    result = store.create_entities([_entity("ada")])

    assert (result.created, result.unchanged) == ([], ["ada"])
    assert (store_dir / "charts.jsonl").stat().st_size == size


def test_creating_an_existing_name_with_other_content_is_a_conflict_and_writes_nothing(store: Store) -> None:
    store.create_entities([_entity("ada")])

    with pytest.raises(ConflictError, match="'ada' already exist"):
        store.create_entities([_entity("bob"), {"name": "ada", "entityType": "robot"}])

    assert store.open_entities(["bob"]).notFound == ["bob"]


def test_if_exists_skip_leaves_the_existing_entity_alone(store: Store) -> None:
    store.create_entities([_entity("ada")])

    result = store.create_entities([{"name": "ada", "entityType": "robot"}, _entity("bob")], if_exists="skip")

    assert result.skipped == ["ada"] and [e.name for e in result.created] == ["bob"]
    assert store.open_entities(["ada"]).entities[0].entityType == "person"


def test_a_batch_is_one_line_in_the_file(store: Store, store_dir: Path) -> None:
    store.create_entities([_entity(f"e{i}") for i in range(20)])

    lines = (store_dir / "charts.jsonl").read_bytes().splitlines()

    assert len(lines) == 2  # header + one batch


def test_adding_observations_skips_ones_already_present(store: Store) -> None:
    store.create_entities([_entity("ada")])

    first = store.add_observations([{"entityName": "ada", "contents": ["likes tea", "ada exists", "likes tea"]}])
    again = store.add_observations([{"entityName": "ada", "contents": ["likes tea"]}])

    assert first.results[0].addedObservations == ["likes tea"]
    assert again.results[0].addedObservations == []
    assert store.open_entities(["ada"]).entities[0].observations == ["ada exists", "likes tea"]


def test_adding_observations_to_a_missing_entity_fails_whole_call(store: Store) -> None:
    store.create_entities([_entity("ada")])

    with pytest.raises(NotFoundError, match="'ghost'"):
        store.add_observations([{"entityName": "ada", "contents": ["x"]}, {"entityName": "ghost", "contents": ["y"]}])

    assert store.open_entities(["ada"]).entities[0].observations == ["ada exists"]


def test_deleting_observations_removes_only_those(store: Store) -> None:
    store.create_entities([_entity("ada", observations=["a", "b", "c"])])

    result = store.delete_observations(
        [{"entityName": "ada", "observations": ["b", "zz"]}, {"entityName": "x", "observations": []}]
    )

    assert (result.deleted, result.notFound) == (1, ["x"])
    assert store.open_entities(["ada"]).entities[0].observations == ["a", "c"]


def test_relation_to_a_missing_entity_is_refused(store: Store) -> None:
    store.create_entities([_entity("ada")])

    with pytest.raises(NotFoundError, match="'ghost'"):
        store.create_relations([{"from": "ada", "to": "ghost", "relationType": "knows"}])

    assert store.read_graph().relations == []


def test_existing_relation_is_reported_unchanged(store: Store) -> None:
    store.create_entities([_entity("ada"), _entity("bob")])
    rel = {"from": "ada", "to": "bob", "relationType": "knows"}

    store.create_relations([rel])
    again = store.create_relations([rel])

    assert again.created == [] and len(again.unchanged) == 1
    assert len(store.read_graph().relations) == 1


def test_open_entities_returns_relations_at_either_end(store: Store) -> None:
    store.create_entities([_entity("ada"), _entity("bob"), _entity("cy")])
    store.create_relations(
        [
            {"from": "ada", "to": "bob", "relationType": "knows"},
            {"from": "cy", "to": "ada", "relationType": "mentors"},
            {"from": "bob", "to": "cy", "relationType": "knows"},
        ]
    )

    result = store.open_entities(["ada"])

    assert {(r.from_, r.to) for r in result.relations} == {("ada", "bob"), ("cy", "ada")}


def test_deleting_an_entity_removes_its_relations(store: Store) -> None:
    store.create_entities([_entity("ada"), _entity("bob")])
    store.create_relations([{"from": "ada", "to": "bob", "relationType": "knows"}])

    result = store.delete_entities(["ada", "nobody"])

    assert (result.deleted, result.notFound) == (1, ["nobody"])
    assert store.open_entities(["bob"]).relations == []


def test_deleting_again_is_harmless(store: Store) -> None:
    store.create_entities([_entity("ada")])
    store.delete_entities(["ada"])

    assert store.delete_entities(["ada"]).notFound == ["ada"]


def test_deleting_a_relation_keeps_the_entities(store: Store) -> None:
    store.create_entities([_entity("ada"), _entity("bob")])
    rel = {"from": "ada", "to": "bob", "relationType": "knows"}
    store.create_relations([rel])

    assert store.delete_relations([rel]).deleted == 1
    assert store.read_graph().relations == [] and store.read_graph().totalEntities == 2


def test_rename_moves_relations_to_the_new_name(store: Store) -> None:
    store.create_entities([_entity("ada"), _entity("bob")])
    store.create_relations(
        [{"from": "ada", "to": "bob", "relationType": "knows"}, {"from": "bob", "to": "ada", "relationType": "knows"}]
    )

    result = store.update_entity({"name": "ada", "newName": "ada-l"})

    assert result.relationsMoved == 2
    assert store.open_entities(["ada"]).notFound == ["ada"]
    assert {(r.from_, r.to) for r in store.open_entities(["ada-l"]).relations} == {("ada-l", "bob"), ("bob", "ada-l")}


def test_rename_onto_an_existing_name_is_a_conflict(store: Store) -> None:
    store.create_entities([_entity("ada"), _entity("bob")])

    with pytest.raises(ConflictError, match="taken"):
        store.update_entity({"name": "ada", "newName": "bob"})


def test_update_merges_metadata_and_null_removes_a_key(store: Store) -> None:
    store.create_entities([_entity("ada", metadata={"a": 1, "b": 2})])

    store.update_entity({"name": "ada", "entityType": "pioneer", "metadata": {"b": None, "c": 3}})

    ada = store.open_entities(["ada"]).entities[0]
    assert (ada.entityType, ada.metadata) == ("pioneer", {"a": 1, "c": 3})


def test_update_that_changes_nothing_writes_nothing(store: Store, store_dir: Path) -> None:
    store.create_entities([_entity("ada", metadata={"a": 1})])
    size = (store_dir / "charts.jsonl").stat().st_size

    result = store.update_entity({"name": "ada", "metadata": {"a": 1}})

    assert not result.changed and (store_dir / "charts.jsonl").stat().st_size == size


def test_contexts_are_separate_files_and_names(store: Store, store_dir: Path) -> None:
    store.create_entities([_entity("ada")])
    store.create_entities([{"name": "ada", "entityType": "project"}], context="work")

    found = store.open_entities(["ada"])

    assert sorted((e.context, e.entityType) for e in found.entities) == [("default", "person"), ("work", "project")]
    assert (store_dir / "charts-work.jsonl").is_file()
    assert [c.name for c in store.list_contexts()] == ["default", "work"]


def test_read_graph_of_one_context_excludes_the_others(store: Store) -> None:
    store.create_entities([_entity("ada")])
    store.create_entities([_entity("bob")], context="work")

    assert [e.name for e in store.read_graph(context="work").entities] == ["bob"]


def test_read_graph_filters_by_entity_type(store: Store) -> None:
    store.create_entities([_entity("ada"), {"name": "plan", "entityType": "chart"}])

    page = store.read_graph(entity_types=["chart"])

    assert [e.name for e in page.entities] == ["plan"] and page.totalEntities == 1


def test_pagination_visits_every_entity_once(store: Store) -> None:
    store.create_entities([_entity(f"e{i:02d}") for i in range(25)])
    store.create_entities([_entity(f"w{i}") for i in range(5)], context="work")
    seen, cursor = [], None

    while True:
        page = store.read_graph(limit=7, cursor=cursor)
        seen += [e.name for e in page.entities]
        cursor = page.nextCursor
        if cursor is None:
            break

    assert len(seen) == 30 and len(set(seen)) == 30 and page.totalEntities == 30


def test_a_page_carries_the_relations_leaving_its_entities(store: Store) -> None:
    store.create_entities([_entity("a"), _entity("b")])
    store.create_relations([{"from": "b", "to": "a", "relationType": "r"}])

    first = store.read_graph(limit=1)
    second = store.read_graph(limit=1, cursor=first.nextCursor)

    assert first.relations == [] and [(r.from_, r.to) for r in second.relations] == [("b", "a")]


def test_a_bad_cursor_is_a_clear_error(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="nextCursor"):
        store.read_graph(cursor="not-a-cursor")


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        ({"name": "", "entityType": "t"}, "name"),
        ({"name": "   ", "entityType": "t"}, "non-space"),
        ({"name": "x"}, "entityType"),
        ({"name": "x", "entityType": "t", "observations": "not a list"}, "observations"),
        ({"name": "x", "entityType": "t", "colour": "red"}, "colour"),
        ({"name": "x", "entityType": "t", "metadata": {"v": float("nan")}}, "JSON"),
        ({"name": "x" * 1001, "entityType": "t"}, "1000"),
    ],
)
def test_malformed_entities_are_refused_with_the_field_named(
    store: Store, store_dir: Path, entity: dict, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.create_entities([entity])

    assert not (store_dir / "charts.jsonl").exists()


def test_error_messages_name_the_position_of_the_bad_item(store: Store) -> None:
    with pytest.raises(InvalidInputError, match=r"field '1\.entityType'"):
        store.create_entities([_entity("ok"), {"name": "bad"}])


def test_metadata_keeps_nested_json(store: Store) -> None:
    meta = {"dueDate": "2026-12-01", "level": 2, "tags": ["a", "b"], "nested": {"done": False, "ratio": 0.5}}
    store.create_entities([_entity("ada", metadata=meta)])

    assert store.open_entities(["ada"]).entities[0].metadata == meta


def test_non_ascii_text_is_stored_as_utf8(store: Store, store_dir: Path) -> None:
    store.create_entities([_entity("café ☕", observations=["naïve résumé 🎯"])])

    raw = (store_dir / "charts.jsonl").read_bytes()

    assert "naïve résumé 🎯".encode() in raw
    assert store.open_entities(["café ☕"]).entities[0].observations == ["naïve résumé 🎯"]
