"""One append-only JSONL file: lock-free catch-up, locked durable appends, tail repair, compaction.

The journal knows lines and records, not entities: it replays records into a
:class:`RecordSink` (the graph layer) and asks that sink for a snapshot when it compacts.

Invariants:
* A write is acknowledged only after its line is on disk (``fsync="always"``).
* One call is one line, so it is all-or-nothing under ``kill -9``.
* Writers serialise on an in-process lock plus a ``FileLock``; under them a writer first
  catches up with what other processes appended, so it never decides on stale state.
* The file is replaced only by compaction (temp, fsync, rename, fsync dir); readers hold
  the old descriptor open, so an inode is never reused under them, and a changed inode
  means "reload from the start".
* Damaged bytes are never thrown away: a torn tail is quarantined before it is truncated,
  a damaged middle line is quarantined and skipped, and the journal reports itself degraded.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from ..errors import ReadOnlyError, RecordTooLargeError, StorageError, StoreBusyError, os_errors_reported
from .clock import Clock, iso_timestamp
from .fileio import FileIO
from .gcpause import gc_paused
from .lines import FORMAT_VERSION, Record, decode_legacy_line, decode_line, encode_line, header_record, is_header
from .locking import LockTimeout, WriteLock
from .recovery import Recovery
from .statecache import CachedState, StateCache

log = logging.getLogger(__name__)

R = TypeVar("R")
BATCH_TYPE = "batch"
ENVELOPE_KEYS = frozenset({"_op", "_ts"})  # which call wrote a record, and when
LOCK_DIR = ".locks"
HISTORY_DIR = "history"
_CHUNK = 4 << 20


class InvalidRecord(ValueError):
    """Raised by a sink for a line that parses but is not a record it can apply."""


class RecordSink(Protocol):
    state_format: str  # names the shape of export_state(): a state cache of another shape is ignored

    def reset(self) -> None: ...
    def prepare(self, records: list[Record]) -> list[Record]:
        """The records to append for what a write's build returned (the sink may add bookkeeping)."""
    def attach(self, loader: Callable[[int], list[Record]]) -> None:
        """How the sink reads back the records of the line at an offset (for what it keeps only as a reference)."""
    def apply_all(self, records: list[Record], at: int | None = None) -> None:
        """Apply every record of the line at offset ``at`` or, raising :class:`InvalidRecord`, none of them."""
    def live_records(self) -> int: ...
    def snapshot(self) -> Iterable[Record]: ...
    def export_state(self) -> object:
        """The whole state as plain built-in objects (dict, list, tuple, set, str, numbers)."""
    def import_state(self, state: object) -> None:
        """Take over a state ``export_state`` made; raise ``ValueError`` if it is not one."""


@dataclass(frozen=True)
class JournalSettings:
    fsync: Literal["always", "never"] = "always"
    lock_timeout: float = 10.0
    max_record_bytes: int = 1 << 20
    compaction_ratio: float = 0.5
    compaction_min_bytes: int = 1 << 20
    state_cache_min_bytes: int = 1 << 20  # save the replayed state once this much more was replayed
    auto_compaction: bool = True  # False in a store shared through git: see docs/git.md

    @property
    def read_line_limit(self) -> int:
        """Longer lines are treated as damage and skipped without being held in memory."""
        return max(16 << 20, 4 * self.max_record_bytes)


@dataclass(frozen=True)
class Damage:
    offset: int
    length: int
    line: int
    problem: str


@dataclass
class JournalInfo:
    path: Path
    exists: bool
    size: int
    lines: int
    checksummed: bool
    format_version: int | None
    records_applied: int
    damage: list[Damage] = field(default_factory=list)
    tail: Damage | None = None
    read_only: str | None = None
    restored_bytes: int = 0  # of the file, taken from the state cache instead of replayed

    @property
    def degraded(self) -> bool:
        return bool(self.damage) or self.read_only is not None


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


@dataclass(frozen=True)
class JournalHooks:
    after_write: Callable[[], None] | None = None  # after a write that appended, with no lock held
    before_compaction: Callable[[Prefix], None] | None = None  # under the write lock, before the file is rewritten


