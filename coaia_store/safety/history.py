"""History and time travel: every past state of a context, replayed from its live file and ``history/``.

A context's *generations* are its saved old files (``.coaia/history/<file stem>/<stamp>-<inode>.jsonl.gz``,
oldest first: the name starts with the moment the file was replaced) followed by the live file.
Generation ``i`` is the context's truth from ``start`` (the previous generation's end; the dawn of
time for the first) until ``end`` (its own history stamp; never, for the live file). The state at
time ``T`` is found in the generation whose interval holds ``T``, by replaying its lines whose time
is at most ``T`` (the rule, with its edge cases, is written down in ``docs/history.md``).

Everything here only reads files (no lock, no writes), except :meth:`History.undo`, which appends
one new operation through the journal, never rewriting history.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from ..errors import InvalidInputError, NotFoundError, UnreadableFileError, os_errors_reported
from ..graph.contexts import DEFAULT_CONTEXT, context_file, validate_context_name
from ..graph.paging import PAGE_BUDGET, Pager, bounded_page
from ..graph.state import RECORD_META_KEYS, GraphState, checked_kind, entity_view, relation_key
from ..models import Conflict, Entity, check_date_range
from ..storage.clock import iso_timestamp, parse_timestamp
from ..storage.compaction import HISTORY_DIR
from ..storage.envelope import BATCH_TYPE, ENVELOPE_KEYS
from ..storage.lines import Record, decode_legacy_line, decode_line, is_header
from ..storage.sink import InvalidRecord

if TYPE_CHECKING:
    from ..store import Store

R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)
UNDO_TYPE = "_undo"  # marker record written with an undo: which operations it reverts (kept as an extra)
_READ_CHUNK = 1 << 20
_STAMP = re.compile(r"(\d{8}T\d{12}Z)-\d+\.jsonl\.gz")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_END_OF_DAY = time(23, 59, 59, 999999, tzinfo=UTC)
MAX_PAGE = 500  # most events or operations one page holds (PAGE_BUDGET may stop it earlier)

Key = tuple[str, ...]  # ("e", name) or ("r", from, relationType, to)
OpKind = Literal["write", "undo", "import", "restore", "compaction"]


# ----------------------------------------------------------------- result models


class Operation(BaseModel):
    id: str = Field(
        description="The operation id (the '_op' of its records; 'restore:<file>' for a restore): what undo takes."
    )
    context: str = Field(description="The context it wrote (a move: the one it moved to).")
    contexts: list[str] = Field(description="Every context it wrote: two for a chart move or archive.")
    time: str | None = Field(description="When it was written (ISO, UTC).")
    kind: OpKind
    action: str = Field(
        description="The kind of call, read from what it changed: 'create chart', 'complete step', "
        "'move chart', 'create entities'..."
    )
    summary: str = Field(description="What it did, in one line.")
    charts: list[str] = Field([], description="The charts it touched (their ids; the first 20).")
    entities: list[str] = Field(
        description="Other entities (not part of a chart) it created, changed or deleted (the first 20)."
    )
    entityCount: int = Field(0, description="How many entities it touched in all, those of its charts included.")
    relations: int = Field(description="How many relations it added or removed.")
    undoes: list[str] = Field([], description="For an undo: the operations it reverted.")
    by: str | None = Field(None, description="Who made it: the name of the HTTP token used (None when unknown).")


class OperationList(BaseModel):
    context: str | None = Field(description="The context listed; None: every context.")
    operations: list[Operation] = Field(description="Newest first.")
    total: int = Field(description="Operations in the context (or the store) in all.")
    nextCursor: str | None = Field(None, description="Pass it back as cursor for the next (older) page.")
    note: str | None = Field(None, description="What this page left out, and how to get it.")


class EntityVersion(BaseModel):
    context: str
    time: str | None
    opId: str
    opKind: OpKind
    by: str | None = Field(None, description="Who made it: the name of the HTTP token used (None when unknown).")
    action: Literal["created", "updated", "deleted"]
    entity: Entity | None = Field(description="The entity as this operation left it; None once deleted.")


class EntityHistory(BaseModel):
    name: str
    versions: list[EntityVersion] = Field(description="Oldest first.")
    total: int = Field(0, description="Versions in all.")
    nextCursor: str | None = Field(None, description="Pass it back as cursor for the next (later) versions.")
    note: str | None = Field(None, description="What this page left out, and how to get it.")


ChartEventKind = Literal[
    "chart_created",
    "chart_removed",
    "chart_completed",
    "chart_reopened",
    "due_moved",
    "outcome_changed",
    "reality_added",
    "reality_removed",
    "step_added",
    "step_removed",
    "step_completed",
    "step_reopened",
    "step_due_moved",
    "step_renamed",
    "step_note",
    "step_telescoped",
    "chart_moved",
]


class ChartEvent(BaseModel):
    time: str | None
    context: str
    opId: str
    opKind: OpKind
    kind: ChartEventKind
    entity: str = Field(description="The entity that changed (the chart, its reality, an action step...).")
    text: str | None = Field(
        None, description="What was added or the new title/outcome; the sub-chart id for step_telescoped."
    )
    previous: str | None = Field(None, description="The value before (a due date, a title).")
    value: str | None = Field(None, description="The value after (a due date, a title).")
    fromContext: str | None = Field(None, description="chart_moved: the context the chart left.")
    toContext: str | None = Field(None, description="chart_moved: the context it went to ('completed': archived).")
    by: str | None = Field(None, description="Who made it: the name of the HTTP token used (None when unknown).")


class ChartHistory(BaseModel):
    chartId: str
    events: list[ChartEvent] = Field(description="Oldest first.")
    total: int = Field(0, description="Events in the chart's history in all.")
    nextCursor: str | None = Field(None, description="Pass it back as cursor for the next (later) events.")
    note: str | None = Field(None, description="What this page left out, and how to get it.")
    conflicts: list[Conflict] = Field(
        [],
        description="Fields of this chart two clones changed without seeing each "
        "other's change (git merges): both values, who and when.",
    )


class UndoResult(BaseModel):
    context: str = Field(description="The context it wrote (the first, when the operation spanned several).")
    contexts: list[str] = Field([], description="Every context the undo wrote.")
    opId: str | None = Field(
        description="The id of the new operation that reverted them (None if nothing had to change)."
    )
    undone: list[Operation] = Field(description="The operations reverted, newest first.")
    summary: str = Field("", description="What was undone, in one line.")
    entities: list[str] = Field(description="Entities the undo created, changed or deleted.")
    relations: int = Field(description="Relations the undo added or removed.")


# ----------------------------------------------------------------- times


def parse_as_of(text: str) -> datetime:
    """An ``asOf`` value: a date-time with timezone, or a date (meaning the end of that day, UTC)."""
    if not isinstance(text, str):
        raise InvalidInputError(f"asOf must be text, an ISO date-time with timezone (got {type(text).__name__})")
    value = text.strip()
    try:
        if _DATE_ONLY.fullmatch(value):
            moment = datetime.combine(date.fromisoformat(value), _END_OF_DAY)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInputError(
            f"invalid asOf {text!r}: give an ISO date-time with a timezone ('2026-03-31T17:00:00Z', "
            "'2026-03-31T19:00:00+02:00') or a date ('2026-03-31', meaning the end of that day, UTC)"
        )
    try:
        check_date_range(moment, text)
    except ValueError as exc:
        raise InvalidInputError(f"invalid asOf: {exc}") from None
    return moment.astimezone(UTC)


def _show(moment: datetime | None) -> str | None:
    return None if moment is None else iso_timestamp(moment)


# ----------------------------------------------------------------- reading generations


@dataclass
class _Line:
    op: str | None
    time: datetime | None  # effective time (filled in once the generation is read)
    members: list[Record]
    carried: bool = False  # already true when its generation began: a line without an id, or an earlier generation's op
    by: str | None = None  # who wrote it (its '_by', when the server records it)


@dataclass
class _Generation:
    name: str  # history file name, or the live file's name
    start: datetime | None  # None: the dawn of time
    end: datetime | None  # None: still live
    kind: OpKind  # how it began: "compaction" or "restore" (the first: "import")
    lines: list[_Line]
    replaced: str = ""  # the history file the previous generation was saved as (names the boundary event)
    legacy: bool = False  # written by another tool (no coaia-store header)

    def base(self) -> list[_Line]:
        """Lines already true when the generation began (a compaction's snapshot, a restored file)."""
        return [line for line in self.lines if line.carried]

    def rest(self, upto: datetime | None = None) -> list[_Line]:
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


def _decode_file(chunks: Iterable[bytes]) -> tuple[Record | None, list[_Line]]:
    """The header (if any) and the readable lines of one generation; damaged lines are skipped."""
    header: Record | None = None
    strict = False
    lines: list[_Line] = []
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
        members = _unwrap(record)
        if members is None or not _valid(members):
            continue
        op, by = record.get("_op"), record.get("_by")
        lines.append(
            _Line(
                op if isinstance(op, str) and op else None,
                parse_timestamp(record.get("_ts")),
                members,
                by=by if isinstance(by, str) else None,
            )
        )
    return header, lines


def _unwrap(record: Record) -> list[Record] | None:
    if record.get("type") != BATCH_TYPE:
        return [record]
    members = record.get("records")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        return None
    stamp = {k: record[k] for k in ENVELOPE_KEYS if k in record}
    return [{**m, **stamp} for m in members]


def _valid(members: list[Record]) -> bool:
    """Whether a replay would apply the line (the journal skips the whole line otherwise)."""
    try:
        for member in members:
            checked_kind(member)
    except InvalidRecord:
        return False
    return True


class _Source:
    """The generations of one context, read without any lock."""

    def __init__(self, store: Store, context: str) -> None:
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

    def generations(self) -> list[_Generation]:
        for _ in range(5):  # a compaction between listing and reading: read again
            before = self._segments()
            live = self._read_live()
            if self._segments() == before:
                break
        segments = [(name, self._read_segment(name)) for name in before]
        gens: list[_Generation] = []
        start: datetime | None = None
        files: list[tuple[str, datetime | None, Record | None, list[_Line]]] = [
            (name, _stamp_time(name), header, lines) for name, (header, lines) in segments
        ]
        if live is not None:
            files.append((self.path.name, None, *live[:2]))
        for index, (name, end, header, lines) in enumerate(files):
            kind: OpKind = "import" if index == 0 else _how_it_began(header, files[index - 1][0])
            gen = _Generation(
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
                _Generation(self.path.name, start, None, "restore", [], gens[-1].name)
            )  # the file is gone: empty since
        return gens

    def _read_live(self) -> tuple[Record | None, list[_Line], datetime | None] | None:
        with os_errors_reported(f"could not read {self.path.name}", "retry; if it persists check the disk"):
            try:
                mtime = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
                header, lines = _decode_file(_file_chunks(self.path))
            except FileNotFoundError:
                return None
        return header, lines, mtime

    def _read_segment(self, name: str) -> tuple[Record | None, list[_Line]]:
        try:
            return _decode_file(_gunzipped(_file_chunks(self.folder / name)))
        except FileNotFoundError:
            return None, []


def _mark_carried(gens: list[_Generation]) -> None:
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


def _fill_times(gen: _Generation, header: Record | None, mtime: datetime | None) -> None:
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


# ----------------------------------------------------------------- replay and the timeline


@dataclass
class _Event:
    id: str
    time: datetime | None
    kind: OpKind
    changes: dict[Key, list[Record | None]] = field(default_factory=dict)  # key -> [before, after]
    undoes: list[str] = field(default_factory=list)
    by: str | None = None

    def note(self, changes: dict[Key, list[Record | None]]) -> None:
        for key, (before, after) in changes.items():
            if key in self.changes:
                self.changes[key][1] = after
            else:
                self.changes[key] = [before, after]


def _strip(record: Record | None) -> Record | None:
    return None if record is None else {k: v for k, v in record.items() if k not in RECORD_META_KEYS}


def _same(a: Record | None, b: Record | None) -> bool:
    return a is b or _strip(a) == _strip(b)


def _value(state: GraphState, key: Key) -> Record | None:
    return state.entities.get(key[1]) if key[0] == "e" else state.relations.get(key[1:])  # type: ignore[arg-type]


def _touched(state: GraphState, members: list[Record]) -> list[Key]:
    keys: dict[Key, None] = {}
    for m in members:
        kind = m.get("type")
        if kind in ("entity", "narrative_beat", "delete_entity"):
            keys[("e", m["name"])] = None
            if kind == "delete_entity":
                keys.update((("r", *k), None) for k in state.links.get(m["name"], ()))
        elif kind in ("relation", "delete_relation"):
            keys[("r", *relation_key(m))] = None
    return list(keys)


def _apply(state: GraphState, line: _Line) -> dict[Key, list[Record | None]]:
    keys = _touched(state, line.members)
    before = {k: _value(state, k) for k in keys}
    state.apply_all(line.members)
    changes: dict[Key, list[Record | None]] = {}
    for key in keys:
        after = _value(state, key)
        if not _same(before[key], after):
            changes[key] = [before[key], after]
    return changes


def _diff(old: GraphState, new: GraphState) -> dict[Key, list[Record | None]]:
    changes: dict[Key, list[Record | None]] = {}
    for name in dict.fromkeys([*new.entities, *old.entities]):  # in creation order
        a, b = old.entities.get(name), new.entities.get(name)
        if not _same(a, b):
            changes[("e", name)] = [a, b]
    for rkey in dict.fromkeys([*new.relations, *old.relations]):
        a, b = old.relations.get(rkey), new.relations.get(rkey)
        if not _same(a, b):
            changes[("r", *rkey)] = [a, b]
    return changes


def _base_state(gen: _Generation) -> GraphState:
    state = GraphState()
    for line in gen.base():
        state.apply_all(line.members)
    return state


def state_at(gens: Sequence[_Generation], moment: datetime) -> GraphState:
    """The rule: the generation live at ``moment``, replayed up to ``moment``."""
    for gen in gens:
        if gen.covers(moment):
            state = _base_state(gen)
            for line in gen.rest(moment):
                state.apply_all(line.members)
            return state
    return GraphState()


def timeline(gens: Sequence[_Generation]) -> tuple[GraphState, list[_Event]]:
    """Every change, oldest first, and the final state; one event per operation id."""
    state = GraphState()
    events: list[_Event] = []
    by_id: dict[str, _Event] = {}
    for index, gen in enumerate(gens):
        if index > 0:
            base = _base_state(gen)
            changes = _diff(state, base)
            if changes:  # a migration of another tool's file imports its content
                kind: OpKind = "import" if gens[index - 1].legacy and gen.kind == "compaction" else gen.kind
                events.append(_Event(f"{kind}:{gen.replaced}", gen.start, kind, changes))
            state = base
        for line in gen.rest():
            changes = _apply(state, line)
            op = line.op or f"import:{gen.name}"
            event = by_id.get(op)
            if event is None:
                event = by_id[op] = _Event(op, line.time, "write" if line.op else "import", by=line.by)
                events.append(event)
            for member in line.members:
                if member.get("type") == UNDO_TYPE:
                    event.kind = "undo"
                    event.undoes += [str(u) for u in member.get("undoes") or []]
            event.note(changes)
    return state, events


# ----------------------------------------------------------------- describing


def _versions(events: list[_Event], name: str, context: str) -> list[EntityVersion]:
    found = []
    for event in events:
        change = event.changes.get(("e", name))
        if change is None:
            continue
        before, after = change
        action = "created" if before is None else "deleted" if after is None else "updated"
        found.append(
            EntityVersion(
                context=context,
                time=_show(event.time),
                opId=event.id,
                opKind=event.kind,
                by=event.by,
                action=action,
                entity=entity_view(after, context) if after is not None else None,
            )
        )
    return found


def _meta(record: Record | None) -> dict[str, Any]:
    data = (record or {}).get("metadata")
    return data if isinstance(data, dict) else {}


def _first(items: list[str]) -> str | None:
    return items[0] if items else None


def _observations(record: Record | None) -> list[str]:
    return [str(o) for o in (record or {}).get("observations") or []]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _chart_events(event: _Event, chart_id: str, context: str) -> list[ChartEvent]:
    found: list[ChartEvent] = []

    def add(
        kind: ChartEventKind, entity: str, text: object = None, previous: object = None, value: object = None
    ) -> None:
        found.append(
            ChartEvent(
                time=_show(event.time),
                context=context,
                opId=event.id,
                opKind=event.kind,
                kind=kind,
                entity=entity,
                text=_text(text),
                previous=_text(previous),
                value=_text(value),
                by=event.by,
            )
        )

    for key, (before, after) in event.changes.items():
        if key[0] != "e":
            continue
        name = key[1]
        old, new = _meta(before), _meta(after)
        if name == f"{chart_id}_chart":
            _chart_changes(add, name, before, after)
        elif name == f"{chart_id}_desired_outcome":
            if before is not None and after is not None and _observations(before)[:1] != _observations(after)[:1]:
                add("outcome_changed", name, _first(_observations(after)), _first(_observations(before)))
        elif name == f"{chart_id}_current_reality":
            previous, current = _observations(before), _observations(after)
            for line in current:
                if line not in previous:
                    add("reality_added", name, line)
            for line in previous:
                if line not in current:
                    add("reality_removed", name, line)
        elif (
            chart_id in (old.get("chartId"), new.get("chartId"))
            and (after or before or {}).get("entityType") == "action_step"
        ):
            _step_changes(add, name, before, after)
        if (
            before is None
            and after is not None
            and new.get("parentChart") == chart_id
            and after.get("entityType") == "structural_tension_chart"
        ):
            add("step_telescoped", str(new.get("parentActionStep")), new.get("chartId") or name.removesuffix("_chart"))
    return found


def _chart_changes(add: Any, name: str, before: Record | None, after: Record | None) -> None:
    old, new = _meta(before), _meta(after)
    if before is None:
        add("chart_created", name, None, None, new.get("dueDate"))
    elif after is None:
        add("chart_removed", name)
    else:
        if old.get("completionStatus") is not True and new.get("completionStatus") is True:
            add("chart_completed", name, None, None, new.get("completedAt"))
        elif old.get("completionStatus") is True and new.get("completionStatus") is not True:
            add("chart_reopened", name)
        if old.get("dueDate") != new.get("dueDate"):
            add("due_moved", name, None, old.get("dueDate"), new.get("dueDate"))


def _step_changes(add: Any, name: str, before: Record | None, after: Record | None) -> None:
    old, new = _meta(before), _meta(after)
    previous, current = _observations(before), _observations(after)
    if before is None:
        add("step_added", name, current[0] if current else None, None, new.get("dueDate"))
        return
    if after is None:
        add("step_removed", name, previous[0] if previous else None)
        return
    if old.get("completionStatus") is not True and new.get("completionStatus") is True:
        add("step_completed", name, current[0] if current else None, None, new.get("completedAt"))
    elif old.get("completionStatus") is True and new.get("completionStatus") is not True:
        add("step_reopened", name, current[0] if current else None)
    if old.get("dueDate") != new.get("dueDate"):
        add("step_due_moved", name, current[0] if current else None, old.get("dueDate"), new.get("dueDate"))
    if previous[:1] != current[:1]:
        add("step_renamed", name, None, previous[0] if previous else None, current[0] if current else None)
    for note in current[1:]:
        if note not in previous[1:]:
            add("step_note", name, note)


def _with_moves(touched: list[tuple[str, _Event, list[ChartEvent]]], chart_id: str) -> list[ChartEvent]:
    """The events, oldest first, with each move (a copy into one context, then the removal from
    another: ``Charts.move_chart``) shown as ONE ``chart_moved`` event, at the copy, instead of both halves."""
    chart = f"{chart_id}_chart"
    touched.sort(key=lambda item: (item[1].time is None, item[1].time or datetime.min, _removes(item[2], chart)))
    live: set[str] = set()
    held: dict[str, tuple[set[str], list[ChartEvent], list[ChartEvent]]] = {}  # target: sources, its slot, the copy
    slots: list[list[ChartEvent]] = []
    for context, event, events in touched:
        if _creates(events, chart) and live - {context}:
            slots.append(
                [
                    ChartEvent(
                        time=_show(event.time),
                        context=context,
                        opId=event.id,
                        opKind=event.kind,
                        kind="chart_moved",
                        entity=chart,
                        toContext=context,
                        by=event.by,
                    )
                ]
            )
            held[context] = (live - {context}, slots[-1], events)
        elif _removes(events, chart) and (target := next((t for t, h in held.items() if context in h[0]), None)):
            held.pop(target)[1][0].fromContext = context
        else:
            slots.append(events)
        if _creates(events, chart):
            live.add(context)
        elif _removes(events, chart):
            live.discard(context)
    for _, slot, events in held.values():  # a move that never finished: the copy stands as it is
        slot[:] = events
    found = [e for slot in slots for e in slot]
    found.sort(key=lambda e: e.time or "")
    return found


def _creates(events: list[ChartEvent], chart: str) -> bool:
    return any(e.kind == "chart_created" and e.entity == chart for e in events)


def _removes(events: list[ChartEvent], chart: str) -> bool:
    return any(e.kind == "chart_removed" and e.entity == chart for e in events)


# ----------------------------------------------------------------- the library


class PastGraph:
    """A context's state at a past moment, shaped like a :class:`~coaia_store.graph.Graph` for reading."""

    def __init__(self, context: str, state: GraphState) -> None:
        self.context = context
        self.state = state

    def read(self, fn: Callable[[GraphState], R]) -> R:
        return fn(self.state)


class History:
    """The history of a store's contexts: versions, operations, past states, undo."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------- reading

    def generations(self, context: str | None = None) -> list[_Generation]:
        return _Source(self.store, _context(context)).generations()

    def state_as_of(self, context: str | None, as_of: str | datetime) -> GraphState:
        """The context's graph as it was at ``as_of`` (empty before its first write)."""
        moment = as_of if isinstance(as_of, datetime) else parse_as_of(as_of)
        if moment.tzinfo is None:
            raise InvalidInputError("asOf needs a timezone")
        return state_at(self.generations(context), moment)

    def past_graphs(self, context: str | None, as_of: str) -> list[PastGraph]:
        """Each context (``None``: every context) as it was at ``as_of``."""
        moment = parse_as_of(as_of)
        names = self.store.contexts() if context is None else [validate_context_name(context)]
        return [PastGraph(name, self.state_as_of(name, moment)) for name in names]

    def operations(self, context: str | None = None, limit: int = 50, cursor: str | None = None) -> OperationList:
        """The operations of the whole store (or of one context), newest first, each with its id, the
        contexts it wrote, when, and what it touched: what :meth:`undo` takes. Paginated by ``cursor``."""
        from .operations import list_operations  # operations.py builds on this module's timeline

        return list_operations(self.store, context, limit, cursor)

    def every_operation(self, context: str | None = None) -> Iterator[Operation]:
        """:meth:`operations`, every page of them, newest first."""
        cursor: str | None = None
        while True:
            page = self.operations(context, MAX_PAGE, cursor)
            yield from page.operations
            if page.nextCursor is None:
                return
            cursor = page.nextCursor

    def entity_history(
        self, name: str, context: str | None = None, limit: int | None = 100, cursor: str | None = None
    ) -> EntityHistory:
        """Every version of entity ``name`` (in one context, or in every context), oldest first, ``limit`` a page."""
        if not isinstance(name, str) or not name:
            raise InvalidInputError("name must be a non-empty entity name")
        _check_limit(limit)
        versions: list[EntityVersion] = []
        for ctx in self._contexts(context):
            _, events = timeline(self.generations(ctx))
            versions += _versions(events, name, ctx)
        versions.sort(key=lambda v: v.time or "")
        page, note, more = _page(versions, Pager("entity_history", name, context), limit, cursor, "versions")
        return EntityHistory(name=name, versions=page, total=len(versions), note=note, nextCursor=more)

    def chart_history(
        self, chart_id: str, context: str | None = None, limit: int | None = 100, cursor: str | None = None
    ) -> ChartHistory:
        """How a chart evolved, oldest first: created, reality added, steps added/completed/telescoped, dates
        moved, moved or archived (one ``chart_moved`` event). ``limit`` events a page (``None``: all)."""
        if not isinstance(chart_id, str) or not chart_id:
            raise InvalidInputError("chartId must be a non-empty chart id")
        _check_limit(limit)
        touched: list[tuple[str, _Event, list[ChartEvent]]] = []
        for ctx in self._contexts(context):
            _, events = timeline(self.generations(ctx))
            touched += [(ctx, e, found) for e in events if (found := _chart_events(e, chart_id, ctx))]
        if not touched:
            where = f"context {context!r}" if context is not None else "any context"
            raise NotFoundError(f"no history of chart {chart_id!r} in {where}; list_charts shows the charts")
        found = _with_moves(touched, chart_id)
        conflicts = [c for c in self.store.conflicts(context, settled=True) if c.target.startswith(f"{chart_id}_")]
        page, note, more = _page(found, Pager("chart_history", chart_id, context), limit, cursor, "events")
        return ChartHistory(
            chartId=chart_id, events=page, total=len(found), note=note, nextCursor=more, conflicts=conflicts
        )

    def _contexts(self, context: str | None) -> list[str]:
        return self.store.contexts() if context is None else [validate_context_name(context)]

    # ------------------------------------------------------------- undo

    def undo(
        self,
        operation_id: str | None = None,
        context: str | None = None,
        count: int = 1,
        op_ids: Sequence[str] | None = None,
    ) -> UndoResult:
        """Revert one operation by its id, or (without one) the latest ``count`` operations of the whole store
        (or of ``context``), by appending ONE new operation to each context they wrote.

        Each entity and relation they touched goes back to its value just before the earliest of
        them. Refused (:class:`ConflictError`, nothing written) when an operation that is not being
        undone changed one of them afterwards. The undo is itself an operation: undoing it redoes.
        """
        from .operations import undo_operations  # operations.py builds on this module's timeline

        return undo_operations(self.store, operation_id, context, count, op_ids)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE):
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE} (got {limit})")


