"""The chart tools over MCP: flat arguments, structured trees, warnings, errors, profiles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from coaia_store import Store
from coaia_store.server.app import build_server

pytestmark = pytest.mark.anyio
CHART = {
    "desiredOutcome": "A vegetable garden that feeds us all summer",
    "currentReality": "The yard is lawn",
    "dueDate": "2027-05-01",
    "actionSteps": ["Build raised beds", {"title": "Test the soil", "dueDate": "2027-03-01"}],
}


@pytest.fixture
async def client(store: Store) -> AsyncIterator[Client]:
    async with Client(build_server(store, "full")) as c:
        yield c


async def _call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    assert result.structured_content is not None
    return result.structured_content


async def test_chart_tool_arguments_are_top_level_fields_with_descriptions(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}

    schema = tools["create_chart"].input_schema
    assert set(schema["required"]) == {"desiredOutcome", "currentReality", "dueDate"}
    assert "result" in schema["properties"]["desiredOutcome"]["description"]


async def test_create_then_get_chart_round_trips_the_tree(client: Client) -> None:
    created = await _call(client, "create_chart", CHART)
    chart_id = created["chartId"]

    chart = await _call(client, "get_chart", {"chartId": chart_id})

    assert chart["desiredOutcome"] == CHART["desiredOutcome"] and chart["currentReality"] == ["The yard is lawn"]
    assert [s["title"] for s in chart["actionSteps"]] == ["Build raised beds", "Test the soil"]


async def test_completing_a_step_completes_only_that_step_and_notes_it_in_reality(client: Client) -> None:
    created = await _call(client, "create_chart", CHART)
    step = created["added"][0]

    done = await _call(client, "complete", {"target": step})
    chart = await _call(client, "get_chart", {"chartId": created["chartId"]})

    assert done["completed"] == [step] and "chartCompleted" not in done and done["progress"] == 0.5
    assert any(line.startswith("Completed: Build raised beds") for line in chart["currentReality"])


async def test_sub_chart_progress_counts_in_its_parent_and_its_completion_completes_the_step(client: Client) -> None:
    chart = await _call(client, "create_chart", CHART)
    step = chart["added"][0]
    sub = await _call(
        client,
        "telescope_action_step",
        {"actionStep": step, "currentReality": "Have lumber", "actionSteps": ["Cut boards", "Screw"]},
    )

    await _call(client, "complete", {"target": sub["added"][0]})
    halfway = await _call(client, "get_chart", {"chartId": chart["chartId"]})
    await _call(client, "complete", {"target": sub["chartId"]})
    parent = await _call(client, "get_chart", {"chartId": chart["chartId"]})

    assert halfway["progress"] == 0.25 and halfway["actionSteps"][0]["completed"] is False
    assert parent["actionSteps"][0]["completed"] is True and parent["progress"] == 0.5


async def test_problem_oriented_outcome_gets_a_warning_not_a_refusal(client: Client) -> None:
    result = await _call(client, "create_chart", {**CHART, "desiredOutcome": "Eliminate the weeds"})

    assert result["warnings"] and result["chartId"]


async def test_an_unknown_chart_is_a_readable_tool_error(client: Client) -> None:
    result = await client.call_tool("get_chart", {"chartId": "chart_nope"})

    assert result.is_error and "chart_nope" in result.content[0].text


async def test_a_step_due_after_its_chart_is_refused_and_nothing_is_written(client: Client, store: Store) -> None:
    result = await client.call_tool(
        "create_chart", {**CHART, "actionSteps": [{"title": "Late", "dueDate": "2028-01-01"}]}
    )

    assert result.is_error and store.read_graph().totalEntities == 0


async def test_list_charts_reports_progress_per_chart(client: Client) -> None:
    await _call(client, "create_chart", CHART)
    await _call(client, "create_chart", {**CHART, "context": "work"})

    page = await _call(client, "list_charts", {})

    assert page["total"] == 2 and {c["context"] for c in page["charts"]} == {"default", "work"}


async def test_charts_profile_publishes_chart_tools_and_status_only(store: Store) -> None:
    async with Client(build_server(store, "charts")) as c:
        names = {t.name for t in (await c.list_tools()).tools}

    assert "create_chart" in names and "storage_status" in names and "create_entity" not in names
