"""The coaia-store command, as a person or a script runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from coaia_store import Store


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coaia_store", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_help_lists_the_commands() -> None:
    result = _run("--help")

    assert result.returncode == 0
    assert all(word in result.stdout for word in ("status", "contexts", "compact", "--dir"))


def test_version_is_printed() -> None:
    assert _run("--version").stdout.startswith("coaia-store ")


def test_status_json_reports_directory_reason_and_contexts(store_dir: Path) -> None:
    Store(store_dir).create_entities([{"name": "a", "entityType": "t"}], context="work")

    result = _run("--dir", str(store_dir), "status", "--json")

    report = json.loads(result.stdout)
    assert result.returncode == 0
    assert report["directory"] == str(store_dir) and "--dir" in report["reason"]
    assert [(c["name"], c["entities"]) for c in report["contexts"]] == [("work", 1)]


def test_status_exits_3_when_the_store_is_degraded(damaged_store_dir: Path) -> None:
    result = _run("--dir", str(damaged_store_dir), "status")

    assert result.returncode == 3 and "damaged" in result.stdout


def test_contexts_table_shows_each_context(store_dir: Path) -> None:
    Store(store_dir).create_entities([{"name": "a", "entityType": "t"}], context="learning")

    result = _run("--dir", str(store_dir), "contexts")

    assert result.returncode == 0 and "learning" in result.stdout and "charts-learning.jsonl" in result.stdout


def test_compact_rewrites_and_keeps_history(store_dir: Path) -> None:
    store = Store(store_dir)
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.add_observations([{"entityName": "a", "contents": ["x"]}])

    result = _run("--dir", str(store_dir), "compact", "--json")

    assert json.loads(result.stdout) == {"context": "default", "compacted": True}
    assert list((store_dir / "history" / "charts").glob("*.jsonl.gz"))


def test_an_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / ".coaia").mkdir()
    (tmp_path / ".coaia" / "config.json").write_text('{"fsync": "sometimes"}')

    result = _run("--dir", str(tmp_path / ".coaia"), "status")

    assert result.returncode == 1
    assert "fsync" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_context_name_is_one_readable_line(store_dir: Path) -> None:
    result = _run("--dir", str(store_dir), "compact", "--context", "../etc")

    assert result.returncode == 1 and "invalid context name" in result.stderr and "Traceback" not in result.stderr


def test_the_directory_comes_from_coaia_dir(store_dir: Path, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "COAIA_DIR": str(store_dir)}
    result = _run("status", "--json", cwd=tmp_path, env=env)

    assert json.loads(result.stdout)["directory"] == str(store_dir)


def test_validate_exits_3_on_a_problem_and_0_after_fix(store_dir: Path) -> None:
    store_dir.mkdir(parents=True)
    (store_dir / "charts.jsonl").write_text(
        '{"type":"entity","name":"a","entityType":"t","observations":[]}\n'
        '{"type":"relation","from":"a","to":"ghost","relationType":"r"}\n'
    )

    found = _run("validate", "--dir", str(store_dir))
    fixed = _run("validate", "--dir", str(store_dir), "--fix")
    after = _run("validate", "--dir", str(store_dir))

    assert found.returncode == 3 and "dangling relation a -[r]-> ghost" in found.stdout
    assert fixed.returncode == 0 and "repaired" in fixed.stdout and after.returncode == 0


def test_backup_list_and_restore_from_the_command_line(store_dir: Path) -> None:
    store = Store(store_dir)
    store.create_entities([{"name": "keep", "entityType": "t"}])
    taken = json.loads(_run("backup", "--dir", str(store_dir), "--json").stdout)
    store.delete_entities(["keep"])

    listed = _run("backups", "--dir", str(store_dir))
    restored = _run("restore", taken[0]["id"], "--dir", str(store_dir))

    assert taken[0]["id"] in listed.stdout and restored.returncode == 0 and "restored default" in restored.stdout
    assert Store(store_dir).open_entities(["keep"]).notFound == []


def test_history_of_a_chart_and_undo_from_the_command_line(store_dir: Path) -> None:
    from coaia_store.charts import Charts

    chart = (
        Charts(Store(store_dir))
        .create_chart(desiredOutcome="A garden", currentReality="Lawn", dueDate="2027-05-01", actionSteps=["Beds"])
        .chart
    )
    Charts(Store(store_dir)).complete_action_step(actionStep=chart.actionSteps[0].name)

    timeline = _run("history", chart.chartId, "--dir", str(store_dir))
    undone = _run("undo", "--dir", str(store_dir))

    assert "chart_created" in timeline.stdout and "step_completed" in timeline.stdout
    assert undone.returncode == 0 and "undid" in undone.stdout
    assert Charts(Store(store_dir)).get_chart(chartId=chart.chartId).actionSteps[0].completed is False


def test_doctor_says_what_to_run_then_fixes(damaged_store_dir: Path) -> None:
    before = _run("doctor", "--dir", str(damaged_store_dir))
    fixed = _run("doctor", "--dir", str(damaged_store_dir), "--fix")
    after = _run("doctor", "--dir", str(damaged_store_dir), "--json")

    assert before.returncode == 3 and "coaia-store doctor --fix" in before.stdout
    assert fixed.returncode == 0 and "healthy" in fixed.stdout
    assert after.returncode == 0 and json.loads(after.stdout)["integrity"]["ok"] is True


def test_commands_run_in_process_through_the_cli_runner(store_dir: Path) -> None:
    from typer.testing import CliRunner

    from coaia_store.cli import app

    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            "--dir",
            str(store_dir),
            "chart-create",
            "--outcome",
            "A garden",
            "--reality",
            "Lawn",
            "--due",
            "2027-05-01",
            "--step",
            "Beds",
            "--json",
        ],
    )
    listed = runner.invoke(app, ["--dir", str(store_dir), "charts", "--json"])
    bad = runner.invoke(app, ["--dir", str(store_dir), "chart", "chart_missing"])

    assert created.exit_code == 0 and json.loads(created.stdout)["chart"]["desiredOutcome"] == "A garden"
    assert listed.exit_code == 0 and json.loads(listed.stdout)["total"] == 1
    assert bad.exit_code != 0
