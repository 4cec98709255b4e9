"""Operations across the whole store: listed with their ids, undone by id or newest first, moves as one.

Through the library (``History``, ``Charts``) and the ``coaia-store`` command as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chartsteps import step

from coaia_store import ConflictError, NotFoundError, Store, StoreConfig
from coaia_store.charts import Charts
from coaia_store.history import History
from coaia_store.safety.undo import _undo_in
from coaia_store.storage.envelope import new_op_id

FAST = StoreConfig(fsync="never")  # durability is not under test here


class StoppedClock:
    """Every call returns the same moment (all writes in one millisecond) until the test moves it on."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(seconds=1)


@pytest.fixture
def clock() -> StoppedClock:
    return StoppedClock()


@pytest.fixture
def store(open_store: Callable[..., Store], clock: StoppedClock) -> Store:
    return open_store(clock=clock, config=FAST)


@pytest.fixture
def charts(store: Store) -> Charts:
    return Charts(store)


def new_chart(charts: Charts, context: str | None = None, steps: int = 2) -> str:
    return charts.create_chart(
        desiredOutcome="A garden",
        currentReality="A lawn",
        dueDate="2027-05-01",
        actionSteps=[f"Step {i}" for i in range(1, steps + 1)],
        context=context,
    ).chart.chartId


def moved_chart(charts: Charts, store: Store, clock: StoppedClock) -> tuple[str, str]:
    """A chart made in 'default' and moved to 'work'; its id and the move's operation id."""
    chart_id = new_chart(charts)
    clock.tick()
    charts.move_chart(chartId=chart_id, toContext="work")
    return chart_id, History(store).operations().operations[0].id


def holders(store: Store, chart_id: str) -> list[str]:
    return [c for c in store.contexts() if store.open_entities([f"{chart_id}_chart"], context=c).entities]


# ------------------------------------------------------------------ listing


def test_operations_list_every_context_newest_first(charts: Charts, store: Store, clock: StoppedClock) -> None:
    first = new_chart(charts, "work")
    clock.tick()
    second = new_chart(charts, "home")
    ops = History(store).operations().operations
    assert [(op.context, op.action, op.charts) for op in ops] == [
        ("home", "create chart", [second]),
        ("work", "create chart", [first]),
    ]


def test_an_operation_says_what_kind_of_call_it_was(charts: Charts, store: Store) -> None:
    chart_id = new_chart(charts)
    charts.complete_action_step(actionStep=step(charts, chart_id, 1))
    charts.telescope_action_step(actionStep=step(charts, chart_id, 2), currentReality="Seeds")
    store.create_entities([{"name": "ada", "entityType": "person", "observations": []}])
    store.add_observations([{"entityName": "ada", "contents": ["writes code"]}])
    ops = History(store).operations().operations
    assert [op.action for op in ops] == [
        "add observations",
        "create entities",
        "telescope step",
        "complete step",
        "create chart",
    ]
    assert "'Step 1'" in ops[3].summary and ops[3].charts == [chart_id] and ops[0].entities == ["ada"]


def test_operations_come_a_page_at_a_time_with_a_note_and_a_cursor(store: Store, clock: StoppedClock) -> None:
    for n in range(7):
        clock.tick()
        store.create_entities([{"name": f"e{n}", "entityType": "thing", "observations": []}], context=f"c{n % 3}")
    history = History(store)
    pages, cursor = [], None
    while True:
        page = history.operations(limit=3, cursor=cursor)
        pages.append(page)
        cursor = page.nextCursor
        if cursor is None:
            break
    assert [len(p.operations) for p in pages] == [3, 3, 1] and {p.total for p in pages} == {7}
    assert [op.entities[0] for p in pages for op in p.operations] == [f"e{n}" for n in reversed(range(7))]
    assert pages[0].note == "operations 1-3 of 7, newest first; pass nextCursor for older ones"
    assert pages[-1].note is None


def test_operations_written_between_two_pages_do_not_repeat_an_operation(store: Store, clock: StoppedClock) -> None:
    for n in range(4):
        clock.tick()
        store.create_entities([{"name": f"e{n}", "entityType": "thing", "observations": []}])
    first = History(store).operations(limit=2)
    clock.tick()
    store.create_entities([{"name": "late", "entityType": "thing", "observations": []}])
    second = History(store).operations(limit=2, cursor=first.nextCursor)
    assert [op.entities[0] for op in first.operations + second.operations] == ["e3", "e2", "e1", "e0"]


def test_a_large_operation_lists_a_bounded_number_of_names(store: Store) -> None:
    store.create_entities([{"name": f"e{n}", "entityType": "thing", "observations": []} for n in range(300)])
    op = History(store).operations().operations[0]
    assert len(op.entities) == 20 and op.entityCount == 300


