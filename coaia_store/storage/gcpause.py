"""Pausing the cyclic garbage collector while building a large graph of objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while replaying lines or loading a cache.

    Both allocate a few containers per record and free almost none, so the collector
    would walk the growing graph again and again for nothing to collect: about 40% of the
    time to load 100,000 entities (bench/bench_engine.py). Only timing changes: reference
    counting still frees everything, and collection resumes when the replay ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
