"""The surface an agent touches: the fixed tool list and its byte budgets, strict arguments, short replies.

Everything goes through ``mcp.Client`` against ``build_server``; sizes are measured as sent (compact JSON).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from coaia_store import Store
from coaia_store.server.app import INSTRUCTIONS, build_server
from coaia_store.server.profiles import PROFILE_TOOLS
from coaia_store.server.schemas import tools_list_bytes

pytestmark = pytest.mark.anyio

BUDGETS = {"full": 20_000, "charts": 11_000, "graph": 11_000, "memory": 12_000}
CHART = {
    "desiredOutcome": "A cabin by the lake",
    "currentReality": "We own the land",
    "dueDate": "2027-09-30",
    "actionSteps": ["Draw plans", "Pour foundation"],
}

# One valid call per tool ({chart}, {step} are filled in once a chart exists).
VALID: dict[str, dict[str, Any]] = {
    "create_chart": CHART,
    "telescope_action_step": {"actionStep": "{step}", "currentReality": "Nothing yet"},
    "add_action_steps": {"chartId": "{chart}", "actionSteps": ["Frame walls"]},
    "update_action_step": {"actionStep": "{step}", "title": "Draw the plans"},
    "remove_action_step": {"actionStep": "{step}"},
    "complete": {"target": "{step}"},
    "update_chart": {"chartId": "{chart}", "addToReality": ["Permit filed"]},
    "move_chart": {"chartId": "{chart}", "toContext": "work"},
    "get_chart": {"chartId": "{chart}"},
    "list_charts": {},
    "create_entity": {"entities": [{"name": "ada", "entityType": "person"}]},
    "add_relation": {"relations": [{"from": "ada", "to": "ada", "relationType": "knows"}]},
    "add_observations": {"observations": [{"entityName": "ada", "contents": ["codes"]}]},
    "update_entity": {"name": "ada", "entityType": "engineer"},
    "delete_from_graph": {"entities": ["ada"]},
    "open_entities": {"names": ["ada"]},
    "read_graph": {},
    "search": {"query": "ada"},
    "storage_status": {},
    "validate_integrity": {},
    "backups": {},
    "history": {},
    "undo": {},
    "advancement_report": {},
    "create_entities": {"entities": [{"name": "ada", "entityType": "person", "observations": []}]},
    "create_relations": {"relations": [{"from": "ada", "to": "ada", "relationType": "knows"}]},
    "delete_entities": {"entityNames": ["ada"]},
    "delete_observations": {"deletions": [{"entityName": "ada", "observations": ["x"]}]},
    "delete_relations": {"relations": [{"from": "ada", "to": "ada", "relationType": "knows"}]},
    "search_nodes": {"query": "ada"},
    "open_nodes": {"names": ["ada"]},
}
TOOLS_BY_PROFILE = [(p, t) for p in ("full", "memory") for t in PROFILE_TOOLS[p]]


@pytest.fixture
async def client(store: Store) -> AsyncIterator[Client]:
    async with Client(build_server(store, "full")) as c:
        yield c


def _size(result: Any) -> int:
    text = sum(len(c.text.encode()) for c in result.content)
    return text + len(json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":")).encode())


def _files(store_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store_dir.glob("*.jsonl"))}


def _fill(args: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    text = json.dumps(args)
    for key, value in names.items():
        text = text.replace(key, value)
    return json.loads(text)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ the tool list


@pytest.mark.parametrize("profile", list(BUDGETS))
async def test_each_profile_stays_within_its_byte_budget(store: Store, profile: str) -> None:
    async with Client(build_server(store, profile)) as c:  # type: ignore[arg-type]
        tools = (await c.list_tools()).tools

    assert tools_list_bytes(tools) <= BUDGETS[profile]


@pytest.mark.parametrize("profile", list(BUDGETS))
async def test_each_profile_publishes_its_fixed_tools_in_a_fixed_order(store: Store, profile: str) -> None:
    async with Client(build_server(store, profile)) as c:  # type: ignore[arg-type]
        names = [t.name for t in (await c.list_tools()).tools]

    assert names == list(PROFILE_TOOLS[profile]) and len(PROFILE_TOOLS["full"]) == 24


async def test_descriptions_are_one_line_and_schemas_carry_no_titles(client: Client) -> None:
    tools = (await client.list_tools()).tools

    for tool in tools:
        schema = json.dumps(tool.input_schema)
        assert "\n" not in (tool.description or "") and '"title": "' not in schema.replace('"title": {', ""), tool.name
        assert tool.input_schema["additionalProperties"] is False, tool.name


async def test_instructions_say_what_the_server_is_for_in_under_1000_characters(client: Client) -> None:
    assert len(INSTRUCTIONS) < 1000 and "structural tension" in INSTRUCTIONS and "create_chart" in INSTRUCTIONS


# ------------------------------------------------------------------ strict arguments


@pytest.mark.parametrize(("profile", "tool"), TOOLS_BY_PROFILE)
async def test_every_tool_refuses_an_unknown_argument_and_writes_nothing(
    store: Store, store_dir: Path, profile: str, tool: str
) -> None:
    async with Client(build_server(store, profile)) as c:  # type: ignore[arg-type]
        if profile == "full":
            made = (await c.call_tool("create_chart", CHART)).structured_content
            names = {"{chart}": made["chartId"], "{step}": made["added"][0]}
        else:
            names = {}
        before = _files(store_dir)
        result = await c.call_tool(tool, {**_fill(VALID[tool], names), "bogus_flag": True})

    assert result.is_error and "unknown argument 'bogus_flag'" in result.content[0].text
    assert f"for {tool};" in result.content[0].text and "It takes:" in result.content[0].text
    assert _files(store_dir) == before


async def test_a_snake_case_slip_is_refused_with_the_camel_case_name(client: Client, store: Store) -> None:
    step = (await client.call_tool("create_chart", CHART)).structured_content["added"][0]

    result = await client.call_tool("update_action_step", {"actionStep": step, "due_date": "2027-01-01"})

    assert result.content[0].text == (
        "unknown argument 'due_date' for update_action_step; did you mean 'dueDate'? It takes: actionStep, title, "
        "dueDate, owner, note, noteToReality, context. Nothing was written."
    )


async def test_a_boolean_given_as_text_is_refused_and_changes_nothing(client: Client, store: Store) -> None:
    step = (await client.call_tool("create_chart", CHART)).structured_content["added"][0]
    await client.call_tool("complete", {"target": step})
    before = store.open_entities([step]).entities

    result = await client.call_tool("complete", {"target": step, "reopen": "yes"})

    assert result.is_error and "reopen" in result.content[0].text
    assert store.open_entities([step]).entities == before


async def test_create_chart_with_snake_case_steps_is_refused_not_saved_without_steps(
    client: Client, store: Store
) -> None:
    result = await client.call_tool(
        "create_chart", {**{k: v for k, v in CHART.items() if k != "actionSteps"}, "action_steps": ["a"]}
    )

    assert result.is_error and "did you mean 'actionSteps'" in result.content[0].text
    assert store.read_graph().totalEntities == 0


async def test_an_unknown_key_inside_a_step_is_refused_naming_the_field(client: Client, store: Store) -> None:
    result = await client.call_tool(
        "create_chart", {**CHART, "actionSteps": [{"title": "a", "due_date": "2027-01-01"}]}
    )

    assert result.is_error and "due_date" in result.content[0].text and store.read_graph().totalEntities == 0


async def test_validation_errors_are_plain_sentences_without_model_names_or_urls(client: Client) -> None:
    result = await client.call_tool("create_chart", {"desiredOutcome": "A cabin", "currentReality": 5})

    text = result.content[0].text
    assert result.is_error and "field 'dueDate' is required." in text and "currentReality" in text
    assert "http" not in text and "Arguments" not in text and "pydantic" not in text and "validation error" not in text


# ------------------------------------------------------------------ short replies


async def test_completing_one_step_of_a_20_step_chart_replies_in_under_1_kb(client: Client) -> None:
    chart = await client.call_tool("create_chart", {**CHART, "actionSteps": [f"Step {i}" for i in range(20)]})
    step = chart.structured_content["added"][0]

    result = await client.call_tool("complete", {"target": step})

    assert _size(result) < 1000 and result.structured_content["completed"] == [step]
    assert result.structured_content["operationId"] and result.structured_content["nextStep"]["title"] == "Step 1"


async def test_a_chart_write_reply_is_compact_json_without_nulls_or_empty_lists(client: Client) -> None:
    result = await client.call_tool("create_chart", CHART)

    text = result.content[0].text
    assert _size(result) < 1000 and json.loads(text) == result.structured_content
    assert "\n" not in text and ": " not in text and "null" not in text and "[]" not in text


async def test_every_graph_write_reply_carries_its_operation_id(client: Client, store_dir: Path) -> None:
    result = await client.call_tool("create_entity", {"entities": [{"name": "ada", "entityType": "person"}]})

    op = result.structured_content["operationId"]
    assert f'"_op":"{op}"' in (store_dir / "charts.jsonl").read_text()


async def test_memory_profile_text_is_the_official_servers_json_stringify(store: Store) -> None:
    entities = [{"name": "ada", "entityType": "person", "observations": ["codes in Zürich"]}]
    async with Client(build_server(store, "memory")) as c:
        created = await c.call_tool("create_entities", {"entities": entities})
        graph = await c.call_tool("read_graph", {})
        deleted = await c.call_tool("delete_entities", {"entityNames": ["ada"]})

    assert created.content[0].text == json.dumps(entities, indent=2, ensure_ascii=False)
    assert created.structured_content == {"entities": entities}
    assert graph.content[0].text == json.dumps({"entities": entities, "relations": []}, indent=2, ensure_ascii=False)
    assert deleted.content[0].text == "Entities deleted successfully"


OFFICIAL = json.loads((Path(__file__).parent / "fixtures" / "official-memory-replies.json").read_text(encoding="utf-8"))


async def test_memory_profile_replies_like_the_recorded_official_server_call_by_call(store: Store) -> None:
    """Text and structured content of every successful call equal the official server's (recorded)."""
    async with Client(build_server(store, "memory")) as c:
        ours = [await c.call_tool(r["tool"], r["arguments"]) for r in OFFICIAL["replies"]]

    for recorded, mine in zip(OFFICIAL["replies"], ours, strict=False):
        assert bool(mine.is_error) == recorded["isError"], recorded
        if not recorded["isError"]:
            assert [b.text for b in mine.content] == recorded["text"], recorded["tool"]
            assert mine.structured_content == recorded["structured"], recorded["tool"]


async def test_memory_profile_definitions_stay_near_the_official_servers(store: Store) -> None:
    async with Client(build_server(store, "memory")) as c:
        size = tools_list_bytes((await c.list_tools()).tools)

    assert size <= OFFICIAL["toolsListBytes"] + 1_000  # the nine tools, each with one more argument: context


async def test_a_0_1_argument_name_is_refused_with_its_new_name(client: Client) -> None:
    step = (await client.call_tool("create_chart", CHART)).structured_content["added"][0]

    result = await client.call_tool("update_action_step", {"actionStep": step, "progressNote": "done half"})

    assert result.is_error and "did you mean 'note'?" in result.content[0].text


async def test_a_bad_step_object_is_described_without_the_models_name(client: Client) -> None:
    result = await client.call_tool("create_chart", {**CHART, "actionSteps": [{"name": "Draw plans"}]})

    text = result.content[0].text
    assert (
        "field 'actionSteps.0.title' is required." in text and "StepInput" not in text and "should be text" not in text
    )
