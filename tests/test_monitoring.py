"""Monitoring in storage_status and `coaia-store status --json`: tool calls and latency, growth, disk space."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mcp import Client

from coaia_store import Store
from coaia_store.graph.metrics import CallMetrics
from coaia_store.server.app import build_server
from coaia_store.storage.fileio import FileIO

MIB = 1 << 20
START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


class Ticks:
    """A clock that moves ``step`` seconds at every reading."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Calendar:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class SmallDisk(FileIO):
    def __init__(self, free: int, total: int = 1000 * MIB) -> None:
        self.free, self.total = free, total

    def disk_usage(self, path: str | Path) -> tuple[int, int]:
        return self.total, self.free


# ---------------------------------------------------------------- per tool: calls, errors, latency


@pytest.mark.anyio
async def test_storage_status_counts_each_tools_calls_errors_and_latency(store: Store) -> None:
    store.calls = CallMetrics(clock=Ticks(0.010))  # every call measures 10 ms
    async with Client(build_server(store)) as client:
        for name in ("a", "b", "c"):
            await client.call_tool("create_entity", {"entities": [{"name": name, "entityType": "t"}]})
        await client.call_tool("add_relation", {"relations": [{"from": "a", "to": "nobody", "relationType": "r"}]})
        status = await client.call_tool("storage_status", {})

    tools = {t["tool"]: t for t in status.structured_content["tools"]}
    assert tools["create_entity"] == {"tool": "create_entity", "calls": 3, "errors": 0, "p50Ms": 10.0, "p99Ms": 10.0}
    assert (tools["add_relation"]["calls"], tools["add_relation"]["errors"]) == (1, 1)


def test_percentiles_come_from_the_latest_calls_and_counts_stay_exact() -> None:
    calls = CallMetrics(window=100)
    for ms in range(1, 301):  # 300 calls: the window keeps the last 100 (201..300 ms)
        calls.record("search", ms / 1000, ok=ms % 100 != 0)

    [search] = calls.snapshot()
    assert (search.calls, search.errors, search.p50Ms, search.p99Ms) == (300, 3, 250.0, 299.0)


# ---------------------------------------------------------------- growth and disk space


def _line_sizes(store_dir: Path) -> list[int]:
    return [len(line) for line in (store_dir / "charts.jsonl").read_bytes().splitlines(keepends=True)]


def test_growth_counts_the_bytes_written_in_the_last_7_and_30_days(store_dir: Path) -> None:
    clock = Calendar()
    with Store(store_dir, clock=clock, io=SmallDisk(free=900 * MIB)) as store:
        store.create_entities([{"name": "old", "entityType": "t"}])  # day 0
        clock.now = START + timedelta(days=20)
        store.create_entities([{"name": "recent", "entityType": "t"}])  # day 20
        clock.now = START + timedelta(days=25)
        growth = store.status().capacity.contexts  # type: ignore[union-attr]

    header, old, recent = _line_sizes(store_dir)
    assert [(g.context, g.bytes, g.last7Days, g.last30Days) for g in growth] == [
        ("default", header + old + recent, recent, old + recent)
    ]


def test_days_left_follow_the_faster_growth_rate(store_dir: Path) -> None:
    clock = Calendar()
    with Store(store_dir, clock=clock, io=SmallDisk(free=700 * MIB)) as store:
        store.create_entities([{"name": "a", "entityType": "t", "observations": ["x" * 7000]}])
        capacity = store.status().capacity

    written = _line_sizes(store_dir)[1]
    assert capacity.bytesPerDay == round(written / 7, 1)  # type: ignore[union-attr]
    assert capacity.daysLeft == round(700 * MIB / (written / 7), 1)  # type: ignore[union-attr]


def test_low_free_space_is_warned_before_writes_fail(store_dir: Path) -> None:
    with Store(store_dir, io=SmallDisk(free=100 * MIB)) as store:
        status = store.status()

    assert "100 MiB free" in status.capacity.warnings[0] and not status.degraded  # type: ignore[union-attr]


def test_the_warning_threshold_comes_from_config(store_dir: Path) -> None:
    store_dir.mkdir()
    (store_dir / "config.json").write_text(json.dumps({"monitoring": {"freeSpaceWarningMiB": 50}}))
    with Store(store_dir, io=SmallDisk(free=100 * MIB)) as store:
        assert store.status().capacity.warnings == []  # type: ignore[union-attr]


def test_few_days_left_are_warned(store_dir: Path) -> None:
    store_dir.mkdir()
    (store_dir / "config.json").write_text(json.dumps({"monitoring": {"daysLeftWarning": 10**6}}))
    with Store(store_dir, io=SmallDisk(free=600 * MIB)) as store:
        store.create_entities([{"name": "a", "entityType": "t", "observations": ["x" * 7000]}])  # ~1 KB a day
        warnings = store.status().capacity.warnings  # type: ignore[union-attr]

    assert len(warnings) == 1 and "full in about" in warnings[0]


def test_cli_status_json_reports_capacity_and_warns_in_text(store_dir: Path) -> None:
    store_dir.mkdir()
    (store_dir / "config.json").write_text(json.dumps({"monitoring": {"freeSpaceWarningMiB": 1 << 40}}))
    run = [sys.executable, "-m", "coaia_store", "--dir", str(store_dir), "status"]
    as_json = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=60).stdout)
    text = subprocess.run(run, capture_output=True, text=True, timeout=60).stdout

    assert as_json["capacity"]["diskFreeBytes"] > 0 and as_json["tools"] == []
    assert "free of" in text and "MiB free on the disk" in text
