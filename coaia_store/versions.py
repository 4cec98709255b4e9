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

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from .merge import Conflict, common_base, merge_heads, order_key, prev_of
from .storage.lines import Record

K = TypeVar("K", bound=Hashable)


class Versions(Generic[K]):
    """Per key: every version with an ``_op``, the ops named as replaced, and the current heads."""

    def __init__(self) -> None:
        self.versions: dict[K, dict[str, Record]] = {}
        self.replaced: dict[K, set[str]] = {}
        self.heads: dict[K, list[Record]] = {}
        self.merged: set[K] = set()  # keys that ever had concurrent versions: where conflicts are

    def export(self) -> tuple[object, ...]:
        return (self.versions, self.replaced, self.heads, self.merged)

    def restore(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 4 and all(isinstance(s, (dict, set)) for s in state)):
            raise ValueError("not a version state")
        self.versions, self.replaced, self.heads, self.merged = state  # type: ignore[assignment]

    def add(self, key: K, record: Record) -> bool:
        """Take in one version; ``False`` if this very version was already there (nothing changes)."""
        op = record.get("_op")
        if isinstance(op, str):
            known = self.versions.setdefault(key, {})
            if op in known:
                return False
            known[op] = record
        replaced = self.replaced.setdefault(key, set())
        prev = prev_of(record)
        if prev is None:  # written before _prev existed: file order decides, as it always did
            if not (isinstance(op, str) and op in replaced):
                self.heads[key] = [record]
            return True
        replaced.update(prev)
        kept = [h for h in self.heads.get(key, ()) if isinstance(h.get("_op"), str) and h["_op"] not in prev]
        if not (isinstance(op, str) and op in replaced):
            kept.append(record)
        self.heads[key] = kept
        if len(kept) > 1 or len(prev) > 1:
            self.merged.add(key)
        return True

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
        return merge_heads(heads, common_base(heads, self.versions.get(key, {})))

    def concurrent(self, key: K) -> bool:
        return len(self.heads.get(key, ())) > 1

    def all_versions(self, key: K) -> list[Record]:
        return sorted(self.versions.get(key, {}).values(), key=order_key)

    def settled_conflicts(self, key: K) -> Iterator[tuple[Record, list[Conflict]]]:
        """For each version written on top of concurrent ones: the conflicts of the merge it settled."""
        known = self.versions.get(key, {})
        for record in known.values():
            parents = [known[p] for p in prev_of(record) or () if p in known]
            if len(parents) > 1:
                _, conflicts = merge_heads(parents, common_base(parents, known))
                if conflicts:
                    yield record, conflicts
