"""Backups from the command line: ``backup`` now, list them with ``backups``, ``restore`` one."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from .options import ContextOption, DirOption, JsonFlag, open_store
from .output import EXIT_DEGRADED, busy, emit_json, err, out, size


def backup(context: ContextOption = None, as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """Back up every context (or one) now, into .coaia/.backup/manual/.

    Example: coaia-store backup --context work
    """
    store = open_store(directory)
    taken = store.backups.backup_all() if context is None else [b for b in [store.backups.backup_context(context)] if b]
    if as_json:
        emit_json([b.model_dump(mode="json") for b in taken])
        return
    for info in taken:
        out.print(f"{info.id}  {info.records} records, {size(info.size)}", highlight=False)


def backups(context: ContextOption = None, as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """List the backups, oldest first: id, kind, time, records, size.

    Example: coaia-store backups --json
    """
    found, problem = open_store(directory).backups.listing(context)
    if problem:
        err.print(f"! {problem}", highlight=False, markup=False)
    if as_json:
        emit_json([b.model_dump(mode="json") for b in found])
    else:
        _backups_table(found)
    if problem:
        raise typer.Exit(EXIT_DEGRADED)


def _backups_table(found: list[Any]) -> None:
    table = Table("id", "context", "kind", "time (UTC)", "records", "size", box=box.SIMPLE_HEAD, pad_edge=False)
    for info in found:
        table.add_row(
            info.id, info.context, info.kind, info.time[:19].replace("T", " "), str(info.records), size(info.size)
        )
    out.print(table)


def restore(
    backup_id: Annotated[str, typer.Argument(help="A backup id or group id from `coaia-store backups`.")],
    context: Annotated[str | None, typer.Option("--context", "-c", help="With a group id: only this context.")] = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Restore a backup (it must verify); the current state is backed up first.

    Example: coaia-store restore daily/charts-work-2026-11-21
    """
    with busy(f"restoring {backup_id}…"):
        result = open_store(directory).backups.restore_backup(backup_id, context)
    if as_json:
        emit_json(result)
        return
    for info in result.restored:
        out.print(f"restored {info.context} from {info.id}", highlight=False)
    for info in result.safetyBackups:
        out.print(f"the state before is in {info.id}", highlight=False)
