"""Odd context files (issue 9 item 4): a ``charts-x.jsonl`` that is a link, a directory, a pipe or not JSONL.

The rules under test: such a file is never followed, opened blocking or written; its context is
reported unreadable, with why and what to do; every scan skips it; every other context keeps
working through the library and the MCP tools; a link aliasing another context can never give
two writers two locks for one file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from faults import SCALE, data_file, entity
from mcp import Client

from coaia_store import Store, UnreadableFileError
from coaia_store.server.app import build_server
from coaia_store.store import validate_integrity

ODD = "x"  # the context whose file is odd
Plant = Callable[[Path, Path], None]  # (store_dir, a folder outside it)


OUTSIDE_RECORD = {"type": "entity", "name": "outside", "entityType": "t", "observations": []}


def _link_outside(store_dir: Path, outside: Path) -> None:
    target = outside / "elsewhere.jsonl"
    target.write_text(json.dumps(OUTSIDE_RECORD) + "\n")
    os.symlink(target, data_file(store_dir, ODD))


def _dangling_link(store_dir: Path, outside: Path) -> None:
    os.symlink(outside / "missing.jsonl", data_file(store_dir, ODD))


def _link_to_a_directory(store_dir: Path, outside: Path) -> None:
    (outside / "folder").mkdir()
    os.symlink(outside / "folder", data_file(store_dir, ODD))


def _directory(store_dir: Path, outside: Path) -> None:
    data_file(store_dir, ODD).mkdir()


def _fifo(store_dir: Path, outside: Path) -> None:
    os.mkfifo(data_file(store_dir, ODD))


def _alias(store_dir: Path, outside: Path) -> None:
    os.symlink("charts.jsonl", data_file(store_dir, ODD))


def _pretty_printed(store_dir: Path, outside: Path) -> None:
    data_file(store_dir, ODD).write_text(json.dumps([OUTSIDE_RECORD], indent=2))


ODD_FILES: dict[str, tuple[Plant, str]] = {  # how to plant it, and a word the report must use
    "link outside .coaia": (_link_outside, "outside .coaia"),
    "dangling link": (_dangling_link, "does not exist"),
    "link to a directory": (_link_to_a_directory, "symbolic link"),
    "directory": (_directory, "a directory"),
    "FIFO": (_fifo, "named pipe"),
    "link aliasing another context": (_alias, "symbolic link"),
    "pretty-printed JSON": (_pretty_printed, "not JSONL"),
}


def planted(store_dir: Path, outside: Path, kind: str) -> None:
    """A healthy default context (entities a, b) and a context ``x`` whose file is odd."""
    with Store(store_dir) as store:
        store.create_entities([entity("a", "apples"), entity("b")])
    outside.mkdir(exist_ok=True)
    ODD_FILES[kind][0](store_dir, outside)


@pytest.fixture(params=ODD_FILES, ids=ODD_FILES)
def odd(request: pytest.FixtureRequest, store_dir: Path, tmp_path: Path) -> str:
    planted(store_dir, tmp_path / "outside", request.param)
    return str(request.param)


def test_an_odd_context_file_is_reported_unreadable_with_why_and_what_to_do(store_dir: Path, odd: str) -> None:
    with Store(store_dir) as store:
        infos = {i.name: i for i in store.list_contexts()}
        status = store.status()
    assert set(infos) == {"default", ODD}
    report = infos[ODD].unreadable
    assert report and ODD_FILES[odd][1] in report and "What to do" in report, report
    assert infos[ODD].degraded and not infos["default"].degraded
    assert status.degraded and any(f"context {ODD!r} is unreadable" in p for p in status.problems)


def test_history_and_undo_of_an_odd_context_answer_at_once_with_what_to_do(store_dir: Path, odd: str) -> None:
    args = [sys.executable, "-m", "coaia_store", "--dir", str(store_dir)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    answers = [
        subprocess.run(
            [*args, *command, "--context", ODD],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        for command in (["history"], ["undo"])
    ]
    assert [a.returncode for a in answers] == [1, 1]
    assert all(ODD_FILES[odd][1] in a.stderr and "What to do" in a.stderr for a in answers), answers


def test_every_scan_skips_an_odd_context_file_and_the_other_contexts_keep_working(store_dir: Path, odd: str) -> None:
    with Store(store_dir) as store:
        assert store.contexts() == ["default"]
        assert sorted(e.name for e in store.read_graph().entities) == ["a", "b"]
        assert [e.name for e in store.open_entities(["a", "outside"]).entities] == ["a"]
        report = validate_integrity(store)
        assert [c.context for c in report.contexts] == ["default"] and report.contexts[0].ok
        assert not report.ok and any(f"context {ODD!r} is unreadable" in p for p in report.problems)  # as status says
        store.create_entities([entity("c")])
        assert sorted(e.name for e in store.read_graph(context="default").entities) == ["a", "b", "c"]


def test_a_write_to_an_odd_context_file_is_refused_and_changes_nothing(
    store_dir: Path, tmp_path: Path, odd: str
) -> None:
    outside = tmp_path / "outside"
    candidates = [*outside.rglob("*"), data_file(store_dir), data_file(store_dir, ODD)]
    before = {p: p.read_bytes() for p in candidates if p.is_file() and not p.is_symlink()}
    with Store(store_dir) as store:
        with pytest.raises(UnreadableFileError, match="What to do") as refused:
            store.create_entities([entity("new")], context=ODD)
    assert "Nothing was saved" in str(refused.value)
    after = {p: p.read_bytes() for p in before}
    assert after == before and not (outside / "missing.jsonl").exists()
    assert os.path.lexists(data_file(store_dir, ODD))


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["FIFO", "link outside .coaia", "directory"])
async def test_mcp_tools_answer_with_an_odd_context_file_planted(store_dir: Path, tmp_path: Path, kind: str) -> None:
    """Regression: a FIFO made tools hang without a reply; a link or a directory made 10 of 14 fail."""
    planted(store_dir, tmp_path / "outside", kind)
    with Store(store_dir) as store:
        async with Client(build_server(store, "full")) as client:
            with anyio.fail_after(60):  # a hang shows up as a failure, not a stuck test run
                status = (await client.call_tool("storage_status", {})).structured_content
                charts = await client.call_tool("list_charts", {})
                graph = await client.call_tool("read_graph", {"mode": "full"})
                found = await client.call_tool("search", {"query": "apples"})
                created = await client.call_tool("create_entity", {"entities": [entity("d")]})
    assert status is not None and status["degraded"]
    assert any(f"context {ODD!r} is unreadable" in p for p in status["problems"])
    assert not charts.is_error and not graph.is_error and not found.is_error and not created.is_error
    assert "apples" in json.dumps(found.structured_content)


_WRITER = """
import sys
from coaia_store import Store
from coaia_store.errors import CoaiaError
directory, context, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with Store(directory) as store:
    for i in range(count):
        try:
            store.create_entities([{"name": f"{name}-{i}", "entityType": "t"}], context=context)
            store.add_observations([{"entityName": f"{name}-{i}", "contents": ["superseded"]}], context=context)
        except CoaiaError as exc:
            print("REFUSED", type(exc).__name__, flush=True)
        else:
            print("ACK", f"{name}-{i}", flush=True)
