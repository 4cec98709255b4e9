"""``init``: create a ``.coaia/`` directory with a commented config.json and a .gitignore, and with
``--git`` set it up to be shared through git."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import os_errors_reported
from ..graph.config import load_config
from ..graph.gitsetup import set_up
from ..graph.location import explicit_location
from .options import DirOption, GlobalOptions, JsonFlag
from .output import emit_json, out

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
    target = _target(path, directory)
    with os_errors_reported(f"cannot create {target}", "run init with a directory you can write to"):
        target.mkdir(parents=True, exist_ok=True)
    shared = set_up(target) if git else []
    created, kept = _write_starter_files(target)
    load_config(target)  # a config.json that was already there must still load
    if as_json:
        emit_json({"directory": str(target.resolve()), "created": created, "kept": kept, "git": shared})
        return
    for line in shared:
        out.print(line, highlight=False)
    _print_files(target, created, kept)


def _target(path: str | None, directory: str | None) -> Path:
    """The ``.coaia`` directory init makes: PATH/.coaia, else the --dir given, else ./.coaia."""
    if path is not None:
        named, source = Path(path) / ".coaia", "init's PATH argument"
    elif directory or GlobalOptions.directory:
        named, source = Path(directory or GlobalOptions.directory or ""), "the --dir option"
    else:
        named, source = Path(".coaia"), "init's default (the working directory)"
    return explicit_location(named, source).path


def _write_starter_files(target: Path) -> tuple[list[str], list[str]]:
    """Write config.json and .gitignore where they are missing: (the files created, the files kept)."""
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
    return created, kept


def _print_files(target: Path, created: list[str], kept: list[str]) -> None:
    for made in created:
        out.print(f"created {made}", highlight=False)
    for existing in kept:
        out.print(f"{existing} exists: left as it is (not overwritten)", highlight=False)
    if not created:
        out.print(f"{target} is already initialised", highlight=False)
    else:
        out.print(
            f"next: coaia-store --dir {target} chart-create --outcome ... --reality ... --due YYYY-MM-DD",
            highlight=False,
        )
