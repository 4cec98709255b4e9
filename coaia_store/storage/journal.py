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
import errno
import logging
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from ..errors import (
    CoaiaError,
    ReadOnlyError,
    RecordTooLargeError,
    StorageError,
    StoreBusyError,
    UnreadableFileError,
    os_errors_reported,
)
from .caller import current_caller
from .clock import Clock, iso_timestamp
from .fileio import FileIO
from .filekind import SAFE_OPEN, kind_problem
from .gcpause import gc_paused
from .lines import (
    FORMAT_VERSION,
    Record,
    decode_legacy_line,
    decode_line,
    encode_line,
    header_record,
    is_header,
    json_document_values,
)
from .locking import LockTimeout, WriteLock
from .recovery import Recovery
from .statecache import CachedState, StateCache

log = logging.getLogger(__name__)

R = TypeVar("R")
BATCH_TYPE = "batch"
ENVELOPE_KEYS = frozenset({"_op", "_ts", "_by"})  # which call wrote a record, when, and who made it (if known)
LOCK_DIR = ".locks"
HISTORY_DIR = "history"
_CHUNK = 4 << 20
_END_MARK = 32  # bytes before the end of what was read, re-checked when the file grows
_DOCUMENT_LIMIT = 64 << 20  # a larger non-JSONL file is recognised by its first line alone
HOUSEKEEPING_BACKOFF = timedelta(seconds=30), timedelta(minutes=30)  # first and longest wait before a retry
HOUSEKEEPING_FAILED, HOUSEKEEPING_RECOVERED = "housekeeping failed", "housekeeping recovered"  # recovery-log actions


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
    unreadable: str | None = None  # not a regular file, or not JSONL: why, and what to do
    housekeeping: str | None = None  # the last failed housekeeping step (compaction), and what to do

    @property
    def degraded(self) -> bool:
        return bool(self.damage) or any((self.read_only, self.unreadable, self.housekeeping))


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
        self._mutex = threading.RLock()
        self._flock: WriteLock | None = None
        self._fd: int | None = None
        self._wfd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._temp_files_checked = False
        self._read_only: str | None = None
        self._housekeeping: str | None = None
        self._housekeeping_due: datetime | None = None  # no housekeeping before then (backoff after a failure)
        self._housekeeping_failures = 0
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
                read_only=self._read_only or self._write_blocker(),
                restored_bytes=self._restored,
                unreadable=self._unreadable,
                housekeeping=self._housekeeping or self._logged_housekeeping_failure(),
            )

    def _logged_housekeeping_failure(self) -> str | None:
        """A housekeeping failure another process (or an earlier run) logged and nothing has fixed since."""
        decisive = {HOUSEKEEPING_FAILED, HOUSEKEEPING_RECOVERED, "compacted", "replaced"}
        try:
            events = [
                e for e in self._recovery.entries() if e.get("file") == self.path.name and e.get("action") in decisive
            ]
        except OSError:
            return None
        last = events[-1] if events else None
        if last is None or last["action"] != HOUSEKEEPING_FAILED:
            return None
        return f"{last.get('found')} (logged at {last.get('time')})"

    def unreadable(self) -> str | None:
        """Why the file cannot be read as records, or ``None``.

        Cheap either way: a loaded journal catches up (one ``lstat``); another looks only at the
        file's kind and first line, and is loaded only when that line is not a record.
        """
        with self._reading(), self._mutex:
            if self._fd is None and self._unreadable is None and self._first_line_is_a_record():
                return None
            self._catch_up()
            return self._unreadable

    def _first_line_is_a_record(self) -> bool:
        """``True`` for an absent file too; ``False`` when only a full read can tell (or it is odd)."""
        try:
            st = self._io.lstat(self.path)
        except FileNotFoundError:
            return True
        if kind_problem(self.path, st) is not None:
            return False
        if not st.st_size:
            return True
        try:
            fd = self._open_regular(os.O_RDONLY)
        except UnreadableFileError:  # replaced since the lstat: the catch-up says how
            return False
        try:
            head = self._io.pread(fd, min(st.st_size, 64 << 10), 0)
        finally:
            self._io.close(fd)
        return decode_legacy_line(_first_line(head))[0] is not None

    def _write_blocker(self) -> str | None:
        """Why a write would be refused for lack of permission (or a read-only mount), before one is tried."""
        folder = self.path.parent
        if self._unreadable or not folder.is_dir():
            return None
        lock = folder / LOCK_DIR / (self.path.name + ".lock")
        lock_target = lock if lock.exists() else lock.parent if lock.parent.is_dir() else folder
        needed = (self.path if self._fd is not None else folder, lock_target)
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
                self._append(self._envelope(records, op))
                # From here the write is acknowledged: housekeeping may fail, the write stands.
                self._housekeep("automatic compaction", self._maybe_compact)
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
            if (self._damage and not drop_damaged) or self._fd is None or self._unreadable:
                return False
            self._compact("repair: damaged lines dropped" if self._damage else "requested")
            return True

    def _housekeep(self, what: str, step: Callable[[], None]) -> None:
        """Run a housekeeping ``step`` under the write lock unless a failed one waits for its backoff.

        A failure is logged and reported (``JournalInfo.housekeeping``), never raised: it is
        retried at the first write after a backoff that doubles from 30 s up to 30 min.
        """
        if self._housekeeping_due is not None and self._wall() < self._housekeeping_due:
            return
        try:
            step()
        except (OSError, CoaiaError) as exc:
            first, longest = HOUSEKEEPING_BACKOFF
            self._housekeeping_due = self._wall() + min(first * 2**self._housekeeping_failures, longest)
            self._housekeeping_failures += 1
            self._housekeeping = _housekeeping_problem(what, exc, self._housekeeping_due)
            log.error("%s: %s", self.path.name, self._housekeeping)
            self._recovery.try_log(file=self.path.name, found=self._housekeeping, action=HOUSEKEEPING_FAILED)
        else:
            if self._housekeeping is not None:
                self._recovery.try_log(file=self.path.name, found=f"{what} succeeded", action=HOUSEKEEPING_RECOVERED)
            self._housekeeping = self._housekeeping_due = None
            self._housekeeping_failures = 0

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
        self._may_write()
        with self._saving(), self._locked():
            history = self._save_history() if self._fd is not None else None
            self._io.ensure_dir(self.path.parent)
            self._io.write_file_atomic(self.path, chunks)
            self._catch_up()
            self._recovery.try_log(file=self.path.name, found=reason, action="replaced", history=history)
            return history

    def _may_write(self) -> None:
        if self._hooks.before_write is not None:
            self._hooks.before_write()

    def _file_exists(self) -> bool:
        """Whether the file is there as a regular file (anything else is never opened)."""
        try:
            st = self._io.lstat(self.path)
        except FileNotFoundError:
            return False
        return kind_problem(self.path, st) is None

    @contextmanager
    def _open_prefix(self) -> Iterator[Prefix]:
        """Under the write lock: a new descriptor and the end of the file's last complete line.

        A file with our header ends every line with a newline, so bytes after the last one are
        a torn tail and are left out; a file of other tools may end without one.
        """
        fd = self._open_regular(os.O_RDONLY)
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
        self._open_line = False  # what was read ends with a whole record but no newline: the next write adds one
        self._sig: tuple[int, int, int] | None = None  # (size, mtime_ns, ctime_ns) when last read: unchanged if equal
        self._end_mark = b""  # the last bytes before _valid_end, to notice a rewrite of what was read
        self._unreadable: str | None = None
        self._format_checked = False  # whether the file was checked for being JSON but not JSONL

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
            st = self._io.lstat(self.path)  # a link is not followed: it is reported, never read
        except FileNotFoundError:
            self._forget(None)
            return
        odd = kind_problem(self.path, st)
        if odd is not None:
            self._forget(odd)
            return
        if self._fd is None or (st.st_dev, st.st_ino) != self._ident or st.st_size < self._valid_end:
            reopen = True  # replaced, or cut into lines already read: start over
        elif _signature(st) == self._sig and self._tail is None:
            # With a tail pending, an equal size proves nothing: another writer may have
            # cut that tail and appended lines of the same total length; rescan it.
            return
        elif st.st_size == self._scanned_size and self._tail is None:
            reopen = True  # same size, new mtime/ctime: rewritten in place (an editor saving over it)
        else:
            # Other tools rewrite the whole file in place (fs.writeFile: same inode), and only
            # coaia-store appends under our header: so a changed legacy file, or what was read
            # changed (header, last bytes), means the lines already read may be gone: start over.
            reopen = (not self._strict and st.st_size != self._scanned_size) or not self._read_part_intact()
        with gc_paused():
            if reopen:
                if not self._reopen():
                    return
                self._restore_cached_state()
            self._scan()
            self._maybe_save_cache()

    def _forget(self, unreadable: str | None) -> None:
        """The file is gone, or is not a regular file: hold nothing, and say why when it is unreadable."""
        if self._fd is not None or self._applied or self._unreadable != unreadable:
            self._close_fds()
            self._reset_position()
            self._sink.reset()
            if unreadable is not None:
                log.info("%s", unreadable)  # status reports it with what to do
        self._unreadable = unreadable

    def _read_part_intact(self) -> bool:
        """The header, the last bytes read, and the newline a whole unterminated record awaited, still there."""
        assert self._fd is not None
        if self._header is not None and self._io.pread(self._fd, len(self._header), 0) != self._header:
            return False
        mark = self._end_mark
        if mark and self._io.pread(self._fd, len(mark), self._valid_end - len(mark)) != mark:
            return False
        return not self._open_line or self._io.pread(self._fd, 1, self._valid_end) == b"\n"

    def _remember_end(self) -> None:
        assert self._fd is not None
        n = min(_END_MARK, self._valid_end)
        self._end_mark = self._io.pread(self._fd, n, self._valid_end - n) if n else b""

    def _open_regular(self, flags: int) -> int:
        """Open the file without following a link or blocking, and only if it is a regular file."""
        try:
            fd = self._io.open(self.path, flags | SAFE_OPEN)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link made since it was checked
                raise UnreadableFileError(kind_problem(self.path, os.lstat(self.path)) or str(exc)) from exc
            raise
        problem = kind_problem(self.path, self._io.fstat(fd))
        if problem is not None:
            self._io.close(fd)
            raise UnreadableFileError(problem)
        return fd

    def _reopen(self) -> bool:
        """Open the file afresh with empty state; ``False`` if it turned out unreadable."""
        self._close_fds()
        try:
            fd = self._open_regular(os.O_RDONLY)
        except UnreadableFileError as exc:
            self._forget(str(exc))
            return False
        except OSError as exc:
            raise StorageError(f"cannot read {self.path.name}: {exc.strerror}; check its permissions") from exc
        st = self._io.fstat(fd)
        self._fd, self._ident = fd, (st.st_dev, st.st_ino)
        self._reset_position()
        self._sink.reset()
        return True

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
        if self._open_line:  # a cache ending without a newline would make the newline a bad line
            return
        assert self._fd is not None and self._version is not None
        state = CachedState(
            self._valid_end, self._lines, self._applied, self._version, self._header, self._sink.export_state()
        )
        self._cache.save(self._fd, state)
        self._cache_end = self._valid_end

    def _scan(self) -> None:
        """Consume the complete lines between ``_valid_end`` and the end of the file.

        A complete line that cannot be read is damage wherever it is: reported, quarantined,
        skipped, never cut. Only what a crash can leave is a torn tail: an unterminated last
        fragment, and lines of nothing but NUL bytes (a file extended but not written before a
        power loss) that no good line follows. An unterminated last line holding a whole
        record (an editor removed the final newline) is read; the next write adds the newline.
        """
        assert self._fd is not None
        st = self._io.fstat(self._fd)
        size = st.st_size
        if not self._format_checked and self._valid_end == 0 and size and self._not_jsonl(size):
            self._scanned_size, self._sig, self._tail = size, _signature(st), None
            return
        self._format_checked = True
        if self._open_line and size > self._valid_end:  # the newline it awaited (checked on catch-up)
            self._valid_end += 1
            self._open_line = False
        holes: list[Damage] = []  # NUL-only lines not (yet) followed by a good line
        line_no, line_end = self._lines, self._valid_end
        for start, end, data in _iter_lines(self._io, self._fd, self._valid_end, size, self._settings.read_line_limit):
            line_no, line_end = line_no + 1, end
            record, problem = self._decode(start, data)
            if record is None and problem is None:  # blank line in a legacy file
                if not holes:
                    self._valid_end, self._lines = end, line_no
                continue
            if record is not None:
                problem = self._apply_line(record, start)
            if problem is not None and data is not None and not data.strip(b"\0"):
                holes.append(Damage(start, end - start, line_no, "NUL bytes"))
                continue
            self._register_all(holes)
            if problem is not None:
                self._register_damage(Damage(start, end - start, line_no, problem))
            self._valid_end, self._lines = end, line_no
        if size > line_end and self._accept_unterminated_line(line_end, size):
            self._register_all(holes)
            self._valid_end, self._lines, self._open_line = size, line_no + 1, True
        self._remember_end()
        self._scanned_size, self._sig, self._tail = size, _signature(st), None  # set last: a failed scan is redone
        if size > self._valid_end:
            what = holes[0].problem if holes else "unterminated last line"
            self._tail = Damage(self._valid_end, size - self._valid_end, self._lines + 1, what)

    def _register_all(self, damages: list[Damage]) -> None:
        for damage in damages:
            self._register_damage(damage)
        damages.clear()

    def _not_jsonl(self, size: int) -> bool:
        """Whether the file is JSON but not JSONL (an array, pretty-printed JSON); then it is left alone."""
        assert self._fd is not None
        first = _first_line(self._io.pread(self._fd, min(size, 64 << 10), 0))
        if decode_legacy_line(first)[0] is not None:
            return False
        values = json_document_values(self._io.pread(self._fd, size, 0)) if size <= _DOCUMENT_LIMIT else None
        if values is None and first.strip() not in (b"[", b"{"):
            return False
        shape = "a JSON array" if first.startswith(b"[") else "JSON spread over several lines (pretty-printed)"
        self._unreadable = (
            f"{self.path.name} is not JSONL (one record per line): it holds {shape}. coaia-store reads nothing "
            f"from it and never changes it. What to do: move it out of .coaia/ (mv {self.path} ~/{self.path.stem}.json) "
            f"and bring its records back with coaia-store import ~/{self.path.stem}.json --context <this context>"
        )
        log.info("%s", self._unreadable)  # status reports it with what to do
        return True

    def _accept_unterminated_line(self, start: int, size: int) -> bool:
        """A whole record with no newline after it (other tools and editors end files so) is no torn tail."""
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
                record, _ = (
                    (decode_line(line, strict=True) if self._strict else decode_legacy_line(line))
                    if end >= 0
                    else (None, None)
                )
                return _unwrap(record) if record is not None else []
            data += chunk
        return []

    def _register_damage(self, damage: Damage) -> None:
        self._damage.append(damage)
        log.warning("%s line %d is damaged (%s); skipped and quarantined", self.path.name, damage.line, damage.problem)
        assert self._fd is not None
        try:
            self._recovery.quarantine(
                self.path,
                self._fd,
                damage.offset,
                damage.length,
                f"line {damage.line}: {damage.problem}",
                "skipped on load",
            )
        except OSError as exc:  # a read-only directory must not stop reads
            log.warning("could not quarantine %s line %d: %s", self.path.name, damage.line, exc)

    # ----------------------------------------------------------------- internals: writing

    def _locked(self) -> _WriteLock:
        return _WriteLock(self)

    def _prepare_write(self) -> None:
        """Under the locks: catch up, refuse if read-only, clean leftovers, repair the tail."""
        self._catch_up()
        if self._unreadable:
            raise UnreadableFileError(f"{self._unreadable}. Nothing was saved")
        if self._read_only:
            raise ReadOnlyError(self._read_only)
        if not self._temp_files_checked:
            self._housekeep("removing temp files left by an interrupted write", self._remove_stale_temp_files)
        if self._tail is not None:
            self._repair_tail()
        if self._fd is not None and not self._strict and self._lines and not self._damage:
            self._housekeep("migrating the file to the checksummed format", self._migrate)
            self._catch_up()  # a failed migration may have replaced the file: never append to the old one

    def _migrate(self) -> None:
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
                    file=str(tmp.relative_to(self.path.parent)),
                    found="temp file left by an interrupted write",
                    action="removed",
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
        self._sig = self._signature_of(wfd)
        self._tail = None
        log.warning("%s: repaired a torn tail of %d bytes (kept in .recovery/)", self.path.name, tail.length)

    def _signature_of(self, fd: int) -> tuple[int, int, int] | None:
        """The signature after this journal's own change; ``None`` (read again) if ``fstat`` fails,
        which must not fail a write that is already on disk."""
        try:
            return _signature(self._io.fstat(fd))
        except OSError as exc:
            log.warning("%s: fstat after a write failed (%s); the file will be read again", self.path.name, exc)
            return None

    def _envelope(self, records: list[Record], op: str) -> Record:
        stamp = {"_op": op, "_ts": iso_timestamp(self._clock())}
        caller = current_caller()
        if caller is not None:
            stamp["_by"] = caller.name
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
        if self._open_line:
            line = b"\n" + line  # the file ends with a whole record but no newline (other tools, editors)
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
        self._open_line = False
        self._end_mark = line[-_END_MARK:] if len(line) >= _END_MARK else b""
        self._sig = self._signature_of(wfd)

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
                self._wfd = self._open_regular(os.O_WRONLY | os.O_APPEND)
            except PermissionError as exc:
                raise ReadOnlyError(f"{self.path.name} is not writable: {exc.strerror}; fix its permissions") from exc
        return self._wfd

    def _create_file(self) -> None:
        """Write a new file holding only the header, atomically and durably, and open it."""
        self._io.ensure_dir(self.path.parent)
        header = header_record(iso_timestamp(self._wall()))
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
        header = header_record(iso_timestamp(self._wall()))
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
        fd = self._open_regular(os.O_RDONLY)
        st = self._io.fstat(fd)
        self._fd, self._ident = fd, (st.st_dev, st.st_ino)
        self._valid_end = self._scanned_size = st.st_size
        self._lines, self._applied = live + 1, live
        self._strict, self._version, self._tail, self._damage = True, FORMAT_VERSION, None, []
        self._header = header_line
        self._restored = self._cache_end = 0
        self._open_line, self._sig = False, _signature(st)
        self._remember_end()
        self._housekeeping = self._housekeeping_due = None  # a compaction that ran clears an earlier failure
        self._housekeeping_failures = 0
        self._maybe_save_cache()
        self._recovery.try_log(
            file=self.path.name,
            found=reason,
            action="compacted",
            bytesBefore=old_size,
            bytesAfter=st.st_size,
            history=history,
        )

    def _save_history(self) -> str:
        """Copy the whole current file, compressed, into ``history/<file stem>/``; return its path."""
        assert self._fd is not None
        store_dir = self.path.parent
        folder = store_dir / HISTORY_DIR / self.path.stem
        self._io.ensure_dir(folder)
        stamp = self._wall().strftime("%Y%m%dT%H%M%S%fZ")
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
                raise ReadOnlyError(
                    f"{j.path.parent} is not writable ({exc.strerror}); only reads are possible"
                ) from exc
            raise StorageError(f"cannot take the write lock of {j.path.name}: {exc.strerror}") from exc

    def _release_file_lock(self) -> None:
        if self._j._flock is not None:
            self._j._flock.release()


