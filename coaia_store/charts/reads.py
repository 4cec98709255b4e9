"""Reading charts: one chart as a tree (now or as of a past moment), and the filtered, paginated list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import NotFoundError
from ..graph.contexts import validate_context_name
from ..graph.paging import Pager
from ..safety.history import History, parse_as_of
from .access import ChartAccess, Request, parse_request
from .models import ChartPage, ChartSummary, ChartView, GetChart, ListCharts
from .rules import is_overdue, within_days
from .tree import ChartIndex, Viewer, chart_name


class ChartReads(ChartAccess):
    """The read operations of :class:`~coaia_store.charts.Charts`."""

    def get_chart(self, request: Request = None, /, **fields: Any) -> ChartView:
        """The chart as a tree (sub-charts to ``depth`` levels), with recursive progress and overdue flags."""
        req = parse_request(GetChart, request, fields)
        if req.asOf is not None:
            return self._past_view(req)
        context = self._chart_context(req.chartId, req.context)
        return self._view(context, req.chartId, req.depth)

    def _past_view(self, req: GetChart) -> ChartView:
        """The chart as it was at ``req.asOf`` (overdue flags as seen then), from the context's history."""
        assert req.asOf is not None
        moment = parse_as_of(req.asOf)
        for past in History(self.store).past_graphs(req.context, req.asOf):
            if chart_name(req.chartId) in past.state.entities:
                return Viewer(ChartIndex(past.state.entities), past.context, moment).chart(req.chartId, req.depth)
        where = f"context {req.context!r}" if req.context is not None else "any context"
        raise NotFoundError(f"no chart {req.chartId!r} in {where} as of {req.asOf}")

    def list_charts(self, request: Request = None, /, **fields: Any) -> ChartPage:
        """Chart summaries across all contexts (or one), filtered and paginated."""
        req = parse_request(ListCharts, request, fields)
        now = self.clock()
        contexts = self.store.contexts() if req.context is None else [validate_context_name(req.context)]
        found = [s for c in contexts for s in self._summaries(c, now) if _keep(s, req, now)]
        pager = list_charts_pager(req)
        offset = pager.offset(req.cursor, len(found))
        end = min(len(found), offset + req.limit)
        return ChartPage(charts=found[offset:end], total=len(found), nextCursor=pager.cursor(end, len(found)))

    def _summaries(self, context: str, now: datetime) -> list[ChartSummary]:
        def collect(viewer: Viewer) -> list[ChartSummary]:
            summaries = [viewer.summary(c) for c in viewer.index.charts]
            return sorted(summaries, key=lambda s: (s.dueDate is None, s.dueDate or "", s.chartId))

        return self._read(context, collect)


def list_charts_pager(req: ListCharts) -> Pager:
    """The cursors of :meth:`Charts.list_charts` with these arguments (for a caller that cuts its pages shorter)."""
    return Pager("list_charts", req.model_dump(exclude={"limit", "cursor"}))


def _keep(summary: ChartSummary, req: ListCharts, now: datetime) -> bool:
    if req.status != "all" and summary.completed != (req.status == "completed"):
        return False
    if not req.includeSubCharts and summary.parentChart:
        return False
    if req.overdue and not is_overdue(summary.dueDate, summary.completed, now):
        return False
    if req.owner is not None and req.owner.casefold() not in {o.casefold() for o in summary.owners}:
        return False
    return req.dueWithinDays is None or within_days(summary.dueDate, req.dueWithinDays, now)
