"""A consistent prefix of a journal file: complete lines, opened under the write lock, that a backup copies."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .fileio import FileIO
from .filekind import open_regular
from .lines import decode_line, is_header


@dataclass(frozen=True)
class Prefix:
    """The first ``size`` bytes of the file open on ``fd``: complete lines, read under the write lock.

    The file only grows until it is replaced, and a replacement is a new inode, so ``fd`` keeps
    reading exactly these bytes after the lock is released. ``stamp`` is ``(inode, file size,
    mtime_ns)`` when it was opened: equal stamps mean an unchanged file.
    """

    fd: int
    size: int
    strict: bool
    stamp: tuple[int, int, int]


@contextmanager
def open_prefix(io: FileIO, path: Path) -> Iterator[Prefix]:
    """Under the write lock: a new descriptor and the end of the file's last complete line.

    A file with our header ends every line with a newline, so bytes after the last one are
    a torn tail and are left out; a file of other tools may end without one.
    """
    fd = open_regular(io, path, os.O_RDONLY)
    try:
        st = io.fstat(fd)
        strict = _starts_with_header(io, fd, st.st_size)
        size = _last_line_end(io, fd, st.st_size) if strict else st.st_size
        yield Prefix(fd, size, strict, (st.st_ino, st.st_size, st.st_mtime_ns))
    finally:
        io.close(fd)


def _starts_with_header(io: FileIO, fd: int, size: int) -> bool:
    first = io.pread(fd, min(size, 64 << 10), 0).split(b"\n", 1)
    if len(first) < 2:
        return False
    record, _ = decode_line(first[0], strict=True)
    return record is not None and is_header(record)


def _last_line_end(io: FileIO, fd: int, size: int) -> int:
    """Offset just past the last newline before ``size`` (0 if there is none)."""
    end = size
    while end > 0:
        start = max(0, end - (64 << 10))
        nl = io.pread(fd, end - start, start).rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0
