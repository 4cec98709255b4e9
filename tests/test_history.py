"""History and time travel: versions, operations, ``asOf`` reads, chart timelines and undo.

The state machine at the end is the specification in one piece: after any sequence of writes,
compactions, backups, restores, undos and reopenings, every past state the model remembers
equals what an ``asOf`` read answers for that moment (docs/history.md, "The rule").
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from coaia_store import ConflictError, InvalidInputError, NotFoundError, Store, StoreConfig
from coaia_store.charts import Charts
from coaia_store.history import History
from coaia_store.models import GraphPage
from coaia_store.storage.clock import iso_timestamp

SCALE = int(os.environ.get("COAIA_TORTURE_SCALE", "1"))
FAST = StoreConfig(fsync="never")  # durability is not under test here
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

Snapshot = tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[tuple[str, str, str], ...]]


class ManualClock:
    """Every call returns the same moment until the test moves it on, one second at a time."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> str:
        self.now += timedelta(seconds=1)
        return iso_timestamp(self.now)


def snapshot(page: GraphPage) -> Snapshot:
    entities = tuple(sorted((e.name, tuple(e.observations)) for e in page.entities))
    relations = tuple(sorted((r.from_, r.relationType, r.to) for r in page.relations))
    return entities, relations


def entity(name: str, *observations: str) -> dict[str, object]:
    return {"name": name, "entityType": "thing", "observations": list(observations)}


