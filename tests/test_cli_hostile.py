"""The CLI under hostile input: every case answers with readable text and a documented exit code
(0 done, 1 an error in one readable line, 2 bad usage), never a Python traceback, and a refused
command changes nothing. Each case runs `coaia-store` as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DUE_PAST_THE_CALENDAR = "9999-12-31T23:00:00-05:00"
HUGE = "99999999999999999999"
UNREACHABLE = "/proc/no-such-dir"  # cannot be created, even by root


@dataclass(frozen=True)
class World:
    store: Path
    files: Path
    chart: str


def _run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coaia_store", "--dir", str(world.store), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("hostile-cli")
    files = root / "files"
    files.mkdir()
    (files / "surrogate.jsonl").write_text('{"type":"entity","name":"a\\ud800","entityType":"t","observations":[]}\n')
    (files / "wide-int.jsonl").write_text(
        '{"type":"entity","name":"ok","entityType":"t","observations":[]}\n'
        '{"type":"entity","name":"big","entityType":"t","observations":[],'
        '"metadata":{"n":123456789012345678901234567890}}\n'
    )
    (files / "garbage.bin").write_bytes(bytes(range(256)) * 8)
    (files / "deep.jsonl").write_text(
        '{"type":"entity","name":"d","entityType":"t","metadata":{"a":' + "[" * 5000 + "]" * 5000 + "}}\n"
    )
    (files / "nul.jsonl").write_bytes(b"\0" * 64 + b"\n")
    (files / "plain.txt").write_text("hello\n")
    (files / "a-dir").mkdir()
    world = World(root / ".coaia", files, "")
    created = _run(world, "chart-create", "--outcome", "A cabin", "--reality", "Land", "--due", "2030-01-01", "--json")
    return World(world.store, files, json.loads(created.stdout)["chart"]["chartId"])


# (id, arguments; "{files}" and "{chart}" are filled in, expected exit code, words the output must hold)
CASES: list[tuple[str, list[str], int, list[str]]] = [
    (
        "due past the calendar",
        ["chart-create", "-o", "x", "-r", "y", "--due", DUE_PAST_THE_CALENDAR],
        1,
        ["dueDate", "1000-01-01 to 9998-12-31"],
    ),
    ("due before year 1000", ["chart-create", "-o", "x", "-r", "y", "--due", "0999-06-01"], 1, ["1000-01-01"]),
    (
        "due before year 1 in UTC",
        ["chart-create", "-o", "x", "-r", "y", "--due", "0001-01-01T00:00:00+01:00"],
        1,
        ["dueDate"],
    ),
    ("due not a date", ["chart-create", "-o", "x", "-r", "y", "--due", "next tuesday"], 1, ["dueDate"]),
    ("due not in the calendar", ["chart-create", "-o", "x", "-r", "y", "--due", "2026-02-30"], 1, ["calendar date"]),
    ("due without timezone", ["chart-create", "-o", "x", "-r", "y", "--due", "2026-02-01T10:00:00"], 1, ["timezone"]),
    ("blank outcome", ["chart-create", "-o", " ", "-r", "y", "--due", "2030-01-01"], 1, ["desiredOutcome"]),
    (
        "context with a slash",
        ["chart-create", "-o", "x", "-r", "y", "--due", "2030-01-01", "-c", "../etc"],
        1,
        ["context"],
    ),
    ("step due past the calendar", ["step-add", "{chart}", "t", "--due", DUE_PAST_THE_CALENDAR], 1, ["dueDate"]),
    ("step of no chart", ["step-add", "no-such-chart", "t"], 1, ["no chart"]),
    ("complete no step", ["step-complete", "no-such_action_1"], 1, ["no entity"]),
    ("reality of no chart", ["reality-add", "no-such-chart", "fact"], 1, ["no chart"]),
    ("due within 10^20 days", ["charts", "--due-within", HUGE], 1, ["dueWithinDays"]),
    ("due within 2^31 days", ["charts", "--due-within", str(2**31)], 1, ["dueWithinDays"]),
    ("due within -1 days", ["charts", "--due-within", "-1"], 2, []),
    ("due within words", ["charts", "--due-within", "soon"], 2, []),
    ("charts of a bad context", ["charts", "-c", "../x"], 1, ["context"]),
    ("no such chart", ["chart", "no-such-chart"], 1, ["no chart"]),
    ("depth of 10^20", ["chart", "{chart}", "--depth", HUGE], 0, ["A cabin"]),
    ("report window 5", ["report", "--window", "5"], 2, []),
    ("report window 10^20", ["report", "--window", HUGE], 2, []),
    ("plot into a directory", ["report", "--plot", "{files}/a-dir"], 1, ["plot"]),
    ("plot into nowhere", ["report", "--plot", f"{UNREACHABLE}/plot.png"], 1, ["plot"]),
    ("export into nowhere", ["export", "--output", f"{UNREACHABLE}/out.jsonl"], 1, ["cannot export", UNREACHABLE]),
    ("export under a file", ["export", "--output", "{files}/plain.txt/out.jsonl"], 1, ["cannot export"]),
    ("export onto a directory", ["export", "--output", "{files}/a-dir"], 1, ["cannot export", "directory"]),
    ("export json into nowhere", ["export", "-f", "json", "--output", f"{UNREACHABLE}/out.json"], 1, ["cannot export"]),
    (
        "export markdown onto a file",
        ["export", "-f", "markdown", "--output", "{files}/plain.txt"],
        1,
        ["cannot export"],
    ),
    ("export every context into nowhere", ["export", "--all", "--output", UNREACHABLE], 1, ["cannot export"]),
    ("export as xml", ["export", "-f", "xml"], 2, []),
    ("export no context", ["export", "-c", "no-such-context"], 1, ["no context"]),
    ("import a lone surrogate escape", ["import", "{files}/surrogate.jsonl"], 0, ["line 1 skipped", "surrogate"]),
    (
        "import an integer beyond 64 bits",
        ["import", "{files}/wide-int.jsonl", "--dry-run"],
        0,
        ["line 2 skipped", "beyond 64 bits"],
    ),
    ("import a missing file", ["import", "{files}/missing.jsonl"], 1, ["cannot read"]),
    ("import a directory", ["import", "{files}/a-dir"], 1, ["cannot read"]),
    ("import binary garbage", ["import", "{files}/garbage.bin"], 0, ["skipped"]),
    ("import 5000 levels of nesting", ["import", "{files}/deep.jsonl"], 0, ["line 1 skipped"]),
    ("import NUL bytes", ["import", "{files}/nul.jsonl"], 0, ["line 1 skipped"]),
    ("import with a bad rule", ["import", "{files}/plain.txt", "--on-conflict", "bogus"], 2, []),
    ("import into a bad context", ["import", "{files}/plain.txt", "-c", "a/b"], 1, ["context"]),
    ("migrate a missing file", ["migrate", "--memory-path", "{files}/missing.jsonl"], 1, ["cannot read"]),
    ("migrate a directory", ["migrate", "--memory-path", "{files}/a-dir"], 1, ["cannot read"]),
    ("undo 10^20 operations", ["undo", "--count", HUGE], 1, ["cannot undo"]),
    ("undo in an empty context", ["undo", "-c", "no-such-context"], 1, ["nothing to undo"]),
    ("restore no backup", ["restore", "no-such-backup"], 1, ["no backup"]),
    ("compact a bad context", ["compact", "-c", "../x"], 1, ["context"]),
    ("init under a file", ["init", "{files}/plain.txt"], 1, ["cannot create"]),
    ("init in nowhere", ["init", UNREACHABLE], 1, ["cannot create"]),
    ("serve a bad profile", ["serve", "--tools", "bogus"], 2, ["profile"]),
    ("a file as the directory", ["status", "--dir", "{files}/plain.txt"], 1, ["plain.txt"]),
    ("an unknown command", ["frobnicate"], 2, []),
]


def _data(world: World) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(world.store.glob("*.jsonl"))}


@pytest.mark.parametrize(("arguments", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_command_answers_readably_with_a_documented_exit_code(
    world: World, arguments: list[str], code: int, words: list[str]
) -> None:
    before = _data(world)
    args = [a.replace("{files}", str(world.files)).replace("{chart}", world.chart) for a in arguments]

    done = _run(world, *args)

    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert done.returncode == code, output
    if code == 1:
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    for word in words:
        assert word in output
    if arguments[0] != "import" or code != 0:
        assert _data(world) == before


def test_an_import_writes_the_good_lines_and_refuses_the_wide_integer(world: World) -> None:
    done = _run(world, "import", str(world.files / "wide-int.jsonl"), "-c", "wide", "--json")

    report = json.loads(done.stdout)
    assert report["added"] == ["ok"]
    assert report["invalidLines"] == [{"line": 2, "problem": report["invalidLines"][0]["problem"]}]
    assert "123456789012345678901234567890" in report["invalidLines"][0]["problem"]


def test_an_export_onto_a_directory_leaves_no_temporary_file_beside_it(world: World) -> None:
    _run(world, "export", "--output", str(world.files / "a-dir"))

    assert not (world.files / "a-dir.tmp").exists()


def test_the_cli_prints_an_unpaired_surrogate_it_read_as_an_escape(world: World) -> None:
    legacy = world.store.parent / "legacy" / ".coaia"
    legacy.mkdir(parents=True)
    (legacy / "charts.jsonl").write_text('{"type":"entity","name":"odd \\udc00 name","entityType":"t"}\n')

    done = subprocess.run(
        [sys.executable, "-m", "coaia_store", "--dir", str(legacy), "export", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )

    assert "Traceback" not in done.stdout + done.stderr and done.returncode == 0
    assert json.loads(done.stdout)["entities"][0]["name"] == "odd \udc00 name"
