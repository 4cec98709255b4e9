"""Which ``.coaia`` directory a process uses, and why.

First match wins:
1. ``--dir`` (or the ``COAIA_DIR`` environment variable), relative to the working directory;
2. when Claude Code set ``CLAUDE_PROJECT_DIR`` (the directory it was started in, perhaps a
   subdirectory of the project): the nearest existing ``.coaia/`` walking up from there; else
   ``.coaia`` at the nearest enclosing repository root (a ``.git`` directory or file); else
   ``$CLAUDE_PROJECT_DIR/.coaia``;
3. the nearest existing ``.coaia/`` found walking up from the working directory (past any
   nested project markers, up to the filesystem root);
4. ``~/.coaia``.

MCP clients often start servers with the working directory ``/``, a package directory or a
tool cache; data written there is lost or misplaced, so such places are never chosen, and a
relative ``--dir``/``COAIA_DIR`` that resolves to one is refused (name an absolute path).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import LocationError

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
        return explicit_location(Path(explicit), "the --dir option", cwd)
    if env.get(ENV_DIR):
        return explicit_location(Path(env[ENV_DIR]), f"the {ENV_DIR} environment variable", cwd)
    project = env.get(ENV_PROJECT)
    if project and (found := _from_project(Path(project).expanduser().resolve())) is not None:
        return found
    if (existing := _nearest_existing(cwd.resolve())) is not None:
        return StoreLocation(existing, f"nearest existing {DIR_NAME}/ above the working directory {cwd}")
    return _home(home, cwd)


def _nearest_existing(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / DIR_NAME
        if candidate.is_dir() and _safe(candidate):
            return candidate
    return None


def _from_project(project: Path) -> StoreLocation | None:
    """Claude Code's project directory may be a subdirectory: use the project's store, never a new one beside it."""
    if (existing := _nearest_existing(project)) is not None:
        return StoreLocation(existing, f"nearest existing {DIR_NAME}/ above {ENV_PROJECT} ({project})")
    repo = next((f for f in (project, *project.parents) if (f / ".git").exists()), None)
    if repo is not None and _safe(repo / DIR_NAME):
        return StoreLocation(repo / DIR_NAME, f"the repository root above {ENV_PROJECT} ({project}); none existed yet")
    if _safe(project / DIR_NAME):
        return StoreLocation(project / DIR_NAME, f"{ENV_PROJECT} is set to {project}; none existed yet")
    return None


def explicit_location(path: Path, source: str, cwd: Path | None = None) -> StoreLocation:
    """A directory named by the user (``source`` says how), refused where data would be lost or misplaced."""
    cwd = Path.cwd() if cwd is None else cwd
    resolved = (cwd / path.expanduser()).resolve()
    if not path.expanduser().is_absolute() and (resolved == Path(resolved.anchor) or not _safe(resolved)):
        raise LocationError(
            f"{source} names {path}, relative to the working directory {cwd}: that is {resolved}, where data "
            "is lost or misplaced (MCP clients often start servers in / or a cache). Use an absolute path, "
            "e.g. --dir /home/me/project/.coaia"
        )
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
