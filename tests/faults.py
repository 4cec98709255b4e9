"""Test helpers for damage and I/O-fault tests.

* :class:`FaultyIO` is the engine's I/O seam with faults: it fails the Nth call of chosen
  operations with a chosen errno, once or persistently, optionally as a short write
  (SQLite's ioerr VFS, in Python). Use it as ``Store(directory, io=FaultyIO(...))``.
* The other helpers build and inspect store files the way the tests need to: raw state,
  line offsets, quarantined bytes, a checksummed line made without the engine's encoder.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coaia_store import Store
from coaia_store.graph.config import StoreConfig
from coaia_store.graph.state import RECORD_META_KEYS
from coaia_store.storage.fileio import FileIO

SCALE = max(1, int(os.environ.get("COAIA_TORTURE_SCALE", "1")))

# Every primitive of the seam; the composite helpers (write_all, ensure_dir,
# write_file_atomic) are built from these, so faults reach them too.
ALL_OPS = frozenset(
    {
        "open",
        "close",
        "write",
        "pread",
        "fsync",
        "fsync_dir",
        "truncate",
        "replace",
        "link",
        "unlink",
        "fstat",
        "stat",
        "lstat",
        "listdir",
        "mkdir",
    }
)
_SYNC_OPS = frozenset({"fsync", "fsync_dir"})
_FD_OPS = frozenset({"close", "write", "pread", "fsync", "truncate", "fstat"})
NEVER = 0  # fail_at value that injects nothing


class FaultyIO(FileIO):
    """Fails the ``fail_at``-th call among ``ops`` with ``err``; later calls too if ``persistent``.

    ``short_write=True`` (only meaningful for ``ops={"write"}``) makes the failing call a
    short write: half the bytes reach the file and the call returns their count; the next
    write then fails with ENOSPC (every later write when ``persistent``), as a full disk does.
    A failing ``close`` still closes the descriptor (as Linux does). ``durable=False`` skips
    the real fsyncs (they still count and can fail): for tests of error paths, not of power loss.
    ``trace`` lists every primitive call as ``(op, file name)``.
    """

    def __init__(
        self,
        fail_at: int = NEVER,
        err: int = errno.EIO,
        *,
        persistent: bool = False,
        ops: Iterable[str] | None = None,
        short_write: bool = False,
        durable: bool = True,
    ) -> None:
        self.fail_at = fail_at
        self.err = errno.ENOSPC if short_write else err
        self.persistent = persistent
        self.ops = frozenset(ops) if ops is not None else ALL_OPS
        unknown = self.ops - ALL_OPS
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)}")
        self.short_write = short_write
        self.durable = durable
        self.armed = True
        self.calls = 0  # counted calls so far
        self.injected: list[str] = []  # the operation of each injected fault, in order
        self.trace: list[tuple[str, str]] = []
        self._fd_names: dict[int, str] = {}
        self._enospc_next = False

    @property
    def fired(self) -> bool:
        return bool(self.injected)

    def disarm(self) -> None:
        """Behave like the real seam from now on (the "fault removed" half of the ioerr loop)."""
        self.armed = False

    # -------------------------------------------------------------- the seam

    def open(self, path: str | Path, flags: int, mode: int = 0o644) -> int:
        self._enter("open", Path(path).name)
        fd = super().open(path, flags, mode)
        self._fd_names[fd] = Path(path).name
        return fd

    def close(self, fd: int) -> None:
        failing = self._should_fail("close", self._fd_names.get(fd, str(fd)))
        super().close(fd)
        self._fd_names.pop(fd, None)
        if failing:
            self._raise("close")

    def write(self, fd: int, data: bytes | memoryview) -> int:
        failing = self._should_fail("write", self._fd_names.get(fd, str(fd)))
        if self._enospc_next and self.armed:  # the write after a short one: the disk is full
            self._enospc_next = self.persistent
            self._raise("write")
        if not failing:
            return super().write(fd, data)
        if not self.short_write or len(data) < 2:
            self._raise("write")
        self._enospc_next = True
        self.injected.append("short write")
        return super().write(fd, data[: len(data) // 2])

    def fsync(self, fd: int) -> None:
        self._enter("fsync", self._fd_names.get(fd, str(fd)))
        if self.durable:
            super().fsync(fd)

    def fsync_dir(self, path: str | Path) -> None:
        self._enter("fsync_dir", Path(path).name)
        if self.durable:
            super().fsync_dir(path)

    def _call(self, op: str, target: Any, *args: Any) -> Any:
        name = self._fd_names.get(target, str(target)) if op in _FD_OPS else Path(target).name
        self._enter(op, name)
        return getattr(FileIO, op)(self, target, *args)

    # -------------------------------------------------------------- fault logic

    def _enter(self, op: str, name: str) -> None:
        if self._should_fail(op, name):
            self._raise(op)

    def _should_fail(self, op: str, name: str) -> bool:
        self.trace.append((op, name))
        if not self.armed or op not in self.ops:
            return False
        self.calls += 1
        return self.calls == self.fail_at or (self.persistent and self.fail_at != NEVER and self.calls > self.fail_at)

    def _raise(self, op: str) -> None:
        self.injected.append(op)
        raise OSError(self.err, f"{os.strerror(self.err)} (injected into {op}, call {self.calls})")


def _intercept(op: str) -> Callable[..., Any]:
    def method(self: FaultyIO, target: Any, *args: Any) -> Any:
        return self._call(op, target, *args)

    method.__name__ = method.__qualname__ = op
    return method


for _op in sorted(ALL_OPS - {"open", "close", "write", "fsync", "fsync_dir"}):
    setattr(FaultyIO, _op, _intercept(_op))


# ------------------------------------------------------------------ store files


def crc_line(head: bytes) -> bytes:
    """A checksummed line for the JSON object ``head + b"}"``, made independently of the engine."""
    return b'%s,"_crc":"%08x"}\n' % (head, zlib.crc32(head))


def data_file(store_dir: Path, context: str = "default") -> Path:
    return store_dir / ("charts.jsonl" if context == "default" else f"charts-{context}.jsonl")


def line_spans(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of every newline-terminated line, ``end`` just past the newline."""
    spans, start = [], 0
    while (nl := data.find(b"\n", start)) >= 0:
        spans.append((start, nl + 1))
        start = nl + 1
    return spans


