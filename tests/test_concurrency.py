"""Several writers on one ``.coaia`` directory: processes, threads, and Store objects in one process.

Writers serialise on the file lock and catch up with each other under it, so no acknowledged
write is lost, none is applied twice, each writer's order is kept, and each writer validates
against what the others wrote (reliability.md §7, T2, T5, T9, T10, T15; landscape.md's lost
update: the official memory server keeps 10 of 20 writes from two processes).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults import crc_line
from proc_writer import batch_entities
from torture import (
    BASE_SEED,
    DATA_FILE,
    FileScan,
    Fleet,
    Snapshot,
    Tally,
    Writer,
    acked,
    check_observations,
    check_writers,
    kill_at,
    reopen_and_check,
    scaled,
    seqs,
    trial_seeds,
    write_config,
)

from coaia_store import Store, StoreBusyError, StoreConfig

WRITERS = 4
RECORD_CHARS = 2_000


def spawn_peers(fleet: Fleet, count: int | None = None, **options: object) -> list[Writer]:
    """``WRITERS`` entity writers, each also relating to the newest entity of another."""
    limit = {} if count is None else {"count": count}
    return [
        fleet.spawn(
            "entities",
            writer=w,
            peers=list(range(WRITERS)),
            progress_dir=fleet.progress_dir,
            go_file=fleet.go_file,
            max_chars=RECORD_CHARS,
            **limit,
            **options,
        )
        for w in range(WRITERS)
    ]


# ----------------------------------------------------------------- processes, no crash (T9)


@dataclass
class PeerRun:
    writers: list[Writer]
    snap: Snapshot
    scan: FileScan
    tally: Tally


@pytest.fixture(scope="module")
def peer_run(tmp_path_factory: pytest.TempPathFactory) -> PeerRun:
    """``WRITERS`` processes writing to one store at once until each has written its records."""
    root = tmp_path_factory.mktemp("peers")
    store_dir, seed = root / ".coaia", BASE_SEED
    with Fleet(store_dir, root / "work", seed) as fleet:
        writers = spawn_peers(fleet, count=scaled(150))
        fleet.start_together()
        for w in writers:
            w.finish()
    tally = Tally(f"T9 {WRITERS} concurrent writer processes")
    snap, scan = reopen_and_check(store_dir, seed, tally)
    check_writers(snap, scan, writers, seed, RECORD_CHARS, tally)
    return PeerRun(writers, snap, scan, tally)


@pytest.mark.slow
def test_concurrent_writer_processes_lose_no_record_and_keep_each_writers_order(peer_run: PeerRun) -> None:
    figures = peer_run.tally.report()
    assert peer_run.tally.acked and not peer_run.tally.problems, figures
    assert len(peer_run.snap.entities) == WRITERS * scaled(150) + 1, figures  # + the checker's probe


@pytest.mark.slow
def test_each_writer_process_relates_its_entities_to_ones_other_processes_created(peer_run: PeerRun) -> None:
    relations = {w.id: len(w.acks_of("R")) for w in peer_run.writers}
    stored = sum(1 for key in peer_run.snap.relations if key[1] == "sees")
    figures = f"cross-process relations acknowledged per writer: {relations}; stored: {stored}"
    print(f"\n{figures}")
    assert all(relations.values()) and stored == sum(relations.values()), figures


# ----------------------------------------------------------------- processes killed at random (T2)


def kill_peers_and_check(store_dir: Path, seed: int, tally: Tally) -> None:
    """One T2 trial: ``WRITERS`` writers killed at random moments, then every acknowledged record checked."""
    with Fleet(store_dir, store_dir.parent / "work", seed) as fleet:
        writers = spawn_peers(fleet)
        fleet.start_together()
        rng = random.Random(seed)
        kill_at(writers, [rng.uniform(0.05, 0.4) for _ in writers])
    snap, scan = reopen_and_check(store_dir, seed, tally)
    check_writers(snap, scan, writers, seed, RECORD_CHARS, tally)


@pytest.mark.slow
def test_concurrent_writer_processes_killed_at_random_moments_lose_no_acknowledged_record(tmp_path: Path) -> None:
    tally = Tally(f"T2 kill -9 of {WRITERS} concurrent writers")
    for seed in trial_seeds(scaled(4)):
        kill_peers_and_check(tmp_path / f"trial-{seed}" / ".coaia", seed, tally)
    figures = tally.report()
    assert tally.acked and not tally.problems, figures


@pytest.mark.slow
def test_writers_saving_state_caches_at_every_catch_up_and_killed_at_random_lose_nothing(tmp_path: Path) -> None:
    """T2 with ``stateCacheMinBytes: 0``: each process saves its state to ``.cache/`` after every catch-up
    (and may be killed while saving), so the checker starts from a cache a killed writer saved."""
    tally = Tally(f"T2 kill -9 of {WRITERS} concurrent writers saving state caches")
    started_from_cache = 0
    for seed in trial_seeds(scaled(3)):
        store_dir = tmp_path / f"trial-{seed}" / ".coaia"
        write_config(store_dir, {"stateCacheMinBytes": 0})
        kill_peers_and_check(store_dir, seed, tally)
        with Store(store_dir) as fresh:
            fresh.read_graph(limit=1)
            started_from_cache += fresh.graph().journal.info().restored_bytes > 0
    figures = f"{tally.report()}; trials whose check started from a state cache: {started_from_cache}"
    print(f"\n{figures}")
    assert tally.acked and not tally.problems and started_from_cache == tally.trials, figures


# ----------------------------------------------------------------- lost update


@pytest.mark.slow
def test_two_processes_adding_observations_to_one_entity_lose_none(tmp_path: Path) -> None:
    store_dir, seed, count = tmp_path / ".coaia", BASE_SEED, scaled(100)
    with Store(store_dir) as store:
        store.create_entities([{"name": "shared", "entityType": "chart"}])
    with Fleet(store_dir, tmp_path / "work", seed) as fleet:
        writers = [
            fleet.spawn("observe", writer=w, count=count, entity="shared", go_file=fleet.go_file) for w in (0, 1)
        ]
        fleet.start_together()
        for w in writers:
            w.finish()
    tally = Tally("lost update: 2 processes x add_observations on one entity")
    snap, _ = reopen_and_check(store_dir, seed, tally)
    kept = snap.entities["shared"]
    check_observations(kept, seqs(acked(writers, "O")), seed, tally)
    tally.notes.append(f"{len(kept)}/{2 * count} observations kept (the official server keeps 10/20)")
    figures = tally.report()
    assert len(kept) == 2 * count and not tally.problems, figures


# ----------------------------------------------------------------- compaction in another process (T5)


@pytest.mark.slow
def test_compactions_by_another_process_lose_no_append_from_stores_kept_open(tmp_path: Path) -> None:
    store_dir, seed, compactions = tmp_path / ".coaia", BASE_SEED, scaled(25)
    with Store(store_dir) as store:
        store.create_entities(batch_entities(seed, 99, 0, 20, RECORD_CHARS))
    with Fleet(store_dir, tmp_path / "work", seed) as fleet:
        appenders = [
            fleet.spawn("entities", writer=w, stop_file=fleet.stop_file, go_file=fleet.go_file, max_chars=RECORD_CHARS)
            for w in range(3)
        ]
        compactor = fleet.spawn("compactor", writer=9, count=compactions, go_file=fleet.work / "go-compactor")
        fleet.start_together(appenders)
        compactor.wait_ready()
        fleet.wait_for_acks(appenders)  # each appender has written through the file it opened
        (fleet.work / "go-compactor").touch()
        compactor.finish()  # the appenders keep writing until every compaction is done
        fleet.stop()
        for w in appenders:
            w.finish()
    tally = Tally("T5 compactions in one process vs 3 appenders keeping their Store open")
    snap, scan = reopen_and_check(store_dir, seed, tally)
    check_writers(snap, scan, appenders, seed, RECORD_CHARS, tally)
    history = len(list((store_dir / "history" / "charts").glob("*.jsonl.gz")))
    tally.notes.append(f"{history} compactions (file replaced) while appending")
    figures = tally.report()
    assert history == compactions and all(w.acks for w in appenders) and not tally.problems, figures


# ----------------------------------------------------------------- lock-free readers (T10)


def reader_stats(reader: Writer) -> dict[str, int]:
    line = next(text for text in reader.other if text.startswith("STATS "))
    return {key: int(value) for key, value in (field.split("=") for field in line.split()[1:])}


@pytest.mark.slow
def test_lock_free_reader_never_sees_the_graph_or_the_file_go_back_during_writes(tmp_path: Path) -> None:
    store_dir, seed, scans = tmp_path / ".coaia", BASE_SEED, scaled(100)
    with Fleet(store_dir, tmp_path / "work", seed) as fleet:
        writers = [
            fleet.spawn(
                "entities", writer=w, count=scaled(300), stop_file=fleet.stop_file, go_file=fleet.go_file, max_chars=200
            )
            for w in range(3)
        ]
        reader = fleet.spawn("reader", writer=8, count=scans, go_file=fleet.work / "go-reader")
        fleet.start_together(writers)
        reader.wait_ready()
        fleet.wait_for_acks(writers)
        (fleet.work / "go-reader").touch()  # the reader starts on a store the writers are filling
        reader.finish()  # the writers keep writing until the reader has made every scan (or they are done)
        fleet.stop()
        for w in writers:
            w.finish()
    tally = Tally("T10 lock-free reader process during 3 writers")
    snap, scan = reopen_and_check(store_dir, seed, tally)
    check_writers(snap, scan, writers, seed, 200, tally)
    stats = reader_stats(reader)
    tally.notes.append(
        f"reader: {stats['scans']} scans, entities seen {stats['first']}..{stats['max']}, "
        f"{stats['backwards']} went backwards, {stats['shrinks']} file shrinks, {stats['gaps']} gaps"
    )
    figures = tally.report()
    assert stats["backwards"] == stats["shrinks"] == stats["gaps"] == 0, figures
    assert stats["scans"] == scans and stats["first"] < stats["max"] <= len(snap.entities), figures
    assert not tally.problems, figures


@pytest.mark.slow
def test_reader_process_leaves_a_torn_tail_untouched(tmp_path: Path) -> None:
    store_dir = tmp_path / ".coaia"
    with Fleet(store_dir, tmp_path / "work", BASE_SEED) as fleet:
        fleet.spawn("entities", count=5, die_at=3, die_how="mid-write", max_chars=RECORD_CHARS).expect_killed()
        data = (store_dir / DATA_FILE).read_bytes()
        assert not data.endswith(b"\n"), "precondition: the killed writer left part of a line"
        fleet.spawn("reader", writer=8, count=20).finish()
    assert (store_dir / DATA_FILE).read_bytes() == data
    assert not (store_dir / ".recovery").exists()


# ----------------------------------------------------------------- threads in one process


def test_threads_sharing_one_store_lose_no_write(store: Store, open_store: Callable[..., Store]) -> None:
    threads, count = 8, scaled(40)
    store.create_entities([{"name": "shared", "entityType": "chart"}])
    errors: list[BaseException] = []

    def hammer(t: int) -> None:
        try:
            for i in range(count):
                store.create_entities([{"name": f"t{t}-{i}", "entityType": "step"}])
                store.add_observations([{"entityName": "shared", "contents": [f"t{t}-{i}"]}])
        except BaseException as exc:  # reported below, with the figures
            errors.append(exc)

    pool = [threading.Thread(target=hammer, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    graph = open_store().read_graph()
    observations = next(e.observations for e in graph.entities if e.name == "shared")
    figures = (
        f"{threads} threads x {count} calls x 2: {graph.totalEntities - 1}/{threads * count} entities, "
        f"{len(set(observations))}/{threads * count} observations, errors {errors[:3]}"
    )
    print(f"\n{figures}")
    assert not errors and graph.totalEntities == threads * count + 1, figures
    assert sorted(observations) == sorted(f"t{t}-{i}" for t in range(threads) for i in range(count)), figures


# ----------------------------------------------------------------- the write lock (T15)


def busy_store(store_dir: Path) -> Store:
    store = Store(store_dir, config=StoreConfig(lockTimeoutSeconds=0.3))
    store.create_entities([{"name": "before", "entityType": "chart"}])
    return store


@pytest.mark.slow
def test_write_raises_store_busy_and_writes_nothing_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    store_dir = tmp_path / ".coaia"
    with busy_store(store_dir) as store, Fleet(store_dir, tmp_path / "work") as fleet:
        before = (store_dir / DATA_FILE).read_bytes()
        fleet.spawn("hold-lock").wait_ready()
        with pytest.raises(StoreBusyError) as raised:
            store.create_entities([{"name": "blocked", "entityType": "chart"}])
        assert (store_dir / DATA_FILE).read_bytes() == before
        assert store.open_entities(["blocked"]).notFound == ["blocked"]
    message = str(raised.value)
    assert "charts.jsonl" in message and "0.3 s" in message and "lockTimeoutSeconds" in message, message


@pytest.mark.slow
def test_lock_of_a_killed_holder_is_taken_by_the_next_write(tmp_path: Path) -> None:
    store_dir = tmp_path / ".coaia"
    with busy_store(store_dir) as store, Fleet(store_dir, tmp_path / "work") as fleet:
        holder = fleet.spawn("hold-lock")
        holder.wait_ready()
        with pytest.raises(StoreBusyError):
            store.create_entities([{"name": "blocked", "entityType": "chart"}])
        holder.kill()
        store.create_entities([{"name": "after", "entityType": "chart"}])
    with Store(store_dir) as fresh:
        assert fresh.open_entities(["after"]).notFound == []


# ----------------------------------------------------------------- Store objects in one process


def test_second_store_in_one_process_sees_the_first_ones_writes_on_its_next_call(
    open_store: Callable[..., Store],
) -> None:
    first, second = open_store(), open_store()
    first.create_entities([{"name": "goal", "entityType": "chart"}])
    assert [e.name for e in second.open_entities(["goal"]).entities] == ["goal"]
    second.add_observations([{"entityName": "goal", "contents": ["from the second store"]}])
    assert first.open_entities(["goal"]).entities[0].observations == ["from the second store"]


def test_second_store_validates_a_relation_against_an_entity_it_has_not_read(open_store: Callable[..., Store]) -> None:
    first, second = open_store(), open_store()
    second.create_entities([{"name": "step", "entityType": "action_step"}])
    first.create_entities([{"name": "goal", "entityType": "chart"}])  # second has not read since
    second.create_relations([{"from": "step", "to": "goal", "relationType": "advances"}])
    assert [(r.from_, r.to) for r in first.open_entities(["goal"]).relations] == [("step", "goal")]


@pytest.mark.slow
def test_store_that_saw_a_torn_tail_keeps_a_line_of_the_same_length_another_store_wrote_over_it(
    tmp_path: Path, open_store: Callable[..., Store], store_dir: Path
) -> None:
    """Regression: seeing the file at the size it had with the tail, the store took the
    other store's new line for that tail and cut it (an acknowledged record lost)."""
    watcher, repairer = open_store(), open_store()
    watcher.create_entities([{"name": "first", "entityType": "chart"}])
    with Fleet(store_dir, tmp_path / "work", BASE_SEED) as fleet:
        fleet.spawn("batches", count=1, die_at=0, die_how="mid-write", max_chars=RECORD_CHARS).expect_killed()
    tail = watcher.list_contexts()[0].tornTail
    assert tail is not None, "precondition: the watcher sees the torn tail"
    size = (store_dir / DATA_FILE).stat().st_size
    repairer.create_entities([filler_of_line_length(tmp_path / "scratch", tail.length)])
    assert (store_dir / DATA_FILE).stat().st_size == size, "precondition: the repair left the file at the same size"
    watcher.create_entities([{"name": "last", "entityType": "chart"}])
    assert open_store().open_entities(["first", "filler", "last"]).notFound == []


