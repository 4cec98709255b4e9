"""What a journal replays its records into: the :class:`RecordSink` the graph layer implements."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from .lines import Record


class InvalidRecord(ValueError):
    """Raised by a sink for a line that parses but is not a record it can apply."""


class RecordSink(Protocol):
    state_format: str  # names the shape of export_state(): a state cache of another shape is ignored

    def reset(self) -> None: ...
    def prepare(self, records: list[Record]) -> list[Record]:
        """The records to append for what a write's build returned (the sink may add bookkeeping)."""

    def attach(self, loader: Callable[[int], list[Record]]) -> None:
        """How the sink reads back the records of the line at an offset (for what it keeps only as a reference)."""

    def apply_all(self, records: list[Record], at: int | None = None) -> None:
        """Apply every record of the line at offset ``at`` or, raising :class:`InvalidRecord`, none of them."""

    def live_records(self) -> int: ...
    def snapshot(self) -> Iterable[Record]: ...
    def export_state(self) -> object:
        """The whole state as plain built-in objects (dict, list, tuple, set, str, numbers)."""

    def import_state(self, state: object) -> None:
        """Take over a state ``export_state`` made; raise ``ValueError`` if it is not one."""