# ------------------------------------------------------------------ undo: which operation


def test_undo_without_an_id_reverts_the_newest_operation_of_the_whole_store(
    charts: Charts, store: Store, clock: StoppedClock
) -> None:
    kept = new_chart(charts)  # in 'default'
    clock.tick()
    newest = new_chart(charts, "work")
    result = History(store).undo()
    assert holders(store, kept) == ["default"] and holders(store, newest) == []
    assert (result.context, result.undone[0].action, result.undone[0].charts) == ("work", "create chart", [newest])
    assert result.summary.startswith(f"undid create chart {newest} ('A garden') in 'work' (operation ")


def test_undo_without_an_id_keeps_each_contexts_order_within_one_millisecond(charts: Charts, store: Store) -> None:
    chart_id = new_chart(charts)
    charts.move_chart(chartId=chart_id, toContext="work")
    charts.complete_action_step(actionStep=step(charts, chart_id, 1))  # the same millisecond as the move
    History(store).undo()
    view = charts.get_chart(chartId=chart_id)
    assert (view.context, view.actionSteps[0].completed) == ("work", False)


def test_undo_by_id_finds_the_operation_in_another_context(charts: Charts, store: Store, clock: StoppedClock) -> None:
    chart_id = new_chart(charts, "work")
    clock.tick()
    charts.complete_action_step(actionStep=step(charts, chart_id, 1))
    clock.tick()
    new_chart(charts)  # newer, in 'default'
    target = next(op for op in History(store).operations().operations if op.action == "complete step")
    result = History(store).undo(target.id)
    assert result.undone[0].id == target.id and result.contexts == ["work"]
    assert charts.get_chart(chartId=chart_id).actionSteps[0].completed is False


def test_undo_by_id_of_a_move_reverts_both_contexts_whatever_context_is_passed(
    charts: Charts, store: Store, clock: StoppedClock
) -> None:
    chart_id, move = moved_chart(charts, store, clock)
    History(store).undo(move, context="default")
    assert holders(store, chart_id) == ["default"]


def test_undo_of_a_removed_step_brings_back_the_step_and_its_sub_chart(charts: Charts, store: Store) -> None:
    chart_id = new_chart(charts)
    sub = charts.telescope_action_step(
        actionStep=step(charts, chart_id, 1), currentReality="Seeds", actionSteps=["Dig"]
    ).chart.chartId
    charts.remove_action_step(actionStep=step(charts, chart_id, 1))
    result = History(store).undo()
    view = charts.get_chart(chartId=chart_id)
    assert result.undone[0].action == "remove step" and view.totalSteps == 2
    assert view.actionSteps[0].subChart is not None and view.actionSteps[0].subChart.chartId == sub


def test_undo_in_one_context_reverts_that_contexts_newest(charts: Charts, store: Store, clock: StoppedClock) -> None:
    older = new_chart(charts)
    clock.tick()
    new_chart(charts, "work")
    History(store).undo(context="default")
    assert holders(store, older) == []


def test_undo_of_an_unknown_id_is_not_found_and_names_history(store: Store) -> None:
    store.create_entities([{"name": "a", "entityType": "thing", "observations": []}])
    with pytest.raises(NotFoundError, match="no operation '0123456789abcdef' in the store; the history lists"):
        History(store).undo("0123456789abcdef")


def test_a_refused_undo_names_the_later_operation_to_undo_first(
    charts: Charts, store: Store, clock: StoppedClock
) -> None:
    chart_id = new_chart(charts)
    clock.tick()
    charts.complete_action_step(actionStep=step(charts, chart_id, 1))
    clock.tick()
    charts.update_action_step(actionStep=step(charts, chart_id, 1), title="Dig the beds")
    renamed, completed = History(store).operations().operations[:2]
    with pytest.raises(ConflictError) as refused:
        History(store).undo(completed.id)
    assert (
        f"cannot undo operation {completed.id}: entity '{step(charts, chart_id, 1)}' was changed afterwards by operation "
        f"{renamed.id} (update step 'Dig the beds'" in str(refused.value)
    )
    assert f"undo operation {renamed.id} first, then operation {completed.id}" in str(refused.value)
    assert History(store).operations().total == 3  # nothing written


def test_undoing_an_undone_operation_again_is_refused_with_the_way_to_redo_it(
    store: Store, clock: StoppedClock
) -> None:
    store.create_entities([{"name": "a", "entityType": "thing", "observations": []}])
    created = History(store).operations().operations[0].id
    clock.tick()
    undo = History(store).undo(created).opId
    redo = f"already undone, by operation {undo}; undoing operation {undo} would redo it"
    with pytest.raises(ConflictError, match=redo):
        History(store).undo(created)


# ------------------------------------------------------------------ moves and archives


