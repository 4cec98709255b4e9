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
