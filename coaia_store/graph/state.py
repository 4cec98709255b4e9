"""The knowledge graph of one context: state replayed from its journal, and the operations on it.

Records on disk (all keep any other keys they carry, untouched):
* ``entity`` (and coaia-narrative's ``narrative_beat``): the entity's whole current state;
* ``relation``: one relation, keyed by ``(from, relationType, to)``;
* ``delete_entity`` / ``delete_relation``: tombstones; deleting an entity drops its relations;
* anything else (comments, other tools' marker lines): kept as it is and written back on compaction.

Every operation validates against the freshest state under the write lock and returns the
records to append; an operation that changes nothing appends nothing (safe to retry).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from ..errors import ConflictError, NotFoundError
from ..models import (
    AddObservationsResult,
    CreateEntitiesResult,
    CreateRelationsResult,
    DeleteResult,
    Entity,
    EntityInput,
    EntityUpdate,
    ObservationDeletion,
    ObservationsAdded,
    ObservationsInput,
    Relation,
    RelationInput,
    UpdateEntityResult,
    WriteResult,
)
from ..storage.envelope import ENVELOPE_KEYS
from ..storage.journal import Journal
from ..storage.lines import HEADER_TYPE, Record
from ..storage.sink import InvalidRecord
from .merge import DROPS, PREV, Conflict, is_tombstone, prev_of
from .versions import Loader, Versions

R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
RelKey = tuple[str, str, str]  # (from, relationType, to)
Plan = tuple[list[Record], R]
IfExists = Literal["error", "skip"]

ENTITY_TYPES = frozenset({"entity", "narrative_beat"})
_NO_LIST: list[str] = []  # what a record without observations counts as
RECORD_META_KEYS = ENVELOPE_KEYS | {PREV}  # which call wrote a record, when, and what it replaced
_HIDDEN_KEYS = RECORD_META_KEYS | {"type"}


class GraphState:
    """Entities, relations and pass-through records, indexed for lookups by name.

    ``entities`` and ``relations`` hold the state shown; behind them, :class:`Versions` keeps every
    version and the heads of each name, so the state does not depend on the order of the lines
    (see :mod:`.versions`).
    """

    state_format = "graph-state-3"  # change it whenever export_state() changes shape

    def __init__(self, observe: Callable[[object], None] | None = None) -> None:
        self._observe = observe  # the hybrid clock of the store, told the newest _ts before each write
        self.entity_versions: Versions[str] = Versions(_is_version_of_entity)
        self.relation_versions: Versions[RelKey] = Versions(_is_version_of_relation)
        self.reset()

    def attach(self, loader: Loader) -> None:
        """How to read back the records of a line of the file (older versions are kept as stubs)."""
        self.entity_versions.loader = self.relation_versions.loader = loader

    def reset(self) -> None:
        self.entities: dict[str, Record] = {}
        self.relations: dict[RelKey, Record] = {}
        self.links: dict[str, set[RelKey]] = {}
        self.extras: list[Record] = []
        self._extra_keys: set[tuple[str, str]] = set()
        self.entity_versions.reset()
        self.relation_versions.reset()
        self.newest_ts = ""

    def live_records(self) -> int:
        return len(self.entities) + len(self.relations) + len(self.extras)

    def snapshot(self) -> Iterator[Record]:
        """The state as records (see :func:`_snapshot`)."""
        yield from self.extras
        yield from _snapshot(self.entity_versions, self.entities)
        yield from _snapshot(self.relation_versions, self.relations)

    def export_state(self) -> object:
        return (
            self.entities,
            self.relations,
            self.links,
            self.extras,
            self.entity_versions.export(),
            self.relation_versions.export(),
            self.newest_ts,
        )

    def import_state(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 7):
            raise ValueError("not a graph state")
        entities, relations, links, extras, entity_versions, relation_versions, newest_ts = state
        if not (
            isinstance(entities, dict)
            and isinstance(relations, dict)
            and isinstance(links, dict)
            and isinstance(extras, list)
            and isinstance(newest_ts, str)
        ):
            raise ValueError("not a graph state")
        self.entity_versions.restore(entity_versions)
        self.relation_versions.restore(relation_versions)
        self.entities, self.relations, self.links, self.extras = entities, relations, links, extras
        self._extra_keys = {key for key in map(_extra_key, extras) if key is not None}
        self.newest_ts = newest_ts

    def apply_all(self, records: list[Record], at: int | None = None) -> None:
        """Apply the records of one line (at offset ``at`` of the file, when read from it)."""
        if len(records) == 1:  # the common case on load: kept cheap
            record = records[0]
            _APPLY.get(checked_kind(record), GraphState._keep_extra)(self, record, at)
            return
        kinds = [checked_kind(record) for record in records]  # every record checked before any applies
        for record, kind in zip(records, kinds, strict=True):
            _APPLY.get(kind, GraphState._keep_extra)(self, record, at)

    def prepare(self, records: list[Record]) -> list[Record]:
        """Before a write: name in ``_prev`` the heads each record replaces, and in a delete's ``_drops``
        the relations it takes with it (each with the heads it replaces).

        One record per name and per relation: a later one in the same call replaces an earlier one.
        """
        if self._observe is not None:
            self._observe(self.newest_ts)
        out: dict[tuple[str, Any], Record] = {}
        for record in records:
            kind = record.get("type")
            if kind in ENTITY_TYPES or kind == "delete_entity":
                key: tuple[str, Any] = ("e", record["name"])
                out.pop(key, None)
                out[key] = {**record, PREV: self.entity_versions.head_ops(record["name"])}
            elif kind in ("relation", "delete_relation"):
                key = ("r", relation_key(record))
                out.pop(key, None)
                out[key] = {**record, PREV: self.relation_versions.head_ops(key[1])}
            else:
                out[("x", len(out))] = record
        for record in out.values():
            if record.get("type") == "delete_entity":
                record[DROPS] = [
                    [*rel, self.relation_versions.head_ops(rel)]
                    for rel in sorted(self.links.get(record["name"], ()))
                    if ("r", rel) not in out
                ]
        return list(out.values())

    def relations_of(self, name: str) -> list[Record]:
        return [self.relations[key] for key in self.links.get(name, ())]

    def conflicts(self) -> list[tuple[str, Record | None, Conflict]]:
        """Every conflict the versions show: ``(what, settled by, conflict)``; ``None``: still open."""
        return _conflicts(self.entity_versions, str) + _conflicts(self.relation_versions, _relation_label)

    def _seen(self, record: Record) -> None:
        ts = record.get("_ts")
        if isinstance(ts, str) and ts > self.newest_ts:
            self.newest_ts = ts

    def _put_entity(self, record: Record, at: int | None = None) -> None:
        name = record["name"]
        self._seen(record)
        if not self.entity_versions.add(name, record, at):
            return
        if record.get("type") == "delete_entity":
            self._cascade(record)
        shown, _ = self.entity_versions.resolve(name)
        if shown is None or is_tombstone(shown):
            self.entities.pop(name, None)
        else:
            self.entities[name] = shown

    def _cascade(self, record: Record) -> None:
        """A delete takes the entity's relations with it: those it names in ``_drops``, or (written
        before ``_prev`` existed) all it has in file order."""
        drops = record.get(DROPS)
        if prev_of(record) is not None:
            for item in drops if isinstance(drops, list) else ():
                if isinstance(item, list) and len(item) == 4 and all(isinstance(x, str) for x in item[:3]):
                    self._put_relation(
                        {
                            "type": "delete_relation",
                            "from": item[0],
                            "relationType": item[1],
                            "to": item[2],
                            "_op": record.get("_op"),
                            "_ts": record.get("_ts"),
                            PREV: item[3] if isinstance(item[3], list) else [],
                        }
                    )
            return
        name = record["name"]
        for key in self.links.pop(name, set()):
            self.relation_versions.clear(key)
            self.relations.pop(key, None)
            other = key[2] if key[0] == name else key[0]
            self.links.get(other, set()).discard(key)

    def _put_relation(self, record: Record, at: int | None = None) -> None:
        key = relation_key(record)
        self._seen(record)
        if not self.relation_versions.add(key, record, at):
            return
        shown, _ = self.relation_versions.resolve(key)
        if shown is not None and not is_tombstone(shown):
            self.relations[key] = shown
            self.links.setdefault(key[0], set()).add(key)
            self.links.setdefault(key[2], set()).add(key)
        elif self.relations.pop(key, None) is not None:
            for end in (key[0], key[2]):
                self.links.get(end, set()).discard(key)

    def _keep_extra(self, record: Record, at: int | None = None) -> None:
        key = _extra_key(record)
        if key is not None:  # written by a call: the same line twice (a git merge) is kept once
            if key in self._extra_keys:
                return
            self._extra_keys.add(key)
        self.extras.append(record)


def _is_version_of_entity(name: str, record: Record) -> bool:
    return record.get("name") == name and (record.get("type") in ENTITY_TYPES or record.get("type") == "delete_entity")


def _is_version_of_relation(key: RelKey, record: Record) -> bool:
    return (
        record.get("type") in ("relation", "delete_relation")
        and all(isinstance(record.get(k), str) for k in ("from", "to", "relationType"))
        and relation_key(record) == key
    )


def _extra_key(record: Record) -> tuple[str, str] | None:
    op = record.get("_op")
    return (op, json.dumps(record, sort_keys=True, default=str)) if isinstance(op, str) else None


def _snapshot(versions: Versions[K], shown: dict[K, Record]) -> Iterator[Record]:
    """The live records; every version of a name that ever had concurrent ones, so its merge and its
    conflicts (open or settled) read back the same."""
    for key, record in shown.items():
        if key not in versions.merged:
            yield record
    for key in sorted(versions.merged, key=str):
        yield from versions.all_versions(key)


def _conflicts(versions: Versions[K], label: Callable[[K], str]) -> list[tuple[str, Record | None, Conflict]]:
    found: list[tuple[str, Record | None, Conflict]] = []
    for key in sorted(versions.merged, key=str):
        found += [(label(key), None, c) for c in versions.resolve(key)[1]]
        found += [(label(key), r, c) for r, cs in versions.settled_conflicts(key) for c in cs]
    return found


def _relation_label(key: RelKey) -> str:
    return f"{key[0]} -[{key[1]}]-> {key[2]}"


_APPLY: dict[str | None, Callable[[GraphState, Record, int | None], None]] = {
    "entity": GraphState._put_entity,
    "narrative_beat": GraphState._put_entity,
    "relation": GraphState._put_relation,
    "delete_entity": GraphState._put_entity,
    "delete_relation": GraphState._put_relation,
    HEADER_TYPE: lambda state, record, at: None,  # after line 1: another clone's header, met in a git union merge
}
_NEEDS: dict[str, tuple[str, ...]] = {
    "entity": ("name",),
    "narrative_beat": ("name",),
    "delete_entity": ("name",),
    "relation": ("from", "to", "relationType"),
    "delete_relation": ("from", "to", "relationType"),
    HEADER_TYPE: (),
}


def checked_kind(record: Record) -> str | None:
    """The record's type if it is well formed, else :class:`InvalidRecord` (this runs per line on load)."""
    kind = record.get("type")
    needs = _NEEDS.get(kind) if type(kind) is str else None
    if needs is None:
        if kind == "batch":
            raise InvalidRecord("batch record without a list of records")
        return None
    for key in needs:
        value = record.get(key)
        if type(value) is not str or not value:
            raise InvalidRecord(f"{kind} record without a text {key!r}")
    if kind in ENTITY_TYPES:
        if type(record.get("observations", _NO_LIST)) is not list:
            raise InvalidRecord("entity record whose 'observations' is not a list")
        metadata = record.get("metadata")
        if metadata and type(metadata) is not dict:
            raise InvalidRecord("entity record whose 'metadata' is not an object")
    return kind


