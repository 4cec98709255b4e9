"""The store's past from the command line: ``history`` of the store, a chart or an entity, and ``undo``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import BaseModel

from ..errors import NotFoundError
from .options import ContextOption, DirOption, JsonFlag, open_store
from .output import emit_json, out

_LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, max=500, help="Most lines on one page.")]
_CursorOption = Annotated[
    str | None, typer.Option("--cursor", help="The next-page cursor the previous page printed.", show_default=False)
]


def history(
    name: Annotated[
        str | None,
        typer.Argument(
            help="An entity name or a chart id; omitted: the latest operations "
            "of the whole store, with the ids undo takes.",
            show_default=False,
        ),
    ] = None,
    context: ContextOption = None,
    limit: _LimitOption = 20,
    cursor: _CursorOption = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """The latest operations with their ids (newest first), or how one chart or entity changed over time.

    Example: coaia-store history  |  coaia-store history chart_launch --context work
    """
    from ..safety.history import History

    past = History(open_store(directory))
    if name is None:
        ops = past.operations(context, limit=limit, cursor=cursor)
        lines = [f"{op.time}  {op.id}  {op.action:<16} {op.summary}" + _by(op.by) for op in ops.operations]
        _print_page(ops, lines or ["no operations yet"], as_json)
        return
    try:
        chart = past.chart_history(name, context, limit=limit, cursor=cursor)
    except NotFoundError:
        chart = None
    if chart is not None:
        lines = [f"{e.time}  {e.kind:<16} {_event_text(e)}  [{e.opId}]{_by(e.by)}" for e in chart.events]
        _print_page(chart, lines, as_json)
        return
    entity = past.entity_history(name, context, limit=limit, cursor=cursor)
    lines = [f"{v.time}  {v.action:<8} {v.context}  [{v.opId}]{_by(v.by)}" for v in entity.versions]
    _print_page(entity, lines or [f"no history for {name!r}"], as_json)


def _event_text(event: Any) -> str:
    if event.kind == "chart_moved":
        return f"from {event.fromContext} to {event.toContext}"
    return event.text or ""


def _print_page(page: BaseModel, lines: list[str], as_json: bool) -> None:
    if as_json:
        emit_json(page)
        return
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    if getattr(page, "nextCursor", None):
        out.print(f"({page.note}: --cursor {page.nextCursor})", highlight=False, markup=False)  # type: ignore[attr-defined]


def _by(name: str | None) -> str:
    return f" by {name}" if name else ""


def undo(
    op: Annotated[
        str | None,
        typer.Option(
            "--op", help="The id of the operation to revert (`coaia-store history` lists them).", show_default=False
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context", "-c", help="Only operations of this context (default: the whole store).", show_default=False
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", "-n", min=1, help="How many of the latest operations (without --op).")
    ] = 1,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Revert one operation by its id, or the latest one of the whole store, by appending a new operation
    (history is kept; undoing an undo redoes).

    Example: coaia-store undo  |  coaia-store undo --op 3f9c0a7b12d4e856
    """
    from ..safety.history import History

    result = History(open_store(directory)).undo(op, context, count=count)
    if as_json:
        emit_json(result)
        return
    out.print(
        result.summary + (f"; recorded as operation {result.opId}" if result.opId else "; nothing had to change"),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