def _page(
    items: list[M], pager: Pager, limit: int | None, cursor: str | None, what: str
) -> tuple[list[M], str | None, str | None]:
    """One bounded page of a timeline: the items, the note saying what is left, the next page's cursor."""
    start = pager.offset(cursor, len(items))
    page, end = bounded_page(items, start, limit or len(items), lambda i: len(i.model_dump_json()), PAGE_BUDGET)
    more = end < len(items)
    note = (
        f"{what} {start + 1}-{end} of {len(items)}, oldest first; pass nextCursor for the later ones"
        if more or start
        else None
    )
    return page, note, pager.cursor(end, len(items))


def _context(context: str | None) -> str:
    return DEFAULT_CONTEXT if context is None else validate_context_name(context)


# ----------------------------------------------------------------- for repair (coaia_store/integrity.py)


def replay(chunks: Iterable[bytes]) -> GraphState:
    """The state a file's bytes hold: its readable lines applied in file order, as the journal loads them."""
    state = GraphState()
    for line in _decode_file(chunks)[1]:
        state.apply_all(line.members)
    return state


def newest_verified_segment(store: Store, context: str) -> tuple[str, GraphState] | None:
    """The newest history file of ``context`` that reads back whole (a complete gzip stream, every line
    intact) with the state at its end, its path relative to the store directory; ``None`` if none does."""
    source = _Source(store, context)
    for name in reversed(source._segments()):
        try:
            content = _whole_gzip((source.folder / name).read_bytes())
        except FileNotFoundError:
            continue
        if content is not None and _intact(content):
            return str((source.folder / name).relative_to(store.path)), replay([content])
    return None


def removals(store: Store, context: str) -> dict[Key, datetime | None]:
    """When each entity and relation was last removed by a valid operation (a write, an undo, a restore),
    from the history and the live file; a compaction (the repair's dropping of damaged lines) does not
    count. ``None``: removed at an unknown time."""
    _, events = timeline(_Source(store, context).generations())
    gone: dict[Key, datetime | None] = {}
    for event in events:
        if event.kind == "compaction":
            continue
        for key, (before, after) in event.changes.items():
            if before is not None and after is None:
                gone[key] = _latest(gone[key], event.time) if key in gone else event.time
    return gone


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return None if a is None or b is None else max(a, b)


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