def damage_line(store_dir: Path, index: int, context: str = "default") -> None:
    """Flip one bit in the middle of line ``index`` (0: the header) of a context's file: its checksum fails."""
    path = data_file(store_dir, context)
    data = bytearray(path.read_bytes())
    start, end = line_spans(bytes(data))[index]
    data[start + (end - start) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def entity(name: str, *observations: str, entity_type: str = "thing") -> dict[str, Any]:
    return {"name": name, "entityType": entity_type, "observations": list(observations)}


def relation(src: str, dst: str, kind: str = "relates_to") -> dict[str, Any]:
    return {"from": src, "to": dst, "relationType": kind}


Snapshot = tuple[dict[str, dict[str, Any]], dict[tuple[str, str, str], dict[str, Any]], list[dict[str, Any]]]


def three_line_store(store_dir: Path) -> None:
    """The starting store of the fault loops: three data lines (two batches and a relation).

    Its first write also takes today's daily and weekly backups."""
    with Store(store_dir) as store:
        store.create_entities([entity("a", "first"), entity("b", "second")])
        store.create_entities([entity("c", "third")])
        store.create_relations([relation("a", "b")])


def raw_state(store: Store, context: str | None = None, *, envelope: bool = True) -> Snapshot:
    """Entities, relations and pass-through records exactly as loaded (``_op``, ``_ts``, ``_by`` and ``_prev``
    dropped unless ``envelope``)."""

    def strip(record: dict[str, Any]) -> dict[str, Any]:
        return dict(record) if envelope else {k: v for k, v in record.items() if k not in RECORD_META_KEYS}

    return store.graph(context).read(
        lambda s: (
            {k: strip(v) for k, v in s.entities.items()},
            {k: strip(v) for k, v in s.relations.items()},
            [strip(r) for r in s.extras],
        )
    )


def load_state(store_dir: Path, *, envelope: bool = True, config: StoreConfig | None = None) -> Snapshot:
    """What a fresh process (real I/O) loads from ``store_dir``."""
    with Store(store_dir, config=config or StoreConfig()) as store:
        return raw_state(store, envelope=envelope)


def quarantined(store_dir: Path) -> list[bytes]:
    """The bytes of every quarantine file, by file name."""
    folder = store_dir / ".recovery" / "quarantine"
    if not folder.is_dir():
        return []
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".bin"]


def recovery_events(store_dir: Path, action: str) -> list[dict[str, Any]]:
    with Store(store_dir, config=StoreConfig()) as store:
        return [e for e in store.recovery.entries() if e.get("action") == action]


def history_copies(store_dir: Path) -> list[bytes]:
    """The decompressed content of every file kept in ``history/`` by a compaction."""
    folder = store_dir / "history"
    return [gzip.decompress(p.read_bytes()) for p in sorted(folder.rglob("*.gz"))] if folder.is_dir() else []


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh ``.coaia`` path in its own temporary directory (for hypothesis examples)."""
    root = Path(tempfile.mkdtemp(prefix="coaia-"))
    try:
        yield root / ".coaia"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def unsynced_io() -> FaultyIO:
    """The real seam without the fsyncs: for tests of parsing and repair logic, not of power loss."""
    return FaultyIO(NEVER, durable=False)


# ---------------------------------------------------------------- SQLite's I/O-error loop


@dataclass
class Tally:
    """Figures summed over the operations of one fault-loop test module."""

    operations: set[str] = field(default_factory=set)
    fault_points: int = 0  # (operation, call) pairs: calls the operation makes when nothing fails
    trials: int = 0
    violations: int = 0

    def record(self, name: str, points: int, trials: int, violations: list[str]) -> None:
        self.operations.add(name)
        self.fault_points += points
        self.trials += trials
        self.violations += len(violations)
        print(f"\nFIGURE T12 {name}: {points} calls, {trials} trials, {len(violations)} violations")


def fail_each_call_in_turn(
    trial: Callable[[int], tuple[bool, list[str]]], label: str, limit: int
) -> tuple[int, list[str]]:
    """Run ``trial(n)`` failing call n = 1, 2, ... until a run meets no fault; return trials and violations."""
    violations: list[str] = []
    for n in range(1, limit + 1):
        fired, found = trial(n)
        violations += found
        if not fired:
            return n, violations
    return limit, [*violations, f"{label}: still failing after {limit} fault points"]


def calls_made(run: Callable[[Store], object], template: Path, root: Path, config: StoreConfig) -> int:
    """How many I/O calls ``run`` makes on a copy of ``template`` (and what lies beside it) when nothing
    fails: the fault points."""
    store_dir = root / "count" / template.name
    if template.parent.exists():
        shutil.copytree(template.parent, store_dir.parent)
    io = unsynced_io()
    with Store(store_dir, config=config, io=io) as store:
        run(store)
    return io.calls


@contextmanager
def tmpfs(mount: Path, size: str = "1m") -> Iterator[Path]:
    """A real small file system at ``mount`` (root only; the calling test is skipped otherwise)."""
    import pytest

    mount.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
