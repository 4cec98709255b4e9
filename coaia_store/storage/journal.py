"""One append-only JSONL file: lock-free catch-up, locked durable appends, tail repair, compaction.

The journal knows lines and records, not entities: it replays records into a
:class:`RecordSink` (the graph layer) and asks that sink for a snapshot when it compacts.
It ties together the reader (:mod:`.journal_reader`), the writer (:mod:`.journal_writer`),
compaction (:mod:`.compaction`), housekeeping (:mod:`.housekeeping`) and the locks.

Invariants:
* A write is acknowledged only after its line is on disk (``fsync="always"``).
* One call is one line, so it is all-or-nothing under ``kill -9``.
* Writers serialise on an in-process lock plus a ``FileLock``; under them a writer first
  catches up with what other processes appended, so it never decides on stale state.
* The file is replaced only by compaction (temp, fsync, rename, fsync dir); readers hold
  the old descriptor open, so an inode is never reused under them, and a changed inode
  means "reload from the start".
* Damaged bytes are never thrown away: a torn tail (only an unterminated last fragment, or
  NUL bytes, which is all a crash can leave) is quarantined before it is truncated; a damaged
  complete line, at the end as in the middle, is quarantined and skipped, never cut, and the
  journal reports itself degraded. A file that is not JSONL at all is left alone.
* Housekeeping after an acknowledged append (compaction) never turns it into an error: a
  failure is logged, reported in :class:`JournalInfo`, and retried at a later write.
* The file is opened without following links and without blocking: a name that is not a
  regular file makes the journal *unreadable* (empty, reported, refusing writes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from ..errors import ReadOnlyError, UnreadableFileError, os_errors_reported
from .clock import Clock
from .compaction import compacted_header, save_history, write_compacted
from .envelope import envelope, new_op_id
from .fileio import FileIO
from .filekind import regular_file_exists
from .housekeeping import Housekeeping
from .journal_reader import Damage, JournalReader
from .journal_writer import JournalWriter
from .lines import Record
from .locking import JournalLock
from .prefix import Prefix, open_prefix
from .recovery import Recovery
from .sink import RecordSink
from .statecache import StateCache

R = TypeVar("R")


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
    unreadable: str | None = None  # not a regular file, or not JSONL: why, and what to do
    housekeeping: str | None = None  # the last failed housekeeping step (compaction), and what to do

    @property
    def degraded(self) -> bool:
        return bool(self.damage) or any((self.read_only, self.unreadable, self.housekeeping))


@dataclass(frozen=True)
class JournalHooks:
    before_write: Callable[[], None] | None = None  # before anything changes the file: may refuse by raising
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
        wall_clock: Clock | None = None,
    ) -> None:
        self.path = path
        self._hooks = hooks
        self._sink = sink
        self._io = io
        self._settings = settings
        self._recovery = recovery
        self._clock = clock  # stamps records: in a store, a hybrid logical clock (never behind a record read)
        self._wall = wall_clock or clock  # headers, history names, backoffs: the machine's own time, as backups use
        self._lock = JournalLock(path, io, settings.lock_timeout)
        self._file = JournalReader(
            path,
            sink=sink,
            io=io,
            recovery=recovery,
            cache=StateCache(path, io, sink.state_format),
            line_limit=settings.read_line_limit,
            cache_min_bytes=settings.state_cache_min_bytes,
        )
        self._writer = JournalWriter(
            self._file,
            sink=sink,
            io=io,
            recovery=recovery,
            wall=self._wall,
            max_record_bytes=settings.max_record_bytes,
            fsync=settings.fsync == "always",
        )
        self._housekeeping = Housekeeping(path, io=io, recovery=recovery, wall=self._wall)
        sink.attach(self._file.records_at)

    # ----------------------------------------------------------------- reading

    def read(self, fn: Callable[[], R]) -> R:
        """Catch up with the file (no file lock: one ``stat`` when nothing changed), then ``fn()``."""
        with self._reading(), self._lock.mutex:
            self._file.catch_up()
            return fn()

    def _saving(self) -> contextlib.AbstractContextManager[None]:
        return os_errors_reported(f"could not update {self.path.name}", "nothing was saved")

    def _reading(self) -> contextlib.AbstractContextManager[None]:
        return os_errors_reported(f"could not read {self.path.name}", "retry; if it persists check the disk")

    def info(self) -> JournalInfo:
        with self._reading(), self._lock.mutex:
            file = self._file
            file.catch_up()
            return JournalInfo(
                path=self.path,
                exists=file.fd is not None,
                size=file.scanned_size,
                lines=file.lines,
                checksummed=file.strict,
                format_version=file.version,
                records_applied=file.applied,
                damage=list(file.damage),
                tail=file.tail,
                read_only=file.read_only or self._write_blocker(),
                restored_bytes=file.restored,
                unreadable=file.unreadable,
                housekeeping=self._housekeeping.problem or self._housekeeping.logged_failure(),
            )

    def unreadable(self) -> str | None:
        """Why the file cannot be read as records, or ``None``.

        Cheap either way: a loaded journal catches up (one ``lstat``); another looks only at the
        file's kind and first line, and is loaded only when that line is not a record.
        """
        with self._reading(), self._lock.mutex:
            file = self._file
            if file.fd is None and file.unreadable is None and file.first_line_is_a_record():
                return None
            file.catch_up()
            return file.unreadable

    def _write_blocker(self) -> str | None:
        """Why a write would be refused for lack of permission (or a read-only mount), before one is tried."""
        folder = self.path.parent
        if self._file.unreadable or not folder.is_dir():
            return None
        lock = self._lock.file
        lock_target = lock if lock.exists() else lock.parent if lock.parent.is_dir() else folder
        needed = (self.path if self._file.fd is not None else folder, lock_target)
        blocked = next((p for p in needed if not self._io.writable(p)), None)
        if blocked is None:
            return None
        return (
            f"{blocked} is not writable by this process (its permissions, or a read-only file system): reads work, "
            f"every write will be refused. What to do: make it writable (chmod u+w {blocked}, or remount the disk "
            "read-write), or run coaia-store as the user who owns .coaia/"
        )

    # ----------------------------------------------------------------- writing

    def write(self, build: Callable[[], tuple[list[Record], R]], op_id: str | None = None) -> R:
        """Run ``build`` on fresh state under the write lock and append what it returns.

        ``build`` validates against the state the sink holds and returns the records to
        write (possibly none, for an idempotent repeat) and the caller's result. If it
        raises, nothing is written. The records become one line (a batch when several).
        ``op_id`` (from :func:`new_op_id`) shares one operation id between the writes of one
        call that spans contexts (a chart move); omitted, the line gets a new one.
        """
        return self.write_op(build, op_id)[0]

    def write_op(self, build: Callable[[], tuple[list[Record], R]], op_id: str | None = None) -> tuple[R, str | None]:
        """:meth:`write`, also returning the operation id stamped on the line (``None``: nothing written)."""
        self._may_write()
        op: str | None = None
        with self._saving(), self._locked():
            records, result = build()
            if records:
                records = self._sink.prepare(records)
                op = op_id or new_op_id()
                self._writer.append(envelope(records, op, self._clock()))
                # From here the write is acknowledged: housekeeping may fail, the write stands.
                self._housekeeping.run("automatic compaction", self._maybe_compact)
        if records and self._hooks.after_write is not None:
            self._hooks.after_write()
        return result, op

    def compact(self, *, drop_damaged: bool = False) -> bool:
        """Rewrite the file to the current state now; the old file goes to ``history/``.

        Returns ``False`` (and changes nothing) when the file has damaged lines, unless this
        is the explicit repair (``drop_damaged``): their bytes stay in quarantine and history.
        """
        self._may_write()
        with self._saving(), self._locked():
            file = self._file
            if (file.damage and not drop_damaged) or file.fd is None or file.unreadable:
                return False
            self._compact("repair: damaged lines dropped" if file.damage else "requested")
            return True

    @contextmanager
    def prefix(self) -> Iterator[Prefix | None]:
        """A consistent prefix of the file (``None`` when there is none), closed on exit.

        The write lock is held only to open the file and read its size: no catch-up, no repair.
        """
        with ExitStack() as stack:
            with self._saving(), self._lock:
                exists = regular_file_exists(self._io, self.path)
                prefix = stack.enter_context(open_prefix(self._io, self.path)) if exists else None
            yield prefix

    def replace_with(self, chunks: Iterable[bytes], reason: str) -> str | None:
        """Replace the whole file with ``chunks`` (a restore), atomically, under the write lock.

        The old file is first copied to ``history/`` (its path is returned). Every reader, in
        any process, sees the new inode and reloads.
        """
        self._may_write()
        with self._saving(), self._locked():
            history = self._save_history() if self._file.fd is not None else None
            self._io.ensure_dir(self.path.parent)
            self._io.write_file_atomic(self.path, chunks)
            self._file.catch_up()
            self._recovery.try_log(file=self.path.name, found=reason, action="replaced", history=history)
            return history

    def close(self) -> None:
        with self._lock.mutex:
            self._file.close_fds()
            self._lock.close()

    def _may_write(self) -> None:
        if self._hooks.before_write is not None:
            self._hooks.before_write()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The write locks, and under them the file made ready for a write."""
        with self._lock:
            self._prepare_write()
            yield

    def _prepare_write(self) -> None:
        """Under the locks: catch up, refuse if read-only, clean leftovers, repair the tail."""
        file = self._file
        file.catch_up()
        if file.unreadable:
            raise UnreadableFileError(f"{file.unreadable}. Nothing was saved")
        if file.read_only:
            raise ReadOnlyError(file.read_only)
        self._housekeeping.remove_temp_files_once()
        if file.tail is not None:
            self._writer.repair_tail()
        if file.fd is not None and not file.strict and file.lines and not file.damage:
            self._housekeeping.run("migrating the file to the checksummed format", self._migrate)
            file.catch_up()  # a failed migration may have replaced the file: never append to the old one

    # ----------------------------------------------------------------- compaction

    def _migrate(self) -> None:
        self._compact("migrating a file without checksums to the coaia-store format")

    def _maybe_compact(self) -> None:
        s, file = self._settings, self._file
        if not s.auto_compaction or file.damage or file.scanned_size < s.compaction_min_bytes or not file.applied:
            return
        garbage = 1 - self._sink.live_records() / file.applied
        if garbage >= s.compaction_ratio:
            self._compact(f"{garbage:.0%} of the records were superseded")

    def _compact(self, reason: str) -> None:
        file = self._file
        assert file.fd is not None
        if self._hooks.before_compaction is not None:
            with open_prefix(self._io, self.path) as prefix:
                self._hooks.before_compaction(prefix)
        history = self._save_history()
        header = compacted_header(history, self._wall)
        records = list(self._sink.snapshot())
        old_size = file.scanned_size
        write_compacted(self._io, self.path, header, records)
        # Adopt the new file without reading it back; the sink keeps only what it holds (not the versions it replaced).
        self._sink.reset()
        self._sink.apply_all(records)
        new_size = file.rewritten(header, len(records))
        self._housekeeping.cleared()  # a compaction that ran clears an earlier failure
        file.maybe_save_cache()
        self._recovery.try_log(
            file=self.path.name,
            found=reason,
            action="compacted",
            bytesBefore=old_size,
            bytesAfter=new_size,
            history=history,
        )

    def _save_history(self) -> str:
        """Copy the whole current file, compressed, into ``history/<file stem>/``; return its path."""
        file = self._file
        assert file.fd is not None
        inode = file.ident[1] if file.ident else 0
        return save_history(self._io, self.path, file.fd, file.scanned_size, inode, self._wall)
