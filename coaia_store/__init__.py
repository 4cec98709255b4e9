"""coaia-store: durable, multi-process storage for structural tension charts and their knowledge graph."""

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
