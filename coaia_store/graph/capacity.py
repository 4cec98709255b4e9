"""Capacity planning: how fast each context grows, the disk's free space, and the days left at that rate.

Growth is measured from the records' own timestamps (``_ts``): the bytes of the lines a context's
file holds that were written in the last 7 and 30 days. The daily rate used for the forecast is the
faster of the two windows, so a recent burst is not averaged away. A warning is given before writes
start failing: when free space falls under ``monitoring.freeSpaceWarningMiB`` or the days left under
``monitoring.daysLeftWarning`` (``.coaia/config.json``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..models import Capacity, ContextGrowth
from .contexts import context_file

if TYPE_CHECKING:
    from .graphstore import GraphStore

_TS = re.compile(rb'"_ts":"([0-9T:.\-]+Z)"')
_MIB = 1 << 20


def capacity(store: GraphStore) -> Capacity:
    now = store.clock()
    growth = [_growth(store.path, name, now) for name in store.contexts()]
    total, free = store.io.disk_usage(_existing(store.path))
    per_day = max(sum(g.last7Days for g in growth) / 7, sum(g.last30Days for g in growth) / 30)
    days_left = round(free / per_day, 1) if per_day > 0 else None
    return Capacity(
        contexts=growth,
        diskFreeBytes=free,
        diskTotalBytes=total,
        bytesPerDay=round(per_day, 1),
        daysLeft=days_left,
        warnings=_warnings(store, free, days_left),
    )


def _warnings(store: GraphStore, free: int, days_left: float | None) -> list[str]:
    limits = store.config.monitoring
    found = []
    if free < limits.freeSpaceWarningMiB * _MIB:
        found.append(
            f"only {free / _MIB:.0f} MiB free on the disk holding {store.path} (warning under "
            f"{limits.freeSpaceWarningMiB} MiB): free some space or move the directory before writes fail"
        )
    if days_left is not None and days_left < limits.daysLeftWarning:
        found.append(
            f"at the current growth the disk is full in about {days_left:.0f} days (warning under "
            f"{limits.daysLeftWarning}): free some space, or compact and prune backups"
        )
    return found


def _growth(directory: Path, context: str, now: datetime) -> ContextGrowth:
    path = context_file(directory, context)
    week, month = now - timedelta(days=7), now - timedelta(days=30)
    size = last7 = last30 = 0
    try:
        with path.open("rb") as handle:
            for line in handle:
                size += len(line)
                written = _written(line)
                if written is not None and written >= month:
                    last30 += len(line)
                    last7 += len(line) if written >= week else 0
    except OSError:
        pass  # a file that vanished or cannot be read grows by nothing; status reports it elsewhere
    return ContextGrowth(context=context, bytes=size, last7Days=last7, last30Days=last30)


def _written(line: bytes) -> datetime | None:
    found = _TS.findall(line)
    if len(found) > 1:  # a "_ts" key inside a record's metadata too: ask the parsed line
        try:
            value = json.loads(line).get("_ts")
        except (ValueError, AttributeError):
            return None
        found = [value.encode()] if isinstance(value, str) else []
    try:
        return datetime.fromisoformat(found[0].decode().replace("Z", "+00:00")) if found else None
    except ValueError:
        return None


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
