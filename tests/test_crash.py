"""kill -9 of writer processes: no acknowledged record is lost, a call is all-or-nothing, and
the next write repairs what the crash left (reliability.md §7, T1, T3, T4).

Each randomised test runs seeded trials (``COAIA_TORTURE_SCALE`` multiplies them), prints its
figures (``pytest -s`` shows them) and carries the same figures in its assertion message.
The deterministic tests make a real writer process SIGKILL itself at a chosen point.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from proc_writer import batch_entities, batch_relations, hot_entity
from torture import (
    BASE_SEED,
    CHECKER_CONFIG,
    DATA_FILE,
    BatchShape,
    Fleet,
    Tally,
    acked,
    check_batch_writer,
    check_batches,
    check_observations,
    check_writers,
    count_repairs,
    kill_at,
    reopen_and_check,
    scaled,
    scan_file,
    seqs,
    snapshot,
    trial_seeds,
    write_config,
)

from coaia_store import Store

pytestmark = pytest.mark.slow

RECORD_CHARS = 16_000  # records of 0..16,000 characters: up to ~20 KB of UTF-8 each
BATCH = BatchShape(size=50, max_chars=4_000)  # one create_entities call of ~100 KB
BULK = BatchShape(size=100, max_chars=4_000)  # ~250 KB written before a compaction trial
BULK_WRITER = 99
# Compact often, and save the state cache at every compaction and catch-up, so kills land in both.
EAGER_COMPACTION = {"compaction": {"minBytes": 0, "garbageRatio": 0.05}, "stateCacheMinBytes": 0}


def trial_dirs(tmp_path: Path, seed: int) -> tuple[Path, Path]:
    return tmp_path / f"trial-{seed}" / ".coaia", tmp_path / f"trial-{seed}" / "work"


def prefill(store_dir: Path, seed: int) -> None:
    """Writer ``BULK_WRITER``'s batch 0 of entities and relations, written in this process."""
    with Store(store_dir) as store:
        store.create_entities(batch_entities(seed, BULK_WRITER, 0, BULK.size, BULK.max_chars))
        store.create_relations(batch_relations(BULK_WRITER, 0, BULK.size))


def test_writer_killed_at_random_moments_loses_no_acknowledged_record(tmp_path: Path) -> None:
    tally = Tally("T1 kill -9 of a single writer")
    for seed in trial_seeds(scaled(12)):
        store_dir, work = trial_dirs(tmp_path, seed)
        with Fleet(store_dir, work, seed) as fleet:
            writer = fleet.spawn("entities", max_chars=RECORD_CHARS)
            writer.wait_ready()
            kill_at([writer], [random.Random(seed).uniform(0.0, 0.25)])
        snap, scan = reopen_and_check(store_dir, seed, tally)
        check_writers(snap, scan, fleet.writers, seed, RECORD_CHARS, tally)
    figures = tally.report()
    assert tally.acked and not tally.problems, figures


@pytest.mark.parametrize("mode", ["entities", "batches"])
def test_writer_killed_mid_line_leaves_a_torn_tail_that_the_next_write_quarantines_and_cuts(
    tmp_path: Path, mode: str
) -> None:
    seed = BASE_SEED
    store_dir, work = trial_dirs(tmp_path, seed)
    with Fleet(store_dir, work, seed) as fleet:
        writer = fleet.spawn(
            mode,
            count=10,
            die_at=4,
            die_how="mid-write",
            die_fraction=random.Random(seed).uniform(0.05, 0.95),
            max_chars=BATCH.max_chars,
        )
        writer.expect_killed()
    assert scan_file(store_dir / DATA_FILE).tail, "precondition: the killed writer left part of a line"
    tally = Tally(f"torn tail left by a {mode} writer killed mid-line")
    snap, scan = reopen_and_check(store_dir, seed, tally)
    if mode == "entities":
        check_writers(snap, scan, fleet.writers, seed, BATCH.max_chars, tally)
    else:
        check_batch_writer(snap, writer, seed, BATCH, tally)
    figures = tally.report()
    assert tally.torn_tails == 1 and not tally.problems, figures


def test_batches_of_a_writer_killed_at_random_moments_are_whole_or_absent(tmp_path: Path) -> None:
    tally = Tally(f"T3 kill -9 during {BATCH.size}-record batch calls")
    for seed in trial_seeds(scaled(8)):
        store_dir, work = trial_dirs(tmp_path, seed)
        with Fleet(store_dir, work, seed) as fleet:
            writer = fleet.spawn("batches", batch_size=BATCH.size, max_chars=BATCH.max_chars)
            writer.wait_ready()
            kill_at([writer], [random.Random(seed).uniform(0.0, 0.3)])
        snap, _ = reopen_and_check(store_dir, seed, tally)
        check_batch_writer(snap, writer, seed, BATCH, tally)
    figures = tally.report()
    assert tally.acked and not tally.problems, figures


