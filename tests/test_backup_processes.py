"""Backups under load (T-backup): taken while 4 writer processes append and auto-compaction runs,
and by a process killed with SIGKILL in the middle of a backup.

* After the writers exit: every backup in the manifest verifies, and restoring each one into a
  copy of the store gives a data file whose bytes equal the backup's decompressed bytes.
* After kill -9 of backup takers: every backup they acknowledged is listed and verifies, the
  manifest loads, a new backup works (and replaces a manifest temp file left by a kill), and the
  next sweep removes the backup temp files the kills left once they are older than the stale
  threshold (a younger one may belong to a live backup, so it is kept until then).
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import time
from pathlib import Path

import pytest
from torture import (
    Fleet,
    Tally,
    Writer,
    acked,
    check_entities,
    scaled,
    scan_file,
    seqs,
    snapshot,
    trial_seeds,
    write_config,
)

from coaia_store import Store

# Compaction as soon as a tenth of the file is superseded (the churn writers supersede all the time).
EAGER_COMPACTION = {"compaction": {"minBytes": 0, "garbageRatio": 0.1}}
MAX_CHARS = 300
STALE_AGE = 2 * 3600  # seconds: older than the engine's threshold for a temp file no live backup owns


def start_writers(fleet: Fleet, count: int, **options: object) -> list[Writer]:
    """Two ``entities`` and two ``churn`` writers, released together."""
    writers = [
        fleet.spawn("entities", writer=w, count=count, max_chars=MAX_CHARS, go_file=fleet.go_file, **options)
        for w in (0, 1)
    ]
    writers += [fleet.spawn("churn", writer=w, count=count, max_chars=MAX_CHARS, go_file=fleet.go_file) for w in (2, 3)]
    fleet.start_together()
    return writers


def backup_while(store: Store, writers: list[Writer]) -> int:
    """Manual backups back to back until every writer has exited; how many were taken."""
    taken = 0
    while any(w.alive() for w in writers):
        taken += store.backups.backup_context() is not None
    return taken


def temp_files(store_dir: Path) -> list[Path]:
    return sorted((store_dir / ".backup").glob("*/*.tmp")) + sorted((store_dir / ".backup").glob("*.tmp"))


def restored_bytes_equal(store_dir: Path, backup_id: str, copy: Path) -> bool:
    """Restore ``backup_id`` into a copy of the store: the data file then holds exactly the backup's bytes."""
    shutil.copytree(store_dir, copy, ignore=shutil.ignore_patterns("history", ".recovery"))
    with Store(copy) as store:
        (info,) = [b for b in store.backups.list_backups() if b.id == backup_id]
        store.backups.restore_backup(backup_id)
        content = gzip.decompress((copy / info.file).read_bytes())
        equal = (copy / info.sourceFile).read_bytes() == content
    shutil.rmtree(copy)
    return equal


def check_acked_records(store_dir: Path, writers: list[Writer], seed: int, tally: Tally) -> None:
    with Store(store_dir) as store:
        snap = snapshot(store)
    check_entities(snap, scan_file(store_dir / "charts.jsonl"), seqs(acked(writers, "E")), seed, MAX_CHARS, tally)


@pytest.mark.slow
def test_backups_taken_during_appends_and_compactions_verify_and_restore_byte_for_byte(tmp_path: Path) -> None:
    tally = Tally("T-backup under load: 4 writer processes, auto-compaction, manual backups")
    store_dir, work = tmp_path / "store" / ".coaia", tmp_path / "work"
    write_config(store_dir, EAGER_COMPACTION)
    (seed,) = trial_seeds(1)
    with Fleet(store_dir, work, seed) as fleet, Store(store_dir) as store:
        writers = start_writers(fleet, scaled(300))
        taken = backup_while(store, writers)
        for w in writers:
            w.finish()
        listed = store.backups.list_backups()
        failed = [r for r in store.backups.verify() if not r.ok]
        compactions = len(list((store_dir / "history").rglob("*.gz")))
    tally.trials = 1
    check_acked_records(store_dir, writers, seed, tally)
    equal = sum(restored_bytes_equal(store_dir, b.id, tmp_path / f"copy{i}" / ".coaia") for i, b in enumerate(listed))
    tally.notes += [
        f"{taken} manual backups taken",
        f"{len(listed)} listed (all kinds)",
        f"{len(failed)} failed to verify",
        f"{equal} restored byte-equal",
        f"{compactions} compactions",
    ]
    if failed:
        tally.problems += [f"backup {r.id} does not verify: {r.problems[:2]}" for r in failed]
    if equal != len(listed):
        tally.problems.append(f"only {equal} of {len(listed)} backups restored byte-for-byte")
    figures = tally.report()
    assert taken and compactions and not tally.problems, figures


