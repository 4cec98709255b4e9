"""The agent surface in bytes: tools/list of every profile next to the official memory server's, and the
reply sizes of a fixed chart scenario.

    python bench/bench_surface.py

Sizes are as sent: the compact JSON of the ``tools`` array of ``tools/list`` (UTF-8 bytes), and for a
reply its text blocks plus its ``structuredContent`` in compact JSON. The official memory server's
figure is the one recorded by ``tests/fixtures/record_official_replies.py`` (server-memory 2026.8.31,
measured the same way); this script does not start node.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from coaia_store import Store
from coaia_store.server.app import build_server
from coaia_store.server.profiles import PROFILES
from coaia_store.server.schemas import tools_list_bytes

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "official-memory-replies.json"
OFFICIAL_MEMORY_BYTES: int = json.loads(FIXTURE.read_text(encoding="utf-8"))["toolsListBytes"]
BUDGETS = {"full": 20_000, "charts": 11_000, "graph": 11_000, "memory": 12_000}


def reply_bytes(result: Any) -> int:
    text = sum(len(c.text.encode()) for c in result.content)
    return text + len(json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":")).encode())


async def profile_sizes(directory: Path) -> None:
    print(f"{'profile':<8} {'tools':>5} {'bytes':>7} {'budget':>7}  official memory server: {OFFICIAL_MEMORY_BYTES:,}")
    for profile in PROFILES:
        with Store(directory / profile) as store:
            async with Client(build_server(store, profile)) as client:  # type: ignore[arg-type]
                tools = (await client.list_tools()).tools
        print(f"{profile:<8} {len(tools):>5} {tools_list_bytes(tools):>7,} {BUDGETS[profile]:>7,}")


async def scenario(directory: Path) -> None:
    """Create a 20-step chart, telescope three levels, complete the deepest step, reopen it, read, move, archive."""
    print(f"\n{'call':<52} {'bytes':>7}")
    with Store(directory / "scenario") as store:
        async with Client(build_server(store, "full")) as client:

            async def call(label: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
                result = await client.call_tool(tool, args)
                assert not result.is_error, result.content[0].text
                print(f"{label:<52} {reply_bytes(result):>7,}")
                return result.structured_content or {}

            top = await call(
                "create_chart (20 steps)",
                "create_chart",
                {
                    "desiredOutcome": "A cabin by the lake that sleeps six",
                    "currentReality": "We own the land",
                    "dueDate": "2027-09-30",
                    "actionSteps": [f"Step {i}" for i in range(1, 21)],
                },
            )
            step = top["added"][0]
            for level in range(1, 4):
                sub = await call(
                    f"telescope_action_step (level {level}, 3 steps)",
                    "telescope_action_step",
                    {
                        "actionStep": step,
                        "currentReality": "Nothing yet",
                        "actionSteps": [f"L{level} a", f"L{level} b", f"L{level} c"],
                    },
                )
                step = sub["added"][0]
            await call("complete (one step of the 20-step chart)", "complete", {"target": top["added"][5]})
            await call("complete (a deepest step, 2 left open)", "complete", {"target": step})
            await call("complete (the deepest sub-chart: flows up)", "complete", {"target": sub["chartId"]})
            await call("complete reopen (the deepest step)", "complete", {"target": step, "reopen": True})
            await call(
                "update_action_step (owner, note)",
                "update_action_step",
                {"actionStep": top["added"][1], "owner": "Ana", "note": "Called the architect"},
            )
            await call("get_chart (whole tree, 4 levels)", "get_chart", {"chartId": top["chartId"]})
            await call("list_charts", "list_charts", {})
            await call("move_chart (to work)", "move_chart", {"chartId": top["chartId"], "toContext": "work"})
            await call("complete (the top-level chart)", "complete", {"target": top["chartId"]})
            await call(
                "move_chart (archive to completed)", "move_chart", {"chartId": top["chartId"], "toContext": "completed"}
            )
            await call("history (latest operations, default)", "history", {})
            await call("storage_status", "storage_status", {})


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await profile_sizes(Path(tmp))
        await scenario(Path(tmp))


if __name__ == "__main__":
    anyio.run(main)
