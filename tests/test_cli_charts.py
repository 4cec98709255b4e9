"""The people-facing commands (init, charts, chart, chart writes, export, import, migrate) as real subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coaia_store import Store
from coaia_store.graph.config import load_config

REPO = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"

pytestmark = pytest.mark.slow


def _run(store_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coaia_store", "--dir", str(store_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _json(store_dir: Path, *args: str) -> Any:
    result = _run(store_dir, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert all(word in result.stderr for word in words)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of .coaia.example (three contexts of charts), so the original is never modified."""
    return Path(shutil.copytree(REPO / ".coaia.example", tmp_path / ".coaia"))


@pytest.fixture
def chart_id(store_dir: Path) -> str:
    created = _json(
        store_dir,
        "chart-create",
        "--outcome",
        "A guide new hires finish in a week",
        "--reality",
        "The guide is a 2019 wiki page",
        "--due",
        "2099-12-31",
        "--step",
        "Interview two hires",
    )
    return str(created["chart"]["chartId"])


# ---------------------------------------------------------------- init


def test_init_creates_a_config_that_loads_and_a_gitignore(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coaia_store", "init", str(tmp_path)], capture_output=True, text=True, timeout=60
    )

    gitignore = (tmp_path / ".coaia" / ".gitignore").read_text().splitlines()
    assert result.returncode == 0
    assert load_config(tmp_path / ".coaia").fsync == "always"
    assert all(entry in gitignore for entry in (".backup/", ".recovery/", ".locks/", ".cache/", "*.tmp"))
    assert not any(entry.startswith("charts") for entry in gitignore)


def test_init_never_overwrites_and_says_it_is_already_initialised(store_dir: Path) -> None:
    store_dir.mkdir()
    (store_dir / "config.json").write_text('{"fsync": "never"}')

    first = _run(store_dir, "init")
    second = _run(store_dir, "init")

    assert (store_dir / "config.json").read_text() == '{"fsync": "never"}'
    assert first.returncode == 0 and "not overwritten" in first.stdout
    assert second.returncode == 0 and "already initialised" in second.stdout


# ---------------------------------------------------------------- reading charts


def test_charts_all_renders_the_example_directory_without_changing_it(example: Path) -> None:
    before = {p.name: p.read_bytes() for p in example.iterdir()}

    result = _run(example, "charts", "--all")

    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert all(word in result.stdout for word in ("learning", "personal", "work", "chart_launch", "%"))
    assert {p.name: p.read_bytes() for p in example.iterdir()} == before


def test_charts_nests_a_sub_chart_under_its_step(example: Path) -> None:
    lines = _run(example, "charts", "--context", "work").stdout.splitlines()

    step = next(i for i, line in enumerate(lines) if "chart_launch_action_1" in line)
    sub = next(i for i, line in enumerate(lines) if "chart_pilots " in line or line.endswith("chart_pilots"))
    assert sub == step + 1 and lines[sub].index("── ") > lines[step].index("── ")  # one level deeper


def test_charts_json_gives_the_list_charts_summaries(example: Path) -> None:
    data = _json(example, "charts", "--status", "all")

    assert data["total"] == len(data["charts"]) == 6
    assert {c["chartId"] for c in data["charts"]} == {
        "chart_rust",
        "chart_garden",
        "chart_launch",
        "chart_pilots",
        "chart_workshops",
        "chart_typing",
    }


def test_charts_filters_by_context_and_due_date(example: Path) -> None:
    work = _json(example, "charts", "--context", "work")
    soon = _json(example, "charts", "--due-within", "0", "--status", "all")

    assert {c["context"] for c in work["charts"]} == {"work"}
    assert all(c["overdue"] or c["completed"] for c in soon["charts"])


def test_charts_refuses_context_with_all(example: Path) -> None:
    result = _run(example, "charts", "--context", "work", "--all")

    assert result.returncode == 2


