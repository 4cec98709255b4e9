"""What the commands share on their command line: the options given before the command, the option
types several commands take, and opening the store they name."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..store import Store


class GlobalOptions:
    """``--dir`` and ``--debug`` as given before the command."""

    directory: str | None = None
    debug: bool = False


DirOption = Annotated[
    str | None,
    typer.Option(
        "--dir", help="The .coaia directory to use (overrides the one given before the command).", show_default=False
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
ContextOption = Annotated[str | None, typer.Option("--context", "-c", help="Only this context (default: all).")]


def open_store(directory: str | None = None, **options: Any) -> Store:
    """The store of the command's ``--dir``, else of the one given before the command, else the usual search."""
    return Store(directory or GlobalOptions.directory, **options)


def one_of(context: str | None, all_contexts: bool) -> None:
    if context is not None and all_contexts:
        raise typer.BadParameter("give --context or --all, not both", param_hint="--all")
