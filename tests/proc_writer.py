"""A separate process for the crash and concurrency tests: opens a Store and writes through it.

Run it by path (``python tests/proc_writer.py DIR MODE [options]``) or with ``python -m``.
Everything it prints is flushed at once, one line each:

* ``READY`` once the store is open (and, for ``hold-lock``, once the lock is held);
* ``ACK <kind> <writer> <seq> ...`` right AFTER the store call it names has returned, so a
  line the parent saw is a promise that the call's data is on disk;
* ``STATS key=value ...`` (reader mode) when it is done.

Kinds: ``E`` entity created, ``R`` relation to another writer's entity created, ``B`` batch of
entities created, ``L`` batch of relations created, ``O`` observation added, ``C`` compaction.

Names and payloads are pure functions of (seed, writer, seq), so the checker can tell exactly
what every record must contain. ``--die-at N --die-how ...`` makes the process SIGKILL itself
inside its N-th store call (counting from 0): ``mid-write`` after writing part of the data
line, ``before-replace`` after a compaction wrote and synced ``<file>.tmp`` but before the rename.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coaia_store import Store
from coaia_store.storage.fileio import FileIO

DATA_FILE = "charts.jsonl"
ENTITY_TYPE = "torture"
_PATTERN = "abcdefghij é漢🙂 KLMNOP-0123456789 "
_ENTITY_NAME = re.compile(r"w(\d+)-(\d{6})")


# ----------------------------------------------------------------- the shared vocabulary


def entity_name(writer: int, seq: int) -> str:
    return f"w{writer}-{seq:06d}"


def parse_entity_name(name: str) -> tuple[int, int] | None:
    """``(writer, seq)`` of a name made by :func:`entity_name`, else ``None``."""
    match = _ENTITY_NAME.fullmatch(name)
    return (int(match[1]), int(match[2])) if match else None


def hot_entity(writer: int) -> str:
    return f"w{writer}-hot"


def batch_member(writer: int, batch: int, index: int) -> str:
    return f"w{writer}-b{batch:05d}-{index:03d}"


def observation(writer: int, seq: int) -> str:
    return f"w{writer}-{seq:06d}"


def payload(seed: int, writer: int, seq: int, max_chars: int) -> str:
    """Deterministic text of 0..max_chars characters (mixed 1-4 byte UTF-8) for one record."""
    rng = random.Random(f"{seed}/{writer}/{seq}")
    size = int(max_chars * rng.random())
    start = rng.randrange(len(_PATTERN))
    body = (_PATTERN * (size // len(_PATTERN) + 2))[start : start + size]
    return f"{writer}:{seq}:{body}"


def batch_entities(seed: int, writer: int, batch: int, size: int, max_chars: int) -> list[dict[str, Any]]:
    return [
        {
            "name": batch_member(writer, batch, i),
            "entityType": ENTITY_TYPE,
            "observations": [payload(seed, writer, batch * 1000 + i, max_chars)],
        }
        for i in range(size)
    ]


def batch_relations(writer: int, batch: int, size: int) -> list[dict[str, Any]]:
    return [
        {
            "from": batch_member(writer, batch, i),
            "to": batch_member(writer, batch, i + 1),
            "relationType": "next",
            "metadata": {"batch": batch},
        }
        for i in range(size - 1)
    ]


# ----------------------------------------------------------------- dying on purpose


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # not reached


class SuicidalIO(FileIO):
    """Real I/O that SIGKILLs its own process at one chosen point once :attr:`armed`."""

    def __init__(self, how: str, fraction: float) -> None:
        self.how = how
        self.fraction = fraction
        self.armed = False
        self._data_fds: set[int] = set()

    def open(self, path: str | Path, flags: int, mode: int = 0o644) -> int:
        fd = super().open(path, flags, mode)
        if Path(path).name == DATA_FILE and flags & (os.O_WRONLY | os.O_RDWR):
            self._data_fds.add(fd)
        return fd

    def close(self, fd: int) -> None:
        self._data_fds.discard(fd)
        super().close(fd)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self.armed and self.how == "mid-write" and fd in self._data_fds:
            self.armed = False
            cut = max(1, min(len(data) - 1, int(len(data) * self.fraction)))
            self.write_all(fd, bytes(data[:cut]))
            die()
        return super().write(fd, data)

    def replace(self, src: str | Path, dst: str | Path) -> None:
        if self.armed and self.how == "before-replace" and Path(dst).name == DATA_FILE:
            die()
        super().replace(src, dst)


# ----------------------------------------------------------------- the run


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.io: FileIO = SuicidalIO(args.die_how, args.die_fraction) if args.die_how else FileIO()
        self.store = Store(args.dir, io=self.io)
        self.calls = 0

    def call(self, fn: Callable[[], Any], *ack: object) -> Any:
        """One store call; the ACK line is printed only after it returned."""
        if self.calls == self.args.die_at and isinstance(self.io, SuicidalIO):
            self.io.armed = True
        result = fn()
        self.calls += 1
        say("ACK", *ack)
        return result

    def steps(self) -> range:
        return range(self.args.count)

    def stopped(self) -> bool:
        return self.args.stop_file is not None and os.path.exists(self.args.stop_file)

    def wait_for_go(self) -> None:
        say("READY")
        while self.args.go_file is not None and not os.path.exists(self.args.go_file):
            time.sleep(0.002)


def say(*fields: object) -> None:
    print(*fields, flush=True)


def run_entities(run: Run) -> None:
    """One entity per call; with ``--peers``, also a relation to another writer's newest entity."""
    a, store = run.args, run.store
    for seq in run.steps():
        if run.stopped():
            return
        entity = {
            "name": entity_name(a.writer, seq),
            "entityType": ENTITY_TYPE,
            "observations": [payload(a.seed, a.writer, seq, a.max_chars)],
        }
        run.call(lambda: store.create_entities([entity]), "E", a.writer, seq)
        if a.peers:
            relate_to_peer(run, seq)


