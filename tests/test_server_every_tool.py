"""Every tool of the full profile answers a valid call with a structured result (and none is left untested)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from coaia_store import Store
from coaia_store.server.app import build_server

pytestmark = pytest.mark.anyio
CHART = {
    "desiredOutcome": "A garden that feeds us",
    "currentReality": "Lawn",
    "dueDate": "2027-05-01",
    "actionSteps": ["Build beds", "Test soil"],
}


async def test_every_full_profile_tool_answers_a_valid_call(store: Store) -> None:
    called: list[str] = []
    async with Client(build_server(store, "full")) as client:

        async def call(tool: str, args: dict[str, Any]) -> Any:
            result = await client.call_tool(tool, args)
            assert not result.is_error, f"{tool}: {result.content[0].text}"
            assert result.structured_content is not None, tool
            called.append(tool)
            return result.structured_content

        await call(
            "create_entity",
            {"entities": [{"name": "a", "entityType": "t", "observations": ["one"]}, {"name": "b", "entityType": "t"}]},
        )
        await call("add_relation", {"relations": [{"from": "a", "to": "b", "relationType": "r"}]})
        await call("add_observations", {"observations": [{"entityName": "a", "contents": ["two"]}]})
        await call("update_entity", {"name": "a", "metadata": {"k": 1}})
        await call("open_entities", {"names": ["a"]})
        await call("search", {"query": "two"})
        await call("read_graph", {"mode": "full"})
        await call(
            "delete_from_graph",
            {
                "observations": [{"entityName": "a", "observations": ["one"]}],
                "relations": [{"from": "a", "to": "b", "relationType": "r"}],
                "entities": ["b"],
            },
        )
        chart = await call("create_chart", CHART)
        cid, (first, second) = chart["chartId"], chart["added"]
        step = (await call("add_action_steps", {"chartId": cid, "actionSteps": ["Plant seeds"]}))["added"][0]
        await call("update_action_step", {"actionStep": first, "note": "bought lumber", "owner": "Ana"})
        await call("telescope_action_step", {"actionStep": first, "currentReality": "Have lumber"})
        await call("complete", {"target": second})
        await call(
            "update_chart",
            {"chartId": cid, "addToReality": ["Seeds arrived"], "desiredOutcome": "A garden that feeds four people"},
        )
        await call("get_chart", {"chartId": cid, "depth": 1})
        await call("list_charts", {"status": "all"})
        await call("remove_action_step", {"actionStep": step})
        await call("complete", {"target": cid})
        await call("move_chart", {"chartId": cid, "toContext": "completed"})
        other = (await call("create_chart", CHART))["chartId"]
        await call("move_chart", {"chartId": other, "toContext": "work"})
        await call("validate_integrity", {})
        backup = (await call("backups", {"action": "create", "context": "work"}))["created"][0]["id"]
        await call("backups", {})
        await call("backups", {"action": "restore", "backupId": backup})
        await call("history", {"entity": "a"})
        await call("history", {"chartId": other, "context": "work"})
        await call("history", {"context": "work"})
        await call("advancement_report", {"windowDays": 7})
        await call("undo", {"context": "work"})
        await call("read_graph", {"asOf": "2020-01-01"})
        await call("storage_status", {})
        published = {t.name for t in (await client.list_tools()).tools}

    assert published == set(called)
