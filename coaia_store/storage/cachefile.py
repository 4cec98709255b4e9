"""Derived files in ``.coaia/.cache/``: each is rebuilt from the JSONL files when missing or wrong.

Deleting ``.coaia/.cache/`` at any time loses nothing. A cache file holds ``MAGIC``, then the
length and CRC-32 of a marshalled key and the key (small: read and checked first, so a cache
of other data costs almost nothing), then the length and CRC-32 of the marshalled payload and
the payload. Neither is unmarshalled unless its checksum matches. ``marshal`` builds plain objects only (no code runs on
load, unlike pickle) and is the fastest loader of them in the standard library. Files are
written to a unique temp file renamed into place, without fsync: a cache lost in a power cut
is just rebuilt.
"""

from __future__ import annotations

import logging
import marshal
import os
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from .fileio import FileIO
from .gcpause import gc_paused

log = logging.getLogger(__name__)

CACHE_DIR = ".cache"
MAGIC = b"coaia-st"
_HEAD = struct.Struct("<QI")  # length, crc32: before the key, and before the payload
_STALE_TEMP_SECONDS = 3600
_PYTHON = sys.version_info[:2]  # marshal's format may change between Python versions


class CacheFile:
    """One file in ``.coaia/.cache/``."""

    def __init__(self, store_dir: Path, name: str, io: FileIO) -> None:
        self.path = store_dir / CACHE_DIR / name
        self._io = io

    def load(self, accept: Callable[[tuple[Any, ...]], bool]) -> tuple[tuple[Any, ...], Any] | None:
        """``(key, payload)`` if the file exists, ``accept(key)`` and the payload's checksum matches.

        A damaged or unreadable file is logged at INFO and reads as ``None``, like a missing one.
        """
        try:
            return self._load(accept)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError, TypeError, struct.error) as exc:
            log.info("%s ignored (%s); rebuilding it from the data files", self.path.name, exc)
            return None

    def save(self, key: tuple[Any, ...], payload: object) -> None:
        """Replace the file; a failure is logged at INFO: it costs the next start some speed, nothing else."""
        try:
            self._save(key, payload)
        except (OSError, ValueError) as exc:
            log.info("could not save %s (%s); the next start rebuilds it instead", self.path.name, exc)

    def _load(self, accept: Callable[[tuple[Any, ...]], bool]) -> tuple[tuple[Any, ...], Any] | None:
        with open(self.path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise ValueError("not a coaia-store cache file")
            python, key = marshal.loads(_checked_block(f))
            if tuple(python) != _PYTHON or not isinstance(key, tuple) or not accept(key):
                return None
            payload = _checked_block(f)
        with gc_paused():
            return key, marshal.loads(payload)

    def _save(self, key: tuple[Any, ...], payload: Any) -> None:
        head = marshal.dumps((_PYTHON, key))
        data = marshal.dumps(payload)
        self._io.ensure_dir(self.path.parent)
        self._remove_stale_temp_files()
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(MAGIC)
                for block in (head, data):
                    f.write(_HEAD.pack(len(block), zlib.crc32(block)))
                    f.write(block)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _remove_stale_temp_files(self) -> None:
        """Temp files of a process killed while saving; a live writer's is young and left alone."""
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for tmp in self.path.parent.glob(f"{self.path.name}.*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except FileNotFoundError:
                pass


def _checked_block(f: BinaryIO) -> bytes:
    """The next length-and-CRC-prefixed block of ``f``; ``ValueError`` if it is cut or damaged."""
    length, crc = _HEAD.unpack(f.read(_HEAD.size))
    if length > os.fstat(f.fileno()).st_size - f.tell():
        raise ValueError("it is cut short")
    block = f.read(length)
    if zlib.crc32(block) != crc:
        raise ValueError("its checksum does not match")
    return block
