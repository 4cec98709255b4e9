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

The manifest is :mod:`.manifest`, the files :mod:`.backupfiles`, the locks :mod:`.backuplocks`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import BaseModel, Field

from ..errors import CoaiaError, os_errors_reported
from ..graph.contexts import DEFAULT_CONTEXT, context_file
from ..storage.caller import check_write
from ..storage.clock import iso_timestamp
from ..storage.compaction import gzip_chunks
from ..storage.lines import decode_line
from ..storage.prefix import Prefix
from .backupfiles import (
    BackupError,
    BackupFolder,
    BackupInfo,
    first_line,
    gunzip,
    hashed,
    header_of,
    moment,
    read_all,
    scan_file,
)
from .backuplocks import SWEEP_LOCK, BackupLocks
from .manifest import Manifest
from .retention import DAILY, MANUAL, WEEKLY, periods, unique_label

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore

log = logging.getLogger(__name__)

_REASON = re.compile(r"[a-z][a-z0-9-]{0,31}")
_STALE_TEMP_SECONDS = 3600  # a manual or pre-operation temp file older than this was left by a killed process
_MAX_LISTED_PROBLEMS = 5


class VerifyResult(BaseModel):
    id: str
    ok: bool
    problems: list[str] = Field(default_factory=list)


class RestoreResult(BaseModel):
    restored: list[BackupInfo] = Field(default_factory=list)
    safetyBackups: list[BackupInfo] = Field(default_factory=list)  # the state just before the restore
    history: list[str] = Field(default_factory=list)  # where the replaced files were copied
    problems: list[str] = Field(default_factory=list)


