"""The ``coaia-store`` command: look at a ``.coaia`` directory from a terminal.

Each command is a thin shell over one :class:`~coaia_store.Store` method. Exit codes:
0 success, 1 an error (one readable line on stderr), 2 bad usage, 3 ``status`` or
``validate`` found a problem.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import CoaiaError
from .store import Store

EXIT_ERROR, EXIT_DEGRADED = 1, 3

app = typer.Typer(
    name="coaia-store",
    help="Durable storage for structural tension charts and their knowledge graph, kept in a .coaia/ directory.\n\n"
    "Example: coaia-store --dir ~/project/.coaia status",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output keeps whole lines for grep and scripts instead of folding to 80 columns.
_out = Console(width=None if sys.stdout.isatty() else 160)
_err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class _Options:
    directory: str | None = None
    debug: bool = False


def _version(value: bool) -> None:
    if value:
        print(f"coaia-store {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    directory: Annotated[
        str | None,
        typer.Option("--dir", help="The .coaia directory to use (else COAIA_DIR, CLAUDE_PROJECT_DIR/.coaia, "
                     "the nearest .coaia above the working directory, or ~/.coaia).", show_default=False),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    _Options.directory, _Options.debug = directory, debug


DirOption = Annotated[
    str | None, typer.Option("--dir", help="The .coaia directory to use (overrides the one given before the command).",
                             show_default=False)
]


def _store(directory: str | None = None, **options: Any) -> Store:
    return Store(directory or _Options.directory, **options)


def _emit_json(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    data = value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value
    print(json.dumps(data, indent=2, ensure_ascii=False))


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


@app.command()
def serve(
    directory: DirOption = None,
    tools: Annotated[
        str, typer.Option("--tools", envvar="COAIA_TOOLS", help="Tool profile: full, graph, or memory (the official "
                          "memory server's nine tools, as a drop-in).")
    ] = "full",
    http: Annotated[bool, typer.Option("--http", help="Serve Streamable HTTP at /mcp instead of stdio.")] = False,
    host: Annotated[str, typer.Option("--host", help="HTTP address; beyond loopback a token is required.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP port.")] = 8765,
    token: Annotated[
        str | None, typer.Option("--token", envvar="COAIA_TOKEN", help="Bearer token every HTTP request must carry.",
                                 show_default=False)
    ] = None,
) -> None:
    """Run the MCP server: stdio by default (what Claude Desktop, Claude Code, VS Code and Cursor start),
    or Streamable HTTP with --http so several agents can share one server.

    Example: coaia-store serve --dir ~/project/.coaia --tools memory
    """
    from .server import PROFILES, serve_http, serve_stdio  # the MCP SDK loads only for this command

    if tools not in PROFILES:
        raise CoaiaError(f"unknown tool profile {tools!r}: choose one of {', '.join(PROFILES)}")
    store = _store(directory, background_backups=True)  # the day's first call need not wait for its backups
    try:
        if http:
            serve_http(store, tools, host=host, port=port, token=token)  # type: ignore[arg-type]
        else:
            serve_stdio(store, tools)  # type: ignore[arg-type]
    finally:
        store.close()  # lets a backup under way finish


@app.command()
def status(as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """Which .coaia directory is used and why, each context's counts and health.

    Example: coaia-store status --json
    """
    report = _store(directory).status()
    if as_json:
        _emit_json(report)
    else:
        _out.print(f"[bold]{report.directory}[/bold]  ({report.reason})")
        _out.print(_contexts_table(report.contexts))
        for problem in report.problems:
            _out.print(f"[yellow]! {problem}[/yellow]")
        _out.print("[red]degraded[/red]" if report.degraded else "[green]healthy[/green]")
    if report.degraded:
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def contexts(as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """List the contexts (one JSONL file each) with counts, sizes and last change.

    Example: coaia-store contexts
    """
    infos = _store(directory).list_contexts()
    if as_json:
        _emit_json([i.model_dump(mode="json", by_alias=True) for i in infos])
    else:
        _out.print(_contexts_table(infos))


@app.command()
def validate(
    context: Annotated[str | None, typer.Option("--context", "-c", help="Check only this context.")] = None,
    fix: Annotated[bool, typer.Option("--fix", help="Apply the safe repairs (torn tail, dangling relations).")] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Check every context: damaged lines, torn tail, dangling relations, orphan sub-charts, timeline.

    Exits 3 when a problem remains. Example: coaia-store validate --fix
    """
    from .integrity import validate_integrity

    report = validate_integrity(_store(directory), context=context, repair=fix)
    if as_json:
        _emit_json(report)
    else:
        for ctx in report.contexts:
            _out.print(f"[bold]{ctx.context}[/bold] ({ctx.file}): {ctx.linesRead} lines, "
                       f"{ctx.recordsApplied} records " + ("[green]ok[/green]" if ctx.ok else "[red]problems[/red]"))
            for line in _integrity_lines(ctx):
                _out.print(f"  {line}", highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(EXIT_DEGRADED)


def _integrity_lines(ctx: Any) -> list[str]:
    found = [f"line {d.line}: {d.problem}" for d in ctx.damagedLines]
    if ctx.tornTail:
        found.append(f"torn tail of {ctx.tornTail.length} bytes (the next write, or --fix, cuts it)")
    found += [f"dangling relation {r}" for r in ctx.danglingRelations]
    found += [f"orphan sub-chart {c}" for c in ctx.orphanSubCharts]
    return found + ctx.timelineViolations + [f"repaired: {r}" for r in ctx.repairs]


ContextOption = Annotated[str | None, typer.Option("--context", "-c", help="Only this context (default: all).")]


@app.command()
def backup(context: ContextOption = None, as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """Back up every context (or one) now, into .coaia/.backup/manual/.

    Example: coaia-store backup --context work
    """
    store = _store(directory)
    taken = store.backups.backup_all() if context is None else [b for b in [store.backups.backup_context(context)] if b]
    if as_json:
        _emit_json([b.model_dump(mode="json") for b in taken])
        return
    for info in taken:
        _out.print(f"{info.id}  {info.records} records, {_size(info.size)}", highlight=False)


@app.command()
def backups(context: ContextOption = None, as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """List the backups, oldest first: id, kind, time, records, size.

    Example: coaia-store backups --json
    """
    found = _store(directory).backups.list_backups(context)
    if as_json:
        _emit_json([b.model_dump(mode="json") for b in found])
        return
    table = Table("id", "context", "kind", "time (UTC)", "records", "size", box=box.SIMPLE_HEAD, pad_edge=False)
    for info in found:
        table.add_row(info.id, info.context, info.kind, info.time[:19].replace("T", " "), str(info.records), _size(info.size))
    _out.print(table)


@app.command()
def restore(
    backup_id: Annotated[str, typer.Argument(help="A backup id or group id from `coaia-store backups`.")],
    context: Annotated[str | None, typer.Option("--context", "-c", help="With a group id: only this context.")] = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Restore a backup (it must verify); the current state is backed up first.

    Example: coaia-store restore daily/charts-work-2026-11-21
    """
    result = _store(directory).backups.restore_backup(backup_id, context)
    if as_json:
        _emit_json(result)
        return
    for info in result.restored:
        _out.print(f"restored {info.context} from {info.id}", highlight=False)
    for info in result.safetyBackups:
        _out.print(f"the state before is in {info.id}", highlight=False)


@app.command()
def compact(
    context: Annotated[str, typer.Option("--context", "-c", help="The context to compact.")] = "default",
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Rewrite a context's file to its current state; the old file is kept in .coaia/history/.

    Example: coaia-store compact --context work
    """
    done = _store(directory).compact(context)
    if as_json:
        _emit_json({"context": context, "compacted": done})
    elif done:
        _out.print(f"compacted context {context!r}")
    else:
        _err.print(f"context {context!r} was not compacted: it has no file yet, or damaged lines that need a repair first")
        raise typer.Exit(EXIT_ERROR)


def _contexts_table(infos: list[Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("context", "file", "entities", "relations", "size", "changed (UTC)", "health"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("entities", "relations", "size") else "left")
    for info in infos:
        health = "[red]degraded[/red]" if info.degraded else ("ok" if info.checksummed else "ok (legacy)")
        changed = info.lastModified[:16].replace("T", " ") if info.lastModified else "-"
        table.add_row(info.name, info.file, str(info.entities), str(info.relations), _size(info.bytes), changed, health)
    return table


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def main() -> None:
    try:
        app()
    except CoaiaError as exc:
        if _Options.debug:
            raise
        _err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_ERROR)