def kill_backup_takers(fleet: Fleet, seed: int, kills: int) -> list[str]:
    """Start a backup taker, let it acknowledge one backup, SIGKILL it at a seeded moment; the ids acknowledged."""
    rng = random.Random(seed)
    ids: list[str] = []
    for i in range(kills):
        taker = fleet.spawn("backup-taker", writer=10 + i)
        taker.wait_ready()
        fleet.wait_for_acks([taker])
        time.sleep(rng.uniform(0.0, 0.1))
        taker.kill()
        ids += [ack[3] for ack in taker.acks if ack[0] == "K"]
    return ids


@pytest.mark.slow
def test_a_backup_killed_midway_leaves_earlier_backups_intact_and_the_next_backup_works(tmp_path: Path) -> None:
    tally = Tally("T-backup kill -9 of a backup taker during appends")
    store_dir, work = tmp_path / "store" / ".coaia", tmp_path / "work"
    write_config(store_dir, EAGER_COMPACTION)
    (seed,) = trial_seeds(1)
    with Fleet(store_dir, work, seed) as fleet:
        writers = start_writers(fleet, 1_000_000, stop_file=fleet.stop_file)
        acked_ids = kill_backup_takers(fleet, seed, scaled(10))
        fleet.stop()
        for w in writers:
            w.kill()  # the churn writers do not look at the stop file
    tally.trials = scaled(10)
    left = temp_files(store_dir)
    with Store(store_dir) as store:
        listed = {b.id for b in store.backups.list_backups()}  # raises if the manifest does not load
        failed = [r for r in store.backups.verify() if not r.ok]
        fresh = store.backups.backup_context()
    missing = [i for i in acked_ids if i not in listed]
    on_disk = {
        str(p.relative_to(store_dir / ".backup"))[: -len(".jsonl.gz")] for p in (store_dir / ".backup").glob("*/*.gz")
    }
    unlisted = sorted(on_disk - listed - {fresh.id if fresh else ""})
    for path in temp_files(store_dir):
        os.utime(path, (time.time() - STALE_AGE, time.time() - STALE_AGE))
    with Store(store_dir) as store:
        store.create_entities([{"name": "after-the-kills", "entityType": "probe"}])  # the day's first write: a sweep
        removed = [
            e
            for e in store.recovery.entries()
            if str(e.get("file", "")).endswith(".tmp") and e.get("action") == "removed"
        ]
        fresh_ok = fresh is not None and store.backups.verify(fresh.id)[0].ok
    remaining = temp_files(store_dir)
    tally.notes += [
        f"{len(acked_ids)} backups acknowledged before the kills",
        f"{len(listed)} listed",
        f"{len(failed)} failed to verify",
        f"{len(left)} temp files left by kills",
        f"{len(removed)} removed by the next sweep",
        f"{len(unlisted)} complete backup files not in the manifest",
    ]
    tally.problems += [f"acknowledged backup {i} not listed" for i in missing]
    tally.problems += [f"backup {r.id} does not verify: {r.problems[:2]}" for r in failed]
    tally.problems += [] if fresh_ok else ["a new backup after the kills failed or does not verify"]
    tally.problems += [f"temp file {p.name} survived the sweep" for p in remaining]
    figures = tally.report()
    assert acked_ids and not tally.problems, figures
