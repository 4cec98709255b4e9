"""The ``coaia-store`` command: look at a ``.coaia`` directory from a terminal.

This module holds the typer app, the options given before the command, the table of commands (in the
order ``--help`` lists them) and :func:`main`, which turns errors into exit codes. Each command is a thin
shell over one :class:`~coaia_store.Store` method. Exit codes: 0 success, 1 an error (one readable line
on stderr), 2 bad usage, 3 ``status`` or ``validate`` found a problem.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape

from .. import __version__
from ..errors import CoaiaError, UsageError
from . import backups, charts, health, history, reports, serve, setup, transfer
from .options import GlobalOptions
from .output import EXIT_ERROR, EXIT_USAGE, cli_names, err

app = typer.Typer(
    name="coaia-store",
    help="Durable storage for structural tension charts and their knowledge graph, kept in a .coaia/ directory.\n\n"
    "Example: coaia-store --dir ~/project/.coaia status",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    GlobalOptions.directory, GlobalOptions.debug = directory, debug


_COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("serve", serve.serve),
    ("status", health.status),
    ("contexts", health.contexts),
    ("validate", health.validate),
    ("doctor", health.doctor),
    ("backup", backups.backup),
    ("backups", backups.backups),
    ("restore", backups.restore),
    ("history", history.history),
    ("undo", history.undo),
    ("brief", reports.brief),
    ("compact", health.compact),
    ("init", setup.init),
    ("charts", charts.charts),
    ("chart", charts.chart),
    ("chart-create", charts.chart_create),
    ("step-add", charts.step_add),
    ("step-complete", charts.step_complete),
    ("reality-add", charts.reality_add),
    ("report", reports.report),
    ("export", transfer.export_),
    ("import", transfer.import_),
    ("migrate", transfer.migrate),
]
for _name, _command in _COMMANDS:
    app.command(_name)(_command)


def main() -> None:
    for stream in (sys.stdout, sys.stderr):  # a name read from another tool's file may hold an unpaired surrogate
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        app()
    except (CoaiaError, OSError) as exc:
        if GlobalOptions.debug:
            raise
        err.print(f"[red]error:[/red] {_explain(exc)}", highlight=False, soft_wrap=True, markup=True)
        sys.exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR)


def _explain(exc: CoaiaError | OSError) -> str:
    if isinstance(exc, CoaiaError) or not exc.filename:
        return escape(cli_names(str(exc)))
    return escape(f"{exc.filename}: {exc.strerror or exc}")
