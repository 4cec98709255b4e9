"""The cross-process write lock of one data file, in ``.coaia/.locks/``.

On POSIX this is ``flock`` on a lock file whose descriptor stays open between writes, so
taking the lock is one system call (about 2 us). ``filelock.FileLock`` does the same ``flock``
but opens and closes the file on every acquire (about 120 us with filelock 4.2, a quarter of
a durable write here); it is used where ``fcntl`` does not exist (Windows). Either way the
lock is advisory, released by the kernel when its holder dies, and waited for by polling
up to a finite timeout.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import filelock

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

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
