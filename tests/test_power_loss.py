"""T22 (reliability.md 7.4): power-loss simulation over the real engine code with ``CrashFS``.

A workload runs on a Store whose seam is a :class:`tests.crashfs.CrashFS`. At sampled I/O calls a
power cut is simulated: the post-crash tree is materialised into a fresh directory, a fresh Store
(real I/O) opens it, and the invariants are checked against what the workload had acknowledged:

* opening and reading never raise, no context reports a damaged mid-file line;
* every entity is in its last acknowledged state, or in the state the call in flight at the cut
  would give it, all of that call's entities together (one call is one line): compaction is
  "old or new", never a mix, and nothing that was never written appears;
* one more write succeeds, repairs any torn tail, and a reopened store sees it.

The mutation tests prove the check can fail: without the directory fsync, or without the fsync
before the rename in ``write_file_atomic``, violations are found.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from crashfs import CrashFS, materialise
from faults import SCALE, entity, raw_state

from coaia_store import Store
from coaia_store.graph.config import CompactionConfig, StoreConfig

Key = tuple[str, str]  # (context, entity name)
State = tuple[str, ...] | None  # observations, or None when absent
CONTEXTS = ("default", "work")
CRASH_STATES = 300 * SCALE
CONFIG = StoreConfig(fsync="always", compaction=CompactionConfig(minBytes=0, garbageRatio=0.5))


@dataclass
class Expectation:
    """What the workload knows: acknowledged states, and the call in flight."""

    acked: dict[Key, State] = field(default_factory=dict)
    inflight: dict[Key, State] = field(default_factory=dict)

    def call(self, changes: dict[Key, State], run: Callable[[], object]) -> None:
        self.inflight = changes
        run()
        self.acked.update(changes)
        self.inflight = {}

    def obs(self, key: Key) -> tuple[str, ...]:
        state = self.acked.get(key)
        assert state is not None, key
        return state


def workload(store: Store, exp: Expectation) -> None:
    """Creates, batches, updates, deletes in two contexts ("work" is created mid-run), compactions."""
    for r in range(2):
        a, b, c, w1, w2 = (f"{n}{r}" for n in ("a", "b", "c", "w1-", "w2-"))
        exp.call(
            {("default", a): ("a",), ("default", b): ("b",), ("default", c): ("c",)},
            lambda: store.create_entities([entity(a, "a"), entity(b, "b"), entity(c, "c")]),
        )
        exp.call(
            {("default", a): (*exp.obs(("default", a)), "a2")},
            lambda: store.add_observations([{"entityName": a, "contents": ["a2"]}]),
        )
        exp.call(
            {("work", w1): ("x",), ("work", w2): ("y",)},
            lambda: store.create_entities([entity(w1, "x"), entity(w2, "y")], context="work"),
        )
        exp.call({("default", b): ("b-new",)}, lambda: store.update_entity({"name": b, "observations": ["b-new"]}))
        exp.call({("default", c): None}, lambda: store.delete_entities([c]))
        exp.call({}, lambda: store.compact())
        exp.call(
            {("work", w1): (*exp.obs(("work", w1)), "x2")},
            lambda: store.add_observations([{"entityName": w1, "contents": ["x2"]}], context="work"),
        )
        exp.call({("work", w2): None}, lambda: store.delete_entities([w2], context="work"))
        exp.call({}, lambda: store.compact("work"))
        exp.call({("default", a): ("a3",)}, lambda: store.update_entity({"name": a, "observations": ["a3"]}))


def loaded(store: Store) -> dict[Key, State]:
    found: dict[Key, State] = {}
    for ctx in CONTEXTS:
        entities, _, _ = raw_state(store, ctx)
        found.update({(ctx, name): tuple(rec.get("observations", ())) for name, rec in entities.items()})
    return found


def violations_of(store_dir: Path, exp: Expectation) -> tuple[list[str], int]:
    """Every T22 invariant broken by the crashed tree at ``store_dir``, and how many torn tails it had."""
    torn = 0
    try:
        with Store(store_dir, config=CONFIG) as store:
            found = loaded(store)
            infos = store.list_contexts()
            torn = sum(1 for i in infos if i.tornTail)
            problems = [f"{i.name}: {i.damagedLines} damaged lines" for i in infos if i.damagedLines]
            problems += state_problems(found, exp)
            store.create_entities([entity("probe", "p")], if_exists="skip")  # repairs a torn tail
        with Store(store_dir, config=CONFIG) as store:
            problems += [
                f"{i.name}: torn tail after a write"
                for i in store.list_contexts()
                if i.tornTail and i.name == "default"
            ]
            if ("default", "probe") not in loaded(store):
                problems.append("the write after the crash was lost")
    except Exception as exc:  # noqa: BLE001 - any exception is a violation: the store must open and serve
        problems = [f"store failed after crash: {exc!r}"]
    return problems, torn


def state_problems(found: dict[Key, State], exp: Expectation) -> list[str]:
    problems = []
    moved = set()  # in-flight entities found in their new state
    for key in set(found) | set(exp.acked) | set(exp.inflight):
        if key[1] == "probe":
            continue
        old, now = exp.acked.get(key), found.get(key)
        if now == old:
            continue
        if key in exp.inflight and now == exp.inflight[key]:
            moved.add(key)
        else:
            problems.append(f"{key}: found {now}, acked {old}, in flight {exp.inflight.get(key, '-')}")
    changing = {k for k, v in exp.inflight.items() if v != exp.acked.get(k)}
    if moved and moved != changing:
        problems.append(f"in-flight call half applied: {sorted(moved)} of {sorted(changing)}")
    return problems


@dataclass
class Report:
    states: int = 0
    records_checked: int = 0
    torn_tails: int = 0
    violations: list[str] = field(default_factory=list)


def run_crash_simulation(io_class: type[CrashFS], crash_states: int, seed: int, *, fresh: bool = False) -> Report:
    """Run the workload once to find the I/O calls that change what a crash could leave (writes,
    truncates, syncs, directory updates), then again, crashing after ``crash_states`` of them
    sampled uniformly (a call sampled twice gives two independent crash states)."""
    total, changing = _count_calls(io_class, fresh)
    rng = random.Random(seed)
    points = Counter(rng.choice(changing) for _ in range(crash_states))
    report = Report()
    with tempfile.TemporaryDirectory(prefix="coaia-crash-") as tmp:
        root = Path(tmp).resolve()
        exp = Expectation()
        scratch = root / "crashed"
        scratch.mkdir()

        def on_call(n: int) -> None:
            for _ in range(points.get(n, 0)):
                target = scratch / str(report.states)
                materialise(io.crash_state(rng), target)
                found, torn = violations_of(target / ".coaia", exp)
                report.torn_tails += torn
                report.violations += [f"crash at I/O call {n}/{total} (seed {seed}): {v}" for v in found]
                report.states += 1
                report.records_checked += sum(1 for v in exp.acked.values() if v is not None)
                shutil.rmtree(target)

        io = _live_io(io_class, root / "live", on_call, fresh)
        with Store(root / "live" / ".coaia", config=CONFIG, io=io) as store:
            workload(store, exp)
    return report


def _live_io(io_class: type[CrashFS], live: Path, on_call: Callable[[int], None] | None, fresh: bool) -> CrashFS:
    """A simulator rooted above the store directory: made by the store itself (``fresh``), or
    made durable long ago (by an ``init``), before the simulator starts."""
    (live if fresh else live / ".coaia").mkdir(parents=True)
    return io_class(live, on_call)


def _count_calls(io_class: type[CrashFS], fresh: bool) -> tuple[int, list[int]]:
    with tempfile.TemporaryDirectory(prefix="coaia-count-") as tmp:
        io = _live_io(io_class, Path(tmp).resolve() / "live", None, fresh)
        with Store(io.root / ".coaia", config=CONFIG, io=io) as store:
            workload(store, Expectation())
        return io.calls, sorted(io.changing_calls)


# ---------------------------------------------------------------------- mutants of the seam


class NoDirSyncFS(CrashFS):
    """Mutant: ``fsync_dir`` does nothing (new directory entries never become durable)."""

    def fsync_dir(self, path: str | Path) -> None:
        self._tick()


class NoFsyncBeforeRenameFS(CrashFS):
    """Mutant: ``write_file_atomic`` without the ``fsync`` of the temp file before ``replace``."""

    def write_file_atomic(self, path: Path, chunks: Iterable[bytes]) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = self.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        for chunk in chunks:
            self.write_all(fd, chunk)
        self.close(fd)
        self.replace(tmp, path)
        self.fsync_dir(path.parent)


def _print(label: str, report: Report) -> None:
    print(
        f"\n{label}: {report.states} crash states, {report.records_checked} acked records checked, "
        f"{len(report.violations)} violations ({report.torn_tails} torn tails met and repaired)"
    )
    for v in report.violations[:3]:
        print("   ", v)


# ---------------------------------------------------------------------- tests


def test_every_acked_record_survives_every_simulated_power_cut() -> None:
    report = run_crash_simulation(CrashFS, CRASH_STATES, seed=22)
    _print("T22 CrashFS", report)
    assert report.states == CRASH_STATES
    assert report.violations == []


def test_a_store_directory_made_by_the_first_write_survives_a_power_cut() -> None:
    report = run_crash_simulation(CrashFS, 60 * SCALE, seed=22, fresh=True)
    _print("T22 fresh store directory", report)
    assert report.violations == []


def test_power_cut_check_fails_without_the_directory_fsync() -> None:
    report = run_crash_simulation(NoDirSyncFS, 60 * SCALE, seed=7)
    _print("T22 mutant: fsync_dir removed", report)
    assert report.violations, "removing the directory fsync went unnoticed"


def test_power_cut_check_fails_without_the_fsync_before_rename() -> None:
    report = run_crash_simulation(NoFsyncBeforeRenameFS, 60 * SCALE, seed=7)
    _print("T22 mutant: fsync before os.replace removed", report)
    assert report.violations, "removing the fsync before the rename went unnoticed"
