"""Import and export: move graphs between a ``.coaia`` directory and the files other tools write.

Import reads a JSONL file of the official memory server, coaia-memory, coaia-spiral (``#``
comment lines), coaia-narrative (``narrative_beat`` lines), AIM (``_aim`` marker) or
coaia-store itself (checksums, batches, tombstones), replays it to its final state, and writes
that state into one context in batches, each batch one atomic line decided on fresh state under
the context's write lock (the same ``Journal.write`` seam the Store and Charts APIs use, so every
key the other tool wrote is kept: the Store API's inputs accept only the four standard fields).

What happens to a name that already exists in the context (``on_conflict``):

* ``skip``: the existing entity stays as it is.
* ``merge``: the imported observations it lacks are appended (existing order first), the
  metadata keys and other top-level keys it lacks are added; its own values always win.
* ``replace``: the entity becomes the imported record (entity type, observations, metadata and
  other keys); its relations stay.

An identical entity is ``unchanged`` under every rule. Relations follow the same rules on their
metadata (a relation is identified by from, relationType, to). A relation whose ends exist
neither in the context nor in the file is reported as ``dangling`` and not written.

Export writes a context's current state as clean records: no checksums, no ``_op``/``_ts``,
no header, no tombstones, one record per live entity or relation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from ..errors import InvalidInputError, RecordTooLargeError
from ..graph.graphstore import GraphStore
from ..graph.state import ENTITY_TYPES, RECORD_META_KEYS, GraphState, RelKey, relation_key
from ..models import EntityInput, RelationInput, json_leaves, lone_surrogate
from ..storage.lines import Record, decode_legacy_line, dumps, is_header, json_document_values
from ..storage.sink import InvalidRecord

OnConflict = Literal["skip", "merge", "replace"]
ON_CONFLICT: tuple[str, ...] = ("skip", "merge", "replace")
BATCH_RECORDS = 200
_BATCH_OVERHEAD = 160  # the batch wrapper, _op, _ts and _crc around the records of one line
Progress = Callable[[int, int], None]  # (records just done, records in all)


# ----------------------------------------------------------------- reading a source file


class SkippedLine(BaseModel):
    line: int | None = Field(description="The line number; None for a record that replayed but is not valid.")
    problem: str


@dataclass
class Source:
    """A file replayed to its final state: the live entities and relations, and what was left out."""

    path: Path
    entities: list[Record] = field(default_factory=list)
    relations: list[Record] = field(default_factory=list)
    ignoredLines: int = 0  # comments, marker lines (AIM's _aim, our header), blank lines
    problems: list[SkippedLine] = field(default_factory=list)


def read_source(path: str | Path) -> Source:
    """Read a JSONL file of any supported tool; bad lines are reported, never fatal."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    source, state = Source(path), GraphState()
    for number, (record, problem) in enumerate(_records(data), 1):
        if problem is not None:
            source.problems.append(SkippedLine(line=number, problem=problem))
        elif record is not None and not _apply(state, record, number, source):
            source.ignoredLines += 1
    for record in state.entities.values():
        _keep_valid(record, source.entities, source.problems, _check_entity)
    for record in state.relations.values():
        _keep_valid(record, source.relations, source.problems, _check_relation)
    return source


def _records(data: bytes) -> Iterator[tuple[Record | None, str | None]]:
    """Each line's record; for JSON that is not JSONL (an array, pretty-printed JSON), each value's,
    numbered in order as lines are. A record unfit to store comes back as its problem."""
    values = json_document_values(data)
    if values is None:
        for raw in data.split(b"\n"):
            record, problem = decode_legacy_line(raw)
            if record is not None and problem is None and (problem := _line_problem(raw, record)) is not None:
                record = None
            yield record, problem
        return
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                yield None, "not a JSON object"
            elif (problem := _exact_problem(item)) is not None:
                yield None, problem
            else:
                yield item, None