def test_kill_during_compactions_and_appends_loses_no_acknowledged_record(tmp_path: Path) -> None:
    tally = Tally("T4 kill -9 of a compactor and 2 appenders (auto-compaction on)")
    history_temps = 0
    for seed in trial_seeds(scaled(6)):
        store_dir, work = trial_dirs(tmp_path, seed)
        write_config(store_dir, EAGER_COMPACTION)
        prefill(store_dir, seed)
        with Fleet(store_dir, work, seed) as fleet:
            fleet.spawn("compactor", writer=9, go_file=fleet.go_file)
            appenders = [fleet.spawn("churn", writer=w, max_chars=2_000, go_file=fleet.go_file) for w in (0, 1)]
            fleet.start_together()
            rng = random.Random(seed)
            kill_at(fleet.writers, [rng.uniform(0.02, 0.3) for _ in fleet.writers])
        snap, scan = reopen_and_check(store_dir, seed, tally)
        check_writers(snap, scan, appenders, seed, 2_000, tally)
        check_batches(snap, BULK_WRITER, [0], [0], seed, BULK, tally)
        for w in appenders:
            hot = snap.entities.get(hot_entity(w.id), [])
            check_observations(hot, seqs(acked([w], "O")), seed, tally, f"observations on {hot_entity(w.id)}")
        history_temps += len(list((store_dir / "history").rglob("*.tmp")))
    if history_temps:
        tally.problems.append(f"{history_temps} history/*.tmp files still there after the next write")
    figures = tally.report()
    assert tally.acked and not tally.problems, figures


def test_temp_file_of_a_compaction_killed_before_its_rename_is_removed_by_the_next_write(tmp_path: Path) -> None:
    seed = BASE_SEED
    store_dir, work = trial_dirs(tmp_path, seed)
    prefill(store_dir, seed)
    with Fleet(store_dir, work, seed) as fleet:
        fleet.spawn("compactor", count=3, die_at=1, die_how="before-replace").expect_killed()
    assert (store_dir / (DATA_FILE + ".tmp")).exists(), "precondition: the killed compaction left its temp file"
    tally = Tally("compaction killed between its temp file and the rename")
    snap, _ = reopen_and_check(store_dir, seed, tally)
    check_batches(snap, BULK_WRITER, [0], [0], seed, BULK, tally)
    figures = tally.report()
    assert tally.stale_temps == 1 and not tally.problems, figures


def damage_the_last_lines_and_plant_odd_files(store_dir: Path, damaged: int = 2) -> bytes:
    """Four entities written here, one byte changed in each of the last ``damaged`` lines (complete lines:
    damage, not a torn tail), a FIFO and a dangling link as two more contexts; returns the damaged file."""
    with Store(store_dir) as store:
        for i in range(4):
            store.create_entities([{"name": f"before-{i}", "entityType": "probe"}])
    path = store_dir / DATA_FILE
    data = bytearray(path.read_bytes())
    starts = [0] + [i + 1 for i, byte in enumerate(data[:-1]) if byte == ord("\n")]
    for start in starts[-damaged:]:
        data[start + 10] ^= 0x01
    path.write_bytes(data)
    os.mkfifo(store_dir / "charts-pipe.jsonl")
    os.symlink(store_dir.parent / "nowhere.jsonl", store_dir / "charts-gone.jsonl")
    return bytes(data)


def test_writers_killed_beside_damaged_last_lines_and_odd_files_lose_nothing_and_never_cut_the_damage(
    tmp_path: Path,
) -> None:
    tally = Tally("kill -9 of 2 writers appending after 2 damaged last lines, a FIFO and a dangling link beside")
    for seed in trial_seeds(scaled(6)):
        store_dir, work = trial_dirs(tmp_path, seed)
        damaged = damage_the_last_lines_and_plant_odd_files(store_dir)
        with Fleet(store_dir, work, seed) as fleet:
            writers = [fleet.spawn("entities", writer=w, max_chars=2_000) for w in (0, 1)]
            for writer in writers:
                writer.wait_ready()
            rng = random.Random(seed)
            kill_at(writers, [rng.uniform(0.02, 0.25) for _ in writers])
        tally.trials += 1
        with Store(store_dir, config=CHECKER_CONFIG) as store:
            store.create_entities([{"name": "checker-probe", "entityType": "probe"}])
            snap = snapshot(store)
            infos = {i.name: i for i in store.list_contexts()}
            count_repairs(store, tally)
        if not (store_dir / DATA_FILE).read_bytes().startswith(damaged):
            tally.problem(seed, "the damaged last lines were cut or changed")
        if [d.line for d in infos["default"].damagedLines] != [4, 5]:
            tally.problem(seed, f"damaged lines reported as {infos['default'].damagedLines}")
        if not (infos["pipe"].unreadable and infos["gone"].unreadable):
            tally.problem(seed, "an odd context file is not reported unreadable")
        check_writers(snap, scan_file(store_dir / DATA_FILE), fleet.writers, seed, 2_000, tally)
    figures = tally.report()
    assert tally.acked and not tally.problems, figures
