"""The library's front door: :class:`Store`, a ``.coaia`` directory with its graph API, backups, history and health.

The graph API itself is :class:`~coaia_store.graph.graphstore.GraphStore`'s; the facade adds what needs the
safety layer (backups after writes, the past through :class:`~coaia_store.safety.history.History`) or the charts
(the chart checks of :meth:`Store.status` and :func:`validate_integrity`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from itertools import groupby
from pathlib import Path

from .charts.checks import chart_findings
from .errors import CoaiaError, InvalidInputError
from .graph.capacity import capacity
from .graph.config import StoreConfig
from .graph.context_graph import Graph
from .graph.graphstore import GraphStore
from .graph.metrics import CallMetrics
from .graph.paging import Pager
from .graph.state import GraphState, entity_view, relation_view
from .models import ContextInfo, GraphPage, LastBackups, StoreStatus
from .safety.backup import Backups
from .safety.backupfiles import BackupInfo
from .safety.history import History, PastGraph
from .safety.integrity import (
    IntegrityReport,
    check_integrity,
    context_problems,
    lost_contexts,
    problems_outside_contexts,
)
from .storage.clock import Clock
from .storage.fileio import FileIO
from .storage.lines import FORMAT_VERSION, Record
from .storage.prefix import Prefix

_SHOWN_CONFLICTS = 20


class Store(GraphStore):
    """A ``.coaia`` directory: contexts, each an append-only JSONL knowledge graph, with its backups and history."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        home: Path | None = None,
        config: StoreConfig | None = None,
        io: FileIO | None = None,
        clock: Clock | None = None,
        background_backups: bool = False,
    ) -> None:
        super().__init__(directory, env=env, cwd=cwd, home=home, config=config, io=io, clock=clock)
        self.backups = Backups(self, background=background_backups)  # daily/weekly/pre-operation, in .backup/
        self.calls = CallMetrics()  # fed by the MCP server's tool wrapper

    def __enter__(self) -> Store:
        return self

    def close(self) -> None:
        super().close()
        self.backups.close()

    def _after_write(self, context: str) -> None:
        self.backups.after_write(context)

    def _before_compaction(self, context: str, prefix: Prefix) -> None:
        self.backups.before_compaction(context, prefix)

    def read_graph(
        self,
        *,
        context: str | None = None,
        entity_types: Iterable[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        as_of: str | None = None,
    ) -> GraphPage:
        """A page of entities (in context order, then creation order) and the relations leaving them.

        ``as_of`` (an ISO date-time with timezone, or a date): the graph as it was then, from history.
        """
        types = set(entity_types) if entity_types is not None else None
        if limit is not None and limit < 1:
            raise InvalidInputError(f"limit must be at least 1 (got {limit})")
        matches: list[tuple[Graph | PastGraph, Record]] = []
        for graph in self._reading(context) if as_of is None else History(self).past_graphs(context, as_of):
            records = graph.read(lambda state: list(state.entities.values()))  # read now, under the lock
            matches.extend((graph, r) for r in records if types is None or _entity_type(r) in types)
        pager = self.graph_pager(context, entity_types, as_of)
        offset = pager.offset(cursor, len(matches))
        end = len(matches) if limit is None else min(len(matches), offset + limit)
        result = GraphPage(
            entities=[], relations=[], totalEntities=len(matches), nextCursor=pager.cursor(end, len(matches))
        )
        for graph, group in groupby(matches[offset:end], key=lambda m: m[0]):
            graph.read(
                lambda state, graph=graph, records=[r for _, r in group]: _add_page(result, state, graph, records)
            )
        return result

    def graph_pager(
        self, context: str | None = None, entity_types: Iterable[str] | None = None, as_of: str | None = None
    ) -> Pager:
        """The cursors of :meth:`read_graph` with these arguments (for a caller that cuts its pages shorter)."""
        return Pager("read_graph", context, sorted(set(entity_types)) if entity_types is not None else None, as_of)

    def status(self) -> StoreStatus:
        """Where the data lives and why, and whether every context is healthy: degraded whenever there is a
        problem that ``validate_integrity`` would also report (it reads the backups through; status only
        checks that the newest daily and weekly files are there, with their size)."""
        infos = self.list_contexts()
        conflicts = self.conflicts()
        taken, manifest_problem = self.backups.listing()  # the manifest, read once; oldest first
        problems = [p for info in infos for p in _problems(info)]
        by_context: dict[str, list[BackupInfo]] = {}
        for b in taken:
            by_context.setdefault(b.context, []).append(b)
        problems += [
            p
            for info in infos
            for p in context_problems(
                self, self.backups, self.graph(info.name), by_context.get(info.name, []), chart_findings
            )
        ]
        problems += lost_contexts(taken, {info.name for info in infos}) + (
            [manifest_problem] if manifest_problem else []
        )
        return StoreStatus(
            directory=str(self.path),
            reason=self.location.reason,
            formatVersion=FORMAT_VERSION,
            fsync=self.config.fsync,
            contexts=infos,
            backups=[_last_backups(info.name, by_context.get(info.name, [])) for info in infos],
            degraded=bool(problems),
            problems=problems,
            tools=self.calls.snapshot(),
            capacity=capacity(self),
            conflicts=conflicts[:_SHOWN_CONFLICTS],
            conflictCount=len(conflicts),
            git=self.git_setup(),
        )

    def warnings(self, context: str | None = None) -> list[str]:
        """One line per problem of the context a call touched (``None``: every context loaded so far) and of
        the backup manifest, each naming the command that fixes it; for every tool reply, so an agent can tell
        its person. Cheap: the journals' catch-up check and a stat of each file, the manifest's stat, no scan."""
        with self._lock:
            graphs = [g for g in self._graphs.values() if context in (None, g.context)]
        found = []
        for graph in graphs:
            try:
                info = graph.journal.info()
            except CoaiaError:  # the call itself reports what went wrong
                continue
            if info.damage:
                lines = ", ".join(str(d.line) for d in info.damage[:5]) + (", ..." if len(info.damage) > 5 else "")
                found.append(
                    f"warning: context {graph.context!r} is degraded: {len(info.damage)} damaged line(s) in "
                    f"{info.path.name} (line {lines}) are skipped, their bytes kept; repair: coaia-store "
                    "validate --fix (or validate_integrity with repair: true)"
                )
            if info.read_only:
                found.append(f"warning: context {graph.context!r} is read-only: {info.read_only}")
            lost = self.backups.loss_warning(graph.context, info.path, info.exists)
            found += [f"warning: {lost}"] if lost else []
        manifest = self.backups.manifest_problem()
        return found + ([f"warning: {manifest}"] if manifest else [])

    def store_problems(self) -> list[str]:
        """Problems outside the context files validate reads: a context file that cannot be read (a link, a
        directory, a pipe, not JSONL), a context whose file is gone though a backup holds it, and an unreadable
        backup manifest (each with what to do)."""
        return problems_outside_contexts(self, self.backups)


def validate_integrity(store: Store, *, context: str | None = None, repair: bool = False) -> IntegrityReport:
    """Check every context (or one) and the backups; ``repair``: apply the safe repairs (see ``safety/integrity.py``)."""
    return check_integrity(store, store.backups, chart_findings, context=context, repair=repair)


def _last_backups(context: str, taken: list[BackupInfo]) -> LastBackups:
    kinds = {b.kind: b.time for b in taken}  # oldest first: the newest of each kind wins
    return LastBackups(
        context=context, daily=kinds.get("daily"), weekly=kinds.get("weekly"), latest=taken[-1].id if taken else None
    )


def _add_page(page: GraphPage, state: GraphState, graph: Graph | PastGraph, records: list[Record]) -> None:
    for record in records:
        name = record["name"]
        page.entities.append(entity_view(record, graph.context))
        page.relations += [relation_view(r, graph.context) for r in state.relations_of(name) if r["from"] == name]


def _entity_type(record: Record) -> str:
    return str(record.get("entityType") or record.get("type"))


def _problems(info: ContextInfo) -> list[str]:
    found = []
    if info.damagedLines:
        lines = ", ".join(str(d.line) for d in info.damagedLines)
        found.append(
            f"{info.file}: {len(info.damagedLines)} damaged line(s) skipped (line {lines}); "
            "their bytes are kept in .coaia/.recovery/quarantine/. Repair: coaia-store validate --fix "
            "(or the validate_integrity tool with repair: true)"
        )
    if info.tornTail:
        found.append(
            f"{info.file}: ends with {info.tornTail.length} bytes of an unfinished write; the next write repairs it"
        )
    if info.readOnly:
        found.append(f"{info.file}: read-only: {info.readOnly}")
    if info.unreadable:
        found.append(f"context {info.name!r} is unreadable and skipped: {info.unreadable}")
    if info.housekeeping:
        found.append(f"{info.file}: {info.housekeeping}")
    return found