def test_chart_shows_reality_steps_and_sub_charts(example: Path) -> None:
    result = _run(example, "chart", "chart_launch")

    assert result.returncode == 0
    assert all(word in result.stdout for word in ("current reality", "Billing service runs in staging", "chart_pilots"))


def test_chart_json_respects_depth(example: Path) -> None:
    view = _json(example, "chart", "chart_launch", "--depth", "0")

    step = next(s for s in view["actionSteps"] if s["name"] == "chart_launch_action_1")
    assert step["subChartId"] == "chart_pilots" and step["subChart"] is None


def test_an_unknown_chart_id_is_one_line_error(example: Path) -> None:
    _assert_one_line_error(_run(example, "chart", "chart_nope"), "chart_nope")


# ---------------------------------------------------------------- writing charts


def test_chart_create_json_returns_the_chart_with_its_steps(store_dir: Path, chart_id: str) -> None:
    view = _json(store_dir, "chart", chart_id)

    assert view["desiredOutcome"] == "A guide new hires finish in a week"
    assert [s["title"] for s in view["actionSteps"]] == ["Interview two hires"]


def test_chart_create_prints_creative_orientation_warnings(store_dir: Path) -> None:
    result = _run(
        store_dir,
        "chart-create",
        "--outcome",
        "Fix the onboarding bugs",
        "--reality",
        "Ready to start",
        "--due",
        "2099-01-01",
    )

    assert result.returncode == 0 and "created chart" in result.stdout
    assert result.stdout.count("! ") == 2


def test_a_bad_date_is_one_line_error_and_writes_nothing(store_dir: Path) -> None:
    result = _run(store_dir, "chart-create", "--outcome", "x", "--reality", "y", "--due", "2026-13-45")

    _assert_one_line_error(result, "2026-13-45")
    assert not (store_dir / "charts.jsonl").exists()


def test_step_add_then_complete_moves_progress(store_dir: Path, chart_id: str) -> None:
    added = _json(store_dir, "step-add", chart_id, "Draft the first week", "--due", "2099-06-01")
    done = _json(store_dir, "step-complete", added["actionStep"]["name"])

    assert done["completed"] == [added["actionStep"]["name"]]
    assert done["chart"]["completedSteps"] == 1 and done["chart"]["totalSteps"] == 2


def test_step_complete_of_an_unknown_step_is_one_line_error(store_dir: Path, chart_id: str) -> None:
    _assert_one_line_error(_run(store_dir, "step-complete", f"{chart_id}_action_9"), "action_9")


def test_reality_add_appends_each_fact(store_dir: Path, chart_id: str) -> None:
    result = _json(store_dir, "reality-add", chart_id, "Two hires interviewed", "Outline drafted")

    assert result["chart"]["currentReality"][-2:] == ["Two hires interviewed", "Outline drafted"]


# ---------------------------------------------------------------- export


def test_export_jsonl_is_a_clean_snapshot(example: Path) -> None:
    result = _run(example, "export", "--context", "work")

    records = [json.loads(line) for line in result.stdout.splitlines()]
    graph = Store(example).read_graph(context="work")
    assert result.returncode == 0 and records
    assert all(r["type"] in ("entity", "relation") for r in records)
    assert not any(key in r for r in records for key in ("_crc", "_op", "_ts", "format"))
    assert len(records) == graph.totalEntities + len(graph.relations)


