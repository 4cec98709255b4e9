"""Page cursors: one codec for every paged call, each cursor tied to its query and checked.

A cursor is opaque, but a client can still decode, edit or reuse one. Every paged call
(read_graph in the library and as a tool, list_charts, search) must refuse a cursor that is
not its own: an edited offset (true, negative, 10^30, a float, a string), another query's or
another call's cursor, and one pointing past the end. A refusal names the cursor and says to
omit it to start over; it never comes back as some other page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from faults import SCALE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from coaia_store import InvalidInputError, Store
from coaia_store.charts import Charts
from coaia_store.search.index import SearchIndex
from coaia_store.server.app import build_server

Page = Callable[[str | None], str | None]  # a call with a cursor, giving the next cursor


def _decode(cursor: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _forge(cursor: str, offset: Any) -> str:
    data = {**_decode(cursor), "o": offset}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.fixture
def filled(store: Store) -> Store:
    charts = Charts(store)
    for i in range(4):
        charts.create_chart(desiredOutcome=f"alpha outcome {i}", currentReality="facts", dueDate="2030-01-01")
    store.create_entities([{"name": f"alpha {i}", "entityType": "note"} for i in range(6)], context="work")
    return store


@pytest.fixture
def calls(filled: Store) -> dict[str, tuple[Page, Page]]:
    """Per paged call: the query, and another query of the same call."""
    charts, index = Charts(filled), SearchIndex(filled)
    return {
        "read_graph": (
            lambda c: filled.read_graph(limit=2, cursor=c).nextCursor,
            lambda c: filled.read_graph(limit=2, cursor=c, context="work").nextCursor,
        ),
        "list_charts": (
            lambda c: charts.list_charts(limit=2, cursor=c).nextCursor,
            lambda c: charts.list_charts(limit=2, cursor=c, status="all").nextCursor,
        ),
        "search": (
            lambda c: index.search("alpha", limit=2, cursor=c).nextCursor,
            lambda c: index.search("alpha outcome", limit=2, cursor=c).nextCursor,
        ),
    }


CALLS = ["read_graph", "list_charts", "search"]
FORGED = {"true": True, "negative": -10, "10^30": 10**30, "float": 1.5, "text": "2", "null": None}


@pytest.mark.parametrize("offset", FORGED.values(), ids=FORGED.keys())
@pytest.mark.parametrize("call", CALLS)
def test_an_edited_offset_is_refused_by_every_paged_call(
    calls: dict[str, tuple[Page, Page]], call: str, offset: Any
) -> None:
    page, _ = calls[call]
    cursor = page(None)
    assert cursor is not None

    with pytest.raises(InvalidInputError, match="cursor"):
        page(_forge(cursor, offset))


@pytest.mark.parametrize("call", CALLS)
def test_a_cursor_of_another_query_of_the_same_call_is_refused(calls: dict[str, tuple[Page, Page]], call: str) -> None:
    page, other = calls[call]
    cursor = other(None)
    assert cursor is not None

    with pytest.raises(InvalidInputError, match="same arguments"):
        page(cursor)


@pytest.mark.parametrize(
    ("made_by", "given_to"), [("read_graph", "list_charts"), ("list_charts", "search"), ("search", "read_graph")]
)
def test_a_cursor_of_another_call_is_refused(calls: dict[str, tuple[Page, Page]], made_by: str, given_to: str) -> None:
    cursor = calls[made_by][0](None)

    with pytest.raises(InvalidInputError, match="invalid cursor"):
        calls[given_to][0](cursor)


def test_a_cursor_past_the_end_after_deletions_says_to_start_over(filled: Store) -> None:
    first = filled.read_graph(context="work", limit=5)
    assert first.nextCursor is not None
    filled.delete_entities(["alpha 0", "alpha 1", "alpha 2"], context="work")

    with pytest.raises(InvalidInputError, match="start over"):
        filled.read_graph(context="work", limit=5, cursor=first.nextCursor)


def test_the_page_size_may_change_between_pages(filled: Store) -> None:
    first = filled.read_graph(context="work", limit=2)
    rest = filled.read_graph(context="work", limit=10, cursor=first.nextCursor)

    names = [e.name for e in first.entities + rest.entities]
    assert names == [f"alpha {i}" for i in range(6)] and rest.nextCursor is None


@pytest.mark.anyio
@pytest.mark.parametrize("offset", [True, 10**30], ids=["true", "10^30"])
async def test_the_read_graph_tool_refuses_an_edited_cursor_instead_of_a_negative_remaining(
    filled: Store, offset: Any
) -> None:
    async with Client(build_server(filled, "full")) as client:
        first = (await client.call_tool("read_graph", {"limit": 2})).structured_content
        forged = await client.call_tool("read_graph", {"limit": 2, "cursor": _forge(first["nextCursor"], offset)})

    assert forged.is_error and "cursor" in forged.content[0].text


@pytest.mark.anyio
async def test_the_read_graph_tool_refuses_a_cursor_of_another_context(filled: Store) -> None:
    async with Client(build_server(filled, "full")) as client:
        first = (await client.call_tool("read_graph", {"limit": 2, "context": "work"})).structured_content
        other = await client.call_tool("read_graph", {"limit": 2, "cursor": first["nextCursor"]})

    assert other.is_error and "same arguments" in other.content[0].text


_offsets = st.one_of(
    st.integers(-3, 20),
    st.integers(),
    st.booleans(),
    st.floats(),
    st.text(max_size=4),
    st.none(),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=_offsets)
def test_any_edited_offset_is_refused_or_gives_exactly_the_page_it_names(filled: Store, offset: Any) -> None:
    everything = [e.name for e in filled.read_graph().entities]
    cursor = _forge(filled.read_graph(limit=2).nextCursor or "", offset)
    genuine = type(offset) is int and 0 <= offset <= len(everything)

    try:
        page = filled.read_graph(limit=2, cursor=cursor)
    except InvalidInputError:
        assert not genuine
        return
    assert genuine and [e.name for e in page.entities] == everything[offset : offset + 2]
