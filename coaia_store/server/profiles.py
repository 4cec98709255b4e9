"""The tool profiles: which tools each publishes, in the order tools/list gives them.

``full`` (all 24 tools), ``charts`` (the chart tools with history, undo, status and the report), ``graph`` (the
knowledge-graph and store tools) and ``memory`` (exactly the official memory server's nine tools).
"""

from __future__ import annotations

from typing import Literal

from ..charts import Charts
from ..search.index import SearchIndex
from ..store import Store
from .hints import Tool
from .tools_charts import ChartTools
from .tools_graph import GraphTools
from .tools_memory import MemoryTools
from .tools_reports import ReportTools
from .tools_store import StoreTools

Profile = Literal["full", "charts", "graph", "memory"]
PROFILES: tuple[str, ...] = ("full", "charts", "graph", "memory")

CHART_TOOLS = (
    "create_chart",
    "telescope_action_step",
    "add_action_steps",
    "update_action_step",
    "remove_action_step",
    "complete",
    "update_chart",
    "move_chart",
    "get_chart",
    "list_charts",
)
GRAPH_TOOLS = (
    "create_entity",
    "add_relation",
    "add_observations",
    "update_entity",
    "delete_from_graph",
    "open_entities",
    "read_graph",
    "search",
)
STORE_TOOLS = ("storage_status", "validate_integrity", "backups", "history", "undo")
REPORT_TOOLS = ("advancement_report",)
MEMORY_TOOLS = (
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
    "read_graph",
    "search_nodes",
    "open_nodes",
)
PROFILE_TOOLS: dict[str, tuple[str, ...]] = {
    "full": CHART_TOOLS + GRAPH_TOOLS + STORE_TOOLS + REPORT_TOOLS,
    "charts": CHART_TOOLS + ("history", "undo", "storage_status") + REPORT_TOOLS,
    "graph": GRAPH_TOOLS + STORE_TOOLS,
    "memory": MEMORY_TOOLS,
}


def profile_tools(store: Store, profile: Profile, index: SearchIndex) -> list[Tool]:
    """The tools ``profile`` publishes over ``store``, in order."""
    if profile == "memory":
        found = MemoryTools(store, index).tools()
    else:
        found = {
            **ChartTools(Charts(store)).tools(),
            **GraphTools(store, index).tools(),
            **StoreTools(store).tools(),
            **ReportTools(store).tools(),
        }
    return [found[name] for name in PROFILE_TOOLS[profile]]
