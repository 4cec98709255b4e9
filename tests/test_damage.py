"""Damaged files: torn tails (T6), garbage tails (T7), bit flips (T8), bad middle lines,
malformed legacy lines (T16), huge lines (T17), invalid UTF-8 and surrogates (T18),
read-only directories (T14) and files from a newer version.

The rules under test: a load never raises and never accepts changed content; everything it
skips is reported; a torn tail is repaired by the next write after its exact bytes are
quarantined; a damaged middle line is never cut away.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from faults import (
    SCALE,
    Snapshot,
    crc_line,
    data_file,
    entity,
    history_copies,
    line_spans,
    load_state,
    quarantined,
    raw_state,
    recovery_events,
    relation,
    scratch_dir,
    tmpfs,
    unsynced_io,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coaia_store import Store
from coaia_store.errors import CoaiaError, InvalidInputError, ReadOnlyError, RecordTooLargeError
from coaia_store.graph.config import CompactionConfig, StoreConfig
from coaia_store.safety.transfer import import_file

FAST = StoreConfig(fsync="never")  # building sample files; durability is not under test here
hypothesis_settings = settings(
    max_examples=100 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
TORN_TAIL = "truncated (torn tail)"
SKIPPED = "skipped on load"


# ------------------------------------------------------------------ building engine-written files


def _single(store: Store, i: int) -> None:
    store.create_entities([entity(f"e{i}", f"observation {i}")])


def _batch(store: Store, i: int) -> None:
    store.create_entities([entity(f"e{i}a", "é ✓ ünïcode"), entity(f"e{i}b")])


def _observe(store: Store, i: int) -> None:
    store.add_observations([{"entityName": "e0", "contents": [f"note {i}"]}])


def _relate(store: Store, i: int) -> None:
    store.create_relations([relation(f"e{i - 3}", f"e{i - 2}a")])


Writer = Callable[[Store, int], None]
MIXED: tuple[Writer, ...] = (_single, _batch, _observe, _relate)  # every kind of line, one superseding another
INDEPENDENT: tuple[Writer, ...] = (_single, _batch, _single, _relate)  # no record supersedes another


def build(store_dir: Path, calls: int, kinds: tuple[Writer, ...] = MIXED) -> list[Snapshot]:
    """Make ``calls`` writes (one line each); return the state after each line (index 0: before any)."""
    with Store(store_dir, config=FAST) as store:
        states = [raw_state(store)]
        for i in range(calls):
            kinds[i % len(kinds)](store, i)
            states.append(raw_state(store))
    return states


def without(state: Snapshot, name: str) -> Snapshot:
    entities = dict(state[0])
    entities.pop(name, None)
    return entities, state[1], state[2]


def place(store_dir: Path, data: bytes) -> Path:
    store_dir.mkdir(parents=True, exist_ok=True)
    path = data_file(store_dir)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ T6: truncated tail, every cut point


def check_cut(store_dir: Path, data: bytes, k: int, states: list[Snapshot]) -> list[str]:
    """Cut ``data`` at ``k`` and check load, report, repair and reload; return what went wrong.

    A cut just before a line's newline leaves a whole record without its newline: it is
    read (no torn tail) and the next write adds the newline before its own line.
    """
    ends = [end for _, end in line_spans(data)]
    whole = k + 1 in ends
    complete = [end for end in ends if end <= k] + ([k] if whole else [])
    valid_end, expected = complete[-1], states[len(complete) - 1]  # the header adds no state
    torn = k != valid_end
    path = place(store_dir, data[:k])
    problems = []
    with Store(store_dir, config=FAST, io=unsynced_io()) as store:
        if raw_state(store) != expected:
            problems.append("loaded state is not the complete prefix")
        tail = store.list_contexts()[0].tornTail
        if (tail and (tail.offset, tail.length)) != ((valid_end, k - valid_end) if torn else None):
            problems.append(f"torn tail reported as {tail}")
        if bool(store.status().problems) != torn:
            problems.append("status().problems does not match the tail")
        if path.read_bytes() != data[:k]:
            problems.append("a read changed the file")
        store.create_entities([entity("after-repair")])
        logged = [e["range"] for e in store.recovery.entries() if e["action"] == TORN_TAIL]
    after = path.read_bytes()
    kept = data[:k] + b"\n" if whole else data[:valid_end]
    if not after.startswith(kept) or after.count(b"\n") != len(complete) + 1 or not after.endswith(b"\n"):
        problems.append("the repaired file is not the complete prefix plus one line")
    if quarantined(store_dir) != ([data[valid_end:k]] if torn else []):
        problems.append("quarantined bytes differ from the removed bytes")
    if logged != ([[valid_end, k]] if torn else []):
        problems.append("the recovery log does not hold exactly one entry for the cut")
    if without(load_state(store_dir), "after-repair") != expected:
        problems.append("state after the repairing write is not the prefix plus the new record")
    return [f"cut at {k}: {p}" for p in problems]


def test_a_torn_tail_at_every_cut_point_loads_the_complete_prefix_and_the_next_write_repairs_it(tmp_path: Path) -> None:
    source = tmp_path / "source" / ".coaia"
    states = build(source, 8)
    data = data_file(source).read_bytes()
    first = line_spans(data)[-3][0]
    mismatches = [
        m for k in range(first, len(data) + 1) for m in check_cut(tmp_path / f"cut{k}" / ".coaia", data, k, states)
    ]
    print(f"\nFIGURE T6: {len(data) + 1 - first} cut points across the last 3 lines, {len(mismatches)} mismatches")
    assert not mismatches, mismatches[:10]


# ------------------------------------------------------------------ T7: garbage and NUL tails


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Snapshot]:
    store_dir = tmp_path_factory.mktemp("sample") / ".coaia"
    states = build(store_dir, 6)
    return data_file(store_dir).read_bytes(), states[-1]


garbage = st.binary(min_size=1, max_size=64 << 10) | st.integers(1, 64 << 10).map(lambda n: b"\0" * n)


def damaged_part(junk: bytes) -> int:
    """How many leading bytes of ``junk`` (after the last good line) are damage, kept for ever.

    Only an unterminated fragment and lines of nothing but NUL bytes (a power loss's hole) after
    the last complete line that holds anything else are a torn tail; that line and all before it
    are damage.
    """
    kept = 0
    pos = 0
    while (nl := junk.find(b"\n", pos)) >= 0:
        if junk[pos:nl].strip(b"\0"):
            kept = nl + 1
        pos = nl + 1
    return kept


@hypothesis_settings
@given(junk=garbage, newline=st.booleans())
def test_garbage_after_the_last_line_is_never_accepted_and_only_what_a_crash_leaves_is_cut(
    sample_file: tuple[bytes, Snapshot], junk: bytes, newline: bool
) -> None:
    data, state = sample_file
    junk += b"\n" if newline else b""
    kept = damaged_part(junk)
    with scratch_dir() as store_dir:
        path = place(store_dir, data + junk)
        with Store(store_dir, config=FAST, io=unsynced_io()) as store:
            assert raw_state(store) == state
            info = store.list_contexts()[0]
            tail = info.tornTail
            assert (tail and (tail.offset, tail.length)) == (
                (len(data) + kept, len(junk) - kept) if kept < len(junk) else None
            )
            assert bool(info.damagedLines) == (kept > 0) and info.degraded == (kept > 0)
            assert sum(d.length for d in info.damagedLines) == kept
            store.create_entities([entity("after-repair")])
        after = path.read_bytes()
        assert after.startswith(data + junk[:kept]) and after.count(b"\n") == (data + junk[:kept]).count(b"\n") + 1
        assert (junk[kept:] in quarantined(store_dir)) if kept < len(junk) else True
        assert without(load_state(store_dir), "after-repair") == state


def test_damaged_complete_last_lines_are_kept_and_reported_never_cut(store_dir: Path) -> None:
    """Regression (issue 9): one byte changed in each of the last 3 lines; the next write cut all three."""
    build(store_dir, 6, (_single,))
    path = data_file(store_dir)
    data = path.read_bytes()
    spans = line_spans(data)[-3:]
    damaged = bytearray(data)
    for start, _ in spans:
        damaged[start + 10] ^= 0x01
    path.write_bytes(bytes(damaged))
    with Store(store_dir) as store:
        store.create_entities([entity("after")])
        (info,) = store.list_contexts()
        status = store.status()
    assert path.read_bytes().startswith(bytes(damaged))
    assert [d.line for d in info.damagedLines] == [5, 6, 7] and info.tornTail is None
    assert status.degraded and any("line 5, 6, 7" in p for p in status.problems)


def test_a_whole_last_record_without_its_newline_is_read_and_the_next_write_adds_the_newline(store_dir: Path) -> None:
    """Regression (issue 9): an editor removed the final newline; the next write cut the record."""
    build(store_dir, 3, (_single,))
    path = data_file(store_dir)
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    with Store(store_dir) as store:
        assert sorted(raw_state(store)[0]) == ["e0", "e1", "e2"]
        (info,) = store.list_contexts()
        assert info.tornTail is None and not info.degraded
        store.create_entities([entity("after")])
    assert path.read_bytes().startswith(data) and quarantined(store_dir) == []
    assert sorted(load_state(store_dir)[0]) == ["after", "e0", "e1", "e2"]


PRETTY_SHAPES: dict[str, Callable[[list[dict[str, Any]]], bytes]] = {
    "a JSON array": lambda records: json.dumps(records).encode(),
    "a pretty-printed JSON array": lambda records: json.dumps(records, indent=2).encode(),
    "pretty-printed records one after another (jq .)": lambda records: (
        b"\n".join(json.dumps(r, indent=2).encode() for r in records) + b"\n"
    ),
}


@pytest.mark.parametrize("shape", PRETTY_SHAPES.values(), ids=PRETTY_SHAPES.keys())
def test_a_file_that_is_json_but_not_jsonl_is_reported_and_never_changed(store_dir: Path, shape: Any) -> None:
    """Regression (issue 9): a pretty-printed file lost all its entities to the next write."""
    records = [good_record(i) for i in range(84)]
    path = place(store_dir, shape(records))
    before = path.read_bytes()
    with Store(store_dir) as store:
        (info,) = store.list_contexts()
        assert info.unreadable and "not JSONL" in info.unreadable and "coaia-store import" in info.unreadable
        assert store.status().degraded and any("not JSONL" in p for p in store.status().problems)
        with pytest.raises(CoaiaError, match="not JSONL"):
            store.create_entities([entity("after")])
        assert raw_state(store)[0] == {}
    assert path.read_bytes() == before and quarantined(store_dir) == []


@pytest.mark.parametrize("shape", PRETTY_SHAPES.values(), ids=PRETTY_SHAPES.keys())
def test_a_file_that_is_json_but_not_jsonl_imports_whole_once_moved_out(
    store_dir: Path, tmp_path: Path, shape: Any
) -> None:
    records = [good_record(i) for i in range(84)]
    moved = tmp_path / "charts.json"
    moved.write_bytes(shape(records))
    with Store(store_dir) as store:
        import_file(store, moved, context="default")
        assert raw_state(store, envelope=False)[0] == {r["name"]: r for r in records}


# ------------------------------------------------------------------ T8: single-bit flips

RecordKey = tuple[str, Any]


def records_by_line(data: bytes) -> list[set[RecordKey]]:
    """The record keys each line carries (batches unwrapped); the header carries none."""
    keys: list[set[RecordKey]] = []
    for start, end in line_spans(data):
        record = json.loads(data[start:end])
        members = record.get("records", [record]) if record["type"] == "batch" else [record]
        keys.append({_key(m) for m in members if m["type"] in ("entity", "relation")})
    return keys


def _key(record: dict[str, Any]) -> RecordKey:
    if record["type"] == "entity":
        return ("entity", record["name"])
    return ("relation", (record["from"], record["relationType"], record["to"]))


def state_keys(state: Snapshot) -> set[RecordKey]:
    return {("entity", n) for n in state[0]} | {("relation", k) for k in state[1]}


@dataclass
class FlipFile:
    """An engine-written file, what it loads to, and which records each line holds."""

    data: bytes
    state: Snapshot
    lines: list[set[RecordKey]]
    starts: list[int]

    @classmethod
    def build(cls, store_dir: Path, calls: int) -> FlipFile:
        state = build(store_dir, calls, INDEPENDENT)[-1]
        data = data_file(store_dir).read_bytes()
        return cls(data, state, records_by_line(data), [s for s, _ in line_spans(data)])

    def line_of(self, bit: int) -> int:
        return bisect.bisect_right(self.starts, bit // 8) - 1

    def may_lose(self, bit: int) -> set[RecordKey]:
        """A flip may lose its line's records, and the next line's too when it hits the newline."""
        line = self.line_of(bit)
        on_newline = line + 1 < len(self.starts) and bit // 8 == self.starts[line + 1] - 1
        return self.lines[line] | (self.lines[line + 1] if on_newline else set())


@contextmanager
def bits_flipped(path: Path, data: bytes, bits: list[int]) -> Iterator[bytes]:
    """Flip ``bits`` of the file holding ``data`` in place (no truncation: cheap), restore them after."""
    damaged = bytearray(data)
    for bit in bits:
        damaged[bit // 8] ^= 1 << (bit % 8)
    offsets = {bit // 8 for bit in bits}
    fd = os.open(path, os.O_WRONLY)
    try:
        for at in offsets:
            os.pwrite(fd, damaged[at : at + 1], at)
        yield bytes(damaged)
    finally:
        for at in offsets:
            os.pwrite(fd, data[at : at + 1], at)
        os.close(fd)


def flip_violations(store_dir: Path, f: FlipFile, bits: list[int]) -> list[str]:
    """Flip ``bits`` (in lines at least two apart), load with a fresh store, list every rule broken."""
    with bits_flipped(data_file(store_dir), f.data, bits) as damaged:
        try:
            with Store(store_dir, config=FAST, io=unsynced_io()) as store:
                loaded, info = raw_state(store), store.list_contexts()[0]
        except Exception as exc:  # noqa: BLE001 - a load must never raise; reported as a violation
            return [f"load raised {exc!r}"]
    problems = []
    entities, relations, extras = f.state
    changed = [n for n, r in loaded[0].items() if entities.get(n) != r]
    if changed or any(relations.get(k) != r for k, r in loaded[1].items()):
        problems.append("false accept: a changed record was loaded")
    if loaded[2] != extras:
        problems.append("false accept: a damaged line was kept as another record")
    if state_keys(f.state) - state_keys(loaded) - set().union(*(f.may_lose(b) for b in bits)):
        problems.append("records lost outside the damaged lines")
    regions = [(d.offset, d.offset + d.length) for d in info.damagedLines]
    regions += [(info.tornTail.offset, len(damaged))] if info.tornTail else []
    problems += [f"unreported flip of bit {b}" for b in bits if not any(s <= b // 8 < e for s, e in regions)]
    return problems


def flip_groups(f: FlipFile, bits: list[int], size: int) -> list[list[int]]:
    """Pack flips into loads of up to ``size``, no two in the same or adjacent lines, so each is judged alone."""
    groups: list[list[int]] = []
    open_groups: list[tuple[list[int], set[int]]] = []
    for bit in bits:
        line = f.line_of(bit)
        near = {line - 1, line, line + 1}
        group = next((g for g in open_groups if not g[1] & near), None)
        if group is None:
            group = ([], set())
            open_groups.append(group)
            groups.append(group[0])
        group[0].append(bit)
        group[1].add(line)
        if len(group[0]) == size:
            open_groups.remove(group)
    return groups


@dataclass
class FlipTally:
    flips: int = 0
    loads: int = 0
    violations: list[str] = field(default_factory=list)

    def run(self, store_dir: Path, f: FlipFile, groups: list[list[int]]) -> None:
        for group in groups:
            self.loads += 1
            found = flip_violations(store_dir, f, group)
            if found and len(group) > 1:  # judge each flip of a failing load on its own
                self.loads += len(group)
                found = [v for bit in group for v in flip_violations(store_dir, f, [bit])]
            self.flips += len(group)
            self.violations += found

    def count(self, kind: str) -> int:
        return sum(v.startswith(kind) for v in self.violations)

    def summary(self) -> str:
        return (
            f"{self.flips} single-bit flips in {self.loads} loads: {self.count('false accept')} false accepts, "
            f"{self.count('unreported')} unreported, {self.count('records lost')} losses outside the damaged line, "
            f"{self.count('load raised')} load errors"
        )


def test_no_single_bit_flip_in_a_200_record_file_is_accepted_or_unreported(tmp_path: Path) -> None:
    f = FlipFile.build(tmp_path / "source" / ".coaia", 160)
    body_bits = range(f.starts[1] * 8, len(f.data) * 8)
    sample = random.Random(20261121).sample(body_bits, min(len(body_bits), 5000 * SCALE))
    store_dir = tmp_path / "flips" / ".coaia"
    place(store_dir, f.data)
    tally = FlipTally()
    tally.run(store_dir, f, flip_groups(f, sample, 8))
    print(f"\nFIGURE T8: {sum(map(len, f.lines))} records, {len(f.data)} bytes: {tally.summary()}")
    assert not tally.violations, tally.violations[:10]


def test_no_single_bit_flip_in_the_header_is_accepted_or_unreported(tmp_path: Path) -> None:
    f = FlipFile.build(tmp_path / "source" / ".coaia", 4)
    store_dir = tmp_path / "flips" / ".coaia"
    place(store_dir, f.data)
    tally = FlipTally()
    tally.run(store_dir, f, [[bit] for bit in range(f.starts[1] * 8)])
    print(f"\nFIGURE T8 header: every bit of the {f.starts[1]}-byte header: {tally.summary()}")
    assert not tally.violations, tally.violations[:10]


# ------------------------------------------------------------------ a damaged middle line


@dataclass(frozen=True)
class MiddleDamage:
    data: bytes  # the whole damaged file
    bad: bytes  # the damaged line, newline included
    offset: int
    line: int  # 1-based; the header is line 1
    lost: str  # the entity that line held


def damage_a_middle_line(store_dir: Path) -> MiddleDamage:
    """Five entities, one line each; the third one's line gets one changed byte."""
    build(store_dir, 5, (_single,))
    path = data_file(store_dir)
    data = path.read_bytes()
    start, end = line_spans(data)[3]
    bad = data[start:end].replace(b"observation 2", b"observatioN 2")
    damaged = data[:start] + bad + data[end:]
    path.write_bytes(damaged)
    return MiddleDamage(damaged, bad, start, 4, "e2")


def test_a_damaged_middle_line_is_skipped_and_every_other_record_loads(store_dir: Path) -> None:
    damage = damage_a_middle_line(store_dir)
    with Store(store_dir) as store:
        names = sorted(raw_state(store)[0])
    assert names == sorted({"e0", "e1", "e2", "e3", "e4"} - {damage.lost})


def test_a_damaged_middle_line_makes_the_context_degraded_and_names_the_line(store_dir: Path) -> None:
    damage = damage_a_middle_line(store_dir)
    with Store(store_dir) as store:
        (info,) = store.list_contexts()
        status = store.status()
    assert info.degraded and status.degraded and info.tornTail is None
    assert [(d.line, d.offset, d.length) for d in info.damagedLines] == [(damage.line, damage.offset, len(damage.bad))]
    assert any(f"line {damage.line}" in p for p in status.problems)


def test_a_damaged_middle_line_is_quarantined_and_logged_once_however_often_it_is_reopened(store_dir: Path) -> None:
    damage = damage_a_middle_line(store_dir)
    for _ in range(3):
        with Store(store_dir) as store:
            store.list_contexts()
    assert quarantined(store_dir) == [damage.bad]
    logged = [e["range"] for e in recovery_events(store_dir, SKIPPED)]
    assert logged == [[damage.offset, damage.offset + len(damage.bad)]]


def test_writes_to_a_degraded_context_work_and_never_cut_the_damaged_line(store_dir: Path) -> None:
    damage = damage_a_middle_line(store_dir)
    with Store(store_dir) as store:
        for i in range(3):
            store.create_entities([entity(f"later{i}")])
    assert data_file(store_dir).read_bytes().startswith(damage.data)
    names = set(load_state(store_dir)[0])
    assert {"later0", "later1", "later2", "e4"} <= names and damage.lost not in names


SUPERSEDING = StoreConfig(fsync="never", compaction=CompactionConfig(garbageRatio=0.1, minBytes=0))


def supersede_until_compaction_is_due(store_dir: Path) -> None:
    with Store(store_dir, config=SUPERSEDING) as store:
        for i in range(4):
            store.add_observations([{"entityName": "e0", "contents": [f"more {i}"]}])


def test_auto_compaction_runs_on_a_healthy_file_when_superseded_records_pass_the_ratio(store_dir: Path) -> None:
    build(store_dir, 5, (_single,))
    supersede_until_compaction_is_due(store_dir)
    assert history_copies(store_dir)


def test_auto_compaction_does_not_run_while_a_line_is_damaged(store_dir: Path) -> None:
    damage = damage_a_middle_line(store_dir)
    supersede_until_compaction_is_due(store_dir)
    assert history_copies(store_dir) == []
    assert data_file(store_dir).read_bytes().startswith(damage.data)


def test_explicit_compaction_is_refused_while_a_line_is_damaged(store_dir: Path) -> None:
    damage = damage_a_middle_line(store_dir)
    with Store(store_dir) as store:
        assert store.compact() is False
    assert data_file(store_dir).read_bytes() == damage.data


# ------------------------------------------------------------------ T16: malformed lines in a legacy file

REJECTED, KEPT, BLANK, UNKNOWN = "rejected", "kept", "blank", "unknown"
MALFORMED: dict[bytes, str] = {
    b"not json at all": REJECTED,
    b'{"type":"entity","name":"bad-cut",': REJECTED,
    b"[1,2,3]": REJECTED,
    b"42": REJECTED,
    b'"just text"': REJECTED,
    b"null": REJECTED,
    b'{"name":"bad-untyped"}': KEPT,
    b'{"type":"mystery","name":"bad-unknown"}': KEPT,
    b'{"type":"entity","name":"bad-dup","name":"bad-dup2","entityType":"t","observations":[]}': KEPT,
    b"# a comment line": KEPT,
    b'{"type":"entity","name":"bad-nan","entityType":"t","observations":[],"x":NaN}': REJECTED,
    b'{"type":"entity","name":"bad-inf","entityType":"t","observations":[],"x":-Infinity}': REJECTED,
    b'{"type":"entity","name":"bad-big","entityType":"t","observations":[],"x":1e999}': REJECTED,
    b'{"type":"entity","name":5,"entityType":"t"}': REJECTED,
    b'{"type":"entity","name":"bad-obs","observations":"not a list"}': REJECTED,
    b'{"type":"relation","from":"good-0"}': REJECTED,
    b'{"type":"batch","records":"not a list"}': REJECTED,
    b'{"type":"entity","name":"bad-\xff-utf8"}': REJECTED,
    b"\xef\xbb\xbf": BLANK,
    b"\r": BLANK,
    b"": BLANK,
    b"  \t ": BLANK,
    b"[" * 200_000: REJECTED,
}


def good_record(i: int) -> dict[str, Any]:
    return {"type": "entity", "name": f"good-{i}", "entityType": "t", "observations": [f"o{i}", "ü"]}


GOOD_STYLES: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "compact": lambda r: json.dumps(r, separators=(",", ":")).encode(),
    "spaced": lambda r: json.dumps(r).encode(),
    "raw utf-8": lambda r: json.dumps(r, ensure_ascii=False).encode(),
    "BOM": lambda r: b"\xef\xbb\xbf" + json.dumps(r).encode(),
    "CRLF": lambda r: json.dumps(r).encode() + b"\r",
}

