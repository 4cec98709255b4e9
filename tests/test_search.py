"""Ranked full-text search (coaia_store.search.index): what a caller can rely on.

Every test goes through the public API: a Store to write, a SearchIndex to search.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coaia_store import InvalidContextError, InvalidInputError, Store
from coaia_store.search import index as search_module
from coaia_store.search.index import SearchIndex, SearchPage, SearchUnavailableError

Entity = dict[str, Any]


@pytest.fixture
def index_of() -> Iterator[Callable[[Store], SearchIndex]]:
    opened: list[SearchIndex] = []

    def factory(store: Store) -> SearchIndex:
        opened.append(SearchIndex(store))
        return opened[-1]

    yield factory
    for idx in opened:
        idx.close()


@pytest.fixture
def index(store: Store, index_of: Callable[[Store], SearchIndex]) -> SearchIndex:
    return index_of(store)


@pytest.fixture
def reader_and_writer(
    open_store: Callable[..., Store], index_of: Callable[[Store], SearchIndex]
) -> tuple[SearchIndex, Store]:
    """An index over one Store, and another Store on the same directory (as another process)."""
    return index_of(open_store()), open_store()


def entity(name: str, *observations: str, type_: str = "note", metadata: dict[str, Any] | None = None) -> Entity:
    item: Entity = {"name": name, "entityType": type_, "observations": list(observations)}
    if metadata is not None:
        item["metadata"] = metadata
    return item


def names(page: SearchPage) -> list[str]:
    return [hit.entity.name for hit in page.hits]


# ---------------------------------------------------------------- ranking and matching


def test_a_name_match_outranks_an_earlier_observation_mention(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Garden", "the telescope goes on the garden wall"), entity("Telescope", "new")])
    assert names(index.search("telescope")) == ["Telescope", "Garden"]


def test_fields_rank_name_then_type_then_observations_then_metadata(store: Store, index: SearchIndex) -> None:
    store.create_entities(
        [
            entity("m", "nothing", metadata={"note": "comet"}),
            entity("o", "a comet"),
            entity("t", "nothing", type_="comet"),
            entity("comet", "nothing"),
        ]
    )
    assert names(index.search("comet")) == ["comet", "t", "o", "m"]


def test_scores_decrease_down_the_page(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity(f"e{i}", *(["orbit"] * (i + 1)), "filler words here") for i in range(5)])
    scores = [hit.score for hit in index.search("orbit").hits]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)


def test_words_of_one_query_may_match_in_different_fields(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Telescope", "kept in the shed", type_="tool"), entity("Shed", "wooden")])
    page = index.search("shed telescope tool")
    assert (names(page), page.match) == (["Telescope"], "all")


def test_when_no_entity_holds_every_word_those_holding_most_come_first(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("a", "red apple"), entity("b", "red apple pie"), entity("c", "green")])
    page = index.search("red apple pie tart")
    assert (names(page), page.match) == (["b", "a"], "any")


def test_a_word_matches_as_a_prefix(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Telescope", "reflector"), entity("Telephone", "rotary")])
    assert names(index.search("telesc")) == ["Telescope"]


def test_search_ignores_case_and_accents(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Café du coin", "Crème brûlée"), entity("naive", "Noël")])
    found = [names(index.search(q)) for q in ("cafe", "CREME BRULEE", "noel", "naïve")]
    assert found == [["Café du coin"], ["Café du coin"], ["naive"], ["naive"]]


def test_metadata_values_and_other_tools_keys_are_searched(store: Store, store_dir: Path, index: SearchIndex) -> None:
    store.create_entities([entity("chart", metadata={"tags": ["astronomy"], "level": 42, "nested": {"x": "nebula"}})])
    legacy = '{"type":"narrative_beat","name":"beat","narrative":{"prose":"the spider web holds dew"}}\n'
    (store_dir / "charts-story.jsonl").write_text(legacy)
    assert [names(index.search(q)) for q in ("astronomy", "42", "nebula", "spider dew")] == [["chart"]] * 3 + [["beat"]]


def test_text_sqlite_cannot_hold_is_still_indexed(store_dir: Path, index: SearchIndex) -> None:
    store_dir.mkdir(parents=True)
    line = '{"type":"entity","name":"odd\\ud800","entityType":"x","observations":["comet \\udc00"]}\n'
    (store_dir / "charts.jsonl").write_text(line)
    assert [hit.entity.name for hit in index.search("comet").hits] == ["odd\ud800"]


def test_each_hit_says_which_fields_matched(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Orion", "orion is bright", type_="constellation", metadata={"seen": "orion belt"})])
    assert index.search("orion").hits[0].matched == ["name", "observations", "metadata"]


def test_the_snippet_shows_a_few_words_around_the_match_marked(store: Store, index: SearchIndex) -> None:
    long_text = " ".join(["filler"] * 40 + ["the", "telescope", "arrived"] + ["filler"] * 40)
    store.create_entities([entity("Shipment", long_text)])
    snippet = index.search("telescope").hits[0].snippet
    assert "**telescope**" in snippet and snippet.startswith("…") and len(snippet.split()) <= 12


def test_the_snippet_shows_observation_text_rather_than_the_name_it_repeats(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Telescope", "the telescope arrived today")])
    assert index.search("telescope").hits[0].snippet == "the **telescope** arrived today"


def test_a_hit_carries_the_stored_entity_and_its_context(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Vega", "bright star", metadata={"mag": 0})], context="sky")
    hit = index.search("vega").hits[0]
    assert hit.entity == store.open_entities(["Vega"], context="sky").entities[0] and hit.entity.context == "sky"


# ---------------------------------------------------------------- filters and pages


def test_all_contexts_are_searched_unless_one_is_named(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("home plan", "garden")])
    store.create_entities([entity("work plan", "garden")], context="work")
    everywhere = sorted(names(index.search("garden")))
    assert (everywhere, names(index.search("garden", context="work"))) == (["home plan", "work plan"], ["work plan"])


def test_entity_type_filter_keeps_only_those_types(store: Store, index: SearchIndex) -> None:
    kinds = {"a": "person", "b": "place", "c": "tool"}
    store.create_entities([entity(name, "star", type_=kind) for name, kind in kinds.items()])
    assert sorted(names(index.search("star", entity_types=["person", "tool"]))) == ["a", "c"]


def test_filters_apply_before_the_fallback_to_any_word(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("both", "red blue", type_="x"), entity("one", "red", type_="y")])
    page = index.search("red blue", entity_types=["y"])
    assert (names(page), page.match, page.total) == (["one"], "any", 1)


def test_pages_visit_every_hit_exactly_once(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity(f"n{i:02d}", *(["planet"] * (1 + i % 4))) for i in range(23)])
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = index.search("planet", limit=5, cursor=cursor)
        seen += names(page)
        cursor = page.nextCursor
        if cursor is None:
            break
    assert (sorted(seen), page.total) == ([f"n{i:02d}" for i in range(23)], 23)


def test_a_cursor_from_another_search_is_refused(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity(f"n{i}", "planet moon") for i in range(3)])
    cursor = index.search("planet", limit=1).nextCursor
    with pytest.raises(InvalidInputError, match="cursor"):
        index.search("moon", limit=1, cursor=cursor)


@pytest.mark.parametrize("limit", [0, 101])
def test_a_limit_outside_1_to_100_is_refused(index: SearchIndex, limit: int) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        index.search("x", limit=limit)


# ---------------------------------------------------------------- hostile and empty queries

NASTY = ['"', '"unbalanced', "a AND", "OR", "NOT x", "NEAR(a b, 2)", "name:x", "{name}: y", "(((", "*", "a*b", "^start"]
NASTY += ["-x +y", "\\", "''", "\x00", "a:*", "facets : c64", "ctx:default"]


@pytest.mark.parametrize("query", NASTY)
def test_query_syntax_in_user_text_is_taken_as_words(store: Store, index: SearchIndex, query: str) -> None:
    store.create_entities([entity("NEAR AND OR NOT", "name a b x y start")])
    assert isinstance(index.search(query), SearchPage)


def test_random_unicode_queries_never_raise(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Ünïcødé ✨ 東京", "ǅemal Ⅻ ² ß")])
    rng = random.Random(7)
    for _ in range(300):
        chars = [rng.choice([rng.randint(32, 0x3000), rng.randint(0x1F300, 0x1FAFF)]) for _ in range(rng.randint(1, 9))]
        index.search("".join(map(chr, chars)))


@pytest.mark.parametrize("query", ["zebra", "", "   ", "*** () !!"])
def test_a_query_finding_nothing_returns_an_empty_last_page(store: Store, index: SearchIndex, query: str) -> None:
    store.create_entities([entity("Telescope", "reflector")])
    assert index.search(query) == SearchPage(hits=[], total=0, nextCursor=None)


# ---------------------------------------------------------------- in step with the files


def test_writes_by_another_store_show_up_in_the_next_search(reader_and_writer: tuple[SearchIndex, Store]) -> None:
    index, writer = reader_and_writer
    assert index.search("comet").total == 0
    writer.create_entities([entity("Halley", "a comet")])
    writer.add_observations([{"entityName": "Halley", "contents": ["returns in 2061"]}])
    assert names(index.search("comet 2061")) == ["Halley"]


def test_deleted_entities_and_observations_disappear(reader_and_writer: tuple[SearchIndex, Store]) -> None:
    index, writer = reader_and_writer
    writer.create_entities([entity("Halley", "a comet"), entity("Encke", "a comet too", "short period")])
    index.search("comet")
    writer.delete_entities(["Halley"])
    writer.delete_observations([{"entityName": "Encke", "observations": ["short period"]}])
    assert (names(index.search("comet")), index.search("period").total) == (["Encke"], 0)


def test_a_renamed_entity_is_found_by_its_new_name_only(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Pluto", "dwarf")])
    index.search("pluto")
    store.update_entity({"name": "Pluto", "newName": "Charon"})
    assert (index.search("pluto").total, names(index.search("charon"))) == (0, ["Charon"])


def test_compaction_by_another_store_keeps_results_exact(reader_and_writer: tuple[SearchIndex, Store]) -> None:
    index, writer = reader_and_writer
    writer.create_entities([entity(f"s{i}", "satellite") for i in range(5)])
    index.search("satellite")
    writer.update_entity({"name": "s0", "observations": ["asteroid"]})
    writer.compact()
    assert (index.search("satellite").total, names(index.search("asteroid"))) == (4, ["s0"])


def test_a_context_whose_file_is_removed_leaves_the_results(store: Store, store_dir: Path, index: SearchIndex) -> None:
    store.create_entities([entity("Old plan", "garden")], context="old")
    index.search("garden")
    (store_dir / "charts-old.jsonl").unlink()
    assert index.search("garden").total == 0


def test_rebuilding_the_index_gives_the_same_results(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity(f"s{i}", *(["moon"] * (i % 3 + 1))) for i in range(8)])
    before = index.search("moon")
    index.rebuild()
    assert index.search("moon") == before


# ---------------------------------------------------------------- errors


def test_an_invalid_context_name_raises_the_stores_error(store: Store, index: SearchIndex) -> None:
    with pytest.raises(InvalidContextError) as from_store:
        store.read_graph(context="../etc")
    with pytest.raises(InvalidContextError) as from_search:
        index.search("x", context="../etc")
    assert str(from_search.value) == str(from_store.value)


def test_a_context_without_a_file_is_empty_as_in_read_graph(store: Store, index: SearchIndex) -> None:
    store.create_entities([entity("Mars", "planet")])
    assert index.search("planet", context="nowhere").total == store.read_graph(context="nowhere").totalEntities == 0


def test_without_fts5_the_index_refuses_with_a_clear_error(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_module, "FTS5_PROBLEM", "full-text search needs SQLite with FTS5")
    with pytest.raises(SearchUnavailableError, match="FTS5"):
        SearchIndex(store)


# ---------------------------------------------------------------- the benchmark keeps working


@pytest.mark.slow
def test_the_search_benchmark_runs_at_a_tiny_size() -> None:
    """Only that bench/bench_search.py still works and prints its figures, never how fast."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_search.py"
    args = [sys.executable, str(bench), "--sizes", "50", "--repeats", "2"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "first search (full build)" in proc.stdout and "query 'piano'" in proc.stdout