"""


def test_two_writers_through_a_link_aliasing_another_context_lose_no_acknowledged_write(
    store_dir: Path, tmp_path: Path
) -> None:
    """Regression: one writer per name took two locks for one file and lost 14 of 1,000 acknowledged writes;
    and a compaction through the link replaced it with a file of its own, so later writes left charts.jsonl."""
    planted(store_dir, tmp_path / "outside", "link aliasing another context")
    # Every second record superseded and compaction due at once: compactions rename the file under the writers.
    (store_dir / "config.json").write_text(
        json.dumps({"fsync": "never", "compaction": {"garbageRatio": 0.3, "minBytes": 0}})
    )
    count = 200 * SCALE
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(store_dir), context, name, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for context, name in (("default", "direct"), (ODD, "aliased"))
    ]
    outputs = [w.communicate(timeout=300)[0].splitlines() for w in writers]
    acked = [line.split()[1] for out in outputs for line in out if line.startswith("ACK")]
    with Store(store_dir) as store:
        present = {e.name for e in store.read_graph(context="default").entities}  # the one file both names lead to
    lost = sorted(set(acked) - present)
    print(
        f"\nFIGURE odd files: aliasing link, 2 writers x {count} calls, {len(acked)} acknowledged, {len(lost)} lost, "
        f"{sum(line.startswith('REFUSED') for out in outputs for line in out)} refused"
    )
    assert not lost and len(acked) >= count
