"""bench/bench_engine.py keeps working: run it at a tiny size as a real subprocess.

Nothing here looks at how fast anything is (performance targets live in the benchmark,
never in tests); these tests only keep the benchmark from rotting as the engine changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_engine.py"
SIZE = 200

# What a reader of the benchmark's output relies on: its table rows and JSON keys.
TABLE_ROWS = (
    "create_entities 1/call median ms",
    "create_entities 1/call p99 ms",
    "add_observations 1/call median ms",
    "add_observations 1/call p99 ms",
    "create_relations 1/call median ms",
    "create_relations 1/call p99 ms",
    "open_entities 1 name median ms",
    "open_entities 1 name p99 ms",
    "cold load Store()+1st read s",
    "cold load peak RSS MB",
    "writer peak RSS MB",
    "file size on disk MB",
)
FIGURE_KEYS = (
    "create_median_ms",
    "create_p99_ms",
    "add_obs_median_ms",
    "add_obs_p99_ms",
    "relate_median_ms",
    "relate_p99_ms",
    "get_median_ms",
    "get_p99_ms",
    "cold_load_s",
    "cold_rss_mb",
    "writer_rss_mb",
    "file_mb",
)
TARGETS = (
    "durable single-op write median",
    "get-by-name median",
    "cold load",
    "RSS of the writer",
    "RSS of a cold-loaded process",
)


@dataclass(frozen=True)
class BenchRun:
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    workdir: Path


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> BenchRun:
    """One tiny run shared by the tests below (a run starts several interpreters)."""
    workdir = tmp_path_factory.mktemp("bench-work")
    report = tmp_path_factory.mktemp("bench-out") / "bench.json"
    args = ["--sizes", str(SIZE), "--ops", "20", "--cold-runs", "1", "--json", str(report), "--workdir", str(workdir)]
    proc = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120, check=False)
    data = json.loads(report.read_text()) if report.exists() else None
    return BenchRun(proc.returncode, proc.stdout, proc.stderr, data, workdir)


@pytest.mark.slow
def test_benchmark_exits_cleanly_at_a_tiny_size(bench_run: BenchRun) -> None:
    assert bench_run.returncode == 0, bench_run.stderr


@pytest.mark.slow
def test_benchmark_table_shows_every_figure(bench_run: BenchRun) -> None:
    missing = [row for row in TABLE_ROWS if row not in bench_run.stdout]
    assert not missing, bench_run.stdout


@pytest.mark.slow
def test_benchmark_prints_a_verdict_for_every_target(bench_run: BenchRun) -> None:
    verdict_lines = [line for line in bench_run.stdout.splitlines() if line.strip().startswith(("PASS", "MISS"))]
    assert [t for t in TARGETS if not any(t in line for line in verdict_lines)] == [], bench_run.stdout


@pytest.mark.slow
def test_benchmark_json_holds_every_figure_as_a_number(bench_run: BenchRun) -> None:
    assert bench_run.report is not None, bench_run.stderr
    figures = bench_run.report["results"][str(SIZE)]
    bad = {k: figures.get(k) for k in FIGURE_KEYS if not isinstance(figures.get(k), int | float) or figures[k] < 0}
    assert bad == {}


@pytest.mark.slow
def test_benchmark_removes_its_stores_when_done(bench_run: BenchRun) -> None:
    assert list(bench_run.workdir.iterdir()) == []