malformed_line = st.sampled_from(sorted(MALFORMED)).map(lambda b: (b, MALFORMED[b])) | st.binary(max_size=60).filter(
    lambda b: b"\n" not in b
).map(lambda b: (b, UNKNOWN))
legacy_layout = st.lists(
    st.tuples(st.sampled_from(sorted(GOOD_STYLES)), st.lists(malformed_line, max_size=3)), min_size=1, max_size=8
)


def legacy_file(layout: list[tuple[str, list[tuple[bytes, str]]]]) -> tuple[bytes, dict[int, str]]:
    """Good record ``i`` in the given style, each followed by its malformed lines; returns bytes and line kinds."""
    lines: list[bytes] = []
    kinds: dict[int, str] = {}
    for i, (style, bad_lines) in enumerate(layout):
        lines.append(GOOD_STYLES[style](good_record(i)))
        kinds[len(lines)] = KEPT
        for line, kind in bad_lines:
            lines.append(line)
            kinds[len(lines)] = kind
    return b"".join(line + b"\n" for line in lines), kinds


def reported_lines(store: Store, last_line: int) -> set[int]:
    info = store.list_contexts()[0]
    tail = set(range(info.tornTail.line, last_line + 1)) if info.tornTail else set()
    return {d.line for d in info.damagedLines} | tail


