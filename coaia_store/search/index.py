"""Ranked full-text search over entities: SQLite FTS5 with BM25, derived from the graph state.

The JSONL files stay the only source of truth. The index is an in-memory SQLite FTS5
database, one per :class:`SearchIndex`, filled from each context's live graph state and
brought up to date at the start of every search, so every write (by this process or
another) is visible to the next search, and deleting the index loses nothing.

Keeping in step costs one pass per searched context: the index keeps the ``name -> record``
dict it indexed and compares it with the live ``state.entities``, record object by record
object (the engine never changes a record in place: every change puts a new dict). Only
entities whose record changed are re-indexed (delete + insert); after a reload (another
process compacted the file) the records are new objects and are compared by content.

A process that indexed many entities saves the index to ``.coaia/.cache/search.index``
(derived, like the index itself): the SQLite database, and per context each entity's rowid
and a digest of the record it indexed. A new process starts from that file and re-indexes
only the entities whose live record has another digest (about 0.1 s instead of 0.75 s at
50,000 entities), so its first search does not pay for a full build.

Columns and BM25 weights: ``name`` 8, ``entityType`` 4, ``observations`` 2, ``metadata`` 1
(metadata values and any other keys other tools wrote, flattened to text), plus ``facets``
(weight 0), exact tokens for the context and entity type filters. Tokenizer:
``unicode61 remove_diacritics 2`` (case- and accent-insensitive).
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, Field

from ..errors import CoaiaError, InvalidInputError
from ..graph.paging import Pager
from ..graph.state import RECORD_META_KEYS, entity_view
from ..models import Entity
from ..storage.cachefile import CacheFile
from ..storage.lines import Record

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger(__name__)

MAX_LIMIT = 100
MAX_QUERY_WORDS = 32
SNIPPET_TOKENS = 12
MARK_OPEN, MARK_CLOSE, ELLIPSIS = "**", "**", "…"
FIELDS = ("name", "entityType", "observations", "metadata")
WEIGHTS = (8.0, 4.0, 2.0, 1.0)
SNIPPET_PREFERENCE = ("observations", "metadata", "name", "entityType")  # the name is in the hit already
TEXT_SEPARATOR = " | "  # between observations, and between metadata values
_TOKENIZER = "unicode61 remove_diacritics 2"
_NOT_TEXT_KEYS = RECORD_META_KEYS | {"type", "name", "entityType", "observations"}
_WORD = re.compile(r"[^\W_]+")
_OPEN, _CLOSE = "\x02", "\x03"  # mark matches in snippet(); control characters, never in a token
_INSERT = f"INSERT INTO entities(rowid, {', '.join(FIELDS)}, facets, key) VALUES (?, ?, ?, ?, ?, ?, ?)"
_SNIPPETS = ", ".join(
    f"snippet(entities, {i}, '{_OPEN}', '{_CLOSE}', '{ELLIPSIS}', {SNIPPET_TOKENS})" for i in range(len(FIELDS))
)
# ORDER BY rank alone lets FTS5 sort, so snippets are made only for the rows returned (ties: deterministic).
_PAGE = f"SELECT key, rank, {_SNIPPETS} FROM entities WHERE entities MATCH ? ORDER BY rank LIMIT ? OFFSET ?"
CACHE_FILE = "search.index"
CACHE_AFTER_ROWS = 2000  # entities indexed before the index is worth saving
# What the saved rows depend on: change "search-1" whenever _row() changes what it indexes.
_CACHE_KEY = ("search-1", _TOKENIZER, FIELDS, WEIGHTS, sqlite3.sqlite_version)

Match = Literal["all", "any"]


class SearchUnavailableError(CoaiaError):
    """This Python's SQLite was built without FTS5, which search needs."""


def _fts5_problem() -> str | None:
    try:
        with sqlite3.connect(":memory:") as db:
            db.execute(f"CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='{_TOKENIZER}')")
    except sqlite3.Error as exc:
        return (
            f"full-text search needs SQLite with FTS5 and the unicode61 tokenizer's remove_diacritics 2 "
            f"(SQLite >= 3.27), but this Python's SQLite {sqlite3.sqlite_version} says: {exc}. "
            "Use a Python whose sqlite3 module has FTS5 (python.org and most distributions' builds do)"
        )
    return None


