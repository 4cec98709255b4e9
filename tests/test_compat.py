"""Files written by other MCP knowledge-graph servers load, migrate and stay readable without loss.

The fixtures in ``tests/fixtures/`` are real-shaped: each line is what the named tool writes with
``JSON.stringify`` (compact, raw UTF-8, its key order, its line ending); ``make_fixtures.mjs``
regenerates them with node. Expectations are derived from the fixture bytes with the stdlib
``json`` module, independently of the engine's own parser.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faults import crc_line, data_file, history_copies, line_spans

from coaia_store import Store

FIXTURES = Path(__file__).parent / "fixtures"
ENTITY_KINDS = frozenset({"entity", "narrative_beat"})
GRAPH_KINDS = ENTITY_KINDS | {"relation"}
CRC_SUFFIX_LEN = len(b',"_crc":"00000000"}')
NARRATIVE = "coaia-narrative.jsonl"
MIGRATED_NOTE = "Migrated by coaia-store ✓"
Record = dict[str, Any]
RelKey = tuple[str, str, str]
OpenStore = Callable[..., Store]


@dataclass(frozen=True)
class Case:
    fixture: str
    context: str

    def __str__(self) -> str:
        return f"{self.fixture.removesuffix('.jsonl')}@{self.context}"

    @property
    def data(self) -> bytes:
        return (FIXTURES / self.fixture).read_bytes()


CASES = [
    Case("official-memory.jsonl", "default"),
    Case("coaia-memory.jsonl", "default"),
    Case("coaia-spiral-work.jsonl", "default"),
    Case("coaia-spiral-work.jsonl", "work"),
    Case("aim-memory.jsonl", "default"),
    Case(NARRATIVE, "default"),
]
every_case = pytest.mark.parametrize("case", CASES, ids=str)


# ------------------------------------------------------------------ helpers


def install(store_dir: Path, case: Case) -> Path:
    store_dir.mkdir(parents=True, exist_ok=True)
    path = data_file(store_dir, case.context)
    path.write_bytes(case.data)
    return path


def source_lines(data: bytes) -> list[bytes]:
    """The non-blank lines of a foreign file (the last one may lack its newline)."""
    return [line for line in data.split(b"\n") if line.strip()]


def as_record(line: bytes) -> Record:
    """What a foreign line means: a JSON object, or a ``#`` comment kept as a ``_comment`` record."""
    if line.startswith(b"#"):
        return {"type": "_comment", "text": line.decode()}
    record: Record = json.loads(line)
    return record


def source_records(case: Case) -> list[Record]:
    return [as_record(line) for line in source_lines(case.data)]


def migrated_form(line: bytes) -> bytes:
    """``line`` as migration writes it: ``,"_crc":"xxxxxxxx"`` inserted before the final ``}``."""
    if line.startswith(b"#"):
        line = json.dumps(as_record(line), ensure_ascii=False, separators=(",", ":")).encode()
    return crc_line(line[:-1])[:-1]


def checksum_is_valid(line: bytes) -> bool:
    head, suffix = line[:-CRC_SUFFIX_LEN], line[-CRC_SUFFIX_LEN:]
    return suffix == b',"_crc":"%08x"}' % zlib.crc32(head)


