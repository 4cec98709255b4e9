"""Writing a journal file: one record appended as one line, all-or-nothing and durable.

A write is acknowledged only after its line is on disk (``fsync="always"``). A failed write
is cut back; after a failed fsync the journal stops writing (the kernel may have dropped the
data). Before an append, a torn tail a crash left is quarantined, then cut off.
"""

from __future__ import annotations

import logging
import os

from ..errors import ReadOnlyError, RecordTooLargeError, StorageError
from .clock import Clock, iso_timestamp
from .envelope import unwrap
from .fileio import FileIO
from .filekind import open_regular
from .journal_reader import JournalReader, signature
from .lines import Record, decode_line, encode_line, header_record
from .recovery import Recovery
from .sink import RecordSink

log = logging.getLogger(__name__)


class JournalWriter:
    """Appends to the file a :class:`JournalReader` has read up to its end (under the write lock)."""

    def __init__(
        self,
        file: JournalReader,
        *,
        sink: RecordSink,
        io: FileIO,
        recovery: Recovery,
        wall: Clock,
        max_record_bytes: int,
        fsync: bool,
    ) -> None:
        self.path = file.path
        self._file = file
        self._sink = sink
        self._io = io
        self._recovery = recovery
        self._wall = wall  # dates the header of a new file
        self._max_record_bytes = max_record_bytes
        self._fsync = fsync

    def append(self, record: Record) -> None:
        """Append ``record`` as one line and apply it to the sink, or raise having saved nothing."""
        file = self._file
        line = encode_line(record)
        if len(line) > self._max_record_bytes:
            raise RecordTooLargeError(
                f"this call would write {len(line)} bytes in one record, over the limit of "
                f"{self._max_record_bytes} bytes (maxRecordBytes in .coaia/config.json): "
                "split it into smaller calls or shorten the text"
            )
        if file.fd is None or file.scanned_size == 0:
            self._create_file()
        wfd = self._write_fd()
        start = file.scanned_size
        if file.open_line:
            line = b"\n" + line  # the file ends with a whole record but no newline (other tools, editors)
        self._write_durably(wfd, line, start)
        # Apply what the file now says, so live state and a later replay can never differ.
        decoded, _ = decode_line(line.strip(b"\n"), strict=True)  # without the newline(s) around it
        assert decoded is not None
        members = unwrap(decoded)
        self._sink.apply_all(members, start + len(line) - len(line.lstrip(b"\n")))
        file.appended(line, start, len(members), self._signature_of(wfd))

    def _write_durably(self, wfd: int, line: bytes, start: int) -> None:
        step = "write"
        try:
            self._io.write_all(wfd, line)
            step = "fsync"
            if self._fsync:
                self._io.fsync(wfd)
        except OSError as exc:
            undone = self._undo_append(wfd, start, failed_fsync=step == "fsync")
            raise StorageError(
                f"could not save to {self.path.name}: {exc.strerror or exc} during {step}; "
                + ("nothing was saved" if undone else "it could not be undone, so it may have been saved")
                + (f". The context is now read-only: {self._file.read_only}" if self._file.read_only else "")
            ) from exc

    def _undo_append(self, wfd: int, start: int, *, failed_fsync: bool) -> bool:
        """Cut the file back to ``start``; return whether that worked (if not, the outcome is unknown)."""
        undone = True
        try:
            self._io.truncate(wfd, start)
            self._io.fsync(wfd)
        except OSError as exc:
            log.error("%s: could not cut back a failed append at %d: %s", self.path.name, start, exc)
            failed_fsync, undone = True, False
        if failed_fsync:
            # After a failed fsync the kernel may have dropped dirty pages; a retry could
            # "succeed" without the data (PostgreSQL fsyncgate), so stop writing here.
            self._file.read_only = (
                f"a write to {self.path.name} failed to reach the disk; restart coaia-store after "
                "checking the disk (space, errors) to write again"
            )
        return undone

    def _write_fd(self) -> int:
        file = self._file
        if file.wfd is None:
            try:
                file.wfd = open_regular(self._io, self.path, os.O_WRONLY | os.O_APPEND)
            except PermissionError as exc:
                raise ReadOnlyError(f"{self.path.name} is not writable: {exc.strerror}; fix its permissions") from exc
        return file.wfd

    def _create_file(self) -> None:
        """Write a new file holding only the header, atomically and durably, and open it."""
        self._io.ensure_dir(self.path.parent)
        header = header_record(iso_timestamp(self._wall()))
        self._io.write_file_atomic(self.path, [encode_line(header)])
        self._file.catch_up()

    def repair_tail(self) -> None:
        """Quarantine the torn tail the file ends with, then cut it off."""
        file = self._file
        tail = file.tail
        assert tail is not None and file.fd is not None
        self._recovery.quarantine(self.path, file.fd, tail.offset, tail.length, tail.problem, "truncated (torn tail)")
        wfd = self._write_fd()
        self._io.truncate(wfd, tail.offset)
        self._io.fsync(wfd)
        file.tail_removed(self._signature_of(wfd))
        log.warning("%s: repaired a torn tail of %d bytes (kept in .recovery/)", self.path.name, tail.length)

    def _signature_of(self, fd: int) -> tuple[int, int, int] | None:
        """The signature after this journal's own change; ``None`` (read again) if ``fstat`` fails,
        which must not fail a write that is already on disk."""
        try:
            return signature(self._io.fstat(fd))
        except OSError as exc:
            log.warning("%s: fstat after a write failed (%s); the file will be read again", self.path.name, exc)
            return None