def relation_key(record: Record) -> RelKey:
    return (record["from"], record["relationType"], record["to"])


def entity_view(record: Record, context: str) -> Entity:
    extra = {k: v for k, v in record.items() if k not in _HIDDEN_KEYS and k not in Entity.model_fields}
    return Entity(
        name=record["name"],
        entityType=record.get("entityType") or str(record.get("type")),
        observations=[o if isinstance(o, str) else str(o) for o in record.get("observations") or []],
        metadata=record.get("metadata"),
        context=context,
        **extra,
    )


def relation_view(record: Record, context: str) -> Relation:
    extra = {
        k: v for k, v in record.items() if k not in _HIDDEN_KEYS and k not in ("from", "to", "relationType", "metadata")
    }
    return Relation.model_validate(
        {
            "from": record["from"],
            "to": record["to"],
            "relationType": record["relationType"],
            "metadata": record.get("metadata"),
            "context": context,
            **extra,
        }
    )


def _entity_record(item: EntityInput) -> Record:
    record: Record = {
        "type": "entity",
        "name": item.name,
        "entityType": item.entityType,
        "observations": list(item.observations),
    }
    if item.metadata is not None:
        record["metadata"] = item.metadata
    return record


def _relation_record(item: RelationInput) -> Record:
    record: Record = {"type": "relation", "from": item.from_, "to": item.to, "relationType": item.relationType}
    if item.metadata is not None:
        record["metadata"] = item.metadata
    return record


