"""Opaque page cursors shared by every paginated read (graph, search, charts, history), and bounded pages."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import InvalidInputError


def page_cursor(offset: int, scope: str = "") -> str:
    """The cursor of the page starting at ``offset``; ``scope`` ties it to one query's arguments."""
    return _encode({"o": offset, "s": scope} if scope else {"o": offset})


def cursor_offset(cursor: str | None, scope: str = "") -> int:
    """Where the page a cursor names starts; ``InvalidInputError`` for a cursor of another query, or not ours."""
    if not cursor:
        return 0
    offset = _decode(cursor, scope).get("o")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _invalid(cursor)
    return offset


def after_cursor(key: str, scope: str = "") -> str:
    """The cursor of the page that follows item ``key``: it keeps its place in a list that grows at its head
    (the newest operations first) where an offset would show items twice."""
    return _encode({"a": key, "s": scope})


def cursor_after(cursor: str | None, scope: str = "") -> str | None:
    """The item a cursor of :func:`after_cursor` follows (``None``: no cursor, the first page)."""
    if not cursor:
        return None
    key = _decode(cursor, scope).get("a")
    if not isinstance(key, str):
        raise _invalid(cursor)
    return key


def _encode(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _decode(cursor: str, scope: str) -> dict[str, object]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise _invalid(cursor) from None
    if not isinstance(data, dict) or data.get("s", "") != scope:
        raise _invalid(cursor)
    return data


def _invalid(cursor: object) -> InvalidInputError:
    return InvalidInputError(
        f"invalid cursor {cursor!r}: pass back the nextCursor of the previous page of the same call "
        "(same arguments), or omit it to start over"
    )


REPLY_BUDGET = 50_000  # characters of items one page may hold: about 12k tokens, well under what clients accept

T = TypeVar("T")


def bounded_page(items: Sequence[T], start: int, limit: int, size: Callable[[T], int],
                 budget: int) -> tuple[list[T], int]:
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
