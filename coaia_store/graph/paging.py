"""Opaque page cursors shared by every paginated read (graph, search, charts, history), and bounded pages.

A cursor holds where the next page starts and a fingerprint of the query that made it, so it
is only accepted by the same call with the same arguments (the page size may change), and its
offset is checked against the results: a cursor that is not ours, belongs to another query, or
points past the end is refused with a message saying what to do, never read as some other page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..errors import InvalidInputError

T = TypeVar("T")


class Pager:
    """The cursors of one paged query, named by ``query``: the call's name and the arguments that choose
    and order its results (JSON values)."""

    def __init__(self, *query: object) -> None:
        text = json.dumps(query, sort_keys=True, default=str, ensure_ascii=False)
        self.scope = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()

    def cursor(self, end: int, total: int) -> str | None:
        """The cursor of the page starting at ``end``; ``None`` when ``end`` is the last result."""
        return None if end >= total else self._encode("o", end)

    def after(self, key: str) -> str:
        """The cursor of the page that follows item ``key``: it keeps its place in a list that grows at its head
        (the newest operations first) where an offset would show items twice."""
        return self._encode("a", key)

    def key_after(self, cursor: str | None) -> str | None:
        """The item a cursor of :meth:`after` follows (``None``: no cursor, the first page)."""
        return self._decode(cursor, "a", str) if cursor else None

    def offset(self, cursor: str | None, total: int) -> int:
        """Where the page ``cursor`` names starts among ``total`` results (0 without one); ``InvalidInputError``
        for a cursor that is not ours, belongs to another query, or points past the end."""
        if not cursor:
            return 0
        offset = self._decode(cursor, "o", int)
        if offset < 0:
            raise _invalid(cursor)
        if offset > total:
            raise InvalidInputError(
                f"the cursor points past the end of the results (result {offset + 1}, but there are {total} now): "
                "entries were removed since it was made; omit cursor to start over"
            )
        return offset

    def _encode(self, field: str, value: int | str) -> str:
        data = json.dumps({field: value, "s": self.scope}, separators=(",", ":"))
        return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")

    def _decode(self, cursor: str, field: str, kind: type[T]) -> T:
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            value = data[field]
            if type(value) is not kind or data.get("s") != self.scope:
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error):
            raise _invalid(cursor) from None
        return value  # type: ignore[no-any-return]


def _invalid(cursor: object) -> InvalidInputError:
    return InvalidInputError(
        f"invalid cursor {str(cursor)[:80]!r}: pass back the nextCursor of the previous page of the same call "
        "(same arguments), or omit it to start over"
    )


REPLY_BUDGET = (
    40_000  # characters of compact JSON per copy of a reply: text + structured stay under 100 kB (25k tokens)
)
PAGE_BUDGET = 36_000  # what the items of one page may take of that (the rest: the page's other fields)


def bounded_page(
    items: Sequence[T], start: int, limit: int, size: Callable[[T], int], budget: int
) -> tuple[list[T], int]:
    """Up to ``limit`` items from ``start``, stopping before their sizes add up past ``budget`` (always at
    least one); also returns where the next page starts."""
    page: list[T] = []
    used = 0
    for item in items[start : start + limit]:
        used += size(item)
        if page and used > budget:
            break
        page.append(item)
    return page, start + len(page)
