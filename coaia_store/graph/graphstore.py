"""The graph layer's whole store: a ``.coaia`` directory, its contexts' graphs and the graph API over them.

Mutations take ``context`` (default: ``"default"``). Reads take ``context`` too, where
``None`` means every context. Each context is loaded on first use and kept in step with
other processes by a cheap check on every call.

:class:`GraphStore` knows nothing of backups or history: the services of the safety layer take it,
and the :class:`~coaia_store.Store` facade builds on it, hooking its backups into every journal
(``_after_write``, ``_before_compaction``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..errors import ConflictError, InvalidInputError, os_errors_reported
from ..models import (
    AddObservationsResult,
    Conflict,
    ConflictValue,
    ContextInfo,
    CreateEntitiesResult,
    CreateRelationsResult,
    DamagedLine,
    DeleteResult,
    EntityInput,
    EntityUpdate,
    GitSetup,
    Name,
    ObservationDeletion,
    ObservationsInput,
    OpenResult,
    RelationInput,
    UpdateEntityResult,
)
from ..storage.caller import check_write
from ..storage.clock import Clock, iso_timestamp, utc_now
from ..storage.fileio import FileIO
from ..storage.hlc import HybridClock
from ..storage.journal import Journal, JournalHooks, JournalInfo
from ..storage.journal_reader import Damage
from ..storage.lines import Record
from ..storage.prefix import Prefix
from ..storage.recovery import Recovery
from .config import StoreConfig, describe_validation_error, load_config
from .context_graph import Graph, IfExists
from .contexts import DEFAULT_CONTEXT, context_path, discover_contexts, validate_context_name
from .gitsetup import is_shared, local_dir, union_merge, work_tree
from .location import StoreLocation, resolve_location
from .state import GraphState, entity_view, relation_view

_adapters: dict[Any, TypeAdapter[Any]] = {}


def _validated(kind: Any, value: object, what: str) -> Any:
    adapter = _adapters.get(kind)
    if adapter is None:
        adapter = _adapters[kind] = TypeAdapter(kind)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid {what}: {describe_validation_error(exc)}") from None


class GraphStore:
    """A ``.coaia`` directory: contexts, each an append-only JSONL knowledge graph."""

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
    ) -> None:
        self.location: StoreLocation = resolve_location(directory, env=env, cwd=cwd, home=home)
        self.config = config if config is not None else load_config(self.location.path)
        self.io = io or FileIO()
        self.clock = clock or utc_now
        self.hlc = HybridClock(self.clock)  # stamps _ts: never behind a record this process has read
        self.git_tree = work_tree(self.path)
        self.shared = is_shared(self.path)  # set up with init --git (a git work tree alone may be a dotfiles repo)
        self.local_dir = local_dir(self.path, env, home)  # backups and quarantine: outside the work tree if shared
        self.recovery = Recovery(self.local_dir, self.io, self.clock)
        self._graphs: dict[str, Graph] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.location.path

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for graph in self._graphs.values():
                graph.journal.close()
            self._graphs.clear()

    def _after_write(self, context: str) -> None:
        """Called by a context's journal after each write (the facade takes its automatic backups here)."""

    def _before_compaction(self, context: str, prefix: Prefix) -> None:
        """Called by a context's journal, under its write lock, before it rewrites ``prefix`` of its file."""

    # ------------------------------------------------------------- contexts

    def graph(self, context: str | None = None) -> Graph:
        name = DEFAULT_CONTEXT if context is None else validate_context_name(context)
        with self._lock:
            graph = self._graphs.get(name)
            if graph is None:
                path = context_path(self.path, name)
                graph = Graph(name, lambda state: self._journal(path, state, name), self.hlc.observe)
                self._graphs[name] = graph
            return graph

    def _journal(self, path: Path, state: GraphState, context: str) -> Journal:
        hooks = JournalHooks(
            before_write=lambda: check_write(context),
            after_write=lambda: self._after_write(context),
            before_compaction=lambda prefix: self._before_compaction(context, prefix),
        )
        settings = self.config.journal_settings()
        if self.shared:  # rewriting a file would delete lines other clones still merge against
            settings = replace(settings, auto_compaction=False)
        return Journal(
            path,
            sink=state,
            io=self.io,
            settings=settings,
            recovery=self.recovery,
            clock=self.hlc,
            hooks=hooks,
            wall_clock=self.clock,
        )

    def contexts(self) -> list[str]:
        """Contexts with a readable file in the directory, ``default`` first.

        A context whose file is not a regular file (a link, a directory, a pipe) or not JSONL is
        left out of every scan; :meth:`list_contexts` and :meth:`status` report it with what to do.
        """
        return [c for c in self._all_contexts() if self.graph(c).journal.unreadable() is None]

    def unreadable_contexts(self) -> dict[str, str]:
        """The contexts :meth:`contexts` leaves out, each with why and what to do."""
        return {c: why for c in self._all_contexts() if (why := self.graph(c).journal.unreadable()) is not None}

    def _all_contexts(self) -> list[str]:
        with os_errors_reported(f"could not list {self.path}", "retry; if it persists check the disk"):
            try:
                names = self.io.listdir(self.path)
            except FileNotFoundError:
                return []
        return discover_contexts(names)

    def _reading(self, context: str | None) -> list[Graph]:
        return [self.graph(c) for c in (self.contexts() if context is None else [context])]

    # ------------------------------------------------------------- mutations

    def create_entities(
        self,
        entities: Sequence[EntityInput | Mapping[str, Any]],
        *,
        context: str | None = None,
        if_exists: IfExists = "error",
    ) -> CreateEntitiesResult:
        """Create entities; an existing name with the same content is reported ``unchanged``.

        An existing name with other content is an error (``if_exists="error"``) or left
        alone and reported ``skipped`` (``if_exists="skip"``, the official server's rule).
        """
        items = _validated(list[EntityInput], entities, "entities")
        return self.graph(context).create_entities(items, if_exists)

    def add_observations(
        self, observations: Sequence[ObservationsInput | Mapping[str, Any]], *, context: str | None = None
    ) -> AddObservationsResult:
        """Append observations; ones already present are not added twice."""
        items = _validated(list[ObservationsInput], observations, "observations")
        return self.graph(context).add_observations(items)

    def delete_observations(
        self, deletions: Sequence[ObservationDeletion | Mapping[str, Any]], *, context: str | None = None
    ) -> DeleteResult:
        items = _validated(list[ObservationDeletion], deletions, "deletions")
        return self.graph(context).delete_observations(items)

    def delete_entities(self, names: Sequence[str], *, context: str | None = None) -> DeleteResult:
        """Delete entities and every relation that touches them."""
        return self.graph(context).delete_entities(_validated(list[Name], names, "entity names"))

    def update_entity(
        self, change: EntityUpdate | Mapping[str, Any], *, context: str | None = None
    ) -> UpdateEntityResult:
        """Rename, retype, replace observations or merge metadata; relations follow a rename."""
        return self.graph(context).update_entity(_validated(EntityUpdate, change, "update"))

    def create_relations(
        self, relations: Sequence[RelationInput | Mapping[str, Any]], *, context: str | None = None
    ) -> CreateRelationsResult:
        """Create relations between existing entities; existing relations are reported ``unchanged``."""
        items = _validated(list[RelationInput], relations, "relations")
        return self.graph(context).create_relations(items)

    def delete_relations(
        self, relations: Sequence[RelationInput | Mapping[str, Any]], *, context: str | None = None
    ) -> DeleteResult:
        items = _validated(list[RelationInput], relations, "relations")
        return self.graph(context).delete_relations(items)

    def delete_from_graph(
        self,
        *,
        entities: Sequence[str] = (),
        observations: Sequence[ObservationDeletion | Mapping[str, Any]] = (),
        relations: Sequence[RelationInput | Mapping[str, Any]] = (),
        context: str | None = None,
    ) -> DeleteResult:
        """Delete entities, observations and relations in one atomic write."""
        if not (entities or observations or relations):
            raise InvalidInputError("nothing to delete: pass entities, observations and/or relations")
        return self.graph(context).delete_from_graph(
            _validated(list[Name], entities, "entity names"),
            _validated(list[ObservationDeletion], observations, "observations"),
            _validated(list[RelationInput], relations, "relations"),
        )

    def compact(self, context: str | None = None, *, force: bool = False) -> bool:
        """Rewrite a context's file to its current state (old file kept in ``history/``).

        In a store shared through git (``init --git``) this is refused unless ``force``: a compaction drops the versions that
        changes made meanwhile on other clones were based on, so their merge could no longer tell what
        each side changed. Force it only when every clone has pulled, and have each pull it before writing.
        """
        if self.shared and not force:
            raise ConflictError(
                f"{self.path} is shared through git: compaction is deferred, because it would "
                "delete lines that changes on other clones are based on. When every clone has pulled, compact "
                "with force (coaia-store compact --force), commit, and have every clone pull before writing again"
            )
        return self.graph(context).journal.compact()

    # ------------------------------------------------------------- reads

    def open_entities(self, names: Sequence[str], *, context: str | None = None) -> OpenResult:
        """Entities by name, with every relation that has one of them at either end."""
        wanted = list(dict.fromkeys(_validated(list[Name], names, "entity names")))
        result = OpenResult(entities=[], relations=[])
        found: set[str] = set()
        for graph in self._reading(context):

            def collect(state: GraphState, graph: Graph = graph) -> None:
                hits = [n for n in wanted if n in state.entities]
                found.update(hits)
                result.entities += [entity_view(state.entities[n], graph.context) for n in hits]
                keys = dict.fromkeys(k for n in hits for k in state.links.get(n, ()))
                result.relations += [relation_view(state.relations[k], graph.context) for k in keys]

            graph.read(collect)
        result.notFound = [n for n in wanted if n not in found]
        return result

    def list_contexts(self) -> list[ContextInfo]:
        """Every context with its counts, size, last change and health."""
        return [self._context_info(self.graph(c)) for c in self._all_contexts()]

    def conflicts(self, context: str | None = None, *, settled: bool = False) -> list[Conflict]:
        """Fields two clones changed without seeing each other's change (found after a git merge).

        Open ones (``settled=False``): the later value is in effect until someone writes the field
        again. ``settled=True`` adds the ones a later write was based on (kept through compactions).
        """
        found = []
        for graph in self._reading(context):
            for target, settled_by, item in graph.read(GraphState.conflicts):
                if settled_by is None or settled:
                    found.append(_conflict(graph.context, target, item, settled_by))
        return found

    def git_setup(self) -> GitSetup | None:
        """How ``.coaia/`` is shared through git (``None``: not in a git work tree)."""
        if self.git_tree is None:
            return None
        advice = []
        if not self.shared or not union_merge(self.path):
            advice.append(
                f"{self.path} is inside the git work tree {self.git_tree} but not set up for it: run "
                f"coaia-store --dir {self.path} init --git (union merges for the chart files, backups and "
                "quarantine moved out of the work tree, where git clean cannot delete them)"
            )
        return GitSetup(
            repository=str(self.git_tree),
            unionMerge=union_merge(self.path),
            localDir=str(self.local_dir),
            advice=advice,
            autoCompaction="deferred: a compaction rewrites a file, deleting lines that other clones still merge "
            "against; run coaia-store compact --force only when every clone has pulled (see the git guide)"
            if self.shared
            else "on, as this store is not set up with init --git",
        )

    def _context_info(self, graph: Graph) -> ContextInfo:
        info: JournalInfo = graph.journal.info()
        counts = graph.read(lambda s: (len(s.entities), len(s.relations)))
        modified = None
        if info.exists and not info.unreadable:
            mtime = self.io.stat(info.path).st_mtime
            modified = iso_timestamp(datetime.fromtimestamp(mtime, UTC))
        return ContextInfo(
            name=graph.context,
            file=info.path.name,
            entities=counts[0],
            relations=counts[1],
            bytes=info.size,
            lastModified=modified,
            checksummed=info.checksummed,
            formatVersion=info.format_version,
            degraded=info.degraded,
            damagedLines=[_damaged_line(d) for d in info.damage],
            tornTail=_damaged_line(info.tail) if info.tail else None,
            readOnly=info.read_only,
            unreadable=info.unreadable,
            housekeeping=info.housekeeping,
        )


def _conflict(context: str, target: str, item: dict[str, Any], settled_by: Record | None) -> Conflict:
    return Conflict(
        context=context,
        target=target,
        field=item["field"],
        chosen=item["chosen"],
        values=[
            ConflictValue(value=v["value"], opId=v.get("op"), time=v.get("ts"), by=v.get("by")) for v in item["values"]
        ],
        settledBy=None if settled_by is None else settled_by.get("_op"),
    )


def _damaged_line(d: Damage) -> DamagedLine:
    return DamagedLine(line=d.line, offset=d.offset, length=d.length, problem=d.problem)
