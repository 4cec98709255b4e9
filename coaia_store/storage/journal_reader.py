"""Reading a journal file: catching up with it, decoding its lines, and telling damage from a torn tail.

A complete line that cannot be read is damage wherever it is: reported, quarantined, skipped,
never cut. Only what a crash can leave is a torn tail: an unterminated last fragment, and lines
of nothing but NUL bytes that no good line follows. A file that is JSON but not JSONL is left
alone. The file only grows until it is replaced, and a replacement is a new inode, so a changed
inode (or changed bytes already read) means "read again from the start".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import StorageError, UnreadableFileError
from .envelope import BATCH_TYPE, unwrap
from .fileio import FileIO
from .filekind import kind_problem, open_regular
from .gcpause import gc_paused
from .lines import (
    FORMAT_VERSION,
    Record,
    decode_legacy_line,
    decode_line,
    is_header,
    json_document_values,
)
from .recovery import Recovery
from .sink import InvalidRecord, RecordSink
from .statecache import CachedState, StateCache

log = logging.getLogger(__name__)

_CHUNK = 4 << 20
_END_MARK = 32  # bytes before the end of what was read, re-checked when the file grows
_DOCUMENT_LIMIT = 64 << 20  # a larger non-JSONL file is recognised by its first line alone


@dataclass(frozen=True)
class Damage:
    offset: int
    length: int
    line: int
    problem: str


class JournalReader:
    """One journal file as read so far: its descriptors, how far it is read, and what was found.

    It holds the append descriptor too (the writer opens it): when the file is replaced both
    are closed together, so nothing is ever appended to a replaced inode.
    """

    def __init__(
        self,
        path: Path,
        *,
        sink: RecordSink,
        io: FileIO,
        recovery: Recovery,
        cache: StateCache,
        line_limit: int,
        cache_min_bytes: int,
    ) -> None:
        self.path = path
        self._sink = sink
        self._io = io
        self._recovery = recovery
        self._cache = cache
        self._line_limit = line_limit  # longer lines are damage, skipped without being held in memory
        self._cache_min_bytes = cache_min_bytes  # save the replayed state once this much more was replayed
        self.fd: int | None = None
        self.wfd: int | None = None
        self.ident: tuple[int, int] | None = None
        self.read_only: str | None = None  # why writes are refused (a newer format, a failed fsync)
        self._reset_position()

    def _reset_position(self) -> None:
        self._valid_end = 0  # offset just past the last consumed line
        self.scanned_size = 0  # file size at the last scan
        self.lines = 0  # complete lines consumed
        self.applied = 0  # records applied since the last reset
        self.strict = False
        self._undecided = False  # first line unreadable: strict or legacy is not known yet
        self.version: int | None = None
        self._header: bytes | None = None  # the header line as read, to notice a rewrite in place
        self.damage: list[Damage] = []
        self.tail: Damage | None = None
        self.restored = 0  # bytes taken from the state cache
        self._cache_end = 0  # bytes the newest state cache known to this journal covers
        self.open_line = False  # what was read ends with a whole record but no newline: the next write adds one
        self._sig: tuple[int, int, int] | None = None  # (size, mtime_ns, ctime_ns) when last read: unchanged if equal
        self._end_mark = b""  # the last bytes before _valid_end, to notice a rewrite of what was read
        self.unreadable: str | None = None
        self._format_checked = False  # whether the file was checked for being JSON but not JSONL

    # ----------------------------------------------------------------- descriptors

    def close_fds(self) -> None:
        fds = (self.fd, self.wfd)
        self.fd = self.wfd = None  # forgotten first: a descriptor is closed even when close() fails,
        self.ident = None  # and closing its number again could close another file's
        for fd in fds:
            if fd is not None:
                try:
                    self._io.close(fd)
                except OSError as exc:  # nothing to act on: writes were fsynced before
                    log.warning("%s: closing a descriptor failed: %s", self.path.name, exc)

    def first_line_is_a_record(self) -> bool:
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
            fd = open_regular(self._io, self.path, os.O_RDONLY)
        except UnreadableFileError:  # replaced since the lstat: the catch-up says how
            return False
        try:
            head = self._io.pread(fd, min(st.st_size, 64 << 10), 0)
        finally:
            self._io.close(fd)
        return decode_legacy_line(_first_line(head))[0] is not None

    # ----------------------------------------------------------------- catching up

    def catch_up(self) -> None:
        try:
            st = self._io.lstat(self.path)  # a link is not followed: it is reported, never read
        except FileNotFoundError:
            self._forget(None)
            return
        odd = kind_problem(self.path, st)
        if odd is not None:
            self._forget(odd)
            return
        if self.fd is None or (st.st_dev, st.st_ino) != self.ident or st.st_size < self._valid_end:
            reopen = True  # replaced, or cut into lines already read: start over
        elif signature(st) == self._sig and self.tail is None:
            # With a tail pending, an equal size proves nothing: another writer may have
            # cut that tail and appended lines of the same total length; rescan it.
            return
        elif st.st_size == self.scanned_size and self.tail is None:
            reopen = True  # same size, new mtime/ctime: rewritten in place (an editor saving over it)
        else:
            # Other tools rewrite the whole file in place (fs.writeFile: same inode), and only
            # coaia-store appends under our header: so a changed legacy file, or what was read
            # changed (header, last bytes), means the lines already read may be gone: start over.
            reopen = (not self.strict and st.st_size != self.scanned_size) or not self._read_part_intact()
        with gc_paused():
            if reopen:
                if not self._reopen():
                    return
                self._restore_cached_state()
            self._scan()
            self.maybe_save_cache()

    def _forget(self, unreadable: str | None) -> None:
        """The file is gone, or is not a regular file: hold nothing, and say why when it is unreadable."""
        if self.fd is not None or self.applied or self.unreadable != unreadable:
            self.close_fds()
            self._reset_position()
            self._sink.reset()
            if unreadable is not None:
                log.info("%s", unreadable)  # status reports it with what to do
        self.unreadable = unreadable

    def _read_part_intact(self) -> bool:
        """The header, the last bytes read, and the newline a whole unterminated record awaited, still there."""
        assert self.fd is not None
        if self._header is not None and self._io.pread(self.fd, len(self._header), 0) != self._header:
            return False
        mark = self._end_mark
        if mark and self._io.pread(self.fd, len(mark), self._valid_end - len(mark)) != mark:
            return False
        return not self.open_line or self._io.pread(self.fd, 1, self._valid_end) == b"\n"

    def _remember_end(self) -> None:
        assert self.fd is not None
        n = min(_END_MARK, self._valid_end)
        self._end_mark = self._io.pread(self.fd, n, self._valid_end - n) if n else b""

    def _reopen(self) -> bool:
        """Open the file afresh with empty state; ``False`` if it turned out unreadable."""
        self.close_fds()
        try:
            fd = open_regular(self._io, self.path, os.O_RDONLY)
        except UnreadableFileError as exc:
            self._forget(str(exc))
            return False
        except OSError as exc:
            raise StorageError(f"cannot read {self.path.name}: {exc.strerror}; check its permissions") from exc
        st = self._io.fstat(fd)
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)
        self._reset_position()
        self._sink.reset()
        return True

    # ----------------------------------------------------------------- the state cache

    def _restore_cached_state(self) -> None:
        """Take the state of the file's first bytes from the state cache, if it holds them."""
        assert self.fd is not None
        cached = self._cache.load(self.fd, self._io.fstat(self.fd).st_size)
        if cached is None:
            return
        try:
            self._sink.import_state(cached.sink_state)
        except (TypeError, ValueError) as exc:
            log.info("%s: state cache ignored (%s); replaying the file", self.path.name, exc)
            self._sink.reset()
            return
        self._valid_end = self.scanned_size = self.restored = self._cache_end = cached.covered
        self.lines, self.applied = cached.lines, cached.applied
        self.strict, self.version, self._header = True, cached.version, cached.header

    def maybe_save_cache(self) -> None:
        """After replaying enough new lines, save the state so the next process can skip them.

        Only a clean prefix is cached (our header, no damaged line): loading a damaged file
        must keep quarantining and reporting its damage."""
        replayed = self._valid_end - self._cache_end
        if replayed <= 0 or replayed < self._cache_min_bytes:
            return
        if not self.strict or self._undecided or self.damage or self.read_only or self._header is None:
            return
        if self.open_line:  # a cache ending without a newline would make the newline a bad line
            return
        assert self.fd is not None and self.version is not None
        state = CachedState(
            self._valid_end, self.lines, self.applied, self.version, self._header, self._sink.export_state()
        )
        self._cache.save(self.fd, state)
        self._cache_end = self._valid_end

    # ----------------------------------------------------------------- scanning

    def _scan(self) -> None:
        """Consume the complete lines between ``_valid_end`` and the end of the file.

        A complete line that cannot be read is damage wherever it is: reported, quarantined,
        skipped, never cut. Only what a crash can leave is a torn tail: an unterminated last
        fragment, and lines of nothing but NUL bytes (a file extended but not written before a
        power loss) that no good line follows. An unterminated last line holding a whole
        record (an editor removed the final newline) is read; the next write adds the newline.
        """
        assert self.fd is not None
        st = self._io.fstat(self.fd)
        size = st.st_size
        if not self._format_checked and self._valid_end == 0 and size and self._not_jsonl(size):
            self.scanned_size, self._sig, self.tail = size, signature(st), None
            return
        self._format_checked = True
        if self.open_line and size > self._valid_end:  # the newline it awaited (checked on catch-up)
            self._valid_end += 1
            self.open_line = False
        holes: list[Damage] = []  # NUL-only lines not (yet) followed by a good line
        line_no, line_end = self.lines, self._valid_end
        for start, end, data in _iter_lines(self._io, self.fd, self._valid_end, size, self._line_limit):
            line_no, line_end = line_no + 1, end
            record, problem = self._decode(start, data)
            if record is None and problem is None:  # blank line in a legacy file
                if not holes:
                    self._valid_end, self.lines = end, line_no
                continue
            if record is not None:
                problem = self._apply_line(record, start)
            if problem is not None and data is not None and not data.strip(b"\0"):
                holes.append(Damage(start, end - start, line_no, "NUL bytes"))
                continue
            self._register_all(holes)
            if problem is not None:
                self._register_damage(Damage(start, end - start, line_no, problem))
            self._valid_end, self.lines = end, line_no
        if size > line_end and self._accept_unterminated_line(line_end, size):
            self._register_all(holes)
            self._valid_end, self.lines, self.open_line = size, line_no + 1, True
        self._remember_end()
        self.scanned_size, self._sig, self.tail = size, signature(st), None  # set last: a failed scan is redone
        if size > self._valid_end:
            what = holes[0].problem if holes else "unterminated last line"
            self.tail = Damage(self._valid_end, size - self._valid_end, self.lines + 1, what)

    def _register_all(self, damages: list[Damage]) -> None:
        for damage in damages:
            self._register_damage(damage)
        damages.clear()

    def _not_jsonl(self, size: int) -> bool:
        """Whether the file is JSON but not JSONL (an array, pretty-printed JSON); then it is left alone."""
        assert self.fd is not None
        first = _first_line(self._io.pread(self.fd, min(size, 64 << 10), 0))
        if decode_legacy_line(first)[0] is not None:
            return False
        values = json_document_values(self._io.pread(self.fd, size, 0)) if size <= _DOCUMENT_LIMIT else None
        if values is None and first.strip() not in (b"[", b"{"):
            return False
        shape = "a JSON array" if first.startswith(b"[") else "JSON spread over several lines (pretty-printed)"
        self.unreadable = (
            f"{self.path.name} is not JSONL (one record per line): it holds {shape}. coaia-store reads nothing "
            f"from it and never changes it. What to do: move it out of .coaia/ (mv {self.path} ~/{self.path.stem}.json) "
            f"and bring its records back with coaia-store import ~/{self.path.stem}.json --context <this context>"
        )
        log.info("%s", self.unreadable)  # status reports it with what to do
        return True

    def _accept_unterminated_line(self, start: int, size: int) -> bool:
        """A whole record with no newline after it (other tools and editors end files so) is no torn tail."""
        assert self.fd is not None
        length = size - start
        if length > self._line_limit:
            return False
        record, problem = self._decode(start, self._io.pread(self.fd, length, start))
        return problem is None and (record is None or self._apply_line(record, start) is None)

    def _decode(self, start: int, data: bytes | None) -> tuple[Record | None, str | None]:
        if data is None:
            return None, f"line longer than {self._line_limit} bytes"
        if start == 0:
            return self._decode_first(data)
        if self._undecided:
            return self._decide_format(data)
        return decode_line(data, strict=True) if self.strict else decode_legacy_line(data)

    def _decode_first(self, data: bytes) -> tuple[Record | None, str | None]:
        """The first line: our header makes the file strict; a readable line without one, legacy."""
        record, problem = decode_line(data, strict=True)
        if record is not None and is_header(record):
            self.strict, self.version, self._header = True, _header_version(record), data + b"\n"
            if self.version > FORMAT_VERSION:
                self.read_only = (
                    f"{self.path.name} was written by a newer coaia-store (format version {self.version}; "
                    f"this build reads up to {FORMAT_VERSION}); it is open read-only: upgrade coaia-store to write it"
                )
            return None, None
        # A damaged first line may be a damaged header: stay strict (accept no unchecked line)
        # until a readable line decides; a readable first line without a header means a legacy file.
        legacy_record, legacy_problem = decode_legacy_line(data)
        if legacy_record is not None and is_header(legacy_record):  # our header, its checksum damaged
            legacy_record, legacy_problem = None, problem
        self.strict = self._undecided = legacy_problem is not None
        return legacy_record, legacy_problem

    def _decide_format(self, data: bytes) -> tuple[Record | None, str | None]:
        """After an unreadable first line, the first readable line decides: a checksum means a
        damaged header (strict file), none means a legacy file whose first line is bad."""
        record, problem = decode_legacy_line(data)
        if record is not None:
            self._undecided = False
            self.strict = decode_line(data, strict=True)[0] is not None
        return record, problem

    def _apply_line(self, record: Record, at: int) -> str | None:
        members = unwrap(record) if record.get("type") == BATCH_TYPE else [record]
        try:
            self._sink.apply_all(members, at)
        except InvalidRecord as exc:
            return str(exc)
        self.applied += len(members)
        return None

    def _register_damage(self, damage: Damage) -> None:
        self.damage.append(damage)
        log.warning("%s line %d is damaged (%s); skipped and quarantined", self.path.name, damage.line, damage.problem)
        assert self.fd is not None
        try:
            self._recovery.quarantine(
                self.path,
                self.fd,
                damage.offset,
                damage.length,
                f"line {damage.line}: {damage.problem}",
                "skipped on load",
            )
        except OSError as exc:  # a read-only directory must not stop reads
            log.warning("could not quarantine %s line %d: %s", self.path.name, damage.line, exc)

    def records_at(self, at: int) -> list[Record]:
        """The records of the complete line starting at ``at`` of the open file (none if it does not read back)."""
        if self.fd is None:
            return []
        data = b""
        while len(data) <= self._line_limit:
            chunk = self._io.pread(self.fd, 64 << 10, at + len(data))
            end = chunk.find(b"\n")
            if end >= 0 or not chunk:
                line = data + chunk[:end]
                record, _ = (
                    (decode_line(line, strict=True) if self.strict else decode_legacy_line(line))
                    if end >= 0
                    else (None, None)
                )
                return unwrap(record) if record is not None else []
            data += chunk
        return []

    # ----------------------------------------------------------------- what this process changed

    def appended(self, line: bytes, start: int, records: int, sig: tuple[int, int, int] | None) -> None:
        """This process appended ``line`` at ``start`` and applied its ``records``: take it as read."""
        self.applied += records
        self._valid_end = self.scanned_size = start + len(line)
        self.lines += 1
        self.open_line = False
        self._end_mark = line[-_END_MARK:] if len(line) >= _END_MARK else b""
        self._sig = sig

    def tail_removed(self, sig: tuple[int, int, int] | None) -> None:
        """This process cut off the torn tail: the file ends where the lines read end."""
        assert self.tail is not None
        self.scanned_size = self.tail.offset
        self._sig = sig
        self.tail = None

    def rewritten(self, header: bytes, live: int) -> int:
        """This process replaced the file with ``header`` and ``live`` records the sink holds: take it as
        read without reading it back. Returns the new file's size."""
        self.close_fds()
        fd = open_regular(self._io, self.path, os.O_RDONLY)
        st = self._io.fstat(fd)
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)
        self._valid_end = self.scanned_size = st.st_size
        self.lines, self.applied = live + 1, live
        self.strict, self.version, self.tail, self.damage = True, FORMAT_VERSION, None, []
        self._header = header
        self.restored = self._cache_end = 0
        self.open_line, self._sig = False, signature(st)
        self._remember_end()
        return st.st_size


def signature(st: os.stat_result) -> tuple[int, int, int]:
    """What changes whenever the file's bytes change: size, and modification and change times."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _first_line(head: bytes) -> bytes:
    """The first line that is not blank (a BOM and blank lines skipped), without its newline."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0]


def _header_version(record: Record) -> int:
    version = record.get("version")
    return version if isinstance(version, int) else FORMAT_VERSION + 1


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