def _first_line(head: bytes) -> bytes:
    """The first line that is not blank (a BOM and blank lines skipped), without its newline."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0]


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    """What changes whenever the file's bytes change: size, and modification and change times."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


_FIXES = {
    errno.ENOSPC: "free space on the disk that holds .coaia/ (df -h .coaia)",
    errno.EDQUOT: "free space within your disk quota, or raise it",
    errno.EACCES: "make .coaia/ and .coaia/history/ writable by this user (chmod -R u+w .coaia)",
    errno.EPERM: "make .coaia/ and .coaia/history/ writable by this user (chmod -R u+w .coaia)",
    errno.EROFS: "remount the file system read-write",
    errno.ENOTDIR: ".coaia/history (or a folder in it) is not a directory: move it away (mv .coaia/history .coaia/history.bad)",
    errno.EIO: "the disk reported an I/O error: check it (dmesg, SMART) and copy .coaia/ somewhere safe",
}


def _housekeeping_problem(what: str, exc: BaseException, retry_at: datetime) -> str:
    cause: BaseException | None = exc
    while cause is not None and not (isinstance(cause, OSError) and cause.errno is not None):
        cause = cause.__cause__  # a StorageError wraps the OSError that names the errno
    if isinstance(cause, OSError) and cause.errno is not None:
        code = cause.errno
        reason = f"{errno.errorcode.get(code, code)}: {cause.strerror or cause}"
    else:
        code, reason = 0, str(exc)
    fix = _FIXES.get(code, "check the disk and the permissions of .coaia/")
    return (
        f"{what} failed ({reason}); every write was saved all the same. It is retried at the first write after "
        f"{iso_timestamp(retry_at)}, or at once with coaia-store compact. What to do: {fix}"
    )


def new_op_id() -> str:
    """A fresh operation id (the ``_op`` of a line)."""
    return os.urandom(8).hex()


def _unwrap(record: Record) -> list[Record]:
    if record.get("type") != BATCH_TYPE:
        return [record]
    members = record.get("records")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        return [record]  # the sink rejects an unknown shape as it would any bad record
    stamp = {k: record[k] for k in ENVELOPE_KEYS if k in record}
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
