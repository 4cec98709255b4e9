"""The MCP server, driven through mcp.Client: profiles, schemas, results, errors, paging."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from coaia_store import Store
from coaia_store.server.app import build_server
from coaia_store.server.replies import MAX_REPLY_CHARS

pytestmark = pytest.mark.anyio

OFFICIAL_TOOLS = {
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
    "read_graph",
    "search_nodes",
    "open_nodes",
}


@pytest.fixture
async def graph_client(store: Store) -> AsyncIterator[Client]:
    async with Client(build_server(store, "full")) as client:
        yield client


@pytest.fixture
async def memory_client(store: Store) -> AsyncIterator[Client]:
    async with Client(build_server(store, "memory")) as client:
        yield client


async def test_every_tool_has_a_description_schemas_and_annotations(graph_client: Client) -> None:
    tools = (await graph_client.list_tools()).tools

    assert {t.name for t in tools} >= {"create_entity", "add_relation", "read_graph", "open_entities", "storage_status"}
    for tool in tools:
        assert tool.description and tool.input_schema["additionalProperties"] is False, tool.name
        assert tool.annotations is not None and tool.annotations.read_only_hint is not None, tool.name


async def test_read_tools_are_marked_read_only_and_deletes_destructive(graph_client: Client) -> None:
    hints = {t.name: t.annotations for t in (await graph_client.list_tools()).tools}

    assert hints["read_graph"].read_only_hint and hints["open_entities"].read_only_hint
    assert hints["delete_from_graph"].destructive_hint and not hints["create_entity"].destructive_hint


async def test_memory_profile_publishes_the_official_tool_names(memory_client: Client) -> None:
    names = {t.name for t in (await memory_client.list_tools()).tools}

    assert names == OFFICIAL_TOOLS


async def test_memory_profile_round_trip_has_the_official_result_shapes(memory_client: Client) -> None:
    created = await memory_client.call_tool(
        "create_entities",
        {
            "entities": [
                {"name": "ada", "entityType": "person", "observations": ["codes"]},
                {"name": "bob", "entityType": "person", "observations": []},
            ]
        },
    )
    await memory_client.call_tool(
        "create_relations", {"relations": [{"from": "ada", "to": "bob", "relationType": "knows"}]}
    )
    opened = await memory_client.call_tool("open_nodes", {"names": ["ada"]})

    assert created.structured_content == {
        "entities": [
            {"name": "ada", "entityType": "person", "observations": ["codes"]},
            {"name": "bob", "entityType": "person", "observations": []},
        ]
    }
    assert opened.structured_content == {
        "entities": [{"name": "ada", "entityType": "person", "observations": ["codes"]}],
        "relations": [{"from": "ada", "to": "bob", "relationType": "knows"}],
    }


async def test_memory_profile_create_skips_existing_names_like_the_official_server(memory_client: Client) -> None:
    args = {"entities": [{"name": "ada", "entityType": "person", "observations": ["codes"]}]}
    await memory_client.call_tool("create_entities", args)

    again = await memory_client.call_tool(
        "create_entities", {"entities": [{"name": "ada", "entityType": "x", "observations": []}]}
    )

    assert again.structured_content == {"entities": []}


async def test_memory_profile_delete_reports_success(memory_client: Client) -> None:
    result = await memory_client.call_tool("delete_entities", {"entityNames": ["nobody"]})

    assert result.structured_content == {"success": True, "message": "Entities deleted successfully"}


async def test_context_argument_routes_writes_to_that_file(memory_client: Client, store_dir: Path) -> None:
    await memory_client.call_tool(
        "create_entities", {"entities": [{"name": "w", "entityType": "t", "observations": []}], "context": "work"}
    )

    assert (store_dir / "charts-work.jsonl").is_file() and not (store_dir / "charts.jsonl").exists()


async def test_a_library_error_is_a_readable_tool_error_and_writes_nothing(graph_client: Client, store: Store) -> None:
    result = await graph_client.call_tool(
        "add_relation", {"relations": [{"from": "ghost", "to": "ghoul", "relationType": "haunts"}]}
    )

    assert result.is_error and "create it first" in result.content[0].text
    assert store.read_graph().relations == []


async def test_an_invalid_context_is_a_tool_error_naming_the_rule(graph_client: Client) -> None:
    result = await graph_client.call_tool(
        "create_entity", {"entities": [{"name": "x", "entityType": "t"}], "context": "../etc"}
    )

    assert result.is_error and "invalid context name" in result.content[0].text


async def test_update_entity_renames_and_moves_relations(graph_client: Client) -> None:
    await graph_client.call_tool(
        "create_entity", {"entities": [{"name": "a", "entityType": "t"}, {"name": "b", "entityType": "t"}]}
    )
    await graph_client.call_tool("add_relation", {"relations": [{"from": "a", "to": "b", "relationType": "r"}]})

    result = await graph_client.call_tool("update_entity", {"name": "a", "newName": "a2"})

    assert result.structured_content["relationsMoved"] == 1 and result.structured_content["name"] == "a2"


async def test_read_graph_defaults_to_a_bounded_summary(graph_client: Client, store: Store) -> None:
    long_text = "x" * 5_000
    store.create_entities(
        [{"name": f"e{i:03d}", "entityType": "note", "observations": [long_text]} for i in range(150)]
    )

    result = await graph_client.call_tool("read_graph", {})

    data = result.structured_content
    assert data["mode"] == "summary" and data["returned"] == 100 and data["remaining"] == 50
    assert len(data["entities"][0]["firstObservation"]) < 200 and data["nextCursor"]


async def test_read_graph_full_mode_stops_before_the_reply_grows_too_long(graph_client: Client, store: Store) -> None:
    store.create_entities(
        [{"name": f"e{i:03d}", "entityType": "note", "observations": ["y" * 4_000]} for i in range(100)]
    )
    seen: list[str] = []
    cursor = None

    while True:
        args = {"mode": "full", "limit": 500, **({"cursor": cursor} if cursor else {})}
        data = (await graph_client.call_tool("read_graph", args)).structured_content
        assert len(json.dumps(data["entities"])) <= MAX_REPLY_CHARS + 5_000
        seen += [e["name"] for e in data["entities"]]
        cursor = data.get("nextCursor")
        if cursor is None:
            break

    assert seen == [f"e{i:03d}" for i in range(100)]


async def test_storage_status_says_where_and_why(graph_client: Client, store_dir: Path) -> None:
    data = (await graph_client.call_tool("storage_status", {})).structured_content

    assert data["directory"] == str(store_dir) and "--dir" in data["reason"] and data["degraded"] is False


async def test_two_server_processes_on_one_directory_see_each_others_writes(store_dir: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "coaia_store", "serve", "--dir", str(store_dir)])
    async with Client(params) as first, Client(params) as second:
        await first.call_tool("create_entity", {"entities": [{"name": "from-first", "entityType": "t"}]})
        await second.call_tool("add_observations", {"observations": [{"entityName": "from-first", "contents": ["hi"]}]})
        opened = await first.call_tool("open_entities", {"names": ["from-first"]})

    assert opened.structured_content["entities"][0]["observations"] == ["hi"]


async def test_validate_integrity_tool_reports_per_context_with_ok(graph_client: Client, store: Store) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}], context="work")

    data = (await graph_client.call_tool("validate_integrity", {})).structured_content

    assert data["ok"] is True and [(c["context"], c["ok"]) for c in data["contexts"]] == [("work", True)]


async def test_backup_tools_take_list_and_restore(graph_client: Client, store: Store) -> None:
    store.create_entities([{"name": "keep", "entityType": "t"}])
    taken = (await graph_client.call_tool("backups", {"action": "create", "context": "default"})).structured_content[
        "created"
    ]
    store.delete_entities(["keep"])

    listed = (await graph_client.call_tool("backups", {})).structured_content["backups"]
    restored = await graph_client.call_tool("backups", {"action": "restore", "backupId": taken[0]["id"]})

    assert taken[0]["id"] in [b["id"] for b in listed] and not restored.is_error
    assert store.open_entities(["keep"]).notFound == []


async def test_storage_status_names_the_latest_backup(graph_client: Client, store: Store) -> None:
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.backups.backup_context("default")

    data = (await graph_client.call_tool("storage_status", {})).structured_content

    assert data["contexts"][0]["name"] == "default" and data["contexts"][0]["lastBackup"].startswith("manual/")


async def test_memory_search_nodes_finds_words_in_different_fields(memory_client: Client) -> None:
    await memory_client.call_tool(
        "create_entities",
        {
            "entities": [
                {"name": "garden_plan", "entityType": "project", "observations": ["raised beds for tomatoes"]},
                {"name": "office", "entityType": "place", "observations": ["desk by the window"]},
            ]
        },
    )

    found = await memory_client.call_tool("search_nodes", {"query": "garden tomato"})

    assert [e["name"] for e in found.structured_content["entities"]] == ["garden_plan"]


async def test_search_ranks_a_name_match_first_with_a_snippet(graph_client: Client, store: Store) -> None:
    store.create_entities(
        [
            {"name": "notes", "entityType": "t", "observations": ["the telescope arrived"]},
            {"name": "telescope", "entityType": "t", "observations": ["8 inch reflector"]},
        ]
    )

    page = (await graph_client.call_tool("search", {"query": "telesc"})).structured_content

    assert [h["entity"]["name"] for h in page["hits"]] == ["telescope", "notes"]
    assert "**" in page["hits"][1]["snippet"]


async def test_a_warmed_up_server_answers_searches_for_data_written_before_and_after(store: Store) -> None:
    store.create_entities([{"name": "before", "entityType": "t", "observations": ["apricot"]}])
    async with Client(build_server(store, "full", warm_up=True)) as client:
        store.create_entities([{"name": "after", "entityType": "t", "observations": ["apricot jam"]}])
        page = (await client.call_tool("search", {"query": "apricot"})).structured_content

    assert {h["entity"]["name"] for h in page["hits"]} == {"before", "after"}


async def test_read_graph_full_mode_counts_relations_in_the_reply_budget(graph_client: Client, store: Store) -> None:
    store.create_entities(
        [{"name": f"hub{i}", "entityType": "t"} for i in range(3)]
        + [{"name": f"leaf{j:04d}", "entityType": "t"} for j in range(600)]
    )
    for i in range(3):
        store.create_relations(
            [{"from": f"hub{i}", "to": f"leaf{j:04d}", "relationType": "links_to_a_leaf_entity"} for j in range(600)]
        )

    data = (await graph_client.call_tool("read_graph", {"mode": "full", "limit": 3})).structured_content

    assert len(json.dumps(data)) <= MAX_REPLY_CHARS + 20_000 and data["returned"] < 3 and data["nextCursor"]


async def test_warm_up_builds_and_saves_the_search_index_in_the_background(store: Store, store_dir: Path) -> None:
    store.create_entities([{"name": f"e{i}", "entityType": "t", "observations": [f"word{i}"]} for i in range(2001)])
    build_server(store, "memory", warm_up=0.0)
    with anyio.fail_after(30):
        while not (store_dir / ".cache" / "search.index").exists():
            await anyio.sleep(0.05)
