"""Backups (coaia_store/safety/backup.py): automatic daily/weekly, pre-compaction, verify, retention, restore.

The clock is injected, so "a day later" is one assignment; 2026-11-16 is the Monday of ISO week 47.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from faults import SCALE, FaultyIO, data_file, entity, history_copies, recovery_events

from coaia_store import Store, StoreConfig
from coaia_store.graph.config import BackupConfig, CompactionConfig
from coaia_store.safety.backupfiles import BACKUP_DIR, BackupError, BackupInfo
from coaia_store.storage.fileio import FileIO

OpenStore = Callable[..., Store]
MONDAY = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = MONDAY) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def add(store: Store, name: str, context: str | None = None) -> None:
    store.create_entities([entity(name, f"about {name}")], context=context)


def names(store: Store, context: str | None = None) -> set[str]:
    return {e.name for e in store.read_graph(context=context).entities}


def ids(store: Store, kind: str | None = None) -> list[str]:
    return [b.id for b in store.backups.list_backups() if kind is None or b.kind == kind]


def content(store_dir: Path, info: BackupInfo) -> bytes:
    return gzip.decompress((store_dir / info.file).read_bytes())


def flip_a_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- automatic daily and weekly backups


def test_first_write_of_a_day_takes_a_daily_backup_and_the_second_does_not(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    add(store, "b")
    assert ids(store, "daily") == ["daily/charts-2026-11-16"]
    assert names_in_backup(store, "daily/charts-2026-11-16") == {"a"}


def test_first_write_of_the_next_day_takes_that_days_daily(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    clock.advance(days=1)
    add(store, "b")
    assert ids(store, "daily") == ["daily/charts-2026-11-16", "daily/charts-2026-11-17"]


def test_first_write_of_a_new_iso_week_takes_a_weekly_backup(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "monday")
    clock.advance(days=3)
    add(store, "thursday")
    assert ids(store, "weekly") == ["weekly/charts-2026-W47"]
    clock.advance(days=4)  # Monday of week 48
    add(store, "next-monday")
    assert ids(store, "weekly") == ["weekly/charts-2026-W47", "weekly/charts-2026-W48"]
    assert (store.path / ".backup" / "weekly" / "charts-2026-W48.jsonl.gz").is_file()


def test_only_contexts_changed_since_their_last_backup_are_backed_up(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    add(store, "w", context="work")
    clock.advance(days=1)
    add(store, "b")
    day_two = [b.context for b in store.backups.list_backups() if b.id.endswith("2026-11-17")]
    assert day_two == ["default"]


def test_a_context_written_by_another_process_is_backed_up_by_the_next_days_first_write(
    open_store: OpenStore, clock: FakeClock
) -> None:
    mine, other = open_store(clock=clock), open_store(clock=clock)
    add(mine, "a")
    add(other, "w", context="work")
    clock.advance(days=1)
    add(other, "w2", context="work")  # written after the day's backups of "work"
    add(mine, "b")
    day_two = sorted(b.context for b in mine.backups.list_backups() if b.group == "daily/2026-11-17")
    assert day_two == ["default", "work"]


def test_a_failed_automatic_backup_does_not_fail_the_write(open_store: OpenStore, clock: FakeClock) -> None:
    io = FaultyIO(ops={"replace"})
    store = open_store(clock=clock, io=io)
    add(store, "a")
    clock.advance(days=1)
    io.fail_at, io.persistent = io.calls + 1, True  # every later rename fails: no backup can be kept
    add(store, "b")
    assert names(open_store()) == {"a", "b"}
    assert ids(open_store(), "daily") == ["daily/charts-2026-11-16"]


# ---------------------------------------------------------------- the backup files and the manifest


def names_in_backup(store: Store, backup_id: str) -> set[str]:
    (info,) = [b for b in store.backups.list_backups() if b.id == backup_id]
    return {r["name"] for r in map(_json, content(store.path, info).splitlines()[1:]) if r.get("type") == "entity"}


def _json(line: bytes) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(line))


def test_a_backup_decompresses_to_the_source_file_byte_for_byte(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    for i in range(5):
        add(store, f"e{i}")
    info = store.backups.backup_context()
    assert info is not None
    assert content(store.path, info) == data_file(store.path).read_bytes()


def test_a_backup_leaves_out_a_torn_tail(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    complete = data_file(store.path).read_bytes()
    with data_file(store.path).open("ab") as f:
        f.write(b'{"type":"entity","name":"half')
    info = store.backups.backup_context()
    assert info is not None and content(store.path, info) == complete
    assert store.backups.verify(info.id)[0].ok


def test_manifest_records_sha256_size_records_and_source(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    store.create_entities([entity("b"), entity("c")])  # one batch line, two records
    info = store.backups.backup_context(reason="manual")
    assert info is not None
    raw = (store.path / info.file).read_bytes()
    source = data_file(store.path)
    assert (info.sha256, info.size) == (hashlib.sha256(raw).hexdigest(), len(raw))
    assert (info.records, info.lines) == (3, 3)
    assert (info.sourceFile, info.sourceSize, info.kind) == ("charts.jsonl", source.stat().st_size, "manual")
    assert info.time == "2026-11-16T09:00:00.000Z"
    assert info in Store(store.path).backups.list_backups()  # read back from MANIFEST.json


def test_every_backup_verifies(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    add(store, "w", context="work")
    store.backups.backup_all()
    results = store.backups.verify()
    assert len(results) == 6 and all(r.ok for r in results)  # daily + weekly + manual, two contexts


def test_a_corrupted_backup_is_reported_by_verify(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    info = store.backups.backup_context()
    assert info is not None
    flip_a_byte(store.path / info.file, info.size // 2)
    (result,) = store.backups.verify(info.id)
    assert not result.ok and any("sha256" in p for p in result.problems)


def test_a_corrupted_backup_is_refused_by_restore_and_nothing_changes(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    info = store.backups.backup_context()
    assert info is not None
    add(store, "b")
    before = data_file(store.path).read_bytes()
    flip_a_byte(store.path / info.file, info.size // 2)
    with pytest.raises(BackupError, match="does not verify.*refused"):
        store.backups.restore_backup(info.id)
    assert data_file(store.path).read_bytes() == before


def test_a_backup_of_a_file_with_a_damaged_line_is_reported_and_not_kept(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    add(store, "b")
    path = data_file(store.path)
    flip_a_byte(path, path.read_bytes().index(b'"a"') + 1)
    with pytest.raises(BackupError, match="failed verification"):
        store.backups.backup_context()
    assert ids(store, "manual") == []
    assert not list((store.path / ".backup").glob("manual/*"))
    assert recovery_events(store.path, "backup failed verification; deleted")


def test_a_legacy_file_is_backed_up_and_verified_leniently(
    open_store: OpenStore, clock: FakeClock, store_dir: Path
) -> None:
    store_dir.mkdir()
    legacy = (
        b'{"type":"entity","name":"old","entityType":"t","observations":[]}\n# a comment\n{"type":"entity","name":"x"}'
    )
    data_file(store_dir).write_bytes(legacy)
    info = open_store(clock=clock).backups.backup_context()
    assert info is not None and not info.strict and info.records == 3
    assert content(store_dir, info) == legacy


# ---------------------------------------------------------------- retention


def retention_store(open_store: OpenStore, clock: FakeClock) -> Store:
    return open_store(clock=clock, config=StoreConfig(backup=BackupConfig(dailyKeep=3, weeklyKeep=2)))


def test_retention_keeps_the_last_n_days_of_dailies_and_weeks_of_weeklies(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = retention_store(open_store, clock)
    for day in range(20):  # 2026-11-16 .. 2026-12-05, weeks 47 .. 49
        add(store, f"day{day}")
        clock.advance(days=1)
    assert ids(store, "daily") == [f"daily/charts-2026-12-0{d}" for d in (3, 4, 5)]
    assert ids(store, "weekly") == ["weekly/charts-2026-W48", "weekly/charts-2026-W49"]
    assert len(recovery_events(store.path, "backup pruned (retention)")) == (20 - 3) + (3 - 2)
    assert sorted(p.name for p in (store.path / ".backup" / "daily").iterdir()) == [
        f"charts-2026-12-0{d}.jsonl.gz" for d in (3, 4, 5)
    ]


def test_retention_keeps_the_last_n_dailies_when_they_are_older_than_n_days(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = retention_store(open_store, clock)
    for day in range(5):  # one write every fourth day
        add(store, f"day{day}")
        clock.advance(days=4)
    assert ids(store, "daily") == ["daily/charts-2026-11-24", "daily/charts-2026-11-28", "daily/charts-2026-12-02"]


def test_retention_never_deletes_the_only_backup_of_a_context(open_store: OpenStore, clock: FakeClock) -> None:
    store = retention_store(open_store, clock)
    add(store, "once", context="rare")
    for day in range(20):
        clock.advance(days=1)
        add(store, f"day{day}")
    rare = [b.id for b in store.backups.list_backups("rare")]
    assert rare == ["daily/charts-rare-2026-11-16", "weekly/charts-rare-2026-W47"]
    assert all(r.ok for r in store.backups.verify())


# ---------------------------------------------------------------- restore


def test_restore_brings_back_the_backed_up_state_byte_for_byte(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    info = store.backups.backup_context()
    assert info is not None
    add(store, "b")
    store.backups.restore_backup(info.id)
    assert data_file(store.path).read_bytes() == content(store.path, info)
    assert names(store) == {"a"}


def test_restore_first_backs_up_the_current_state(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    add(store, "b")
    current = data_file(store.path).read_bytes()
    result = store.backups.restore_backup("daily/charts-2026-11-16")
    (safety,) = result.safetyBackups
    assert safety.kind == "pre-restore" and content(store.path, safety) == current
    assert history_copies(store.path) == [current]
    assert [e["found"] for e in recovery_events(store.path, "replaced")] == [
        "restore of backup daily/charts-2026-11-16"
    ]


def test_other_stores_see_the_restored_state(open_store: OpenStore, clock: FakeClock) -> None:
    store, other = open_store(clock=clock), open_store(clock=clock)
    add(store, "a")
    add(store, "b")
    assert names(other) == {"a", "b"}
    store.backups.restore_backup("daily/charts-2026-11-16")
    assert names(other) == {"a"}
    add(other, "c")  # and write on top of it
    assert names(store) == {"a", "c"}


def test_restore_of_a_group_restores_every_context_in_it(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    add(store, "w", context="work")
    group = store.backups.backup_all()[0].group
    add(store, "b")
    add(store, "w2", context="work")
    result = store.backups.restore_backup(group)
    assert sorted(b.context for b in result.restored) == ["default", "work"]
    assert (names(store, "default"), names(store, "work")) == ({"a"}, {"w"})


def test_restore_of_one_context_of_a_group_leaves_the_others(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    add(store, "w", context="work")
    add(store, "b")
    store.backups.restore_backup("daily/2026-11-16", context="work")
    assert names(store, "default") == {"a", "b"}


def test_restore_of_an_unknown_backup_is_refused(store: Store) -> None:
    with pytest.raises(BackupError, match="no backup 'daily/nope'"):
        store.backups.restore_backup("daily/nope")


# ---------------------------------------------------------------- compaction, concurrency, faults


def test_compaction_first_backs_up_the_file_it_rewrites(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock)
    add(store, "a")
    store.add_observations([{"entityName": "a", "contents": ["more"]}])
    before = data_file(store.path).read_bytes()
    assert store.compact()
    (info,) = [b for b in store.backups.list_backups() if b.kind == "pre-compaction"]
    assert content(store.path, info) == before


def test_backups_taken_while_other_stores_append_and_compact_all_verify(
    open_store: OpenStore, clock: FakeClock
) -> None:
    config = StoreConfig(compaction=CompactionConfig(minBytes=8_000, garbageRatio=0.5))

    def writer(index: int) -> None:
        store = open_store(clock=clock, config=config)
        for seq in range(60 * SCALE):
            add(store, f"w{index}-{seq}")
            for note in ("x", "y"):  # two superseded states per entity: compactions well before the end
                store.add_observations([{"entityName": f"w{index}-{seq}", "contents": [note]}])

    backups = open_store(clock=clock).backups
    add(open_store(clock=clock, config=config), "seed")  # the file exists before the first backup is asked for
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    taken = 0
    while any(t.is_alive() for t in threads) or taken < 5:
        assert backups.backup_context() is not None
        taken += 1
    for t in threads:
        t.join()
    kinds = {b.kind for b in backups.list_backups()}
    results = backups.verify()
    assert {"manual", "pre-compaction"} <= kinds
    assert len(results) >= taken and all(r.ok for r in results)


@pytest.mark.parametrize("fail_at", [1, 2], ids=["backup-file-rename", "manifest-rename"])
def test_a_backup_killed_at_a_rename_leaves_the_previous_backups_and_manifest_intact(
    open_store: OpenStore, clock: FakeClock, fail_at: int
) -> None:
    io = FaultyIO(ops={"replace"})
    store = open_store(clock=clock, io=io)
    add(store, "a")
    before = store.backups.list_backups()
    add(store, "b")
    io.fail_at = io.calls + fail_at
    with pytest.raises(OSError):
        store.backups.backup_context()
    fresh = open_store()
    assert fresh.backups.list_backups() == before
    assert all(r.ok for r in fresh.backups.verify())
    assert fresh.backups.backup_context() is not None  # and the next backup works


def test_a_backup_whose_fsync_fails_leaves_no_file_and_the_manifest_intact(
    open_store: OpenStore, clock: FakeClock
) -> None:
    io = FaultyIO(ops={"fsync"})
    store = open_store(clock=clock, io=io)
    add(store, "a")
    before = store.backups.list_backups()
    io.fail_at = io.calls + 1
    with pytest.raises(OSError):
        store.backups.backup_context()
    assert open_store().backups.list_backups() == before
    assert not list((store.path / ".backup").glob("manual/*"))


def test_a_temp_file_left_by_a_killed_daily_backup_is_removed_by_the_next_days_backups(
    open_store: OpenStore, clock: FakeClock
) -> None:
    io = FaultyIO(ops={"replace"})
    store = open_store(clock=clock, io=io)
    add(store, "a")
    clock.advance(days=1)
    io.fail_at = io.calls + 1  # the daily's rename
    add(store, "b")
    assert list((store.path / ".backup" / "daily").glob("*.tmp"))
    clock.advance(days=1)
    add(open_store(clock=clock), "c")
    assert not list((store.path / ".backup" / "daily").glob("*.tmp"))
    assert recovery_events(store.path, "removed")


class _HeldBackupIO(FileIO):
    """Holds every write into .backup/ until released, to show who waits for it."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def write_file_atomic(self, path: Path, chunks: Iterable[bytes]) -> None:
        if BACKUP_DIR in path.parts:
            assert self.release.wait(30)
        super().write_file_atomic(path, chunks)


def test_background_backups_do_not_hold_up_the_write_that_triggers_them(store_dir: Path, clock: FakeClock) -> None:
    io = _HeldBackupIO()
    store = Store(store_dir, io=io, clock=clock, background_backups=True)

    add(store, "a")  # returns although the day's backup cannot be written yet
    io.release.set()
    store.close()  # waits for the backup under way

    assert {b.kind for b in Store(store_dir).backups.list_backups()} == {"daily", "weekly"}


def test_status_reports_a_context_whose_file_is_gone_and_the_backup_that_holds_it(
    store_dir: Path, clock: FakeClock
) -> None:
    store = Store(store_dir, clock=clock)
    add(store, "a", context="work")
    taken = store.backups.backup_context("work")
    assert taken is not None
    (store_dir / "charts-work.jsonl").unlink()

    fresh = Store(store_dir)
    status = fresh.status()

    newest = fresh.backups.list_backups("work")[-1]
    assert status.degraded and any(f"coaia-store restore {newest.id}" in p for p in status.problems)
