"""Compaction: a journal file rewritten to the records it holds now, the old file kept in ``history/``.

The new file is written beside the old one, fsynced and renamed over it (then the directory is
fsynced), so a crash leaves one or the other. Before that (and before a restore replaces the
file) the old file is copied, gzipped, to ``history/<file stem>/<time>-<inode>.jsonl.gz``.
"""

from __future__ import annotations

import errno
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from .clock import Clock, iso_timestamp
from .fileio import FileIO
from .lines import Record, encode_line, header_record

T = TypeVar("T")
HISTORY_DIR = "history"
_CHUNK = 4 << 20


def save_history(io: FileIO, path: Path, fd: int, size: int, inode: int, wall: Clock) -> str:
    """Copy the first ``size`` bytes of ``path``, open on ``fd``, compressed, into ``history/<file stem>/``;
    return the copy's path relative to the store."""
    store_dir = path.parent
    folder = store_dir / HISTORY_DIR / path.stem
    io.ensure_dir(folder)
    stamp = wall().strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{stamp}-{inode}.jsonl.gz"
    io.write_file_atomic(target, gzip_chunks(io, fd, size))
    return str(target.relative_to(store_dir))


def compacted_header(history: str, wall: Clock) -> bytes:
    """The header line of a compacted file, naming the history copy of the file it replaced."""
    header = header_record(iso_timestamp(wall()))
    header["history"] = history
    return encode_line(header)


def write_compacted(io: FileIO, path: Path, header: bytes, records: list[Record]) -> None:
    """Replace ``path`` with ``header`` and ``records``, atomically and durably."""
    io.write_file_atomic(path, _chain_one(header, (encode_line(r) for r in records)))


def gzip_chunks(io: FileIO, fd: int, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of the file open on ``fd``, gzipped, in chunks."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip container
    pos = 0
    while pos < size:
        data = io.pread(fd, min(_CHUNK, size - pos), pos)
        if not data:
            raise OSError(errno.EIO, "file shrank while saving history")
        pos += len(data)
        yield compressor.compress(data)
    yield compressor.flush()


def _chain_one(first: T, rest: Iterable[T]) -> Iterator[T]:
    yield first
    yield from rest
