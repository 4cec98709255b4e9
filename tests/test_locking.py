"""The per-file write lock: exclusive across holders, finite waits, robust to a deleted lock file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from coaia_store import Store, StoreBusyError
from coaia_store.graph.config import StoreConfig
from coaia_store.storage.locking import LockTimeout, WriteLock


def test_a_second_holder_waits_and_times_out(tmp_path: Path) -> None:
    first, second = WriteLock(tmp_path / "x.lock", 5), WriteLock(tmp_path / "x.lock", 0.05)
    first.acquire()

    with pytest.raises(LockTimeout):
        second.acquire()


def test_a_released_lock_can_be_taken_by_another_holder(tmp_path: Path) -> None:
    first, second = WriteLock(tmp_path / "x.lock", 5), WriteLock(tmp_path / "x.lock", 0.05)
    first.acquire()
    first.release()

    second.acquire()


def test_closing_a_holder_releases_its_lock(tmp_path: Path) -> None:
    first, second = WriteLock(tmp_path / "x.lock", 5), WriteLock(tmp_path / "x.lock", 0.05)
    first.acquire()
    first.close()

    second.acquire()


def test_the_lock_directory_is_created_on_first_use(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / ".locks" / "x.lock", 1)

    lock.acquire()

    assert (tmp_path / ".locks" / "x.lock").is_file()


def test_a_store_whose_lock_file_was_deleted_locks_the_new_one(
    open_store: Callable[..., Store], store_dir: Path
) -> None:
    early, late = open_store(config=StoreConfig(lockTimeoutSeconds=0.1)), open_store()
    early.create_entities([{"name": "a", "entityType": "t"}])
    (store_dir / ".locks" / "charts.jsonl.lock").unlink()
    late.create_entities([{"name": "b", "entityType": "t"}])  # creates a new lock file
    holder = WriteLock(store_dir / ".locks" / "charts.jsonl.lock", 1)
    holder.acquire()

    with pytest.raises(StoreBusyError, match="write lock of charts.jsonl"):
        early.create_entities([{"name": "c", "entityType": "t"}])

    assert early.open_entities(["c"]).notFound == ["c"]
