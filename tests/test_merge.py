"""Replay that does not depend on line order: the lines of two clones, in any order, give one state."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coaia_store import Store
from coaia_store.charts.api import Charts
from coaia_store.graph.merge import merge_heads
from coaia_store.graph.state import GraphState
from coaia_store.storage.hlc import HybridClock
from coaia_store.storage.lines import decode_line

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def records(lines: list[bytes]) -> list[list[dict[str, object]]]:
    """Each line's records, as the journal hands them to the graph (batch members with the batch's _op, _ts)."""
    found = []
    for line in lines:
        record, _ = decode_line(line.rstrip(b"\n"), strict=True)
        assert record is not None
        if record.get("type") != "_coaia":
            members = record["records"] if record.get("type") == "batch" else [record]
            found.append([{**m, "_op": record["_op"], "_ts": record["_ts"]} for m in members])
    return found


def replay_state(lines: list[bytes]) -> GraphState:
    state = GraphState()
    for members in records(lines):
        state.apply_all(members)  # type: ignore[arg-type]
    return state


def replay(lines: list[bytes]) -> dict[str, object]:
    state = replay_state(lines)
    return json.loads(
        json.dumps(
            {"entities": dict(sorted(state.entities.items())), "relations": sorted(map(str, state.relations))},
            sort_keys=True,
        )
    )


def diverged(tmp_path: Path) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """A chart written on one clone, then changed apart on two copies: (shared, only a, only b) lines."""
    a, b = tmp_path / "a", tmp_path / "b"
    with Store(a) as store:
        charts = Charts(store)
        chart = charts.create_chart(
            desiredOutcome="A garden", currentReality="Bare", dueDate="2030-06-30", actionSteps=["Dig", "Sow"]
        ).chart
        store.create_entities([{"name": "ada", "entityType": "person", "observations": ["gardener"]}])
    shutil.copytree(a, b)
    shared = lines_of(a / "charts.jsonl")
    steps = [s.name for s in chart.actionSteps]
    for where, words in ((a, "left"), (b, "right")):
        with Store(where) as store:
            charts = Charts(store)
            charts.add_action_step(chartId=chart.chartId, title=f"Step {words}")
            charts.update_desired_outcome(chartId=chart.chartId, desiredOutcome=f"A garden ({words})")
            charts.update_current_reality(chartId=chart.chartId, observations=[f"Fact {words}"])
            charts.update_action_step(actionStep=steps[0], progressNote=f"Note {words}")
            store.add_observations([{"entityName": "ada", "contents": [f"likes {words}"]}])
            store.create_relations([{"from": "ada", "to": steps[1], "relationType": f"takes_{words}"}])
            if words == "left":
                charts.complete_action_step(actionStep=steps[1])
                store.delete_observations([{"entityName": "ada", "observations": ["gardener"]}])
    return shared, lines_of(a / "charts.jsonl")[len(shared) :], lines_of(b / "charts.jsonl")[len(shared) :]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.randoms(use_true_random=False), twice=st.integers(0, 3))
def test_any_order_of_the_same_lines_replays_to_the_same_state(tmp_path_factory, order, twice) -> None:  # type: ignore[no-untyped-def]
    shared, left, right = diverged(tmp_path_factory.mktemp("d"))
    reference = replay(shared + left + right)
    lines = shared + left + right + order.sample(shared + left + right, twice)  # some lines present twice
    order.shuffle(lines)

    assert replay(lines) == reference


def test_both_sides_additions_are_kept_and_the_outcome_conflict_is_recorded(tmp_path: Path) -> None:
    shared, left, right = diverged(tmp_path)
    state = replay_state(shared + right + left)
    ada = state.entities["ada"]
    reality = next(r for n, r in state.entities.items() if n.endswith("_current_reality"))

    assert ada["observations"] == ["likes right", "likes left"] or ada["observations"] == ["likes left", "likes right"]
    assert {"Fact left", "Fact right"} <= set(reality["observations"])
    assert {key[1] for key in state.relations if key[0] == "ada"} == {"takes_left", "takes_right"}
    assert [c["field"] for _, settled, c in state.conflicts() if settled is None] == ["observations[0]"]


def test_a_linear_history_replays_exactly_as_in_file_order(tmp_path: Path) -> None:
    shared, left, _ = diverged(tmp_path)
    file_order: dict[str, object] = {}  # the rule before _prev: the last record of a name wins
    for members in records(shared + left):
        for m in members:
            if m["type"] == "entity":
                file_order[str(m["name"])] = m
            elif m["type"] == "delete_entity":
                file_order.pop(str(m["name"]), None)

    state = replay_state(shared + left)

    assert state.entities == file_order
    assert all(len(heads) == 1 for heads in state.entity_versions.heads.values())
    assert state.conflicts() == []


def test_concurrent_heads_without_common_base_keep_every_observation() -> None:
    one = {"type": "entity", "name": "x", "entityType": "thing", "observations": ["a", "b"], "_op": "1", "_ts": "1"}
    two = {"type": "entity", "name": "x", "entityType": "thing", "observations": ["c", "a"], "_op": "2", "_ts": "2"}

    merged, conflicts = merge_heads([two, one], lambda merged, head: None)

    assert merged is not None and merged["observations"] == ["a", "b", "c"] and conflicts == []


def test_the_hybrid_clock_is_never_behind_what_it_saw() -> None:
    late = HybridClock(lambda: T0)
    late.observe("2026-03-01T10:00:00.000Z")  # a record from a clock an hour ahead

    stamps = [late.stamp() for _ in range(3)]

    assert stamps == ["2026-03-01T10:00:00.001Z", "2026-03-01T10:00:00.002Z", "2026-03-01T10:00:00.003Z"]


def test_the_hybrid_clock_follows_the_wall_clock_when_it_is_ahead() -> None:
    now = [T0]
    clock = HybridClock(lambda: now[0])
    clock.observe("2026-03-01T08:00:00.000Z")
    first = clock.stamp()
    now[0] = T0 + timedelta(seconds=5)

    assert (first, clock.stamp()) == ("2026-03-01T09:00:00.000Z", "2026-03-01T09:00:05.000Z")


def test_a_store_stamps_writes_after_the_newest_record_it_read(tmp_path: Path) -> None:
    with Store(tmp_path, clock=lambda: T0 + timedelta(hours=2)) as ahead:
        ahead.create_entities([{"name": "x", "entityType": "t"}])
    with Store(tmp_path, clock=lambda: T0) as behind:
        behind.add_observations([{"entityName": "x", "contents": ["later"]}])

    *_, first, second = [json.loads(line) for line in (tmp_path / "charts.jsonl").read_text().splitlines()]
    assert second["_ts"] > first["_ts"] == "2026-03-01T11:00:00.000Z"


def test_a_pass_through_line_present_twice_is_kept_once() -> None:
    state = GraphState()
    marker = {"type": "undo", "undoes": ["a1"], "_op": "b2", "_ts": "2026-03-01T09:00:00.000Z"}

    state.apply_all([dict(marker)])
    state.apply_all([dict(marker)])

    assert state.extras == [marker]


def test_compaction_keeps_in_memory_exactly_what_a_fresh_process_reads(tmp_path: Path) -> None:
    shared, left, right = diverged(tmp_path)
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "charts.jsonl").write_bytes(b"".join(shared + left + right))
    with Store(merged) as store:
        (conflict,) = store.conflicts()
        store.update_entity({"name": conflict.target, "metadata": {"settled": True}})
        before = store.conflicts(settled=True)
        assert store.compact()
        after = store.conflicts(settled=True)
        with Store(merged) as fresh:
            assert fresh.conflicts(settled=True) == after

    assert [c.settledBy is not None for c in before] == [True] and after == before  # the trace survives compaction


def test_a_record_naming_itself_as_replaced_is_still_shown() -> None:
    state = GraphState()

    state.apply_all(
        [{"type": "entity", "name": "x", "entityType": "t", "observations": [], "_op": "a", "_prev": ["a"]}]
    )

    assert list(state.entities) == ["x"]


def version(op: str, ts: str, prev: list[str], **metadata: object) -> dict[str, object]:
    return {
        "type": "entity",
        "name": "x",
        "entityType": "thing",
        "observations": [],
        "metadata": metadata,
        "_op": op,
        "_ts": f"2026-03-01T09:00:0{ts}.000Z",
        "_prev": prev,
    }


def test_after_criss_cross_merges_a_value_carried_by_a_merge_does_not_count_as_a_change() -> None:
    state = GraphState()
    lines = [
        version("b", "0", [], due="2030", note="n"),
        version("a1", "1", ["b"], due="2031", note="n"),  # clone 1 moves the date
        version("c1", "2", ["b"], due="2030", note="n2"),  # clone 2 changes something else
        version("m2", "3", ["a1", "c1"], due="2032", note="n2"),  # clone 1 merges both, then moves the date again
        version("m1", "4", ["a1", "c1"], due="2031", note="n3"),  # clone 2 merges both (date 2031), changes the note
    ]
    for record in lines:
        state.apply_all([record])

    assert state.entities["x"]["metadata"] == {"due": "2032", "note": "n3"}
    assert [c for _, settled, c in state.conflicts() if settled is None] == []
