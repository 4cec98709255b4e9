"""How commands print: the two consoles, JSON for scripts, a spinner or progress bar on a terminal only,
sizes, the exit codes, and the library's tool names rewritten into the commands that do the same."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from typing import Any

from pydantic import BaseModel
from rich.console import Console

EXIT_ERROR, EXIT_USAGE, EXIT_DEGRADED = 1, 2, 3

# Piped output keeps whole lines for grep and scripts instead of folding to 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
interactive = sys.stdout.isatty  # progress bars only on a terminal; piped output stays clean


def emit_json(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    data = value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value
    print(json.dumps(data, indent=2, ensure_ascii=False))


def busy(message: str) -> Any:
    """A spinner while long work runs (restore, repair, compaction) on a terminal; nothing when piped."""
    return out.status(message) if interactive() else contextlib.nullcontext()


def progress(total_hint: str) -> Any:
    """A rich progress bar on a terminal; ``None`` when output is piped (scripts get clean output)."""
    if not interactive():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn(total_hint), BarColumn(), MofNCompleteColumn(), console=out, transient=True)


def size(n: int) -> str:
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
