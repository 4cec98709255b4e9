"""The report tool: how charts advanced over a recent window."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.types import CallToolResult
from pydantic import Field

from ..reports.advancement import advancement_report as build_advancement_report
from ..store import Store
from .arguments import ContextArg
from .hints import READ, Tool
from .replies import as_data, bounded, reply


class ReportTools:
    """The report tool over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def tools(self) -> dict[str, Tool]:
        return {"advancement_report": (self.advancement_report, READ)}

    def advancement_report(
        self,
        windowDays: Annotated[Literal[7, 30, 90], Field(description="Days up to now.")] = 30,  # noqa: N803
        context: ContextArg = None,
    ) -> CallToolResult:
        """How charts advanced over the last 7, 30 or 90 days, per context and in total: steps completed (per
        week), charts completed, steps added, steps overdue, average days from a step's creation to completion."""
        data = as_data(build_advancement_report(self.store, window_days=windowDays, context=context))
        return reply(bounded(data, "contexts", "pass context for one"))
