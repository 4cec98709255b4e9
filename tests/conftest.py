"""Shared fixtures: a fresh store directory per test, and helpers to open stores on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coaia_store import Store


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / ".coaia"


@pytest.fixture
def open_store(store_dir: Path) -> Iterator[Callable[..., Store]]:
    """Open any number of stores on ``store_dir`` (as separate processes would); all closed after the test."""
    opened: list[Store] = []

    def factory(**kwargs: object) -> Store:
        store = Store(store_dir, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    return open_store()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def damaged_store_dir(store_dir: Path) -> Path:
    """A store whose default context has a damaged middle line: entity 'a' (its checksum fails), then 'b'."""
    store = Store(store_dir)
    store.create_entities([{"name": "a", "entityType": "t"}])
    store.create_entities([{"name": "b", "entityType": "t"}])
    store.close()
    path = store_dir / "charts.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"a"', b'"A"') + lines[2])
    return store_dir
