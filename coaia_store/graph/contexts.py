"""Contexts: named life domains, one JSONL file each inside ``.coaia/``.

``default`` lives in ``charts.jsonl``, ``work`` in ``charts-work.jsonl``, and the archive of
completed charts, context ``completed``, in ``completed-charts.jsonl``. Contexts are found by
scanning the directory; a context's file is created by its first write.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InvalidContextError

DEFAULT_CONTEXT = "default"
ARCHIVE_CONTEXT = "completed"
MAX_CONTEXT_NAME = 64
_SPECIAL_FILES = {DEFAULT_CONTEXT: "charts.jsonl", ARCHIVE_CONTEXT: "completed-charts.jsonl"}
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_FILE = re.compile(r"charts-(?P<name>.+)\.jsonl")


def validate_context_name(name: str) -> str:
    """Return ``name`` if it may name a context, else raise :class:`InvalidContextError`."""
    problem = _name_problem(name)
    if problem:
        raise InvalidContextError(
            f"invalid context name {name!r}: {problem}. Use 1-{MAX_CONTEXT_NAME} letters, digits, '-', '_' or '.', "
            f"for example 'work' or 'side-project'; omit it for the {DEFAULT_CONTEXT!r} context"
        )
    return name


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > MAX_CONTEXT_NAME:
        return f"it is longer than {MAX_CONTEXT_NAME} characters"
    if not _NAME.fullmatch(name):
        return "it contains a character other than letters, digits, '-', '_' and '.'"
    if name.startswith(".") or ".." in name:
        return "it starts with '.' or contains '..'"
    return None


def context_path(store_dir: Path, name: str) -> Path:
    """The name of the file holding context ``name``, whatever is found there.

    The store opens it only as a regular file and never follows a link (``storage.filekind``).
    """
    validate_context_name(name)
    return store_dir / _SPECIAL_FILES.get(name, f"charts-{name}.jsonl")


def context_file(store_dir: Path, name: str) -> Path:
    """The file holding context ``name``; refuses any path that would leave ``store_dir``."""
    path = context_path(store_dir, name)
    real_dir = store_dir.resolve()
    if path.resolve().parent != real_dir:
        raise InvalidContextError(
            f"context {name!r} resolves outside {store_dir} (is {path.name} a symbolic link?); "
            "remove the link or choose another name"
        )
    return path


def context_of_file(filename: str) -> str | None:
    """The context a file in ``.coaia/`` holds, or ``None`` if it holds none."""
    for name, special in _SPECIAL_FILES.items():
        if filename == special:
            return name
    match = _FILE.fullmatch(filename)
    if match is None or match["name"] in _SPECIAL_FILES or _name_problem(match["name"]):
        return None
    return match["name"]


def discover_contexts(names_in_dir: list[str]) -> list[str]:
    """Contexts present among a directory's file names: ``default`` first, then by name."""
    found = {c for c in map(context_of_file, names_in_dir) if c is not None}
    return sorted(found, key=lambda c: (c != DEFAULT_CONTEXT, c))
