"""The shapes that cross the library's edge: validated inputs and the results it returns.

Field names follow the file format (camelCase: ``entityType``, ``relationType``), so a
result serialises to exactly what the JSONL lines and the MCP tools say.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_NAME_LENGTH = 1000
MAX_METADATA_DEPTH = 32

# Every date the store accepts: 4-digit years (so each stored date is ISO 8601 and sorts as text), with a
# year to spare at the top so an end of day, a timezone offset or a week's start never leaves the calendar.
EARLIEST_DATE = date(1000, 1, 1)
LATEST_DATE = date(9998, 12, 31)
DATE_RANGE = f"{EARLIEST_DATE} to {LATEST_DATE} (UTC)"
MAX_DAYS = (LATEST_DATE - EARLIEST_DATE).days  # the longest span a count of days can usefully name


def check_date_range(value: date | datetime, text: str) -> None:
    """``ValueError`` naming ``text`` and the accepted range when ``value`` (a date, or a moment: without a zone,
    UTC) is outside it."""
    if isinstance(value, datetime):
        value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        inside = datetime.combine(EARLIEST_DATE, time.min, UTC) <= value <= datetime.combine(LATEST_DATE, time.max, UTC)
    else:
        inside = EARLIEST_DATE <= value <= LATEST_DATE
    if not inside:
        raise ValueError(f"{text!r} is outside the dates the store accepts: {DATE_RANGE}")


def _valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"contains an unpaired surrogate ({text[exc.start]!r} at position {exc.start}); send valid Unicode text"
        ) from None
    return text


def json_leaves(value: Any) -> Iterator[Any]:
    """Every key and every scalar of a JSON value, without recursion (hostile values nest deeply)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item


def lone_surrogate(value: Any) -> str | None:
    """The first unpaired UTF-16 surrogate in a key or a text of a JSON value (``None``: all of it is Unicode)."""
    for item in json_leaves(value):
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return item[exc.start]
    return None


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain a non-space character")
    return text


def _json_value(value: Any, depth: int = 0) -> Any:
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"is nested deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        return _valid_unicode(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"holds {value}, which JSON cannot store")
    if isinstance(value, int) and not isinstance(value, bool) and not -(1 << 63) <= value < 1 << 64:
        # JSON readers (orjson, JavaScript) cannot load such an integer exactly: it would come back a float.
        raise ValueError(f"holds the integer {value}, beyond 64 bits, which cannot be read back exactly")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"has a non-text key {key!r}")
            _valid_unicode(key)
        return {k: _json_value(v, depth + 1) for k, v in value.items()}
    raise ValueError(f"holds a {type(value).__name__}, which is not a JSON value")


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = _json_value(value)
    return result


