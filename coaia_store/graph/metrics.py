"""Per-tool call counts, errors and latency since the server started: small and bounded.

The MCP server times every tool call through :meth:`CallMetrics.timed`; ``storage_status`` reports
:meth:`CallMetrics.snapshot`. Percentiles come from each tool's last ``window`` calls, so memory stays
bounded however long the server runs (the count of calls and errors is exact).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..models import ToolCalls

WINDOW = 1000


@dataclass
class _Tool:
    calls: int = 0
    errors: int = 0
    latest: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))


class CallMetrics:
    def __init__(self, clock: Callable[[], float] = time.perf_counter, window: int = WINDOW) -> None:
        self._clock = clock
        self._window = window
        self._tools: dict[str, _Tool] = {}
        self._lock = threading.Lock()  # sync tools run in worker threads

    @contextmanager
    def timed(self, tool: str) -> Iterator[None]:
        start, ok = self._clock(), False
        try:
            yield
            ok = True
        finally:
            self.record(tool, self._clock() - start, ok=ok)

    def record(self, tool: str, seconds: float, *, ok: bool) -> None:
        with self._lock:
            entry = self._tools.get(tool)
            if entry is None:
                entry = self._tools[tool] = _Tool(latest=deque(maxlen=self._window))
            entry.calls += 1
            entry.errors += not ok
            entry.latest.append(seconds)

    def snapshot(self) -> list[ToolCalls]:
        """One entry per tool called so far, by name."""
        with self._lock:
            copied = {name: (t.calls, t.errors, sorted(t.latest)) for name, t in self._tools.items()}
        return [
            ToolCalls(
                tool=name, calls=calls, errors=errors, p50Ms=_ms(_rank(times, 0.50)), p99Ms=_ms(_rank(times, 0.99))
            )
            for name, (calls, errors, times) in sorted(copied.items())
        ]


def _rank(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of an ordered, non-empty list."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