class Journal:
    def __init__(
        self,
        path: Path,
        *,
        sink: RecordSink,
        io: FileIO,
        settings: JournalSettings,
        recovery: Recovery,
        clock: Clock,
        hooks: JournalHooks = JournalHooks(),
    ) -> None:
        self.path = path
        self._hooks = hooks
        self._sink = sink
        self._io = io
        self._settings = settings
        self._recovery = recovery
        self._clock = clock
        self._mutex = threading.RLock()
        self._flock: WriteLock | None = None
        self._fd: int | None = None
        self._wfd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._temp_files_checked = False
        self._read_only: str | None = None
        self._cache = StateCache(path, io, sink.state_format)
        self._reset_position()
        sink.attach(self._records_at)

    # ----------------------------------------------------------------- reading

    def read(self, fn: Callable[[], R]) -> R:
        """Catch up with the file (no file lock: one ``stat`` when nothing changed), then ``fn()``."""
        with self._reading(), self._mutex:
            self._catch_up()
            return fn()

    def _saving(self) -> contextlib.AbstractContextManager[None]:
        return os_errors_reported(f"could not update {self.path.name}", "nothing was saved")

    def _reading(self) -> contextlib.AbstractContextManager[None]:
        return os_errors_reported(f"could not read {self.path.name}", "retry; if it persists check the disk")

    def info(self) -> JournalInfo:
        with self._reading(), self._mutex:
            self._catch_up()
            return JournalInfo(
                path=self.path,
                exists=self._fd is not None,
                size=self._scanned_size,
                lines=self._lines,
                checksummed=self._strict,
                format_version=self._version,
                records_applied=self._applied,
                damage=list(self._damage),
                tail=self._tail,
                read_only=self._read_only,
                restored_bytes=self._restored,
            )

    # ----------------------------------------------------------------- writing

    def write(self, build: Callable[[], tuple[list[Record], R]]) -> R:
        """Run ``build`` on fresh state under the write lock and append what it returns.

        ``build`` validates against the state the sink holds and returns the records to
        write (possibly none, for an idempotent repeat) and the caller's result. If it
        raises, nothing is written. The records become one line (a batch when several).
        """
        with self._saving(), self._locked():
            records, result = build()
            if records:
                records = self._sink.prepare(records)
                self._append(self._envelope(records))
                self._maybe_compact()
        if records and self._hooks.after_write is not None:
            self._hooks.after_write()
        return result

    def compact(self, *, drop_damaged: bool = False) -> bool:
        """Rewrite the file to the current state now; the old file goes to ``history/``.

        Returns ``False`` (and changes nothing) when the file has damaged lines, unless this
        is the explicit repair (``drop_damaged``): their bytes stay in quarantine and history.
        """
        with self._saving(), self._locked():
            if (self._damage and not drop_damaged) or self._fd is None:
                return False
            self._compact("repair: damaged lines dropped" if self._damage else "requested")
            return True

    @contextmanager
    def prefix(self) -> Iterator[Prefix | None]:
        """A consistent prefix of the file (``None`` when there is none), closed on exit.

        The write lock is held only to open the file and read its size: no catch-up, no repair.
        """
        with ExitStack() as stack:
            with self._saving(), _WriteLock(self, prepare=False):
                exists = self._file_exists()
                prefix = stack.enter_context(self._open_prefix()) if exists else None
            yield prefix

    def replace_with(self, chunks: Iterable[bytes], reason: str) -> str | None:
        """Replace the whole file with ``chunks`` (a restore), atomically, under the write lock.

        The old file is first copied to ``history/`` (its path is returned). Every reader, in
        any process, sees the new inode and reloads.
        """
        with self._saving(), self._locked():
            history = self._save_history() if self._fd is not None else None
            self._io.ensure_dir(self.path.parent)
            self._io.write_file_atomic(self.path, chunks)
            self._catch_up()
            self._recovery.try_log(file=self.path.name, found=reason, action="replaced", history=history)
            return history

    def _file_exists(self) -> bool:
        try:
            self._io.stat(self.path)
        except FileNotFoundError:
            return False
        return True

    @contextmanager
    def _open_prefix(self) -> Iterator[Prefix]:
        """Under the write lock: a new descriptor and the end of the file's last complete line.

        A file with our header ends every line with a newline, so bytes after the last one are
        a torn tail and are left out; a file of other tools may end without one.
        """
        fd = self._io.open(self.path, os.O_RDONLY)
        try:
            st = self._io.fstat(fd)
            strict = _starts_with_header(self._io, fd, st.st_size)
            size = _last_line_end(self._io, fd, st.st_size) if strict else st.st_size
            yield Prefix(fd, size, strict, (st.st_ino, st.st_size, st.st_mtime_ns))
        finally:
            self._io.close(fd)

    def _before_compaction(self) -> None:
        if self._hooks.before_compaction is not None:
            with self._open_prefix() as prefix:
                self._hooks.before_compaction(prefix)

    def close(self) -> None:
        with self._mutex:
            self._close_fds()
            if self._flock is not None:
                self._flock.close()
                self._flock = None

    # ----------------------------------------------------------------- internals: position

    def _reset_position(self) -> None:
        self._valid_end = 0  # offset just past the last consumed line
        self._scanned_size = 0  # file size at the last scan
        self._lines = 0  # complete lines consumed
        self._applied = 0  # records applied since the last reset
        self._strict = False
        self._undecided = False  # first line unreadable: strict or legacy is not known yet
        self._version: int | None = None
        self._header: bytes | None = None  # the header line as read, to notice a rewrite in place
        self._damage: list[Damage] = []
        self._tail: Damage | None = None
        self._restored = 0  # bytes taken from the state cache
        self._cache_end = 0  # bytes the newest state cache known to this journal covers

    def _close_fds(self) -> None:
        fds = (self._fd, self._wfd)
        self._fd = self._wfd = None  # forgotten first: a descriptor is closed even when close() fails,
        self._ident = None  # and closing its number again could close another file's
        for fd in fds:
            if fd is not None:
                try:
                    self._io.close(fd)
                except OSError as exc:  # nothing to act on: writes were fsynced before
                    log.warning("%s: closing a descriptor failed: %s", self.path.name, exc)

    def _catch_up(self) -> None:
        try:
            st = self._io.stat(self.path)
        except FileNotFoundError:
            if self._fd is not None or self._applied:
                self._close_fds()
                self._reset_position()
                self._sink.reset()
            return
        if self._fd is None or (st.st_dev, st.st_ino) != self._ident or st.st_size < self._valid_end:
            reopen = True  # replaced, or cut into lines already read: start over
        elif st.st_size == self._scanned_size and self._tail is None:
            # With a tail pending, an equal size proves nothing: another writer may have
            # cut that tail and appended lines of the same total length; rescan it.
            return
        else:
            # Other tools rewrite the whole file in place (fs.writeFile: same inode), and only
            # coaia-store appends under our header: so a changed legacy file, or a header gone,
            # means the lines already read may be gone too: start over.
            reopen = (not self._strict and st.st_size != self._scanned_size) or not self._header_intact()
        with gc_paused():
            if reopen:
                self._reopen()
                self._restore_cached_state()
            self._scan()
            self._maybe_save_cache()

    def _header_intact(self) -> bool:
        assert self._fd is not None
        return self._header is None or self._io.pread(self._fd, len(self._header), 0) == self._header

    def _reopen(self) -> None:
        self._close_fds()
        try:
            fd = self._io.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(f"cannot read {self.path.name}: {exc.strerror}; check its permissions") from exc
        st = self._io.fstat(fd)
        self._fd, self._ident = fd, (st.st_dev, st.st_ino)
        self._reset_position()
        self._sink.reset()

    def _restore_cached_state(self) -> None:
        """Take the state of the file's first bytes from the state cache, if it holds them."""
        assert self._fd is not None
        cached = self._cache.load(self._fd, self._io.fstat(self._fd).st_size)
        if cached is None:
            return
        try:
            self._sink.import_state(cached.sink_state)
        except (TypeError, ValueError) as exc:
            log.info("%s: state cache ignored (%s); replaying the file", self.path.name, exc)
            self._sink.reset()
            return
        self._valid_end = self._scanned_size = self._restored = self._cache_end = cached.covered
        self._lines, self._applied = cached.lines, cached.applied
        self._strict, self._version, self._header = True, cached.version, cached.header

    def _maybe_save_cache(self) -> None:
        """After replaying enough new lines, save the state so the next process can skip them.

        Only a clean prefix is cached (our header, no damaged line): loading a damaged file
        must keep quarantining and reporting its damage."""
        replayed = self._valid_end - self._cache_end
        if replayed <= 0 or replayed < self._settings.state_cache_min_bytes:
            return
        if not self._strict or self._undecided or self._damage or self._read_only or self._header is None:
            return
        assert self._fd is not None and self._version is not None
        state = CachedState(self._valid_end, self._lines, self._applied, self._version, self._header,
                            self._sink.export_state())
        self._cache.save(self._fd, state)
        self._cache_end = self._valid_end

    def _scan(self) -> None:
        """Consume the complete lines between ``_valid_end`` and the end of the file."""
        assert self._fd is not None
        size = self._io.fstat(self._fd).st_size
        pending: list[Damage] = []  # bad lines not yet followed by a good one
        line_no, line_end = self._lines, self._valid_end
        for start, end, data in _iter_lines(self._io, self._fd, self._valid_end, size, self._settings.read_line_limit):
            line_no, line_end = line_no + 1, end
            record, problem = self._decode(start, data)
            if record is None and problem is None:  # blank line in a legacy file
                if not pending:
                    self._valid_end, self._lines = end, line_no
                continue
            if record is not None:
                problem = self._apply_line(record, start)
            if problem is not None:
                pending.append(Damage(start, end - start, line_no, problem))
                continue
            for damage in pending:
                self._register_damage(damage)
            pending.clear()
            self._valid_end, self._lines = end, line_no
        if size > line_end and not self._strict and self._accept_unterminated_legacy_line(line_end, size):
            for damage in pending:
                self._register_damage(damage)
            pending.clear()
            self._valid_end, self._lines = size, line_no + 1
        self._scanned_size = size
        self._tail = None
        if size > self._valid_end:
            what = pending[0].problem if pending else "unterminated last line"
            self._tail = Damage(self._valid_end, size - self._valid_end, self._lines + 1, what)

    def _accept_unterminated_legacy_line(self, start: int, size: int) -> bool:
        """Other tools end their files without a newline; a complete record there is no torn tail."""
        assert self._fd is not None
        length = size - start
        if length > self._settings.read_line_limit:
            return False
        record, problem = self._decode(start, self._io.pread(self._fd, length, start))
        return problem is None and (record is None or self._apply_line(record, start) is None)

    def _decode(self, start: int, data: bytes | None) -> tuple[Record | None, str | None]:
        if data is None:
            return None, f"line longer than {self._settings.read_line_limit} bytes"
        if start == 0:
            record, problem = decode_line(data, strict=True)
            if record is not None and is_header(record):
                self._strict, self._version, self._header = True, _header_version(record), data + b"\n"
                if self._version > FORMAT_VERSION:
                    self._read_only = (
                        f"{self.path.name} was written by a newer coaia-store (format version {self._version}; "
                        f"this build reads up to {FORMAT_VERSION}); it is open read-only: upgrade coaia-store to write it"
                    )
                return None, None
            # A damaged first line may be a damaged header: stay strict (accept no unchecked line)
            # until a readable line decides; a readable first line without a header means a legacy file.
            legacy_record, legacy_problem = decode_legacy_line(data)
            if legacy_record is not None and is_header(legacy_record):  # our header, its checksum damaged
                legacy_record, legacy_problem = None, problem
            self._strict = self._undecided = legacy_problem is not None
            return legacy_record, legacy_problem
        if self._undecided:
            return self._decide_format(data)
        return decode_line(data, strict=True) if self._strict else decode_legacy_line(data)

    def _decide_format(self, data: bytes) -> tuple[Record | None, str | None]:
        """After an unreadable first line, the first readable line decides: a checksum means a
        damaged header (strict file), none means a legacy file whose first line is bad."""
        record, problem = decode_legacy_line(data)
        if record is not None:
            self._undecided = False
            self._strict = decode_line(data, strict=True)[0] is not None
        return record, problem

    def _apply_line(self, record: Record, at: int) -> str | None:
        members = _unwrap(record) if record.get("type") == BATCH_TYPE else [record]
        try:
            self._sink.apply_all(members, at)
        except InvalidRecord as exc:
            return str(exc)
        self._applied += len(members)
        return None

    def _records_at(self, at: int) -> list[Record]:
        """The records of the complete line starting at ``at`` of the open file (none if it does not read back)."""
        if self._fd is None:
            return []
        data = b""
        while len(data) <= self._settings.read_line_limit:
            chunk = self._io.pread(self._fd, 64 << 10, at + len(data))
            end = chunk.find(b"\n")
            if end >= 0 or not chunk:
                line = data + chunk[:end]
                record, _ = (decode_line(line, strict=True) if self._strict else decode_legacy_line(line)) if end >= 0 else (None, None)
                return _unwrap(record) if record is not None else []
            data += chunk
        return []

    def _register_damage(self, damage: Damage) -> None:
        self._damage.append(damage)
        log.warning("%s line %d is damaged (%s); skipped and quarantined", self.path.name, damage.line, damage.problem)
        assert self._fd is not None
        try:
            self._recovery.quarantine(
                self.path, self._fd, damage.offset, damage.length, f"line {damage.line}: {damage.problem}", "skipped on load"
            )
        except OSError as exc:  # a read-only directory must not stop reads
            log.warning("could not quarantine %s line %d: %s", self.path.name, damage.line, exc)

    # ----------------------------------------------------------------- internals: writing

    def _locked(self) -> _WriteLock:
        return _WriteLock(self)

    def _prepare_write(self) -> None:
        """Under the locks: catch up, refuse if read-only, clean leftovers, repair the tail."""
        self._catch_up()
        if self._read_only:
            raise ReadOnlyError(self._read_only)
        if not self._temp_files_checked:
            self._remove_stale_temp_files()
        if self._tail is not None:
            self._repair_tail()
        if self._fd is not None and not self._strict and self._lines and not self._damage:
            self._compact("migrating a file without checksums to the coaia-store format")

    def _remove_stale_temp_files(self) -> None:
        """Remove what a killed compaction, history copy or quarantine copy left half-written.

        Each is an unfinished copy of bytes that are still in their source, so nothing is lost.
        """
        history = self.path.parent / HISTORY_DIR / self.path.stem
        leftovers = [
            self.path.with_name(self.path.name + ".tmp"),
            *history.glob("*.tmp"),
            *self._recovery.abandoned_temp_files(self.path),
        ]
        for tmp in leftovers:
            if tmp.exists():
                self._io.unlink(tmp)
                self._recovery.try_log(
                    file=str(tmp.relative_to(self.path.parent)), found="temp file left by an interrupted write", action="removed"
                )
        self._temp_files_checked = True

    def _repair_tail(self) -> None:
        tail = self._tail
        assert tail is not None and self._fd is not None
        self._recovery.quarantine(self.path, self._fd, tail.offset, tail.length, tail.problem, "truncated (torn tail)")
        wfd = self._write_fd()
        self._io.truncate(wfd, tail.offset)
        self._io.fsync(wfd)
        self._scanned_size = tail.offset
        self._tail = None
        log.warning("%s: repaired a torn tail of %d bytes (kept in .recovery/)", self.path.name, tail.length)

    def _envelope(self, records: list[Record]) -> Record:
        stamp = {"_op": os.urandom(8).hex(), "_ts": iso_timestamp(self._clock())}
        records = [{k: v for k, v in r.items() if k not in ENVELOPE_KEYS} for r in records]
        if len(records) == 1:
            return {**records[0], **stamp}
        return {"type": BATCH_TYPE, **stamp, "records": records}

    def _append(self, record: Record) -> None:
        line = encode_line(record)
        if len(line) > self._settings.max_record_bytes:
            raise RecordTooLargeError(
                f"this call would write {len(line)} bytes in one record, over the limit of "
                f"{self._settings.max_record_bytes} bytes (maxRecordBytes in .coaia/config.json): "
                "split it into smaller calls or shorten the text"
            )
        if self._fd is None or self._scanned_size == 0:
            self._create_file()
        wfd = self._write_fd()
        start = self._scanned_size
        if not self._strict and self._fd is not None and self._io.pread(self._fd, 1, start - 1) != b"\n":
            line = b"\n" + line  # a legacy file may end without a newline
        step = "write"
        try:
            self._io.write_all(wfd, line)
            step = "fsync"
            if self._settings.fsync == "always":
                self._io.fsync(wfd)
        except OSError as exc:
            undone = self._undo_append(wfd, start, failed_fsync=step == "fsync")
            raise StorageError(
                f"could not save to {self.path.name}: {exc.strerror or exc} during {step}; "
                + ("nothing was saved" if undone else "it could not be undone, so it may have been saved")
                + (f". The context is now read-only: {self._read_only}" if self._read_only else "")
            ) from exc
        # Apply what the file now says, so live state and a later replay can never differ.
        decoded, _ = decode_line(line.strip(b"\n"), strict=True)  # without the newline(s) around it
        assert decoded is not None
        members = _unwrap(decoded)
        self._sink.apply_all(members, start + len(line) - len(line.lstrip(b"\n")))
        self._applied += len(members)
        self._valid_end = self._scanned_size = start + len(line)
        self._lines += 1

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
            self._read_only = (
                f"a write to {self.path.name} failed to reach the disk; restart coaia-store after "
                "checking the disk (space, errors) to write again"
            )
        return undone

    def _write_fd(self) -> int:
        if self._wfd is None:
            try:
                self._wfd = self._io.open(self.path, os.O_WRONLY | os.O_APPEND)
            except PermissionError as exc:
                raise ReadOnlyError(f"{self.path.name} is not writable: {exc.strerror}; fix its permissions") from exc
        return self._wfd

    def _create_file(self) -> None:
        """Write a new file holding only the header, atomically and durably, and open it."""
        self._io.ensure_dir(self.path.parent)
        header = header_record(iso_timestamp(self._clock()))
        self._io.write_file_atomic(self.path, [encode_line(header)])
        self._catch_up()

    def _maybe_compact(self) -> None:
        s = self._settings
        if not s.auto_compaction or self._damage or self._scanned_size < s.compaction_min_bytes or not self._applied:
            return
        garbage = 1 - self._sink.live_records() / self._applied
        if garbage >= s.compaction_ratio:
            self._compact(f"{garbage:.0%} of the records were superseded")

    def _compact(self, reason: str) -> None:
        assert self._fd is not None
        self._before_compaction()
        history = self._save_history()
        header = header_record(iso_timestamp(self._clock()))
        header["history"] = history
        header_line = encode_line(header)
        records = list(self._sink.snapshot())
        old_size = self._scanned_size
        self._io.write_file_atomic(self.path, _chain_one(header_line, (encode_line(r) for r in records)))
        live = len(records)
        # Adopt the new file without reading it back; the sink keeps only what it holds (not the versions it replaced).
        self._sink.reset()
        self._sink.apply_all(records)
        self._close_fds()
        fd = self._io.open(self.path, os.O_RDONLY)
        st = self._io.fstat(fd)
        self._fd, self._ident = fd, (st.st_dev, st.st_ino)
        self._valid_end = self._scanned_size = st.st_size
        self._lines, self._applied = live + 1, live
        self._strict, self._version, self._tail, self._damage = True, FORMAT_VERSION, None, []
        self._header = header_line
        self._restored = self._cache_end = 0
        self._maybe_save_cache()
        self._recovery.try_log(
            file=self.path.name, found=reason, action="compacted", bytesBefore=old_size, bytesAfter=st.st_size, history=history
        )

    def _save_history(self) -> str:
        """Copy the whole current file, compressed, into ``history/<file stem>/``; return its path."""
        assert self._fd is not None
        store_dir = self.path.parent
        folder = store_dir / HISTORY_DIR / self.path.stem
        self._io.ensure_dir(folder)
        stamp = self._clock().strftime("%Y%m%dT%H%M%S%fZ")
        target = folder / f"{stamp}-{self._ident[1] if self._ident else 0}.jsonl.gz"
        self._io.write_file_atomic(target, _gzip_chunks(self._io, self._fd, self._scanned_size))
        return str(target.relative_to(store_dir))