def filler_of_line_length(scratch: Path, length: int) -> dict[str, object]:
    """An entity ``filler`` whose line in the file is exactly ``length`` bytes long."""
    with Store(scratch / ".coaia") as store:
        store.create_entities([{"name": "calibrate", "entityType": "chart"}])
        start = (scratch / ".coaia" / DATA_FILE).stat().st_size
        store.create_entities([{"name": "filler", "entityType": "chart", "observations": [""]}])
        empty_line = (scratch / ".coaia" / DATA_FILE).stat().st_size - start
    return {"name": "filler", "entityType": "chart", "observations": ["x" * (length - empty_line)]}


def rewrite_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Change ``old`` to ``new`` (same length) in the one line holding it, with a valid checksum, through
    ``open('r+b')``: same inode, same size, as an editor saving over the file does."""
    assert len(old) == len(new)
    data = path.read_bytes()
    start = data.rindex(b"\n", 0, data.index(old)) + 1
    end = data.index(b"\n", start) + 1
    line = data[start:end]
    head = line[: line.rindex(b',"_crc"')].replace(old, new)
    with path.open("r+b") as f:
        f.seek(start)
        f.write(crc_line(head))


def test_a_same_size_rewrite_in_place_is_seen_by_another_store_at_its_next_read(
    open_store: Callable[..., Store], store_dir: Path
) -> None:
    """Regression (issue 9): a running server kept the old content after an editor saved the file in place."""
    writer, reader = open_store(), open_store()
    writer.create_entities([{"name": "goal", "entityType": "chart", "observations": ["draft"]}])
    assert reader.open_entities(["goal"]).entities[0].observations == ["draft"]
    before = (store_dir / DATA_FILE).stat()
    time.sleep(0.02)  # let the file times tick (their clock is coarse, a few ms) so the rewrite shows in them
    rewrite_in_place(store_dir / DATA_FILE, b'"draft"', b'"final"')
    after = (store_dir / DATA_FILE).stat()
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size), "precondition: same inode, same size"
    assert reader.open_entities(["goal"]).entities[0].observations == ["final"]
