"""Generate docs/tools.md, the MCP tool reference, from the live server.

    python -m coaia_store.server.reference > docs/tools.md

For every profile the server is built in memory; every tool it publishes is listed once (a tool
whose schema differs between profiles, such as the ``memory`` profile's ``read_graph``, gets an
entry per variant) with its description, annotations, an arguments table taken from its input
schema, and one example call with its real result: each example runs through ``mcp.Client``
against a fresh temporary store seeded with a small example, with a fixed clock. Random parts of
the output (operation ids, chart-id suffixes, digests, the temporary path, file times) are
replaced by stable placeholders, so the page only changes when a tool, a schema or a result
shape changes. ``tests/test_docs.py`` fails when the committed page differs from a fresh one.

``examples`` holds the example calls and the example store, ``normalise`` the placeholders,
``collect`` the tools and their example results, ``markdown`` the page.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import anyio

from .collect import collect
from .examples import seed_names
from .markdown import render


def generate() -> str:
    """The whole page, as ``docs/tools.md`` should hold it."""
    ref = anyio.run(collect)
    return render(ref, seed_names())


def main(write: Callable[[str], Any] = sys.stdout.write) -> None:
    write(generate())
