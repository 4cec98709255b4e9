"""The store tools: where the data lives and how healthy it is, integrity checks and repairs, backups, history
and undo."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import BaseModel, Field, StrictBool

from ..errors import InvalidInputError
from ..graph.paging import Pager
from ..safety.history import History
from ..store import Store
from ..store import validate_integrity as check_integrity
from .arguments import ContextArg, Cursor, Limit
from .hints import ADD, OVERWRITE, READ, Tool
from .replies import as_data, bounded, page, reply


def _status(store: Store, context: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    status = store.status()
    backups = {b.context: b.latest for b in status.backups}
    growth = {g.context: g for g in status.capacity.contexts} if status.capacity else {}
    rows = [
        {
            "name": c.name,
            "entities": c.entities,
            "relations": c.relations,
            "bytes": c.bytes,
            "lastModified": c.lastModified,
            "health": _health(c),
            "problem": c.unreadable or c.housekeeping,
            "lastBackup": backups.get(c.name),
            "damagedLines": len(c.damagedLines) or None,
            "checksummed": None if c.checksummed else False,
            "grewLast7Days": growth[c.name].last7Days if c.name in growth else None,
            "grewLast30Days": growth[c.name].last30Days if c.name in growth else None,
        }
        for c in status.contexts
        if context is None or c.name == context
    ]
    shown, next_cursor = page(rows, limit, cursor, Pager("storage_status", context))
    data = {
        "directory": status.directory,
        "reason": status.reason,
        "formatVersion": status.formatVersion,
        "fsync": status.fsync,
        "degraded": status.degraded,
        "problems": status.problems[:20],
        "totalContexts": len(rows),
        "contexts": shown,
        "nextCursor": next_cursor,
        "disk": status.capacity.model_dump(exclude={"contexts"}) if status.capacity else None,
        "tools": [t.model_dump() for t in status.tools],
    }
    if len(status.problems) > 20:
        data["note"] = f"{len(status.problems) - 20} more problems: validate_integrity lists them per context"
    return bounded(data, "contexts", "pass a smaller limit and page with nextCursor")


def _health(info: Any) -> str:
    if info.unreadable:
        return "unreadable"
    return "degraded" if info.degraded or info.housekeeping else ("read-only" if info.readOnly else "ok")


def _operation(op: Any) -> dict[str, Any]:
    """An operation as history and undo list it: the summary names what it touched."""
    return as_data(
        {
            "id": op.id,
            "contexts": op.contexts,
            "time": op.time,
            "action": op.action,
            "summary": op.summary,
            "by": op.by,
            "undoes": op.undoes,
        }
    )


class StoreTools:
    """The store tools over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._history = History(store)

    def tools(self) -> dict[str, Tool]:
        return {
            "storage_status": (self.storage_status, READ),
            "validate_integrity": (self.validate_integrity, ADD),  # not destructive, safe to repeat
            "backups": (self.backups, OVERWRITE),
            "history": (self.history, READ),
            "undo": (self.undo, OVERWRITE),
        }

    def storage_status(self, context: ContextArg = None, limit: Limit = 100, cursor: Cursor = None) -> CallToolResult:
        """Where the data lives and why, each context's counts, size, health and last backup (paginated), and any
        problem with what to do about it. Start here to see which contexts exist."""
        return reply(_status(self.store, context, limit, cursor))

    def validate_integrity(
        self,
        context: ContextArg = None,
        repair: Annotated[StrictBool, Field(description="Apply the safe repairs, each logged.")] = False,
    ) -> CallToolResult:
        """Check every context (or one): damaged lines, checksum failures, a torn tail, dangling relations, orphan
        sub-charts, due dates that break the timeline, open items under completed ones, backups."""
        data = as_data(check_integrity(self.store, context=context, repair=repair))
        data["contexts"] = sorted(data["contexts"], key=lambda c: c.get("ok", False))
        return reply(bounded(data, "contexts", "the ones shown first have problems; pass context for one"))

    def backups(
        self,
        action: Literal["list", "create", "restore"] = "list",
        backupId: Annotated[str | None, Field(description="For restore: a backup or group id.")] = None,  # noqa: N803
        context: ContextArg = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """List backups (newest first), back up now (one context or all), or restore one: a restore backs up the
        current state first, so it can be undone. Backups are also taken daily, weekly and before rewrites."""
        if action == "restore":
            if backupId is None:
                raise InvalidInputError('restore needs backupId: backups {"action": "list"} shows them')
            restored = as_data(self.store.backups.restore_backup(backupId, context))
            return reply(bounded(restored, "restored", "restore one context"))
        if backupId is not None:
            raise InvalidInputError(f"backupId is only for action 'restore' (got action {action!r})")
        if action == "create":
            return reply(bounded({"created": self._back_up(context)}, "created", "list them with backups"))
        listed = list(reversed(self.store.backups.list_backups(context)))
        shown, next_cursor = page(listed, limit, cursor, Pager("backups", context))
        data = {"backups": [as_data(b) for b in shown], "total": len(listed), "nextCursor": next_cursor}
        return reply(bounded(data, "backups", "pass a smaller limit"))

    def _back_up(self, context: str | None) -> list[dict[str, Any]]:
        backups = self.store.backups
        taken = backups.backup_all() if context is None else [b for b in [backups.backup_context(context)] if b]
        return [as_data(b) for b in taken]

    def history(
        self,
        chartId: Annotated[str | None, Field(description="A chart's timeline.")] = None,  # noqa: N803
        entity: Annotated[str | None, Field(description="An entity's versions.")] = None,
        context: ContextArg = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """A chart's timeline (chartId), an entity's versions (entity), or else the latest operations with their
        ids, newest first: what undo takes. Paginated."""
        if chartId is not None and entity is not None:
            raise InvalidInputError("pass chartId or entity, not both")
        if chartId is not None:
            found: BaseModel = self._history.chart_history(chartId, context, limit, cursor)
        elif entity is not None:
            found = self._history.entity_history(entity, context, limit, cursor)
        else:
            found = self._history.operations(context, limit, cursor)
        return reply(found)  # the library's pages are bounded to fit a reply

    def undo(
        self,
        operationId: Annotated[str | None, Field(description="From history; omitted: the latest operation.")] = None,  # noqa: N803
        context: ContextArg = None,
    ) -> CallToolResult:
        """Revert one operation by appending a new one (history is never rewritten; undoing an undo redoes). Refused,
        with nothing written, when a later operation changed the same things; the reply says what was undone."""
        result = self._history.undo(operationId, context=context)
        data = {
            "operationId": result.opId,
            "summary": result.summary,
            "contexts": result.contexts,
            "undone": [_operation(o) for o in result.undone],
            "entities": result.entities,
            "relations": result.relations,
        }
        return reply(bounded(data, "entities", "history shows them all"))