def _line_problem(raw: bytes, record: Record) -> str | None:
    """What makes a line that parsed unfit to store, as the MCP tools would refuse it: an unpaired surrogate
    escape (not Unicode text), or an integer beyond 64 bits (orjson reads it as an inexact float without a word;
    the line's own text tells an integer from a float)."""
    surrogate = _surrogate_problem(record)
    if surrogate is not None or not any(isinstance(v, float) and abs(v) >= 2.0**63 for v in json_leaves(record)):
        return surrogate
    try:
        exact = json.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, RecursionError):
        return None
    return _wide_int_problem(exact)


def _exact_problem(record: Record) -> str | None:
    """The same checks for a value parsed exactly (integers kept whole)."""
    return _surrogate_problem(record) or _wide_int_problem(record)


def _surrogate_problem(record: Record) -> str | None:
    surrogate = lone_surrogate(record)
    return (
        None if surrogate is None else f"holds an unpaired surrogate escape ({surrogate!r}), which is not Unicode text"
    )


def _wide_int_problem(value: object) -> str | None:
    wide = next((v for v in json_leaves(value) if type(v) is int and not -(1 << 63) <= v < 1 << 64), None)
    if wide is None:
        return None
    shown = str(wide) if len(str(wide)) <= 40 else f"{str(wide)[:40]}... ({len(str(wide))} digits)"
    return f"holds the integer {shown}, beyond 64 bits, which cannot be stored exactly; write it as a string"


def _is_graph_record(record: Record) -> bool:
    return record.get("type") in ("entity", "narrative_beat", "relation", "delete_entity", "delete_relation", "batch")


def _apply(state: GraphState, record: Record, number: int, source: Source) -> bool:
    """Replay one line (a batch: each of its records); ``False`` for a line that holds no graph record."""
    if is_header(record) or not _is_graph_record(record):
        return False
    records = record.get("records") if record.get("type") == "batch" else [record]
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        source.problems.append(SkippedLine(line=number, problem="batch record without a list of records"))
        return True
    try:
        state.apply_all([_clean(r) for r in records])
    except InvalidRecord as exc:
        source.problems.append(SkippedLine(line=number, problem=str(exc)))
    return True


def _clean(record: Record) -> Record:
    return {k: v for k, v in record.items() if k not in RECORD_META_KEYS and k != "_crc"}


def _check_entity(record: Record) -> None:
    EntityInput.model_validate(
        {
            "name": record["name"],
            "entityType": _entity_type(record),
            "observations": record.get("observations") or [],
            "metadata": record.get("metadata"),
        }
    )


def _check_relation(record: Record) -> None:
    RelationInput.model_validate({k: record.get(k) for k in ("from", "to", "relationType", "metadata")})


def _keep_valid(
    record: Record, kept: list[Record], problems: list[SkippedLine], check: Callable[[Record], None]
) -> None:
    try:
        check(record)
    except ValidationError as exc:
        what = record.get("name") or f"{record.get('from')} -[{record.get('relationType')}]-> {record.get('to')}"
        problems.append(SkippedLine(line=None, problem=f"{what}: {exc.errors(include_url=False)[0]['msg']}"))
        return
    kept.append(record)


def _entity_type(record: Record) -> str:
    return str(record.get("entityType") or record.get("type"))


# ----------------------------------------------------------------- merge rules


Outcome = Literal["added", "merged", "replaced", "skipped", "unchanged"]


def decide(stored: Record | None, incoming: Record, rule: OnConflict) -> tuple[Outcome, Record | None]:
    """What importing ``incoming`` does to ``stored`` (``None``: absent), and the record to write."""
    if stored is None:
        return "added", incoming
    stored = _clean(stored)
    if _content(stored) == _content(incoming):
        return "unchanged", None
    if rule == "skip":
        return "skipped", None
    if rule == "replace":
        return "replaced", incoming
    merged = _merged(stored, incoming)
    return ("unchanged", None) if merged == stored else ("merged", merged)


def _content(record: Record) -> Record:
    """A record's content, the record type aside (``narrative_beat`` and ``entity`` hold the same)."""
    content = {k: v for k, v in record.items() if k != "type" and v is not None}
    if record.get("type") in ENTITY_TYPES:
        content["entityType"] = _entity_type(record)
        content["observations"] = record.get("observations") or []
    return content


