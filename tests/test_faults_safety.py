"""I/O faults in the safety net (T12 continued): backup, restore and repair under the ioerr loop.

For each operation (a manual backup, the restore of a verified backup after more writes, an
integrity repair of a file with a damaged middle line, of one whose damaged line a backup holds,
and of one with a torn tail, and a backup over a damaged manifest) and each fault
(EIO, ENOSPC, EACCES; once or persistent), fail call N for N = 1, 2, ... until the operation
runs without meeting a fault. After each trial, with real I/O and a fresh store: every
acknowledged record is there (a restore leaves the old state or the restored one exactly, never
a mix); the manifest loads and every backup it lists verifies; no partial line is left (but the
damage a failed repair was to remove); no lock is left held (a new write and a new backup work);
then a repair leaves the store ok (after a repair that restores, exactly as the uninterrupted one
left it), its manifest reads and lists every backup file on disk, and a second repair changes nothing.
"""

from __future__ import annotations

import errno
import gzip
import shutil
import zlib
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
    damage_line,
    data_file,
    entity,
    fail_each_call_in_turn,
    raw_state,
    three_line_store,
    unsynced_io,
)

from coaia_store import Store
from coaia_store.errors import CoaiaError
from coaia_store.graph.config import StoreConfig
from coaia_store.storage.lines import decode_line
from coaia_store.store import validate_integrity

CHECK = StoreConfig(lockTimeoutSeconds=2)  # a lock left held shows up as StoreBusyError, not a hang
MAX_FAULT_POINTS = 200
FAULTS = [(err, persistent) for err in (errno.EIO, errno.ENOSPC, errno.EACCES) for persistent in (False, True)]
ID_FILE = "backup-id.txt"  # beside .coaia/: the backup the restore operation restores
TORN_BYTES = crc_line(b'{"type":"entity","name":"half","entityType":"t","observations":["never acknowledged"]')[:40]


# ------------------------------------------------------------------ starting files


def _backed_up_then_changed(store_dir: Path) -> None:
    three_line_store(store_dir)
    with Store(store_dir) as store:
        info = store.backups.backup_context()
        assert info is not None
        store.create_entities([entity("d", "after the backup")])
        store.add_observations([{"entityName": "a", "contents": ["also after"]}])
    (store_dir.parent / ID_FILE).write_text(info.id)


def _damaged_middle(store_dir: Path) -> None:
    """The line of entity c (line 3 of 5) fails its checksum."""
    three_line_store(store_dir)
    _damage_line_of_c(store_dir)


def _damaged_after_a_backup(store_dir: Path) -> None:
    """As :func:`_damaged_middle`, but a manual backup holds c: the repair restores it."""
    three_line_store(store_dir)
    with Store(store_dir) as store:
        store.backups.backup_context()
    _damage_line_of_c(store_dir)


def _damage_line_of_c(store_dir: Path) -> None:
    damage_line(store_dir, 2)


def _manifest_damaged(store_dir: Path) -> None:
    """Three backups listed (the day's daily and weekly, a manual one), then the manifest cut in half."""
    three_line_store(store_dir)
    with Store(store_dir) as store:
        store.backups.backup_context()
    manifest = store_dir / ".backup" / "MANIFEST.json"
    manifest.write_bytes(manifest.read_bytes()[:100])


def _torn(store_dir: Path) -> None:
    three_line_store(store_dir)
    with data_file(store_dir).open("ab") as f:
        f.write(TORN_BYTES)


def _restore(store: Store) -> object:
    return store.backups.restore_backup((store.path.parent / ID_FILE).read_text())


def _repair(store: Store) -> object:
    return validate_integrity(store, repair=True)


@dataclass(frozen=True)
class Operation:
    prepare: Callable[[Path], None]
    run: Callable[[Store], object]
    exact: bool  # the state must be exactly the old one or the new one; else it must hold every valid record
    converges: bool = False  # a repair after the fault must reach exactly what the uninterrupted operation reached


OPERATIONS: dict[str, Operation] = {
    "manual backup": Operation(three_line_store, lambda s: s.backups.backup_context(), exact=True),
    "restore of a verified backup": Operation(_backed_up_then_changed, _restore, exact=True),
    "repair of a damaged middle line": Operation(_damaged_middle, _repair, exact=False),
    "repair of a torn tail": Operation(_torn, _repair, exact=True),
    "repair restoring a damaged line from a backup": Operation(
        _damaged_after_a_backup, _repair, exact=False, converges=True
    ),
    "backup over a damaged manifest": Operation(_manifest_damaged, lambda s: s.backups.backup_context(), exact=True),
}


