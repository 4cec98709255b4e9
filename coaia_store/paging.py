"""Opaque page cursors shared by every paginated read (graph, search, charts)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import InvalidInputError


def page_cursor(offset: int, scope: str = "") -> str:
    """The cursor of the page starting at ``offset``; ``scope`` ties it to one query's arguments."""
    data = {"o": offset, "s": scope} if scope else {"o": offset}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def cursor_offset(cursor: str | None, scope: str = "") -> int:
    """Where the page a cursor names starts; ``InvalidInputError`` for a cursor of another query, or not ours."""
    if not cursor:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = data["o"]
        if not isinstance(offset, int) or offset < 0 or data.get("s", "") != scope:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise InvalidInputError(
            f"invalid cursor {cursor!r}: pass back the nextCursor of the previous page of the same call "
            "(same arguments), or omit it to start over"
        ) from None


REPLY_BUDGET = 50_000  # characters of items one page may hold: about 12k tokens, well under what clients accept

T = TypeVar("T")


def bounded_page(items: Sequence[T], start: int, limit: int, size: Callable[[T], int], budget: int) -> tuple[list[T], int]:
    """Up to ``limit`` items from ``start``, stopping before their sizes add up past ``budget`` (always at
    least one); also returns where the next page starts."""
    page: list[T] = []
    used = 0
    for item in items[start:start + limit]:
        used += size(item)
        if page and used > budget:
            break
        page.append(item)
    return page, start + len(page)
