"""I/O faults (T12, T13): the SQLite ioerr loop over the engine's I/O seam.

For each operation and each fault (EIO, ENOSPC, EACCES, short writes; once or persistent),
fail call N for N = 1, 2, ... until the operation runs without meeting a fault. After each
trial the rules must hold: the call raised a CoaiaError or succeeded; a fresh store loads
every acknowledged record and the call's records all or none; no partial line, no damage;
the failing store's view matches the file; the write lock was released; a context made
read-only by a failed fsync refuses writes while a new store can write; a rewritten file
is kept in history/ and removed bytes in quarantine.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults import (
    FaultyIO,
    Snapshot,
    Tally,
    calls_made,
    crc_line,
    data_file,
    entity,
    fail_each_call_in_turn,
    history_copies,
    quarantined,
    raw_state,
    recovery_events,
    relation,
    three_line_store,
    unsynced_io,
)

from coaia_store import Store
from coaia_store.errors import CoaiaError, ReadOnlyError, StorageError
from coaia_store.graph.config import CompactionConfig, StoreConfig

CHECK = StoreConfig(lockTimeoutSeconds=2)  # a lock left held shows up as StoreBusyError, not a hang
MAX_FAULT_POINTS = 400
TORN_TAIL = "truncated (torn tail)"


# ------------------------------------------------------------------ operations and their starting files


def observe(name: str, *contents: str) -> dict[str, object]:
    return {"entityName": name, "contents": list(contents)}


def _superseded(store_dir: Path) -> None:
    three_line_store(store_dir)
    with Store(store_dir) as store:
        for i in range(3):
            store.add_observations([observe("a", f"more {i}")])


TORN_BYTES = crc_line(b'{"type":"entity","name":"half","entityType":"t","observations":["never acknowledged"]')[:40]


def _torn(store_dir: Path) -> None:
    three_line_store(store_dir)
    with data_file(store_dir).open("ab") as f:
        f.write(TORN_BYTES)


def _legacy(store_dir: Path) -> None:
    store_dir.mkdir(parents=True)
    data_file(store_dir).write_bytes(
        b'{"type":"entity","name":"a","entityType":"t","observations":["first"]}\n'
        b"# kept as a comment\n"
        b'{"type":"entity","name":"b","entityType":"t","observations":[]}\n'
        b'{"type":"relation","from":"a","to":"b","relationType":"knows"}\n'
    )


def _nothing(store_dir: Path) -> None:
    """No directory at all: the first write creates .coaia/, the lock folder and the file."""


@dataclass(frozen=True)
class Operation:
    prepare: Callable[[Path], None]
    run: Callable[[Store], object]
    rewrites: bool = False  # replaces the file: the old one must be kept in history/
    tail: bytes = b""  # a torn tail the operation repairs: it must be quarantined before it is cut
    config: StoreConfig = CHECK


EAGER_COMPACTION = StoreConfig(lockTimeoutSeconds=2, compaction=CompactionConfig(garbageRatio=0.5, minBytes=0))


OPERATIONS: dict[str, Operation] = {
    "create_entities": Operation(three_line_store, lambda s: s.create_entities([entity("d", "x"), entity("e")])),
    "add_observations": Operation(
        three_line_store, lambda s: s.add_observations([observe("a", "n1"), observe("b", "n2")])
    ),
    "create_relations (batch)": Operation(
        three_line_store, lambda s: s.create_relations([relation("b", "c"), relation("c", "a")])
    ),
    "compaction": Operation(_superseded, lambda s: s.compact(), rewrites=True),
    "torn-tail repair": Operation(_torn, lambda s: s.create_entities([entity("d")]), tail=TORN_BYTES),
    "first write creating the file": Operation(_nothing, lambda s: s.create_entities([entity("d")])),
    "legacy migration": Operation(_legacy, lambda s: s.create_entities([entity("d")]), rewrites=True),
    # A fault in the compaction after the append must not turn the saved write into an error (issue 9).
    "write then automatic compaction": Operation(
        _superseded, lambda s: s.add_observations([observe("a", "n1")]), rewrites=True, config=EAGER_COMPACTION
    ),
}


@dataclass(frozen=True)
class Fault:
    err: int
    persistent: bool
    short_write: bool = False
    every_op: bool = True  # count (and then fail) every call, not only writes

    @property
    def label(self) -> str:
        kind = errno.errorcode[self.err]
        if self.short_write:
            kind = f"short write then {kind} on {'every call' if self.every_op else 'writes'}"
        return f"{kind}, {'persistent' if self.persistent else 'once'}"

    def io(self, n: int) -> FaultyIO:
        ops = None if self.every_op else {"write"}
        return FaultyIO(n, self.err, persistent=self.persistent, ops=ops, short_write=self.short_write, durable=False)


FAULTS = [Fault(err, persistent) for err in (errno.EIO, errno.ENOSPC, errno.EACCES) for persistent in (False, True)]
FAULTS += [Fault(errno.ENOSPC, persistent, short_write=True, every_op=False) for persistent in (False, True)]
FAULTS += [Fault(errno.ENOSPC, True, short_write=True)]  # the disk refuses everything after a short write


# ------------------------------------------------------------------ one trial and its checks


@dataclass(frozen=True)
class Expected:
    template: Path
    original: bytes  # the file before the operation (empty if none)
    before: Snapshot  # what a fresh store loads before the operation (no _op/_ts)
    after: Snapshot  # ... and after it succeeds


def expected_outcomes(op: Operation, root: Path) -> Expected:
    template, reference = root / "template" / ".coaia", root / "reference" / ".coaia"
    op.prepare(template)
    path = data_file(template)
    original = path.read_bytes() if path.exists() else b""
    before = fresh_state(template)
    if template.exists():
        shutil.copytree(template, reference)
    with Store(reference, config=op.config, io=unsynced_io()) as store:
        op.run(store)
    return Expected(template, original, before, fresh_state(reference))


def fresh_state(store_dir: Path) -> Snapshot:
    with Store(store_dir, config=CHECK, io=unsynced_io()) as store:
        return raw_state(store, envelope=False)


def trial(op: Operation, fault: Fault, n: int, expected: Expected, store_dir: Path) -> tuple[bool, list[str]]:
    """Run ``op`` with call ``n`` failing; return whether a fault fired and every rule broken."""
    if expected.template.exists():
        shutil.copytree(expected.template, store_dir)
    io = fault.io(n)
    problems: list[str] = []
    error: Exception | None = None
    with Store(store_dir, config=op.config, io=io) as store:
        try:
            op.run(store)
        except Exception as exc:  # noqa: BLE001 - anything but a CoaiaError is a violation
            error = exc
            if not isinstance(exc, CoaiaError):
                problems.append(f"raised {type(exc).__name__}: {exc}")
        io.disarm()
        found, state = check_file(op, expected, store_dir, error)
        problems += found + check_live_store(store, store_dir, state)
    problems += check_repaired(op, store_dir, state)
    where = f"{fault.label}, call {n} ({io.injected[0] if io.injected else 'no fault'})"
    return io.fired, [f"{where}: {p}" for p in problems]


def undo_failed(error: Exception | None) -> bool:
    """The error says a failed append could not be cut back (the disk refused that too)."""
    return error is not None and "could not be undone" in str(error)


def allowed_states(expected: Expected, error: Exception | None) -> list[Snapshot]:
    """A success must show the new state, a failure the old one, unless the error said it could not tell."""
    if error is None:
        return [expected.after]
    return [expected.before, expected.after] if undo_failed(error) else [expected.before]


def check_file(
    op: Operation, expected: Expected, store_dir: Path, error: Exception | None
) -> tuple[list[str], Snapshot]:
    """What a fresh process finds right after the call (and the state it loads)."""
    problems = []
    with Store(store_dir, config=CHECK) as fresh:
        state = raw_state(fresh, envelope=False)
        infos = fresh.list_contexts()
    if state not in allowed_states(expected, error):
        outcome = "after" if state == expected.after else "before" if state == expected.before else "neither"
        problems.append(f"call {'failed' if error else 'succeeded'} but the file holds the {outcome} state ({error})")
    for info in infos:
        if info.damagedLines:
            problems.append(f"damaged lines {[d.line for d in info.damagedLines]}")
        if info.tornTail and not (op.tail and info.tornTail.length == len(op.tail)) and not undo_failed(error):
            problems.append(f"a partial line of {info.tornTail.length} bytes was left")
    current = data_file(store_dir).read_bytes() if data_file(store_dir).exists() else b""
    kept = any(copy.startswith(expected.original) for copy in history_copies(store_dir))  # with the call's own line
    if op.rewrites and not current.startswith(expected.original) and not kept:
        problems.append("the file was rewritten but its old content is not in history/")
    if op.tail and not current.startswith(expected.original):
        if op.tail not in quarantined(store_dir):
            problems.append("the torn tail was cut before it was quarantined")
        if not recovery_events(store_dir, TORN_TAIL):
            problems.append("the torn tail was cut without a recovery-log entry")
    return problems, state


def check_live_store(store: Store, store_dir: Path, on_disk: Snapshot) -> list[str]:
    """The failing store (its faults now gone) agrees with the file, and the write lock is free."""
    problems = []
    if raw_state(store, envelope=False) != on_disk:
        problems.append("the failing store's view differs from the file")
    read_only = [c.readOnly for c in store.list_contexts() if c.readOnly]
    try:
        store.create_entities([entity("probe-same-store")])
        if read_only:
            problems.append("a read-only context accepted a write")
    except ReadOnlyError:
        if not read_only:
            problems.append("ReadOnlyError from a context not reported read-only")
    except CoaiaError as exc:
        problems.append(f"the failing store cannot write any more: {exc}")
    with Store(store_dir, config=CHECK, io=unsynced_io()) as other:
        try:
            other.create_entities([entity("probe-new-store")])
        except CoaiaError as exc:
            problems.append(f"a new store cannot write (lock left held?): {type(exc).__name__}: {exc}")
    return problems


def check_repaired(op: Operation, store_dir: Path, on_disk: Snapshot) -> list[str]:
    """After the probe writes, the file is whole, holds exactly what it held plus the probes,
    and a torn tail that is gone is in quarantine and in the log."""
    with Store(store_dir, config=CHECK) as fresh:
        infos = fresh.list_contexts()
        entities, relations, extras = raw_state(fresh, envelope=False)
    problems = [f"file still damaged: {i}" for i in infos if i.damagedLines or i.tornTail]
    if op.tail and (op.tail not in quarantined(store_dir) or not recovery_events(store_dir, TORN_TAIL)):
        problems.append("the torn tail is gone but not quarantined and logged")
    probes = {"probe-same-store", "probe-new-store"}
    if ({n: r for n, r in entities.items() if n not in probes}, relations, extras) != on_disk:
        problems.append("the probe writes changed or lost records")
    return problems


# ------------------------------------------------------------------ the loop


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    total = Tally()
    yield total
    print(
        f"\nFIGURE T12: {len(total.operations)} operations x {total.fault_points} fault points "
        f"(summed over operations) x {len(FAULTS)} fault kinds and modes = {total.trials} trials, "
        f"{total.violations} violations"
    )


def run_loop(op: Operation, fault: Fault, expected: Expected, root: Path) -> tuple[int, list[str]]:
    """Fail call 1, 2, ... until the operation runs without meeting a fault; return trials and violations."""
    return fail_each_call_in_turn(
        lambda n: trial(op, fault, n, expected, root / f"n{n}" / ".coaia"), fault.label, MAX_FAULT_POINTS
    )


@pytest.mark.parametrize("name", OPERATIONS)
def test_an_io_fault_at_any_call_never_loses_acknowledged_data_or_leaves_a_partial_write(
    name: str, tmp_path: Path, tally: Tally
) -> None:
    op = OPERATIONS[name]
    expected = expected_outcomes(op, tmp_path)
    points = calls_made(op.run, expected.template, tmp_path, op.config)
    violations: list[str] = []
    trials = 0
    for i, fault in enumerate(FAULTS):
        count, found = run_loop(op, fault, expected, tmp_path / f"fault{i}")
        trials += count
        violations += found
    tally.record(name, points, trials, violations)
    assert not violations, "\n".join(violations[:15])


# ------------------------------------------------------------------ fsync failure and tail-repair ordering


def test_a_failed_fsync_makes_the_context_read_only_but_still_readable(store_dir: Path) -> None:
    three_line_store(store_dir)
    before = data_file(store_dir).read_bytes()
    with Store(store_dir, io=FaultyIO(1, errno.EIO, ops={"fsync"})) as store:
        with pytest.raises(StorageError, match="read-only"):
            store.create_entities([entity("unsaved")])
        with pytest.raises(ReadOnlyError, match="failed to reach the disk"):
            store.create_entities([entity("later")])
        assert sorted(e.name for e in store.read_graph().entities) == ["a", "b", "c"]
        (info,) = store.list_contexts()
        assert info.readOnly and info.degraded and store.status().degraded
    assert data_file(store_dir).read_bytes() == before


def test_a_new_store_can_write_after_a_failed_fsync_made_the_old_one_read_only(store_dir: Path) -> None:
    three_line_store(store_dir)
    with Store(store_dir, io=FaultyIO(1, errno.EIO, ops={"fsync"})) as broken:
        with pytest.raises(StorageError):
            broken.create_entities([entity("unsaved")])
        with Store(store_dir) as restarted:
            restarted.create_entities([entity("after-restart")])
            names = sorted(e.name for e in restarted.read_graph().entities)
    assert names == ["a", "after-restart", "b", "c"]


def test_a_torn_tail_is_quarantined_durably_and_logged_before_it_is_cut(store_dir: Path) -> None:
    _torn(store_dir)
    io = FaultyIO()
    with Store(store_dir, io=io) as store:
        store.create_entities([entity("d")])
    cut = io.trace.index(("truncate", "charts.jsonl"))
    done_before_cut = io.trace[:cut]
    copy = next(name for op, name in done_before_cut if op == "link")
    assert ("fsync", copy) in done_before_cut  # the copy's data, before its name is published
    assert ("fsync_dir", "quarantine") in done_before_cut  # its name
    assert any(op == "fsync" and name.startswith("recovery-") for op, name in done_before_cut)  # the log entry
    assert quarantined(store_dir) == [TORN_BYTES]
