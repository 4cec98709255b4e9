"""A cache of a journal's replayed state, so a new process need not replay a large file.

A cache holds the state the sink had after replaying the file's first ``covered`` bytes,
and it is trusted only for those exact bytes: its key is ``covered``, the header line and
the CRC-32 of the file's bytes ``[0, covered)``, which a new process recomputes (about 10 ms
for 17 MB) before using it. Any difference (a compaction, a restore, an edit by another
tool, a cache of other data) means the cache is ignored and the file is replayed. The lines
after ``covered`` are replayed as usual. Loading it is about 4x faster than replaying the
JSONL lines. See :mod:`.cachefile` for the file itself.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cachefile import CacheFile
from .fileio import FileIO

_LAYOUT = 1  # of the key below; the sink's own state format is part of the key too
_CHUNK = 4 << 20


@dataclass(frozen=True)
class CachedState:
    """A journal's position after replaying the first ``covered`` bytes, and the sink's state then."""

    covered: int
    lines: int
    applied: int
    version: int
    header: bytes
    sink_state: object


class StateCache:
    """The state cache of one data file: ``.coaia/.cache/<file name>.state``."""

    def __init__(self, data_file: Path, io: FileIO, state_format: str) -> None:
        self._file = CacheFile(data_file.parent, data_file.name + ".state", io)
        self._io = io
        self._format = state_format

    def load(self, fd: int, size: int) -> CachedState | None:
        """The cached state if it was made from the same first bytes as the file open on ``fd``."""

        def same_bytes(key: tuple[Any, ...]) -> bool:
            layout, state_format, covered, prefix_crc, *_ = key
            return (
                (layout, state_format) == (_LAYOUT, self._format)
                and covered <= size
                and self._io.pread(fd, len(key[-1]), 0) == key[-1]  # the header line: cheap, checked first
                and prefix_crc_of(self._io, fd, covered) == prefix_crc
            )

        found = self._file.load(same_bytes)
        if found is None:
            return None
        (_, _, covered, _, lines, applied, version, header), sink_state = found
        return CachedState(covered, lines, applied, version, header, sink_state)

    def save(self, fd: int, state: CachedState) -> None:
        """Save ``state``, made from the first ``state.covered`` bytes of ``fd``; failures only cost speed."""
        try:
            prefix_crc = prefix_crc_of(self._io, fd, state.covered)
        except (OSError, EOFError):
            return  # the next start replays the file
        key = (
            _LAYOUT,
            self._format,
            state.covered,
            prefix_crc,
            state.lines,
            state.applied,
            state.version,
            state.header,
        )
        self._file.save(key, state.sink_state)


def prefix_crc_of(io: FileIO, fd: int, size: int) -> int:
    """CRC-32 of the first ``size`` bytes of ``fd``."""
    crc, pos = 0, 0
    while pos < size:
        data = io.pread(fd, min(_CHUNK, size - pos), pos)
        if not data:
            raise EOFError(f"the file ended at {pos} of {size} bytes")
        crc, pos = zlib.crc32(data, crc), pos + len(data)
    return crc
