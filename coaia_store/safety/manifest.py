"""``.backup/MANIFEST.json``: the record of every backup (id, group, sha256, size, records, source, kind, time).

The manifest is only ever replaced atomically. An unreadable one (or one missing while backup files
exist) is reported with its fix, listing falls back to the backup files that verify, and the next
backup or repair rebuilds it from them: no backup is ever dropped from the list. Its entries name
only their own file in ``.backup/``. Recording a backup applies the retention rule (:mod:`.retention`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from ..graph.contexts import context_of_file
from ..storage.clock import iso_timestamp
from .backupfiles import (
    BACKUP_DIR,
    SUFFIX,
    BackupError,
    BackupFolder,
    BackupInfo,
    gunzip,
    read_all,
    scan_file,
    starts_with_header,
)
from .backuplocks import MANIFEST_LOCK, BackupLocks
from .retention import retention, unique_label

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore

log = logging.getLogger(__name__)

MANIFEST_FILE = "MANIFEST.json"
_FILE_NAME = re.compile(r"(?P<stem>.+)-(?P<label>\d{4}-\d{2}-\d{2}|\d{4}-W\d{2}|\d{8}T\d{12}Z-[0-9a-f]{6})")


class _Manifest(BaseModel):
    format: str = "coaia-store-backups"
    version: int = 1
    backups: list[BackupInfo] = Field(default_factory=list)


class Manifest:
    """The manifest of one store's backups, read through a cache that one stat keeps fresh."""

    def __init__(self, graphs: GraphStore, folder: BackupFolder, locks: BackupLocks) -> None:
        self._graphs = graphs
        self._folder = folder
        self._locks = locks
        self.root = folder.root
        # the manifest's stat stamp when last read, its problem (None: fine) and its entries
        self._checked: tuple[tuple[int, ...] | None, str | None, list[BackupInfo]] = (None, None, [])

    def listing(self, context: str | None = None) -> tuple[list[BackupInfo], str | None]:
        """Recorded backups, oldest first, and what is wrong with the manifest (``None``: nothing).

        With an unreadable manifest, the backups are the files in ``.backup/`` that verify, as
        ``doctor --fix`` (:meth:`repair`) records them: no backup is ever left unlisted."""
        try:
            entries, problem = self.read(), None
        except BackupError as exc:
            entries, problem = (
                self.from_disk(),
                (
                    f"{exc}; the backups listed are the files in {BACKUP_DIR}/ that verify. "
                    "Rebuild it: coaia-store doctor --fix (or the validate_integrity tool with repair: true)"
                ),
            )
        return sorted(
            (e for e in entries if context is None or e.context == context), key=lambda e: (e.time, e.id)
        ), problem

    def checked(self) -> tuple[str | None, list[BackupInfo]]:
        """What is wrong with the manifest (``None``: nothing) and its entries, oldest first: one stat while unchanged."""
        try:
            st = self._graphs.io.stat(self.root / MANIFEST_FILE)
            stamp: tuple[int, ...] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            stamp = ()  # checked each time: backup files may appear
        except OSError as exc:
            return f"{BACKUP_DIR}/{MANIFEST_FILE} cannot be read ({exc.strerror}): check its permissions", []
        if self._checked[0] != stamp or not stamp:
            try:
                entries, problem = self.read(), None
            except BackupError as exc:
                entries, problem = [], f"{exc}: rebuild it from the backup files with coaia-store doctor --fix"
            entries.sort(key=lambda e: (e.time, e.id))
            self._checked = (stamp, problem, entries)
        return self._checked[1], self._checked[2]

    def repair(self) -> str | None:
        """Rebuild an unreadable manifest from the backup files that verify (the damaged one is kept beside
        it), or add to a readable one the backup files it does not list that verify (a backup killed after
        writing its file); what was done, or ``None`` when there was nothing to do."""
        with self._locks.locked(MANIFEST_LOCK, timeout=self._graphs.config.lockTimeoutSeconds):
            try:
                entries = self.read()
            except BackupError as exc:
                entries, aside = self._rebuilt(exc)
                self._write(entries)
                return (
                    f"rebuilt {BACKUP_DIR}/{MANIFEST_FILE} from {len(entries)} backup file(s) that verify "
                    f"(the damaged one is kept as {aside})"
                )
            listed = {e.file for e in entries}
            adopted = self.from_disk(for_update=True, leave_out=listed)
            if not adopted:
                return None
            self._write(entries + adopted)
        return (
            f"listed {len(adopted)} backup file(s) that verify but were not in {BACKUP_DIR}/{MANIFEST_FILE}: "
            + ", ".join(e.id for e in adopted)
        )

    def read(self, recording: Path | None = None) -> list[BackupInfo]:
        """The manifest's entries; BackupError if it is unreadable, or missing while backup files (other
        than ``recording``, the first one being recorded) are in ``.backup/``."""
        path = self.root / MANIFEST_FILE
        try:
            with self._folder.opened(path) as fd:
                data = b"".join(read_all(self._graphs.io, fd))
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

    def from_disk(
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
                    if str(p.relative_to(self._graphs.local_dir)) not in leave_out
                ]
                found += [e for p in paths if (e := self._entry_of_file(p, for_update))]
        return found

    def _entry_of_file(self, path: Path, for_update: bool) -> BackupInfo | None:
        match = _FILE_NAME.fullmatch(path.name.removesuffix(SUFFIX))
        context = context_of_file(match["stem"] + ".jsonl") if match else None
        if match is None or context is None:
            return None
        io = self._graphs.io
        try:
            with self._folder.opened(path) as fd:
                content = b"".join(gunzip(read_all(io, fd)))
                strict = starts_with_header(content)
                scan, mtime = scan_file(read_all(io, fd), strict), io.fstat(fd).st_mtime
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
            file=str(path.relative_to(self._graphs.local_dir)),
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
        aside = self.root / f"{MANIFEST_FILE}.unreadable-{unique_label(self._graphs.clock())}"
        entries = self.from_disk(for_update=True)
        manifest = self.root / MANIFEST_FILE
        if manifest.is_symlink() or (manifest.exists() and not manifest.is_file()):
            self._graphs.io.replace(manifest, aside)  # a link, a folder, a FIFO: moved aside, never followed
        elif manifest.exists():  # a second name for the damaged file: the manifest is only ever replaced atomically
            self._graphs.io.link(manifest, aside)
        self._graphs.recovery.try_log(
            file=f"{BACKUP_DIR}/{MANIFEST_FILE}",
            found=str(problem),
            action=f"set aside as {aside.name}; rebuilt from {len(entries)} backup file(s) that verify",
        )
        return entries, aside.name

    def record(self, info: BackupInfo, now: datetime) -> None:
        """Add ``info`` to the manifest, drop what retention no longer keeps, then delete those files."""
        with self._locks.locked(MANIFEST_LOCK, timeout=self._graphs.config.lockTimeoutSeconds):
            entries = [e for e in self._for_update(self._graphs.local_dir / info.file) if e.id != info.id] + [info]
            keep, drop = retention(entries, now, self._graphs.config.backup)
            self._write(keep)
            for entry in drop:
                self._prune(entry)

    def _for_update(self, recording: Path) -> list[BackupInfo]:
        """The manifest's entries; an unreadable manifest is set aside and rebuilt from the backup files."""
        try:
            return self.read(recording)
        except BackupError as exc:
            return self._rebuilt(exc)[0]

    def _write(self, entries: list[BackupInfo]) -> None:
        manifest = _Manifest(backups=sorted(entries, key=lambda e: (e.time, e.id)))
        data = json.dumps(manifest.model_dump(mode="json"), indent=1).encode() + b"\n"
        self._graphs.io.write_file_atomic(self.root / MANIFEST_FILE, [data])

    def _prune(self, entry: BackupInfo) -> None:
        try:
            self._graphs.io.unlink(self._graphs.local_dir / entry.file)
        except FileNotFoundError:
            pass
        self._graphs.recovery.try_log(
            file=entry.file,
            found=f"{entry.kind} backup of context {entry.context!r} from {entry.time}",
            action="backup pruned (retention)",
        )

    def discard_unless_listed(self, target: Path, backup_id: str) -> None:
        """After a failed backup: remove its file, unless the manifest lists it (a failure after the manifest's rename)."""
        try:
            if any(e.id == backup_id for e in self.read()):
                return
        except BackupError:
            pass
        try:
            self._graphs.io.unlink(target)
        except OSError:
            pass