def _same_entity(stored: Record, new: Record) -> bool:
    return all(stored.get(k) == new.get(k) for k in ("entityType", "observations")) and (
        (stored.get("metadata") or None) == (new.get("metadata") or None)
    )


def _missing(state: GraphState, names: Iterable[str], context: str, what: str) -> None:
    absent = sorted({n for n in names if n not in state.entities})
    if absent:
        raise NotFoundError(
            f"{what}: no entity named {', '.join(map(repr, absent))} in context {context!r}; "
            "create it first (create_entities) or check the name and context"
        )


class Graph:
    """One context: its journal, the state replayed from it, and the graph operations."""

    def __init__(
        self,
        context: str,
        journal_factory: Callable[[GraphState], Journal],
        observe: Callable[[object], None] | None = None,
    ) -> None:
        self.context = context
        self.state = GraphState(observe)
        self.journal = journal_factory(self.state)

    def read(self, fn: Callable[[GraphState], R]) -> R:
        return self.journal.read(lambda: fn(self.state))

    def _write(self, plan: Callable[[GraphState], Plan[R]]) -> R:
        result, op = self.journal.write_op(lambda: plan(self.state))
        if op is not None and isinstance(result, WriteResult):
            result.operationId = op
        return result

    # ------------------------------------------------------------- entities

    def create_entities(self, items: Sequence[EntityInput], if_exists: IfExists = "error") -> CreateEntitiesResult:
        def plan(state: GraphState) -> Plan[CreateEntitiesResult]:
            result = CreateEntitiesResult()
            records: dict[str, Record] = {}
            conflicts = []
            for item in items:
                record = _entity_record(item)
                stored = records.get(item.name) or state.entities.get(item.name)
                if stored is None:
                    records[item.name] = record
                elif _same_entity(stored, record):
                    if item.name not in records and item.name not in result.unchanged:
                        result.unchanged.append(item.name)
                elif if_exists == "skip" and item.name not in records:
                    result.skipped.append(item.name)
                else:
                    conflicts.append(item.name)
            if conflicts:
                raise ConflictError(
                    f"entities {', '.join(map(repr, conflicts))} already exist in context {self.context!r} with other "
                    "content (or appear twice in this call); use add_observations or update_entity to change them"
                )
            result.created = [entity_view(r, self.context) for r in records.values()]
            return list(records.values()), result

        return self._write(plan)

    def add_observations(self, items: Sequence[ObservationsInput]) -> AddObservationsResult:
        def plan(state: GraphState) -> Plan[AddObservationsResult]:
            _missing(state, (i.entityName for i in items), self.context, "add_observations")
            updated: dict[str, Record] = {}
            results = []
            for item in items:
                record = updated.get(item.entityName) or state.entities[item.entityName]
                present = set(record.get("observations") or [])
                added = [c for c in dict.fromkeys(item.contents) if c not in present]
                if added:
                    updated[item.entityName] = {**record, "observations": [*(record.get("observations") or []), *added]}
                results.append(ObservationsAdded(entityName=item.entityName, addedObservations=added))
            return list(updated.values()), AddObservationsResult(results=results)

        return self._write(plan)

    def delete_observations(self, items: Sequence[ObservationDeletion]) -> DeleteResult:
        return self._write(lambda state: _observation_deletions(state, items))

    def delete_entities(self, names: Sequence[str]) -> DeleteResult:
        return self._write(lambda state: _entity_deletions(state, names))

    def update_entity(self, change: EntityUpdate) -> UpdateEntityResult:
        def plan(state: GraphState) -> Plan[UpdateEntityResult]:
            _missing(state, [change.name], self.context, "update_entity")
            old = state.entities[change.name]
            new = dict(old)
            if change.entityType is not None:
                new["entityType"] = change.entityType
            if change.observations is not None:
                new["observations"] = list(dict.fromkeys(change.observations))
            if change.metadata is not None:
                merged = {**(old.get("metadata") or {}), **change.metadata}
                new["metadata"] = {k: v for k, v in merged.items() if v is not None}
            renamed = change.newName is not None and change.newName != change.name
            if not renamed:
                changed = new != old
                return ([new] if changed else []), UpdateEntityResult(
                    entity=entity_view(new, self.context), changed=changed
                )
            assert change.newName is not None
            if change.newName in state.entities:
                raise ConflictError(
                    f"cannot rename {change.name!r} to {change.newName!r}: that name is taken in context {self.context!r}"
                )
            new["name"] = change.newName
            moved = [_renamed_relation(r, change.name, change.newName) for r in state.relations_of(change.name)]
            records = [{"type": "delete_entity", "name": change.name}, new, *moved]
            return records, UpdateEntityResult(
                entity=entity_view(new, self.context), relationsMoved=len(moved), changed=True
            )

        return self._write(plan)

    # ------------------------------------------------------------- relations

    def create_relations(self, items: Sequence[RelationInput]) -> CreateRelationsResult:
        def plan(state: GraphState) -> Plan[CreateRelationsResult]:
            _missing(state, (n for i in items for n in (i.from_, i.to)), self.context, "create_relations")
            records: dict[RelKey, Record] = {}
            unchanged: dict[RelKey, Record] = {}
            for item in items:
                record = _relation_record(item)
                key = relation_key(record)
                stored = state.relations.get(key)
                if stored is not None and (stored.get("metadata") or None) == (record.get("metadata") or None):
                    unchanged[key] = stored
                else:
                    records[key] = {**stored, **record} if stored else record
            result = CreateRelationsResult(
                created=[relation_view(r, self.context) for r in records.values()],
                unchanged=[relation_view(r, self.context) for r in unchanged.values()],
            )
            return list(records.values()), result

        return self._write(plan)

    def delete_relations(self, items: Sequence[RelationInput]) -> DeleteResult:
        return self._write(lambda state: _relation_deletions(state, items))

    def delete_from_graph(
        self, entities: Sequence[str], observations: Sequence[ObservationDeletion], relations: Sequence[RelationInput]
    ) -> DeleteResult:
        """Observations, relations and entities deleted in ONE write (in that order, so all of them apply)."""

        def plan(state: GraphState) -> Plan[DeleteResult]:
            records: list[Record] = []
            total = DeleteResult(deleted=0)
            for part in (
                _observation_deletions(state, observations),
                _relation_deletions(state, relations),
                _entity_deletions(state, entities),
            ):
                records += part[0]
                total.deleted += part[1].deleted
                total.notFound += part[1].notFound
            return records, total

        return self._write(plan)


