"""Clones of one git repository holding a shared ``.coaia/``, each with a long-lived Store (as a running server).

Used by tests/test_git_sharing.py. Every clone is a real git repository in a temporary directory;
merges use the ``merge=union`` attribute that ``coaia-store init --git`` writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from coaia_store import Store
from coaia_store.charts.api import Charts
from coaia_store.graph.gitsetup import set_up
from coaia_store.graph.state import GraphState

GIT = shutil.which("git")
_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


class MergeConflict(AssertionError):
    pass


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert GIT is not None
    return subprocess.run(
        [GIT, *args], cwd=repo, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **_ENV}
    )


def must(repo: Path, *args: str) -> str:
    done = git(repo, *args)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {repo}: {done.stdout}{done.stderr}")
    return done.stdout


class Clone:
    def __init__(self, root: Path, name: str, clock: Callable[[], datetime] | None) -> None:
        self.name = name
        self.repo = root / name
        self.store = Store(self.repo / ".coaia", env={"XDG_DATA_HOME": str(root / "data" / name)}, clock=clock)
        self.charts = Charts(self.store)

    def commit(self, message: str) -> bool:
        must(self.repo, "add", "-A", ".coaia")
        if not git(self.repo, "diff", "--cached", "--quiet").returncode:
            return False
        must(self.repo, "commit", "-q", "-m", message)
        return True

    def fetch(self, other: Clone) -> None:
        must(self.repo, "fetch", "-q", str(other.repo), f"main:refs/remotes/{other.name}/main")

    def merge_fetched(self, other: Clone) -> None:
        done = git(self.repo, "merge", "--no-edit", "-q", f"refs/remotes/{other.name}/main")
        if done.returncode != 0 or "CONFLICT" in done.stdout:
            raise MergeConflict(f"{self.name} merging {other.name}: {done.stdout}{done.stderr}")

    def pull(self, other: Clone) -> None:
        self.fetch(other)
        self.merge_fetched(other)

    def close(self) -> None:
        self.store.close()


def make_repo(root: Path) -> Path:
    """A repository whose .coaia/ was set up with init --git and holds one chart."""
    origin = root / "origin"
    (origin / ".coaia").mkdir(parents=True)
    must(origin, "init", "-q", "-b", "main")
    set_up(origin / ".coaia", env={"XDG_DATA_HOME": str(root / "data" / "origin")})
    with Store(origin / ".coaia", env={"XDG_DATA_HOME": str(root / "data" / "origin")}) as store:
        Charts(store).create_chart(
            desiredOutcome="A garden that feeds us",
            currentReality="Bare soil",
            dueDate="2030-12-31",
            actionSteps=[{"title": "Dig", "dueDate": "2029-01-31"}],
        )
    must(origin, "add", "-A", ".coaia")
    must(origin, "commit", "-q", "-m", "start")
    return origin


def clone(root: Path, origin: Path, name: str, clock: Callable[[], datetime] | None = None) -> Clone:
    must(root, "clone", "-q", str(origin), name)
    return Clone(root, name, clock)


def state_of(store: Store) -> dict[str, Any]:
    """Everything a context shows, in a form that does not depend on line order."""

    def dump(state: GraphState) -> dict[str, Any]:
        return {
            "entities": {n: r for n, r in sorted(state.entities.items())},
            "relations": sorted(json.dumps(r, sort_keys=True) for r in state.relations.values()),
            "extras": sorted(json.dumps(r, sort_keys=True) for r in state.extras if r.get("type") != "_coaia"),
        }

    return {c: json.loads(json.dumps(store.graph(c).read(dump), sort_keys=True)) for c in store.contexts()}
