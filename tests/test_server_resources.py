"""MCP resources, completions and prompts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from mcp import Client, MCPError
from mcp.types import PromptReference, ResourceTemplateReference

from coaia_store import Store
from coaia_store.charts import Charts
from coaia_store.server.app import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def chart_id(store: Store) -> str:
    result = Charts(store).create_chart(
        desiredOutcome="A garden that feeds us",
        currentReality="Lawn",
        dueDate="2027-05-01",
        actionSteps=["Build beds"],
        context="personal",
    )
    return result.chart.chartId


@pytest.fixture
async def client(store: Store) -> AsyncIterator[Client]:
    async with Client(build_server(store, "full")) as c:
        yield c


async def test_a_chart_reads_as_markdown(client: Client, chart_id: str) -> None:
    text = (await client.read_resource(f"coaia://chart/{chart_id}")).contents[0].text

    assert text.startswith("# A garden that feeds us") and "- [ ] Build beds" in text and "Lawn" in text


async def test_an_unknown_chart_resource_is_not_found(client: Client) -> None:
    with pytest.raises(MCPError) as error:
        await client.read_resource("coaia://chart/chart_missing")

    assert "chart_missing" in error.value.message


async def test_the_contexts_resource_lists_every_context(client: Client, chart_id: str) -> None:
    data = json.loads((await client.read_resource("coaia://contexts")).contents[0].text)

    assert [c["name"] for c in data["contexts"]] == ["personal"] and data["total"] == 1


async def test_active_charts_of_a_context_link_to_each_chart(client: Client, chart_id: str) -> None:
    text = (await client.read_resource("coaia://charts/personal")).contents[0].text

    assert f"coaia://chart/{chart_id}" in text


async def test_the_raw_graph_of_a_context_is_json(client: Client, chart_id: str) -> None:
    data = json.loads((await client.read_resource("coaia://graph/personal")).contents[0].text)

    assert any(e["name"] == f"{chart_id}_desired_outcome" for e in data["entities"]) and data["relations"]


async def test_chart_ids_complete_from_a_prefix(client: Client, chart_id: str) -> None:
    result = await client.complete(
        ResourceTemplateReference(type="ref/resource", uri="coaia://chart/{chartId}"),
        {"name": "chartId", "value": chart_id[:10]},
    )

    assert result.completion.values == [chart_id]


async def test_context_names_complete(client: Client, chart_id: str) -> None:
    result = await client.complete(
        ResourceTemplateReference(type="ref/resource", uri="coaia://charts/{context}"),
        {"name": "context", "value": "per"},
    )

    assert result.completion.values == ["personal"]


async def test_create_chart_prompt_puts_the_outcome_first(client: Client) -> None:
    prompt = await client.get_prompt("create_chart", {"topic": "my garden", "context": "personal"})

    text = prompt.messages[0].content.text
    assert text.index("Desired outcome") < text.index("current reality") < text.index("action steps")
    assert "'personal'" in text


async def test_review_prompt_carries_the_chart_and_the_four_steps(client: Client, chart_id: str) -> None:
    prompt = await client.get_prompt("review_chart", {"chartId": chart_id})

    text = prompt.messages[0].content.text
    assert all(step in text for step in ("Acknowledge", "Analyse", "Plan", "Feedback")) and "Build beds" in text


async def test_prompt_arguments_complete_chart_ids(client: Client, chart_id: str) -> None:
    result = await client.complete(
        PromptReference(type="ref/prompt", name="review_chart"), {"name": "chartId", "value": ""}
    )

    assert chart_id in result.completion.values


async def test_the_brief_resource_gives_the_session_briefing(client: Client, chart_id: str) -> None:
    text = (await client.read_resource("coaia://brief")).contents[0].text

    assert text.startswith("# coaia-store brief") and "### personal" in text and f"`{chart_id}`" in text
