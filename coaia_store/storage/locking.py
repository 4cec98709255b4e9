"""The write locks of one data file: an in-process mutex, and the cross-process lock in ``.coaia/.locks/``.

On POSIX this is ``flock`` on a lock file whose descriptor stays open between writes, so
taking the lock is one system call (about 2 us). ``filelock.FileLock`` does the same ``flock``
but opens and closes the file on every acquire (about 120 us with filelock 4.2, a quarter of
a durable write here); it is used where ``fcntl`` does not exist (Windows). Either way the
lock is advisory, released by the kernel when its holder dies, and waited for by polling
up to a finite timeout.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from types import TracebackType

import filelock

from ..errors import ReadOnlyError, StorageError, StoreBusyError
from .fileio import FileIO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_DIR = ".locks"
_FIRST_WAIT, _MAX_WAIT = 0.001, 0.05


class LockTimeout(TimeoutError):
    """The lock stayed held by another process for the whole timeout."""


class WriteLock:
    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self._timeout = timeout
        self._fd: int | None = None
        self._fallback = None if fcntl else filelock.FileLock(str(path), timeout=timeout)

    def acquire(self) -> None:
        """Take the lock or raise :class:`LockTimeout`; ``OSError`` if the file cannot be opened."""
        if self._fallback is not None:  # pragma: no cover - Windows
            try:
                self._fallback.acquire()
            except filelock.Timeout as exc:
                raise LockTimeout(str(self.path)) from exc
            return
        deadline = time.monotonic() + self._timeout
        wait = _FIRST_WAIT
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(str(self.path)) from None
                time.sleep(wait)
                wait = min(wait * 2, _MAX_WAIT)
                continue
            if self._is_current(fd):
                return
            # The lock file was deleted or replaced while we waited: others lock the new one.
            fcntl.flock(fd, fcntl.LOCK_UN)
            self.close()

    def release(self) -> None:
        if self._fallback is not None:  # pragma: no cover - Windows
            self._fallback.release()
        elif self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        return self._fd

    def _is_current(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False


class JournalLock:
    """A journal file's write locks, taken as one: its in-process mutex, then its cross-process file lock.

    Failing to take the file lock is an error a person can act on (busy, read-only, or why not).
    """

    def __init__(self, path: Path, io: FileIO, timeout: float) -> None:
        self.path = path
        self.file = path.parent / LOCK_DIR / (path.name + ".lock")
        self.mutex = threading.RLock()  # alone, it serialises this process's readers and writers
        self._io = io
        self._timeout = timeout
        self._flock: WriteLock | None = None

    def __enter__(self) -> None:
        self.mutex.acquire()
        try:
            self._acquire_file_lock()
        except BaseException:
            self.mutex.release()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._flock is not None:
                self._flock.release()
        finally:
            self.mutex.release()

    def close(self) -> None:
        """Close the lock file (call it holding :attr:`mutex`)."""
        if self._flock is not None:
            self._flock.close()
            self._flock = None

    def _acquire_file_lock(self) -> None:
        try:
            if self._flock is None:
                # The store directory is made (durably: its parent is fsynced) before the lock file
                # creates it as a side effect, or a power cut could lose it with every acked record.
                self._io.ensure_dir(self.path.parent)
                self._flock = WriteLock(self.file, self._timeout)
            self._flock.acquire()
        except LockTimeout as exc:
            raise StoreBusyError(
                f"another process has held the write lock of {self.path.name} for over {self._timeout:g} s; "
                "retry shortly, and if it persists look for a hung coaia-store process (lockTimeoutSeconds in config.json)"
            ) from exc
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise ReadOnlyError(
                    f"{self.path.parent} is not writable ({exc.strerror}); only reads are possible"
                ) from exc
            raise StorageError(f"cannot take the write lock of {self.path.name}: {exc.strerror}") from exc