FTS5_PROBLEM: str | None = _fts5_problem()  # checked once, at import


# ---------------------------------------------------------------- results


class SearchHit(BaseModel):
    entity: Entity
    score: float = Field(description="BM25 relevance; higher is better. Comparable within one search only.")
    snippet: str = Field(description=f"A few words around the match, matches between {MARK_OPEN!r} and {MARK_CLOSE!r}.")
    matched: list[str] = Field(description="Fields holding a match: name, entityType, observations, metadata.")


class SearchPage(BaseModel):
    hits: list[SearchHit]
    total: int = Field(description="Entities matching across all pages.")
    nextCursor: str | None = Field(None, description="Pass as cursor to get the next page; null on the last page.")
    match: Match = Field(
        "all", description="'all': every word matched; 'any': no entity held every word, so these hold some of them."
    )


# ---------------------------------------------------------------- query text


def _words(text: str) -> list[str]:
    """The words of a user's query, as the tokenizer splits them (operators are just words)."""
    return _WORD.findall(text)[:MAX_QUERY_WORDS]


def _expression(words: Sequence[str], match: Match, context: str | None, types: Sequence[str] | None) -> str:
    """A safe FTS5 expression: each word a quoted prefix term in the text fields, joined by
    AND or OR, and the filters as exact terms of the ``facets`` column (never user syntax)."""
    terms = (" AND " if match == "all" else " OR ").join(map(_term, words))
    parts = [f"{{{' '.join(FIELDS)}}} : ({terms})"]
    if context is not None:
        parts.append(f"facets : {_facet('c', context)}")
    if types is not None:
        parts.append(f"facets : ({' OR '.join(_facet('t', t) for t in types)})")
    return " AND ".join(parts)


def _term(word: str) -> str:
    """A quoted term: a prefix, except a single character (which would match too many words)."""
    return '"' + word.replace('"', '""') + ('"*' if len(word) > 1 else '"')


def _facet(kind: str, value: str) -> str:
    """One exact token standing for a context (``c``) or an entity type (``t``)."""
    return kind + value.encode("utf-8", "surrogatepass").hex()


# ---------------------------------------------------------------- records as text


