"""Each interface names its own commands, and install hints reach the terminal whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from coaia_store import Store
from coaia_store.server.app import build_server


def _cli(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    run = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "coaia_store", *args]
    return subprocess.run(
        run,
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )


def test_a_cli_error_names_the_cli_command_not_the_tool(store_dir: Path) -> None:
    result = _cli("--dir", str(store_dir), "chart", "chart_missing")

    assert "`coaia-store charts` shows the charts" in result.stderr and "list_charts" not in result.stderr


@pytest.mark.anyio
async def test_the_same_error_over_mcp_names_the_tool(store: Store) -> None:
    async with Client(build_server(store)) as client:
        result = await client.call_tool("get_chart", {"chartId": "chart_missing"})

    assert result.is_error and "list_charts shows the charts" in result.content[0].text


def test_a_status_problem_on_the_cli_names_the_cli_repair(damaged_store_dir: Path) -> None:
    shown = _cli("--dir", str(damaged_store_dir), "status").stdout

    assert "coaia-store validate --fix" in shown and "validate_integrity" not in shown


def test_the_plot_install_hint_keeps_its_extra_in_help() -> None:
    assert "pip install 'coaia-store[plot]'" in _cli("report", "--help").stdout


def test_the_plot_install_hint_keeps_its_extra_at_run_time(store_dir: Path, tmp_path: Path) -> None:
    without_matplotlib = (
        "import sys; sys.modules['matplotlib'] = None; from coaia_store.cli import main; "
        "sys.argv = ['coaia-store', *sys.argv[1:]]; main()"
    )
    result = _cli("--dir", str(store_dir), "report", "--plot", str(tmp_path / "p.png"), code=without_matplotlib)

    assert result.returncode == 1 and "pip install 'coaia-store[plot]'" in result.stderr
