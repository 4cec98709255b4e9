"""How every chart operation reaches the store: its request parsed, the context that holds the chart
or entity it names, and one read or one write on that context.

Every write is one ``Journal.write`` on one context, so one atomic line on disk, validated on fresh
state under that context's write lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import InvalidInputError, NotFoundError
from ..graph.config import describe_validation_error
from ..graph.contexts import validate_context_name
from ..graph.graphstore import GraphStore
from ..storage.clock import Clock
from ..storage.lines import Record
from .models import ChartView
from .tree import ChartIndex, Viewer, chart_name
from .writes import Change, Tx

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
Request = Mapping[str, Any] | BaseModel | None


def parse_request(model: type[M], request: Request, fields: dict[str, Any]) -> M:
    """The request (a model, a mapping of its fields, or keywords) as ``model``; invalid: nothing is written."""
    if isinstance(request, model) and not fields:
        return request
    data = request.model_dump(exclude_unset=True) if isinstance(request, BaseModel) else dict(request or {})
    try:
        return model.model_validate({**data, **fields})
    except ValidationError as exc:
        raise InvalidInputError(f"invalid arguments: {describe_validation_error(exc)} Nothing was written.") from None


class ChartAccess:
    """The store and clock of a :class:`~coaia_store.charts.Charts`, and the reads and writes its operations share."""

    def __init__(self, store: GraphStore, *, clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or store.clock

    def _write(self, context: str, plan: Callable[[Tx], R], op_id: str | None = None) -> R:
        result, op = self._write_op(context, plan, op_id)
        if isinstance(result, Change):
            result.operation_id = op
        return result

    def _write_op(self, context: str, plan: Callable[[Tx], R], op_id: str | None = None) -> tuple[R, str | None]:
        graph = self.store.graph(context)
        now = self.clock()

        def build() -> tuple[list[Record], R]:
            tx = Tx(graph.state, graph.context, now)
            result = plan(tx)
            if isinstance(result, Change):
                result.changed = bool(tx.records())
            return tx.records(), result

        return graph.journal.write_op(build, op_id)

    def _read(self, context: str, fn: Callable[[Viewer], R]) -> R:
        now = self.clock()
        graph = self.store.graph(context)
        return graph.read(lambda state: fn(Viewer(ChartIndex(state.entities), graph.context, now)))

    def _view(self, context: str, chart_id: str, depth: int | None) -> ChartView:
        return self._read(context, lambda viewer: viewer.chart(chart_id, depth))

    def _entity_context(self, name: str, context: str | None) -> str:
        """The context holding entity ``name``: ``context`` if given, else the first that has it."""
        candidates = [validate_context_name(context)] if context is not None else self.store.contexts()
        for candidate in candidates:
            if self.store.graph(candidate).read(lambda state: name in state.entities):
                return candidate
        where = f"context {context!r}" if context is not None else "any context"
        raise NotFoundError(
            f"no entity named {name!r} in {where}; list_charts shows the charts and get_chart their steps"
        )

    def _entity_context_any(self, target: str, context: str | None) -> str:
        """The context holding an action step or chart named ``target``."""
        try:
            return self._entity_context(target, context)
        except NotFoundError:
            try:
                return self._chart_context(target, context)
            except NotFoundError:
                where = f"context {context!r}" if context is not None else "any context"
                raise NotFoundError(
                    f"no action step or chart {target!r} in {where}; list_charts shows the charts "
                    "and get_chart their steps"
                ) from None

    def _chart_context(self, chart_id: str, context: str | None) -> str:
        try:
            return self._entity_context(chart_name(chart_id), context)
        except NotFoundError:
            where = f"context {context!r}" if context is not None else "any context"
            raise NotFoundError(f"no chart {chart_id!r} in {where}; list_charts shows the charts") from None
