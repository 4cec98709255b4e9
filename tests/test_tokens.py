"""Named tokens: who made each operation, read-only tokens, tokens limited to contexts, the tokens file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from test_server_http import _start

from coaia_store import Store
from coaia_store.charts import Charts
from coaia_store.errors import PermissionDeniedError, UsageError
from coaia_store.history import History
from coaia_store.server.tokens import load_tokens
from coaia_store.storage.caller import Caller, acting_as

ANA, BOB, CY = "ana-token-0123456789", "bob-token-0123456789", "cy-token-0123456789"
TOML = f"""
[[tokens]]
name = "ana"
token = "{ANA}"
role = "write"

[[tokens]]
name = "bob"
token = "{BOB}"
role = "read"

[[tokens]]
name = "cy"
token = "{CY}"
role = "write"
contexts = ["work"]
"""
ENTITY = {"name": "h", "entityType": "t"}


def _tokens_file(tmp_path: Path, text: str = TOML, name: str = "tokens.toml", mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


# ---------------------------------------------------------------- the library: the caller of the current call


def test_an_operation_records_who_made_it(store: Store) -> None:
    with acting_as(Caller("ana")):
        store.create_entities([ENTITY])

    assert History(store).operations("default").operations[0].by == "ana"


def test_the_chart_timeline_shows_who_made_each_event(store: Store) -> None:
    charts = Charts(store)
    with acting_as(Caller("ana")):
        created = charts.create_chart(
            desiredOutcome="Guide published", currentReality="Outline only", dueDate="2030-12-31", actionSteps=["Draft"]
        )
    with acting_as(Caller("cy")):
        charts.update_current_reality(chartId=created.chart.chartId, observations=["Draft half done"])

    by_kind = {e.kind: e.by for e in History(store).chart_history(created.chart.chartId).events}
    assert by_kind["chart_created"] == "ana" and by_kind["reality_added"] == "cy"


def test_without_a_caller_nothing_is_recorded(store: Store) -> None:
    store.create_entities([ENTITY])

    assert History(store).operations("default").operations[0].by is None


def test_a_read_only_caller_cannot_write_and_nothing_is_written(store: Store, store_dir: Path) -> None:
    with acting_as(Caller("bob", "read")), pytest.raises(PermissionDeniedError, match="read-only"):
        store.create_entities([ENTITY])

    assert not (store_dir / "charts.jsonl").exists()


def test_a_caller_limited_to_contexts_cannot_write_elsewhere(store: Store) -> None:
    with acting_as(Caller("cy", "write", frozenset({"work"}))):
        store.create_entities([ENTITY], context="work")
        with pytest.raises(PermissionDeniedError, match="work"):
            store.create_entities([ENTITY], context="personal")

    assert store.contexts() == ["work"]


def test_a_move_between_contexts_is_refused_whole_when_one_end_is_not_allowed(store: Store) -> None:
    charts = Charts(store)
    chart = charts.create_chart(
        desiredOutcome="Guide published", currentReality="Outline only", dueDate="2030-12-31", context="work"
    ).chart.chartId
    with acting_as(Caller("cy", "write", frozenset({"work"}))), pytest.raises(PermissionDeniedError):
        charts.move_chart(chartId=chart, toContext="personal")

    assert store.contexts() == ["work"]


def test_a_read_only_caller_cannot_restore_or_compact(store: Store) -> None:
    store.create_entities([ENTITY])
    with acting_as(Caller("bob", "read")), pytest.raises(PermissionDeniedError):
        store.compact("default")


def test_a_caller_that_may_not_write_a_context_may_not_back_it_up(store: Store) -> None:
    store.create_entities([ENTITY])
    before = store.backups.list_backups()
    for caller, call in (
        (Caller("bob", "read"), lambda: store.backups.backup_all()),
        (Caller("cy", "write", frozenset({"work"})), lambda: store.backups.backup_context("default")),
    ):
        with acting_as(caller), pytest.raises(PermissionDeniedError):
            call()

    assert store.backups.list_backups() == before


# ---------------------------------------------------------------- the tokens file


def test_a_tokens_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="chmod 600"):
        load_tokens(_tokens_file(tmp_path, mode=0o644))


def test_a_tokens_file_that_is_not_a_regular_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "tokens.toml"
    os.mkfifo(fifo, 0o600)  # reading it would block the start for ever

    with pytest.raises(UsageError, match="not a regular file"):
        load_tokens(fifo)


def test_a_json_tokens_file_works_as_toml_does(tmp_path: Path) -> None:
    text = json.dumps({"tokens": [{"name": "ana", "token": ANA, "role": "write"}]})
    known, caller = load_tokens(_tokens_file(tmp_path, text, "tokens.json")).match(ANA.encode())

    assert known and caller == Caller("ana", "write", None)


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "ana", "token": ANA, "role": "admin"},
        {"name": "ana", "token": ANA, "contexts": ["../etc"]},
        {"name": "", "token": ANA},
        {"name": "ana", "tokn": ANA},
    ],
)
def test_a_bad_entry_is_refused_without_showing_the_token(tmp_path: Path, entry: dict[str, object]) -> None:
    with pytest.raises(UsageError) as raised:
        load_tokens(_tokens_file(tmp_path, json.dumps({"tokens": [entry]}), "tokens.json"))

    assert ANA not in str(raised.value)


def test_two_entries_with_one_token_are_refused(tmp_path: Path) -> None:
    text = json.dumps([{"name": "ana", "token": ANA}, {"name": "bob", "token": ANA}])
    with pytest.raises(UsageError, match="same token"):
        load_tokens(_tokens_file(tmp_path, text, "tokens.json"))


# ---------------------------------------------------------------- over HTTP, as a team uses it


@pytest.fixture
def team(store_dir: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    proc, url = _start(store_dir, "--tokens-file", str(_tokens_file(tmp_path)), host="127.0.0.2")
    yield url, proc
    proc.terminate()
    proc.wait(10)


async def _call(url: str, token: str, tool: str, arguments: dict[str, object]) -> object:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            return await client.call_tool(tool, arguments)


@pytest.mark.anyio
async def test_over_http_each_write_records_the_token_name(team: tuple[str, object]) -> None:
    url, _ = team
    await _call(url, ANA, "create_entity", {"entities": [ENTITY]})
    operations = await _call(url, BOB, "history", {})

    assert operations.structured_content["operations"][0]["by"] == "ana"  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_over_http_a_read_token_is_refused_a_write_with_a_clear_error(team: tuple[str, object]) -> None:
    url, _ = team
    refused = await _call(url, BOB, "create_entity", {"entities": [ENTITY]})
    graph = await _call(url, ANA, "read_graph", {})

    assert refused.is_error and "read-only" in refused.content[0].text  # type: ignore[attr-defined]
    assert graph.structured_content["totalEntities"] == 0  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_over_http_a_token_cannot_write_outside_its_contexts(team: tuple[str, object]) -> None:
    url, _ = team
    refused = await _call(url, CY, "create_entity", {"entities": [ENTITY], "context": "personal"})
    allowed = await _call(url, CY, "create_entity", {"entities": [ENTITY], "context": "work"})

    assert refused.is_error and "work" in refused.content[0].text  # type: ignore[attr-defined]
    assert not allowed.is_error  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_tokens_never_reach_the_log(team: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = team
    await _call(url, ANA, "create_entity", {"entities": [ENTITY]})
    await _call(url, BOB, "create_entity", {"entities": [ENTITY]})
    async with httpx2.AsyncClient(headers={"Authorization": "Bearer wrong-token-0123456789"}) as http:
        await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    proc.terminate()
    proc.wait(10)
    log = proc.stderr.read().decode() if proc.stderr else ""

    assert "listening" in log and not any(t in log for t in (ANA, BOB, CY, "wrong-token-0123456789"))


def test_serve_refuses_a_tokens_file_others_can_read(store_dir: Path, tmp_path: Path) -> None:
    tokens = _tokens_file(tmp_path, mode=0o644)
    result = subprocess.run(
        [sys.executable, "-m", "coaia_store", "serve", "--dir", str(store_dir), "--http", "--tokens-file", str(tokens)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )

    assert result.returncode == 2 and "chmod 600" in result.stderr and "Traceback" not in result.stderr


def test_cli_history_shows_who_made_each_change(store_dir: Path) -> None:
    with Store(store_dir) as store, acting_as(Caller("ana")):
        store.create_entities([ENTITY])
    shown = subprocess.run(
        [sys.executable, "-m", "coaia_store", "--dir", str(store_dir), "history", "h"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert "by ana" in shown.stdout


@pytest.mark.anyio
async def test_concurrent_clients_with_different_tokens_are_each_attributed_correctly(
    store_dir: Path, tmp_path: Path
) -> None:
    import anyio

    names = [f"w{i}" for i in range(4)]
    text = json.dumps([{"name": n, "token": f"{n}-token-0123456789", "role": "write"} for n in names])
    proc, url = _start(store_dir, "--tokens-file", str(_tokens_file(tmp_path, text, "tokens.json")))

    async def writer(name: str) -> None:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {name}-token-0123456789"}) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                for i in range(10):
                    await client.call_tool("create_entity", {"entities": [{"name": f"{name}-{i}", "entityType": "t"}]})

    try:
        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(writer, name)
    finally:
        proc.terminate()
        proc.wait(10)
    operations = list(History(Store(store_dir)).every_operation("default"))

    assert len(operations) == 40 and all(op.entities[0].split("-")[0] == op.by for op in operations)