# ------------------------------------------------------------------ expected outcomes


@dataclass(frozen=True)
class Expected:
    template: Path
    before: Snapshot  # what a fresh store loads before the operation (no _op/_ts)
    after: Snapshot  # ... and after it succeeds


def fresh_state(store_dir: Path) -> Snapshot:
    with Store(store_dir, config=CHECK, io=unsynced_io()) as store:
        return raw_state(store, envelope=False)


def copy_store(template: Path, store_dir: Path) -> None:
    shutil.copytree(template.parent, store_dir.parent)


def expected_outcomes(op: Operation, root: Path) -> Expected:
    template, reference = root / "template" / ".coaia", root / "reference" / ".coaia"
    op.prepare(template)
    before = fresh_state(template)
    copy_store(template, reference)
    with Store(reference, io=unsynced_io()) as store:
        op.run(store)
    return Expected(template, before, fresh_state(reference))


def holds_all(state: Snapshot, required: Snapshot) -> bool:
    """Every entity, relation and pass-through record of ``required`` is in ``state``, unchanged."""
    entities, relations, extras = state
    return (
        all(entities.get(k) == v for k, v in required[0].items())
        and all(relations.get(k) == v for k, v in required[1].items())
        and all(x in extras for x in required[2])
    )


def state_problems(op: Operation, expected: Expected, state: Snapshot, error: Exception | None) -> list[str]:
    if not op.exact:
        return [] if holds_all(state, expected.before) else ["a record of a valid line is missing"]
    allowed = [expected.after] if error is None else [expected.before, expected.after]
    if state in allowed:
        return []
    outcome = "after" if state == expected.after else "before" if state == expected.before else "neither (a mix)"
    return [f"call {'failed' if error else 'succeeded'} but the file holds the {outcome} state ({error})"]


# ------------------------------------------------------------------ one trial and its checks


def trial(
    op: Operation, fault: tuple[int, bool], n: int, expected: Expected, store_dir: Path
) -> tuple[bool, list[str]]:
    """Run ``op`` with call ``n`` failing; return whether a fault fired and every rule broken."""
    copy_store(expected.template, store_dir)
    io = FaultyIO(n, fault[0], persistent=fault[1], durable=False)
    problems: list[str] = []
    error: Exception | None = None
    with Store(store_dir, config=CHECK, io=io) as store:
        try:
            op.run(store)
        except Exception as exc:  # noqa: BLE001 - anything but a CoaiaError is a violation
            error = exc
            if not isinstance(exc, CoaiaError):
                problems.append(f"raised {type(exc).__name__}: {exc}")
        io.disarm()
    problems += check_fresh(op, expected, store_dir, error)
    where = (
        f"{errno.errorcode[fault[0]]} {'persistent' if fault[1] else 'once'}, call {n} "
        f"({io.injected[0] if io.injected else 'no fault'})"
    )
    return io.fired, [f"{where}: {p}" for p in problems]


def check_fresh(op: Operation, expected: Expected, store_dir: Path, error: Exception | None) -> list[str]:
    """What a fresh process with real I/O finds, can do, and repairs."""
    with Store(store_dir, config=CHECK) as fresh:
        state = raw_state(fresh, envelope=False)
        problems = state_problems(op, expected, state, error)
        problems += check_damage(op, fresh, error)
        problems += check_backups(fresh)
        problems += check_unlocked(fresh)
    return problems + check_repair(store_dir, state, expected.after if op.converges else None)


def check_damage(op: Operation, store: Store, error: Exception | None) -> list[str]:
    """No partial line or damaged line, but the damage a repair that failed was to remove."""
    left_alone = error is not None and op.run is _repair
    problems = []
    for info in store.list_contexts():
        if info.tornTail and not (left_alone and info.tornTail.length == len(TORN_BYTES)):
            problems.append(f"a partial line of {info.tornTail.length} bytes was left")
        if info.damagedLines and not left_alone:
            problems.append(f"damaged lines {[d.line for d in info.damagedLines]}")
    return problems


def check_backups(store: Store) -> list[str]:
    try:
        listed = store.backups.list_backups()
    except CoaiaError as exc:
        return [f"the manifest does not load: {exc}"]
    return [f"listed backup {r.id} does not verify: {r.problems[:2]}" for r in store.backups.verify() if not r.ok] + (
        [] if listed else ["the manifest lists no backup at all"]
    )


