"""A multi-session chart story over real stdio servers, restarted between phases, as an agent lives it.

Create a chart, telescope three levels, complete the deepest steps and watch completion flow up, reopen,
move, archive, undo by id and without it. Each phase is a new ``coaia-store serve`` process.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio


class Session:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def __call__(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args)
        assert not result.is_error, f"{tool}: {result.content[0].text}"
        return result.structured_content or {}

    async def chart(self, chart_id: str, **args: Any) -> dict[str, Any]:
        return await self("get_chart", {"chartId": chart_id, **args})


@asynccontextmanager
async def session(store_dir: Path) -> AsyncIterator[Session]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "coaia_store", "serve", "--dir", str(store_dir)])
    async with Client(params) as client:
        yield Session(client)


async def test_a_chart_lives_through_four_sessions(store_dir: Path) -> None:
    async with session(store_dir) as call:  # phase 1: plan three levels deep
        top = await call(
            "create_chart",
            {
                "desiredOutcome": "A cabin by the lake",
                "currentReality": "Land, no plans",
                "dueDate": "2027-09-30",
                "actionSteps": ["Build the cabin", "Furnish it"],
            },
        )
        ids = [top["chartId"]]
        step, steps = top["added"][0], {}
        for level, titles in enumerate([["Frame", "Roof"], ["Walls"], ["Cut studs", "Raise walls"]], start=1):
            sub = await call(
                "telescope_action_step",
                {"actionStep": step, "currentReality": f"Level {level}: nothing yet", "actionSteps": titles},
            )
            ids.append(sub["chartId"])
            steps[level] = sub["added"]
            step = sub["added"][0]

    async with session(store_dir) as call:  # phase 2: the deepest steps, done; completion flows up to level 1
        await call("complete", {"target": steps[3][0]})
        flowed = await call("complete", {"target": steps[3][1]})
        level1 = await call.chart(ids[1], depth=0)

        assert ids[3] in flowed["completed"] and ids[2] in flowed["completed"] and steps[1][0] in flowed["completed"]
        assert level1["completed"] is False and level1["progress"] == 0.5

    async with session(store_dir) as call:  # phase 3: level 1 completes into the top step; then a reopen
        done = await call("complete", {"target": steps[1][1]})
        top_view = await call.chart(ids[0], depth=0)
        assert ids[1] in done["completed"] and top_view["actionSteps"][0]["completed"] and not top_view["completed"]

        reopened = await call("complete", {"target": steps[3][1], "reopen": True})
        assert set(ids[1:]) <= set(reopened["reopened"])
        assert not (await call.chart(ids[0], depth=0))["actionSteps"][0]["completed"]

    async with session(store_dir) as call:  # phase 4: owner, undo by id and without, complete, move, archive
        owned = await call("update_action_step", {"actionStep": top["added"][1], "owner": "Ana"})
        await call("undo", {"operationId": owned["operationId"]})
        assert "owner" not in (await call.chart(ids[0], depth=0))["actionSteps"][1]
        await call("undo", {})  # the latest operation was that undo: undoing it redoes
        assert (await call.chart(ids[0], depth=0))["actionSteps"][1]["owner"] == "Ana"

        await call("complete", {"target": ids[0]})
        await call("move_chart", {"chartId": ids[0], "toContext": "work"})
        await call("move_chart", {"chartId": ids[0], "toContext": "completed"})
        archived = await call("list_charts", {"context": "completed", "status": "all"})
        active = await call("list_charts", {})

    assert archived["total"] == 4 and all(c["completed"] for c in archived["charts"])
    assert active["total"] == 0