def relate_to_peer(run: Run, seq: int) -> None:
    """Publish our newest seq, then relate to the newest entity a peer published.

    The peer's entity reached this process only through the file, so the relation is
    accepted only if the write path caught up with the other process under the lock.
    """
    a = run.args
    progress = Path(a.progress_dir)
    tmp = progress / f".w{a.writer}.tmp"
    tmp.write_text(str(seq))
    os.replace(tmp, progress / f"w{a.writer}")
    others = [p for p in a.peers if p != a.writer]
    peer = others[seq % len(others)]
    try:
        target = int((progress / f"w{peer}").read_text())
    except FileNotFoundError:
        return
    relation = {"from": entity_name(a.writer, seq), "to": entity_name(peer, target), "relationType": "sees"}
    run.call(lambda: run.store.create_relations([relation]), "R", a.writer, seq, peer, target)


def run_batches(run: Run) -> None:
    a, store = run.args, run.store
    for batch in run.steps():
        entities = batch_entities(a.seed, a.writer, batch, a.batch_size, a.max_chars)
        run.call(lambda: store.create_entities(entities), "B", a.writer, batch)
        relations = batch_relations(a.writer, batch, a.batch_size)
        run.call(lambda: store.create_relations(relations), "L", a.writer, batch)


def run_observe(run: Run) -> None:
    a = run.args
    for seq in run.steps():
        if run.stopped():
            return
        item = {"entityName": a.entity, "contents": [observation(a.writer, seq)]}
        run.call(lambda: run.store.add_observations([item]), "O", a.writer, seq)


def run_churn(run: Run) -> None:
    """A new entity, then one more observation on this writer's hot entity (superseding it)."""
    a, store = run.args, run.store
    for seq in run.steps():
        entity = {
            "name": entity_name(a.writer, seq),
            "entityType": ENTITY_TYPE,
            "observations": [payload(a.seed, a.writer, seq, a.max_chars)],
        }
        run.call(lambda: store.create_entities([entity]), "E", a.writer, seq)
        item = {"entityName": hot_entity(a.writer), "contents": [observation(a.writer, seq)]}
        run.call(lambda: store.add_observations([item]), "O", a.writer, seq)


def run_compactor(run: Run) -> None:
    for seq in run.steps():
        if run.stopped():
            return
        run.call(run.store.compact, "C", run.args.writer, seq)


def run_backup_taker(run: Run) -> None:
    """Manual backups back to back; ``ACK K <writer> <seq> <backup id>`` after each returned."""
    for seq in run.steps():
        if run.stopped():
            return
        info = run.store.backups.backup_context()
        say("ACK", "K", run.args.writer, seq, info.id if info else "-")


def run_reader(run: Run) -> None:
    """Poll read_graph lock-free; count anything that goes backwards instead of raising."""
    path = Path(run.args.dir) / DATA_FILE
    stats = {"scans": 0, "backwards": 0, "shrinks": 0, "gaps": 0, "first": -1, "max": 0}
    last_size = 0
    for _ in run.steps():
        size_before = file_size(path)
        page = run.store.read_graph()
        size_after = file_size(path)
        total = page.totalEntities
        stats["backwards"] += total < stats["max"]
        stats["shrinks"] += size_before < last_size or size_after < size_before
        stats["gaps"] += count_gaps([e.name for e in page.entities])
        stats["first"] = total if stats["first"] < 0 else stats["first"]
        stats["max"] = max(stats["max"], total)
        stats["scans"] += 1
        last_size = size_after
    say("STATS", *(f"{k}={v}" for k, v in stats.items()))


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def count_gaps(names: list[str]) -> int:
    """Writers whose visible entities are not a gap-free prefix 0..n-1 of their sequence."""
    seqs: dict[int, set[int]] = {}
    for name in names:
        parsed = parse_entity_name(name)
        if parsed:
            seqs.setdefault(parsed[0], set()).add(parsed[1])
    return sum(1 for s in seqs.values() if s != set(range(len(s))))


def run_hold_lock(args: argparse.Namespace) -> None:
    import filelock

    locks = Path(args.dir) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(locks / (DATA_FILE + ".lock")))  # held while referenced
    lock.acquire()
    say("READY")
    time.sleep(600)
    lock.release()


MODES: dict[str, Callable[[Run], None]] = {
    "entities": run_entities,
    "batches": run_batches,
    "observe": run_observe,
    "churn": run_churn,
    "compactor": run_compactor,
    "reader": run_reader,
    "backup-taker": run_backup_taker,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("mode", choices=[*MODES, "hold-lock"])
    p.add_argument("--writer", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--max-chars", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--entity", default="shared")
    p.add_argument("--peers", type=lambda s: [int(x) for x in s.split(",") if x], default=[])
    p.add_argument("--progress-dir")
    p.add_argument("--go-file")
    p.add_argument("--stop-file")
    p.add_argument("--die-at", type=int, default=-1)
    p.add_argument("--die-how", choices=["mid-write", "before-replace"])
    p.add_argument("--die-fraction", type=float, default=0.5)
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.mode == "hold-lock":
        run_hold_lock(args)
        return
    run = Run(args)
    if args.mode == "churn":
        run.store.create_entities([{"name": hot_entity(args.writer), "entityType": ENTITY_TYPE}], if_exists="skip")
    run.store.read_graph(limit=1)  # load what is already there before the clock starts
    run.wait_for_go()
    MODES[args.mode](run)


if __name__ == "__main__":
    main(sys.argv[1:])
