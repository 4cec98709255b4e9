"""Every tool reply that touches a degraded or read-only context carries a one-line warning naming the
problem and the command that fixes it (issue 9 item 6), through mcp.Client; the structured result is
unchanged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faults import damage_line, data_file, entity
from mcp import Client

from coaia_store import Store
from coaia_store.server.app import build_server
from coaia_store.storage.lines import encode_line, header_record

pytestmark = pytest.mark.anyio


@pytest.fixture
def two_contexts(store_dir: Path) -> Path:
    """``work`` has a damaged middle line; ``home`` is healthy."""
    with Store(store_dir) as store:
        for name in ("a", "b", "c"):
            store.create_entities([entity(name)], context="work")
        store.create_entities([entity("h")], context="home")
    damage_line(store_dir, 2, "work")
    return store_dir


@pytest.fixture
async def client(two_contexts: Path) -> AsyncIterator[Client]:
    with Store(two_contexts) as store:
        async with Client(build_server(store, "full")) as client:
            yield client


def texts(result: object) -> list[str]:
    return [block.text for block in result.content]  # type: ignore[attr-defined]


async def test_a_read_of_a_degraded_context_carries_a_warning_naming_the_repair(client: Client) -> None:
    result = await client.call_tool("open_entities", {"names": ["a"], "context": "work"})

    [warning] = [t for t in texts(result) if t.startswith("warning:")]
    assert "'work' is degraded" in warning and "line 3" in warning and "coaia-store validate --fix" in warning
    assert "\n" not in warning and not result.is_error
    assert [e["name"] for e in result.structured_content["entities"]] == ["a"]
    assert json.loads(texts(result)[0]) == result.structured_content


async def test_a_write_to_a_degraded_context_carries_the_warning_too(client: Client) -> None:
    result = await client.call_tool("create_entity", {"entities": [entity("d")], "context": "work"})

    assert not result.is_error and any("'work' is degraded" in t for t in texts(result))


async def test_a_reply_about_a_healthy_context_carries_no_warning(client: Client) -> None:
    await client.call_tool("open_entities", {"names": ["a"], "context": "work"})

    result = await client.call_tool("open_entities", {"names": ["h"], "context": "home"})

    assert not any(t.startswith("warning:") for t in texts(result))


async def test_a_read_of_every_context_warns_about_the_degraded_one(client: Client) -> None:
    result = await client.call_tool("read_graph", {})

    assert [t for t in texts(result) if t.startswith("warning:")] and not result.is_error


async def test_a_read_only_context_is_named_in_the_warning(store_dir: Path) -> None:
    store_dir.mkdir(parents=True)
    header = {**header_record("2026-01-01T00:00:00.000Z"), "version": 99}  # written by a newer coaia-store
    data_file(store_dir, "future").write_bytes(encode_line(header))
    with Store(store_dir) as store:
        async with Client(build_server(store, "full")) as client:
            result = await client.call_tool("read_graph", {"context": "future"})

    assert any("'future' is read-only" in t and "upgrade coaia-store" in t for t in texts(result))


async def test_a_damaged_backup_manifest_is_warned_about_in_the_backups_list(store_dir: Path) -> None:
    with Store(store_dir) as store:
        store.create_entities([entity("a")])
    (store_dir / ".backup" / "MANIFEST.json").write_text("{not json")
    with Store(store_dir) as store:
        async with Client(build_server(store, "full")) as client:
            result = await client.call_tool("backups", {})

    assert not result.is_error and result.structured_content["total"] == 2  # the day's daily and weekly
    assert any("MANIFEST.json is unreadable" in t and "doctor --fix" in t for t in texts(result))


async def test_a_context_file_cut_short_since_its_backup_is_warned_about_with_the_restore_command(
    store_dir: Path,
) -> None:
    with Store(store_dir) as store:
        for name in "abc":
            store.create_entities([entity(name)])
        taken = store.backups.backup_context()
    path = data_file(store_dir)
    path.write_bytes(path.read_bytes().split(b"\n", 2)[0] + b"\n" + path.read_bytes().split(b"\n", 2)[1] + b"\n")
    with Store(store_dir) as store:
        async with Client(build_server(store, "full")) as client:
            result = await client.call_tool("read_graph", {"context": "default"})

    assert taken is not None
    assert any("was cut to" in t and f"coaia-store restore {taken.id}" in t for t in texts(result))


async def test_a_context_whose_file_is_gone_is_warned_about_with_the_restore_command(store_dir: Path) -> None:
    with Store(store_dir) as store:
        store.create_entities([entity("a")], context="work")
        taken = store.backups.backup_context("work")
    data_file(store_dir, "work").unlink()
    with Store(store_dir) as store:
        async with Client(build_server(store, "full")) as client:
            result = await client.call_tool("read_graph", {"context": "work"})

    assert taken is not None
    assert any("'work' has no file any more" in t and f"coaia-store restore {taken.id}" in t for t in texts(result))
