"""A hybrid logical clock for the ``_ts`` of records: wall-clock time that never runs behind.

Records from several machines meet in one file after a git merge, and concurrent changes to one
field are ordered by ``(_ts, _op)``. A machine whose clock is late would lose every such tie, even
for a change made after it had seen the other one. So every ``_ts`` this clock gives is later
than both the wall clock and the newest ``_ts`` this process has seen (``observe``), by at least
a millisecond, the precision of ``_ts``. It stays within the ISO text format of ``_ts``.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from .clock import Clock, iso_timestamp, parse_timestamp

_TICK = timedelta(milliseconds=1)


class HybridClock:
    """Callable like a :data:`Clock`; each call is strictly later than the last and than anything observed."""

    def __init__(self, wall: Clock) -> None:
        self._wall = wall
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def observe(self, ts: object) -> None:
        """Remember a ``_ts`` read from the file, so the next stamp comes after it."""
        moment = parse_timestamp(ts)
        if moment is None:
            return
        with self._lock:
            if self._last is None or moment > self._last:
                self._last = moment

    def __call__(self) -> datetime:
        now = self._wall()
        with self._lock:
            if self._last is not None and now < self._last + _TICK:
                now = self._last + _TICK
            # iso_timestamp keeps milliseconds: step from the truncated value, so texts are increasing too
            self._last = now.replace(microsecond=now.microsecond // 1000 * 1000)
            return now

    def stamp(self) -> str:
        return iso_timestamp(self())
