"""The versions of each entity (or relation) a context's file holds, and which of them are heads.

Every record written since git support names in ``_prev`` the versions it replaced (the ``_op`` of
each head it saw). A version that some other version names is superseded; the rest are the
*heads*. One clone writing alone always has one head per name, so replay gives the same state as
plain file order. After a git merge a name can have several heads (changes made on two clones
without seeing each other); :mod:`.merge` turns them into one state. Which versions are heads
depends only on which lines the file holds, never on their order, and a line present twice (same
``_op`` for the same name) counts once. Records written before ``_prev`` existed (no ``_prev``
key) keep the old rule: each replaces the state, in file order.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from ..storage.lines import Record
from .merge import Conflict, lowest_common, merge_heads, order_key, prev_of

K = TypeVar("K", bound=Hashable)
AT = "_at"  # in a stub: the file offset of the line holding the version
Loader = Callable[[int], list[Record]]  # the records of the line at an offset of the file


class Versions(Generic[K]):
    """Per key: every version with an ``_op``, the ops named as replaced, and the current heads.

    A version that is no longer a head is kept as a *stub* (its ``_op``, ``_ts``, ``_prev`` and the
    offset of its line): a merge that needs it as a base reads it back from the file. So memory holds
    the live state plus a few dozen bytes per older version, not every version's whole state.
    """

    def __init__(self, matches: Callable[[K, Record], bool]) -> None:
        self._matches = matches
        self.loader: Loader | None = None
        self.reset()

    def reset(self) -> None:
        self.versions: dict[K, dict[str, Record]] = {}
        self.replaced: dict[K, set[str]] = {}
        self.heads: dict[K, list[Record]] = {}
        self.merged: set[K] = set()  # keys that ever had concurrent versions: where conflicts are
        self.where: dict[tuple[K, str], int] = {}  # (key, op) -> offset of its line, for heads read from the file

    def export(self) -> tuple[object, ...]:
        return (self.versions, self.replaced, self.heads, self.merged, self.where)

    def restore(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and all(isinstance(s, (dict, set)) for s in state)):
            raise ValueError("not a version state")
        self.versions, self.replaced, self.heads, self.merged, self.where = state  # type: ignore[assignment]

    def add(self, key: K, record: Record, at: int | None = None) -> bool:
        """Take in one version (read at offset ``at`` of the file, if it was); ``False`` if this very
        version was already there (nothing changes)."""
        op = record.get("_op")
        if isinstance(op, str):
            known = self.versions.setdefault(key, {})
            if op in known:
                return False
            known[op] = record
            if at is not None:
                self.where[(key, op)] = at
        replaced = self.replaced.setdefault(key, set())
        prev = prev_of(record)
        if prev is not None and op in prev:  # a damaged or hand-made line cannot hide itself
            prev = [p for p in prev if p != op]
        before = self.heads.get(key, [])
        if (
            prev is not None
            and len(prev) == 1
            and len(before) == 1
            and before[0].get("_op") == prev[0] != op
            and op not in replaced
        ):
            replaced.add(prev[0])  # the common case, one clone writing alone: the new version replaces the head
            self.heads[key] = [record]
            self._retire(key, before[0])
            return True
        if prev is None:  # written before _prev existed: file order decides, as it always did
            kept = before if isinstance(op, str) and op in replaced else [record]
        else:
            replaced.update(prev)
            kept = [h for h in before if isinstance(h.get("_op"), str) and h["_op"] not in prev]
            if not (isinstance(op, str) and op in replaced):
                kept.append(record)
            if len(kept) > 1 or len(prev) > 1:
                self.merged.add(key)
        self.heads[key] = kept
        for gone in [*before, record]:
            if not any(h is gone for h in kept):
                self._retire(key, gone)
        return True

    def _retire(self, key: K, record: Record) -> None:
        """A version that is no longer a head: keep a stub if its line can be read back."""
        op = record.get("_op")
        at = self.where.pop((key, op), None) if type(op) is str else None
        if at is not None and self.loader is not None:
            self.versions[key][op] = {"_op": op, "_ts": record.get("_ts"), "_prev": record.get("_prev"), AT: at}  # type: ignore[index]

    def _full(self, key: K, record: Record) -> Record | None:
        """The whole version behind a stub (``None`` if its line cannot be read back)."""
        at = record.get(AT)
        if not isinstance(at, int):
            return record
        found = [
            m
            for m in (self.loader(at) if self.loader else [])
            if self._matches(key, m) and m.get("_op") == record.get("_op")
        ]
        return found[0] if found else None

    def clear(self, key: K) -> None:
        """No head any more (an old-style delete of an entity took its relations with it)."""
        self.heads[key] = []

    def head_ops(self, key: K) -> list[str]:
        return sorted(h["_op"] for h in self.heads.get(key, ()) if isinstance(h.get("_op"), str))

    def resolve(self, key: K) -> tuple[Record | None, list[Conflict]]:
        """The state the heads of ``key`` stand for (``None``: absent) and its open conflicts."""
        heads = self.heads.get(key, [])
        if len(heads) <= 1:
            return (heads[0] if heads else None), []
        return merge_heads(heads, lambda merged, head: self._base(key, merged, head))

    def _base(self, key: K, merged: list[Record], head: Record) -> Record | None:
        found = [
            v for b in lowest_common(merged, head, self.versions.get(key, {})) if (v := self._full(key, b)) is not None
        ]
        if len(found) <= 1:
            return found[0] if found else None
        virtual, _ = merge_heads(found, lambda done, next_head: self._base(key, done, next_head))
        return virtual

    def concurrent(self, key: K) -> bool:
        return len(self.heads.get(key, ())) > 1

    def all_versions(self, key: K) -> list[Record]:
        full = (self._full(key, v) for v in self.versions.get(key, {}).values())
        return sorted((v for v in full if v is not None), key=order_key)

    def settled_conflicts(self, key: K) -> Iterator[tuple[Record, list[Conflict]]]:
        """For each version written on top of concurrent ones: the conflicts of the merge it settled."""
        known = self.versions.get(key, {})
        for record in known.values():
            parents = [v for p in prev_of(record) or () if p in known and (v := self._full(key, known[p])) is not None]
            if len(parents) > 1:
                _, conflicts = merge_heads(parents, lambda merged, head: self._base(key, merged, head))
                if conflicts:
                    yield record, conflicts
