"""Merging concurrent versions of one entity or relation, as two git clones write them.

A record names the versions it was based on in ``_prev`` (the ``_op`` of each head it saw). Two
records based on the same version, each unaware of the other, are *concurrent*: after a git merge
both are heads, and the state shown is their merge against the version both descend from (the
*base*; after criss-cross merges, the merge of the several such versions, as git does), computed
the same way on every clone whatever the order of the lines. Several heads merge one at a time:

* observations are a set: what any side added is kept, what any side removed from the base is
  removed. In the entities of a chart (:data:`TITLED_TYPES`) the first observation is a field,
  not a member of the set: a step's title, the desired outcome, the reality's first fact;
* every other field (``metadata`` key by key, and top-level keys) keeps the base's value unless a
  side changed it; when sides changed it to different values, the change of the head with the
  later ``(_ts, _op)`` wins, and a :class:`Conflict` records every value;
* a deletion concurrent with a change is a conflict too; the later of them decides.

Without a common ancestor (two clones created the same name, or the base was compacted away) every
observation is kept, and a chart entity's title is the later head's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..storage.lines import Record

PREV = "_prev"
DROPS = "_drops"  # in an entity's tombstone: the relations deleted with it, [from, type, to, prev]
TOMBSTONES = frozenset({"delete_entity", "delete_relation"})
TITLED_TYPES = frozenset({"structural_tension_chart", "desired_outcome", "current_reality", "action_step"})
_MISSING: Any = object()
_MERGED_BY_HAND = frozenset({"observations", "metadata", "name", "from", "to", "relationType"})
# Bookkeeping that changes with every write: merged without calling it a conflict.
_QUIET: dict[str, Callable[[list[Any]], Any]] = {
    "updatedAt": lambda values: max(values, key=str),
    "actionSeq": lambda values: max(values, key=lambda v: v if isinstance(v, int) else 0),
    "completedAt": lambda values: min(values, key=str),
    "createdAt": lambda values: min(values, key=str),  # one relation (or name) created on two clones
}

Conflict = dict[str, Any]  # {"field", "values": [{"value", "op", "ts", "by"}], "chosen"}


def order_key(record: Mapping[str, Any]) -> tuple[str, str]:
    """How concurrent versions are ordered: hybrid-clock time, then operation id."""
    return (str(record.get("_ts") or ""), str(record.get("_op") or ""))


def prev_of(record: Mapping[str, Any]) -> list[str] | None:
    """The ops a record was based on; ``None`` for a record written before ``_prev`` existed."""
    prev = record.get(PREV)
    if type(prev) is not list:
        return None
    return prev if all(type(p) is str for p in prev) else [p for p in prev if isinstance(p, str)]


def is_tombstone(record: Mapping[str, Any]) -> bool:
    return record.get("type") in TOMBSTONES


def lowest_common(merged: list[Record], head: Record, versions: Mapping[str, Record]) -> list[Record]:
    """The versions ``head`` and the ``merged`` heads both descend from that no other such version descends
    from: usually one; several after criss-cross merges (then their merge is the base, as git does)."""
    common = set().union(*(_ancestors(h, versions) for h in merged)) & _ancestors(head, versions)
    covered = {p for op in common for p in prev_of(versions[op]) or ()}  # common is closed under ancestry
    return sorted((versions[op] for op in common - covered), key=order_key)


def _ancestors(head: Record, versions: Mapping[str, Record]) -> set[str]:
    seen: set[str] = set()
    pending = [head.get("_op")]
    while pending:
        op = pending.pop()
        if not isinstance(op, str) or op in seen or op not in versions:
            continue
        seen.add(op)
        pending += prev_of(versions[op]) or []
    return seen


BaseOf = Callable[[list[Record], Record], "Record | None"]  # (heads merged so far, next head) -> their base


def merge_heads(heads: list[Record], base_of: BaseOf) -> tuple[Record | None, list[Conflict]]:
    """The state several concurrent heads stand for (``None``: deleted), and the conflicts found.

    Heads are merged one at a time in ``(_ts, _op)`` order, each against its base with the ones
    merged before it (as git merges several branches): a head that only carries a value another
    head's ancestor had does not count as changing it.
    """
    ordered = sorted(heads, key=order_key)
    live = [h for h in ordered if not is_tombstone(h)]
    conflicts: list[Conflict] = []
    if live and len(live) < len(ordered):
        conflicts.append(
            _conflict(
                "deleted",
                [(h, "deleted" if is_tombstone(h) else "changed") for h in ordered],
                "deleted" if is_tombstone(ordered[-1]) else "changed",
            )
        )
        if is_tombstone(ordered[-1]):
            return None, conflicts
    if not live:
        return None, conflicts
    merged = live[0]
    for index in range(1, len(live)):
        base = base_of(live[:index], live[index])
        merged = _merge_live([merged, live[index]], None if base is None or is_tombstone(base) else base, conflicts)
    return merged, _combined(conflicts, merged, live)


def _combined(conflicts: list[Conflict], merged: Record, heads: list[Record]) -> list[Conflict]:
    """One conflict per field, with every side's value (three clones changing one field: one conflict).

    Merging one head at a time, a value can lose to one head and the winner then lose to the next one's
    change: the value finally chosen is listed too, with the head that carries it.
    """
    by_field: dict[str, Conflict] = {}
    for conflict in conflicts:
        kept = by_field.setdefault(conflict["field"], {**conflict, "values": []})
        kept["values"] += [v for v in conflict["values"] if v not in kept["values"]]
    for conflict in by_field.values():
        field = conflict["field"]
        conflict["chosen"] = _value_of(merged, field, conflict["chosen"])
        carriers = [h for h in heads if _value_of(h, field, None) == conflict["chosen"]]
        if carriers and conflict["chosen"] not in [v["value"] for v in conflict["values"]]:
            conflict["values"] += _conflict(field, [(carriers[-1], conflict["chosen"])], None)["values"]
    return list(by_field.values())


def _value_of(record: Record, field: str, default: Any) -> Any:
    if field == "observations[0]":
        observations = _observations(record)
        return observations[0] if observations else None
    if field.startswith("metadata."):
        data = record.get("metadata")
        return data.get(field.removeprefix("metadata.")) if isinstance(data, dict) else None
    return record.get(field, default)


def _merge_live(heads: list[Record], base: Record | None, conflicts: list[Conflict]) -> Record:
    merged = dict(heads[-1])
    base_record = base or {}
    keys = dict.fromkeys(k for h in heads for k in h if not k.startswith("_") and k not in _MERGED_BY_HAND)
    for key in keys:
        _set(
            merged,
            key,
            _field(
                key, base_record.get(key, _MISSING), [(h, h.get(key, _MISSING)) for h in heads], conflicts, quiet=False
            ),
        )
    if any("metadata" in h for h in heads):
        merged["metadata"] = _merge_metadata(heads, base_record, conflicts)
    if any("observations" in h for h in heads):
        merged["observations"] = _merge_observations(heads, base, conflicts)
    return merged


def _merge_metadata(heads: list[Record], base: Record, conflicts: list[Conflict]) -> dict[str, Any]:
    def data(record: Record) -> dict[str, Any]:
        value = record.get("metadata")
        return value if isinstance(value, dict) else {}

    result: dict[str, Any] = {}
    base_data = data(base)
    for key in dict.fromkeys(k for r in (base, *heads) for k in data(r)):
        value = _field(
            f"metadata.{key}",
            base_data.get(key, _MISSING),
            [(h, data(h).get(key, _MISSING)) for h in heads],
            conflicts,
            quiet=key in _QUIET,
        )
        _set(result, key, value)
    return result


def _field(name: str, base: Any, values: list[tuple[Record, Any]], conflicts: list[Conflict], *, quiet: bool) -> Any:
    """Three-way merge of one field: unchanged, changed on one side, or a conflict the later side wins."""
    changed = [(h, v) for h, v in values if v != base]
    distinct = list({_hashable(v): v for _, v in changed}.values())
    if not changed:
        return base
    if len(distinct) == 1:
        return distinct[0]
    key = name.removeprefix("metadata.")
    present = [v for v in distinct if v is not _MISSING]
    if quiet and present:
        return _QUIET[key](present)
    winner = changed[-1][1]  # heads are in (_ts, _op) order
    conflicts.append(_conflict(name, changed, winner))
    return winner


def _merge_observations(heads: list[Record], base: Record | None, conflicts: list[Conflict]) -> list[Any]:
    lists = [(h, _observations(h)) for h in heads]
    base_list = _observations(base) if base is not None else []
    if heads[-1].get("entityType") not in TITLED_TYPES:
        return _merge_set(base_list, [obs for _, obs in lists])
    if base is None:
        firsts = [(h, obs[0]) for h, obs in lists if obs]
        title = firsts[-1][1] if firsts else _MISSING
        if len({_hashable(v) for _, v in firsts}) > 1:
            conflicts.append(_conflict("observations[0]", firsts, title))
        rest = [o for o in _merge_set([], [obs for _, obs in lists]) if _hashable(o) != _hashable(title)]
        return rest if title is _MISSING else [title, *rest]
    if not base_list:
        return _merge_set([], [obs for _, obs in lists])
    title = _field(
        "observations[0]", base_list[0], [(h, obs[0] if obs else _MISSING) for h, obs in lists], conflicts, quiet=False
    )
    rest = _merge_set(base_list[1:], [obs[1:] for _, obs in lists])
    if title is _MISSING:
        return rest
    return [title, *(o for o in rest if o != title)]


def _merge_set(base: list[Any], sides: list[list[Any]]) -> list[Any]:
    base_keys = {_hashable(o) for o in base}
    removed = {k for side in sides for k in base_keys - {_hashable(o) for o in side}}
    kept = [o for o in base if _hashable(o) not in removed]
    added = [o for side in sides for o in side if _hashable(o) not in base_keys]
    return list({_hashable(o): o for o in [*kept, *added]}.values())


def _observations(record: Record) -> list[Any]:
    value = record.get("observations")
    return value if isinstance(value, list) else []


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    if value is _MISSING:
        target.pop(key, None)
    else:
        target[key] = value


def _hashable(value: Any) -> Any:
    if value is _MISSING or isinstance(value, (str, int, float, bool, type(None))):
        return value
    return ("json", json.dumps(value, sort_keys=True, default=str))


def _conflict(name: str, values: list[tuple[Record, Any]], chosen: Any) -> Conflict:
    return {
        "field": name,
        "values": [
            {
                "value": None if v is _MISSING else v,
                "op": h.get("_op"),
                "ts": h.get("_ts"),
                **({"by": h["_by"]} if "_by" in h else {}),
            }
            for h, v in values
        ],
        "chosen": None if chosen is _MISSING else chosen,
    }
