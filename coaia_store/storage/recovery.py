"""The recovery area ``.coaia/.recovery/``: quarantined bytes and the daily recovery log.

Nothing the engine removes from, or skips in, a data file is thrown away: its exact bytes
are copied to ``.recovery/quarantine/`` (durably, before any truncation) and the event is
appended to ``.recovery/recovery-YYYY-MM-DD.log`` as one JSON line.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from .clock import Clock, iso_timestamp
from .fileio import FileIO

log = logging.getLogger(__name__)

RECOVERY_DIR = ".recovery"
_CHUNK = 1 << 20


class Recovery:
    def __init__(self, store_dir: Path, io: FileIO, clock: Clock) -> None:
        self.root = store_dir / RECOVERY_DIR
        self.quarantine_dir = self.root / "quarantine"
        self._store_dir = store_dir
        self._io = io
        self._clock = clock

    def quarantine(self, source: Path, fd: int, offset: int, length: int, found: str, action: str) -> Path | None:
        """Copy ``length`` bytes at ``offset`` of ``fd`` into quarantine and log it.

        Returns the quarantine file, or ``None`` when these exact bytes at this offset were
        quarantined and logged before (by this process or another), so nothing is logged twice.
        Raises ``OSError`` when the copy cannot be made durable.
        """
        self._io.ensure_dir(self.quarantine_dir)
        tmp = self.quarantine_dir / f".{source.name}.{os.getpid()}.{offset}.tmp"
        digest = self._copy_range(fd, offset, length, tmp)
        final = self.quarantine_dir / f"{source.name}.{offset}-{offset + length}.{digest[:12]}.bin"
        saved_to = str(final.relative_to(self._store_dir))
        try:
            self._io.link(tmp, final)
        except FileExistsError:
            # Copied before; but if logging it failed then, the event must be logged now.
            if any(e.get("savedTo") == saved_to and e.get("action") == action for e in self.entries()):
                return None
        finally:
            self._io.unlink(tmp)
        self._io.fsync_dir(self.quarantine_dir)
        self.log(
            file=source.name,
            range=[offset, offset + length],
            found=found,
            action=action,
            savedTo=saved_to,
            sha256=digest,
        )
        return final

    def log(self, **entry: Any) -> None:
        """Append one event to today's recovery log and fsync it."""
        now = self._clock()
        record = {"time": iso_timestamp(now), **entry}
        self._io.ensure_dir(self.root)
        path = self.root / f"recovery-{now.strftime('%Y-%m-%d')}.log"
        created = not path.exists()
        fd = self._io.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            line = json.dumps(record, ensure_ascii=True).encode() + b"\n"
            end = self._io.fstat(fd).st_size
            if end and self._io.pread(fd, 1, end - 1) != b"\n":
                line = b"\n" + line  # a half-written entry (crash, full disk) must not swallow this one
            self._io.write_all(fd, line)
            self._io.fsync(fd)
        finally:
            self._io.close(fd)
        if created:
            self._io.fsync_dir(self.root)

    def try_log(self, **entry: Any) -> None:
        """Like :meth:`log` for events that must not fail the caller (a read-only directory)."""
        try:
            self.log(**entry)
        except OSError as exc:
            log.warning("could not write the recovery log in %s: %s", self.root, exc)

    def entries(self) -> list[dict[str, Any]]:
        """Every logged event, oldest first (for status reports and tests)."""
        if not self.root.is_dir():
            return []
        events: list[dict[str, Any]] = []
        for name in sorted(n for n in os.listdir(self.root) if n.startswith("recovery-") and n.endswith(".log")):
            for line in (self.root / name).read_bytes().splitlines():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def abandoned_temp_files(self, source: Path) -> list[Path]:
        """Quarantine copies of ``source`` begun by processes that have since died.

        Readers quarantine without the write lock, so only a dead process's copy is abandoned.
        """
        if not self.quarantine_dir.is_dir():
            return []
        prefix = f".{source.name}."
        found = []
        for tmp in self.quarantine_dir.glob(f"{prefix}*.tmp"):
            pid = tmp.name[len(prefix) :].split(".", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                found.append(tmp)
        return found

    def _copy_range(self, fd: int, offset: int, length: int, tmp: Path) -> str:
        digest = hashlib.sha256()
        out = self._io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            done = 0
            while done < length:
                chunk = self._io.pread(fd, min(_CHUNK, length - done), offset + done)
                if not chunk:
                    raise OSError(errno.EIO, f"{length - done} bytes vanished while quarantining")
                digest.update(chunk)
                self._io.write_all(out, chunk)
                done += len(chunk)
            self._io.fsync(out)
        except BaseException:
            self._io.close(out)
            self._io.unlink(tmp)
            raise
        self._io.close(out)
        return digest.hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
