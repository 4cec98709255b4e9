"""MCP resources and argument completion: contexts, charts as Markdown, a context's raw graph, the brief."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import Completion, CompletionArgument, PromptReference, ResourceTemplateReference

from .brief import build_brief
from .charts import Charts
from .charts.markdown import chart_markdown, progress_bar
from .errors import CoaiaError
from .store import Store

MAX_COMPLETIONS = 100


def register_resources(server: MCPServer, store: Store, charts: Charts) -> None:
    @server.resource("coaia://contexts", name="contexts", mime_type="application/json",
                     description="Every context with entity and relation counts, size, last change and health.")
    def contexts() -> str:
        return json.dumps([c.model_dump(mode="json", by_alias=True) for c in store.list_contexts()], ensure_ascii=False)

    @server.resource("coaia://brief", name="brief", mime_type="text/markdown",
                     description="What to know at the start of a session, under 2,000 tokens: overdue steps, steps due "
                                 "within 7 days, active top-level charts per context with progress and next step.")
    def brief() -> str:
        return build_brief(store).text()

    @server.resource("coaia://chart/{chartId}", name="chart", mime_type="text/markdown",
                     description="One chart and its sub-charts as Markdown: outcome, current reality, steps, progress.")
    def chart(chartId: str) -> str:  # noqa: N803 - the URI template names it
        try:
            return chart_markdown(charts.get_chart(chartId=chartId))
        except CoaiaError as exc:
            raise ResourceNotFoundError(str(exc)) from exc

    @server.resource("coaia://charts/{context}", name="active-charts", mime_type="text/markdown",
                     description="The active charts of one context, with progress and due dates, as Markdown.")
    def active_charts(context: str) -> str:
        try:
            page = charts.list_charts(context=context, status="active", limit=500)
        except CoaiaError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        lines = [f"# Active charts in `{context}` ({page.total})", ""]
        lines += [f"- {'  ' * c.level}{c.desiredOutcome} (due {c.dueDate or 'no date'}{', OVERDUE' if c.overdue else ''}) "
                  f"{progress_bar(c.progress)} `coaia://chart/{c.chartId}`" for c in page.charts]
        return "\n".join(lines) + "\n"

    @server.resource("coaia://graph/{context}", name="graph", mime_type="application/json",
                     description="The whole knowledge graph of one context (entities and relations) as JSON.")
    def graph(context: str) -> str:
        try:
            page = store.read_graph(context=context)
        except CoaiaError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        return page.model_dump_json(by_alias=True, include={"entities", "relations"})

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
