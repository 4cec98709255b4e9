"""bench/bench_stdio.py keeps working: run it at a tiny size as a real subprocess.

One run measures coaia-store alone (``--ours-only``, needs no Node.js); a second drives the
official memory server too, when ``npx`` is installed and the npm registry reachable.
Nothing here looks at how fast anything is: the targets live in the benchmark's output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_stdio.py"
SIZE = 300
OFFLINE_SIGNS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "network request")

# What a reader of the benchmark's output relies on: its table rows, target lines and JSON keys.
CALL_ROWS = (
    "create_entities (1 new entity)",
    "add_observations (1 observation)",
    "create_relations (1 relation)",
    "search_nodes (rare word, 3 hits)",
    "open_nodes (1 name)",
    "no-op: open_nodes names=[]",
    "cold start: spawn to 1st open_nodes, s",
)
TARGETS = (
    "create_entities within 2x of our no-op call",
    "add_observations within 2x of our no-op call",
    "create_relations within 2x of our no-op call",
    "create_entities >= 50x faster than official",
    "add_observations >= 50x faster than official",
    "create_relations >= 50x faster than official",
    "cold start >= 10x faster than official",
    "search_nodes >= 10x faster than official",
)
OURS_CALLS = ("create", "add_obs", "relate", "open", "noop")
OFFICIAL_CALLS = ("create", "add_obs", "relate", "search", "open")


@dataclass(frozen=True)
class BenchRun:
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    workdir: Path


def run_bench(tmp_path_factory: pytest.TempPathFactory, *extra: str) -> BenchRun:
    workdir = tmp_path_factory.mktemp("bench-stdio-work")
    report = tmp_path_factory.mktemp("bench-stdio-out") / "bench.json"
    args = [
        "--sizes",
        str(SIZE),
        "--ops",
        "5",
        "--ours-ops",
        "5",
        "--cold-runs",
        "1",
        "--json",
        str(report),
        "--workdir",
        str(workdir),
        *extra,
    ]
    proc = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=180, check=False)
    data = json.loads(report.read_text()) if report.exists() else None
    return BenchRun(proc.returncode, proc.stdout, proc.stderr, data, workdir)


@pytest.fixture(scope="module")
def ours_only(tmp_path_factory: pytest.TempPathFactory) -> BenchRun:
    return run_bench(tmp_path_factory, "--ours-only")


@pytest.fixture(scope="module")
def both_servers(tmp_path_factory: pytest.TempPathFactory) -> BenchRun:
    if shutil.which("npx") is None:
        pytest.skip("npx (Node.js) is not installed, so the official memory server cannot run")
    run = run_bench(tmp_path_factory)
    if run.returncode != 0 and any(sign in run.stderr for sign in OFFLINE_SIGNS):
        pytest.skip(f"the official memory server could not be fetched from npm: {run.stderr[-300:]}")
    return run


def figures(run: BenchRun, server: str) -> dict[str, Any]:
    assert run.report is not None, run.stdout + run.stderr
    measured: dict[str, Any] = run.report["results"][str(SIZE)][server]
    return measured


def verdict_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.strip().startswith(("PASS", "MISS", "n/a"))]


@pytest.mark.slow
def test_ours_only_run_exits_cleanly_without_node(ours_only: BenchRun) -> None:
    assert ours_only.returncode == 0, ours_only.stdout + ours_only.stderr


@pytest.mark.slow
def test_ours_only_run_prints_every_row(ours_only: BenchRun) -> None:
    missing = [row for row in CALL_ROWS if row not in ours_only.stdout]
    assert not missing, ours_only.stdout


@pytest.mark.slow
def test_ours_only_run_prints_a_line_for_every_target(ours_only: BenchRun) -> None:
    lines = verdict_lines(ours_only.stdout)
    assert [t for t in TARGETS if not any(t in line for line in lines)] == [], ours_only.stdout


@pytest.mark.slow
def test_ours_only_json_holds_a_median_per_call_and_the_cold_start(ours_only: BenchRun) -> None:
    ours = figures(ours_only, "ours")
    medians = {k: (ours["calls"].get(k) or {}).get("median_ms") for k in OURS_CALLS}
    assert [k for k, v in medians.items() if not isinstance(v, float)] == [] and ours["cold_s"] > 0


@pytest.mark.slow
def test_ours_only_run_removes_its_files_when_done(ours_only: BenchRun) -> None:
    assert list(ours_only.workdir.iterdir()) == []


@pytest.mark.slow
def test_run_against_the_official_server_exits_cleanly(both_servers: BenchRun) -> None:
    assert both_servers.returncode == 0, both_servers.stdout + both_servers.stderr


@pytest.mark.slow
def test_official_server_gets_a_median_for_every_call_and_the_cold_start(both_servers: BenchRun) -> None:
    official = figures(both_servers, "official")
    medians = {k: (official["calls"].get(k) or {}).get("median_ms") for k in OFFICIAL_CALLS}
    assert [k for k, v in medians.items() if not isinstance(v, float)] == [] and official["cold_s"] > 0


@pytest.mark.slow
def test_official_search_finds_exactly_the_planted_entities(both_servers: BenchRun) -> None:
    assert figures(both_servers, "official")["calls"]["search"]["problems"] == []


@pytest.mark.slow
def test_speedup_targets_get_a_verdict_when_both_servers_ran(both_servers: BenchRun) -> None:
    speedups = [line for line in verdict_lines(both_servers.stdout) if "faster than official" in line]
    assert speedups and all("not measured" not in line for line in speedups), both_servers.stdout
