"""MCP resources and argument completion: contexts, charts as Markdown, a context's raw graph, the brief."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import Completion, CompletionArgument, PromptReference, ResourceTemplateReference

from ..charts import Charts
from ..charts.markdown import chart_markdown, progress_bar
from ..errors import CoaiaError
from ..reports.brief import build_brief
from ..store import Store

MAX_COMPLETIONS = 100
RESOURCE_BUDGET = 80_000  # characters: a resource stays under 100 kB (25k tokens) at any store size


def _fitting(items: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The first items whose compact JSON fits ``budget`` characters."""
    size = 0
    for count, item in enumerate(items):
        size += len(json.dumps(item, ensure_ascii=False, separators=(",", ":"))) + 1
        if size > budget:
            return items[:count]
    return items


def register_resources(server: MCPServer, store: Store, charts: Charts) -> None:
    @server.resource(
        "coaia://contexts",
        name="contexts",
        mime_type="application/json",
        description="Every context with entity and relation counts, size, last change and health.",
    )
    def contexts() -> str:
        rows = [
            {
                "name": c.name,
                "entities": c.entities,
                "relations": c.relations,
                "bytes": c.bytes,
                "lastModified": c.lastModified,
                "degraded": c.degraded,
            }
            for c in store.list_contexts()
        ]
        shown = _fitting(rows, RESOURCE_BUDGET)
        data: dict[str, Any] = {"contexts": shown, "total": len(rows)}
        if len(shown) < len(rows):
            data["note"] = (
                f"{len(rows) - len(shown)} more contexts left out; the storage_status tool pages through them"
            )
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @server.resource(
        "coaia://brief",
        name="brief",
        mime_type="text/markdown",
        description="What to know at the start of a session, under 2,000 tokens: overdue steps, steps due "
        "within 7 days, active top-level charts per context with progress and next step.",
    )
    def brief() -> str:
        return build_brief(store).text()

    @server.resource(
        "coaia://chart/{chartId}",
        name="chart",
        mime_type="text/markdown",
        description="One chart and its sub-charts as Markdown: outcome, current reality, steps, progress.",
    )
    def chart(chartId: str) -> str:  # noqa: N803 - the URI template names it
        try:
            return chart_markdown(charts.get_chart(chartId=chartId))
        except CoaiaError as exc:
            raise ResourceNotFoundError(str(exc)) from exc

    @server.resource(
        "coaia://charts/{context}",
        name="active-charts",
        mime_type="text/markdown",
        description="The active charts of one context, with progress and due dates, as Markdown.",
    )
    def active_charts(context: str) -> str:
        try:
            page = charts.list_charts(context=context, status="active", limit=500)
        except CoaiaError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        lines = [f"# Active charts in `{context}` ({page.total})", ""]
        lines += [
            f"- {'  ' * c.level}{c.desiredOutcome} (due {c.dueDate or 'no date'}{', OVERDUE' if c.overdue else ''}) "
            f"{progress_bar(c.progress)} `coaia://chart/{c.chartId}`"
            for c in page.charts
        ]
        return "\n".join(lines) + "\n"

    @server.resource(
        "coaia://graph/{context}",
        name="graph",
        mime_type="application/json",
        description="The whole knowledge graph of one context (entities and relations) as JSON.",
    )
    def graph(context: str) -> str:
        try:
            page = store.read_graph(context=context)
        except CoaiaError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        entities = _fitting(
            [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in page.entities], RESOURCE_BUDGET // 2
        )
        names = {e["name"] for e in entities}
        links = [
            r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in page.relations if r.from_ in names
        ]
        relations = _fitting(links, RESOURCE_BUDGET // 2)
        data: dict[str, Any] = {"entities": entities, "relations": relations}
        if len(entities) < len(page.entities) or len(relations) < len(links):
            data["note"] = (
                f"{len(entities)} of {len(page.entities)} entities and {len(relations)} of their "
                f"{len(links)} relations shown, to stay under the size hosts accept; the read_graph "
                "tool pages through the rest"
            )
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @server.completion()
    async def complete(ref: Any, argument: CompletionArgument, context: Any) -> Completion | None:
        if not isinstance(ref, ResourceTemplateReference | PromptReference):
            return None
        if argument.name == "chartId":
            found = [c.chartId for c in charts.list_charts(status="all", limit=500).charts]
        elif argument.name in ("context", "toContext"):
            found = store.contexts()
        else:
            return None
        matches = [value for value in found if value.startswith(argument.value)]
        return Completion(values=matches[:MAX_COMPLETIONS], total=len(matches), has_more=len(matches) > MAX_COMPLETIONS)