def check_unlocked(store: Store) -> list[str]:
    """The write lock is free: a new write succeeds (the backup locks are probed after the repair)."""
    try:
        store.create_entities([entity("probe-new-store")])
    except CoaiaError as exc:
        return [f"a new store cannot write (lock left held?): {type(exc).__name__}: {exc}"]
    return []


def check_repair(store_dir: Path, state: Snapshot, uninterrupted: Snapshot | None) -> list[str]:
    """A repair with real I/O leaves the store ok and loses nothing (and, for a repair, reaches what the
    uninterrupted one reached); a second one changes nothing; then a new backup succeeds (the backup locks
    are free) and verifies."""
    with Store(store_dir, config=CHECK) as store:
        first = validate_integrity(store, repair=True)
        second = validate_integrity(store, repair=True)
        repaired = raw_state(store, envelope=False)
        problems = [] if first.ok else [f"not ok after a repair: {first.model_dump(exclude_defaults=True)}"]
        problems += check_new_backup(store) + check_none_orphaned(store)
    again = [change for c in second.contexts for change in c.repairs]
    problems += [f"a second repair changed something: {again}"] if again else []
    problems += [] if holds_all(repaired, state) else ["the repair lost records"]
    if (
        uninterrupted is not None
        and {k: v for k, v in repaired[0].items() if k != "probe-new-store"} != uninterrupted[0]
    ):
        problems.append(f"the repair after the fault left {sorted(repaired[0])}, not {sorted(uninterrupted[0])}")
    return problems


def check_none_orphaned(store: Store) -> list[str]:
    """After the repair the manifest reads and lists every backup file in .backup/ that is whole (a file a
    failed backup could not remove, of a damaged file or cut short, is no backup)."""
    problem = store.backups.manifest_problem()
    listed = {b.file for b in store.backups.list_backups()}
    unlisted = [
        p for p in sorted((store.path / ".backup").glob("*/*.jsonl.gz")) if str(p.relative_to(store.path)) not in listed
    ]
    return ([problem] if problem else []) + [
        f"backup file {p.name} is whole but not listed" for p in unlisted if _whole(p)
    ]


def _whole(path: Path) -> bool:
    try:
        lines = gzip.decompress(path.read_bytes()).split(b"\n")
    except (OSError, EOFError, zlib.error):
        return False
    return lines[-1] == b"" and all(decode_line(line, strict=True)[1] is None for line in lines[:-1])


def check_new_backup(store: Store) -> list[str]:
    try:
        info = store.backups.backup_context()
    except CoaiaError as exc:
        return [f"a new backup fails after the repair (lock left held?): {type(exc).__name__}: {exc}"]
    return [] if info is not None and store.backups.verify(info.id)[0].ok else ["the new backup does not verify"]


# ------------------------------------------------------------------ the loop


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    total = Tally()
    yield total
    print(
        f"\nFIGURE T12 safety net: {len(total.operations)} operations x {total.fault_points} fault points "
        f"(summed over operations) x {len(FAULTS)} faults and modes (EIO/ENOSPC/EACCES x once/persistent) = "
        f"{total.trials} trials, {total.violations} violations"
    )


def run_loop(op: Operation, fault: tuple[int, bool], expected: Expected, root: Path) -> tuple[int, list[str]]:
    """Fail call 1, 2, ... until the operation runs without meeting a fault; return trials and violations."""

    def one(n: int) -> tuple[bool, list[str]]:
        outcome = trial(op, fault, n, expected, root / f"n{n}" / ".coaia")
        shutil.rmtree(root / f"n{n}")
        return outcome

    return fail_each_call_in_turn(one, str(fault), MAX_FAULT_POINTS)


@pytest.mark.parametrize("name", OPERATIONS)
def test_an_io_fault_in_backup_restore_or_repair_loses_no_acknowledged_record_and_leaves_repair_idempotent(
    name: str, tmp_path: Path, tally: Tally
) -> None:
    op = OPERATIONS[name]
    expected = expected_outcomes(op, tmp_path)
    assert expected.before != expected.after or op.run is not _restore, "the restore must change the state"
    points = calls_made(op.run, expected.template, tmp_path, CHECK)
    violations: list[str] = []
    trials = 0
    for i, fault in enumerate(FAULTS):
        count, found = run_loop(op, fault, expected, tmp_path / f"fault{i}")
        trials += count
        violations += found
    tally.record(name, points, trials, violations)
    assert not violations, "\n".join(violations[:15])
