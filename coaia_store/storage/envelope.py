"""What one journal line holds: the records of one call, stamped with the call's envelope.

The envelope says which call wrote a line (``_op``), when (``_ts``) and, when known, who
(``_by``). A call that writes several records writes them as one batch record, so one call
is one line and all-or-nothing.
"""

from __future__ import annotations

import os
from datetime import datetime

from .caller import current_caller
from .clock import iso_timestamp
from .lines import Record

BATCH_TYPE = "batch"
ENVELOPE_ORDER = ("_op", "_ts", "_by")  # which call wrote a record, when, and who made it (if known)
ENVELOPE_KEYS = frozenset(ENVELOPE_ORDER)


def new_op_id() -> str:
    """A fresh operation id (the ``_op`` of a line)."""
    return os.urandom(8).hex()


def envelope(records: list[Record], op: str, now: datetime) -> Record:
    """The one record a call writes: its record, or a batch of its records, stamped with ``op``, ``now`` and the caller."""
    stamp = {"_op": op, "_ts": iso_timestamp(now)}
    caller = current_caller()
    if caller is not None:
        stamp["_by"] = caller.name
    records = [{k: v for k, v in r.items() if k not in ENVELOPE_KEYS} for r in records]
    if len(records) == 1:
        return {**records[0], **stamp}
    return {"type": BATCH_TYPE, **stamp, "records": records}


def unwrap(record: Record) -> list[Record]:
    """The records of one line, each stamped with the line's envelope (a record of an unknown shape as it is)."""
    if record.get("type") != BATCH_TYPE:
        return [record]
    members = record.get("records")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        return [record]  # the sink rejects an unknown shape as it would any bad record
    stamp = {k: record[k] for k in ENVELOPE_ORDER if k in record}  # a fixed order: the same bytes in every process
    return [{**m, **stamp} for m in members]
