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


JSON, MARKDOWN = "application/json", "text/markdown"


class Resources:
    """What each resource reads, over one store, and the completion of their (and the prompts') arguments."""

    def __init__(self, store: Store, charts: Charts) -> None:
        self.store = store
        self.charts = charts

    def contexts(self) -> str:
        rows = [
            {
                "name": c.name,
                "entities": c.entities,
                "relations": c.relations,
                "bytes": c.bytes,
                "lastModified": c.lastModified,
                "degraded": c.degraded,
            }
            for c in self.store.list_contexts()
        ]
        shown = _fitting(rows, RESOURCE_BUDGET)
        data: dict[str, Any] = {"contexts": shown, "total": len(rows)}
        if len(shown) < len(rows):
            data["note"] = (
                f"{len(rows) - len(shown)} more contexts left out; the storage_status tool pages through them"
            )
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def brief(self) -> str:
        return build_brief(self.store).text()

    def chart(self, chartId: str) -> str:  # noqa: N803 - the URI template names it
        try:
            return chart_markdown(self.charts.get_chart(chartId=chartId))
        except CoaiaError as exc:
            raise ResourceNotFoundError(str(exc)) from exc

    def active_charts(self, context: str) -> str:
        try:
            page = self.charts.list_charts(context=context, status="active", limit=500)
        except CoaiaError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        lines = [f"# Active charts in `{context}` ({page.total})", ""]
        lines += [
            f"- {'  ' * c.level}{c.desiredOutcome} (due {c.dueDate or 'no date'}{', OVERDUE' if c.overdue else ''}) "
            f"{progress_bar(c.progress)} `coaia://chart/{c.chartId}`"
            for c in page.charts
        ]
        return "\n".join(lines) + "\n"

    def graph(self, context: str) -> str:
        try:
            page = self.store.read_graph(context=context)
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

    async def complete(self, ref: Any, argument: CompletionArgument, context: Any) -> Completion | None:
        if not isinstance(ref, ResourceTemplateReference | PromptReference):
            return None
        if argument.name == "chartId":
            found = [c.chartId for c in self.charts.list_charts(status="all", limit=500).charts]
        elif argument.name in ("context", "toContext"):
            found = self.store.contexts()
        else:
            return None
        matches = [value for value in found if value.startswith(argument.value)]
        return Completion(values=matches[:MAX_COMPLETIONS], total=len(matches), has_more=len(matches) > MAX_COMPLETIONS)


def register_resources(server: MCPServer, store: Store, charts: Charts) -> None:
    resources = Resources(store, charts)
    for uri, name, mime_type, description, read in (
        (
            "coaia://contexts",
            "contexts",
            JSON,
            "Every context with entity and relation counts, size, last change and health.",
            resources.contexts,
        ),
        (
            "coaia://brief",
            "brief",
            MARKDOWN,
            "What to know at the start of a session, under 2,000 tokens: overdue steps, steps due "
            "within 7 days, active top-level charts per context with progress and next step.",
            resources.brief,
        ),
        (
            "coaia://chart/{chartId}",
            "chart",
            MARKDOWN,
            "One chart and its sub-charts as Markdown: outcome, current reality, steps, progress.",
            resources.chart,
        ),
        (
            "coaia://charts/{context}",
            "active-charts",
            MARKDOWN,
            "The active charts of one context, with progress and due dates, as Markdown.",
            resources.active_charts,
        ),
        (
            "coaia://graph/{context}",
            "graph",
            JSON,
            "The whole knowledge graph of one context (entities and relations) as JSON.",
            resources.graph,
        ),
    ):
        server.resource(uri, name=name, mime_type=mime_type, description=description)(read)
    server.completion()(resources.complete)
