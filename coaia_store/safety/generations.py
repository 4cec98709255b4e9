"""A context's generations, read from its files without any lock: its saved old files in ``history/``, then its
live file.

A context's *generations* are its saved old files (``.coaia/history/<file stem>/<stamp>-<inode>.jsonl.gz``,
oldest first: the name starts with the moment the file was replaced) followed by the live file.
Generation ``i`` is the context's truth from ``start`` (the previous generation's end; the dawn of
time for the first) until ``end`` (its own history stamp; never, for the live file). Also here, for repair:
the state a file's bytes hold, and the newest history file that reads back whole.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import UnreadableFileError, os_errors_reported
from ..graph.contexts import context_file
from ..graph.state import GraphState, checked_kind
from ..storage.clock import parse_timestamp
from ..storage.compaction import HISTORY_DIR
from ..storage.envelope import unwrap
from ..storage.lines import Record, decode_legacy_line, decode_line, is_header
from ..storage.sink import InvalidRecord

if TYPE_CHECKING:
    from ..graph.graphstore import GraphStore

_READ_CHUNK = 1 << 20
_STAMP = re.compile(r"(\d{8}T\d{12}Z)-\d+\.jsonl\.gz")
OpKind = Literal["write", "undo", "import", "restore", "compaction"]


@dataclass
class Line:
    op: str | None
    time: datetime | None  # effective time (filled in once the generation is read)
    members: list[Record]
    carried: bool = False  # already true when its generation began: a line without an id, or an earlier generation's op
    by: str | None = None  # who wrote it (its '_by', when the server records it)


@dataclass
class Generation:
    name: str  # history file name, or the live file's name
    start: datetime | None  # None: the dawn of time
    end: datetime | None  # None: still live
    kind: OpKind  # how it began: "compaction" or "restore" (the first: "import")
    lines: list[Line]
    replaced: str = ""  # the history file the previous generation was saved as (names the boundary event)
    legacy: bool = False  # written by another tool (no coaia-store header)

    def base(self) -> list[Line]:
        """Lines already true when the generation began (a compaction's snapshot, a restored file)."""
        return [line for line in self.lines if line.carried]

    def rest(self, upto: datetime | None = None) -> list[Line]:
        """Operations first written in this generation, in time order, before its end and up to ``upto``."""
        new = [line for line in self.lines if not line.carried and line.time is not None]
        new.sort(key=lambda line: line.time)  # type: ignore[arg-type,return-value]
        return [
            line
            for line in new
            if (self.end is None or line.time < self.end) and (upto is None or line.time <= upto)  # type: ignore[operator]
        ]

    def covers(self, moment: datetime) -> bool:
        return (self.start is None or self.start <= moment) and (self.end is None or moment < self.end)


def _iter_raw_lines(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """``(line, terminated)`` for each line of the concatenated chunks."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        *complete, buf = buf.split(b"\n")
        for line in complete:
            yield line, True
    if buf:
        yield buf, False


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ_CHUNK):
            yield chunk


def _gunzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    inflater = zlib.decompressobj(31)
    try:
        for chunk in chunks:
            yield inflater.decompress(chunk)
        yield inflater.flush()
    except zlib.error:  # a damaged history file: keep what could be read
        return


def _decode_file(chunks: Iterable[bytes]) -> tuple[Record | None, list[Line]]:
    """The header (if any) and the readable lines of one generation; damaged lines are skipped."""
    header: Record | None = None
    strict = False
    lines: list[Line] = []
    for number, (data, terminated) in enumerate(_iter_raw_lines(chunks)):
        if number == 0:
            record, _ = decode_line(data, strict=True)
            if record is not None and is_header(record):
                header, strict = record, True
                continue
        if strict and not terminated:
            continue  # a torn tail: never acknowledged
        record, problem = decode_line(data, strict=True) if strict else decode_legacy_line(data)
        if record is None or problem is not None:
            continue
        members = unwrap(record)
        if not _valid(members):  # a batch without a list of records fails here, as on replay
            continue
        op, by = record.get("_op"), record.get("_by")
        lines.append(
            Line(
                op if isinstance(op, str) and op else None,
                parse_timestamp(record.get("_ts")),
                members,
                by=by if isinstance(by, str) else None,
            )
        )
    return header, lines


def _valid(members: list[Record]) -> bool:
    """Whether a replay would apply the line (the journal skips the whole line otherwise)."""
    try:
        for member in members:
            checked_kind(member)
    except InvalidRecord:
        return False
    return True


class HistoryFiles:
    """The generations of one context, read without any lock."""

    def __init__(self, store: GraphStore, context: str) -> None:
        why = store.graph(context).journal.unreadable()  # a link, a directory, a pipe (opening one would block)
        if why is not None:
            raise UnreadableFileError(why)
        self.context = context
        self.path = context_file(store.path, context)
        self.folder = store.path / HISTORY_DIR / self.path.stem

    def _segments(self) -> list[str]:
        try:
            names = [p.name for p in self.folder.iterdir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if _STAMP.fullmatch(n))

    def generations(self) -> list[Generation]:
        for _ in range(5):  # a compaction between listing and reading: read again
            before = self._segments()
            live = self._read_live()
            if self._segments() == before:
                break
        segments = [(name, self._read_segment(name)) for name in before]
        gens: list[Generation] = []
        start: datetime | None = None
        files: list[tuple[str, datetime | None, Record | None, list[Line]]] = [
            (name, _stamp_time(name), header, lines) for name, (header, lines) in segments
        ]
        if live is not None:
            files.append((self.path.name, None, *live[:2]))
        for index, (name, end, header, lines) in enumerate(files):
            kind: OpKind = "import" if index == 0 else _how_it_began(header, files[index - 1][0])
            gen = Generation(
                name,
                start if index else None,
                end,
                kind,
                lines,
                files[index - 1][0] if index else "",
                legacy=header is None,
            )
            _fill_times(gen, header, live[2] if live is not None and end is None else None)
            gens.append(gen)
            start = end
        _mark_carried(gens)
        if live is None and gens:
            gens.append(
                Generation(self.path.name, start, None, "restore", [], gens[-1].name)
            )  # the file is gone: empty since
        return gens

    def _read_live(self) -> tuple[Record | None, list[Line], datetime | None] | None:
        with os_errors_reported(f"could not read {self.path.name}", "retry; if it persists check the disk"):
            try:
                mtime = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
                header, lines = _decode_file(_file_chunks(self.path))
            except FileNotFoundError:
                return None
        return header, lines, mtime

    def _read_segment(self, name: str) -> tuple[Record | None, list[Line]]:
        try:
            return _decode_file(_gunzipped(_file_chunks(self.folder / name)))
        except FileNotFoundError:
            return None, []


def _mark_carried(gens: list[Generation]) -> None:
    seen: set[str] = set()
    for index, gen in enumerate(gens):
        for line in gen.lines:
            line.carried = index > 0 and (line.op is None or line.op in seen)
        seen.update(line.op for line in gen.lines if line.op is not None)


def _stamp_time(name: str) -> datetime:
    match = _STAMP.fullmatch(name)
    assert match is not None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def _how_it_began(header: Record | None, previous: str) -> OpKind:
    """A compaction names the history file it saved in its header; anything else replaced the file (a restore)."""
    saved = (header or {}).get("history")
    return "compaction" if isinstance(saved, str) and Path(saved).name == previous else "restore"


def _fill_times(gen: Generation, header: Record | None, mtime: datetime | None) -> None:
    """Lines without a time (other tools' lines) get one: see "Lines without a time" in docs/history.md."""
    if gen.start is not None:
        fallback = gen.start
    else:
        known = [line.time for line in gen.lines if line.time is not None]
        created = parse_timestamp((header or {}).get("createdAt"))
        fallback = created or (min(known) if known else None) or gen.end or mtime  # type: ignore[assignment]
    for line in gen.lines:
        if line.time is None:
            line.time = fallback


def replay(chunks: Iterable[bytes]) -> GraphState:
    """The state a file's bytes hold: its readable lines applied in file order, as the journal loads them."""
    state = GraphState()
    for line in _decode_file(chunks)[1]:
        state.apply_all(line.members)
    return state


def newest_verified_segment(store: GraphStore, context: str) -> tuple[str, GraphState] | None:
    """The newest history file of ``context`` that reads back whole (a complete gzip stream, every line
    intact) with the state at its end, its path relative to the store directory; ``None`` if none does."""
    source = HistoryFiles(store, context)
    for name in reversed(source._segments()):
        try:
            content = _whole_gzip((source.folder / name).read_bytes())
        except FileNotFoundError:
            continue
        if content is not None and _intact(content):
            return str((source.folder / name).relative_to(store.path)), replay([content])
    return None


def _whole_gzip(data: bytes) -> bytes | None:
    inflater = zlib.decompressobj(31)
    try:
        content = inflater.decompress(data) + inflater.flush()
    except zlib.error:
        return None
    return content if inflater.eof and not inflater.unused_data else None


def _intact(content: bytes) -> bool:
    """Every line decodes: checksums hold in a file with our header, which also ends every line."""
    *lines, rest = content.split(b"\n")
    first, _ = decode_line(lines[0], strict=True) if lines else (None, None)
    strict = first is not None and is_header(first)
    if rest and strict:
        return False
    return all(
        (decode_line(line, strict=True) if strict else decode_legacy_line(line))[1] is None
        for line in [*lines, *([rest] if rest else [])]
    )
