"""Append-only writes, tombstones, replay, and compaction through the public API.

Costs are measured by counting lines and bytes, never time. Small compaction thresholds come
from ``StoreConfig(compaction=CompactionConfig(minBytes=0, garbageRatio=...))``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from faults import SCALE, data_file, entity, history_copies, line_spans, raw_state, relation

from coaia_store import Store
from coaia_store.graph.config import CompactionConfig, StoreConfig

FIXTURES = Path(__file__).parent / "fixtures"
LIVE = 4  # entities created up front by the threshold tests
Record = dict[str, Any]
OpenStore = Callable[..., Store]


def threshold(ratio: float) -> StoreConfig:
    return StoreConfig(compaction=CompactionConfig(minBytes=0, garbageRatio=ratio))


NEVER_AUTO = StoreConfig(compaction=CompactionConfig(minBytes=1 << 40))


def line_count(path: Path) -> int:
    return len(line_spans(path.read_bytes()))


def records_of(path: Path) -> list[Record]:
    """Each line of a file as its record, without the checksum key."""
    data = path.read_bytes()
    return [{k: v for k, v in json.loads(data[s:e]).items() if k != "_crc"} for s, e in line_spans(data)]


def note(store: Store, name: str, text: str, context: str | None = None) -> None:
    store.add_observations([{"entityName": name, "contents": [text]}], context=context)


def with_live_entities(store: Store) -> None:
    store.create_entities([entity(f"e{i}", "created") for i in range(LIVE)])


def superseding_writes_to_trigger(ratio: float) -> int:
    """The spec, in exact arithmetic: compact once superseded / written records reaches ``ratio``."""
    k = 1
    while Fraction(k, LIVE + k) < Fraction(ratio):
        k += 1
    return k


def _key(record: Record) -> str | tuple[str, str, str]:
    return record.get("name") or (record["from"], record["relationType"], record["to"])


def compaction_events(store: Store) -> list[dict[str, Any]]:
    return [e for e in store.recovery.entries() if e.get("action") == "compacted"]


def busy_graph(store: Store) -> None:
    """Creates, updates, a rename, relations and deletes: a file full of superseded records."""
    store.create_entities([entity(n, f"{n} exists") for n in ("ada", "bob", "cy", "dee", "eve")])
    store.create_relations([relation("ada", "bob"), relation("bob", "cy"), relation("cy", "dee", "mentors")])
    note(store, "ada", "likes tea 🍵")
    store.update_entity({"name": "cy", "newName": "cyd", "metadata": {"level": 1}})
    store.delete_entities(["bob"])
    store.delete_relations([relation("cyd", "dee", "mentors")])
    note(store, "eve", "joined in 2026")
    store.create_relations([relation("eve", "ada", "knows")])


# ------------------------------------------------------------------ appending


MUTATIONS: dict[str, Callable[[Store], object]] = {
    "add_observations": lambda s: note(s, "e1", "another note"),
    "delete_observations": lambda s: s.delete_observations([{"entityName": "e1", "observations": ["created"]}]),
    "update_entity": lambda s: s.update_entity({"name": "e2", "metadata": {"phase": "germination"}}),
    "rename": lambda s: s.update_entity({"name": "e2", "newName": "e2-renamed"}),
    "create_entities(2)": lambda s: s.create_entities([entity("x1"), entity("x2")]),
    "create_relations(2)": lambda s: s.create_relations([relation("e0", "e1"), relation("e1", "e2")]),
    "delete_entities(2)": lambda s: s.delete_entities(["e0", "e3"]),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=str)
def test_every_mutating_call_appends_exactly_one_line(store: Store, store_dir: Path, mutation: str) -> None:
    with_live_entities(store)
    before = data_file(store_dir).read_bytes()

    MUTATIONS[mutation](store)

    after = data_file(store_dir).read_bytes()
    assert after.startswith(before)
    assert after[len(before) :].count(b"\n") == 1 and after.endswith(b"\n")


def test_update_cost_does_not_depend_on_graph_size(open_store: OpenStore, store_dir: Path) -> None:
    """The same update appends the same number of bytes to a 1-entity and a large graph."""
    store = open_store(config=NEVER_AUTO)
    appended: dict[str, list[int]] = {}
    for context, size in (("small", 1), ("large", 400 * SCALE)):
        store.create_entities([entity(f"e{i}", "created") for i in range(size)], context=context)
        path, appended[context] = data_file(store_dir, context), []
        for k in range(5):
            before = path.read_bytes()
            note(store, "e0", f"progress note {k}", context)
            after = path.read_bytes()
            assert after.startswith(before) and after[len(before) :].count(b"\n") == 1
            appended[context].append(len(after) - len(before))

    assert appended["small"] == appended["large"]


def test_deletes_append_tombstones(store: Store, store_dir: Path) -> None:
    with_live_entities(store)
    store.create_relations([relation("e0", "e1"), relation("e1", "e2")])

    store.delete_entities(["e0"])
    store.delete_relations([relation("e1", "e2")])

    *_, entity_tombstone, relation_tombstone = records_of(data_file(store_dir))
    assert {k: entity_tombstone[k] for k in ("type", "name")} == {"type": "delete_entity", "name": "e0"}
    assert {k: relation_tombstone[k] for k in ("type", "from", "relationType", "to")} == {
        "type": "delete_relation",
        "from": "e1",
        "relationType": "relates_to",
        "to": "e2",
    }
    assert store.read_graph().relations == []  # e0's relation went with it, without a tombstone of its own


def test_replay_gives_the_latest_state(open_store: OpenStore) -> None:
    store = open_store()
    busy_graph(store)

    replayed = open_store()

    assert raw_state(replayed) == raw_state(store)
    page = replayed.read_graph()
    assert [e.name for e in page.entities] == ["ada", "dee", "eve", "cyd"]
    assert page.entities[0].observations == ["ada exists", "likes tea 🍵"]
    assert page.entities[3].metadata == {"level": 1}
    assert sorted((r.from_, r.relationType, r.to) for r in page.relations) == [("eve", "knows", "ada")]


# ------------------------------------------------------------------ automatic compaction


@pytest.mark.parametrize("ratio", [0.5, 0.75])
def test_auto_compaction_waits_for_the_superseded_share_to_reach_the_threshold(
    open_store: OpenStore, store_dir: Path, ratio: float
) -> None:
    store = open_store(config=threshold(ratio))
    path = data_file(store_dir)
    with_live_entities(store)
    trigger = superseding_writes_to_trigger(ratio)

    for k in range(1, trigger):
        note(store, "e0", f"update {k}")
        assert line_count(path) == 2 + k  # header, the creating batch, k updates: nothing rewritten yet
    assert history_copies(store_dir) == []
    before = path.read_bytes()
    note(store, "e0", f"update {trigger}")

    [old] = history_copies(store_dir)
    assert old.startswith(before) and old[len(before) :].count(b"\n") == 1  # the old file, with this call's line
    assert line_count(path) == 1 + LIVE
    assert raw_state(open_store())[0]["e0"]["observations"][-1] == f"update {trigger}"


def test_compacted_file_holds_exactly_the_current_state(open_store: OpenStore, store_dir: Path) -> None:
    store = open_store(config=NEVER_AUTO)
    busy_graph(store)
    entities, relations, extras = raw_state(store)

    assert store.compact()

    header, *rest = records_of(data_file(store_dir))
    assert header["type"] == "_coaia"
    assert len(rest) == len(entities) + len(relations) + len(extras)
    assert [r for r in rest if r["type"] == "entity"] == list(entities.values())
    assert [r for r in rest if r["type"] == "relation"] == list(relations.values())
    assert raw_state(open_store()) == (entities, relations, extras)


def test_compaction_keeps_the_old_file_byte_for_byte_in_history(store: Store, store_dir: Path) -> None:
    busy_graph(store)
    old = data_file(store_dir).read_bytes()

    assert store.compact()

    assert history_copies(store_dir) == [old]
    [saved] = (store_dir / "history").rglob("*.jsonl.gz")
    assert records_of(data_file(store_dir))[0]["history"] == str(saved.relative_to(store_dir))


def test_compaction_is_logged_as_compacted(open_store: OpenStore, store_dir: Path) -> None:
    store = open_store(config=threshold(0.5))
    with_live_entities(store)
    old_size = data_file(store_dir).stat().st_size

    for k in range(superseding_writes_to_trigger(0.5)):
        note(store, "e1", f"update {k}")

    [event] = compaction_events(store)
    [saved] = (store_dir / "history").rglob("*.jsonl.gz")
    assert "superseded" in event["found"] and event["file"] == "charts.jsonl"
    assert event["history"] == str(saved.relative_to(store_dir))
    assert event["bytesBefore"] > old_size and event["bytesAfter"] == data_file(store_dir).stat().st_size


# ------------------------------------------------------------------ what compaction preserves


def test_compaction_keeps_insertion_order(store: Store) -> None:
    for i in range(8):
        store.create_entities([entity(f"e{i}")])
    note(store, "e3", "updated in place")
    store.delete_entities(["e5"])
    store.create_entities([entity("e5", "recreated")])
    order = [e.name for e in store.read_graph().entities]

    assert store.compact()

    assert [e.name for e in store.read_graph().entities] == order == ["e0", "e1", "e2", "e3", "e4", "e6", "e7", "e5"]


def test_compaction_keeps_the_op_and_ts_of_every_live_record(open_store: OpenStore, store_dir: Path) -> None:
    store = open_store(config=NEVER_AUTO)
    busy_graph(store)
    entities, relations, _ = raw_state(store)
    provenance = {n: (r["_op"], r["_ts"]) for n, r in [*entities.items(), *relations.items()]}

    assert store.compact()

    on_disk = records_of(data_file(store_dir))[1:]
    assert {_key(r): (r["_op"], r["_ts"]) for r in on_disk} == provenance
    reloaded_entities, reloaded_relations, _ = raw_state(open_store())
    assert {n: (r["_op"], r["_ts"]) for n, r in [*reloaded_entities.items(), *reloaded_relations.items()]} == provenance


def test_compaction_keeps_pass_through_records(store: Store, store_dir: Path) -> None:
    """The AIM marker of a migrated file stays through later writes and compactions, right after our header."""
    store_dir.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "aim-memory.jsonl", data_file(store_dir))
    note(store, "Coaia_Store", "migrated")
    note(store, "Coaia_Store", "then compacted")

    assert store.compact()

    marker = {"type": "_aim", "source": "mcp-knowledge-graph"}
    assert raw_state(store)[2] == [marker]
    assert records_of(data_file(store_dir))[1] == marker


# ------------------------------------------------------------------ other stores on the same directory


def test_store_opened_before_compaction_follows_the_new_file(open_store: OpenStore, store_dir: Path) -> None:
    writer, other = open_store(config=NEVER_AUTO), open_store(config=NEVER_AUTO)
    busy_graph(writer)
    before = raw_state(other)
    inode = data_file(store_dir).stat().st_ino

    assert writer.compact()
    assert data_file(store_dir).stat().st_ino != inode

    assert raw_state(other) == before == raw_state(writer)
    note(other, "ada", "written after the compaction")
    other.create_entities([entity("fay", "new")])
    assert raw_state(writer) == raw_state(other) == raw_state(open_store())
    assert [e.name for e in open_store().read_graph().entities] == ["ada", "dee", "eve", "cyd", "fay"]
    assert len(history_copies(store_dir)) == 1


# ------------------------------------------------------------------ explicit compaction


def _damage_a_middle_line(path: Path) -> None:
    """Change one character inside a middle line: still JSON, but its checksum no longer matches."""
    lines = path.read_bytes().split(b"\n")
    middle = len(lines) // 2
    assert b"exists" in lines[middle]
    lines[middle] = lines[middle].replace(b"exists", b"EXISTS", 1)
    path.write_bytes(b"\n".join(lines))


def test_compact_returns_false_and_changes_nothing_on_a_damaged_context(open_store: OpenStore, store_dir: Path) -> None:
    open_store().create_entities([entity(f"e{i}", f"e{i} exists") for i in range(3)])
    for i in range(4):
        open_store().create_entities([entity(f"f{i}", f"f{i} exists")])
    _damage_a_middle_line(data_file(store_dir))
    damaged = data_file(store_dir).read_bytes()
    store = open_store()

    assert store.compact() is False

    assert data_file(store_dir).read_bytes() == damaged
    assert history_copies(store_dir) == [] and compaction_events(store) == []
    assert store.status().degraded


def test_compact_returns_true_and_rewrites_a_healthy_context(store: Store, store_dir: Path) -> None:
    busy_graph(store)
    size = data_file(store_dir).stat().st_size

    assert store.compact() is True

    assert data_file(store_dir).stat().st_size < size and len(compaction_events(store)) == 1


def test_compact_returns_false_for_a_context_without_a_file(store: Store) -> None:
    assert store.compact("never-written") is False


def test_auto_compaction_never_runs_on_a_damaged_context(open_store: OpenStore, store_dir: Path) -> None:
    for i in range(5):
        open_store().create_entities([entity(f"e{i}", f"e{i} exists")])
    _damage_a_middle_line(data_file(store_dir))
    store = open_store(config=threshold(0.5))

    for k in range(20):
        note(store, "e0", f"update {k}")

    assert history_copies(store_dir) == [] and line_count(data_file(store_dir)) == 6 + 20


# ------------------------------------------------------------------ leftovers of an interrupted compaction


def test_stale_temp_file_is_removed_on_the_next_write_and_logged(open_store: OpenStore, store_dir: Path) -> None:
    busy_graph(open_store())
    stale = data_file(store_dir).with_name("charts.jsonl.tmp")
    stale.write_bytes(data_file(store_dir).read_bytes()[:100])  # a compaction killed mid-write
    store = open_store()

    store.read_graph()
    assert stale.exists()  # reads never touch the directory
    note(store, "ada", "first write of this process")

    assert not stale.exists()
    [event] = [e for e in store.recovery.entries() if e.get("file") == "charts.jsonl.tmp"]
    assert event["action"] == "removed"
    assert raw_state(open_store())[0]["ada"]["observations"][-1] == "first write of this process"


def test_half_written_history_and_quarantine_copies_of_dead_processes_are_removed_on_the_next_write(
    open_store: OpenStore, store_dir: Path
) -> None:
    busy_graph(open_store())
    history_tmp = store_dir / "history" / "charts" / "20261121T000000000000Z-1.jsonl.gz.tmp"
    dead_copy = store_dir / ".recovery" / "quarantine" / ".charts.jsonl.999999999.120.tmp"
    live_copy = store_dir / ".recovery" / "quarantine" / f".charts.jsonl.{os.getpid()}.120.tmp"
    for leftover in (history_tmp, dead_copy, live_copy):
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"partial")
    store = open_store()

    note(store, "ada", "first write of this process")

    assert not history_tmp.exists() and not dead_copy.exists()
    assert live_copy.exists()  # a running process may still be writing it
    removed = {e["file"] for e in store.recovery.entries() if e.get("action") == "removed"}
    assert removed == {
        "history/charts/20261121T000000000000Z-1.jsonl.gz.tmp",
        ".recovery/quarantine/.charts.jsonl.999999999.120.tmp",
    }


_COMPACT = "import sys; from coaia_store import Store; Store(sys.argv[1]).compact(force=True)"


def test_compaction_writes_the_same_records_byte_for_byte_in_every_process(store: Store, store_dir: Path) -> None:
    store.create_entities([entity("a"), entity("b")])  # one line: a batch, its envelope given to both members
    store.close()
    written = set()
    for seed in range(6):  # the order of a set of keys changes with the process's hash seed
        copy = store_dir.parent / f"copy{seed}" / ".coaia"
        shutil.copytree(store_dir, copy)
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        subprocess.run([sys.executable, "-c", _COMPACT, str(copy)], env=env, check=True, timeout=60)
        written.add(data_file(copy).read_bytes().split(b"\n", 1)[1])  # after the header, which names its history

    assert len(written) == 1
