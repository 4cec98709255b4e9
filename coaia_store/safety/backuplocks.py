"""The backup locks (in ``.coaia/.locks/``): this process's thread lock, then the cross-process file lock.

Always taken in this order, never the other way: ``backup-sweep`` (one automatic sweep at a time) -> a
context's write lock (briefly) -> ``backup-manifest`` (manifest read-modify-write and pruning, never held
while waiting for another).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..storage.locking import LOCK_DIR, LockTimeout, WriteLock
from .backupfiles import BackupError

SWEEP_LOCK, MANIFEST_LOCK = "backup-sweep.lock", "backup-manifest.lock"


class BackupLocks:
    """The backup locks of one store directory, by name."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._locks: dict[str, tuple[threading.Lock, WriteLock]] = {}
        self._locks_guard = threading.Lock()

    @contextmanager
    def locked(self, name: str, timeout: float) -> Iterator[bool]:
        """This process's thread lock, then the cross-process lock; yields False if not taken in time."""
        thread_lock, file_lock = self._lock_pair(name, timeout)
        if not thread_lock.acquire(timeout=timeout):
            yield False
            return
        try:
            file_lock.acquire()
        except LockTimeout:
            thread_lock.release()
            if timeout:
                raise BackupError(f"the backup lock {name} stayed busy for {timeout:g} s") from None
            yield False
            return
        try:
            yield True
        finally:
            file_lock.release()
            thread_lock.release()

    def _lock_pair(self, name: str, timeout: float) -> tuple[threading.Lock, WriteLock]:
        with self._locks_guard:  # each lock name is always used with the same timeout
            pair = self._locks.get(name)
            if pair is None:
                pair = self._locks[name] = (threading.Lock(), WriteLock(self._directory / LOCK_DIR / name, timeout))
            return pair

    def close(self) -> None:
        with self._locks_guard:
            for _, file_lock in self._locks.values():
                file_lock.close()
            self._locks.clear()
