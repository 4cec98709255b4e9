"""Housekeeping: what a journal does besides appending (compaction, migration, removing temp files).

It runs after a write is acknowledged or before the next one, so its failure never fails a
write: it is logged to the recovery log, reported (``JournalInfo.housekeeping``) with what to
do, and retried at the first write after a backoff that doubles from 30 s up to 30 min.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from ..errors import CoaiaError
from .clock import Clock, iso_timestamp
from .compaction import HISTORY_DIR
from .fileio import FileIO
from .recovery import Recovery

log = logging.getLogger(__name__)

_BACKOFF = timedelta(seconds=30), timedelta(minutes=30)  # first and longest wait before a retry
_FAILED, _RECOVERED = "housekeeping failed", "housekeeping recovered"  # recovery-log actions
_FIXES = {
    errno.ENOSPC: "free space on the disk that holds .coaia/ (df -h .coaia)",
    errno.EDQUOT: "free space within your disk quota, or raise it",
    errno.EACCES: "make .coaia/ and .coaia/history/ writable by this user (chmod -R u+w .coaia)",
    errno.EPERM: "make .coaia/ and .coaia/history/ writable by this user (chmod -R u+w .coaia)",
    errno.EROFS: "remount the file system read-write",
    errno.ENOTDIR: ".coaia/history (or a folder in it) is not a directory: move it away (mv .coaia/history .coaia/history.bad)",
    errno.EIO: "the disk reported an I/O error: check it (dmesg, SMART) and copy .coaia/ somewhere safe",
}


class Housekeeping:
    """The housekeeping of one journal file: its last failure, and when it may be tried again."""

    def __init__(self, path: Path, *, io: FileIO, recovery: Recovery, wall: Clock) -> None:
        self.path = path
        self._io = io
        self._recovery = recovery
        self._wall = wall
        self.problem: str | None = None  # the last failed step, and what to do
        self._due: datetime | None = None  # no housekeeping before then (backoff after a failure)
        self._failures = 0
        self._temp_files_checked = False

    def run(self, what: str, step: Callable[[], None]) -> None:
        """Run a housekeeping ``step`` (under the write lock) unless a failed one waits for its backoff.

        A failure is logged and reported (:attr:`problem`), never raised.
        """
        if self._due is not None and self._wall() < self._due:
            return
        try:
            step()
        except (OSError, CoaiaError) as exc:
            first, longest = _BACKOFF
            self._due = self._wall() + min(first * 2**self._failures, longest)
            self._failures += 1
            self.problem = _problem(what, exc, self._due)
            log.error("%s: %s", self.path.name, self.problem)
            self._recovery.try_log(file=self.path.name, found=self.problem, action=_FAILED)
        else:
            if self.problem is not None:
                self._recovery.try_log(file=self.path.name, found=f"{what} succeeded", action=_RECOVERED)
            self.cleared()

    def cleared(self) -> None:
        """A step succeeded (a compaction that ran clears an earlier failure of any step)."""
        self.problem = self._due = None
        self._failures = 0

    def logged_failure(self) -> str | None:
        """A housekeeping failure another process (or an earlier run) logged and nothing has fixed since."""
        decisive = {_FAILED, _RECOVERED, "compacted", "replaced"}
        try:
            events = [
                e for e in self._recovery.entries() if e.get("file") == self.path.name and e.get("action") in decisive
            ]
        except OSError:
            return None
        last = events[-1] if events else None
        if last is None or last["action"] != _FAILED:
            return None
        return f"{last.get('found')} (logged at {last.get('time')})"

    def remove_temp_files_once(self) -> None:
        """Once per process, before its first write: remove temp files an interrupted write left."""
        if not self._temp_files_checked:
            self.run("removing temp files left by an interrupted write", self._remove_stale_temp_files)

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


def _problem(what: str, exc: BaseException, retry_at: datetime) -> str:
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
