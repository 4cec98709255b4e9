"""The directory as desktop clients and Claude Code start the server: real processes, the given cwd and env."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT_STORE = Path("/.coaia")


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("COAIA_DIR", "CLAUDE_PROJECT_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "coaia_store", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def no_root_store() -> None:
    if ROOT_STORE.exists():
        pytest.skip("/.coaia exists on this machine already")


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["init"], {}),
        (["--dir", ".coaia", "init"], {}),
        (["serve", "--dir", ".coaia"], {}),
        (["serve"], {"COAIA_DIR": ".coaia"}),
        (["serve", "--http", "--dir", ".coaia"], {}),
    ],
    ids=["init", "init --dir", "serve --dir", "serve COAIA_DIR", "serve --http"],
)
def test_a_relative_dir_from_the_root_is_refused_at_start(
    no_root_store: None, args: list[str], env: dict[str, str]
) -> None:
    result = _run(*args, cwd=Path("/"), env=env)

    assert result.returncode == 1 and "absolute path" in result.stderr and "Traceback" not in result.stderr
    assert not ROOT_STORE.exists()


def _status_directory(cwd: Path, env: dict[str, str]) -> str:
    return str(json.loads(_run("status", "--json", cwd=cwd, env=env).stdout)["directory"])


def test_claude_code_started_in_a_subdirectory_opens_the_projects_store(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".coaia").mkdir(parents=True)
    (tmp_path / "repo" / "src").mkdir()

    found = _status_directory(Path("/"), {"CLAUDE_PROJECT_DIR": str(tmp_path / "repo" / "src")})

    assert found == str(tmp_path / "repo" / ".coaia")


def test_claude_code_in_a_new_repository_uses_its_root(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "src").mkdir()

    found = _status_directory(tmp_path / "repo" / "src", {"CLAUDE_PROJECT_DIR": str(tmp_path / "repo" / "src")})

    assert found == str(tmp_path / "repo" / ".coaia")


def test_migrate_prints_the_client_configuration_docs_clients_md_advises(tmp_path: Path) -> None:
    memory = tmp_path / "memory.jsonl"
    memory.write_text('{"type":"entity","name":"ada","entityType":"person","observations":[]}\n')
    store = tmp_path / "project" / ".coaia"
    printed = json.loads(
        _run("--dir", str(store), "migrate", "--memory-path", str(memory), "--json", cwd=tmp_path).stdout
    )["clientConfig"]

    docs = (Path(__file__).parent.parent / "docs" / "clients.md").read_text()
    advised = re.search(r"    with\n\n    ```json\n(.*?)```", docs, re.S)
    assert advised is not None
    assert printed == json.loads(advised.group(1).replace("/home/me/project/.coaia", str(store)))
