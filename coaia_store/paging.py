"""Opaque page cursors shared by every paginated read (graph, search, charts): one codec for all.

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

from .errors import InvalidInputError


class Pager:
    """The cursors of one paged query, named by ``query``: the call's name and the arguments that choose
    and order its results (JSON values)."""

    def __init__(self, *query: object) -> None:
        text = json.dumps(query, sort_keys=True, default=str, ensure_ascii=False)
        self.scope = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()

    def cursor(self, end: int, total: int) -> str | None:
        """The cursor of the page starting at ``end``; ``None`` when ``end`` is the last result."""
        if end >= total:
            return None
        data = json.dumps({"o": end, "s": self.scope}, separators=(",", ":"))
        return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")

    def offset(self, cursor: str | None, total: int) -> int:
        """Where the page ``cursor`` names starts among ``total`` results (0 without one); ``InvalidInputError``
        for a cursor that is not ours, belongs to another query, or points past the end."""
        if not cursor:
            return 0
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            offset = data["o"]
            if type(offset) is not int or offset < 0 or data.get("s") != self.scope:
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error):
            raise InvalidInputError(
                f"invalid cursor {str(cursor)[:80]!r}: pass back the nextCursor of the previous page of the same call "
                "(same arguments), or omit it to start over"
            ) from None
        if offset > total:
            raise InvalidInputError(
                f"the cursor points past the end of the results (result {offset + 1}, but there are {total} now): "
                "entries were removed since it was made; omit cursor to start over"
            )
        return offset
