"""Chart rules that need no storage: due dates, chart ids, and creative-orientation guidance."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime, time, timedelta

from ..errors import InvalidInputError
from ..models import check_date_range
from ..storage.clock import iso_timestamp

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_END_OF_DAY = time(23, 59, 59, 999999, tzinfo=UTC)


def normalize_due(text: str) -> str:
    """An ISO date (kept as ``YYYY-MM-DD``) or a zoned date-time (stored as UTC ``...Z``), within the dates the
    store accepts (``ValueError`` saying why not)."""
    text = text.strip()
    if _DATE_ONLY.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a calendar date") from None
        check_date_range(day, text)
        return day.isoformat()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO date ('2026-03-31') or date-time with a timezone ('2026-03-31T17:00:00Z')"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone: add 'Z' or an offset such as '+02:00', or give a date only")
    check_date_range(moment, text)
    return iso_timestamp(moment)


def deadline(value: object) -> datetime | None:
    """The moment a stored due date ends (a date-only one: the end of that day, UTC); ``None`` if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        text = normalize_due(value)
    except ValueError:
        return None
    if _DATE_ONLY.fullmatch(text):
        return datetime.combine(date.fromisoformat(text), _END_OF_DAY)
    return datetime.fromisoformat(text)


def check_not_later(child: str | None, parent: str | None, child_what: str, parent_what: str) -> None:
    """Refuse a due date later than the one it must fit inside."""
    child_end, parent_end = deadline(child), deadline(parent)
    if child_end is not None and parent_end is not None and child_end > parent_end:
        raise InvalidInputError(
            f"{child_what} is due {child}, later than {parent_what} ({parent}); choose a date on or before {parent}"
        )


def spread_dates(now: datetime, due: str, count: int) -> list[str]:
    """``count`` due dates evenly spaced between now and ``due`` (all ``due`` if it has passed)."""
    end = deadline(due)
    if end is None or end <= now:
        return [due] * count
    interval = (end - now) / (count + 1)
    moments = [now + interval * (i + 1) for i in range(count)]
    if _DATE_ONLY.fullmatch(due):
        return [m.astimezone(UTC).date().isoformat() for m in moments]
    return [iso_timestamp(m) for m in moments]


def is_overdue(due: object, completed: bool, now: datetime) -> bool:
    end = deadline(due)
    return not completed and end is not None and end < now


def within_days(due: object, days: int, now: datetime) -> bool:
    end = deadline(due)
    return end is not None and end - now <= timedelta(days=days)


def new_chart_id(now: datetime) -> str:
    """``chart_<UTC yyyymmddHHMMSS>_<12 random hex>``: sortable by creation, 48 random bits per second."""
    return f"chart_{now.astimezone(UTC):%Y%m%d%H%M%S}_{secrets.token_hex(6)}"


def new_step_name(chart_id: str, number: int) -> str:
    """``<chartId>_action_<N>_<8 random hex>``: N orders the chart's steps, the random part keeps two
    clones that each add step N (before a git merge) from writing the same name. Names of the older
    form ``<chartId>_action_<N>`` stay valid."""
    return f"{chart_id}_action_{number}_{secrets.token_hex(4)}"


# ----------------------------------------------------------- creative orientation (Robert Fritz)

_PROBLEM_WORDS = re.compile(
    r"\b(fix(?:es|ed|ing)?|solv(?:e|es|ed|ing)|eliminat(?:e|es|ed|ing)|prevent(?:s|ed|ing)?|stop(?:s|ped|ping)?"
    r"|avoid(?:s|ed|ing)?|reduc(?:e|es|ed|ing)|remov(?:e|es|ed|ing)|get rid of)\b",
    re.IGNORECASE,
)
_READINESS = re.compile(r"\b(ready (?:to|for)|prepared to|all set|set to)\b", re.IGNORECASE)


def outcome_warnings(text: str) -> list[str]:
    """A warning when a desired outcome names a problem to remove rather than a result to create."""
    words = sorted({m.group(0).lower() for m in _PROBLEM_WORDS.finditer(text)})
    if not words:
        return []
    return [
        f"desired outcome uses problem-solving language ({', '.join(words)}): name what you want to create "
        "(e.g. 'A release users trust' rather than 'Eliminate bugs'); the chart was saved as given"
    ]


def reality_warnings(text: str) -> list[str]:
    """A warning when current reality states readiness instead of facts."""
    phrases = sorted({m.group(0).lower() for m in _READINESS.finditer(text)})
    if not phrases:
        return []
    return [
        f"current reality states readiness ({', '.join(phrases)}) rather than facts: describe where things stand now "
        "(e.g. 'Two of five chapters are drafted'); saved as given"
    ]