class Backups:
    """The backups of one store directory (``store.backups``)."""

    def __init__(self, store: GraphStore, *, background: bool = False) -> None:
        self._store = store
        self._folder = BackupFolder(store.io, store.local_dir)
        self._locks = BackupLocks(store.path)
        self._manifest = Manifest(store, self._folder, self._locks)
        self.root = self._folder.root
        self._checked: dict[str, tuple[str, ...]] = {}  # context -> period labels already seen to
        self._checked_day: dict[str, date] = {}  # context -> the UTC day those labels were confirmed on
        self._background = background
        self._worker: threading.Thread | None = None

    def after_write(self, context: str) -> None:
        """The journal's hook: the automatic backups, inline, or (``background=True``, the server's
        choice) in a worker thread so the call that happens to be the day's first returns at once."""
        if not self._background:
            self.maybe_take_automatic(context)
            return
        labels = tuple(label for _, label in periods(self._store.clock()))
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
        labels = tuple(label for _, label in periods(now))
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
            self._take(context, prefix, "pre-compaction", unique_label(now), now)
        except (OSError, CoaiaError) as exc:
            log.warning("backup before compacting context %r failed: %s", context, exc)

    def list_backups(self, context: str | None = None) -> list[BackupInfo]:
        """Recorded backups, oldest first, of one context or of all (see :meth:`listing`)."""
        return self.listing(context)[0]

    def listing(self, context: str | None = None) -> tuple[list[BackupInfo], str | None]:
        """Recorded backups, oldest first, and what is wrong with the manifest (``None``: nothing)."""
        return self._manifest.listing(context)

    def manifest_problem(self) -> str | None:
        """What is wrong with ``MANIFEST.json``, or ``None``: one stat while the file is unchanged."""
        return self._manifest.checked()[0]

    def loss_warning(self, context: str, path: Path, exists: bool) -> str | None:
        """For every tool reply: the context (its file at ``path``, which ``exists`` or not) lost what its newest
        backup holds (:meth:`shrunk`), or its file is gone though a backup holds it. Cheap: the manifest as last
        read, one stat of the file."""
        taken = [e for e in self._manifest.checked()[1] if e.context == context]
        if not taken:
            return None
        if not exists:
            return (
                f"context {context!r} has no file any more, but backup {taken[-1].id} holds it: restore it with "
                f"coaia-store restore {taken[-1].id}"
            )
        return self.shrunk(context, taken, path)

    def shrunk(self, context: str, taken: list[BackupInfo] | None = None, path: Path | None = None) -> str | None:
        """Whether the context's file lost what its newest backup holds, with the restore command; ``None``: no sign.

        A coaia-store file only grows, or is replaced by a compaction or a restore (a compaction's header
        names the history file it saved; a restore brings back an older header). So a file that is empty,
        is shorter than the same file was when backed up, or was created afresh after that backup, lost
        data (in a git work tree only the first two: git replaces files on every checkout, merge and pull).
        "The same file" is the same inode with the same header: a new file may get a freed inode number.
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
        elif st.st_ino == newest.sourceStamp[0] and (
            st.st_size >= newest.sourceSize or not self._another_generation(path, newest)
        ):
            what = f"was cut to {st.st_size} bytes" if st.st_size < newest.sourceSize else ""
        elif self._store.git_tree is not None:  # git replaces files on checkout, merge and pull: no sign of a loss
            what = ""
        else:
            header = header_of(self._store.io, path)
            created = moment(header.get("createdAt")) if header is not None and "history" not in header else None
            taken_at = moment(newest.time)
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

    def _another_generation(self, path: Path, backup: BackupInfo) -> bool:
        """Whether the file starts with another coaia-store header than the file backed up: a compaction or a
        git checkout wrote a new file since, which got the freed inode number of the old one (not a cut)."""
        header = header_of(self._store.io, path)
        if header is None:
            return False
        try:
            with self._folder.opened(self._store.local_dir / backup.file) as fd:
                backed_up, _ = decode_line(first_line(gunzip(read_all(self._store.io, fd))), strict=True)
        except (BackupError, OSError):  # the backup cannot tell: judge by the inode, as before
            return False
        return backed_up != header

    def repair_manifest(self) -> str | None:
        """Rebuild an unreadable manifest, or list the verified backup files it lacks (see :meth:`Manifest.repair`)."""
        return self._manifest.repair()

    def verify(self, backup_id: str | None = None) -> list[VerifyResult]:
        """Check a backup (an id or a group id; ``None``: all) against its manifest entry."""
        chosen = self.list_backups() if backup_id is None else self._resolve(backup_id, None)
        with os_errors_reported("verifying the backups failed", "earlier backups and the data files are intact"):
            return [self._verify_one(info) for info in chosen]

    def verified_content(self, info: BackupInfo) -> bytes:
        """The decompressed content of a backup that verifies against its manifest entry (for repair);
        BackupError if it does not."""
        with self._verified_fd(info) as fd:
            return b"".join(gunzip(read_all(self._store.io, fd)))

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
        self._locks.close()

    # ------------------------------------------------------------------ taking backups

    def _sweep(self, now: datetime, labels: tuple[str, ...]) -> list[BackupInfo]:
        with self._locks.locked(SWEEP_LOCK, timeout=0) as held:
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
        due = [(kind, label) for kind, label in periods(now) if _backup_id(kind, stem, label) not in ids]
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
        label = unique_label(now)
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
        target = self._folder.path(backup_id)
        io.ensure_dir(target.parent)
        digest = hashlib.sha256()
        try:
            io.write_file_atomic(target, hashed(gzip_chunks(io, prefix.fd, prefix.size), digest))
            with self._folder.opened(target) as fd:
                scan = scan_file(read_all(io, fd), prefix.strict)
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
            self._manifest.record(info, now)
        except BaseException:
            self._manifest.discard_unless_listed(target, backup_id)
            raise
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
                    file=str(tmp.relative_to(self._store.local_dir)),
                    found="temp file left by an interrupted backup",
                    action="removed",
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
            with self._folder.opened(self._store.local_dir / info.file) as fd:
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
            fd = self._folder.open_regular(self._store.local_dir / info.file)
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
        scan = scan_file(read_all(self._store.io, fd), info.strict)
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
        history = journal.replace_with(gunzip(read_all(self._store.io, fd)), f"restore of backup {info.id}")
        if history is not None:
            result.history.append(history)
        result.restored.append(info)


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
