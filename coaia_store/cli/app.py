"""The ``coaia-store`` command: look at a ``.coaia`` directory from a terminal.

Each command is a thin shell over one :class:`~coaia_store.Store` method. Exit codes:
0 success, 1 an error (one readable line on stderr), 2 bad usage, 3 ``status`` or
``validate`` found a problem.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import __version__
from ..errors import CoaiaError, NotFoundError, UsageError, os_errors_reported
from ..graph.config import load_config
from ..graph.contexts import context_file, validate_context_name
from ..graph.gitsetup import set_up
from ..graph.location import explicit_location
from ..models import StoreStatus
from ..safety import transfer
from ..store import Store
from . import views

EXIT_ERROR, EXIT_USAGE, EXIT_DEGRADED = 1, 2, 3

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
        typer.Option(
            "--dir",
            help="The .coaia directory to use (else COAIA_DIR, the project's from CLAUDE_PROJECT_DIR, "
            "the nearest .coaia above the working directory, or ~/.coaia).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _Options.directory, _Options.debug = directory, debug


DirOption = Annotated[
    str | None,
    typer.Option(
        "--dir", help="The .coaia directory to use (overrides the one given before the command).", show_default=False
    ),
]


def _store(directory: str | None = None, **options: Any) -> Store:
    return Store(directory or _Options.directory, **options)


def _emit_json(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    data = value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value
    print(json.dumps(data, indent=2, ensure_ascii=False))


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


@app.command()
def serve(
    ctx: typer.Context,
    directory: DirOption = None,
    tools: Annotated[
        str,
        typer.Option(
            "--tools",
            envvar="COAIA_TOOLS",
            help="Tool profile: full (24 tools), charts (chart "
            "tools with history, undo, status, report), graph (graph and store tools), or memory (the "
            "official memory server's nine tools, as a drop-in).",
        ),
    ] = "full",
    http: Annotated[bool, typer.Option("--http", help="Serve Streamable HTTP at /mcp instead of stdio.")] = False,
    host: Annotated[
        str, typer.Option("--host", help="HTTP address; beyond loopback a token is required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP port (1-65535).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="COAIA_TOKEN", help="Bearer token every HTTP request must carry.", show_default=False
        ),
    ] = None,
    tokens_file: Annotated[
        str | None,
        typer.Option(
            "--tokens-file",
            envvar="COAIA_TOKENS_FILE",
            help="Named tokens (TOML or JSON: name, "
            "token, role read|write, optional contexts); each write records who made it.",
            show_default=False,
        ),
    ] = None,
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            envvar="COAIA_ALLOWED_HOSTS",
            help="Accept only requests "
            "whose Host is this name (repeatable). With a token any Host is accepted "
            "otherwise; on loopback without one, only loopback names.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the MCP server: stdio by default (what Claude Desktop, Claude Code, VS Code and Cursor start),
    or Streamable HTTP with --http so several agents can share one server.

    Example: coaia-store serve --dir ~/project/.coaia --tools memory
    """
    from ..server.app import PROFILES
    from ..server.http import HttpSettings, allowed_host_list  # the MCP SDK loads only for this command

    if tools not in PROFILES:
        raise UsageError(f"--tools {tools}: unknown tool profile; choose one of {', '.join(PROFILES)}")
    _http_options_need_http(ctx, http)
    if token and tokens_file:
        raise UsageError(
            "give --token or --tokens-file, not both (put the shared token in the tokens file as an entry)"
        )
    settings = HttpSettings(
        host=host, port=port, tokens=_tokens(token, tokens_file), allowed_hosts=allowed_host_list(allowed_hosts or [])
    )
    if http:
        settings.check()
    store = _store(directory, background_backups=True)  # the day's first call need not wait for its backups
    try:
        _run_server(store, tools, settings if http else None)
    finally:
        store.close()  # lets a backup under way finish


def _http_options_need_http(ctx: typer.Context, http: bool) -> None:
    """An HTTP option typed on the command line without --http would be silently ignored: refuse it."""
    flags = {
        "host": "--host",
        "port": "--port",
        "token": "--token",
        "tokens_file": "--tokens-file",
        "allowed_hosts": "--allowed-host",
    }
    typed = [
        flag for name, flag in flags.items() if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    ]  # typer vendors click's enum
    if typed and not http:
        raise UsageError(
            f"{', '.join(typed)} only work(s) with --http: add --http to serve over HTTP, or drop the option for stdio"
        )


def _tokens(token: str | None, tokens_file: str | None) -> Any:
    from ..server.tokens import TokenTable, load_tokens

    if tokens_file:
        return load_tokens(tokens_file)
    return TokenTable.single(token) if token else None


