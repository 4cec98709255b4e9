"""Which .coaia directory is chosen, and why; never the root, a package or a cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from coaia_store import LocationError
from coaia_store.graph.location import resolve_location


def test_explicit_dir_wins_over_everything(tmp_path: Path) -> None:
    env = {"COAIA_DIR": str(tmp_path / "env"), "CLAUDE_PROJECT_DIR": str(tmp_path)}

    loc = resolve_location(tmp_path / "mine", env=env, cwd=tmp_path, home=tmp_path)

    assert loc.path == tmp_path / "mine" and "--dir" in loc.reason


def test_relative_dir_is_resolved_against_the_working_directory(tmp_path: Path) -> None:
    loc = resolve_location("data/.coaia", env={}, cwd=tmp_path, home=tmp_path)

    assert loc.path == tmp_path / "data" / ".coaia"


def test_coaia_dir_variable_comes_next(tmp_path: Path) -> None:
    env = {"COAIA_DIR": str(tmp_path / "env"), "CLAUDE_PROJECT_DIR": str(tmp_path / "proj")}

    loc = resolve_location(env=env, cwd=tmp_path, home=tmp_path)

    assert loc.path == tmp_path / "env" and "COAIA_DIR" in loc.reason


def test_claude_project_dir_is_used_even_before_its_coaia_exists(tmp_path: Path) -> None:
    loc = resolve_location(env={"CLAUDE_PROJECT_DIR": str(tmp_path / "proj")}, cwd=tmp_path, home=tmp_path)

    assert loc.path == tmp_path / "proj" / ".coaia" and "CLAUDE_PROJECT_DIR" in loc.reason


def test_walk_up_finds_the_nearest_existing_coaia_past_nested_project_markers(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".coaia").mkdir(parents=True)
    deep = tmp_path / "repo" / "packages" / "app" / "src"
    deep.mkdir(parents=True)
    (tmp_path / "repo" / "packages" / "app" / "package.json").write_text("{}")
    (tmp_path / "repo" / "packages" / "app" / ".git").mkdir()

    loc = resolve_location(env={}, cwd=deep, home=tmp_path / "home")

    assert loc.path == tmp_path / "repo" / ".coaia" and "nearest" in loc.reason


def test_without_any_coaia_the_per_user_default_is_used(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()

    loc = resolve_location(env={}, cwd=tmp_path / "work", home=tmp_path / "home")

    assert loc.path == tmp_path / "home" / ".coaia" and "default" in loc.reason


def test_server_started_in_root_does_not_write_into_root(tmp_path: Path) -> None:
    loc = resolve_location(env={}, cwd=Path("/"), home=tmp_path / "home")

    assert loc.path == tmp_path / "home" / ".coaia"


def test_a_coaia_inside_a_tool_cache_is_skipped(tmp_path: Path) -> None:
    cache = tmp_path / ".cache" / "uv" / "archive"
    (cache / ".coaia").mkdir(parents=True)

    loc = resolve_location(env={}, cwd=cache, home=tmp_path / "home")

    assert loc.path == tmp_path / "home" / ".coaia"


def test_a_coaia_inside_the_python_installation_is_skipped(tmp_path: Path) -> None:
    inside = Path(sys.prefix).resolve() / "lib"

    loc = resolve_location(env={}, cwd=inside, home=tmp_path / "home")

    assert loc.path == tmp_path / "home" / ".coaia"


@pytest.mark.parametrize("bad", ["/", "node_modules/.coaia"])
def test_explicit_root_or_package_dir_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(LocationError, match="--dir"):
        resolve_location(bad, env={}, cwd=tmp_path, home=tmp_path)


def test_home_at_root_with_nothing_found_is_a_clear_error() -> None:
    with pytest.raises(LocationError, match="COAIA_DIR"):
        resolve_location(env={}, cwd=Path("/"), home=Path("/"))


# ---------------------------------------------------------------- CLAUDE_PROJECT_DIR may be a subdirectory


def _project(tmp_path: Path) -> tuple[Path, Path]:
    repo, src = tmp_path / "repo", tmp_path / "repo" / "src" / "app"
    src.mkdir(parents=True)
    return repo, src


def test_from_claude_project_dir_the_nearest_existing_coaia_above_wins(tmp_path: Path) -> None:
    repo, src = _project(tmp_path)
    (repo / ".coaia").mkdir()

    loc = resolve_location(env={"CLAUDE_PROJECT_DIR": str(src)}, cwd=Path("/"), home=tmp_path / "home")

    assert loc.path == repo / ".coaia" and "CLAUDE_PROJECT_DIR" in loc.reason


@pytest.mark.parametrize("git", ["directory", "file"])
def test_without_a_coaia_the_repository_root_gets_it(tmp_path: Path, git: str) -> None:
    repo, src = _project(tmp_path)
    if git == "directory":
        (repo / ".git").mkdir()
    else:  # a git worktree: .git is a file naming the real repository
        (repo / ".git").write_text("gitdir: /elsewhere/.git/worktrees/repo\n")

    loc = resolve_location(env={"CLAUDE_PROJECT_DIR": str(src)}, cwd=Path("/"), home=tmp_path / "home")

    assert loc.path == repo / ".coaia" and "repository root" in loc.reason


@pytest.mark.parametrize("variable", ["--dir", "COAIA_DIR"])
def test_a_relative_dir_that_lands_under_the_root_is_refused_with_a_hint(variable: str) -> None:
    env = {"COAIA_DIR": ".coaia"} if variable == "COAIA_DIR" else {}
    explicit = ".coaia" if variable == "--dir" else None

    with pytest.raises(LocationError, match="absolute path"):
        resolve_location(explicit, env=env, cwd=Path("/"), home=Path("/nonexistent"))


def test_an_absolute_dir_directly_under_the_root_is_still_allowed() -> None:
    assert resolve_location("/srv-coaia", env={}, cwd=Path("/")).path == Path("/srv-coaia")