@hypothesis_settings
@given(legacy_layout)
def test_malformed_lines_in_a_legacy_file_never_stop_the_good_records_from_loading(
    layout: list[tuple[str, list[tuple[bytes, str]]]],
) -> None:
    data, kinds = legacy_file(layout)
    good = {f"good-{i}": good_record(i) for i in range(len(layout))}
    with scratch_dir() as store_dir:
        place(store_dir, data)
        with Store(store_dir, config=FAST, io=unsynced_io()) as store:
            entities = raw_state(store)[0]
            assert {n: entities.get(n) for n in good} == good
            reported = reported_lines(store, len(kinds))
            assert {n for n, k in kinds.items() if k == REJECTED} <= reported
            assert not {n for n, k in kinds.items() if k == KEPT} & reported
            store.create_entities([entity("after")])
        reloaded = load_state(store_dir)[0]
        assert {n: reloaded.get(n) for n in good} == good and "after" in reloaded


@pytest.mark.parametrize("stray", [b"not json, maybe a stray first line", b"[1,2,3]"], ids=["text", "an array"])
def test_a_legacy_file_whose_first_line_is_malformed_still_loads_its_other_records(
    store_dir: Path, stray: bytes
) -> None:
    data, _ = legacy_file([("compact", []), ("compact", []), ("compact", [])])
    place(store_dir, stray + b"\n" + data)
    with Store(store_dir) as store:
        assert sorted(raw_state(store)[0]) == ["good-0", "good-1", "good-2"]
        assert [d.line for d in store.list_contexts()[0].damagedLines] == [1]
        store.create_entities([entity("after")])
    assert sorted(load_state(store_dir)[0]) == ["after", "good-0", "good-1", "good-2"]