def file_lines(path: Path) -> list[bytes]:
    """The lines of a file this engine wrote: every one newline-terminated."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [data[start : end - 1] for start, end in line_spans(data)]


def rel_key(record: Record) -> RelKey:
    return (record["from"], record["relationType"], record["to"])


def names_of(case: Case, kinds: frozenset[str] = ENTITY_KINDS) -> list[str]:
    return [r["name"] for r in source_records(case) if r["type"] in kinds]


def first_entity(case: Case) -> str:
    return names_of(case)[0]


def observe(store: Store, name: str, text: str, context: str = "default") -> None:
    store.add_observations([{"entityName": name, "contents": [text]}], context=context)


def first_write(store: Store, case: Case) -> None:
    """The first mutation on the foreign file: one observation added to its first entity."""
    observe(store, first_entity(case), MIGRATED_NOTE, case.context)


def assert_holds(shown: Record, record: Record) -> None:
    """Every key the foreign record carries is shown with its exact value (``type`` aside)."""
    for key, value in record.items():
        if key != "type":
            assert shown.get(key) == value, f"{record.get('name') or rel_key(record)}: {key!r} lost or changed"


def entity_views(store: Store, context: str, names: list[str]) -> dict[str, Record]:
    return {e.name: e.model_dump(by_alias=True) for e in store.open_entities(names, context=context).entities}


def relation_views(store: Store, context: str) -> dict[RelKey, Record]:
    shown = [r.model_dump(by_alias=True) for r in store.read_graph(context=context).relations]
    return {rel_key(r): r for r in shown}


def kept_extras(store: Store, context: str) -> list[Record]:
    return store.graph(context).read(lambda state: list(state.extras))


# ------------------------------------------------------------------ loading


@every_case
def test_foreign_file_loads_every_entity_and_relation_with_all_their_fields(
    store_dir: Path, store: Store, case: Case
) -> None:
    install(store_dir, case)
    records = source_records(case)
    entities = [r for r in records if r["type"] in ENTITY_KINDS]
    relations = [r for r in records if r["type"] == "relation"]

    page = store.read_graph(context=case.context)
    opened = entity_views(store, case.context, [r["name"] for r in entities])
    listed = relation_views(store, case.context)

    assert [e.name for e in page.entities] == [r["name"] for r in entities]
    for record in entities:
        assert opened[record["name"]]["entityType"] == record.get("entityType", record["type"])
        assert opened[record["name"]]["context"] == case.context
        assert_holds(opened[record["name"]], record)
    assert sorted(listed) == sorted(rel_key(r) for r in relations)
    for record in relations:
        assert_holds(listed[rel_key(record)], record)


@every_case
def test_lines_that_are_neither_entities_nor_relations_are_kept_as_records(
    store_dir: Path, store: Store, case: Case
) -> None:
    install(store_dir, case)

    expected = [r for r in source_records(case) if r["type"] not in GRAPH_KINDS]

    assert kept_extras(store, case.context) == expected


@pytest.mark.parametrize(
    ("case", "line"),
    [
        (Case("aim-memory.jsonl", "default"), {"type": "_aim", "source": "mcp-knowledge-graph"}),
        (Case("coaia-spiral-work.jsonl", "work"), {"type": "_comment", "text": "# COAIA Charts for work context"}),
    ],
    ids=["aim-marker", "spiral-comment"],
)
def test_aim_marker_and_spiral_comment_are_kept(store_dir: Path, store: Store, case: Case, line: Record) -> None:
    install(store_dir, case)

    assert kept_extras(store, case.context) == [line]


def test_narrative_beat_lines_load_as_entities_of_type_narrative_beat(store_dir: Path, store: Store) -> None:
    case = Case(NARRATIVE, "default")
    install(store_dir, case)
    beats = [r for r in source_records(case) if "narrative_beat" in (r["type"], r.get("entityType"))]
    raw = [r for r in beats if r["type"] == "narrative_beat"]

    page = store.read_graph(entity_types=["narrative_beat"])

    assert len(raw) == 2 and len(beats) == 3  # the fixture holds both shapes
    assert [e.name for e in page.entities] == [r["name"] for r in beats]
    assert {e.entityType for e in page.entities} == {"narrative_beat"}
    shown = {e.name: e.model_dump(by_alias=True) for e in page.entities}
    for record in raw:
        assert {"narrative", "relational_alignment", "four_directions"} <= shown[record["name"]].keys()
        assert_holds(shown[record["name"]], record)


@every_case
def test_reading_a_foreign_file_leaves_it_untouched(store_dir: Path, store: Store, case: Case) -> None:
    path = install(store_dir, case)
    store.read_graph()
    store.read_graph(context=case.context, entity_types=["structural_tension_chart"], limit=2)
    store.open_entities(names_of(case))
    store.status()

    assert path.read_bytes() == case.data
    assert os.listdir(store_dir) == [path.name]  # no lock, history or recovery files either


@every_case
def test_foreign_file_is_reported_healthy_and_not_yet_checksummed(store_dir: Path, store: Store, case: Case) -> None:
    """Most tools end the file without a newline: its last record is whole, not a torn tail."""
    install(store_dir, case)

    [info] = store.list_contexts()

    assert (info.name, info.checksummed, info.degraded) == (case.context, False, False)
    assert (info.tornTail, info.damagedLines) == (None, [])


# ------------------------------------------------------------------ migration on the first write


@every_case
def test_first_write_keeps_the_original_bytes_in_history(store_dir: Path, store: Store, case: Case) -> None:
    path = install(store_dir, case)

    first_write(store, case)

    assert history_copies(store_dir) == [case.data]
    header = json.loads(file_lines(path)[0])
    assert gzip.decompress((store_dir / header["history"]).read_bytes()) == case.data


@every_case
def test_first_write_rewrites_the_file_as_a_header_then_checksummed_lines(
    store_dir: Path, store: Store, case: Case
) -> None:
    path = install(store_dir, case)

    first_write(store, case)

    lines = file_lines(path)
    header = json.loads(lines[0])
    assert (header["type"], header["format"], header["version"]) == ("_coaia", "coaia-store", 1)
    assert all(checksum_is_valid(line) for line in lines)
    assert next(c for c in store.list_contexts() if c.name == case.context).checksummed


@every_case
def test_first_write_keeps_every_original_line_byte_for_byte(store_dir: Path, store: Store, case: Case) -> None:
    """Each original line comes back, in its place, with only ``,"_crc":"…"`` added (comments as
    ``_comment`` records); ``_op``/``_ts`` mark only the line this call appended."""
    path = install(store_dir, case)
    originals = source_lines(case.data)

    first_write(store, case)

    lines = file_lines(path)
    assert lines[1 : 1 + len(originals)] == [migrated_form(line) for line in originals]
    written = [line for line in lines if "_op" in json.loads(line)]
    assert written == lines[-1:] and len(lines) == len(originals) + 2
    assert json.loads(written[0])["observations"][-1] == MIGRATED_NOTE


@every_case
def test_migrated_file_still_reads_in_the_official_memory_server(store_dir: Path, store: Store, case: Case) -> None:
    """Replays the official server's loadGraph: JSON.parse every line, keep type entity/relation.

    (It keeps every copy of a name; the last one, compared here, is the current one.)
    """
    path = install(store_dir, case)
    first_write(store, case)

    entities: dict[str, Record] = {}
    relations: set[RelKey] = set()
    for line in file_lines(path):
        item = json.loads(line)
        assert isinstance(item, dict)
        if item.get("type") == "entity":
            assert isinstance(item["name"], str) and isinstance(item["entityType"], str)
            assert all(isinstance(o, str) for o in item["observations"])
            entities[item["name"]] = item
        elif item.get("type") == "relation":
            assert all(isinstance(item[k], str) for k in ("from", "to", "relationType"))
            relations.add(rel_key(item))

    ours = entity_views(store, case.context, list(entities))
    assert {n: (e["entityType"], e["observations"]) for n, e in entities.items()} == {
        n: (e["entityType"], e["observations"]) for n, e in ours.items()
    }
    assert relations == set(relation_views(store, case.context))


# ------------------------------------------------------------------ unknown keys through every rewrite


def _reopen(store: Store, open_store: OpenStore) -> Store:
    store.close()
    return open_store()


def _narrative_record(match: Callable[[Record], bool]) -> Record:
    return next(r for r in source_records(Case(NARRATIVE, "default")) if match(r))


@pytest.mark.parametrize(
    "name", ["Waabinong_East", "chart_1771269081608_beat_1771269991875"], ids=["top-level-key", "raw-beat"]
)
def test_unknown_keys_and_metadata_survive_updates_compaction_and_reopen(
    store_dir: Path, open_store: OpenStore, name: str
) -> None:
    install(store_dir, Case(NARRATIVE, "default"))
    original = _narrative_record(lambda r: r.get("name") == name)
    observed = {**original, "observations": [*original["observations"], "Seen again 👀"]}
    expected = {**observed, "metadata": {**original["metadata"], "updatedAt": "2026-02-17T08:00:00.000Z"}}
    store = open_store()

    observe(store, name, "Seen again 👀")
    assert_holds(entity_views(store, "default", [name])[name], observed)
    store.update_entity({"name": name, "metadata": {"updatedAt": "2026-02-17T08:00:00.000Z"}})
    assert_holds(entity_views(store, "default", [name])[name], expected)
    assert store.compact()
    assert_holds(entity_views(store, "default", [name])[name], expected)
    store = _reopen(store, open_store)
    assert_holds(entity_views(store, "default", [name])[name], expected)
    on_disk = [json.loads(line) for line in file_lines(data_file(store_dir))]
    assert [r["type"] for r in on_disk if r.get("name") == name] == [original["type"]]


def test_unknown_relation_keys_survive_a_metadata_update_compaction_and_reopen(
    store_dir: Path, open_store: OpenStore
) -> None:
    install(store_dir, Case(NARRATIVE, "default"))
    original = _narrative_record(lambda r: "perspective" in r)
    metadata = {"createdAt": "2026-02-17T08:00:00.000Z", "strength": 0.95}
    expected = {**original, "metadata": metadata}
    store = open_store()

    store.create_relations([{**{k: original[k] for k in ("from", "to", "relationType")}, "metadata": metadata}])
    assert_holds(relation_views(store, "default")[rel_key(original)], expected)
    assert store.compact()
    assert_holds(relation_views(store, "default")[rel_key(original)], expected)
    store = _reopen(store, open_store)
    assert_holds(relation_views(store, "default")[rel_key(original)], expected)


# ------------------------------------------------------------------ another tool rewrites the file


def coaia_memory_rewrite(path: Path, change: Callable[[list[Record]], None]) -> bytes:
    """What coaia-memory's loadGraph + saveGraph do to a file: keep whole entity/relation objects (every
    key they carry, ours included), drop every other line, apply ``change``, and ``fs.writeFile`` the
    ``lines.join("\\n")`` in place (same inode, no final newline)."""
    items = [json.loads(line) for line in path.read_bytes().split(b"\n") if line.strip()]
    entities = [i for i in items if i.get("type") == "entity"]
    relations = [i for i in items if i.get("type") == "relation"]
    change(entities)
    lines = [json.dumps({**e, "type": "entity"}, ensure_ascii=False, separators=(",", ":")) for e in entities]
    lines += [json.dumps({**r, "type": "relation"}, ensure_ascii=False, separators=(",", ":")) for r in relations]
    data = "\n".join(lines).encode()
    with path.open("r+b") as f:  # fs.writeFile: O_TRUNC on the same inode
        f.truncate(0)
        f.write(data)
    return data


def _add_observation(name: str, text: str) -> Callable[[list[Record]], None]:
    def change(entities: list[Record]) -> None:
        next(e for e in entities if e["name"] == name)["observations"].append(text)

    return change


def _migrated(store_dir: Path, store: Store) -> tuple[Case, Path]:
    case = Case("coaia-memory.jsonl", "default")
    path = install(store_dir, case)
    first_write(store, case)
    store.compact()  # one line per record, so the other tool's rewrite keeps each of our lines whole
    return case, path


EDITED_NOTE = "Edited in coaia-memory ✍️"


def test_file_rewritten_without_the_header_is_read_as_legacy_again(store_dir: Path, open_store: OpenStore) -> None:
    """coaia-memory dropped our header and wrote back an edited record with its now stale ``_crc``."""
    case, path = _migrated(store_dir, open_store())
    name = first_entity(case)

    coaia_memory_rewrite(path, _add_observation(name, EDITED_NOTE))
    fresh = open_store()

    [info] = fresh.list_contexts()
    assert (info.checksummed, info.degraded, info.tornTail) == (False, False, None)
    assert entity_views(fresh, "default", [name])[name]["observations"][-2:] == [MIGRATED_NOTE, EDITED_NOTE]
    assert [e.name for e in fresh.read_graph().entities] == names_of(case)


@pytest.mark.parametrize("growth", ["shrinks", "grows"])
def test_open_store_sees_an_in_place_rewrite_by_another_tool(
    store_dir: Path, open_store: OpenStore, growth: str
) -> None:
    """A long-lived server keeps reading the file that coaia-memory rewrote under it (same inode)."""
    store = open_store()
    case, path = _migrated(store_dir, store)
    name = first_entity(case)
    size = path.stat().st_size
    note = EDITED_NOTE + (" and then some" * 40 if growth == "grows" else "")

    rewritten = coaia_memory_rewrite(path, _add_observation(name, note))

    assert (len(rewritten) > size) == (growth == "grows")
    assert entity_views(store, "default", [name])[name]["observations"][-1] == note
    assert [e.name for e in store.read_graph().entities] == names_of(case)
    assert store.status().problems == []


def test_rewritten_file_migrates_again_on_the_next_write_without_loss(store_dir: Path, open_store: OpenStore) -> None:
    case, path = _migrated(store_dir, open_store())
    name = first_entity(case)
    rewritten = coaia_memory_rewrite(path, _add_observation(name, EDITED_NOTE))
    store = open_store()

    observe(store, name, "Back in coaia-store")

    assert rewritten in history_copies(store_dir)
    assert all(checksum_is_valid(line) for line in file_lines(path))
    notes = entity_views(store, "default", [name])[name]["observations"][-3:]
    assert notes == [MIGRATED_NOTE, EDITED_NOTE, "Back in coaia-store"]


@pytest.mark.parametrize("at", [3, -1], ids=["mid-file", "before-last"])
def test_damaged_line_in_a_foreign_file_does_not_cost_its_unterminated_last_record(
    store_dir: Path, open_store: OpenStore, at: int
) -> None:
    """Upstream #3173 shape: one bad line; the official server still ends the file without a newline."""
    case = Case("official-memory.jsonl", "default")
    lines = source_lines(case.data)
    damaged = b"\n".join([*lines[:at], b'{"type":"entity","name":"Half', *lines[at:]])
    store_dir.mkdir(parents=True)
    (store_dir / "charts.jsonl").write_bytes(damaged)
    store = open_store()
    last = as_record(lines[-1])

    observe(store, first_entity(case), "still here")

    assert rel_key(last) in relation_views(store, "default")
    assert rel_key(last) in relation_views(open_store(), "default")
    assert [d.line for d in store.list_contexts()[0].damagedLines] == [at % len(lines) + 1]