def move_and_archive(charts: Charts, clock: StoppedClock) -> str:
    chart_id = new_chart(charts, steps=3)
    charts.telescope_action_step(actionStep=step(charts, chart_id, 1), currentReality="Nothing", actionSteps=["a", "b"])
    clock.tick()
    charts.move_chart(chartId=chart_id, toContext="work")
    clock.tick()
    charts.complete_chart(chartId=chart_id)
    clock.tick()
    charts.archive_chart(chartId=chart_id)
    return chart_id


def test_a_move_and_an_archive_are_one_event_each_in_the_charts_history(
    charts: Charts, store: Store, clock: StoppedClock
) -> None:
    chart_id = move_and_archive(charts, clock)
    events = History(store).chart_history(chart_id).events
    moves = [(e.kind, e.fromContext, e.toContext) for e in events if e.context != "default"]
    # between the two moves: the completion, which flows down to every open step with its own lines
    assert moves[0] == ("chart_moved", "default", "work") and moves[-1] == ("chart_moved", "work", "completed")
    assert [m for m in moves if m[0] == "chart_moved"] == [moves[0], moves[-1]]
    assert ("chart_completed", None, None) in moves[1:-1]
    assert [e.kind for e in events].count("chart_created") == 1 and "step_removed" not in [e.kind for e in events]


def test_a_move_written_as_two_operations_is_one_event_too(charts: Charts, store: Store, clock: StoppedClock) -> None:
    chart_id = new_chart(charts)
    names = [
        f"{chart_id}_chart",
        f"{chart_id}_desired_outcome",
        f"{chart_id}_current_reality",
        step(charts, chart_id, 1),
        step(charts, chart_id, 2),
    ]
    found = store.open_entities(names)
    clock.tick()  # as 0.1 moved a chart: a copy into the target, then a removal from the source
    store.create_entities([e.model_dump(exclude={"context"}) for e in found.entities], context="work")
    store.delete_entities(names)
    events = History(store).chart_history(chart_id).events
    assert [(e.kind, e.fromContext, e.toContext) for e in events if e.kind.startswith("chart_")] == [
        ("chart_created", None, None),
        ("chart_moved", "default", "work"),
    ]


def test_a_copy_whose_removal_never_happened_stays_a_copy(charts: Charts, store: Store, clock: StoppedClock) -> None:
    chart_id = new_chart(charts)
    found = store.open_entities([f"{chart_id}_chart", f"{chart_id}_desired_outcome"])
    clock.tick()
    store.create_entities([e.model_dump(exclude={"context"}) for e in found.entities], context="work")
    kinds = [(e.kind, e.context) for e in History(store).chart_history(chart_id).events if e.kind.startswith("chart_")]
    assert kinds == [("chart_created", "default"), ("chart_created", "work")]


def test_a_move_is_one_operation_in_both_contexts(charts: Charts, store: Store, clock: StoppedClock) -> None:
    chart_id = new_chart(charts)
    clock.tick()
    charts.move_chart(chartId=chart_id, toContext="work")
    op = History(store).operations().operations[0]
    assert (op.action, op.context, op.contexts) == ("move chart", "work", ["work", "default"])
    assert op.summary == f"move chart {chart_id} ('A garden') from 'default' to 'work'"


def test_undo_of_a_move_puts_the_chart_back_where_it_was(charts: Charts, store: Store, clock: StoppedClock) -> None:
    chart_id = new_chart(charts)
    clock.tick()
    charts.move_chart(chartId=chart_id, toContext="work")
    clock.tick()
    result = History(store).undo()
    assert holders(store, chart_id) == ["default"] and sorted(result.contexts) == ["default", "work"]
    assert sorted(History(store).operations().operations[0].contexts) == ["default", "work"]  # one undo, both


def test_an_undo_of_a_move_stopped_halfway_finishes_when_run_again(
    charts: Charts, store: Store, clock: StoppedClock
) -> None:
    chart_id, move = moved_chart(charts, store, clock)
    clock.tick()
    _undo_in(store, "default", [move], new_op_id())  # the first of its two writes: what a crash right after leaves
    assert sorted(holders(store, chart_id)) == ["default", "work"]
    clock.tick()
    result = History(store).undo(move)
    assert holders(store, chart_id) == ["default"] and result.contexts == ["work"]


def test_chart_history_comes_a_page_at_a_time(charts: Charts, store: Store, clock: StoppedClock) -> None:
    chart_id = new_chart(charts, steps=5)
    everything = History(store).chart_history(chart_id, limit=None).events
    first = History(store).chart_history(chart_id, limit=4)
    rest = History(store).chart_history(chart_id, limit=500, cursor=first.nextCursor)
    assert first.events + rest.events == everything and first.total == len(everything) == 7
    assert first.note == "events 1-4 of 7, oldest first; pass nextCursor for the later ones"
    assert rest.nextCursor is None


