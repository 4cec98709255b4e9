"""Which backups are kept: the periods automatic backups are taken for, and the retention rule."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

from ..graph.config import BackupConfig
from .backupfiles import BackupInfo

DAILY, WEEKLY, MANUAL = "daily", "weekly", "manual"


def periods(now: datetime) -> list[tuple[str, str]]:
    """``(kind, label)`` of the day and the ISO week ``now`` falls in (UTC)."""
    day = now.astimezone(UTC).date()
    year, week, _ = day.isocalendar()
    return [(DAILY, day.isoformat()), (WEEKLY, f"{year}-W{week:02d}")]


def unique_label(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + os.urandom(3).hex()


def retention(
    entries: list[BackupInfo], now: datetime, config: BackupConfig
) -> tuple[list[BackupInfo], list[BackupInfo]]:
    """Split into (kept, dropped). Per context and kind, the last N are kept, and so is every
    backup of the last N days (weeks for weeklies): whichever keeps more. N is ``weeklyKeep``
    for weeklies, ``dailyKeep`` for dailies; pre-operation backups keep the last ``dailyKeep``
    (by count only); manual ones are all kept.
    As N >= 1, the newest backup of every context and kind is always kept."""
    keep: list[BackupInfo] = []
    drop: list[BackupInfo] = []
    groups: dict[tuple[str, str], list[BackupInfo]] = {}
    for entry in entries:
        groups.setdefault((entry.context, entry.kind), []).append(entry)
    for (_, kind), group in groups.items():
        group.sort(key=lambda e: e.time, reverse=True)
        for index, entry in enumerate(group):
            (keep if kind == MANUAL or _retained(entry, index, now, kind, config) else drop).append(entry)
    return keep, drop


def _retained(entry: BackupInfo, index: int, now: datetime, kind: str, config: BackupConfig) -> bool:
    taken, today = _day(entry.time), now.astimezone(UTC).date()
    if kind == WEEKLY:
        return index < config.weeklyKeep or _monday(taken) > _monday(today) - timedelta(weeks=config.weeklyKeep)
    if kind == DAILY:
        return index < config.dailyKeep or taken > today - timedelta(days=config.dailyKeep)
    return index < config.dailyKeep  # pre-operation backups: a busy day must not pile them up


def _day(stamp: str) -> date:
    return datetime.fromisoformat(stamp).astimezone(UTC).date()


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())
