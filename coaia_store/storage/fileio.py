"""The one seam every data-file system call goes through.

Production uses :class:`FileIO` as it is. Tests subclass it to fail the Nth call with
ENOSPC, EIO or EACCES, or to simulate power loss, without LD_PRELOAD or root.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

_DARWIN = sys.platform == "darwin"


class FileIO:
    """Thin wrappers over ``os``; each method is one system call (or one loop of them)."""

    def open(self, path: str | Path, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def fsync(self, fd: int) -> None:
        if _DARWIN:  # plain fsync does not flush the drive cache on macOS
            import fcntl

            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)  # type: ignore[attr-defined]  # macOS only
        else:
            os.fdatasync(fd)

    def fsync_dir(self, path: str | Path) -> None:
        if sys.platform == "win32":
            return
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def truncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def replace(self, src: str | Path, dst: str | Path) -> None:
        os.replace(src, dst)

    def link(self, src: str | Path, dst: str | Path) -> None:
        os.link(src, dst)

    def unlink(self, path: str | Path) -> None:
        os.unlink(path)

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def stat(self, path: str | Path) -> os.stat_result:
        return os.stat(path)

    def lstat(self, path: str | Path) -> os.stat_result:
        return os.lstat(path)

    def writable(self, path: str | Path) -> bool:
        """Whether this process may write ``path`` (permissions, a read-only mount: ``access(2)``)."""
        return os.access(path, os.W_OK)

    def listdir(self, path: str | Path) -> list[str]:
        return os.listdir(path)

    def mkdir(self, path: str | Path) -> None:
        os.mkdir(path, 0o755)

    def disk_usage(self, path: str | Path) -> tuple[int, int]:
        """The size and free space (bytes, for an unprivileged user) of the filesystem holding ``path``."""
        usage = shutil.disk_usage(path)
        return usage.total, usage.free

    # Composite helpers: built only from the primitives above, so faults reach them too.

    def write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self.write(fd, view)
            if written <= 0:
                raise OSError(f"write returned {written}")
            view = view[written:]

    def ensure_dir(self, path: Path) -> None:
        """Create ``path`` (and missing parents) durably: each new entry's parent is fsynced."""
        if path.is_dir():
            return
        self.ensure_dir(path.parent)
        try:
            self.mkdir(path)
        except FileExistsError:
            return
        self.fsync_dir(path.parent)

    def write_file_atomic(self, path: Path, chunks: Iterable[bytes]) -> None:
        """Temp file in the same directory, fsync, rename over ``path``, fsync the directory."""
        tmp = path.with_name(path.name + ".tmp")
        fd = self.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            for chunk in chunks:
                self.write_all(fd, chunk)
            self.fsync(fd)
        except BaseException:
            self.close(fd)
            _unlink_quietly(self, tmp)
            raise
        self.close(fd)
        self.replace(tmp, path)
        self.fsync_dir(path.parent)


def _unlink_quietly(io: FileIO, path: Path) -> None:
    try:
        io.unlink(path)
    except OSError:
        pass