def relation(source: str, target: str) -> dict[str, str]:
    return {"from": source, "to": target, "relationType": "knows"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def timed(open_store: Callable[..., Store], clock: ManualClock) -> Store:
    return open_store(clock=clock, config=FAST)


def at(clock: ManualClock, write: Callable[[], object]) -> str:
    """Run ``write`` one second after the previous step; return its moment."""
    moment = clock.tick()
    write()
    return moment


# ------------------------------------------------------------------ versions and operations


def test_entity_history_lists_every_version_with_its_time_and_operation(timed: Store, clock: ManualClock) -> None:
    created = at(clock, lambda: timed.create_entities([entity("a", "one")]))
    updated = at(clock, lambda: timed.add_observations([{"entityName": "a", "contents": ["two"]}]))
    deleted = at(clock, lambda: timed.delete_entities(["a"]))
    versions = History(timed).entity_history("a").versions
    assert [(v.action, v.time) for v in versions] == [("created", created), ("updated", updated), ("deleted", deleted)]
    assert [v.entity.observations if v.entity else None for v in versions] == [["one"], ["one", "two"], None]
    ops = History(timed).operations().operations
    assert [v.opId for v in reversed(versions)] == [op.id for op in ops]


def test_operations_written_before_a_compaction_are_listed_once_with_the_same_ids(
    timed: Store, clock: ManualClock
) -> None:
    at(clock, lambda: timed.create_entities([entity("a"), entity("b")]))
    at(clock, lambda: timed.create_relations([relation("a", "b")]))
    before = History(timed).operations().operations
    at(clock, timed.compact)
    at(clock, timed.compact)
    assert History(timed).operations().operations == before
    assert len(list((timed.path / "history" / "charts").glob("*.jsonl.gz"))) == 2


def test_a_legacy_file_is_one_import_operation_that_its_migration_keeps(store_dir: Path, clock: ManualClock) -> None:
    store_dir.mkdir(parents=True)
    shutil.copy(Path(__file__).parent / "fixtures" / "official-memory.jsonl", store_dir / "charts.jsonl")
    with Store(store_dir, clock=clock, config=FAST) as store:
        imported = store.read_graph()
        assert [op.kind for op in History(store).operations().operations] == ["import"]
        at(clock, lambda: store.create_entities([entity("new")]))  # migrates the file first
        ops = History(store).operations().operations
        assert [op.kind for op in ops] == ["write", "import"]
        assert sorted(ops[1].entities) == sorted(e.name for e in imported.entities)


def test_reading_history_changes_no_file(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a")]))
    at(clock, timed.compact)
    before = {p: p.read_bytes() for p in timed.path.rglob("*") if p.is_file()}
    history = History(timed)
    history.operations()
    history.entity_history("a")
    timed.read_graph(as_of=iso_timestamp(START))
    assert {p: p.read_bytes() for p in timed.path.rglob("*") if p.is_file()} == before


def test_a_damaged_line_in_the_live_file_is_skipped_by_history(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a")]))
    at(clock, lambda: timed.create_entities([entity("b")]))
    path = timed.path / "charts.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"a"', b'"A"')  # checksum no longer matches
    path.write_bytes(b"\n".join(lines))
    assert [op.entities for op in History(timed).operations().operations] == [["b"]]


# ------------------------------------------------------------------ asOf


def test_read_graph_as_of_a_moment_before_any_write_is_empty(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a")]))
    page = timed.read_graph(as_of=iso_timestamp(START))
    assert (page.entities, page.relations, page.totalEntities) == ([], [], 0)


def test_read_graph_as_of_shows_each_past_state_across_compaction_and_restore(timed: Store, clock: ManualClock) -> None:
    first = at(clock, lambda: timed.create_entities([entity("a", "v1")]))
    backup = timed.backups.backup_context()
    assert backup is not None
    second = at(clock, lambda: timed.update_entity({"name": "a", "observations": ["v2"]}))
    at(clock, timed.compact)
    third = at(clock, lambda: timed.create_entities([entity("b")]))
    restored = at(clock, lambda: timed.backups.restore_backup(backup.id))
    seen = {m: snapshot(timed.read_graph(as_of=m)) for m in (first, second, third, restored)}
    assert seen[first] == seen[restored] == ((("a", ("v1",)),), ())
    assert seen[second] == ((("a", ("v2",)),), ())
    assert seen[third] == ((("a", ("v2",)), ("b", ())), ())


def test_as_of_a_date_means_the_end_of_that_day(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a")]))
    assert timed.read_graph(as_of=START.date().isoformat()).totalEntities == 1
    assert timed.read_graph(as_of=(START.date() - timedelta(days=1)).isoformat()).totalEntities == 0


@pytest.mark.parametrize("bad", ["2026-03-02T09:00:00", "yesterday", "2026-13-40", ""])
def test_as_of_without_a_timezone_or_unreadable_is_invalid_input(timed: Store, bad: str) -> None:
    with pytest.raises(InvalidInputError, match="asOf"):
        timed.read_graph(as_of=bad)


def test_get_chart_as_of_shows_the_chart_as_it_was(timed: Store, clock: ManualClock) -> None:
    charts = Charts(timed)
    chart_id = ""

    def create() -> None:
        nonlocal chart_id
        chart_id = charts.create_chart(
            desiredOutcome="A garden", currentReality="Bare soil", dueDate="2026-06-30", actionSteps=["Dig"]
        ).chart.chartId

    created = at(clock, create)
    step = charts.get_chart(chartId=chart_id).actionSteps[0].name
    at(clock, lambda: charts.complete_action_step(actionStep=step))
    past = charts.get_chart(chartId=chart_id, asOf=created)
    assert (past.completedSteps, past.currentReality) == (0, ["Bare soil"])
    assert charts.get_chart(chartId=chart_id).completedSteps == 1
    with pytest.raises(NotFoundError):
        charts.get_chart(chartId=chart_id, asOf=iso_timestamp(START))


# ------------------------------------------------------------------ chart timeline


def test_chart_history_tells_the_charts_evolution(timed: Store, clock: ManualClock) -> None:
    charts = Charts(timed)
    created = charts.create_chart(
        desiredOutcome="A garden",
        currentReality="Bare soil",
        dueDate="2026-06-30",
        actionSteps=[{"title": "Dig", "dueDate": "2026-04-01"}],
    )
    chart_id, step = created.chart.chartId, created.chart.actionSteps[0].name
    clock.tick()
    charts.update_current_reality(chartId=chart_id, observations=["Soil tested"])
    planted = charts.add_action_step(chartId=chart_id, title="Plant", dueDate="2026-05-01").actionStep
    assert planted is not None
    charts.update_action_step(actionStep=step, dueDate="2026-04-15")
    charts.telescope_action_step(actionStep=planted.name, currentReality="No seeds yet")
    charts.complete_action_step(actionStep=step)
    charts.update_desired_outcome(chartId=chart_id, dueDate="2026-07-31")
    kinds = [e.kind for e in History(timed).chart_history(chart_id).events]
    assert kinds[:3] == ["chart_created", "reality_added", "step_added"]
    for expected in ("step_due_moved", "step_telescoped", "step_completed", "due_moved"):
        assert expected in kinds
    assert kinds.count("reality_added") == 3  # the first fact, "Soil tested", and the completion line


def test_chart_history_of_an_unknown_chart_is_not_found(timed: Store) -> None:
    with pytest.raises(NotFoundError):
        History(timed).chart_history("chart_nope")


# ------------------------------------------------------------------ undo


def test_undo_appends_a_new_operation_and_keeps_the_undone_one(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a", "v1")]))
    at(clock, lambda: timed.update_entity({"name": "a", "observations": ["v2"]}))
    size = (timed.path / "charts.jsonl").stat().st_size
    result = History(timed).undo()
    assert timed.open_entities(["a"]).entities[0].observations == ["v1"]
    assert (timed.path / "charts.jsonl").stat().st_size > size
    ops = History(timed).operations().operations
    assert (ops[0].kind, ops[0].id, ops[0].undoes) == ("undo", result.opId, [ops[1].id])
    assert [op.id for op in result.undone] == [ops[1].id]


def test_undoing_an_undo_redoes(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a")]))
    at(clock, lambda: History(timed).undo())
    assert timed.read_graph().totalEntities == 0
    at(clock, lambda: History(timed).undo())
    assert [e.name for e in timed.read_graph().entities] == ["a"]


def test_undo_brings_back_a_deleted_entity_with_its_relations(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a"), entity("b")]))
    at(clock, lambda: timed.create_relations([relation("a", "b")]))
    before = snapshot(timed.read_graph())
    at(clock, lambda: timed.delete_entities(["a"]))
    History(timed).undo()
    assert snapshot(timed.read_graph()) == before


def test_undo_of_a_rename_moves_the_relations_back(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a"), entity("b")]))
    at(clock, lambda: timed.create_relations([relation("a", "b")]))
    before = snapshot(timed.read_graph())
    at(clock, lambda: timed.update_entity({"name": "a", "newName": "z"}))
    History(timed).undo()
    assert snapshot(timed.read_graph()) == before


def test_undo_is_refused_when_a_later_operation_changed_the_same_entity(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a", "v1")]))
    at(clock, lambda: timed.update_entity({"name": "a", "observations": ["v2"]}))
    at(clock, lambda: timed.update_entity({"name": "a", "observations": ["v3"]}))
    ops = History(timed).operations().operations
    with pytest.raises(ConflictError, match="changed afterwards"):
        History(timed).undo(op_ids=[ops[1].id])
    History(timed).undo(op_ids=[ops[0].id, ops[1].id])
    assert timed.open_entities(["a"]).entities[0].observations == ["v1"]


def test_undo_of_a_creation_is_refused_when_a_later_relation_uses_it(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a")]))
    at(clock, lambda: timed.create_entities([entity("b")]))
    at(clock, lambda: timed.create_relations([relation("a", "b")]))
    first = History(timed).operations().operations[-1].id
    with pytest.raises(ConflictError):
        History(timed).undo(op_ids=[first])


def test_undo_with_nothing_to_undo_is_not_found(timed: Store) -> None:
    with pytest.raises(NotFoundError, match="nothing to undo"):
        History(timed).undo()


def test_undo_of_an_unknown_operation_id_is_not_found(timed: Store, clock: ManualClock) -> None:
    at(clock, lambda: timed.create_entities([entity("a")]))
    with pytest.raises(NotFoundError, match="no operation"):
        History(timed).undo(op_ids=["0123456789abcdef"])


# ------------------------------------------------------------------ the state machine

NAMES = st.sampled_from(["a", "b", "c"])
WORDS = st.sampled_from(["x", "y", "z"])
EMPTY: Snapshot = ((), ())


class HistoryMachine(RuleBasedStateMachine):
    """A model of every past state, checked against ``asOf`` reads at every step and at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="coaia-history-"))
        self.clock = ManualClock()
        self.store = self._open()
        self.entities: dict[str, tuple[str, ...]] = {}
        self.relations: set[tuple[str, str, str]] = set()
        self.states: list[Snapshot] = [EMPTY]  # after each change of state, oldest first
        self.past: list[tuple[str, Snapshot]] = []  # (moment of a step, state after it)
        self.backups: dict[str, Snapshot] = {}

    def _open(self) -> Store:
        return Store(self.root / ".coaia", clock=self.clock, config=FAST)

    def _model(self) -> Snapshot:
        return tuple(sorted(self.entities.items())), tuple(sorted(self.relations))

    def _load(self, state: Snapshot) -> None:
        self.entities = dict(state[0])
        self.relations = set(state[1])

    def _step(self, change: Callable[[], None]) -> None:
        moment = self.clock.tick()
        change()
        state = self._model()
        if state != self.states[-1]:
            self.states.append(state)
        self.past.append((moment, state))

    @rule(name=NAMES, word=WORDS)
    def create(self, name: str, word: str) -> None:
        def change() -> None:
            self.store.create_entities([entity(name, word)], if_exists="skip")
            self.entities.setdefault(name, (word,))

        self._step(change)

    @rule(name=NAMES, word=WORDS)
    def update(self, name: str, word: str) -> None:
        def change() -> None:
            if name not in self.entities:
                with pytest.raises(NotFoundError):
                    self.store.update_entity({"name": name, "observations": [word]})
                return
            self.store.update_entity({"name": name, "observations": [word]})
            self.entities[name] = (word,)

        self._step(change)

    @rule(name=NAMES)
    def delete(self, name: str) -> None:
        def change() -> None:
            self.store.delete_entities([name])
            self.entities.pop(name, None)
            self.relations = {r for r in self.relations if name not in (r[0], r[2])}

        self._step(change)

    @rule(source=NAMES, end=NAMES)
    def relate(self, source: str, end: str) -> None:
        def change() -> None:
            if source not in self.entities or end not in self.entities:
                with pytest.raises(NotFoundError):
                    self.store.create_relations([relation(source, end)])
                return
            self.store.create_relations([relation(source, end)])
            self.relations.add((source, "knows", end))

        self._step(change)

    @rule()
    def compact(self) -> None:
        self._step(lambda: self.store.compact() and None)

    @rule()
    def backup(self) -> None:
        def change() -> None:
            info = self.store.backups.backup_context()
            if info is not None:
                self.backups[info.id] = self._model()

        self._step(change)

    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        kept = {b.id for b in self.store.backups.list_backups("default")} & set(self.backups)
        if not kept:
            return
        chosen = data.draw(st.sampled_from(sorted(kept)))

        def change() -> None:
            self.store.backups.restore_backup(chosen)
            self._load(self.backups[chosen])

        self._step(change)

    @rule()
    def undo(self) -> None:
        def change() -> None:
            if len(self.states) == 1:
                with pytest.raises(NotFoundError):
                    History(self.store).undo()
                return
            History(self.store).undo()
            self._load(self.states[-2])

        self._step(change)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = self._open()

    @invariant()
    def now_and_just_before_match_the_model(self) -> None:
        if not self.past:
            return
        moment, state = self.past[-1]
        assert snapshot(self.store.read_graph(as_of=moment)) == state == snapshot(self.store.read_graph())
        if len(self.past) > 1:
            previous = self.past[-2][1]
            half_second_before = iso_timestamp(self.clock.now - timedelta(milliseconds=500))
            assert snapshot(self.store.read_graph(as_of=half_second_before)) == previous

    @invariant()
    def the_last_version_of_each_entity_is_its_current_state(self) -> None:
        history = History(self.store)
        for name in ("a", "b", "c"):
            versions = history.entity_history(name, "default").versions
            last = versions[-1].entity if versions else None
            assert (tuple(last.observations) if last else None) == self.entities.get(name)

    def teardown(self) -> None:
        try:
            assert snapshot(self.store.read_graph(as_of=iso_timestamp(START))) == EMPTY
            for moment, state in self.past:
                assert snapshot(self.store.read_graph(as_of=moment)) == state, moment
        finally:
            self.store.close()
            shutil.rmtree(self.root, ignore_errors=True)


HistoryMachine.TestCase.settings = settings(
    max_examples=40 * SCALE,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_every_past_state_is_what_as_of_reads_answer = HistoryMachine.TestCase
