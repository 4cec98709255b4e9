"""Backup files on disk: what one is (:class:`BackupInfo`, as the manifest records it), ``.backup/<kind>/<file stem>-<label>.jsonl.gz``, opened without following links or
blocking, read back, decompressed and checked line by line (checksums, the header, record counts)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from ..errors import CoaiaError
from ..storage.envelope import BATCH_TYPE
from ..storage.fileio import FileIO
from ..storage.lines import Record, decode_legacy_line, decode_line, is_header

BACKUP_DIR = ".backup"
SUFFIX = ".jsonl.gz"
_BACKUP_ID = re.compile(r"[a-z][a-z0-9-]{0,40}/[A-Za-z0-9_][A-Za-z0-9_.-]*")
_CHUNK = 1 << 20


class BackupError(CoaiaError):
    """A backup that does not exist or does not verify, or a backup that could not be made."""


class BackupInfo(BaseModel):
    """One backup file, as recorded in ``MANIFEST.json``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str  # "<kind>/<file stem>-<label>", the file being .backup/<id>.jsonl.gz
    group: str  # "<kind>/<label>": backups taken together (one per context)
    context: str
    kind: str  # daily, weekly, manual or pre-<operation>
    file: str  # path relative to .coaia/
    sha256: str  # of the compressed file
    size: int  # of the compressed file
    records: int  # data records (batch members counted one by one; header excluded)
    lines: int
    sourceFile: str
    sourceSize: int  # bytes copied: the complete lines of the source
    sourceStamp: tuple[int, int, int]  # inode, size, mtime_ns of the source when copied
    strict: bool  # the source had the coaia-store header, so every line must carry a checksum
    time: str

    @model_validator(mode="after")
    def _inside_backup_dir(self) -> BackupInfo:
        """An entry names only its own file in ``.backup/<kind>/``: never an absolute path, ``..`` or elsewhere."""
        if not _BACKUP_ID.fullmatch(self.id) or ".." in self.id or self.file != f"{BACKUP_DIR}/{self.id}{SUFFIX}":
            raise ValueError(f"backup {self.id!r} points outside {BACKUP_DIR}/ (file {self.file!r}): refused")
        return self


class BackupFolder:
    """A store's ``.backup/`` folder (in its local directory): where each backup's file is, and opening it safely."""

    def __init__(self, io: FileIO, local_dir: Path) -> None:
        self.io = io
        self.local_dir = local_dir
        self.root = local_dir / BACKUP_DIR

    def path(self, backup_id: str) -> Path:
        return self.root / (backup_id + SUFFIX)

    @contextmanager
    def opened(self, path: Path) -> Iterator[int]:
        fd = self.open_regular(path)
        try:
            yield fd
        finally:
            self.io.close(fd)

    def open_regular(self, path: Path) -> int:
        """Open a file of ``.backup/`` to read; BackupError for a symbolic link (the file or its folders), which
        is never followed, or for anything but a regular file (a FIFO would block)."""
        name = path.relative_to(self.local_dir)
        if any(folder.is_symlink() for folder in (self.root, path.parent)):
            raise BackupError(f"a folder of {name} is a symbolic link: refused, not opened")
        io = self.io
        try:
            fd = io.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BackupError(f"{name} is a symbolic link: refused, not opened") from None
            raise
        if not stat.S_ISREG(io.fstat(fd).st_mode):
            io.close(fd)
            raise BackupError(f"{name} is not a regular file: refused")
        return fd


class Scan:
    """What one pass over a backup file finds: its digest and size, and every line checked."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.size = 0  # compressed
        self.content_size = 0
        self.lines = 0
        self.records = 0
        self.problems: list[str] = []
        self._rest = b""
        self._digest = hashlib.sha256()

    def count(self, compressed: Iterable[bytes]) -> Iterator[bytes]:
        """Pass the compressed bytes through, hashing and counting them."""
        for chunk in hashed(compressed, self._digest):
            self.size += len(chunk)
            yield chunk

    def feed(self, data: bytes) -> None:
        self.content_size += len(data)
        *complete, self._rest = (self._rest + data).split(b"\n")
        for line in complete:
            self._check(line)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def finish(self) -> None:
        if self._rest and self.strict:
            self.problems.append(f"line {self.lines + 1}: unterminated last line")
        elif self._rest:
            self._check(self._rest)

    def mismatches(
        self, *, sha256: str, source_size: int, size: int | None = None, records: int | None = None
    ) -> list[str]:
        expected = {"sha256": sha256, "size": size, "content size": source_size, "record count": records}
        found = {
            "sha256": self.sha256,
            "size": self.size,
            "content size": self.content_size,
            "record count": self.records,
        }
        return [
            f"{what} is {found[what]}, expected {want}"
            for what, want in expected.items()
            if want is not None and found[what] != want
        ]

    def _check(self, line: bytes) -> None:
        self.lines += 1
        record, problem = decode_line(line, strict=True) if self.strict else decode_legacy_line(line)
        if problem is not None:
            self.problems.append(f"line {self.lines}: {problem}")
        elif record is not None and is_header(record):
            pass  # after line 1: the header of a file git merged in (one context started on two clones)
        elif record is not None:
            if self.strict and self.lines == 1:
                self.problems.append("line 1: no coaia-store header")
            self.records += _record_count(record)


def scan_file(compressed: Iterable[bytes], strict: bool) -> Scan:
    scan = Scan(strict)
    try:
        for data in gunzip(scan.count(compressed)):
            scan.feed(data)
        scan.finish()
    except BackupError as exc:
        scan.problems.append(str(exc))
    return scan


def header_of(io: FileIO, path: Path) -> Record | None:
    """The coaia-store header of the file at ``path``, if it starts with one."""
    try:
        fd = io.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        record, _ = decode_line(io.pread(fd, 64 << 10, 0).split(b"\n", 1)[0], strict=True)
    finally:
        io.close(fd)
    return record if record is not None and is_header(record) else None


def first_line(chunks: Iterable[bytes]) -> bytes:
    """The first line (without its newline) of the content ``chunks`` yield, reading no further than it."""
    head = b""
    for chunk in chunks:
        head += chunk
        if b"\n" in head:
            break
    return head.split(b"\n", 1)[0]


def moment(stamp: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def starts_with_header(content: bytes) -> bool:
    record, _ = decode_line(content.split(b"\n", 1)[0], strict=True)
    return record is not None and is_header(record)


def _record_count(record: Record) -> int:
    members = record.get("records")
    return len(members) if record.get("type") == BATCH_TYPE and isinstance(members, list) else 1


def hashed(chunks: Iterable[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def read_all(io: FileIO, fd: int) -> Iterator[bytes]:
    pos = 0
    while chunk := io.pread(fd, _CHUNK, pos):
        pos += len(chunk)
        yield chunk


def gunzip(compressed: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress one gzip stream; BackupError if it is damaged, cut short or followed by other bytes."""
    inflater = zlib.decompressobj(31)
    try:
        for chunk in compressed:
            if inflater.eof:
                raise BackupError("bytes after the end of the gzip stream")
            yield inflater.decompress(chunk)
        yield inflater.flush()
    except zlib.error as exc:
        raise BackupError(f"damaged gzip data ({exc})") from None
    if not inflater.eof:
        raise BackupError("the gzip stream is cut short")
    if inflater.unused_data:
        raise BackupError("bytes after the end of the gzip stream")
