"""The state cache: a new process starts from the saved replayed state, never from a wrong one.

Every test opens stores with ``stateCacheMinBytes`` small so a handful of lines is "large".
``JournalInfo.restored_bytes`` says how much of the file a store took from the cache.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coaia_store import Store, StoreConfig

CACHE = Path(".cache") / "charts.jsonl.state"
EAGER = StoreConfig(stateCacheMinBytes=1)
NEVER = StoreConfig(stateCacheMinBytes=1 << 40)


def graph_of(store: Store) -> dict[str, Any]:
    return store.read_graph(context="default", limit=1000).model_dump()


def restored(store: Store, context: str = "default") -> int:
    store.read_graph(context=context, limit=1)
    return store.graph(context).journal.info().restored_bytes


def fill(store: Store, names: str) -> None:
    for name in names:
        store.create_entities([{"name": name, "entityType": "t", "observations": [f"about {name}"]}])
    store.create_relations([{"from": names[0], "to": names[-1], "relationType": "r"}])


@pytest.fixture
def filled_dir(store_dir: Path) -> Path:
    """A store of a few entities whose state cache covers its whole file."""
    with Store(store_dir, config=EAGER) as store:
        fill(store, "abcde")
    with Store(store_dir, config=EAGER) as store:
        store.read_graph(limit=1)  # the replay saves the cache
    return store_dir


def test_a_replay_of_at_least_state_cache_min_bytes_saves_the_state(filled_dir: Path) -> None:
    assert (filled_dir / CACHE).is_file()


def test_a_new_store_takes_the_whole_file_from_the_cache(filled_dir: Path, open_store: Callable[..., Store]) -> None:
    replayed = graph_of(open_store(config=NEVER))

    cached = open_store(config=EAGER)

    assert restored(cached) == (filled_dir / "charts.jsonl").stat().st_size
    assert graph_of(cached) == replayed


def test_a_smaller_replay_than_state_cache_min_bytes_saves_nothing(store_dir: Path) -> None:
    with Store(store_dir, config=NEVER) as store:
        fill(store, "abc")
    with Store(store_dir, config=NEVER) as store:
        store.read_graph(limit=1)

    assert not (store_dir / CACHE).exists()


def test_lines_written_after_the_cache_are_replayed_on_top_of_it(
    filled_dir: Path, open_store: Callable[..., Store]
) -> None:
    with Store(filled_dir, config=NEVER) as writer:
        cached_size = (filled_dir / "charts.jsonl").stat().st_size
        writer.add_observations([{"entityName": "a", "contents": ["later"]}])
        writer.delete_entities(["e"])
        writer.update_entity({"name": "b", "newName": "bb"})

    reader = open_store(config=EAGER)

    assert restored(reader) == cached_size
    assert graph_of(reader) == graph_of(open_store(config=NEVER))
    assert "later" in reader.open_entities(["a"]).entities[0].observations


def test_a_cache_is_ignored_when_the_bytes_it_covers_changed(
    filled_dir: Path, tmp_path: Path, open_store: Callable[..., Store]
) -> None:
    """Same header, other lines (another tool's in-place rewrite): the file wins, not the cache."""
    other_dir = tmp_path / "other" / ".coaia"
    with Store(other_dir) as other:
        fill(other, "vwxyz")
    path = filled_dir / "charts.jsonl"
    header = path.read_bytes().splitlines(keepends=True)[0]
    path.write_bytes(header + b"".join((other_dir / "charts.jsonl").read_bytes().splitlines(keepends=True)[1:]))

    store = open_store(config=EAGER)

    assert restored(store) == 0
    assert [e["name"] for e in graph_of(store)["entities"]] == list("vwxyz")


def test_a_cache_of_a_file_replaced_by_compaction_is_ignored(
    filled_dir: Path, open_store: Callable[..., Store]
) -> None:
    with Store(filled_dir, config=NEVER) as other_process:
        other_process.delete_entities(["c"])
        other_process.compact()

    store = open_store(config=NEVER)

    assert restored(store) == 0
    assert "c" not in [e["name"] for e in graph_of(store)["entities"]]


def test_compaction_saves_a_cache_of_the_new_file(store_dir: Path, open_store: Callable[..., Store]) -> None:
    with Store(store_dir, config=EAGER) as store:
        fill(store, "abcd")
        store.compact()

    fresh = open_store(config=NEVER)

    assert restored(fresh) == (store_dir / "charts.jsonl").stat().st_size
    assert len(graph_of(fresh)["entities"]) == 4


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _payload_byte_flipped(data: bytes) -> bytes:
    return data[:-3] + bytes([data[-3] ^ 0x40]) + data[-2:]


def _key_byte_flipped(data: bytes) -> bytes:
    return data[:20] + bytes([data[20] ^ 0x01]) + data[21:]


def _key_middle_bit_flipped(data: bytes) -> bytes:
    """Inside the key's numbers (line count, applied records, ...): a flip marshal would still load."""
    middle = 20 + struct.unpack_from("<Q", data, 8)[0] // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        _truncated,
        _payload_byte_flipped,
        _key_byte_flipped,
        _key_middle_bit_flipped,
        lambda _: b"",
        lambda _: b"\x00" * 4096,
        lambda d: b"coaia-st" + b"\xff" * 64,
    ],
    ids=["truncated", "payload-bit", "key-bit", "key-middle-bit", "empty", "zeros", "garbage-after-magic"],
)
def test_a_damaged_cache_is_ignored_and_the_file_replayed(
    filled_dir: Path, open_store: Callable[..., Store], damage: Callable[[bytes], bytes]
) -> None:
    expected = graph_of(open_store(config=NEVER))
    cache = filled_dir / CACHE
    cache.write_bytes(damage(cache.read_bytes()))

    store = open_store(config=EAGER)

    assert restored(store) == 0
    assert graph_of(store) == expected


