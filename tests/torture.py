"""Shared machinery for the crash and multi-process tests (test_crash.py, test_concurrency.py).

* :class:`Fleet` / :class:`Writer`: ``proc_writer.py`` processes on one store, their stdout
  collected on a thread (``READY``, ``ACK ...``), killed with SIGKILL on demand.
* :func:`kill_at`: SIGKILL writers at moments drawn from the trial's seed.
* :func:`reopen_and_write`: what a user's next session does after a crash: open a fresh
  Store, check every complete line, make one write, and check that write repaired the
  damage (torn tail quarantined and logged, stale ``<file>.tmp`` removed and logged).
* ``check_*``: compare what the reopened store holds with what was acknowledged.
* :class:`Tally`: the figures each test prints and puts in its assertion message.

``COAIA_TORTURE_SCALE`` (integer, default 1) multiplies trials and record counts;
``COAIA_TORTURE_SEED`` (default 1729) is the seed of the first trial, trial ``i`` uses
``seed + i``, so a failing seed reruns first with ``COAIA_TORTURE_SEED=<seed>``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

if str(Path(__file__).parent) not in sys.path:  # pytest's default import mode has put it there already
    sys.path.insert(0, str(Path(__file__).parent))
import proc_writer as pw  # noqa: E402

from coaia_store import Store, StoreConfig  # noqa: E402
from coaia_store.graph.config import CompactionConfig  # noqa: E402

SCALE = max(1, int(os.environ.get("COAIA_TORTURE_SCALE") or 1))
BASE_SEED = int(os.environ.get("COAIA_TORTURE_SEED") or 1729)
WRITER_SCRIPT = Path(pw.__file__).resolve()
DATA_FILE = pw.DATA_FILE
HANG_GUARD = 120.0  # seconds: only turns a deadlock into a failure instead of a hung run
CRC_SUFFIX = len(b',"_crc":"00000000"}')
TORN_TAIL_ACTION = "truncated (torn tail)"
# The checker must not compact: "one more write adds exactly one line" is what it verifies.
CHECKER_CONFIG = StoreConfig(compaction=CompactionConfig(minBytes=1 << 62))

Record = dict[str, Any]


def scaled(n: int) -> int:
    return n * SCALE


def trial_seeds(trials: int) -> list[int]:
    return [BASE_SEED + i for i in range(trials)]


def write_config(store_dir: Path, config: dict[str, Any]) -> None:
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / "config.json").write_text(json.dumps(config))


# ----------------------------------------------------------------- processes


class Writer:
    """One proc_writer process; a thread collects its stdout lines as they arrive."""

    def __init__(self, argv: list[str], label: str, writer_id: int, stderr_path: Path) -> None:
        self.label = label
        self.id = writer_id
        self.acks: list[tuple[str, ...]] = []
        self.other: list[str] = []
        self.was_ready = False
        self._ready = threading.Event()
        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8")
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if not line.endswith("\n"):
                break  # cut short by the kill: it promised nothing
            fields = line.split()
            if fields == ["READY"]:
                self.was_ready = True
                self._ready.set()
            elif fields[:1] == ["ACK"]:
                self.acks.append(tuple(fields[1:]))
            else:
                self.other.append(line.rstrip("\n"))
        self._ready.set()

    def wait_ready(self) -> None:
        self._ready.wait(HANG_GUARD)
        if not self.was_ready:
            self.popen.kill()
            self._reap()
            raise AssertionError(f"{self.label} never became ready: {self.stderr_tail()}")

    def kill(self) -> None:
        """SIGKILL (unless it already died); fail if it had died of anything but SIGKILL."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self._reap()
        if self.popen.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(f"{self.label} died with code {self.popen.returncode}: {self.stderr_tail()}")

    def expect_killed(self) -> None:
        """Wait for a writer told to SIGKILL itself (``--die-at``); fail if it ended otherwise."""
        self._reap()
        if self.popen.returncode != -signal.SIGKILL:
            raise AssertionError(
                f"{self.label} was to kill itself but exited with {self.popen.returncode}: {self.stderr_tail()}"
            )

    def finish(self) -> None:
        """Wait for it to exit by itself; fail with its stderr if it did not succeed."""
        self._reap()
        if self.popen.returncode != 0:
            raise AssertionError(f"{self.label} exited with code {self.popen.returncode}: {self.stderr_tail()}")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def acks_of(self, kind: str) -> list[tuple[int, ...]]:
        """The integer fields after ``<kind>`` of every ACK of that kind, in order."""
        return [tuple(int(x) for x in ack[1:]) for ack in self.acks if ack[0] == kind]

    def stderr_tail(self, limit: int = 3000) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self._stderr_path.read_text(errors="replace")[-limit:] or "(no stderr)"

    def _reap(self) -> None:
        self.popen.wait(HANG_GUARD)
        self._thread.join(HANG_GUARD)
        self._stderr.close()