# ------------------------------------------------------------------ T17: huge lines

SMALL_RECORDS = StoreConfig(maxRecordBytes=1024)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.create_entities([entity("huge", "x" * 2000)]),
        lambda s: s.create_entities([entity(f"many{i}", "y" * 40) for i in range(40)]),
        lambda s: s.add_observations([{"entityName": "e0", "contents": ["z" * 2000]}]),
    ],
    ids=["one long observation", "a batch of many entities", "a long added observation"],
)
def test_a_write_longer_than_max_record_bytes_is_refused_and_the_file_is_unchanged(
    store_dir: Path, call: Callable[[Store], Any]
) -> None:
    build(store_dir, 3, (_single,))
    before = data_file(store_dir).read_bytes()
    with Store(store_dir, config=SMALL_RECORDS) as store:
        with pytest.raises(RecordTooLargeError, match="maxRecordBytes"):
            call(store)
    assert data_file(store_dir).read_bytes() == before


HUGE = 100 << 20
MEMORY_LIMIT_KB = 80 << 10
_LOAD_AND_MEASURE = """
import json, resource, sys
from coaia_store import Store
def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with Store(sys.argv[2]) as warm:  # imports and first-use costs belong to the baseline
    warm.list_contexts(); warm.read_graph()
base = peak_kb()
with Store(sys.argv[1]) as store:
    info = store.list_contexts()[0]
    names = sorted(e.name for e in store.read_graph().entities)
print(json.dumps({"growth_kb": peak_kb() - base, "names": names,
                  "tail": info.tornTail and info.tornTail.model_dump(),
                  "damaged": [d.model_dump() for d in info.damagedLines]}))
"""


