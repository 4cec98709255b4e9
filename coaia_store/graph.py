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

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from .errors import ConflictError, NotFoundError
from .models import (
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
from .storage.journal import ENVELOPE_KEYS, InvalidRecord, Journal
from .storage.lines import Record

R = TypeVar("R")
RelKey = tuple[str, str, str]  # (from, relationType, to)
Plan = tuple[list[Record], R]
IfExists = Literal["error", "skip"]

ENTITY_TYPES = frozenset({"entity", "narrative_beat"})
_NO_LIST: list[str] = []  # what a record without observations counts as
_HIDDEN_KEYS = ENVELOPE_KEYS | {"type"}


class GraphState:
    """Entities, relations and pass-through records, indexed for lookups by name."""

    state_format = "graph-state-1"  # change it whenever export_state() changes shape

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.entities: dict[str, Record] = {}
        self.relations: dict[RelKey, Record] = {}
        self.links: dict[str, set[RelKey]] = {}
        self.extras: list[Record] = []

    def live_records(self) -> int:
        return len(self.entities) + len(self.relations) + len(self.extras)

    def snapshot(self) -> Iterator[Record]:
        yield from self.extras
        yield from self.entities.values()
        yield from self.relations.values()

    def export_state(self) -> object:
        return (self.entities, self.relations, self.links, self.extras)

    def import_state(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 4):
            raise ValueError("not a graph state")
        entities, relations, links, extras = state
        if not (isinstance(entities, dict) and isinstance(relations, dict) and isinstance(links, dict)
                and isinstance(extras, list)):
            raise ValueError("not a graph state")
        self.entities, self.relations, self.links, self.extras = entities, relations, links, extras

    def apply_all(self, records: list[Record]) -> None:
        if len(records) == 1:  # the common case on load: kept cheap
            record = records[0]
            _APPLY.get(checked_kind(record), GraphState._keep_extra)(self, record)
            return
        kinds = [checked_kind(record) for record in records]  # every record checked before any applies
        for record, kind in zip(records, kinds, strict=True):
            _APPLY.get(kind, GraphState._keep_extra)(self, record)

    def relations_of(self, name: str) -> list[Record]:
        return [self.relations[key] for key in self.links.get(name, ())]

    def _put_entity(self, record: Record) -> None:
        self.entities[record["name"]] = record

    def _delete_entity(self, record: Record) -> None:
        name = record["name"]
        self.entities.pop(name, None)
        for key in self.links.pop(name, set()):
            self.relations.pop(key, None)
            other = key[2] if key[0] == name else key[0]
            self.links.get(other, set()).discard(key)

    def _put_relation(self, record: Record) -> None:
        key = relation_key(record)
        self.relations[key] = record
        self.links.setdefault(key[0], set()).add(key)
        self.links.setdefault(key[2], set()).add(key)

    def _delete_relation(self, record: Record) -> None:
        key = relation_key(record)
        if self.relations.pop(key, None) is not None:
            for end in (key[0], key[2]):
                self.links.get(end, set()).discard(key)

    def _keep_extra(self, record: Record) -> None:
        self.extras.append(record)


_APPLY: dict[str, Callable[[GraphState, Record], None]] = {
    "entity": GraphState._put_entity,
    "narrative_beat": GraphState._put_entity,
    "relation": GraphState._put_relation,
    "delete_entity": GraphState._delete_entity,
    "delete_relation": GraphState._delete_relation,
}
_NEEDS: dict[str, tuple[str, ...]] = {
    "entity": ("name",),
    "narrative_beat": ("name",),
    "delete_entity": ("name",),
    "relation": ("from", "to", "relationType"),
    "delete_relation": ("from", "to", "relationType"),
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
    extra = {k: v for k, v in record.items() if k not in _HIDDEN_KEYS and k not in ("from", "to", "relationType", "metadata")}
    return Relation.model_validate(
        {"from": record["from"], "to": record["to"], "relationType": record["relationType"],
         "metadata": record.get("metadata"), "context": context, **extra}
    )


def _entity_record(item: EntityInput) -> Record:
    record: Record = {"type": "entity", "name": item.name, "entityType": item.entityType, "observations": list(item.observations)}
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

    def __init__(self, context: str, journal_factory: Callable[[GraphState], Journal]) -> None:
        self.context = context
        self.state = GraphState()
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
                return ([new] if changed else []), UpdateEntityResult(entity=entity_view(new, self.context), changed=changed)
            assert change.newName is not None
            if change.newName in state.entities:
                raise ConflictError(
                    f"cannot rename {change.name!r} to {change.newName!r}: that name is taken in context {self.context!r}"
                )
            new["name"] = change.newName
            moved = [_renamed_relation(r, change.name, change.newName) for r in state.relations_of(change.name)]
            records = [{"type": "delete_entity", "name": change.name}, new, *moved]
            return records, UpdateEntityResult(entity=entity_view(new, self.context), relationsMoved=len(moved), changed=True)

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
            for part in (_observation_deletions(state, observations), _relation_deletions(state, relations),
                         _entity_deletions(state, entities)):
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