def _observation_deletions(state: GraphState, items: Sequence[ObservationDeletion]) -> Plan[DeleteResult]:
    updated: dict[str, Record] = {}
    deleted, not_found = 0, []
    for item in items:
        record = updated.get(item.entityName) or state.entities.get(item.entityName)
        if record is None:
            not_found.append(item.entityName)
            continue
        drop = set(item.observations)
        kept = [o for o in record.get("observations") or [] if o not in drop]
        if len(kept) != len(record.get("observations") or []):
            deleted += len(record.get("observations") or []) - len(kept)
            updated[item.entityName] = {**record, "observations": kept}
    return list(updated.values()), DeleteResult(deleted=deleted, notFound=not_found)


def _entity_deletions(state: GraphState, names: Sequence[str]) -> Plan[DeleteResult]:
    present = [n for n in dict.fromkeys(names) if n in state.entities]
    records = [{"type": "delete_entity", "name": n} for n in present]
    return records, DeleteResult(deleted=len(present), notFound=[n for n in names if n not in state.entities])


def _relation_deletions(state: GraphState, items: Sequence[RelationInput]) -> Plan[DeleteResult]:
    keys = list(dict.fromkeys(relation_key(_relation_record(i)) for i in items))
    present = [k for k in keys if k in state.relations]
    records = [{"type": "delete_relation", "from": f, "relationType": t, "to": to} for f, t, to in present]
    missing = [f"{f} -[{t}]-> {to}" for f, t, to in keys if (f, t, to) not in state.relations]
    return records, DeleteResult(deleted=len(present), notFound=missing)


def _renamed_relation(record: Record, old: str, new: str) -> Record:
    moved: dict[str, Any] = dict(record)
    for end in ("from", "to"):
        if moved[end] == old:
            moved[end] = new
    return moved
