"""coaia-store: durable, multi-process storage for structural tension charts and their knowledge graph.

The layers import one way (CONTRIBUTING.md): ``storage`` → ``graph`` → ``safety`` → ``charts`` → ``store``
(the :class:`Store` facade) → ``search`` | ``reports`` → ``server`` → ``cli``. ``errors`` and ``models`` are
shared by all of them; ``history`` and ``brief`` keep those public import paths.
"""

from .errors import (
    CoaiaError,
    ConfigError,
    ConflictError,
    InvalidContextError,
    InvalidInputError,
    LocationError,
    NotFoundError,
    ReadOnlyError,
    RecordTooLargeError,
    StorageError,
    StoreBusyError,
    UnreadableFileError,
)
from .graph.config import StoreConfig
from .store import Store

__version__ = "0.2.0"

__all__ = [
    "CoaiaError",
    "ConfigError",
    "ConflictError",
    "InvalidContextError",
    "InvalidInputError",
    "LocationError",
    "NotFoundError",
    "ReadOnlyError",
    "RecordTooLargeError",
    "StorageError",
    "Store",
    "StoreBusyError",
    "StoreConfig",
    "UnreadableFileError",
    "__version__",
]
