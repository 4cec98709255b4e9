"""Housekeeping after a write (issue 9 item 1): a saved write is never answered "nothing was saved".

The automatic compaction that may follow an append can fail (a full disk, an I/O error, no
permission, ``history/`` not a directory). The rules under test: the write's own outcome decides
the answer; the failure is reported in ``status()`` with what to do; it is retried at a write
after a backoff, and a compaction that runs clears it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from faults import SCALE, data_file, entity, history_copies, tmpfs

from coaia_store import Store
from coaia_store.errors import CoaiaError
from coaia_store.graph.config import CompactionConfig, StoreConfig

EAGER = StoreConfig(compaction=CompactionConfig(garbageRatio=0.2, minBytes=0))  # compaction due at almost every write


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def superseding_writes(store: Store, count: int, start: int = 0) -> list[str]:
    """``count`` observations added to one entity (each line supersedes the last); the errors raised."""
    errors = []
    for i in range(start, start + count):
        try:
            store.add_observations([{"entityName": "hot", "contents": [f"note {i}"]}])
        except CoaiaError as exc:
            errors.append(str(exc))
    return errors


def notes(store_dir: Path) -> list[str]:
    with Store(store_dir) as fresh:
        (hot,) = fresh.open_entities(["hot"]).entities
    return hot.observations


@pytest.fixture
def blocked_history(store_dir: Path) -> Path:
    """A store whose ``history/`` is a file, so every compaction fails (ENOTDIR)."""
    with Store(store_dir) as store:
        store.create_entities([entity("hot")])
    (store_dir / "history").write_text("not a directory")
    return store_dir


def test_a_write_whose_automatic_compaction_fails_is_acknowledged_and_saved(blocked_history: Path) -> None:
    with Store(blocked_history, config=EAGER) as store:
        errors = superseding_writes(store, 5)
    assert errors == []
    assert notes(blocked_history) == [f"note {i}" for i in range(5)]


def test_a_failed_automatic_compaction_is_reported_in_status_with_what_to_do(blocked_history: Path) -> None:
    with Store(blocked_history, config=EAGER) as store:
        superseding_writes(store, 2)
        (info,) = store.list_contexts()
        status = store.status()
    assert info.housekeeping and "ENOTDIR" in info.housekeeping and "What to do" in info.housekeeping
    assert "mv .coaia/history" in info.housekeeping and "every write was saved" in info.housekeeping
    assert info.degraded and status.degraded and any("automatic compaction failed" in p for p in status.problems)


def test_a_failed_compaction_is_retried_after_its_backoff_and_a_success_clears_the_report(
    blocked_history: Path,
) -> None:
    clock = Clock()
    with Store(blocked_history, config=EAGER, clock=clock) as store:
        superseding_writes(store, 2)
        (blocked_history / "history").unlink()  # the person follows the advice
        superseding_writes(store, 1, start=2)
        assert store.list_contexts()[0].housekeeping, "retried before its backoff ran out"
        clock.now += timedelta(minutes=1)
        superseding_writes(store, 1, start=3)
        (info,) = store.list_contexts()
    assert info.housekeeping is None and not info.degraded
    assert history_copies(blocked_history)


# ------------------------------------------------------------------ a real full disk: a 1 MiB tmpfs


@dataclass
class FullDiskTally:
    calls: int = 0
    acknowledged: list[str] = field(default_factory=list)
    said_nothing_saved: list[str] = field(default_factory=list)
    other_errors: list[str] = field(default_factory=list)
    compaction_failed: int = 0  # acknowledged writes whose automatic compaction failed


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tiny", "1m") as mount:
        yield mount / ".coaia"


def fill(store_dir: Path, tally: FullDiskTally, calls: int) -> None:
    """Add one 3 KB observation per call to one of 8 entities until the disk is full and stays so."""
    with Store(store_dir, config=StoreConfig(compaction=CompactionConfig(garbageRatio=0.3, minBytes=0))) as store:
        store.create_entities([entity(f"e{k}") for k in range(8)])
        for i in range(calls):
            note = f"n{i}-" + os.urandom(1500).hex()  # incompressible: history copies take real space
            tally.calls += 1
            try:
                store.add_observations([{"entityName": f"e{i % 8}", "contents": [note]}])
            except CoaiaError as exc:
                (tally.said_nothing_saved if "nothing was saved" in str(exc) else tally.other_errors).append(note)
            else:
                tally.acknowledged.append(note)
                tally.compaction_failed += store.list_contexts()[0].housekeeping is not None


def test_on_a_full_1_mib_disk_no_saved_write_is_answered_nothing_was_saved(tiny_disk: Path) -> None:
    """Regression: 5 of 5 calls answered "nothing was saved" on a 1 MiB tmpfs had all been saved."""
    tally = FullDiskTally()
    fill(tiny_disk, tally, 300 * SCALE)
    with Store(tiny_disk) as fresh:
        present = {o for e in fresh.read_graph().entities for o in e.observations}
        problems = fresh.status().problems
    lost = [n for n in tally.acknowledged if n not in present]
    false_answers = [n for n in tally.said_nothing_saved if n in present]
    print(
        f"\nFIGURE full disk (1 MiB tmpfs): {tally.calls} calls, {len(tally.acknowledged)} acknowledged, "
        f"{tally.compaction_failed} of them with a failed compaction reported, "
        f"{len(lost)} lost, {len(tally.said_nothing_saved)} answered 'nothing was saved', "
        f"{len(false_answers)} of them false, {len(tally.other_errors)} other errors"
    )
    assert tally.said_nothing_saved, "precondition: the disk filled up"
    assert not lost and not false_answers
    assert data_file(tiny_disk).exists() and problems is not None


def test_another_process_reports_a_failed_compaction_until_one_succeeds(blocked_history: Path) -> None:
    """The terminal's coaia-store status must not say healthy while the server's compactions fail."""
    clock = Clock()
    with Store(blocked_history, config=EAGER, clock=clock) as server:
        superseding_writes(server, 2)
        with Store(blocked_history) as terminal:
            (seen,) = terminal.list_contexts()
        assert seen.housekeeping and "automatic compaction failed" in seen.housekeeping and seen.degraded
        (blocked_history / "history").unlink()
        clock.now += timedelta(minutes=1)
        superseding_writes(server, 1, start=2)
    with Store(blocked_history) as terminal:
        (seen,) = terminal.list_contexts()
    assert seen.housekeeping is None and not seen.degraded