def test_export_all_jsonl_writes_one_file_per_context(example: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    summary = _json(example, "export", "--all", "--output", str(out))

    assert sorted(p.name for p in out.iterdir()) == [
        "charts-learning.jsonl",
        "charts-personal.jsonl",
        "charts-work.jsonl",
        "completed-charts.jsonl",
    ]
    assert summary["contexts"] == ["completed", "learning", "personal", "work"]


def test_export_json_has_entities_and_relations(example: Path) -> None:
    data = json.loads(_run(example, "export", "--context", "learning", "--format", "json").stdout)

    assert data["context"] == "learning" and data["entities"] and data["relations"]


def test_export_markdown_writes_one_file_per_top_level_chart_in_a_folder_per_context(
    example: Path, tmp_path: Path
) -> None:
    out = tmp_path / "md"

    result = _run(example, "export", "--all", "--format", "markdown", "--output", str(out))

    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.md"))
    assert result.returncode == 0
    assert files == [
        "completed/chart_typing.md",
        "learning/chart_rust.md",
        "personal/chart_garden.md",
        "work/chart_launch.md",
    ]
    assert "Three pilot customers" in (out / "work" / "chart_launch.md").read_text()


def test_export_markdown_to_stdout_is_one_report(example: Path) -> None:
    result = _run(example, "export", "--context", "work", "--format", "markdown")

    assert result.returncode == 0 and result.stdout.startswith("# A public 1.0 release")
    assert "## Three pilot customers" in result.stdout


def test_export_of_an_unknown_context_is_one_line_error(example: Path) -> None:
    _assert_one_line_error(_run(example, "export", "--context", "nowhere"), "nowhere")


# ---------------------------------------------------------------- import and migrate


def test_import_then_export_round_trips_a_fixture(store_dir: Path) -> None:
    fixture = FIXTURES / "coaia-narrative.jsonl"

    report = _json(store_dir, "import", str(fixture), "--context", "story")
    exported = [json.loads(line) for line in _run(store_dir, "export", "--context", "story").stdout.splitlines()]

    assert len(report["added"]) == 9 and len(report["relationsAdded"]) == 11
    beat = next(r for r in exported if r["name" if "name" in r else "from"] == "chart_1771269081608_beat_1771270533104")
    assert (
        beat["entityType"] == "narrative_beat" and beat["four_directions"]["south_emotion"] == "Frustration → curiosity"
    )


def test_import_dry_run_lists_what_would_change_and_writes_nothing(store_dir: Path) -> None:
    result = _run(store_dir, "import", str(FIXTURES / "official-memory.jsonl"), "--dry-run")

    assert result.returncode == 0 and "7 entities added" in result.stdout and "nothing was written" in result.stdout
    assert not store_dir.exists() or not list(store_dir.glob("*.jsonl"))


def test_import_with_merge_reports_merged_names(store_dir: Path) -> None:
    Store(store_dir).create_entities([{"name": "Zoë_Kraus", "entityType": "person", "observations": ["Met in Berlin"]}])

    report = _json(store_dir, "import", str(FIXTURES / "official-memory.jsonl"), "--on-conflict", "merge")

    assert report["merged"] == ["Zoë_Kraus"] and len(report["added"]) == 6


def test_import_rejects_an_unknown_rule_as_bad_usage(store_dir: Path) -> None:
    assert _run(store_dir, "import", str(FIXTURES / "aim-memory.jsonl"), "--on-conflict", "overwrite").returncode == 2


def test_import_of_a_missing_file_is_one_line_error(store_dir: Path, tmp_path: Path) -> None:
    _assert_one_line_error(_run(store_dir, "import", str(tmp_path / "absent.jsonl")), "absent.jsonl")


def test_migrate_moves_a_memory_file_and_says_where_it_lives(store_dir: Path, tmp_path: Path) -> None:
    memory = Path(shutil.copy(FIXTURES / "coaia-spiral-work.jsonl", tmp_path / "memory.jsonl"))
    before = memory.read_bytes()

    result = _json(store_dir, "migrate", "--memory-path", str(memory), "--context", "work")

    assert result["file"] == str(store_dir / "charts-work.jsonl")
    assert result["clientConfig"]["mcpServers"]["memory"]["args"] == [
        "serve",
        "--tools",
        "memory",
        "--dir",
        str(store_dir),
    ]
    assert len(result["import"]["added"]) == 11 and memory.read_bytes() == before
    assert _json(store_dir, "charts", "--context", "work")["total"] == 2
