"""The saved search index: a new process starts from it, and never answers from a stale row.

Indexes here save after 1 entity (``cache_after_rows=1``); ``reused_rows`` counts the entities
whose row a new index took from the saved one instead of indexing again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coaia_store import Store
from coaia_store.search.index import CACHE_FILE, SearchIndex, SearchPage

CACHE = Path(".cache") / CACHE_FILE
NEVER = 1 << 40


@pytest.fixture
def index_on() -> Iterator[Callable[..., SearchIndex]]:
    opened: list[SearchIndex] = []

    def factory(store: Store, cache_after_rows: int = 1) -> SearchIndex:
        opened.append(SearchIndex(store, cache_after_rows=cache_after_rows))
        return opened[-1]

    yield factory
    for index in opened:
        index.close()


def entity(name: str, *observations: str) -> dict[str, Any]:
    return {"name": name, "entityType": "note", "observations": list(observations)}


def hits(page: SearchPage) -> list[tuple[str, float]]:
    return sorted((hit.entity.name, round(hit.score, 9)) for hit in page.hits)


@pytest.fixture
def saved(store: Store, index_on: Callable[..., SearchIndex]) -> Store:
    """A store of four entities in two contexts, and a saved index of them."""
    store.create_entities([entity("Garden", "tomatoes grow"), entity("Novel", "chapter one drafted")])
    store.create_entities([entity("Piano", "scales daily"), entity("Budget", "savings grow")], context="work")
    index_on(store).refresh()
    return store


def test_an_index_of_at_least_cache_after_rows_entities_is_saved(saved: Store, store_dir: Path) -> None:
    assert (store_dir / CACHE).is_file()


def test_a_smaller_index_is_not_saved(store: Store, store_dir: Path, index_on: Callable[..., SearchIndex]) -> None:
    store.create_entities([entity("Garden", "tomatoes")])
    index_on(store, cache_after_rows=2).search("tomatoes")
    assert not (store_dir / CACHE).exists()


def test_a_new_index_reuses_every_unchanged_row(
    saved: Store, open_store: Callable[..., Store], index_on: Callable[..., SearchIndex]
) -> None:
    index = index_on(open_store(), cache_after_rows=NEVER)

    page = index.search("grow")

    assert index.reused_rows == 4
    assert sorted(hit.entity.name for hit in page.hits) == ["Budget", "Garden"]


def test_a_restored_index_ranks_as_a_fresh_build(
    saved: Store, open_store: Callable[..., Store], index_on: Callable[..., SearchIndex]
) -> None:
    restored, fresh = index_on(open_store(), NEVER), index_on(open_store(), NEVER)
    fresh.rebuild()
    assert hits(restored.search("grow daily")) == hits(fresh.search("grow daily"))


def test_entities_changed_since_the_save_are_indexed_again(
    saved: Store, open_store: Callable[..., Store], index_on: Callable[..., SearchIndex]
) -> None:
    saved.add_observations([{"entityName": "Garden", "contents": ["zebra visited"]}])
    saved.delete_entities(["Novel"])
    saved.update_entity({"name": "Piano", "newName": "Violin"}, context="work")
    saved.create_entities([entity("Zoo", "zebra enclosure")])
    index = index_on(open_store(), NEVER)

    assert sorted(hit.entity.name for hit in index.search("zebra").hits) == ["Garden", "Zoo"]
    assert index.search("chapter").total == 0
    assert [hit.entity.name for hit in index.search("scales").hits] == ["Violin"]
    assert index.reused_rows == 1  # Budget


def test_a_context_removed_since_the_save_leaves_the_results(
    saved: Store, store_dir: Path, open_store: Callable[..., Store], index_on: Callable[..., SearchIndex]
) -> None:
    (store_dir / "charts-work.jsonl").unlink()
    assert index_on(open_store(), NEVER).search("grow").total == 1


def test_a_search_of_one_context_checks_only_that_context(
    saved: Store, open_store: Callable[..., Store], index_on: Callable[..., SearchIndex]
) -> None:
    saved.add_observations([{"entityName": "Budget", "contents": ["tomatoes too"]}], context="work")
    index = index_on(open_store(), NEVER)

    assert [hit.entity.name for hit in index.search("tomatoes", context="default").hits] == ["Garden"]
    assert sorted(hit.entity.name for hit in index.search("tomatoes").hits) == ["Budget", "Garden"]


@pytest.mark.parametrize(
    "damage",
    [lambda d: d[: len(d) // 2], lambda d: d[:-5] + bytes([d[-5] ^ 0x10]) + d[-4:], lambda _: b"junk"],
    ids=["truncated", "payload-bit", "junk"],
)
def test_a_damaged_saved_index_is_ignored(
    saved: Store,
    store_dir: Path,
    open_store: Callable[..., Store],
    index_on: Callable[..., SearchIndex],
    damage: Callable[[bytes], bytes],
) -> None:
    cache = store_dir / CACHE
    cache.write_bytes(damage(cache.read_bytes()))
    index = index_on(open_store(), NEVER)

    assert sorted(hit.entity.name for hit in index.search("grow").hits) == ["Budget", "Garden"]
    assert index.reused_rows == 0


def test_rebuild_does_not_take_the_saved_index(
    saved: Store, open_store: Callable[..., Store], index_on: Callable[..., SearchIndex]
) -> None:
    index = index_on(open_store(), NEVER)
    index.rebuild()
    assert index.search("grow").total == 2
    assert index.reused_rows == 0


_words = st.sampled_from(["alpha", "beta", "gamma", "delta"])
_steps = st.lists(
    st.tuples(st.sampled_from(["create", "observe", "delete", "save"]), st.sampled_from("abcde"), _words), max_size=20
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps)
def test_a_restored_index_answers_as_a_rebuilt_one_after_any_changes(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str, str]]
) -> None:
    with Store(tmp_path_factory.mktemp("search") / ".coaia") as store:
        for kind, name, word in [*steps, ("save", "", "")]:
            present = name in {e.name for e in store.read_graph(limit=100).entities}
            if kind == "create":
                store.create_entities([entity(name, word)], if_exists="skip")
            elif kind == "observe" and present:
                store.add_observations([{"entityName": name, "contents": [f"{word} {len(steps)}"]}])
            elif kind == "delete":
                store.delete_entities([name])
            elif kind == "save":
                restored, rebuilt = SearchIndex(store, cache_after_rows=1), SearchIndex(store, cache_after_rows=NEVER)
                rebuilt.rebuild()
                for query in ("alpha", "beta gamma", "delta"):
                    assert hits(restored.search(query)) == hits(rebuilt.search(query))
                restored.close()
                rebuilt.close()