def _flatten(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _flatten(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _flatten(item)


def _row(rowid: int, context: str, record: Record) -> tuple[int, str, str, str, str, str, str]:
    name = record["name"]
    observations = TEXT_SEPARATOR.join(str(o) for o in record.get("observations") or [])
    other = TEXT_SEPARATOR.join(_flatten({k: v for k, v in record.items() if k not in _NOT_TEXT_KEYS}))
    entity_type = str(record.get("entityType") or record.get("type"))  # as entity_view shows it
    facets = f"{_facet('c', context)} {_facet('t', entity_type)}"
    key = json.dumps([context, name])  # ASCII: exact even for text SQLite cannot hold
    return rowid, _storable(name), _storable(entity_type), _storable(observations), _storable(other), facets, key


def _storable(text: str) -> str:
    """Text SQLite accepts: other tools' files may hold unpaired surrogates (JSON ``\\ud800``)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode()
    return text


# ---------------------------------------------------------------- keeping in step


@dataclass
class _Indexed:
    """What the index holds for one context."""

    records: dict[str, Record] = field(default_factory=dict)  # name -> record as indexed, in the state's order
    rowids: dict[str, int] = field(default_factory=dict)


@dataclass
class _Change:
    snapshot: dict[str, Record]
    changed: list[str]
    removed: list[str]


def _diff(indexed: dict[str, Record], entities: dict[str, Record]) -> _Change | None:
    """What differs between the index and the live state (run under the journal's lock).

    Records are compared by identity, position by position (C speed): the engine keys each
    record by its own name and never changes one in place, an update keeps its position, and
    the index holds every record it compares, so an ``id`` cannot be reused meanwhile. After
    a deletion positions shift: the suspects are then checked by name, and by content when
    a reload brought equal records as new objects.
    """
    if len(entities) == len(indexed) and all(map(operator.is_, entities.values(), indexed.values())):
        return None
    snapshot = dict(entities)
    suspects = compress(snapshot, map(operator.is_not, snapshot.values(), chain(indexed.values(), repeat(None))))
    changed = [n for n in suspects if (old := indexed.get(n)) is not snapshot[n] and old != snapshot[n]]
    added = sum(n not in indexed for n in changed)
    removed = list(indexed.keys() - snapshot.keys()) if len(indexed) + added > len(snapshot) else []
    return _Change(snapshot, changed, removed)


def _diff_digests(digests: dict[str, bytes], entities: dict[str, Record]) -> _Change:
    """What differs between rows restored from the cache (by digest) and the live state."""
    changed = [n for n, record in entities.items() if digests.get(n) != _digest(record)]
    removed = [n for n in digests if n not in entities]
    return _Change(entities, changed, removed)


def _digest(record: Record) -> bytes:
    try:
        data = orjson.dumps(record)
    except TypeError:  # what orjson refuses (lone surrogates from other tools' files)
        data = json.dumps(record).encode()
    return hashlib.blake2b(data, digest_size=8).digest()


# ---------------------------------------------------------------- the index


class SearchIndex:
    """Ranked full-text search over a :class:`Store`'s entities. Safe to share between threads."""

    def __init__(self, store: Store, *, cache_after_rows: int = CACHE_AFTER_ROWS) -> None:
        """``cache_after_rows``: save the index to ``.coaia/.cache/`` once this many entities were
        indexed since it was last saved or loaded."""
        if FTS5_PROBLEM:
            raise SearchUnavailableError(FTS5_PROBLEM)
        self._store = store
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._cache = CacheFile(store.path, CACHE_FILE, store.io)
        self._cache_after_rows = cache_after_rows
        self._unsaved_rows = 0
        self._restored: dict[str, dict[str, bytes]] | None = None  # digests of cached rows not yet checked
        self.reused_rows = 0  # entities whose row came from the saved index instead of being indexed again
        self._create_table()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def refresh(self) -> None:
        """Bring the index up to date with every context now (a server does this at start, in a thread)."""
        with self._lock:
            self._sync(None)

    def rebuild(self) -> None:
        """Forget everything indexed; the next search indexes every context it reads afresh."""
        with self._lock:
            self._db.execute("DROP TABLE entities")
            self._create_table()
            self._restored = {}

    def _create_table(self) -> None:
        columns = ", ".join(FIELDS)
        self._db.execute(
            f"CREATE VIRTUAL TABLE entities USING fts5({columns}, facets, key UNINDEXED, tokenize='{_TOKENIZER}')"
        )
        weights = ", ".join(map(str, WEIGHTS))
        self._db.execute(f"INSERT INTO entities(entities, rank) VALUES ('rank', 'bm25({weights}, 0, 0)')")
        self._indexed: dict[str, _Indexed] = {}
        self._next_rowid = 1

    # ------------------------------------------------------------- searching

    def search(
        self,
        query: str,
        *,
        context: str | None = None,
        entity_types: Iterable[str] | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> SearchPage:
        """Entities matching the words of ``query`` (each a prefix), best first.

        Every word must match (in any field); if no entity holds them all, entities holding
        any of them are returned, with ``match="any"``. ``context=None`` searches every
        context; ``entity_types`` keeps only those types.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInputError(f"limit must be between 1 and {MAX_LIMIT} (got {limit})")
        if isinstance(entity_types, str):
            entity_types = [entity_types]
        types = sorted(set(entity_types)) if entity_types is not None else None
        words = _words(query)
        pager = Pager("search", [w.casefold() for w in words], context, types)
        with self._lock:
            self._sync(context)
            if not words or types == []:
                return SearchPage(hits=[], total=0)
            expressions: dict[Match, str] = {m: _expression(words, m, context, types) for m in ("all", "any")}
            return self._page(expressions, limit, cursor, pager)

    def _sync(self, context: str | None) -> None:
        """Bring the contexts searched up to date (and drop contexts whose file is gone)."""
        if self._restored is None:
            self._restored = self._load_cache()
        contexts = self._store.contexts() if context is None else [self._store.graph(context).context]
        stale = [c for c in self._indexed if c not in contexts] if context is None else []  # e.g. a file removed
        for name in [*contexts, *stale]:
            known = self._indexed.setdefault(name, _Indexed())
            graph = self._store.graph(name)
            digests = self._restored.pop(name, None)
            if digests is None:
                change = graph.read(
                    lambda state: _diff(known.records, state.entities)
                )  # called at once, in this iteration
            else:  # records are immutable: the digests are computed outside the journal's lock
                change = _diff_digests(digests, graph.read(lambda state: dict(state.entities)))
                self.reused_rows += len(change.snapshot) - len(change.changed)
            if change is not None:
                self._apply(name, known, change)
            if name in stale and not known.records:
                del self._indexed[name]
        self._maybe_save_cache()

    def _load_cache(self) -> dict[str, dict[str, bytes]]:
        """Start from the saved index, if there is one; returns the digests of the rows it holds."""
        found = self._cache.load(lambda key: key == _CACHE_KEY)
        if found is None:
            return {}
        next_rowid, contexts, db = found[1]
        try:
            self._db.deserialize(db)
        except sqlite3.Error as exc:
            log.info("%s ignored (%s); indexing from the data files", CACHE_FILE, exc)
            self._create_table()
            return {}
        self._next_rowid = next_rowid
        self._indexed = {c: _Indexed(rowids={n: row[0] for n, row in rows.items()}) for c, rows in contexts.items()}
        return {c: {n: row[1] for n, row in rows.items()} for c, rows in contexts.items()}

    def _maybe_save_cache(self) -> None:
        if self._unsaved_rows < self._cache_after_rows or self._restored:
            return  # not worth it yet, or some restored rows are not checked yet (their records are not known)
        contexts = {
            c: {n: (known.rowids[n], _digest(r)) for n, r in known.records.items()}
            for c, known in self._indexed.items()
        }
        self._cache.save(_CACHE_KEY, (self._next_rowid, contexts, self._db.serialize()))
        self._unsaved_rows = 0

    def _apply(self, context: str, known: _Indexed, change: _Change) -> None:
        doomed = [(known.rowids[n],) for n in (*change.removed, *change.changed) if n in known.rowids]
        first = self._next_rowid
        rowids = {n: first + i for i, n in enumerate(change.changed)}
        rows = (_row(rowids[n], context, change.snapshot[n]) for n in change.changed)
        self._db.execute("BEGIN")
        try:
            self._db.executemany("DELETE FROM entities WHERE rowid = ?", doomed)
            self._db.executemany(_INSERT, rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._next_rowid = first + len(rowids)
        self._unsaved_rows += len(rowids)
        for n in change.removed:
            del known.rowids[n]
        known.rowids.update(rowids)
        known.records = change.snapshot

    def _page(self, expressions: dict[Match, str], limit: int, cursor: str | None, pager: Pager) -> SearchPage:
        match: Match = "all"
        total = self._count(expressions[match])
        if total == 0 and expressions["any"] != expressions["all"]:
            match = "any"
            total = self._count(expressions[match])
        offset = pager.offset(cursor, total)
        rows = self._db.execute(_PAGE, (expressions[match], limit, offset)).fetchall()
        hits = [self._hit(*row) for row in rows]
        end = offset + len(hits)
        return SearchPage(hits=hits, total=total, nextCursor=pager.cursor(end, total), match=match)

    def _count(self, expression: str) -> int:
        row = self._db.execute("SELECT count(*) FROM entities WHERE entities MATCH ?", (expression,)).fetchone()
        return int(row[0])

    def _hit(self, key: str, rank: float, *snippets: str) -> SearchHit:
        context, name = json.loads(key)
        record = self._indexed[context].records[name]
        found = {f: text for f, text in zip(FIELDS, snippets, strict=True) if _OPEN in text}
        best = next((found[f] for f in SNIPPET_PREFERENCE if f in found), "")
        snippet = best.replace(_OPEN, MARK_OPEN).replace(_CLOSE, MARK_CLOSE)
        return SearchHit(entity=entity_view(record, context), score=-rank, snippet=snippet, matched=list(found))