def _run_server(store: Store, tools: str, settings: Any) -> None:
    if settings is None:
        from ..server.app import serve_stdio

        serve_stdio(store, tools)  # type: ignore[arg-type]
    else:
        from ..server.http import serve_http

        serve_http(store, tools, settings)


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
            _out.print(f"[yellow]! {escape(cli_names(problem))}[/yellow]")
        if report.capacity is not None:
            _print_capacity(report.capacity)
        for note in _git_notes(report):
            _out.print(f"note: {note}", highlight=False, markup=False)
        if report.git is not None:
            _out.print(
                f"in the git work tree {report.git.repository}; automatic compaction {report.git.autoCompaction}",
                highlight=False,
                markup=False,
            )
        _out.print("[red]degraded[/red]" if report.degraded else "[green]healthy[/green]")
    if report.degraded:
        raise typer.Exit(EXIT_DEGRADED)


def _print_capacity(found: Any) -> None:
    if found.daysLeft is None:
        left = "not growing"
    elif found.daysLeft > 36500:
        left = "more than 100 years left at that rate"
    else:
        left = f"about {found.daysLeft:.0f} days left at that rate"
    _out.print(
        f"disk: {_size(found.diskFreeBytes)} free of {_size(found.diskTotalBytes)}; growing "
        f"{_size(int(found.bytesPerDay))}/day; {left}",
        highlight=False,
    )
    for warning in found.warnings:
        _out.print(f"[yellow]! {escape(warning)}[/yellow]", highlight=False)


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
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Apply the safe repairs (damaged lines, with lost records restored from "
            "backup or history; torn tail; dangling relations).",
        ),
    ] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Check every context: damaged lines, torn tail, dangling relations, orphan sub-charts, timeline, backups.

    Exits 3 when a problem remains. Example: coaia-store validate --fix
    """
    from ..store import validate_integrity

    with _busy("repairing…" if fix else "checking…"):
        report = validate_integrity(_store(directory), context=context, repair=fix)
    if as_json:
        _emit_json(report)
    else:
        for ctx in report.contexts:
            _out.print(
                f"[bold]{ctx.context}[/bold] ({ctx.file}): {ctx.linesRead} lines, "
                f"{ctx.recordsApplied} records " + ("[green]ok[/green]" if ctx.ok else "[red]problems[/red]")
            )
            for line in _integrity_lines(ctx):
                _out.print(f"  {line}", highlight=False, markup=False)
        for line in report.problems + [f"repaired: {r}" for r in report.repairs]:
            _out.print(line, highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def doctor(
    fix: Annotated[
        bool, typer.Option("--fix", help="Back up, then apply every safe repair (as validate --fix).")
    ] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """One check of everything: where the data lives and why, every context's integrity and backups, and what to do.

    Check first, fix second: run it without --fix to see, then with --fix to repair. Exits 3 while a
    problem remains. Example: coaia-store doctor --fix
    """
    from ..store import validate_integrity

    store = _store(directory)
    with _busy("repairing…" if fix else "checking…"):
        report = validate_integrity(store, repair=fix)
        status = store.status()
    if as_json:
        _emit_json(
            {"status": status.model_dump(mode="json", by_alias=True), "integrity": report.model_dump(mode="json")}
        )
    else:
        _out.print(f"[bold]{status.directory}[/bold]  ({status.reason})")
        for ctx in report.contexts:
            mark = "[green]ok[/green]" if ctx.ok else "[red]problems[/red]"
            _out.print(f"{ctx.context} ({ctx.file}): {ctx.linesRead} lines, {ctx.recordsApplied} records {mark}")
            for line in _integrity_lines(ctx):
                _out.print(f"  {line}", highlight=False, markup=False)
        for line in [f"repaired: {r}" for r in report.repairs] + [
            f"! {cli_names(problem)}" for problem in status.problems
        ]:
            _out.print(line, highlight=False, markup=False)
        for note in _git_notes(status):
            _out.print(f"note: {note}", highlight=False, markup=False)
        healthy = report.ok and not status.degraded
        advice = (
            "nothing to do"
            if healthy
            else ("some problems need a look (above)" if fix else "run: coaia-store doctor --fix")
        )
        _out.print(("[green]healthy[/green]: " if healthy else "[red]not healthy[/red]: ") + advice)
    if not report.ok or status.degraded:
        raise typer.Exit(EXIT_DEGRADED)


def _git_notes(status: StoreStatus) -> list[str]:
    notes = list(status.git.advice) if status.git else []
    notes += [
        f"conflict in {c.context}: {c.target} {c.field}: {' / '.join(repr(v.value) for v in c.values)} "
        f"(showing {c.chosen!r}; write the value you want to settle it)"
        for c in status.conflicts
    ]
    if status.conflictCount > len(status.conflicts):
        notes.append(f"{status.conflictCount - len(status.conflicts)} more conflicts: coaia-store status --json")
    return notes


def _integrity_lines(ctx: Any) -> list[str]:
    found = [f"line {d.line}: {d.problem}" for d in ctx.damagedLines]
    if ctx.tornTail:
        found.append(f"torn tail of {ctx.tornTail.length} bytes (the next write, or --fix, cuts it)")
    found += [f"dangling relation {r}" for r in ctx.danglingRelations]
    found += [
        f"relation {r} waits for an end lost with a damaged line (kept; create that entity again, "
        "or delete the relation)"
        for r in ctx.waitingRelations
    ]
    found += [f"orphan sub-chart {c}" for c in ctx.orphanSubCharts]
    found += [
        f"entity {n!r} is written more than once (the last is used; the next write migrates the file)"
        for n in ctx.duplicateNames
    ]
    found += [problem for problem in (ctx.readOnly, ctx.lostSinceBackup) if problem]
    return (
        found
        + ctx.timelineViolations
        + ctx.openUnderCompleted
        + ctx.backupProblems
        + [f"repaired: {r}" for r in ctx.repairs]
    )


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
    found, problem = _store(directory).backups.listing(context)
    if problem:
        _err.print(f"! {problem}", highlight=False, markup=False)
    if as_json:
        _emit_json([b.model_dump(mode="json") for b in found])
    else:
        _backups_table(found)
    if problem:
        raise typer.Exit(EXIT_DEGRADED)


def _backups_table(found: list[Any]) -> None:
    table = Table("id", "context", "kind", "time (UTC)", "records", "size", box=box.SIMPLE_HEAD, pad_edge=False)
    for info in found:
        table.add_row(
            info.id, info.context, info.kind, info.time[:19].replace("T", " "), str(info.records), _size(info.size)
        )
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
    with _busy(f"restoring {backup_id}…"):
        result = _store(directory).backups.restore_backup(backup_id, context)
    if as_json:
        _emit_json(result)
        return
    for info in result.restored:
        _out.print(f"restored {info.context} from {info.id}", highlight=False)
    for info in result.safetyBackups:
        _out.print(f"the state before is in {info.id}", highlight=False)


_LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, max=500, help="Most lines on one page.")]
_CursorOption = Annotated[
    str | None, typer.Option("--cursor", help="The next-page cursor the previous page printed.", show_default=False)
]


@app.command()
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

    past = History(_store(directory))
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
        _emit_json(page)
        return
    for line in lines:
        _out.print(line, highlight=False, markup=False, soft_wrap=True)
    if getattr(page, "nextCursor", None):
        _out.print(f"({page.note}: --cursor {page.nextCursor})", highlight=False, markup=False)  # type: ignore[attr-defined]


def _by(name: str | None) -> str:
    return f" by {name}" if name else ""


@app.command()
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

    result = History(_store(directory)).undo(op, context, count=count)
    if as_json:
        _emit_json(result)
        return
    _out.print(
        result.summary + (f"; recorded as operation {result.opId}" if result.opId else "; nothing had to change"),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command()
def brief(context: ContextOption = None, as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """What to know at the start of a session, in under 2,000 tokens: overdue action steps, steps due within
    7 days, and each context's active top-level charts with progress and next step. Made for a Claude Code
    SessionStart hook (its output joins the session's context); --json prints compact JSON.

    Example: coaia-store brief --context work
    """
    from ..reports.brief import build_brief

    result = build_brief(_store(directory), context)
    sys.stdout.write(result.model_dump_json() + "\n" if as_json else result.text())


@app.command()
def compact(
    context: Annotated[str, typer.Option("--context", "-c", help="The context to compact.")] = "default",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="In a store shared through git (init --git): compact anyway "
            "(only when every clone has pulled; see the git guide).",
        ),
    ] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Rewrite a context's file to its current state; the old file is kept in .coaia/history/.

    Example: coaia-store compact --context work
    """
    with _busy(f"compacting {context}…"):
        done = _store(directory).compact(context, force=force)
    if as_json:
        _emit_json({"context": context, "compacted": done})
    elif done:
        _out.print(f"compacted context {context!r}")
    else:
        _err.print(
            f"context {context!r} was not compacted: it has no file yet, or damaged lines that need a repair first"
        )
        raise typer.Exit(EXIT_ERROR)


# ================================================================= for people: setup, charts, import/export
# (init, charts, chart, chart-create, step-add, step-complete, reality-add, export, import, migrate)

_EXAMPLE_CONFIG = """{
  "_comment": "coaia-store settings. Every field is optional; the values below are the defaults. Keys starting with _ are comments.",
  "fsync": "always",
  "_fsync": "'always': a call returns only after its data is on disk. 'never': faster, but a power cut can lose the last ~30 s.",
  "maxRecordBytes": 1048576,
  "_maxRecordBytes": "The largest line one call may write (a whole chart is one line).",
  "lockTimeoutSeconds": 10,
  "_lockTimeoutSeconds": "How long a write waits while another process writes.",
  "stateCacheMinBytes": 1048576,
  "_stateCacheMinBytes": "After replaying this much of a file, save the state in .cache/ so the next start skips it.",
  "compaction": {
    "_comment": "A context's file is rewritten to its current state when it is at least minBytes and this share of it is superseded (never automatically in a store shared through git: init --git).",
    "garbageRatio": 0.5,
    "minBytes": 1048576
  },
  "backup": {
    "_comment": "Automatic backups in .backup/ (outside the work tree once set up with init --git): how many daily and weekly ones to keep.",
    "dailyKeep": 7,
    "weeklyKeep": 5
  },
  "monitoring": {
    "_comment": "status warns when the disk's free space, or the days left at the current growth, fall under these.",
    "freeSpaceWarningMiB": 500,
    "daysLeftWarning": 30
  }
}
"""
_GITIGNORE = """# coaia-store: the chart files (charts*.jsonl), config.json and history/ are meant to be versioned.
# These are local to this machine:
.backup/
.recovery/
.locks/
.cache/
*.tmp
"""
_StatusOption = Annotated[str, typer.Option("--status", "-s", help="active, completed or all.")]
_AllFlag = Annotated[bool, typer.Option("--all", help="Every context (the default).")]
_WriteContext = Annotated[
    str | None,
    typer.Option("--context", "-c", help="The chart's context (default: found in any context).", show_default=False),
]
_interactive = sys.stdout.isatty  # progress bars only on a terminal; piped output stays clean


@app.command()
def init(
    path: Annotated[
        str | None,
        typer.Argument(help="The directory that gets .coaia/ (default: the working directory).", show_default=False),
    ] = None,
    git: Annotated[
        bool,
        typer.Option(
            "--git",
            help="Share it through git: union merges for the chart files "
            "(.gitattributes), and backups and quarantine kept outside "
            "the work tree, where git clean cannot delete them.",
        ),
    ] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Create a .coaia/ directory with a commented config.json and a .gitignore that keeps backups,
    recovery files, locks and caches out of git (chart files stay versionable). Existing files are never overwritten.
    With --git (also on an existing .coaia/): set it up to be shared through git (see the git guide).

    Example: coaia-store init ~/project --git   (or: coaia-store --dir ~/project/.coaia init)
    """
    if path is not None:
        named, source = Path(path) / ".coaia", "init's PATH argument"
    elif directory or _Options.directory:
        named, source = Path(directory or _Options.directory or ""), "the --dir option"
    else:
        named, source = Path(".coaia"), "init's default (the working directory)"
    target = explicit_location(named, source).path
    with os_errors_reported(f"cannot create {target}", "run init with a directory you can write to"):
        target.mkdir(parents=True, exist_ok=True)
    shared = set_up(target) if git else []
    created, kept = [], []
    with os_errors_reported(f"cannot create {target}", "run init with a directory you can write to"):
        target.mkdir(parents=True, exist_ok=True)
        for name, text in (("config.json", _EXAMPLE_CONFIG), (".gitignore", _GITIGNORE)):
            file = target / name
            try:
                with file.open("x", encoding="utf-8") as handle:
                    handle.write(text)
                created.append(str(file))
            except FileExistsError:
                kept.append(str(file))
    load_config(target)  # a config.json that was already there must still load
    if as_json:
        _emit_json({"directory": str(target.resolve()), "created": created, "kept": kept, "git": shared})
        return
    for line in shared:
        _out.print(line, highlight=False)
    for made in created:
        _out.print(f"created {made}", highlight=False)
    for existing in kept:
        _out.print(f"{existing} exists: left as it is (not overwritten)", highlight=False)
    if not created:
        _out.print(f"{target} is already initialised", highlight=False)
    else:
        _out.print(
            f"next: coaia-store --dir {target} chart-create --outcome ... --reality ... --due YYYY-MM-DD",
            highlight=False,
        )


@app.command()
def charts(
    context: ContextOption = None,
    all_contexts: _AllFlag = False,
    status_filter: _StatusOption = "active",
    due_within: Annotated[
        int | None,
        typer.Option(
            "--due-within", min=0, help="Only charts due within N days (overdue included).", show_default=False
        ),
    ] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue charts.")] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """The charts as a tree: each chart with its action steps and their progress, sub-charts nested under
    their step, due dates, overdue in red. Default: every context, active charts.

    Example: coaia-store charts --context work --due-within 14
    """
    _one_of(context, all_contexts)
    if status_filter not in ("active", "completed", "all"):
        raise typer.BadParameter(f"{status_filter!r}: choose active, completed or all", param_hint="--status")
    api = _charts_api(directory)
    summaries = _all_summaries(api, context=context, status=status_filter, dueWithinDays=due_within, overdue=overdue)
    if as_json:
        _emit_json({"charts": [c.model_dump(mode="json") for c in summaries], "total": len(summaries)})
        return
    if not summaries:
        _out.print("no charts match (see --status, --context, --due-within, --overdue)")
        return
    listed = {(c.context, c.chartId) for c in summaries}
    roots = [c for c in summaries if (c.context, c.parentChart) not in listed]
    groups: dict[str, list[Any]] = {}
    for root in roots:
        groups.setdefault(root.context, []).append(api.get_chart(chartId=root.chartId, context=root.context))
    _out.print(views.charts_tree(list(groups.items())))


@app.command()
def chart(
    chart_id: Annotated[str, typer.Argument(help="The chart's id, as `coaia-store charts` shows it.")],
    depth: Annotated[
        int | None,
        typer.Option("--depth", min=0, help="Levels of sub-charts to expand (default: all).", show_default=False),
    ] = None,
    context: _WriteContext = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """One chart in full: desired outcome, current reality, action steps with their notes, sub-charts.

    Example: coaia-store chart chart_20261121050656_d8f5b983fbe6 --depth 1
    """
    view = _charts_api(directory).get_chart(chartId=chart_id, depth=depth, context=context)
    if as_json:
        _emit_json(view)
    else:
        _out.print(views.chart_tree(view))


@app.command("chart-create")
def chart_create(
    outcome: Annotated[str, typer.Option("--outcome", "-o", help="What you want to create, stated as the result.")],
    reality: Annotated[str, typer.Option("--reality", "-r", help="Honest facts about where things stand now.")],
    due: Annotated[str, typer.Option("--due", "-d", help="Due date: 2026-12-31 or 2026-12-31T17:00:00Z.")],
    steps: Annotated[
        list[str] | None, typer.Option("--step", help="An action step title (repeat for several).", show_default=False)
    ] = None,
    context: Annotated[str, typer.Option("--context", "-c", help="The context to create it in.")] = "default",
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Create a structural tension chart: desired outcome, current reality, due date, action steps.

    Example: coaia-store chart-create --outcome "Guide published" --reality "Outline only" --due 2026-12-31
    --step "Draft" --step "Review"
    """
    result = _charts_api(directory).create_chart(
        desiredOutcome=outcome, currentReality=reality, dueDate=due, actionSteps=steps or [], context=context
    )
    _confirm(
        result,
        f"created chart {result.chart.chartId} in context {result.chart.context!r} "
        f"({result.chart.totalSteps} steps, due {result.chart.dueDate})",
        as_json,
    )


@app.command("step-add")
def step_add(
    chart_id: Annotated[str, typer.Argument(help="The chart's id.")],
    title: Annotated[str, typer.Argument(help="The action step's title.")],
    due: Annotated[
        str | None, typer.Option("--due", "-d", help="Due date (default: halfway to the chart's).", show_default=False)
    ] = None,
    context: _WriteContext = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Add an action step to a chart.

    Example: coaia-store step-add chart_20261121050656_d8f5b983fbe6 "Ask two readers for feedback" --due 2026-12-01
    """
    result = _charts_api(directory).add_action_step(chartId=chart_id, title=title, dueDate=due, context=context)
    step = result.actionStep
    _confirm(result, f"added step {step.name if step else title} (due {step.dueDate if step else '?'})", as_json)


@app.command("step-complete")
def step_complete(
    step_name: Annotated[str, typer.Argument(help="The action step's name, e.g. <chartId>_action_2.")],
    context: _WriteContext = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Mark an action step done (a telescoped step also completes its sub-chart).

    Example: coaia-store step-complete chart_20261121050656_d8f5b983fbe6_action_2
    """
    result = _charts_api(directory).complete_action_step(actionStep=step_name, context=context)
    done = ", ".join(result.completed) or f"nothing: {step_name} was already complete"
    _confirm(result, f"completed {done}; chart {result.chart.chartId} at {result.chart.progress:.0%}", as_json)


@app.command("reality-add")
def reality_add(
    chart_id: Annotated[str, typer.Argument(help="The chart's id.")],
    facts: Annotated[list[str], typer.Argument(help="One or more facts about where things stand now.")],
    context: _WriteContext = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Add facts to a chart's current reality (repeats are ignored).

    Example: coaia-store reality-add chart_20261121050656_d8f5b983fbe6 "Draft has 3 of 5 chapters"
    """
    result = _charts_api(directory).update_current_reality(chartId=chart_id, observations=facts, context=context)
    _confirm(
        result,
        f"current reality of {chart_id}: {len(result.chart.currentReality)} facts"
        + ("" if result.changed else " (nothing new)"),
        as_json,
    )


@app.command()
def report(
    window: Annotated[int, typer.Option("--window", "-w", help="Days up to now: 7, 30 or 90.")] = 30,
    context: ContextOption = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot",
            show_default=False,
            help="Also draw the steps completed per week to this PNG file (needs: pip install 'coaia-store\\[plot]').",
        ),
    ] = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """How the charts advanced: steps completed per week, charts completed, steps added, overdue steps and the
    average days from a step's creation to its completion, per context.

    Example: coaia-store report --window 90 --plot advancement.png
    """
    from ..reports.advancement import WINDOWS, advancement_report

    if window not in WINDOWS:
        raise typer.BadParameter(f"{window}: choose 7, 30 or 90", param_hint="--window")
    result = advancement_report(_store(directory), window_days=window, context=context)
    if plot is not None:
        from ..reports.plot import plot_report

        _err.print(f"wrote {plot_report(result, plot)}", highlight=False)
    if as_json:
        _emit_json(result)
        return
    _print_report(result)


def _print_report(result: Any) -> None:
    _out.print(
        f"[bold]last {result.windowDays} days[/bold] ({result.windowStart[:10]} to {result.now[:10]})", highlight=False
    )
    if not result.contexts:
        _out.print("no charts yet")
        return
    rows: list[tuple[str, Any]] = [(c.context, c) for c in result.contexts]
    if len(rows) > 1:
        rows.append(("total", result.totals))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("context")
    for column in ("steps completed", "charts completed", "steps added", "overdue steps", "avg days to complete"):
        table.add_column(column, justify="right")
    for name, row in rows:
        average = "-" if row.averageDaysToComplete is None else f"{row.averageDaysToComplete:.1f}"
        table.add_row(
            escape(name),
            str(row.stepsCompleted),
            str(row.chartsCompleted),
            str(row.stepsAdded),
            str(len(row.overdueSteps)),
            average,
        )
    _out.print(table)
    weekly = Table("week of", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, _ in rows:
        weekly.add_column(escape(name), justify="right")
    for i, week in enumerate(result.totals.stepsCompletedPerWeek):
        weekly.add_row(week.weekStart, *(str(row.stepsCompletedPerWeek[i].count) for _, row in rows))
    _out.print(weekly)
    for step in result.totals.overdueSteps:
        _out.print(
            f"[red]overdue[/red] {escape(step.dueDate)}  {escape(step.title)}  ({escape(step.name)}, "
            f"{escape(step.context)})",
            highlight=False,
        )


@app.command("export")
def export_(
    context: Annotated[
        str | None,
        typer.Option("--context", "-c", help="The context to export (default: default).", show_default=False),
    ] = None,
    all_contexts: Annotated[bool, typer.Option("--all", help="Every context.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl, json or markdown.")] = "jsonl",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="A file (jsonl, json) or a directory (markdown, and jsonl with --all); default: stdout.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Export contexts: jsonl is a clean snapshot the official memory server reads (no checksums, no
    history); json is {"entities", "relations"} per context; markdown is one file per chart (or one report).
    With --output, --json prints a summary of what was written.

    Example: coaia-store export --context work --format jsonl --output work-memory.jsonl
    """
    _one_of(context, all_contexts)
    if fmt not in ("jsonl", "json", "markdown"):
        raise typer.BadParameter(f"{fmt!r}: choose jsonl, json or markdown", param_hint="--format")
    store = _store(directory)
    names = store.contexts() if all_contexts else [_existing_context(store, context or "default")]
    with os_errors_reported(f"cannot export to {output}", "no file was left half-written"):
        written = _EXPORTERS[fmt](store, names, Path(output) if output else None, all_contexts)
    if output is None:
        return
    if as_json:
        _emit_json({"format": fmt, "contexts": names, "files": [str(f) for f in written]})
    else:
        _err.print(
            f"wrote {len(written)} file(s) for {len(names)} context(s): {', '.join(map(str, written[:5]))}"
            + (" ..." if len(written) > 5 else ""),
            highlight=False,
        )


@app.command("import")
def import_(
    file: Annotated[
        str,
        typer.Argument(
            help="A JSONL file: official memory server, coaia-memory, coaia-spiral, "
            "coaia-narrative, AIM or coaia-store."
        ),
    ],
    context: Annotated[str, typer.Option("--context", "-c", help="The context to import into.")] = "default",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    on_conflict: Annotated[
        str,
        typer.Option(
            "--on-conflict",
            help="For names that exist: skip (leave them), merge "
            "(add what they lack), replace (the imported record wins).",
        ),
    ] = "skip",
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Import a knowledge-graph file into a context, in batches; relations whose ends are missing are reported
    and skipped. Merge rules: docs/cli.md#import.

    Example: coaia-store import ~/memory.jsonl --context work --on-conflict merge --dry-run
    """
    if on_conflict not in transfer.ON_CONFLICT:
        raise typer.BadParameter(f"{on_conflict!r}: choose skip, merge or replace", param_hint="--on-conflict")
    report = _run_import(_store(directory), file, context, on_conflict, dry_run)
    if as_json:
        _emit_json(report)
    else:
        _print_import(report)
    if report.failed:
        raise typer.Exit(EXIT_ERROR)


@app.command()
def migrate(
    memory_path: Annotated[
        str,
        typer.Option(
            "--memory-path", envvar="MEMORY_FILE_PATH", help="The old memory.jsonl (default: MEMORY_FILE_PATH)."
        ),
    ],
    context: Annotated[str, typer.Option("--context", "-c", help="The context to move it into.")] = "default",
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Move an old setup (the memory.jsonl of the official memory server or a coaia tool) into this .coaia/
    in one step: an import with --on-conflict merge. The old file is left untouched.

    Example: coaia-store --dir ~/project/.coaia migrate --memory-path ~/memory.jsonl --context work
    """
    store = _store(directory)
    report = _run_import(store, memory_path, context, "merge", False)
    client = migrated_client_config(store.path)
    where = context_file(store.path, report.context)
    if as_json:
        _emit_json(
            {
                "import": report.model_dump(mode="json"),
                "directory": str(store.path),
                "file": str(where),
                "clientConfig": client,
            }
        )
    else:
        _print_import(report)
        _out.print(
            f"\nyour data now lives in {where} (context {report.context!r}); {memory_path} is unchanged.",
            highlight=False,
        )
        _out.print(
            "in your MCP client's configuration (e.g. claude_desktop_config.json or .mcp.json), replace the "
            "memory server's entry with:",
            highlight=False,
        )
        _out.print(json.dumps(client, indent=2), highlight=False, markup=False)
        _out.print(
            "the server keeps its name and tools, so prompts and permissions that name them still work; "
            "drop --tools memory for the chart tools too (docs/clients.md)",
            highlight=False,
        )
    if report.failed:
        raise typer.Exit(EXIT_ERROR)


def migrated_client_config(directory: Path) -> dict[str, Any]:
    """The switching advice of docs/clients.md: the official server's name and its nine tools, on this directory."""
    return {
        "mcpServers": {
            "memory": {"command": "coaia-store", "args": ["serve", "--tools", "memory", "--dir", str(directory)]}
        }
    }


def _one_of(context: str | None, all_contexts: bool) -> None:
    if context is not None and all_contexts:
        raise typer.BadParameter("give --context or --all, not both", param_hint="--all")


def _charts_api(directory: str | None) -> Any:
    from ..charts import Charts

    return Charts(_store(directory))


def _all_summaries(api: Any, **filters: Any) -> list[Any]:
    found, cursor = [], None
    while True:
        page = api.list_charts(limit=500, cursor=cursor, includeSubCharts=True, **filters)
        found += page.charts
        cursor = page.nextCursor
        if cursor is None:
            return found


def _confirm(result: Any, message: str, as_json: bool) -> None:
    if as_json:
        _emit_json(result)
        return
    _out.print(message, highlight=False)
    for warning in result.warnings:
        _out.print(f"[yellow]! {escape(warning)}[/yellow]", highlight=False, soft_wrap=True)


def _existing_context(store: Store, name: str) -> str:
    validate_context_name(name)
    if name not in store.contexts():
        raise NotFoundError(f"no context {name!r} in {store.path}; `coaia-store contexts` lists them")
    return name


def _busy(message: str) -> Any:
    """A spinner while long work runs (restore, repair, compaction) on a terminal; nothing when piped."""
    return _out.status(message) if _interactive() else contextlib.nullcontext()


def _progress(total_hint: str) -> Any:
    """A rich progress bar on a terminal; ``None`` when output is piped (scripts get clean output)."""
    if not _interactive():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn(total_hint), BarColumn(), MofNCompleteColumn(), console=_out, transient=True)


def _run_import(store: Store, file: str, context: str, on_conflict: str, dry_run: bool) -> transfer.ImportReport:
    bar = _progress("importing")
    with bar or nullcontext():
        task = bar.add_task("import", total=None) if bar is not None else None
        tick = None if bar is None else lambda done, total: bar.update(task, advance=done, total=total)
        return transfer.import_file(
            store,
            file,
            context=context,
            on_conflict=on_conflict,  # type: ignore[arg-type]
            dry_run=dry_run,
            progress=tick,
        )


_SHOWN = 8


def _print_import(report: transfer.ImportReport) -> None:
    verb = "would import" if report.dryRun else "imported"
    _out.print(
        f"{verb} {report.file} into context {report.context!r} (on conflict: {report.onConflict})", highlight=False
    )
    for label, names in (
        ("entities added", report.added),
        ("merged", report.merged),
        ("replaced", report.replaced),
        ("skipped (exist)", report.skipped),
        ("unchanged", report.unchanged),
        ("relations added", report.relationsAdded),
        ("relations merged", report.relationsMerged),
        ("relations replaced", report.relationsReplaced),
        ("relations skipped (exist)", report.relationsSkipped),
        ("relations unchanged", report.relationsUnchanged),
    ):
        if names:
            shown = ", ".join(names[:_SHOWN]) + (f", ... ({len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")
            _out.print(f"  {len(names):>5} {label}: {shown}", highlight=False, markup=False, soft_wrap=True)
    for relation in report.dangling:
        _out.print(f"[yellow]! relation not imported, an end is missing: {escape(relation)}[/yellow]", highlight=False)
    for line in report.invalidLines:
        where = f"line {line.line}" if line.line is not None else "record"
        _out.print(f"[yellow]! {where} skipped: {escape(line.problem)}[/yellow]", highlight=False)
    for failure in report.failed:
        _err.print(f"[red]error:[/red] not imported: {escape(failure)}", highlight=False)
    if report.dryRun:
        _out.print("dry run: nothing was written (--json lists every name)")


def _write_bytes(path: Path, chunks: Iterable[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()  # an output that is a directory: leave nothing half-made beside it
        raise
    return path


def _export_jsonl(store: Store, names: list[str], output: Path | None, all_contexts: bool) -> list[Path]:
    if output is None and all_contexts:
        raise typer.BadParameter(
            "jsonl of every context needs --output DIR (one file per context)", param_hint="--output"
        )
    written = []
    bar = _progress("exporting") if output is not None else None
    with bar or nullcontext():
        for name in names:
            entities, relations = transfer.export_records(store, name)
            lines = transfer.jsonl_lines(entities, relations)
            if output is None:
                sys.stdout.buffer.writelines(lines)
                sys.stdout.flush()
                continue
            target = context_file(output, name) if all_contexts else output
            if bar is not None:
                task = bar.add_task(name, total=len(entities) + len(relations))
                lines = _counted(lines, lambda: bar.advance(task))
            written.append(_write_bytes(target, lines))
    return written


def _counted(lines: Iterable[bytes], tick: Any) -> Iterator[bytes]:
    for line in lines:
        tick()
        yield line


def _export_json(store: Store, names: list[str], output: Path | None, all_contexts: bool) -> list[Path]:
    documents = [transfer.json_document(n, *transfer.export_records(store, n)) for n in names]
    data = documents if all_contexts else documents[0]
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return []
    return [_write_bytes(output, [text.encode()])]


def _export_markdown(store: Store, names: list[str], output: Path | None, all_contexts: bool) -> list[Path]:
    from ..charts import Charts
    from ..charts.markdown import chart_markdown

    api = Charts(store)
    tops = [s for n in names for s in _all_summaries(api, context=n, status="all") if not s.parentChart]
    written: list[Path] = []
    bar = _progress("exporting") if output is not None else None
    with bar or nullcontext():
        task = bar.add_task("charts", total=len(tops)) if bar is not None else None
        for summary in tops:
            text = chart_markdown(api.get_chart(chartId=summary.chartId, context=summary.context))
            if output is None:
                sys.stdout.write(text + "\n")
            else:
                folder = output / summary.context if all_contexts else output  # one chart id may be in two contexts
                written.append(_write_bytes(folder / f"{summary.chartId}.md", [text.encode()]))
            if bar is not None and task is not None:
                bar.advance(task)
    return written


_EXPORTERS = {"jsonl": _export_jsonl, "json": _export_json, "markdown": _export_markdown}


def _contexts_table(infos: list[Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("context", "file", "entities", "relations", "size", "changed (UTC)", "health"):
        table.add_column(
            column, no_wrap=True, justify="right" if column in ("entities", "relations", "size") else "left"
        )
    for info in infos:
        health = "[red]degraded[/red]" if info.degraded else ("ok" if info.checksummed else "ok (legacy)")
        changed = info.lastModified[:16].replace("T", " ") if info.lastModified else "-"
        table.add_row(info.name, info.file, str(info.entities), str(info.relations), _size(info.bytes), changed, health)
    return table


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


# The library's messages name the MCP tools (the same names as its functions); on the command line each
# is replaced by the command that does the same thing.
_CLI_NAMES = [
    (re.compile(pattern), command)
    for pattern, command in (
        (r" \(or the validate_integrity tool with repair: true\)", ""),
        (r"the validate_integrity tool with repair: true", "coaia-store validate --fix"),
        (r" \(or the backups tool with action restore\)", ""),
        (
            r"\blist_charts shows the charts and get_chart their steps",
            "`coaia-store charts` shows the charts and `coaia-store chart ID` their steps",
        ),
        (r"\blist_charts shows the charts", "`coaia-store charts` shows the charts"),
        (r"\blist_contexts shows the contexts", "`coaia-store contexts` shows the contexts"),
        (r"\blist_backups(\(\))? shows", "`coaia-store backups` shows"),
    )
]


def cli_names(message: str) -> str:
    for pattern, command in _CLI_NAMES:
        message = pattern.sub(command, message)
    return message


def main() -> None:
    for stream in (sys.stdout, sys.stderr):  # a name read from another tool's file may hold an unpaired surrogate
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        app()
    except (CoaiaError, OSError) as exc:
        if _Options.debug:
            raise
        _err.print(f"[red]error:[/red] {_explain(exc)}", highlight=False, soft_wrap=True, markup=True)
        sys.exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR)


def _explain(exc: CoaiaError | OSError) -> str:
    if isinstance(exc, CoaiaError) or not exc.filename:
        return escape(cli_names(str(exc)))
    return escape(f"{exc.filename}: {exc.strerror or exc}")