class Fleet:
    """The writer processes of one trial on one store; any still running at exit is killed."""

    def __init__(self, store_dir: Path, work: Path, seed: int = 0) -> None:
        self.store_dir = store_dir
        self.seed = seed
        self.work = work
        self.go_file = work / "go"
        self.stop_file = work / "stop"
        self.progress_dir = work / "progress"
        self.progress_dir.mkdir(parents=True, exist_ok=True)
        self.writers: list[Writer] = []

    def spawn(self, mode: str, *, writer: int = 0, **options: Any) -> Writer:
        """Start ``proc_writer.py <dir> <mode> --writer N --seed <trial seed> --<option> <value>...``."""
        argv = [sys.executable, str(WRITER_SCRIPT), str(self.store_dir), mode, "--writer", str(writer)]
        for key, value in {"seed": self.seed, **options}.items():
            argv += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        label = f"{mode} writer {writer} (seed {self.seed})"
        process = Writer(argv, label, writer, self.work / f"stderr-{len(self.writers)}.txt")
        self.writers.append(process)
        return process

    def start_together(self, writers: Iterable[Writer] | None = None) -> None:
        """Wait until every writer is ready, then release them all at once (they wait for the go file)."""
        for w in self.writers if writers is None else writers:
            w.wait_ready()
        self.go_file.touch()

    def wait_for_acks(self, writers: Iterable[Writer], count: int = 1) -> None:
        """Wait until each writer has acknowledged ``count`` calls (or died)."""
        deadline = time.monotonic() + HANG_GUARD
        while any(len(w.acks) < count and w.alive() for w in writers) and time.monotonic() < deadline:
            time.sleep(0.005)

    def stop(self) -> None:
        self.stop_file.touch()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for w in self.writers:
            if w.alive():
                w.popen.kill()
            w._reap()


def kill_at(writers: list[Writer], delays: list[float]) -> None:
    """SIGKILL each writer ``delay`` seconds after this call, in order of their delays."""
    start = time.monotonic()
    for delay, i in sorted((d, i) for i, d in enumerate(delays)):
        time.sleep(max(0.0, start + delay - time.monotonic()))
        writers[i].kill()


def acked(writers: Iterable[Writer], kind: str) -> dict[int, list[tuple[int, ...]]]:
    """ACK fields of one kind (those after the writer id), keyed by writer id; every writer has a key."""
    found: dict[int, list[tuple[int, ...]]] = {}
    for w in writers:
        found.setdefault(w.id, [])
        for fields in w.acks_of(kind):
            found.setdefault(fields[0], []).append(fields[1:])
    return found


def seqs(acks: dict[int, list[tuple[int, ...]]]) -> dict[int, list[int]]:
    return {w: [fields[0] for fields in items] for w, items in acks.items()}


# ----------------------------------------------------------------- figures


@dataclass
class Tally:
    """Figures over all trials of a test; ``problems`` are violations, each naming its seed."""

    label: str
    trials: int = 0
    acked: int = 0
    lost: int = 0
    dups: int = 0
    partial: int = 0
    torn_tails: int = 0
    stale_temps: int = 0
    unacked_kept: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, seed: int, text: str) -> None:
        self.problems.append(f"seed {seed}: {text}")

    def describe(self) -> str:
        line = (
            f"{self.label}: {self.trials} trials, {self.acked:,} acked, {self.lost} lost, {self.dups} dup, "
            f"{self.partial} partial batches, {self.torn_tails} torn tails repaired, "
            f"{self.stale_temps} stale temp files removed, {self.unacked_kept} written-but-unacked kept"
        )
        extra = "".join(f"; {n}" for n in self.notes)
        shown = "".join(f"\n  {p}" for p in self.problems[:15])
        more = f"\n  ... {len(self.problems) - 15} more" if len(self.problems) > 15 else ""
        return f"{line}{extra} (COAIA_TORTURE_SCALE={SCALE}, first seed {BASE_SEED}){shown}{more}"

    def report(self) -> str:
        """Print the figures (visible with ``pytest -s``) and return them for the assertion."""
        text = self.describe()
        print(f"\n{text}")
        return text


