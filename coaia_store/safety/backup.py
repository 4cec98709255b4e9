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

The manifest is only ever replaced atomically. An unreadable one (or one missing while backup files
exist) is reported with its fix, listing falls back to the backup files that verify, and the next
backup or repair rebuilds it from them: no backup is ever dropped from the list. Its entries name
only their own file in ``.backup/``; backup files are opened without following links or blocking.

Locks (in ``.coaia/.locks/``), always taken in this order, never the other way:
``backup-sweep`` (one automatic sweep at a time) -> a context's write lock (briefly) ->
``backup-manifest`` (manifest read-modify-write and pruning, never held while waiting for another).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import CoaiaError, os_errors_reported
from ..graph.config import BackupConfig
from ..graph.contexts import DEFAULT_CONTEXT, context_file, context_of_file
from ..storage.caller import check_write
from ..storage.clock import iso_timestamp
from ..storage.compaction import gzip_chunks
from ..storage.envelope import BATCH_TYPE
from ..storage.fileio import FileIO
from ..storage.lines import Record, decode_legacy_line, decode_line, is_header
from ..storage.locking import LOCK_DIR, LockTimeout, WriteLock
from ..storage.prefix import Prefix

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger(__name__)

BACKUP_DIR = ".backup"
MANIFEST_FILE = "MANIFEST.json"
SUFFIX = ".jsonl.gz"
DAILY, WEEKLY, MANUAL = "daily", "weekly", "manual"
_SWEEP_LOCK, _MANIFEST_LOCK = "backup-sweep.lock", "backup-manifest.lock"
_REASON = re.compile(r"[a-z][a-z0-9-]{0,31}")
_BACKUP_ID = re.compile(r"[a-z][a-z0-9-]{0,40}/[A-Za-z0-9_][A-Za-z0-9_.-]*")
_FILE_NAME = re.compile(r"(?P<stem>.+)-(?P<label>\d{4}-\d{2}-\d{2}|\d{4}-W\d{2}|\d{8}T\d{12}Z-[0-9a-f]{6})")
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

    @model_validator(mode="after")
    def _inside_backup_dir(self) -> BackupInfo:
        """An entry names only its own file in ``.backup/<kind>/``: never an absolute path, ``..`` or elsewhere."""
        if not _BACKUP_ID.fullmatch(self.id) or ".." in self.id or self.file != f"{BACKUP_DIR}/{self.id}{SUFFIX}":
            raise ValueError(f"backup {self.id!r} points outside {BACKUP_DIR}/ (file {self.file!r}): refused")
        return self


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
        # the manifest's stat stamp when last read, its problem (None: fine) and its entries
        self._manifest_checked: tuple[tuple[int, ...] | None, str | None, list[BackupInfo]] = (None, None, [])

    def after_write(self, context: str) -> None:
        """The journal's hook: the automatic backups, inline, or (``background=True``, the server's
        choice) in a worker thread so the call that happens to be the day's first returns at once."""
        if not self._background:
            self.maybe_take_automatic(context)
            return
        labels = tuple(label for _, label in _periods(self._store.clock()))
        if self._checked.get(context) == labels or (self._worker is not None and self._worker.is_alive()):
            return  # done already, or under way (a later write checks again)
        self._worker = threading.Thread(
            target=self.maybe_take_automatic, args=(context,), name="coaia-backup", daemon=True
        )
        self._worker.start()

    # ------------------------------------------------------------------ public API

    def maybe_take_automatic(self, context: str) -> list[BackupInfo]:
        """After a write to ``context``: take the day's and week's backups if not taken yet.

        Costs a dictionary lookup once this process has seen to today for ``context``.
        Never raises: a failure is logged, and the write that triggered it stands.
        """
        now = self._store.clock()
        today = now.astimezone(UTC).date()
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
        if reason == MANUAL:  # writes .backup/: a token that may not write the context may not back it up
            check_write(context or DEFAULT_CONTEXT)
        with os_errors_reported("the backup failed", "earlier backups and the data files are intact"):
            return self._backup_contexts([context or DEFAULT_CONTEXT], reason)[0]

    def backup_all(self, reason: str = MANUAL) -> list[BackupInfo]:
        """Back up every context now, as one group."""
        contexts = self._store.contexts()
        if reason == MANUAL:
            for context in contexts:
                check_write(context)
        with os_errors_reported("the backup failed", "earlier backups and the data files are intact"):
            return [info for info in self._backup_contexts(contexts, reason) if info is not None]

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
        """Recorded backups, oldest first, of one context or of all (see :meth:`listing`)."""
        return self.listing(context)[0]

    def listing(self, context: str | None = None) -> tuple[list[BackupInfo], str | None]:
        """Recorded backups, oldest first, and what is wrong with the manifest (``None``: nothing).

        With an unreadable manifest, the backups are the files in ``.backup/`` that verify, as
        ``doctor --fix`` (:meth:`repair_manifest`) records them: no backup is ever left unlisted."""
        try:
            entries, problem = self._read_manifest(), None
        except BackupError as exc:
            entries, problem = (
                self._from_disk(),
                (
                    f"{exc}; the backups listed are the files in {BACKUP_DIR}/ that verify. "
                    "Rebuild it: coaia-store doctor --fix (or the validate_integrity tool with repair: true)"
                ),
            )
        return sorted(
            (e for e in entries if context is None or e.context == context), key=lambda e: (e.time, e.id)
        ), problem

    def manifest_problem(self) -> str | None:
        """What is wrong with ``MANIFEST.json``, or ``None``: one stat while the file is unchanged."""
        return self._checked_manifest()[0]

    def loss_warning(self, context: str, path: Path, exists: bool) -> str | None:
        """For every tool reply: the context (its file at ``path``, which ``exists`` or not) lost what its newest
        backup holds (:meth:`shrunk`), or its file is gone though a backup holds it. Cheap: the manifest as last
        read, one stat of the file."""
        taken = [e for e in self._checked_manifest()[1] if e.context == context]
        if not taken:
            return None
        if not exists:
            return (
                f"context {context!r} has no file any more, but backup {taken[-1].id} holds it: restore it with "
                f"coaia-store restore {taken[-1].id}"
            )
        return self.shrunk(context, taken, path)

    def _checked_manifest(self) -> tuple[str | None, list[BackupInfo]]:
        try:
            st = self._store.io.stat(self.root / MANIFEST_FILE)
            stamp: tuple[int, ...] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            stamp = ()  # checked each time: backup files may appear
        except OSError as exc:
            return f"{BACKUP_DIR}/{MANIFEST_FILE} cannot be read ({exc.strerror}): check its permissions", []
        if self._manifest_checked[0] != stamp or not stamp:
            try:
                entries, problem = self._read_manifest(), None
            except BackupError as exc:
                entries, problem = [], f"{exc}: rebuild it from the backup files with coaia-store doctor --fix"
            entries.sort(key=lambda e: (e.time, e.id))
            self._manifest_checked = (stamp, problem, entries)
        return self._manifest_checked[1], self._manifest_checked[2]

    def shrunk(self, context: str, taken: list[BackupInfo] | None = None, path: Path | None = None) -> str | None:
        """Whether the context's file lost what its newest backup holds, with the restore command; ``None``: no sign.

        A coaia-store file only grows, or is replaced by a compaction or a restore (a compaction's header
        names the history file it saved; a restore brings back an older header). So a file that is empty,
        is shorter than the same file was when backed up, or was created afresh after that backup, lost
        data (in a git work tree only the first two: git replaces files on every checkout, merge and pull).
        ``taken``: the context's backups, oldest first (read from the manifest when omitted); ``path``:
        its file, if known. Files of other tools (no header) rewrite themselves and are not judged."""
        taken = self.list_backups(context) if taken is None else taken
        newest = taken[-1] if taken else None
        if newest is None or not newest.strict:
            return None
        path = path or context_file(self._store.path, context)
        try:
            st = self._store.io.stat(path)
        except FileNotFoundError:  # status reports a context whose file is gone
            return None
        if st.st_size == 0:
            what = "is empty"
        elif st.st_ino == newest.sourceStamp[0]:
            what = f"was cut to {st.st_size} bytes" if st.st_size < newest.sourceSize else ""
        elif self._store.git_tree is not None:  # git replaces files on checkout, merge and pull: no sign of a loss
            what = ""
        else:
            header = _header_of(self._store.io, path)
            created = _moment(header.get("createdAt")) if header is not None and "history" not in header else None
            taken_at = _moment(newest.time)
            what = "was created afresh" if created and taken_at and created > taken_at else ""
        return (
            (
                f"{path.name} {what}, but backup {newest.id} ({newest.time}) holds {newest.records} records "
                f"({newest.sourceSize} bytes) of it: restore it with coaia-store restore {newest.id}; or, to keep the "
                f"file as it is, take a backup of it: coaia-store backup --context {context}"
            )
            if what
            else None
        )

    def repair_manifest(self) -> str | None:
        """Rebuild an unreadable manifest from the backup files that verify (the damaged one is kept beside
        it), or add to a readable one the backup files it does not list that verify (a backup killed after
        writing its file); what was done, or ``None`` when there was nothing to do."""
        with self._locked(_MANIFEST_LOCK, timeout=self._store.config.lockTimeoutSeconds):
            try:
                entries = self._read_manifest()
            except BackupError as exc:
                entries, aside = self._rebuilt(exc)
                self._write_manifest(entries)
                return (
                    f"rebuilt {BACKUP_DIR}/{MANIFEST_FILE} from {len(entries)} backup file(s) that verify "
                    f"(the damaged one is kept as {aside})"
                )
            listed = {e.file for e in entries}
            adopted = self._from_disk(for_update=True, leave_out=listed)
            if not adopted:
                return None
            self._write_manifest(entries + adopted)
        return (
            f"listed {len(adopted)} backup file(s) that verify but were not in {BACKUP_DIR}/{MANIFEST_FILE}: "
            + ", ".join(e.id for e in adopted)
        )

    def verify(self, backup_id: str | None = None) -> list[VerifyResult]:
        """Check a backup (an id or a group id; ``None``: all) against its manifest entry."""
        chosen = self.list_backups() if backup_id is None else self._resolve(backup_id, None)
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
            for info, fd in zip(chosen, fds, strict=False):
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
            entries = self.list_backups()
            taken: list[BackupInfo] = []
            for context in self._store.contexts():
                taken += self._take_due(context, entries, now)
                self._checked[context] = labels
            return taken

    def _take_due(self, context: str, entries: list[BackupInfo], now: datetime) -> list[BackupInfo]:
        """The periodic backups ``context`` lacks, for those periods it changed in. Never raises."""
        stem = context_file(self._store.path, context).stem
        lost = self.shrunk(context, [e for e in entries if e.context == context])
        if lost:  # an automatic backup would accept the loss, and retention would prune the backup holding the data
            log.warning("automatic backup of context %r skipped: %s", context, lost)
            return []
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
        """Copy ``prefix`` to a backup file, verify it, record it, prune; raise BackupError if it does not verify.
        A backup that fails leaves behind no file that the manifest does not list."""
        io = self._store.io
        source = context_file(self._store.path, context)
        backup_id = _backup_id(kind, source.stem, label)
        target = self._path(backup_id)
        io.ensure_dir(target.parent)
        digest = hashlib.sha256()
        try:
            io.write_file_atomic(target, _hashed(gzip_chunks(io, prefix.fd, prefix.size), digest))
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
        except BaseException:
            self._discard_unless_listed(target, backup_id)
            raise
        return info

    def _discard_unless_listed(self, target: Path, backup_id: str) -> None:
        """After a failed backup: remove its file, unless the manifest lists it (a failure after the manifest's rename)."""
        try:
            if any(e.id == backup_id for e in self._read_manifest()):
                return
        except BackupError:
            pass
        try:
            self._store.io.unlink(target)
        except OSError:
            pass

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
                    file=str(tmp.relative_to(self._store.local_dir)),
                    found="temp file left by an interrupted backup",
                    action="removed",
                )

    # ------------------------------------------------------------------ manifest and retention

    def _read_manifest(self, recording: Path | None = None) -> list[BackupInfo]:
        """The manifest's entries; BackupError if it is unreadable, or missing while backup files (other
        than ``recording``, the first one being recorded) are in ``.backup/``."""
        path = self.root / MANIFEST_FILE
        try:
            with self._opened(path) as fd:
                data = b"".join(_read_all(self._store.io, fd))
        except FileNotFoundError:
            if any(found != recording for found in self.root.glob("*/*" + SUFFIX)):
                raise BackupError(
                    f"{BACKUP_DIR}/{MANIFEST_FILE} is missing, but backup files are in {BACKUP_DIR}/"
                ) from None
            return []
        except (OSError, BackupError) as exc:
            raise BackupError(
                f"{BACKUP_DIR}/{MANIFEST_FILE} is unreadable ({getattr(exc, 'strerror', None) or exc})"
            ) from exc
        try:
            return _Manifest.model_validate_json(data).backups
        except ValidationError as exc:
            first = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise BackupError(
                f"{BACKUP_DIR}/{MANIFEST_FILE} is unreadable ({first}; {exc.error_count()} problem(s))"
            ) from exc

    def _from_disk(
        self, *, for_update: bool = False, leave_out: frozenset[str] | set[str] = frozenset()
    ) -> list[BackupInfo]:
        """An entry for each backup file in ``.backup/<kind>/`` that verifies (links and odd files are skipped),
        but those named in ``leave_out`` (paths relative to the store). ``for_update``: a file that cannot be
        read (an I/O error) raises instead of being left out, as the manifest written from this list would
        orphan it."""
        if not self.root.is_dir() or self.root.is_symlink():
            return []
        found: list[BackupInfo] = []
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir() and not folder.is_symlink():
                paths = [
                    p
                    for p in sorted(folder.glob("*" + SUFFIX))
                    if str(p.relative_to(self._store.local_dir)) not in leave_out
                ]
                found += [e for p in paths if (e := self._entry_of_file(p, for_update))]
        return found

    def _entry_of_file(self, path: Path, for_update: bool) -> BackupInfo | None:
        match = _FILE_NAME.fullmatch(path.name.removesuffix(SUFFIX))
        context = context_of_file(match["stem"] + ".jsonl") if match else None
        if match is None or context is None:
            return None
        io = self._store.io
        try:
            with self._opened(path) as fd:
                content = b"".join(_gunzip(_read_all(io, fd)))
                strict = _starts_with_header(content)
                scan, mtime = _scan(_read_all(io, fd), strict), io.fstat(fd).st_mtime
        except OSError as exc:
            if for_update:
                raise
            log.warning("backup file %s left out: %s", path.name, exc)
            return None
        except BackupError as exc:  # a link, an odd file, damaged gzip data: nothing a restore could use
            log.warning("backup file %s left out: %s", path.name, exc)
            return None
        if scan.problems:
            log.warning("backup file %s left out: it does not verify: %s", path.name, "; ".join(scan.problems[:3]))
            return None
        kind, label = path.parent.name, match["label"]
        return BackupInfo(
            id=f"{kind}/{path.name.removesuffix(SUFFIX)}",
            group=f"{kind}/{label}",
            context=context,
            kind=kind,
            file=str(path.relative_to(self._store.local_dir)),
            sha256=scan.sha256,
            size=scan.size,
            records=scan.records,
            lines=scan.lines,
            sourceFile=match["stem"] + ".jsonl",
            sourceSize=scan.content_size,
            sourceStamp=(0, 0, 0),
            strict=strict,
            time=iso_timestamp(datetime.fromtimestamp(mtime, UTC)),
        )

    def _rebuilt(self, problem: BackupError) -> tuple[list[BackupInfo], str]:
        """Under the manifest lock: set the unreadable manifest aside (kept, logged) and list the backup files."""
        aside = self.root / f"{MANIFEST_FILE}.unreadable-{_unique_label(self._store.clock())}"
        entries = self._from_disk(for_update=True)
        manifest = self.root / MANIFEST_FILE
        if manifest.is_symlink() or (manifest.exists() and not manifest.is_file()):
            self._store.io.replace(manifest, aside)  # a link, a folder, a FIFO: moved aside, never followed
        elif manifest.exists():  # a second name for the damaged file: the manifest is only ever replaced atomically
            self._store.io.link(manifest, aside)
        self._store.recovery.try_log(
            file=f"{BACKUP_DIR}/{MANIFEST_FILE}",
            found=str(problem),
            action=f"set aside as {aside.name}; rebuilt from {len(entries)} backup file(s) that verify",
        )
        return entries, aside.name

    def _record(self, info: BackupInfo, now: datetime) -> None:
        """Add ``info`` to the manifest, drop what retention no longer keeps, then delete those files."""
        with self._locked(_MANIFEST_LOCK, timeout=self._store.config.lockTimeoutSeconds):
            entries = [e for e in self._manifest_for_update(self._store.local_dir / info.file) if e.id != info.id] + [
                info
            ]
            keep, drop = _retention(entries, now, self._store.config.backup)
            self._write_manifest(keep)
            for entry in drop:
                self._prune(entry)

    def _manifest_for_update(self, recording: Path) -> list[BackupInfo]:
        """The manifest's entries; an unreadable manifest is set aside and rebuilt from the backup files."""
        try:
            return self._read_manifest(recording)
        except BackupError as exc:
            return self._rebuilt(exc)[0]

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
            file=entry.file,
            found=f"{entry.kind} backup of context {entry.context!r} from {entry.time}",
            action="backup pruned (retention)",
        )

    # ------------------------------------------------------------------ verify and restore

    def _resolve(self, backup_id: str, context: str | None) -> list[BackupInfo]:
        entries = self.list_backups()
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
        except (OSError, BackupError) as exc:
            problems = [f"cannot read {info.file}: {getattr(exc, 'strerror', None) or exc}"]
        if problems:
            log.warning("backup %s does not verify: %s", info.id, "; ".join(problems[:_MAX_LISTED_PROBLEMS]))
        return VerifyResult(id=info.id, ok=not problems, problems=problems)

    @contextmanager
    def _verified_fd(self, info: BackupInfo) -> Iterator[int]:
        """The backup file open (so pruning cannot take it away) and verified, or BackupError."""
        refused = f"restore of backup {info.id} refused, nothing was changed"
        io = self._store.io
        try:
            fd = self._open_regular(self._store.local_dir / info.file)
        except FileNotFoundError:
            raise BackupError(f"{info.file} is missing: {refused}") from None
        except BackupError as exc:
            raise BackupError(f"{exc}: {refused}") from None
        try:
            problems = self._problems(info, fd)
            if problems:
                raise BackupError(
                    f"the backup does not verify ({'; '.join(problems[:_MAX_LISTED_PROBLEMS])}): {refused}"
                )
            yield fd
        finally:
            io.close(fd)

    def _problems(self, info: BackupInfo, fd: int) -> list[str]:
        scan = _scan(_read_all(self._store.io, fd), info.strict)
        return scan.problems + scan.mismatches(
            sha256=info.sha256, source_size=info.sourceSize, size=info.size, records=info.records
        )

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
        fd = self._open_regular(path)
        try:
            yield fd
        finally:
            self._store.io.close(fd)

    def _open_regular(self, path: Path) -> int:
        """Open a file of ``.backup/`` to read; BackupError for a symbolic link (the file or its folders), which
        is never followed, or for anything but a regular file (a FIFO would block)."""
        name = path.relative_to(self._store.local_dir)
        if any(folder.is_symlink() for folder in (self.root, path.parent)):
            raise BackupError(f"a folder of {name} is a symbolic link: refused, not opened")
        io = self._store.io
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
    day = now.astimezone(UTC).date()
    year, week, _ = day.isocalendar()
    return [(DAILY, day.isoformat()), (WEEKLY, f"{year}-W{week:02d}")]


