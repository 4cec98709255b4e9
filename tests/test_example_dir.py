"""The shipped .coaia.example/ directory stays loadable and healthy."""

from __future__ import annotations

import shutil
from pathlib import Path

from coaia_store import Store

EXAMPLE = Path(__file__).resolve().parent.parent / ".coaia.example"


def test_example_directory_loads_healthy_and_checksummed() -> None:
    status = Store(EXAMPLE).status()

    assert not status.degraded, status.problems
    assert {c.name for c in status.contexts} == {"work", "personal", "learning"}
    assert all(c.checksummed and c.entities for c in status.contexts)


def test_example_config_is_valid() -> None:
    assert Store(EXAMPLE).config.fsync == "always"


def test_example_charts_have_no_dangling_relations(tmp_path: Path) -> None:
    store = Store(shutil.copytree(EXAMPLE, tmp_path / ".coaia"))
    page = store.read_graph()
    names = {(e.context, e.name) for e in page.entities}

    assert all((r.context, r.to) in names and (r.context, r.from_) in names for r in page.relations)