def _merged(stored: Record, incoming: Record) -> Record:
    merged = {**incoming, **stored}  # keys only the import has are added; the stored values win
    if isinstance(stored.get("metadata"), dict) and isinstance(incoming.get("metadata"), dict):
        merged["metadata"] = {**incoming["metadata"], **stored["metadata"]}
    if stored.get("type") in ENTITY_TYPES:
        observations = list(stored.get("observations") or [])
        merged["observations"] = observations + [o for o in incoming.get("observations") or [] if o not in observations]
    return merged


# ----------------------------------------------------------------- importing


class ImportReport(BaseModel):
    """What an import did (or, with ``dryRun``, would do). Lists hold names; relations as ``from -[type]-> to``."""

    file: str
    context: str
    onConflict: str
    dryRun: bool
    added: list[str] = []
    merged: list[str] = []
    replaced: list[str] = []
    skipped: list[str] = []
    unchanged: list[str] = []
    relationsAdded: list[str] = []
    relationsMerged: list[str] = []
    relationsReplaced: list[str] = []
    relationsSkipped: list[str] = []
    relationsUnchanged: list[str] = []
    dangling: list[str] = Field([], description="Relations not written: an end is neither in the context nor the file.")
    failed: list[str] = Field([], description="Records not written, with the reason (e.g. larger than maxRecordBytes).")
    invalidLines: list[SkippedLine] = []
    ignoredLines: int = 0

    def counts(self) -> dict[str, int]:
        return {name: len(value) for name, value in self if isinstance(value, list)}


