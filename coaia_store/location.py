"""Which ``.coaia`` directory a process uses, and why.

First match wins:
1. ``--dir`` (or the ``COAIA_DIR`` environment variable), relative to the working directory;
2. ``$CLAUDE_PROJECT_DIR/.coaia`` when Claude Code set that variable;
3. the nearest existing ``.coaia/`` found walking up from the working directory (past any
   nested project markers, up to the filesystem root);
4. ``~/.coaia``.

MCP clients often start servers with the working directory ``/``, a package directory or a
tool cache; data written there is lost or misplaced, so such places are never chosen.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import LocationError

DIR_NAME = ".coaia"
ENV_DIR = "COAIA_DIR"
ENV_PROJECT = "CLAUDE_PROJECT_DIR"
_UNSAFE_PARTS = frozenset({"site-packages", "dist-packages", "node_modules", ".npm", "_npx", ".cache", "__pycache__"})


@dataclass(frozen=True)
class StoreLocation:
    path: Path
    reason: str


def resolve_location(
    explicit: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> StoreLocation:
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    if explicit is not None:
        return _explicit(Path(explicit), "the --dir option", cwd)
    if env.get(ENV_DIR):
        return _explicit(Path(env[ENV_DIR]), f"the {ENV_DIR} environment variable", cwd)
    project = env.get(ENV_PROJECT)
    if project and _safe(candidate := Path(project).expanduser().resolve() / DIR_NAME):
        return StoreLocation(candidate, f"{ENV_PROJECT} is set to {project}")
    for folder in (cwd.resolve(), *cwd.resolve().parents):
        candidate = folder / DIR_NAME
        if candidate.is_dir() and _safe(candidate):
            return StoreLocation(candidate, f"nearest existing {DIR_NAME}/ above the working directory {cwd}")
    return _home(home, cwd)


def _explicit(path: Path, source: str, cwd: Path) -> StoreLocation:
    resolved = (cwd / path.expanduser()).resolve()
    if resolved == Path(resolved.anchor) or _inside_package_or_cache(resolved):
        raise LocationError(
            f"{source} names {resolved}, which is the filesystem root, a package directory or a tool cache; "
            "data there is lost or misplaced. Name a project's .coaia directory instead, e.g. --dir ~/myproject/.coaia"
        )
    return StoreLocation(resolved, f"{source} ({path})")


def _home(home: Path | None, cwd: Path) -> StoreLocation:
    try:
        home = (Path.home() if home is None else home).resolve()
    except RuntimeError:
        home = None
    if home is None or home == Path(home.anchor):
        raise LocationError(
            "no .coaia directory was found and the home directory is unknown or the filesystem root; "
            f"pass --dir DIR or set {ENV_DIR}"
        )
    return StoreLocation(home / DIR_NAME, f"no {DIR_NAME}/ found above {cwd}; using the per-user default")


def _safe(candidate: Path) -> bool:
    """A place that may hold data: not directly under the root, not in a package or cache."""
    return candidate.parent != Path(candidate.anchor) and not _inside_package_or_cache(candidate)


def _inside_package_or_cache(path: Path) -> bool:
    if _UNSAFE_PARTS.intersection(path.parts):
        return True
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    package_dir = Path(__file__).resolve().parent  # this package itself (an editable install's repo is fine)
    return any(p != Path(p.anchor) and path.is_relative_to(p) for p in prefixes | {package_dir})
