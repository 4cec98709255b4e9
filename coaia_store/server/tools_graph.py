"""The knowledge-graph tools: create and relate entities, add, change and delete what they hold, open them by
name, browse the graph a page at a time, and ranked full-text search."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from ..graph.paging import REPLY_BUDGET
from ..models import Entity, EntityInput, ObservationDeletion, ObservationsInput, Relation, RelationInput
from ..search.index import MAX_LIMIT, SearchIndex
from ..store import Store
from .arguments import ContextArg, Cursor, WriteContext
from .hints import ADD, CHANGE, READ, Tool
from .replies import as_data, bounded, compact_json, reply

SUMMARY_TEXT = 160


def _shape(e: Entity, mode: str) -> dict[str, Any]:
    if mode == "names":
        return {"name": e.name, "entityType": e.entityType, "context": e.context}
    if mode == "summary":
        first = e.observations[0] if e.observations else ""
        return {
            "name": e.name,
            "entityType": e.entityType,
            "context": e.context,
            "observationCount": len(e.observations),
            "firstObservation": first if len(first) <= SUMMARY_TEXT else first[:SUMMARY_TEXT] + "…",
        }
    return e.model_dump(mode="json", by_alias=True, exclude_none=True)


class GraphTools:
    """The graph tools over one store and its search index."""

    def __init__(self, store: Store, index: SearchIndex) -> None:
        self.store = store
        self.index = index

    def tools(self) -> dict[str, Tool]:
        return {
            "create_entity": (self.create_entity, ADD),
            "add_relation": (self.add_relation, ADD),
            "add_observations": (self.add_observations, ADD),
            "update_entity": (self.update_entity, CHANGE),
            "delete_from_graph": (self.delete_from_graph, CHANGE),
            "open_entities": (self.open_entities, READ),
            "read_graph": (self.read_graph, READ),
            "search": (self.search, READ),
        }

    def create_entity(
        self,
        entities: Annotated[list[EntityInput], Field(min_length=1)],
        ifExists: Annotated[
            Literal["error", "skip"], Field(description="A name holding other content: fail, or skip it.")
        ] = "error",  # noqa: N803
        context: WriteContext = None,
    ) -> CallToolResult:
        """Create one or many entities in one atomic call; identical repeats are reported unchanged. To add facts
        to an existing entity use add_observations; to rename or retype it, update_entity."""
        result = self.store.create_entities(entities, context=context, if_exists=ifExists)
        return reply(
            {
                "operationId": result.operationId,
                "created": [e.name for e in result.created],
                "unchanged": result.unchanged,
                "skipped": result.skipped,
            }
        )

    def add_relation(
        self,
        relations: Annotated[list[RelationInput], Field(min_length=1, description="relationType in active voice.")],
        context: WriteContext = None,
    ) -> CallToolResult:
        """Relate existing entities, one or many; both ends must exist in the context."""
        result = self.store.create_relations(relations, context=context)
        return reply(
            {"operationId": result.operationId, "created": len(result.created), "unchanged": len(result.unchanged)}
        )

    def add_observations(self, observations: list[ObservationsInput], context: WriteContext = None) -> CallToolResult:
        """Append observations (facts) to existing entities; ones already present are skipped."""
        return reply(self.store.add_observations(observations, context=context))

    def update_entity(
        self,
        name: str,
        newName: Annotated[str | None, Field(description="Rename; relations follow.")] = None,  # noqa: N803
        entityType: str | None = None,  # noqa: N803
        observations: Annotated[list[str] | None, Field(description="Replaces ALL observations.")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Merged by key; null removes a key.")] = None,
        context: WriteContext = None,
    ) -> CallToolResult:
        """Rename, retype, replace the observations of, or merge metadata into one entity."""
        change = {
            "name": name,
            "newName": newName,
            "entityType": entityType,
            "observations": observations,
            "metadata": metadata,
        }
        result = self.store.update_entity({k: v for k, v in change.items() if v is not None}, context=context)
        return reply(
            {
                "operationId": result.operationId,
                "changed": result.changed,
                "name": result.entity.name,
                "relationsMoved": result.relationsMoved,
            }
        )

    def delete_from_graph(
        self,
        entities: Annotated[list[str], Field(description="Entity names; their relations go too.")] = [],  # noqa: B006
        observations: list[ObservationDeletion] = [],  # noqa: B006
        relations: list[RelationInput] = [],  # noqa: B006
        context: WriteContext = None,
    ) -> CallToolResult:
        """Delete entities, observations and/or relations in one atomic write. Destructive (undo reverts it)."""
        return reply(
            self.store.delete_from_graph(
                entities=entities, observations=observations, relations=relations, context=context
            )
        )

    def open_entities(
        self, names: Annotated[list[str], Field(min_length=1)], context: ContextArg = None
    ) -> CallToolResult:
        """Entities by exact name, with every relation touching them. Use search to find names."""
        data = as_data(self.store.open_entities(names, context=context))
        data = bounded(data, "relations", "open fewer entities at a time")
        return reply(bounded(data, "entities", "open fewer entities at a time"))

    def read_graph(
        self,
        mode: Annotated[
            Literal["full", "summary", "names"], Field(description="names; summary (first observation); full.")
        ] = "summary",
        entityTypes: list[str] | None = None,  # noqa: N803
        context: ContextArg = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 100,
        cursor: Cursor = None,
        asOf: Annotated[str | None, Field(description="The graph as it was then.")] = None,  # noqa: N803
    ) -> CallToolResult:
        """Browse the graph a page at a time, now or as of a past moment; a page stops early rather than grow too
        long, and says how many entities remain."""
        page = self.store.read_graph(context=context, entity_types=entityTypes, limit=limit, cursor=cursor, as_of=asOf)
        shaped, relations = _fitting_page(page.entities, page.relations if mode == "full" else [], mode)
        pager = self.store.graph_pager(context, entityTypes, asOf)
        end = pager.offset(cursor, page.totalEntities) + len(shaped)
        data = {
            "mode": mode,
            "entities": shaped,
            "relations": relations,
            "totalEntities": page.totalEntities,
            "returned": len(shaped),
            "remaining": page.totalEntities - end,
            "nextCursor": pager.cursor(end, page.totalEntities),
        }
        return reply(bounded(data, "relations", "open_entities on one entity lists all of its relations"))

    def search(
        self,
        query: Annotated[str, Field(description="Words; each matches as a prefix.")],
        entityTypes: list[str] | None = None,  # noqa: N803
        context: ContextArg = None,
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 20,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """Ranked full-text search (BM25) over names, types, observations and metadata: every word must match,
        else entities holding any. Each hit has a score and snippet; open_entities gives its relations."""
        page = self.index.search(query, context=context, entity_types=entityTypes, limit=limit, cursor=cursor)
        return reply(bounded(as_data(page), "hits", "pass a smaller limit"))


def _fitting_page(
    entities: list[Entity], relations: list[Relation], mode: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The page's entities shaped for ``mode``, each with the relations leaving it, stopping early (after at
    least one) rather than grow past the reply budget."""
    leaving: dict[tuple[str, str], list[Relation]] = {}
    for relation in relations:
        leaving.setdefault((relation.context, relation.from_), []).append(relation)
    shaped: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    size = 0
    for entity in entities:
        item = _shape(entity, mode)
        own = [as_data(r) for r in leaving.get((entity.context, entity.name), [])]
        size += len(compact_json(item)) + len(compact_json(own))
        if shaped and size > REPLY_BUDGET - 1000:
            break
        shaped.append(item)
        kept += own
    return shaped, kept
