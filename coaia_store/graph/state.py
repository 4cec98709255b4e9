"""The state of one context's graph, folded from its journal's records, and views of those records.

Records on disk (all keep any other keys they carry, untouched):
* ``entity`` (and coaia-narrative's ``narrative_beat``): the entity's whole current state;
* ``relation``: one relation, keyed by ``(from, relationType, to)``;
* ``delete_entity`` / ``delete_relation``: tombstones; deleting an entity drops its relations;
* anything else (comments, other tools' marker lines): kept as it is and written back on compaction.

The operations that change a graph are in :mod:`.context_graph`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

from ..models import Entity, Relation
from ..storage.envelope import ENVELOPE_KEYS
from ..storage.lines import HEADER_TYPE, Record
from ..storage.sink import InvalidRecord
from .merge import DROPS, PREV, Conflict, is_tombstone, prev_of
from .versions import Loader, Versions

K = TypeVar("K", bound=Hashable)
RelKey = tuple[str, str, str]  # (from, relationType, to)

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