def import_file(
    store: GraphStore,
    path: str | Path,
    *,
    context: str = "default",
    on_conflict: OnConflict = "skip",
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one file into ``context``; see the module docstring for the merge rules."""
    if on_conflict not in ON_CONFLICT:
        raise InvalidInputError(f"unknown on-conflict rule {on_conflict!r}: choose one of {', '.join(ON_CONFLICT)}")
    source = read_source(path)
    graph = store.graph(context)
    report = ImportReport(
        file=str(source.path),
        context=graph.context,
        onConflict=on_conflict,
        dryRun=dry_run,
        invalidLines=source.problems,
        ignoredLines=source.ignoredLines,
    )
    importer = _Importer(store, graph.context, on_conflict, report, progress)
    importer.total = len(source.entities) + len(source.relations)
    if dry_run:
        importer.simulate(source)
    else:
        importer.write(source)
    return report


def relation_label(key: RelKey) -> str:
    return f"{key[0]} -[{key[1]}]-> {key[2]}"


class _Importer:
    def __init__(
        self, store: GraphStore, context: str, rule: OnConflict, report: ImportReport, progress: Progress | None
    ) -> None:
        self.graph = store.graph(context)
        self.limit = store.config.maxRecordBytes - _BATCH_OVERHEAD
        self.rule, self.report = rule, report
        self.total = 0
        self._progress = progress

    def progress(self, done: int) -> None:
        if self._progress is not None:
            self._progress(done, self.total)

    # ---- dry run: decisions against the state as it is now, nothing written
    def simulate(self, source: Source) -> None:
        def run(state: GraphState) -> None:
            names = set(state.entities)
            for record in source.entities:
                self._record_entity(decide(state.entities.get(record["name"]), record, self.rule)[0], record["name"])
                names.add(record["name"])
            for record in source.relations:
                self._relation(state.relations.get(relation_key(record)), record, names)

        self.graph.read(run)
        self.progress(len(source.entities) + len(source.relations))

    # ---- real import: one atomic line per batch, decided on fresh state under the write lock
    def write(self, source: Source) -> None:
        for chunk in self._chunks(source.entities):
            self._write_chunk(chunk, self._entity_plan)
        for chunk in self._chunks(source.relations):
            self._write_chunk(chunk, self._relation_plan)

    def _chunks(self, records: Sequence[Record]) -> Iterator[list[Record]]:
        chunk: list[Record] = []
        size = 0
        for record in records:
            length = len(dumps(record)) + 1
            if chunk and (len(chunk) >= BATCH_RECORDS or size + length > self.limit):
                yield chunk
                chunk, size = [], 0
            chunk.append(record)
            size += length
        if chunk:
            yield chunk

    def _write_chunk(self, chunk: list[Record], plan: Callable[[GraphState, list[Record]], list[Record]]) -> None:
        try:
            self.graph.journal.write(lambda: (plan(self.graph.state, chunk), None))
        except RecordTooLargeError as exc:
            if len(chunk) > 1:  # a merged record grew: halve the batch until each line fits
                half = len(chunk) // 2
                self._write_chunk(chunk[:half], plan)
                self._write_chunk(chunk[half:], plan)
                return
            self._undo(chunk)
            self.report.failed.append(f"{_label(chunk[0])}: {exc}")
        self.progress(len(chunk))

    def _entity_plan(self, state: GraphState, chunk: list[Record]) -> list[Record]:
        self._undo(chunk)  # build() may run again after a catch-up; decide afresh each time
        records = []
        for record in chunk:
            outcome, written = decide(state.entities.get(record["name"]), record, self.rule)
            self._record_entity(outcome, record["name"])
            if written is not None:
                records.append(written)
        return records

    def _relation_plan(self, state: GraphState, chunk: list[Record]) -> list[Record]:
        self._undo(chunk)
        records = []
        for record in chunk:
            written = self._relation(state.relations.get(relation_key(record)), record, state.entities)
            if written is not None:
                records.append(written)
        return records

    def _undo(self, chunk: list[Record]) -> None:
        labels = {_label(r) for r in chunk}
        for name, value in self.report:
            if isinstance(value, list) and name not in ("failed", "invalidLines"):
                value[:] = [v for v in value if v not in labels]

    def _record_entity(self, outcome: Outcome, name: str) -> None:
        getattr(self.report, outcome).append(name)

    def _relation(self, stored: Record | None, record: Record, names: Any) -> Record | None:
        label = relation_label(relation_key(record))
        if record["from"] not in names or record["to"] not in names:
            self.report.dangling.append(label)
            return None
        outcome, written = decide(stored, record, self.rule)
        getattr(self.report, "relations" + outcome.capitalize()).append(label)
        return written


def _label(record: Record) -> str:
    return relation_label(relation_key(record)) if record.get("type") == "relation" else str(record["name"])


# ----------------------------------------------------------------- exporting


def export_records(store: GraphStore, context: str) -> tuple[list[Record], list[Record]]:
    """A context's live entities and relations as clean memory-server records (``type`` first)."""

    def collect(state: GraphState) -> tuple[list[Record], list[Record]]:
        entities = [_export_entity(r) for r in state.entities.values()]
        return entities, [_export_relation(r) for r in state.relations.values()]

    result: tuple[list[Record], list[Record]] = store.graph(context).read(collect)
    return result


def _export_entity(record: Record) -> Record:
    clean = _clean(record)
    out: Record = {
        "type": "entity",
        "name": clean["name"],
        "entityType": _entity_type(clean),
        "observations": [o if isinstance(o, str) else str(o) for o in clean.get("observations") or []],
    }
    out.update((k, v) for k, v in clean.items() if k not in ("type", "name", "entityType", "observations"))
    return out


def _export_relation(record: Record) -> Record:
    clean = _clean(record)
    out: Record = {"type": "relation", "from": clean["from"], "to": clean["to"], "relationType": clean["relationType"]}
    out.update((k, v) for k, v in clean.items() if k not in ("type", "from", "to", "relationType"))
    return out


def jsonl_lines(entities: Sequence[Record], relations: Sequence[Record]) -> Iterator[bytes]:
    """One compact JSON line per record, the way the official memory server writes its file."""
    for record in [*entities, *relations]:
        yield dumps(record) + b"\n"


def json_document(context: str, entities: Sequence[Record], relations: Sequence[Record]) -> dict[str, Any]:
    """The read_graph shape: entities and relations without their ``type`` key."""
    strip = lambda r: {k: v for k, v in r.items() if k != "type"}  # noqa: E731
    return {"context": context, "entities": [strip(r) for r in entities], "relations": [strip(r) for r in relations]}
