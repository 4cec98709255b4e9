"""Context names map to files inside .coaia/ and can never lead outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coaia_store import InvalidContextError, Store, UnreadableFileError
from coaia_store.graph.contexts import context_file, discover_contexts


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("default", "charts.jsonl"),
        ("work", "charts-work.jsonl"),
        ("completed", "completed-charts.jsonl"),
        ("v1.2_x-y", "charts-v1.2_x-y.jsonl"),
    ],
)
def test_context_names_map_to_their_files(tmp_path: Path, name: str, file: str) -> None:
    assert context_file(tmp_path, name) == tmp_path / file


@pytest.mark.parametrize(
    "name", ["", "..", ".hidden", "a/b", "a\\b", "../x", "a..b", "x" * 65, "sp ace", "naïve", "a\x00b"]
)
def test_invalid_context_names_are_refused(store: Store, store_dir: Path, name: str) -> None:
    with pytest.raises(InvalidContextError, match="invalid context name"):
        store.create_entities([{"name": "x", "entityType": "t"}], context=name)

    assert not store_dir.exists()


def test_a_context_file_linking_outside_the_directory_is_refused(store: Store, store_dir: Path, tmp_path: Path) -> None:
    store_dir.mkdir()
    os.symlink(tmp_path / "elsewhere.jsonl", store_dir / "charts-evil.jsonl")

    with pytest.raises(UnreadableFileError, match="symbolic link"):
        store.create_entities([{"name": "x", "entityType": "t"}], context="evil")
    assert not (tmp_path / "elsewhere.jsonl").exists()


def test_contexts_are_discovered_from_the_files_present() -> None:
    names = [
        "charts-work.jsonl",
        "charts.jsonl",
        "completed-charts.jsonl",
        "config.json",
        "charts-.jsonl",
        "charts-default.jsonl",
        "notes.jsonl",
        "charts-a b.jsonl",
        "charts-work.jsonl.tmp",
    ]

    assert discover_contexts(names) == ["default", "completed", "work"]


def test_a_context_file_appears_only_with_its_first_write(store: Store, store_dir: Path) -> None:
    store.read_graph(context="personal")
    assert not (store_dir / "charts-personal.jsonl").exists()

    store.create_entities([{"name": "x", "entityType": "t"}], context="personal")

    assert (store_dir / "charts-personal.jsonl").exists() and "personal" in store.contexts()


def test_a_context_created_by_another_process_is_discovered(open_store) -> None:  # type: ignore[no-untyped-def]
    reader, writer = open_store(), open_store()
    assert reader.contexts() == []

    writer.create_entities([{"name": "x", "entityType": "t"}], context="learning")

    assert reader.contexts() == ["learning"] and reader.read_graph().totalEntities == 1
