"""``Graph``: one context's knowledge graph, its journal, and the operations on it.

Every operation validates against the freshest state under the write lock and returns the
records to append; an operation that changes nothing appends nothing (safe to retry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from ..errors import ConflictError, NotFoundError
from ..models import (
    AddObservationsResult,
    CreateEntitiesResult,
    CreateRelationsResult,
    DeleteResult,
    EntityInput,
    EntityUpdate,
    ObservationDeletion,
    ObservationsAdded,
    ObservationsInput,
    RelationInput,
    UpdateEntityResult,
    WriteResult,
)
from ..storage.journal import Journal
from ..storage.lines import Record
from .state import GraphState, RelKey, entity_view, relation_key, relation_view

R = TypeVar("R")
Plan = tuple[list[Record], R]
IfExists = Literal["error", "skip"]


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
