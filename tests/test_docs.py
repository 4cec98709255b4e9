"""The documentation site: the tool reference matches the live server, and the site builds in strict mode."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from coaia_store.server.reference import generate

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "python -m coaia_store.server.reference > docs/tools.md"


def test_committed_tool_reference_matches_the_server() -> None:
    committed = (ROOT / "docs" / "tools.md").read_text(encoding="utf-8")
    assert generate() == committed, f"docs/tools.md is out of date with the server: run `{REGENERATE}`"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (pip install -e '.[test]')"
)
def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "site" / "tools" / "index.html").is_file()