def load_in_child(store_dir: Path, warm_dir: Path) -> dict[str, Any]:
    """Load ``store_dir`` in a fresh interpreter; report peak-RSS growth over a warmed-up baseline."""
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_MEASURE, str(store_dir), str(warm_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def huge_line_store(root: Path, after: bytes) -> tuple[Path, Path, int]:
    """Two entities, then a 100 MB line of NULs (a sparse hole, so quick to make), then ``after``."""
    warm_dir, store_dir = root / "warm" / ".coaia", root / "huge" / ".coaia"
    build(warm_dir, 2, (_single,))
    shutil.copytree(warm_dir, store_dir)
    path = data_file(store_dir)
    start = path.stat().st_size
    os.truncate(path, start + HUGE)
    with path.open("ab") as f:
        f.write(after)
    return store_dir, warm_dir, start


@pytest.mark.slow
def test_a_100_mb_line_without_newline_is_a_torn_tail_loaded_in_bounded_memory(tmp_path: Path) -> None:
    store_dir, warm_dir, start = huge_line_store(tmp_path, b"")
    result = load_in_child(store_dir, warm_dir)
    print(f"\nFIGURE T17: peak RSS growth {result['growth_kb'] / 1024:.1f} MB loading a 100 MB line without newline")
    assert result["names"] == ["e0", "e1"]
    assert (result["tail"]["offset"], result["tail"]["length"]) == (start, HUGE)
    assert result["growth_kb"] < MEMORY_LIMIT_KB


@pytest.mark.slow
def test_a_100_mb_line_is_skipped_and_the_reader_resyncs_at_the_next_newline(tmp_path: Path) -> None:
    after = crc_line(b'{"type":"entity","name":"after","entityType":"t","observations":[]')
    store_dir, warm_dir, start = huge_line_store(tmp_path, b"\n" + after)
    result = load_in_child(store_dir, warm_dir)
    print(f"\nFIGURE T17: peak RSS growth {result['growth_kb'] / 1024:.1f} MB skipping a 100 MB line and resyncing")
    assert result["names"] == ["after", "e0", "e1"]
    assert [(d["offset"], d["length"]) for d in result["damaged"]] == [(start, HUGE + 1)]
    assert result["growth_kb"] < MEMORY_LIMIT_KB


# ------------------------------------------------------------------ T18: invalid UTF-8 and lone surrogates

BAD_UTF8 = {"0xff": b"\xff", "overlong": b"\xc0\xaf", "truncated": b"\xe2\x82", "encoded surrogate": b"\xed\xa0\x80"}


def bad_utf8_line(bad: bytes, checksummed: bool) -> bytes:
    head = b'{"type":"entity","name":"bad-' + bad + b'","entityType":"t","observations":[]'
    return crc_line(head) if checksummed else head + b"}\n"


@pytest.mark.parametrize("bad", BAD_UTF8.values(), ids=BAD_UTF8.keys())
@pytest.mark.parametrize("legacy", [False, True], ids=["checksummed file", "legacy file"])
def test_an_invalid_utf8_line_is_skipped_and_reported_without_aborting_the_load(
    store_dir: Path, bad: bytes, legacy: bool
) -> None:
    good = [json.dumps(good_record(i)).encode() + b"\n" for i in range(2)]
    if legacy:
        data = good[0] + bad_utf8_line(bad, False) + good[1]
    else:
        build(store_dir, 2, (_single,))
        data = data_file(store_dir).read_bytes() + bad_utf8_line(bad, True) + crc_line(good[1].rstrip()[:-1])
    place(store_dir, data)
    with Store(store_dir) as store:
        names = set(raw_state(store)[0])
        damaged = [d.line for d in store.list_contexts()[0].damagedLines]
    assert "good-1" in names and not any(n.startswith("bad-") for n in names)
    assert damaged == [2 if legacy else 4]


def test_a_truncated_multibyte_character_at_the_end_of_the_file_is_a_torn_tail(store_dir: Path) -> None:
    states = build(store_dir, 2, (_single,))
    data = data_file(store_dir).read_bytes()
    place(store_dir, data + b'{"type":"entity","name":"caf\xc3')
    with Store(store_dir) as store:
        assert raw_state(store) == states[-1]
        tail = store.list_contexts()[0].tornTail
        assert tail is not None and tail.offset == len(data)
        store.create_entities([entity("after")])
    assert "after" in load_state(store_dir)[0]


LONE = "bad\ud800text"
SURROGATE_CALLS: dict[str, Callable[[Store], Any]] = {
    "entity name": lambda s: s.create_entities([entity(LONE)]),
    "entity type": lambda s: s.create_entities([entity("n", entity_type=LONE)]),
    "observation": lambda s: s.create_entities([entity("n", "ok", LONE)]),
    "metadata value": lambda s: s.create_entities([{**entity("n"), "metadata": {"k": [LONE]}}]),
    "metadata key": lambda s: s.create_entities([{**entity("n"), "metadata": {LONE: 1}}]),
    "added observation": lambda s: s.add_observations([{"entityName": "e0", "contents": [LONE]}]),
    "relation type": lambda s: s.create_relations([relation("e0", "e1", LONE)]),
    "relation metadata": lambda s: s.create_relations([{**relation("e0", "e1"), "metadata": {"k": LONE}}]),
    "new name": lambda s: s.update_entity({"name": "e0", "newName": LONE}),
    "updated metadata": lambda s: s.update_entity({"name": "e0", "metadata": {"k": LONE}}),
}


@pytest.mark.parametrize("call", SURROGATE_CALLS.values(), ids=SURROGATE_CALLS.keys())
def test_a_lone_surrogate_in_api_input_is_refused_before_anything_is_written(
    store_dir: Path, call: Callable[[Store], Any]
) -> None:
    build(store_dir, 2, (_single,))
    before = data_file(store_dir).read_bytes()
    with Store(store_dir) as store:
        with pytest.raises(InvalidInputError, match="surrogate|unicode"):
            call(store)
    assert data_file(store_dir).read_bytes() == before


# ------------------------------------------------------------------ a newer format version


def test_a_file_with_a_newer_format_version_is_read_but_never_written(store_dir: Path) -> None:
    header = crc_line(b'{"type":"_coaia","format":"coaia-store","version":2,"createdAt":"2030-01-01T00:00:00.000Z"')
    line = crc_line(b'{"type":"entity","name":"from-the-future","entityType":"t","observations":["hi"]')
    path = place(store_dir, header + line)
    with Store(store_dir) as store:
        assert sorted(raw_state(store)[0]) == ["from-the-future"]
        (info,) = store.list_contexts()
        assert info.formatVersion == 2 and info.readOnly and "version 2" in info.readOnly
        with pytest.raises(ReadOnlyError, match="newer"):
            store.create_entities([entity("now")])
    assert path.read_bytes() == header + line


# ------------------------------------------------------------------ T14: a directory this user cannot write

_READ_THEN_WRITE = """
import json, os, sys
from coaia_store import Store
from coaia_store.graph.config import StoreConfig
from coaia_store.safety.transfer import import_file
from coaia_store.errors import CoaiaError
out = {}
with Store(sys.argv[1], config=StoreConfig(lockTimeoutSeconds=3)) as store:
    out["names"] = sorted(e.name for e in store.read_graph().entities)
    out["contexts"] = [c.name for c in store.list_contexts()]
    out["lock_dir_after_read"] = os.path.exists(os.path.join(sys.argv[1], ".locks"))
    try:
        store.create_entities([{"name": "new", "entityType": "t"}])
        out["write"] = "succeeded"
    except CoaiaError as exc:
        out["write"], out["message"] = type(exc).__name__, str(exc)
print(json.dumps(out))
"""
SETPRIV = shutil.which("setpriv")


@pytest.fixture
def shared_store_dir(tmp_path: Path) -> Iterator[Path]:
    """A store directory made read-only for its owner; permissions restored afterwards."""
    root = tmp_path / "ro"
    yield root / ".coaia"
    for folder, dirs, _files in os.walk(root):
        for name in dirs:
            (Path(folder) / name).chmod(0o755)


def read_only_tree(root: Path) -> None:
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:
            (Path(folder) / name).chmod(0o444)
        for name in dirs:
            (Path(folder) / name).chmod(0o555)
    root.chmod(0o555)


def without_privileges(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` as root stripped of every capability: file permissions then apply to it.

    (Root itself ignores them; dropping the capabilities keeps the same user, so the
    interpreter and the installed package stay readable wherever CI placed them.)
    """
    if SETPRIV is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to drop capabilities (root itself ignores permissions)")
    done = subprocess.run(
        [SETPRIV, "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("lock_dir_exists", [False, True], ids=["no lock dir yet", "lock dir made by its owner"])
def test_a_read_only_directory_serves_reads_and_refuses_writes_with_read_only_error(
    shared_store_dir: Path, lock_dir_exists: bool
) -> None:
    build(shared_store_dir, 3, (_single,))
    if not lock_dir_exists:
        shutil.rmtree(shared_store_dir / ".locks")
    before = data_file(shared_store_dir).read_bytes()
    read_only_tree(shared_store_dir)
    result = without_privileges(_READ_THEN_WRITE, str(shared_store_dir))
    assert result["names"] == ["e0", "e1", "e2"] and result["contexts"] == ["default"]
    assert result["lock_dir_after_read"] is lock_dir_exists
    assert result["write"] == "ReadOnlyError", result
    assert data_file(shared_store_dir).read_bytes() == before


_STATUS = """
import json, sys
from coaia_store import Store
with Store(sys.argv[1]) as store:
    status = store.status()
print(json.dumps({"readOnly": [c.readOnly for c in status.contexts], "degraded": status.degraded,
                  "problems": status.problems}))
"""


@pytest.mark.slow
def test_a_read_only_store_is_reported_read_only_before_any_write_is_tried(shared_store_dir: Path) -> None:
    """Regression (issue 9): status said healthy, and only the first write found out."""
    build(shared_store_dir, 3, (_single,))
    read_only_tree(shared_store_dir)
    result = without_privileges(_STATUS, str(shared_store_dir))
    (read_only,) = result["readOnly"]
    assert read_only and "not writable" in read_only and "What to do" in read_only
    assert result["degraded"] and any("read-only" in p for p in result["problems"])


def test_a_writable_store_is_not_reported_read_only(store_dir: Path) -> None:
    build(store_dir, 1, (_single,))
    with Store(store_dir) as store:
        assert [c.readOnly for c in store.list_contexts()] == [None] and not store.status().degraded


def test_a_store_on_a_read_only_mount_is_reported_read_only_and_refuses_writes(tmp_path: Path) -> None:
    """Root ignores permissions but not a read-only file system (EROFS)."""
    with tmpfs(tmp_path / "mnt", "4m") as mount:
        store_dir = mount / ".coaia"
        build(store_dir, 2, (_single,))
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with Store(store_dir) as store:
            (info,) = store.list_contexts()
            assert info.readOnly and "not writable" in info.readOnly and store.status().degraded
            assert sorted(raw_state(store)[0]) == ["e0", "e1"]
            with pytest.raises(ReadOnlyError):
                store.create_entities([entity("new")])
