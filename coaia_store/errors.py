"""Every error the library raises on purpose. Each message says what was wrong and what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class CoaiaError(Exception):
    """Base class: a failure the caller can act on, described in its message."""


class InvalidInputError(CoaiaError, ValueError):
    """The request was malformed; nothing was written."""


class InvalidContextError(InvalidInputError):
    """A context name that is not allowed or would lead outside ``.coaia/``."""


class RecordTooLargeError(InvalidInputError):
    """One call would write a line longer than ``maxRecordBytes``."""


class NotFoundError(CoaiaError, LookupError):
    """A named entity (or relation endpoint) does not exist; nothing was written."""


class ConflictError(CoaiaError):
    """The request contradicts what is stored (for example a name taken by a different entity)."""


class StoreBusyError(CoaiaError, TimeoutError):
    """Another process held the write lock longer than ``lockTimeoutSeconds``."""


class StorageError(CoaiaError, OSError):
    """The operating system refused a read or write; the call was not acknowledged."""


class UnreadableFileError(StorageError):
    """A context's file is not a regular file of records (a link, a directory, a pipe, not JSONL)."""


class ReadOnlyError(CoaiaError):
    """The context cannot be written (failed fsync, newer format, or no permission)."""


class ConfigError(CoaiaError):
    """``.coaia/config.json`` is unreadable or has a bad field."""


class LocationError(CoaiaError):
    """No acceptable ``.coaia`` directory could be chosen."""


class UsageError(CoaiaError):
    """A command-line or start-up setting that cannot work (a port in use, an option without the one it needs)."""


class PermissionDeniedError(CoaiaError, PermissionError):
    """The caller's token may not do this (a read-only token writing, or a context it was not given)."""


@contextmanager
def os_errors_reported(what: str, consequence: str) -> Iterator[None]:
    """The operating system's refusals (disk full, I/O error, permission) as a :class:`StorageError`
    saying what failed and what it means; the library's own errors pass through."""
    try:
        yield
    except CoaiaError:
        raise
    except OSError as exc:
        raise StorageError(f"{what}: {exc.strerror or exc}; {consequence}") from exc