# ------------------------------------------------------------------ the command line


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "coaia_store", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_the_command_line_lists_operations_and_undoes_one_by_id(store_dir: Path) -> None:
    charts = Charts(Store(store_dir))
    chart_id = new_chart(charts, "work")
    charts.complete_action_step(actionStep=step(charts, chart_id, 1))
    new_chart(charts)
    listed = json.loads(run("history", "--json", "--dir", str(store_dir)).stdout)["operations"]
    target = next(op for op in listed if op["action"] == "complete step")
    table = run("history", "--dir", str(store_dir))
    undone = run("undo", "--op", target["id"], "--dir", str(store_dir))
    assert target["id"] in table.stdout and "complete step" in table.stdout
    assert undone.returncode == 0 and undone.stdout.startswith("undid complete step 'Step 1'")
    assert Charts(Store(store_dir)).get_chart(chartId=chart_id).actionSteps[0].completed is False


def test_the_command_line_shows_a_move_as_one_line(store_dir: Path) -> None:
    charts = Charts(Store(store_dir))
    chart_id = new_chart(charts)
    charts.move_chart(chartId=chart_id, toContext="work")
    timeline = run("history", chart_id, "--dir", str(store_dir)).stdout
    assert timeline.count("chart_moved") == 1 and "from default to work" in timeline
    assert "step_removed" not in timeline


KILLED_UNDO = """
import os, signal, sys
from coaia_store import Store
from coaia_store.history import History
from coaia_store.storage.fileio import FileIO

class DieOnLine(FileIO):
    '''SIGKILL this process at the Nth line appended to a context file: before it, or half-way through it.'''
    def __init__(self, n, how):
        self.n, self.how, self.lines = n, how, 0
    def write_all(self, fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):
            self.lines += 1
            if self.lines == self.n:
                if self.how == "mid":
                    super().write_all(fd, data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        super().write_all(fd, data)

directory, op, n, how = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
History(Store(directory, io=DieOnLine(n, how))).undo(op)
"""


@pytest.mark.parametrize(("line", "how"), [(1, "before"), (1, "mid"), (2, "before"), (2, "mid")])
def test_an_undo_of_a_move_killed_during_its_writes_never_loses_the_chart_and_finishes_when_run_again(
    store_dir: Path, line: int, how: str
) -> None:
    charts = Charts(Store(store_dir))
    chart_id = new_chart(charts)
    charts.move_chart(chartId=chart_id, toContext="work")
    move = History(Store(store_dir)).operations().operations[0].id
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_UNDO, str(store_dir), move, str(line), how],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    between = holders(Store(store_dir), chart_id)
    again = run("undo", "--op", move, "--dir", str(store_dir))
    assert killed.returncode == -9 and between == (["work"] if line == 1 else ["default", "work"])  # never neither
    assert again.returncode == 0, again.stderr
    assert holders(Store(store_dir), chart_id) == ["default"]


def test_a_context_file_that_cannot_be_read_is_left_out_of_the_history(store: Store) -> None:
    store.create_entities([{"name": "a", "entityType": "thing", "observations": []}])
    (store.path / "charts-odd.jsonl").mkdir()
    assert [op.contexts for op in History(store).operations().operations] == [["default"]]


def test_two_processes_undoing_the_same_move_at_once_leave_the_chart_in_its_source_only(tmp_path: Path) -> None:
    outcomes = []
    for trial in range(5 * int(os.environ.get("COAIA_TORTURE_SCALE", "1"))):
        directory = tmp_path / f"trial-{trial}" / ".coaia"
        charts = Charts(Store(directory))
        chart_id = new_chart(charts)
        charts.move_chart(chartId=chart_id, toContext="work")
        move = History(Store(directory)).operations().operations[0].id
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "coaia_store", "--dir", str(directory), "undo", "--op", move],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        outcomes.append((holders(Store(directory), chart_id), sorted(p.returncode for p in procs), errors))
    for where, codes, errors in outcomes:
        assert where == ["default"] and 0 in codes, (where, codes, errors)
        assert all(e == "" or "already undone" in e or "cannot undo" in e for e in errors), errors


def test_entity_history_comes_a_page_at_a_time(store: Store, clock: StoppedClock) -> None:
    store.create_entities([{"name": "ada", "entityType": "person", "observations": []}])
    for n in range(4):
        clock.tick()
        store.add_observations([{"entityName": "ada", "contents": [f"fact {n}"]}])
    first = History(store).entity_history("ada", limit=2)
    rest = History(store).entity_history("ada", cursor=first.nextCursor)
    assert [v.action for v in first.versions + rest.versions] == ["created"] + ["updated"] * 4
    assert first.note == "versions 1-2 of 5, oldest first; pass nextCursor for the later ones"
    assert rest.nextCursor is None
