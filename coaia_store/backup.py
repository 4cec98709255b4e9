"""Backups of every context in ``.coaia/.backup/``: daily, weekly, before destructive operations, on demand.

No cron job and no daemon: after a write, :meth:`Backups.maybe_take_automatic` checks (once per
context per day, answered from memory afterwards) whether today's daily and this ISO week's
weekly exist, and takes them for every context changed since its last backup of that kind::

    .backup/daily/charts-work-2026-11-21.jsonl.gz     .backup/weekly/charts-work-2026-W47.jsonl.gz
    .backup/manual/charts-work-<stamp>.jsonl.gz       .backup/pre-compaction/charts-<stamp>.jsonl.gz
    .backup/MANIFEST.json                             id, group, sha256, size, records, source, kind, time

A backup copies a consistent prefix of the file: the write lock is held only to open the file
and read its size (:meth:`Journal.prefix`); the file only grows until it is replaced by a new
inode, so the open descriptor keeps reading those bytes. Each backup is gzip'ed, written
atomically, read back and verified line by line, then recorded in the manifest; one that fails
verification is deleted, reported and not recorded. Retention runs after each backup.

Locks (in ``.coaia/.locks/``), always taken in this order, never the other way:
``backup-sweep`` (one automatic sweep at a time) -> a context's write lock (briefly) ->
``backup-manifest`` (manifest read-modify-write and pruning, never held while waiting for another).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import BackupConfig
from .contexts import DEFAULT_CONTEXT, context_file
from .errors import CoaiaError, os_errors_reported
from .storage.clock import iso_timestamp
from .storage.fileio import FileIO
from .storage.journal import BATCH_TYPE, LOCK_DIR, Prefix, _gzip_chunks
from .storage.lines import Record, decode_legacy_line, decode_line, is_header
from .storage.locking import LockTimeout, WriteLock

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

BACKUP_DIR = ".backup"
MANIFEST_FILE = "MANIFEST.json"
SUFFIX = ".jsonl.gz"
DAILY, WEEKLY, MANUAL = "daily", "weekly", "manual"
_SWEEP_LOCK, _MANIFEST_LOCK = "backup-sweep.lock", "backup-manifest.lock"
_REASON = re.compile(r"[a-z][a-z0-9-]{0,31}")
_STALE_TEMP_SECONDS = 3600  # a manual or pre-operation temp file older than this was left by a killed process
_MAX_LISTED_PROBLEMS = 5
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


class VerifyResult(BaseModel):
    id: str
    ok: bool
    problems: list[str] = Field(default_factory=list)


class RestoreResult(BaseModel):
    restored: list[BackupInfo] = Field(default_factory=list)
    safetyBackups: list[BackupInfo] = Field(default_factory=list)  # the state just before the restore
    history: list[str] = Field(default_factory=list)  # where the replaced files were copied
    problems: list[str] = Field(default_factory=list)


class _Manifest(BaseModel):
    format: str = "coaia-store-backups"
    version: int = 1
    backups: list[BackupInfo] = Field(default_factory=list)


class Backups:
    """The backups of one store directory (``store.backups``)."""

    def __init__(self, store: Store, *, background: bool = False) -> None:
        self._store = store
        self.root = store.local_dir / BACKUP_DIR
        self._checked: dict[str, tuple[str, ...]] = {}  # context -> period labels already seen to
        self._checked_day: dict[str, date] = {}  # context -> the UTC day those labels were confirmed on
        self._locks: dict[str, tuple[threading.Lock, WriteLock]] = {}
        self._locks_guard = threading.Lock()
        self._background = background
        self._worker: threading.Thread | None = None

    def after_write(self, context: str) -> None:
        """The journal's hook: the automatic backups, inline, or (``background=True``, the server's
        choice) in a worker thread so the call that happens to be the day's first returns at once."""
        if not self._background:
            self.maybe_take_automatic(context)
            return
        labels = tuple(label for _, label in _periods(self._store.clock()))
        if self._checked.get(context) == labels or (self._worker is not None and self._worker.is_alive()):
            return  # done already, or under way (a later write checks again)
        self._worker = threading.Thread(target=self.maybe_take_automatic, args=(context,), name="coaia-backup",
                                        daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ public API

    def maybe_take_automatic(self, context: str) -> list[BackupInfo]:
        """After a write to ``context``: take the day's and week's backups if not taken yet.

        Costs a dictionary lookup once this process has seen to today for ``context``.
        Never raises: a failure is logged, and the write that triggered it stands.
        """
        now = self._store.clock()
        today = now.astimezone(timezone.utc).date()
        if self._checked_day.get(context) == today:  # the common case: no date formatting per write
            return []
        labels = tuple(label for _, label in _periods(now))
        if self._checked.get(context) == labels:
            self._checked_day[context] = today
            return []
        try:
            return self._sweep(now, labels)
        except (OSError, CoaiaError) as exc:
            log.warning("automatic backup skipped: %s", exc)
            return []

    def backup_context(self, context: str | None = None, reason: str = MANUAL) -> BackupInfo | None:
        """Back up one context now; ``reason`` is ``manual`` or the operation about to run
        (``compaction``, ``restore``, ``repair``...: kind ``pre-<reason>``). ``None``: no file yet."""
        with os_errors_reported("the backup failed", "earlier backups and the data files are intact"):
            return self._backup_contexts([context or DEFAULT_CONTEXT], reason)[0]

    def backup_all(self, reason: str = MANUAL) -> list[BackupInfo]:
        """Back up every context now, as one group."""
        with os_errors_reported("the backup failed", "earlier backups and the data files are intact"):
            return [info for info in self._backup_contexts(self._store.contexts(), reason) if info is not None]

    def before_compaction(self, context: str, prefix: Prefix) -> None:
        """The journal's hook, under the context's write lock: back up what is about to be rewritten.

        Never raises: compaction keeps its own copy of the old file in ``history/`` anyway.
        """
        now = self._store.clock()
        try:
            self._take(context, prefix, "pre-compaction", _unique_label(now), now)
        except (OSError, CoaiaError) as exc:
            log.warning("backup before compacting context %r failed: %s", context, exc)

    def list_backups(self, context: str | None = None) -> list[BackupInfo]:
        """Recorded backups, oldest first, of one context or of all."""
        entries = self._read_manifest()
        return sorted((e for e in entries if context is None or e.context == context), key=lambda e: (e.time, e.id))

    def verify(self, backup_id: str | None = None) -> list[VerifyResult]:
        """Check a backup (an id or a group id; ``None``: all) against its manifest entry."""
        chosen = self._read_manifest() if backup_id is None else self._resolve(backup_id, None)
        with os_errors_reported("verifying the backups failed", "earlier backups and the data files are intact"):
            return [self._verify_one(info) for info in chosen]

    def verified_content(self, info: BackupInfo) -> bytes:
        """The decompressed content of a backup that verifies against its manifest entry (for repair);
        BackupError if it does not."""
        with self._verified_fd(info) as fd:
            return b"".join(_gunzip(_read_all(self._store.io, fd)))

    def restore_backup(self, backup_id: str, context: str | None = None) -> RestoreResult:
        """Restore one backup, or every backup of a group (``context`` picks one of them).

        Every chosen backup must verify, or nothing is changed. Each context is first backed up
        (kind ``pre-restore``), then its file is replaced atomically under its write lock, the
        old file being kept in ``history/``. Other processes reload the restored file.
        """
        chosen = self._resolve(backup_id, context)
        result = RestoreResult()
        consequence = "each context is either restored or unchanged (coaia-store status shows which)"
        with os_errors_reported(f"restoring {backup_id} failed", consequence), ExitStack() as stack:
            fds = [stack.enter_context(self._verified_fd(info)) for info in chosen]
            for info, fd in zip(chosen, fds):
                self._restore_one(info, fd, result)
        return result

    def close(self) -> None:
        if self._worker is not None:
            self._worker.join(timeout=60)  # let a backup under way finish rather than leave a temp file
        with self._locks_guard:
            for _, file_lock in self._locks.values():
                file_lock.close()
            self._locks.clear()

    # ------------------------------------------------------------------ taking backups

    def _sweep(self, now: datetime, labels: tuple[str, ...]) -> list[BackupInfo]:
        with self._locked(_SWEEP_LOCK, timeout=0) as held:
            if not held:  # another thread or process is taking them right now
                return []
            self._remove_stale_temp_files()
            entries = self._read_manifest(lenient=True)
            taken: list[BackupInfo] = []
            for context in self._store.contexts():
                taken += self._take_due(context, entries, now)
                self._checked[context] = labels
            return taken

    def _take_due(self, context: str, entries: list[BackupInfo], now: datetime) -> list[BackupInfo]:
        """The periodic backups ``context`` lacks, for those periods it changed in. Never raises."""
        stem = context_file(self._store.path, context).stem
        ids = {e.id for e in entries}
        due = [(kind, label) for kind, label in _periods(now) if _backup_id(kind, stem, label) not in ids]
        if not due:
            return []
        try:
            with self._store.graph(context).journal.prefix() as prefix:
                if prefix is None:
                    return []
                changed = [(k, label) for k, label in due if _last_stamp(entries, context, k) != prefix.stamp]
                return [self._take(context, prefix, kind, label, now) for kind, label in changed]
        except (OSError, CoaiaError) as exc:
            log.warning("automatic backup of context %r failed: %s", context, exc)
            return []

    def _backup_contexts(self, contexts: list[str], reason: str) -> list[BackupInfo | None]:
        kind = _kind(reason)
        now = self._store.clock()
        label = _unique_label(now)
        found: list[BackupInfo | None] = []
        for context in contexts:
            graph = self._store.graph(context)
            with graph.journal.prefix() as prefix:
                found.append(None if prefix is None else self._take(graph.context, prefix, kind, label, now))
        return found

    def _take(self, context: str, prefix: Prefix, kind: str, label: str, now: datetime) -> BackupInfo:
        """Copy ``prefix`` to a backup file, verify it, record it, prune; raise BackupError if it does not verify."""
        io = self._store.io
        source = context_file(self._store.path, context)
        backup_id = _backup_id(kind, source.stem, label)
        target = self._path(backup_id)
        io.ensure_dir(target.parent)
        digest = hashlib.sha256()
        io.write_file_atomic(target, _hashed(_gzip_chunks(io, prefix.fd, prefix.size), digest))
        with self._opened(target) as fd:
            scan = _scan(_read_all(io, fd), prefix.strict)
        problems = scan.problems + scan.mismatches(sha256=digest.hexdigest(), source_size=prefix.size)
        if problems:
            self._reject(target, backup_id, problems)
        info = BackupInfo(
            id=backup_id,
            group=f"{kind}/{label}",
            context=context,
            kind=kind,
            file=str(target.relative_to(self._store.local_dir)),
            sha256=scan.sha256,
            size=scan.size,
            records=scan.records,
            lines=scan.lines,
            sourceFile=source.name,
            sourceSize=prefix.size,
            sourceStamp=prefix.stamp,
            strict=prefix.strict,
            time=iso_timestamp(now),
        )
        self._record(info, now)
        return info

    def _reject(self, target: Path, backup_id: str, problems: list[str]) -> NoReturn:
        self._store.io.unlink(target)
        listed = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
        self._store.recovery.try_log(file=backup_id, found=listed, action="backup failed verification; deleted")
        raise BackupError(f"backup {backup_id} failed verification and was not kept: {listed}")

    def _remove_stale_temp_files(self) -> None:
        """Temp files of killed backups: any in daily/ and weekly/ (written only under the sweep
        lock, which we hold), others once they are old enough that no live backup owns them."""
        for tmp in self.root.glob("*/*.tmp"):
            periodic = tmp.parent.name in (DAILY, WEEKLY)
            if periodic or time.time() - tmp.stat().st_mtime > _STALE_TEMP_SECONDS:
                self._store.io.unlink(tmp)
                self._store.recovery.try_log(
                    file=str(tmp.relative_to(self._store.local_dir)), found="temp file left by an interrupted backup", action="removed"
                )

    # ------------------------------------------------------------------ manifest and retention

    def _read_manifest(self, *, lenient: bool = False) -> list[BackupInfo]:
        try:
            return _Manifest.model_validate_json((self.root / MANIFEST_FILE).read_bytes()).backups
        except FileNotFoundError:
            return []
        except ValidationError as exc:
            if lenient:
                return []
            raise BackupError(f"{BACKUP_DIR}/{MANIFEST_FILE} is unreadable ({exc.error_count()} problems)") from exc

    def _record(self, info: BackupInfo, now: datetime) -> None:
        """Add ``info`` to the manifest, drop what retention no longer keeps, then delete those files."""
        with self._locked(_MANIFEST_LOCK, timeout=self._store.config.lockTimeoutSeconds):
            entries = [e for e in self._manifest_for_update() if e.id != info.id] + [info]
            keep, drop = _retention(entries, now, self._store.config.backup)
            self._write_manifest(keep)
            for entry in drop:
                self._prune(entry)

    def _manifest_for_update(self) -> list[BackupInfo]:
        """The manifest's entries; an unreadable manifest is set aside (kept, logged) and started afresh."""
        try:
            return self._read_manifest()
        except BackupError as exc:
            aside = self.root / f"{MANIFEST_FILE}.unreadable-{_unique_label(self._store.clock())}"
            self._store.io.replace(self.root / MANIFEST_FILE, aside)
            self._store.recovery.try_log(file=f"{BACKUP_DIR}/{MANIFEST_FILE}", found=str(exc), action=f"set aside as {aside.name}")
            return []

    def _write_manifest(self, entries: list[BackupInfo]) -> None:
        manifest = _Manifest(backups=sorted(entries, key=lambda e: (e.time, e.id)))
        data = json.dumps(manifest.model_dump(mode="json"), indent=1).encode() + b"\n"
        self._store.io.write_file_atomic(self.root / MANIFEST_FILE, [data])

    def _prune(self, entry: BackupInfo) -> None:
        try:
            self._store.io.unlink(self._store.local_dir / entry.file)
        except FileNotFoundError:
            pass
        self._store.recovery.try_log(
            file=entry.file, found=f"{entry.kind} backup of context {entry.context!r} from {entry.time}", action="backup pruned (retention)"
        )

    # ------------------------------------------------------------------ verify and restore

    def _resolve(self, backup_id: str, context: str | None) -> list[BackupInfo]:
        entries = self._read_manifest()
        chosen = [e for e in entries if e.id == backup_id] or [e for e in entries if e.group == backup_id]
        if context is not None:
            chosen = [e for e in chosen if e.context == context]
        if not chosen:
            where = "" if context is None else f" for context {context!r}"
            raise BackupError(f"no backup {backup_id!r}{where}; list_backups() shows the ids and groups")
        return chosen

    def _verify_one(self, info: BackupInfo) -> VerifyResult:
        try:
            with self._opened(self._store.local_dir / info.file) as fd:
                problems = self._problems(info, fd)
        except OSError as exc:
            problems = [f"cannot read {info.file}: {exc.strerror or exc}"]
        if problems:
            log.warning("backup %s does not verify: %s", info.id, "; ".join(problems[:_MAX_LISTED_PROBLEMS]))
        return VerifyResult(id=info.id, ok=not problems, problems=problems)

    @contextmanager
    def _verified_fd(self, info: BackupInfo) -> Iterator[int]:
        """The backup file open (so pruning cannot take it away) and verified, or BackupError."""
        refused = f"restore of backup {info.id} refused, nothing was changed"
        io = self._store.io
        try:
            fd = io.open(self._store.local_dir / info.file, os.O_RDONLY)
        except FileNotFoundError:
            raise BackupError(f"{info.file} is missing: {refused}") from None
        try:
            problems = self._problems(info, fd)
            if problems:
                raise BackupError(f"the backup does not verify ({'; '.join(problems[:_MAX_LISTED_PROBLEMS])}): {refused}")
            yield fd
        finally:
            io.close(fd)

    def _problems(self, info: BackupInfo, fd: int) -> list[str]:
        scan = _scan(_read_all(self._store.io, fd), info.strict)
        return scan.problems + scan.mismatches(sha256=info.sha256, source_size=info.sourceSize, size=info.size, records=info.records)

    def _restore_one(self, info: BackupInfo, fd: int, result: RestoreResult) -> None:
        try:
            safety = self.backup_context(info.context, "restore")
            if safety is not None:
                result.safetyBackups.append(safety)
        except BackupError as exc:  # e.g. a damaged file: its exact bytes still go to history/
            result.problems.append(str(exc))
        journal = self._store.graph(info.context).journal
        history = journal.replace_with(_gunzip(_read_all(self._store.io, fd)), f"restore of backup {info.id}")
        if history is not None:
            result.history.append(history)
        result.restored.append(info)

    # ------------------------------------------------------------------ files and locks

    def _path(self, backup_id: str) -> Path:
        return self.root / (backup_id + SUFFIX)

    @contextmanager
    def _opened(self, path: Path) -> Iterator[int]:
        io = self._store.io
        fd = io.open(path, os.O_RDONLY)
        try:
            yield fd
        finally:
            io.close(fd)

    @contextmanager
    def _locked(self, name: str, timeout: float) -> Iterator[bool]:
        """This process's thread lock, then the cross-process lock; yields False if not taken in time."""
        thread_lock, file_lock = self._lock_pair(name, timeout)
        if not thread_lock.acquire(timeout=timeout):
            yield False
            return
        try:
            file_lock.acquire()
        except LockTimeout:
            thread_lock.release()
            if timeout:
                raise BackupError(f"the backup lock {name} stayed busy for {timeout:g} s") from None
            yield False
            return
        try:
            yield True
        finally:
            file_lock.release()
            thread_lock.release()

    def _lock_pair(self, name: str, timeout: float) -> tuple[threading.Lock, WriteLock]:
        with self._locks_guard:  # each lock name is always used with the same timeout
            pair = self._locks.get(name)
            if pair is None:
                pair = self._locks[name] = (threading.Lock(), WriteLock(self._store.path / LOCK_DIR / name, timeout))
            return pair


# ---------------------------------------------------------------------- periods and retention


def _periods(now: datetime) -> list[tuple[str, str]]:
    """``(kind, label)`` of the day and the ISO week ``now`` falls in (UTC)."""
    day = now.astimezone(timezone.utc).date()
    year, week, _ = day.isocalendar()
    return [(DAILY, day.isoformat()), (WEEKLY, f"{year}-W{week:02d}")]


def _unique_label(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + os.urandom(3).hex()


def _kind(reason: str) -> str:
    if not _REASON.fullmatch(reason):
        raise BackupError(f"invalid backup reason {reason!r}: use lowercase letters, digits and '-', like 'manual' or 'repair'")
    return MANUAL if reason == MANUAL else f"pre-{reason}"


def _backup_id(kind: str, stem: str, label: str) -> str:
    return f"{kind}/{stem}-{label}"


def _last_stamp(entries: list[BackupInfo], context: str, kind: str) -> tuple[int, int, int] | None:
    same = [e for e in entries if e.context == context and e.kind == kind]
    return max(same, key=lambda e: e.time).sourceStamp if same else None


def _retention(entries: list[BackupInfo], now: datetime, config: BackupConfig) -> tuple[list[BackupInfo], list[BackupInfo]]:
    """Split into (kept, dropped). Per context and kind, the last N are kept, and so is every
    backup of the last N days (weeks for weeklies): whichever keeps more. N is ``weeklyKeep``
    for weeklies, ``dailyKeep`` for dailies; pre-operation backups keep the last ``dailyKeep``
    (by count only); manual ones are all kept.
    As N >= 1, the newest backup of every context and kind is always kept."""
    keep: list[BackupInfo] = []
    drop: list[BackupInfo] = []
    groups: dict[tuple[str, str], list[BackupInfo]] = {}
    for entry in entries:
        groups.setdefault((entry.context, entry.kind), []).append(entry)
    for (_, kind), group in groups.items():
        group.sort(key=lambda e: e.time, reverse=True)
        for index, entry in enumerate(group):
            (keep if kind == MANUAL or _retained(entry, index, now, kind, config) else drop).append(entry)
    return keep, drop


def _retained(entry: BackupInfo, index: int, now: datetime, kind: str, config: BackupConfig) -> bool:
    taken, today = _day(entry.time), now.astimezone(timezone.utc).date()
    if kind == WEEKLY:
        return index < config.weeklyKeep or _monday(taken) > _monday(today) - timedelta(weeks=config.weeklyKeep)
    if kind == DAILY:
        return index < config.dailyKeep or taken > today - timedelta(days=config.dailyKeep)
    return index < config.dailyKeep  # pre-operation backups: a busy day must not pile them up


def _day(stamp: str) -> date:
    return datetime.fromisoformat(stamp).astimezone(timezone.utc).date()


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


# ---------------------------------------------------------------------- reading and checking backup files


class _Scan:
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
        for chunk in _hashed(compressed, self._digest):
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

    def mismatches(self, *, sha256: str, source_size: int, size: int | None = None, records: int | None = None) -> list[str]:
        expected = {"sha256": sha256, "size": size, "content size": source_size, "record count": records}
        found = {"sha256": self.sha256, "size": self.size, "content size": self.content_size, "record count": self.records}
        return [f"{what} is {found[what]}, expected {want}" for what, want in expected.items() if want is not None and found[what] != want]

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


def _scan(compressed: Iterable[bytes], strict: bool) -> _Scan:
    scan = _Scan(strict)
    try:
        for data in _gunzip(scan.count(compressed)):
            scan.feed(data)
        scan.finish()
    except BackupError as exc:
        scan.problems.append(str(exc))
    return scan


def _record_count(record: Record) -> int:
    members = record.get("records")
    return len(members) if record.get("type") == BATCH_TYPE and isinstance(members, list) else 1


def _hashed(chunks: Iterable[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def _read_all(io: FileIO, fd: int) -> Iterator[bytes]:
    pos = 0
    while chunk := io.pread(fd, _CHUNK, pos):
        pos += len(chunk)
        yield chunk


def _gunzip(compressed: Iterable[bytes]) -> Iterator[bytes]:
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