# ----------------------------------------------------------------- the file, read independently


@dataclass
class FileScan:
    size: int
    lines: int  # complete lines, header included
    members: list[list[Record]]  # the records of each complete line after the header
    bad_lines: list[int]  # numbers (1-based) of complete lines failing the checksum or JSON
    tail: bytes  # bytes after the last newline

    def records(self) -> Iterator[Record]:
        for members in self.members:
            yield from members


def scan_file(path: Path) -> FileScan:
    """Check every complete line's checksum with our own code, not the engine's."""
    data = path.read_bytes() if path.exists() else b""
    head, newline, tail = data.rpartition(b"\n")
    lines = head.split(b"\n") if newline else []
    scan = FileScan(size=len(data), lines=len(lines), members=[], bad_lines=[], tail=tail)
    for number, line in enumerate(lines, 1):
        record = _verified(line)
        if record is None:
            scan.bad_lines.append(number)
        elif number > 1 or record.get("type") != "_coaia":
            scan.members.append(record["records"] if record.get("type") == "batch" else [record])
    return scan


def _verified(line: bytes) -> Record | None:
    body, suffix = line[:-CRC_SUFFIX], line[-CRC_SUFFIX:]
    if len(line) <= CRC_SUFFIX or not (suffix.startswith(b',"_crc":"') and suffix.endswith(b'"}')):
        return None
    if suffix[9:17] != b"%08x" % zlib.crc32(body):
        return None
    try:
        value = json.loads(body + b"}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# ----------------------------------------------------------------- after the crash


def reopen_and_write(store_dir: Path, seed: int, tally: Tally, probe: str = "checker-probe") -> Store:
    """Open a fresh Store on a crashed store, make one write, and check what it repaired.

    Before: no complete line may be damaged (a process crash only tears the last line).
    After: the file ends with a newline and holds exactly one more line; a torn tail's
    exact bytes are in quarantine with a recovery-log entry; a stale ``<file>.tmp`` is
    gone with a recovery-log entry. The caller closes the returned store.
    """
    path = store_dir / DATA_FILE
    temp = path.with_name(DATA_FILE + ".tmp")
    before = scan_file(path)
    if before.bad_lines:
        tally.problem(seed, f"complete lines {before.bad_lines} fail their checksum after a process crash")
    had_temp = temp.exists()
    store = Store(store_dir, config=CHECKER_CONFIG)
    logged = len(store.recovery.entries())
    store.create_entities([{"name": probe, "entityType": "probe"}])
    after = scan_file(path)
    if after.tail or after.lines != max(before.lines, 1) + 1:
        tally.problem(
            seed,
            f"after one write: {after.lines} lines (expected {max(before.lines, 1) + 1}), "
            f"{len(after.tail)} bytes after the last newline",
        )
    events = store.recovery.entries()[logged:]
    if before.tail:
        _check_tail_kept(store_dir, before, events, seed, tally)
    if had_temp:
        _check_temp_removed(temp, events, seed, tally)
    return store


def _check_tail_kept(store_dir: Path, before: FileScan, events: list[Record], seed: int, tally: Tally) -> None:
    start = before.size - len(before.tail)
    entries = [e for e in events if e.get("action") == TORN_TAIL_ACTION and e.get("range") == [start, before.size]]
    if not entries:
        tally.problem(seed, f"torn tail [{start}, {before.size}) repaired without a recovery-log entry: {events}")
    elif (store_dir / entries[0]["savedTo"]).read_bytes() != before.tail:
        tally.problem(seed, f"quarantine file {entries[0]['savedTo']} does not hold the torn tail's bytes")


def _check_temp_removed(temp: Path, events: list[Record], seed: int, tally: Tally) -> None:
    if temp.exists():
        tally.problem(seed, f"{temp.name} left by a killed compaction survived the next write")
    elif not any(e.get("file") == temp.name and e.get("action") == "removed" for e in events):
        tally.problem(seed, f"{temp.name} removed without a recovery-log entry: {events}")


def reopen_and_check(store_dir: Path, seed: int, tally: Tally) -> tuple[Snapshot, FileScan]:
    """One trial's end: :func:`reopen_and_write`, then what the store holds and the file says."""
    tally.trials += 1
    with reopen_and_write(store_dir, seed, tally) as store:
        snap = snapshot(store)
        count_repairs(store, tally)
    return snap, scan_file(store_dir / DATA_FILE)


def count_repairs(store: Store, tally: Tally) -> None:
    """Add this trial's logged tail repairs and temp-file removals (by any process) to the figures."""
    for event in store.recovery.entries():
        tally.torn_tails += event.get("action") == TORN_TAIL_ACTION
        tally.stale_temps += event.get("action") == "removed" and str(event.get("file", "")).endswith(".tmp")


# ----------------------------------------------------------------- what must be there


@dataclass
class Snapshot:
    entities: dict[str, list[str]]  # name -> observations, in read_graph order
    relations: dict[tuple[str, str, str], Any]  # (from, relationType, to) -> metadata


def snapshot(store: Store) -> Snapshot:
    page = store.read_graph()
    return Snapshot(
        {e.name: e.observations for e in page.entities},
        {(r.from_, r.relationType, r.to): r.metadata for r in page.relations},
    )


def check_entities(
    snap: Snapshot, scan: FileScan, acks: dict[int, list[int]], seed: int, max_chars: int, tally: Tally
) -> None:
    """Per writer: acked ⊆ present, present = 0..n-1 with at most one unacked record at the end,
    exact payloads; in the file: each name written once, in the writer's order."""
    present: dict[int, list[int]] = {}
    for name in snap.entities:
        parsed = pw.parse_entity_name(name)
        if parsed:
            present.setdefault(parsed[0], []).append(parsed[1])
    for writer, acked_seqs in acks.items():
        have = set(present.get(writer, []))
        _check_prefix(f"writer {writer} entities", have, acked_seqs, seed, tally)
        expected = {s: [pw.payload(seed, writer, s, max_chars)] for s in have}
        wrong = [s for s in have if snap.entities[pw.entity_name(writer, s)] != expected[s]]
        if wrong:
            tally.problem(seed, f"writer {writer}: entities {sorted(wrong)[:10]} hold other text than was written")
    _check_file_order(scan, seed, tally)


def _check_prefix(what: str, have: set[int], acked_seqs: list[int], seed: int, tally: Tally) -> None:
    tally.acked += len(acked_seqs)
    lost = sorted(set(acked_seqs) - have)
    tally.lost += len(lost)
    if lost:
        tally.problem(seed, f"{what}: acknowledged {lost[:10]} missing ({len(lost)} in all)")
    unacked = len(have - set(acked_seqs))
    tally.unacked_kept += unacked
    if have != set(range(len(have))) or unacked > 1:
        tally.problem(
            seed,
            f"{what}: present {sorted(have)[:5]}..{sorted(have)[-5:]} is not the gap-free prefix "
            f"of its sequence with at most one unacknowledged call ({len(acked_seqs)} acked)",
        )


def _check_file_order(scan: FileScan, seed: int, tally: Tally) -> None:
    names = Counter(r["name"] for r in scan.records() if r.get("type") == "entity" and pw.parse_entity_name(r["name"]))
    dup_names = [n for n, c in names.items() if c > 1]
    # The same record under the same operation id twice is one call applied twice (a compacted
    # file legitimately repeats a batch's id on each of its members' lines).
    writes = Counter(json.dumps(r, sort_keys=True) for r in scan.records())
    dup_writes = [w[:120] for w, c in writes.items() if c > 1]
    tally.dups += len(dup_names) + len(dup_writes)
    if dup_names or dup_writes:
        tally.problem(seed, f"written twice: entities {dup_names[:5]}, records {dup_writes[:3]}")
    last: dict[int, int] = {}
    for record in scan.records():
        parsed = pw.parse_entity_name(str(record.get("name"))) if record.get("type") == "entity" else None
        if parsed and parsed[1] <= last.get(parsed[0], -1):
            tally.problem(seed, f"writer {parsed[0]}: record {parsed[1]} stored after record {last[parsed[0]]}")
        if parsed:
            last[parsed[0]] = parsed[1]


def check_writers(
    snap: Snapshot, scan: FileScan, writers: list[Writer], seed: int, max_chars: int, tally: Tally
) -> None:
    """``entities`` writers: their acknowledged entities and cross-writer relations."""
    check_entities(snap, scan, seqs(acked(writers, "E")), seed, max_chars, tally)
    check_relations(snap, acked(writers, "R"), seed, tally)


def check_relations(snap: Snapshot, acks: dict[int, list[tuple[int, ...]]], seed: int, tally: Tally) -> None:
    """Every acknowledged cross-writer relation ``(seq, peer, target)`` is present."""
    for writer, items in acks.items():
        tally.acked += len(items)
        lost = [
            (seq, peer, target)
            for seq, peer, target in items
            if (pw.entity_name(writer, seq), "sees", pw.entity_name(peer, target)) not in snap.relations
        ]
        tally.lost += len(lost)
        if lost:
            tally.problem(seed, f"writer {writer}: acknowledged relations {lost[:5]} missing ({len(lost)} in all)")


@dataclass(frozen=True)
class BatchShape:
    size: int
    max_chars: int


def check_batch_writer(snap: Snapshot, writer: Writer, seed: int, shape: BatchShape, tally: Tally) -> None:
    """A ``batches`` writer: its acknowledged batches whole, every other batch whole or absent."""
    entity_acks = [b for _, b in writer.acks_of("B")]
    relation_acks = [b for _, b in writer.acks_of("L")]
    check_batches(snap, writer.id, entity_acks, relation_acks, seed, shape, tally)


def check_batches(
    snap: Snapshot,
    writer: int,
    entity_acks: list[int],
    relation_acks: list[int],
    seed: int,
    opts: BatchShape,
    tally: Tally,
) -> None:
    """Each batch of entities and each batch of relations is either whole or absent; acked ones whole."""
    whole_entities = _whole_batches(
        f"writer {writer} entity batch",
        seed,
        tally,
        opts.size,
        _batch_range(snap.entities, writer),
        lambda b: [e["name"] in snap.entities for e in pw.batch_entities(seed, writer, b, opts.size, opts.max_chars)],
    )
    _check_prefix(f"writer {writer} entity batches", whole_entities, entity_acks, seed, tally)
    for b in whole_entities:
        for e in pw.batch_entities(seed, writer, b, opts.size, opts.max_chars):
            if snap.entities[e["name"]] != e["observations"]:
                tally.problem(seed, f"{e['name']} holds other text than was written")
    whole_relations = _whole_batches(
        f"writer {writer} relation batch",
        seed,
        tally,
        opts.size - 1,
        iter(whole_entities),
        lambda b: [
            (r["from"], r["relationType"], r["to"]) in snap.relations for r in pw.batch_relations(writer, b, opts.size)
        ],
    )
    _check_prefix(f"writer {writer} relation batches", whole_relations, relation_acks, seed, tally)


def _batch_range(entities: dict[str, list[str]], writer: int) -> range:
    """Batch numbers worth looking at: 0 up to the highest one with any member present."""
    prefix = f"w{writer}-b"
    numbers = [int(name[len(prefix) : len(prefix) + 5]) for name in entities if name.startswith(prefix)]
    return range(max(numbers, default=-1) + 1)


def _whole_batches(
    what: str, seed: int, tally: Tally, size: int, batches: Iterable[int], members_present: Callable[[int], list[bool]]
) -> set[int]:
    whole: set[int] = set()
    for b in batches:
        present = sum(members_present(b))
        if present == size:
            whole.add(b)
        elif present:
            tally.partial += 1
            tally.problem(seed, f"{what} {b}: {present} of {size} members present")
    return whole


def check_observations(
    observations: list[str], acks: dict[int, list[int]], seed: int, tally: Tally, what: str = "observations"
) -> None:
    """Acked observations present, none twice, each writer's in its order and a gap-free prefix."""
    dups = [o for o, c in Counter(observations).items() if c > 1]
    tally.dups += len(dups)
    if dups:
        tally.problem(seed, f"{what} stored twice: {dups[:5]}")
    by_writer: dict[int, list[int]] = {}
    for text in observations:
        parsed = pw.parse_entity_name(text)
        if parsed:
            by_writer.setdefault(parsed[0], []).append(parsed[1])
    for writer, acked_seqs in acks.items():
        order = by_writer.get(writer, [])
        if order != sorted(order):
            tally.problem(seed, f"writer {writer}: {what} out of order")
        _check_prefix(f"writer {writer} {what}", set(order), acked_seqs, seed, tally)