def test_a_damaged_cache_is_replaced_by_a_good_one(filled_dir: Path, open_store: Callable[..., Store]) -> None:
    cache = filled_dir / CACHE
    cache.write_bytes(_truncated(cache.read_bytes()))
    open_store(config=EAGER).read_graph(limit=1)

    assert restored(open_store(config=NEVER)) == (filled_dir / "charts.jsonl").stat().st_size


def test_a_file_with_damaged_lines_is_never_cached(damaged_store_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The damage must be found and reported on every load, so the damaged prefix is replayed each time."""
    for _ in range(2):
        with Store(damaged_store_dir, config=EAGER) as store:
            assert store.status().degraded

    assert not (damaged_store_dir / CACHE).exists()


def test_a_cache_that_cannot_be_saved_costs_nothing_but_speed(
    store_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(store_dir, config=NEVER) as store:
        fill(store, "abc")
    (store_dir / ".cache").write_text("a file where the cache directory goes")

    with caplog.at_level(logging.INFO), Store(store_dir, config=EAGER) as store:
        names = [e["name"] for e in graph_of(store)["entities"]]

    assert names == list("abc")
    assert "could not save charts.jsonl.state" in caplog.text


def test_each_context_has_its_own_cache(store_dir: Path, open_store: Callable[..., Store]) -> None:
    with Store(store_dir, config=EAGER) as store:
        store.create_entities([{"name": "w", "entityType": "t"}], context="work")
        store.create_entities([{"name": "d", "entityType": "t"}])
    with Store(store_dir, config=EAGER) as store:
        store.read_graph(limit=1)

    fresh = open_store(config=NEVER)

    assert restored(fresh, "work") > 0 and restored(fresh, "default") > 0
    assert [e.name for e in fresh.read_graph(context="work").entities] == ["w"]


_names = st.sampled_from("abcdef")
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), _names),
        st.tuples(st.just("observe"), _names),
        st.tuples(st.just("relate"), _names, _names),
        st.tuples(st.just("delete"), _names),
        st.tuples(st.just("rename"), _names, _names),
        st.tuples(st.just("checkpoint")),
    ),
    max_size=25,
)


def _apply(store: Store, operation: tuple[str, ...]) -> None:
    kind, *names = operation
    existing = {e.name for e in store.read_graph(limit=1000).entities}
    if kind == "create":
        store.create_entities([{"name": names[0], "entityType": "t"}], if_exists="skip")
    elif kind == "observe" and names[0] in existing:
        store.add_observations([{"entityName": names[0], "contents": [f"seen {len(existing)}"]}])
    elif kind == "relate" and set(names) <= existing:
        store.create_relations([{"from": names[0], "to": names[1], "relationType": "r"}])
    elif kind == "delete":
        store.delete_entities([names[0]])
    elif kind == "rename" and names[0] in existing and names[1] not in existing:
        store.update_entity({"name": names[0], "newName": names[1]})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=_operations)
def test_a_store_started_from_the_cache_equals_the_writer_at_every_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, ...]]
) -> None:
    store_dir = tmp_path_factory.mktemp("cache") / ".coaia"
    with Store(store_dir, config=NEVER) as writer:
        for operation in [*operations, ("checkpoint",)]:
            if operation[0] != "checkpoint":
                _apply(writer, operation)
                continue
            with Store(store_dir, config=EAGER) as fresh:  # starts from the last checkpoint's cache, if any
                assert graph_of(fresh) == graph_of(writer)
