"""Moving a top-level chart (with its sub-charts) to another context, and archiving a completed one.

A move is two writes under one operation id: the copy to the target first, then the delete from
the source (see :meth:`ChartMoves.move_chart`).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConflictError, NotFoundError
from ..graph.contexts import ARCHIVE_CONTEXT, validate_context_name
from ..graph.state import RECORD_META_KEYS, GraphState, relation_key
from ..storage.caller import check_write
from ..storage.envelope import new_op_id
from ..storage.lines import Record
from .access import ChartAccess, Request, parse_request
from .models import ChartRef, MoveChart, MoveResult
from .tree import ChartIndex, chart_name, meta
from .writes import Tx


class ChartMoves(ChartAccess):
    """The move and archive operations of :class:`~coaia_store.charts.Charts`."""

    def archive_chart(self, request: Request = None, /, **fields: Any) -> MoveResult:
        """Move a completed top-level chart (and its sub-charts) to the ``completed`` context."""
        req = parse_request(ChartRef, request, fields)
        return self._move(req.chartId, ARCHIVE_CONTEXT, req.context, require_completed=True)

    def move_chart(self, request: Request = None, /, **fields: Any) -> MoveResult:
        """Move a top-level chart (and its sub-charts) to another context.

        Two writes: the copy to the target first (idempotent by chart id), then the delete from the
        source, which only goes ahead if the source still holds exactly what was copied. A crash
        between them leaves the chart in both contexts, never in neither; running the same call
        again finishes the move.
        """
        req = parse_request(MoveChart, request, fields)
        target = validate_context_name(req.toContext)
        return self._move(req.chartId, target, req.context, require_completed=target == ARCHIVE_CONTEXT)

    def _move(self, chart_id: str, target: str, context: str | None, *, require_completed: bool) -> MoveResult:
        source = self._move_source(chart_id, target, context)
        if source is None:
            entities, relations = self.store.graph(target).read(
                lambda state: _tree_records(ChartIndex(state.entities), state, chart_id)
            )
            return MoveResult(
                chartId=chart_id,
                fromContext=None,
                toContext=target,
                entities=len(entities),
                relations=len(relations),
                moved=False,
            )
        op_id = new_op_id()  # both writes are one operation: history shows one move, undo reverts both
        check_write(source)  # both ends before either is written: a token allowed only one changes nothing
        check_write(target)
        for _ in range(5):
            entities, relations = self._copy_plan(source, chart_id, require_completed)
            self._write(target, lambda tx: _put_all(tx, entities + relations), op_id)
            if self._write(source, lambda tx: _delete_if_unchanged(tx, chart_id, entities), op_id):
                return MoveResult(
                    chartId=chart_id,
                    fromContext=source,
                    toContext=target,
                    entities=len(entities),
                    relations=len(relations),
                    moved=True,
                    operationId=op_id,
                )
        raise ConflictError(f"chart {chart_id!r} kept changing in context {source!r} while being moved; try again")

    def _move_source(self, chart_id: str, target: str, context: str | None) -> str | None:
        """Where the chart is moved from; ``None`` when it is already only in ``target``."""
        if context is not None:
            source = self._chart_context(chart_id, context)
            return None if source == target else source
        holders = [c for c in self.store.contexts() if self._has_chart(c, chart_id)]
        if not holders:
            raise NotFoundError(f"no chart {chart_id!r} in any context; list_charts shows the charts")
        others = [c for c in holders if c != target]
        return others[0] if others else None

    def _has_chart(self, context: str, chart_id: str) -> bool:
        return bool(self.store.graph(context).read(lambda state: chart_name(chart_id) in state.entities))

    def _copy_plan(self, source: str, chart_id: str, require_completed: bool) -> tuple[list[Record], list[Record]]:
        graph = self.store.graph(source)

        def collect(state: GraphState) -> tuple[list[Record], list[Record]]:
            index = ChartIndex(state.entities)
            chart = index.chart(chart_id, source)
            if meta(chart).get("parentChart"):
                raise ConflictError(
                    f"chart {chart_id!r} is a sub-chart of {meta(chart)['parentChart']!r}; move its top-level chart"
                )
            if require_completed and meta(chart).get("completionStatus") is not True:
                raise ConflictError(
                    f"chart {chart_id!r} is not completed; complete it first "
                    f'(complete {{"target": "{chart_id}"}}), then move it to {ARCHIVE_CONTEXT!r}'
                )
            return _tree_records(index, state, chart_id)

        return graph.read(collect)


def _strip(record: Record) -> Record:
    return {k: v for k, v in record.items() if k not in RECORD_META_KEYS}


def _tree_records(index: ChartIndex, state: GraphState, chart_id: str) -> tuple[list[Record], list[Record]]:
    """The entities of a chart's subtree and the relations between them, as they would be written."""
    names = set(index.entity_names(chart_id))
    entities = [_strip(state.entities[n]) for n in index.entity_names(chart_id)]
    keys = dict.fromkeys(k for n in names for k in state.links.get(n, ()) if k[0] in names and k[2] in names)
    return entities, [_strip(state.relations[k]) for k in keys]


def _put_all(tx: Tx, records: list[Record]) -> None:
    """Write records the target lacks or holds differently (a re-run after a crash writes nothing twice)."""
    for record in records:
        if record.get("type") == "relation":
            stored = tx.state.relations.get(relation_key(record))
        else:
            stored = tx.state.entities.get(record["name"])
        if stored is None or _strip(stored) != record:
            tx.put_copy(record)


def _delete_if_unchanged(tx: Tx, chart_id: str, copied: list[Record]) -> bool:
    """Delete the chart's subtree from the source if it is still exactly what was copied."""
    if not tx.state.entities.get(chart_name(chart_id)):
        return True
    names = tx.index.entity_names(chart_id)
    if [_strip(tx.state.entities[n]) for n in names] != copied:
        return False
    for name in names:
        tx.delete(name)
    return True