Text = Annotated[str, AfterValidator(_valid_unicode)]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_not_blank),
    AfterValidator(_valid_unicode),
]
Metadata = Annotated[dict[str, Any], AfterValidator(_json_object)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EntityInput(_Input):
    name: Name
    entityType: Name
    observations: list[Text] = []
    metadata: Metadata | None = None


class RelationInput(_Input):
    from_: Name = Field(alias="from")
    to: Name
    relationType: Name
    metadata: Metadata | None = None


class ObservationsInput(_Input):
    entityName: Name
    contents: list[Text]


class ObservationDeletion(_Input):
    entityName: Name
    observations: list[Text]


class EntityUpdate(_Input):
    """Changes to one entity; fields left out stay as they are."""

    name: Name
    newName: Name | None = None
    entityType: Name | None = None
    observations: list[Text] | None = Field(None, description="Replaces the whole list.")
    metadata: Metadata | None = Field(None, description="Merged key by key; a key set to null is removed.")


# ---------------------------------------------------------------- results


class _Output(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class Entity(_Output):
    """An entity as stored, plus the context it lives in. Keys other tools wrote are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)
    name: str
    entityType: str
    observations: list[str]
    metadata: dict[str, Any] | None = None
    context: str


class Relation(_Output):
    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)
    from_: str = Field(alias="from")
    to: str
    relationType: str
    metadata: dict[str, Any] | None = None
    context: str


class WriteResult(_Output):
    """A write's result: ``operationId`` names the journal line it wrote (what undo and history take)."""

    operationId: str | None = Field(None, description="The operation this call wrote; None when nothing changed.")


class CreateEntitiesResult(WriteResult):
    created: list[Entity] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list, description="Names that already held exactly this content.")
    skipped: list[str] = Field(
        default_factory=list, description="Names that exist with other content (ifExists='skip')."
    )


class CreateRelationsResult(WriteResult):
    created: list[Relation] = Field(default_factory=list)
    unchanged: list[Relation] = Field(default_factory=list)


class ObservationsAdded(_Output):
    entityName: str
    addedObservations: list[str]


class AddObservationsResult(WriteResult):
    results: list[ObservationsAdded]


class DeleteResult(WriteResult):
    deleted: int = Field(description="How many items were removed.")
    notFound: list[str] = Field(
        default_factory=list, description="Items that did not exist (deleting them again is harmless)."
    )


class UpdateEntityResult(WriteResult):
    entity: Entity
    relationsMoved: int = Field(0, description="Relations re-pointed to the new name.")
    changed: bool


class GraphPage(_Output):
    entities: list[Entity]
    relations: list[Relation]
    totalEntities: int = Field(description="Entities matching the filters across all pages.")
    nextCursor: str | None = Field(None, description="Pass as cursor to get the next page; null on the last page.")


class OpenResult(_Output):
    entities: list[Entity]
    relations: list[Relation]
    notFound: list[str] = Field(default_factory=list)


class DamagedLine(_Output):
    line: int
    offset: int
    length: int
    problem: str


class ContextInfo(_Output):
    name: str
    file: str
    entities: int
    relations: int
    bytes: int
    lastModified: str | None
    checksummed: bool = Field(description="False for a file written by another tool and not yet migrated.")
    formatVersion: int | None
    degraded: bool
    damagedLines: list[DamagedLine] = Field(default_factory=list)
    tornTail: DamagedLine | None = Field(
        None, description="Bytes after the last complete line; repaired by the next write."
    )
    readOnly: str | None = None
    unreadable: str | None = Field(
        None,
        description="Why the file cannot be read (a link, a directory, a pipe, not JSONL) and what to do; "
        "the context is then skipped by every search and listing.",
    )
    housekeeping: str | None = Field(
        None, description="A failed compaction after a write (the write was saved), when it is retried, what to do."
    )


class ConflictValue(_Output):
    value: Any = Field(description="The value this side wrote (null: removed).")
    opId: str | None = Field(None, description="The operation that wrote it (as history lists it; undo takes it).")
    time: str | None = Field(None, description="Its _ts (hybrid clock).")
    by: str | None = Field(None, description="Who wrote it, when the record says so.")


class Conflict(_Output):
    """Two clones changed one field without seeing each other's change (met in a git merge)."""

    context: str
    target: str = Field(description="The entity name, or 'from -[type]-> to' for a relation.")
    field: str = Field(description="'observations[0]' (a title or desired outcome), 'metadata.<key>', 'deleted', ...")
    values: list[ConflictValue] = Field(description="Each side's value, oldest first; the last one is shown.")
    chosen: Any = Field(description="The value in effect: the later (time, opId) one.")
    settledBy: str | None = Field(None, description="The operation that wrote on top of both sides; null: still open.")


class LastBackups(_Output):
    context: str
    daily: str | None = Field(None, description="When the latest daily backup was taken.")
    weekly: str | None = None
    latest: str | None = Field(None, description="Id of the newest backup of any kind (for restore_backup).")


class GitSetup(_Output):
    repository: str = Field(description="The work tree holding .coaia/.")
    unionMerge: bool = Field(description="Whether .coaia/.gitattributes sets merge=union for the chart files.")
    localDir: str = Field(description="Where this clone keeps its backups and quarantine (.backup/, .recovery/).")
    autoCompaction: str = Field(description="Whether files are compacted automatically, and why not once shared.")
    advice: list[str] = Field(default_factory=list, description="What to set up (coaia-store init --git).")


class ToolCalls(BaseModel):
    tool: str
    calls: int = Field(description="Calls since the server started.")
    errors: int = Field(description="Calls that failed (a refused call counts).")
    p50Ms: float = Field(description="Median latency, milliseconds (over the latest calls).")
    p99Ms: float = Field(description="99th-percentile latency, milliseconds (over the latest calls).")


class ContextGrowth(BaseModel):
    context: str
    bytes: int = Field(description="Size of the context's file now.")
    last7Days: int = Field(description="Bytes of the file's lines written in the last 7 days.")
    last30Days: int = Field(description="Bytes of the file's lines written in the last 30 days.")


class Capacity(BaseModel):
    contexts: list[ContextGrowth]
    diskFreeBytes: int = Field(description="Free space of the disk holding the directory.")
    diskTotalBytes: int
    bytesPerDay: float = Field(description="Growth of all contexts per day: the faster of the 7- and 30-day rates.")
    daysLeft: float | None = Field(description="Days until the disk is full at that rate (None: not growing).")
    warnings: list[str] = Field(description="Low free space or few days left, with what to do.")


class StoreStatus(_Output):
    directory: str
    reason: str
    formatVersion: int
    fsync: str
    contexts: list[ContextInfo]
    backups: list[LastBackups] = Field(default_factory=list)
    degraded: bool
    problems: list[str]
    tools: list[ToolCalls] = Field(
        default_factory=list,
        description="Per tool: calls, errors and p50/p99 latency since the server started (empty outside a server).",
    )
    capacity: Capacity | None = Field(
        None,
        description="Growth per context over 7 and 30 days, disk free space "
        "and the days left at that rate, with warnings.",
    )
    conflicts: list[Conflict] = Field(default_factory=list, description="Open conflicts from git merges, up to 20.")
    conflictCount: int = Field(0, description="Every open conflict, shown or not (integrity check: all of them).")
    git: GitSetup | None = Field(None, description="Set when .coaia/ is inside a git work tree.")