def _unique_label(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + os.urandom(3).hex()


def _kind(reason: str) -> str:
    if not _REASON.fullmatch(reason):
        raise BackupError(
            f"invalid backup reason {reason!r}: use lowercase letters, digits and '-', like 'manual' or 'repair'"
        )
    return MANUAL if reason == MANUAL else f"pre-{reason}"


def _backup_id(kind: str, stem: str, label: str) -> str:
    return f"{kind}/{stem}-{label}"


def _last_stamp(entries: list[BackupInfo], context: str, kind: str) -> tuple[int, int, int] | None:
    same = [e for e in entries if e.context == context and e.kind == kind]
    return max(same, key=lambda e: e.time).sourceStamp if same else None


def _retention(
    entries: list[BackupInfo], now: datetime, config: BackupConfig
) -> tuple[list[BackupInfo], list[BackupInfo]]:
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
    taken, today = _day(entry.time), now.astimezone(UTC).date()
    if kind == WEEKLY:
        return index < config.weeklyKeep or _monday(taken) > _monday(today) - timedelta(weeks=config.weeklyKeep)
    if kind == DAILY:
        return index < config.dailyKeep or taken > today - timedelta(days=config.dailyKeep)
    return index < config.dailyKeep  # pre-operation backups: a busy day must not pile them up


def _day(stamp: str) -> date:
    return datetime.fromisoformat(stamp).astimezone(UTC).date()


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


def _scan(compressed: Iterable[bytes], strict: bool) -> _Scan:
    scan = _Scan(strict)
    try:
        for data in _gunzip(scan.count(compressed)):
            scan.feed(data)
        scan.finish()
    except BackupError as exc:
        scan.problems.append(str(exc))
    return scan


def _header_of(io: FileIO, path: Path) -> Record | None:
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


def _moment(stamp: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _starts_with_header(content: bytes) -> bool:
    record, _ = decode_line(content.split(b"\n", 1)[0], strict=True)
    return record is not None and is_header(record)


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
