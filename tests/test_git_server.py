"""A running MCP server (a real stdio process) sees what a git pull brings, without a restart."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from gitclones import GIT, clone, make_repo
from mcp import Client, StdioServerParameters

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(GIT is None, reason="git is not installed: sharing through git cannot be tested"),
]


async def test_a_running_server_sees_the_steps_a_pull_brings(tmp_path: Path) -> None:
    origin = make_repo(tmp_path)
    here, there = clone(tmp_path, origin, "here"), clone(tmp_path, origin, "there")
    chart = there.charts.list_charts().charts[0].chartId
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data" / "here")}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "coaia_store", "serve", "--dir", str(here.repo / ".coaia")], env=env
    )
    async with Client(params) as server:
        before = await server.call_tool("get_chart", {"chartId": chart})
        there.charts.add_action_step(chartId=chart, title="Plant beans")
        there.commit("there")
        await server.call_tool("add_action_steps", {"chartId": chart, "actionSteps": ["Build a fence"]})
        here.commit("here")
        here.pull(there)
        after = await server.call_tool("get_chart", {"chartId": chart})

    titles = sorted(s["title"] for s in after.structured_content["actionSteps"])
    assert len(before.structured_content["actionSteps"]) == 1
    assert titles == ["Build a fence", "Dig", "Plant beans"]
