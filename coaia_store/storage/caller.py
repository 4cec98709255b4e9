"""Who is making the current call, and what they may write.

The HTTP gate sets the caller for the duration of a request; the value travels with the request's
``contextvars`` down to the journal, which stamps each line it writes with the caller's name
(``_by``) and refuses a write the caller may not make, so no library signature carries it.
Without a caller (stdio, the library, the CLI, a single ``--token``) everything is allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from ..errors import PermissionDeniedError

Role = Literal["read", "write"]


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role = "write"
    contexts: frozenset[str] | None = None  # None: every context

    def check_write(self, context: str) -> None:
        if self.role == "read":
            raise PermissionDeniedError(
                f"token {self.name!r} is read-only: nothing was written. Ask the server's owner for a write token"
            )
        if self.contexts is not None and context not in self.contexts:
            allowed = ", ".join(sorted(self.contexts))
            raise PermissionDeniedError(
                f"token {self.name!r} may write only to context(s) {allowed}, not {context!r}: nothing was written. "
                "Pass one of those as `context`"
            )


_current: ContextVar[Caller | None] = ContextVar("coaia_caller", default=None)


def current_caller() -> Caller | None:
    return _current.get()


def check_write(context: str) -> None:
    """Raise :class:`PermissionDeniedError` when the current caller may not write ``context``."""
    caller = _current.get()
    if caller is not None:
        caller.check_write(context)


@contextmanager
def acting_as(caller: Caller | None) -> Iterator[None]:
    reset = _current.set(caller)
    try:
        yield
    finally:
        _current.reset(reset)
