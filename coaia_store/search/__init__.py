"""Search and reports layer: ranked full-text search over the graph, a derived SQLite FTS5 index.

May import ``store`` and the layers below it.
"""

from .index import SearchIndex, SearchPage, SearchUnavailableError

__all__ = ["SearchIndex", "SearchPage", "SearchUnavailableError"]
