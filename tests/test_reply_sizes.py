"""Every reply stays under 100 kB (25k tokens) however large the store, and says what it left out.

The stores are built through the library with ``fsync: never`` (speed only: durability is not under test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client

from coaia_store import Store, StoreConfig
from coaia_store.server.app import build_server

pytestmark = pytest.mark.anyio
LIMIT = 100_000
ENTITIES = 40_000
CONTEXTS = 400


def _size(result: Any) -> int:
    text = sum(len(c.text.encode()) for c in result.content)
    return text + len(json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":")).encode())


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """40,000 entities (with a relation each) in one context."""
    with Store(tmp_path_factory.mktemp("big") / ".coaia", config=StoreConfig(fsync="never")) as store:
        for start in range(0, ENTITIES, 4_000):
            store.create_entities(
                [
                    {
                        "name": f"entity_{i:05d}",
                        "entityType": "note",
                        "observations": [f"Observation about topic {i % 97} number {i}"],
                    }
                    for i in range(start, start + 4_000)
                ]
            )
            store.create_relations(
                [
                    {
                        "from": f"entity_{i:05d}",
                        "to": f"entity_{max(start, (i + 1) % (start + 4_000)):05d}",
                        "relationType": "follows",
                    }
                    for i in range(start, start + 4_000)
                ]
            )
        yield store


@pytest.fixture(scope="module")
def many_contexts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """400 contexts, written as the official memory server writes its file (read as is, without writes)."""
    directory = tmp_path_factory.mktemp("wide") / ".coaia"
    directory.mkdir()
    for i in range(CONTEXTS):
        lines = [
            {"type": "entity", "name": f"note_{i}", "entityType": "note", "observations": ["x"]},
            {"type": "entity", "name": f"person_{i}", "entityType": "person", "observations": ["y"]},
            {"type": "relation", "from": f"person_{i}", "to": f"note_{i}", "relationType": "wrote"},
        ]
        (directory / f"charts-project-{i:03d}.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    with Store(directory) as store:
        yield store


async def test_memory_read_graph_at_40k_entities_is_cut_with_a_note(big_store: Store) -> None:
    async with Client(build_server(big_store, "memory")) as c:
        result = await c.call_tool("read_graph", {})

    assert _size(result) < LIMIT and result.structured_content["entities"]
    assert "search_nodes or open_nodes" in result.content[-1].text


@pytest.mark.parametrize("mode", ["summary", "full"])
async def test_read_graph_at_40k_entities_is_a_bounded_page(big_store: Store, mode: str) -> None:
    async with Client(build_server(big_store, "full")) as c:
        result = await c.call_tool("read_graph", {"mode": mode, "limit": 500})

    assert (
        _size(result) < LIMIT and result.structured_content["remaining"] > 0 and result.structured_content["nextCursor"]
    )


async def test_the_graph_resource_at_40k_entities_is_cut_with_a_note(big_store: Store) -> None:
    async with Client(build_server(big_store, "full")) as c:
        text = (await c.read_resource("coaia://graph/default")).contents[0].text

    assert len(text.encode()) < LIMIT and "read_graph" in json.loads(text)["note"]


async def test_memory_search_nodes_matching_everything_stays_bounded(big_store: Store) -> None:
    async with Client(build_server(big_store, "memory")) as c:
        result = await c.call_tool("search_nodes", {"query": "observation"})

    assert _size(result) < LIMIT


async def test_storage_status_with_400_contexts_pages_them(many_contexts: Store) -> None:
    async with Client(build_server(many_contexts, "full")) as c:
        first = await c.call_tool("storage_status", {})
        data = first.structured_content
        second = await c.call_tool("storage_status", {"cursor": data["nextCursor"]})

    assert _size(first) < LIMIT and data["totalContexts"] == CONTEXTS and len(data["contexts"]) == 100
    assert second.structured_content["contexts"][0]["name"] == "project-100"


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("validate_integrity", {}),
        ("advancement_report", {}),
        ("backups", {}),
        ("history", {"context": "project-007"}),
        ("list_charts", {"limit": 100}),
    ],
)
async def test_store_wide_tools_with_400_contexts_stay_bounded(
    many_contexts: Store, tool: str, args: dict[str, Any]
) -> None:
    async with Client(build_server(many_contexts, "full")) as c:
        result = await c.call_tool(tool, args)

    assert not result.is_error, result.content[0].text
    assert _size(result) < LIMIT


async def test_the_contexts_resource_with_400_contexts_stays_bounded(many_contexts: Store) -> None:
    async with Client(build_server(many_contexts, "full")) as c:
        text = (await c.read_resource("coaia://contexts")).contents[0].text

    assert len(text.encode()) < LIMIT and json.loads(text)["total"] == CONTEXTS


async def test_opening_entities_with_very_long_observations_stays_bounded(store: Store) -> None:
    store.create_entities(
        [{"name": f"long{i}", "entityType": "note", "observations": ["z" * 30_000]} for i in range(6)]
    )
    async with Client(build_server(store, "full")) as c:
        result = await c.call_tool("open_entities", {"names": [f"long{i}" for i in range(6)]})

    assert _size(result) < LIMIT and result.structured_content["leftOut"] > 0


async def test_a_chart_with_1000_steps_and_long_reality_stays_bounded(store: Store) -> None:
    async with Client(build_server(store, "full")) as c:
        made = await c.call_tool(
            "create_chart",
            {
                "desiredOutcome": "A big plan",
                "currentReality": "r" * 20_000,
                "dueDate": "2030-01-01",
                "actionSteps": [f"A fairly long action step title number {i} of the plan" for i in range(1_000)],
            },
        )
        chart = await c.call_tool("get_chart", {"chartId": made.structured_content["chartId"]})

    assert not made.is_error and _size(made) < LIMIT and made.structured_content["leftOut"] > 0
    assert _size(chart) < LIMIT and "note" in chart.structured_content