class _WriteLock:
    """In-process mutex, then the cross-process file lock, then catch-up and tail repair."""

    def __init__(self, journal: Journal, *, prepare: bool = True) -> None:
        self._j = journal
        self._prepare = prepare  # False: only the locks (Journal.prefix)

    def __enter__(self) -> None:
        j = self._j
        j._mutex.acquire()
        try:
            self._acquire_file_lock()
            try:
                if self._prepare:
                    j._prepare_write()
            except BaseException:
                self._release_file_lock()
                raise
        except BaseException:
            j._mutex.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self._release_file_lock()
        finally:
            self._j._mutex.release()

    def _acquire_file_lock(self) -> None:
        j = self._j
        try:
            if j._flock is None:
                # The store directory is made (durably: its parent is fsynced) before the lock file
                # creates it as a side effect, or a power cut could lose it with every acked record.
                j._io.ensure_dir(j.path.parent)
                j._flock = WriteLock(j.path.parent / LOCK_DIR / (j.path.name + ".lock"), j._settings.lock_timeout)
            j._flock.acquire()
        except LockTimeout as exc:
            raise StoreBusyError(
                f"another process has held the write lock of {j.path.name} for over {j._settings.lock_timeout:g} s; "
                "retry shortly, and if it persists look for a hung coaia-store process (lockTimeoutSeconds in config.json)"
            ) from exc
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise ReadOnlyError(f"{j.path.parent} is not writable ({exc.strerror}); only reads are possible") from exc
            raise StorageError(f"cannot take the write lock of {j.path.name}: {exc.strerror}") from exc

    def _release_file_lock(self) -> None:
        if self._j._flock is not None:
            self._j._flock.release()


def _unwrap(record: Record) -> list[Record]:
    if record.get("type") != BATCH_TYPE:
        return [record]
    members = record.get("records")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        return [record]  # the sink rejects an unknown shape as it would any bad record
    stamp = {k: record[k] for k in ("_op", "_ts") if k in record}
    return [{**m, **stamp} for m in members]


def _header_version(record: Record) -> int:
    version = record.get("version")
    return version if isinstance(version, int) else FORMAT_VERSION + 1


def _chain_one(first: R, rest: Iterable[R]) -> Iterator[R]:
    yield first
    yield from rest


def _iter_lines(io: FileIO, fd: int, start: int, end: int, limit: int) -> Iterator[tuple[int, int, bytes | None]]:
    """Yield ``(start, end, bytes)`` for each complete line in ``[start, end)``.

    A line longer than ``limit`` is yielded with ``None`` instead of its bytes and is
    never held in memory whole. An unterminated remainder at ``end`` is not yielded.
    """
    buf = b""
    buf_at = start  # file offset of buf[0]
    skip_from: int | None = None  # start of an over-long line being skipped
    pos = start
    while pos < end:
        data = io.pread(fd, min(_CHUNK, end - pos), pos)
        if not data:
            break
        chunk_at, pos = pos, pos + len(data)
        if skip_from is not None:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            yield skip_from, chunk_at + nl + 1, None
            skip_from, buf, buf_at = None, data[nl + 1 :], chunk_at + nl + 1
        else:
            buf = buf + data if buf else data
        i = 0
        while (nl := buf.find(b"\n", i)) >= 0:
            yield buf_at + i, buf_at + nl + 1, (buf[i:nl] if nl - i <= limit else None)
            i = nl + 1
        buf, buf_at = buf[i:], buf_at + i
        if len(buf) > limit:
            skip_from, buf = buf_at, b""


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


def _gzip_chunks(io: FileIO, fd: int, size: int) -> Iterator[bytes]:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip container
    pos = 0
    while pos < size:
        data = io.pread(fd, min(_CHUNK, size - pos), pos)
        if not data:
            raise OSError(errno.EIO, "file shrank while saving history")
        pos += len(data)
        yield compressor.compress(data)
    yield compressor.flush()
