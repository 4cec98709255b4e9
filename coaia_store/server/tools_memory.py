"""The official memory server's nine tools (the ``memory`` profile): its argument and result models, its reply
shape (``JSON.stringify(result, null, 2)`` as text, the object as structured content), each tool with an optional
``context``, so an agent set up for that server switches by changing its command line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from ..models import Entity, Relation
from ..search.index import MAX_LIMIT, SearchIndex
from ..store import Store
from .arguments import ContextArg, WriteContext
from .hints import ADD, CHANGE, READ, Tool
from .replies import compact_json


class MemoryEntity(BaseModel):
    name: str = Field(description="The name of the entity")
    entityType: str = Field(description="The type of the entity")
    observations: list[str] = Field(description="An array of observation contents associated with the entity")


class MemoryRelation(BaseModel):
    model_config = {"populate_by_name": True, "serialize_by_alias": True}
    from_: str = Field(alias="from", description="The name of the entity where the relation starts")
    to: str = Field(description="The name of the entity where the relation ends")
    relationType: str = Field(description="The type of the relation")


class MemoryObservationsInput(BaseModel):
    model_config = {"extra": "forbid"}
    entityName: str = Field(description="The name of the entity to add the observations to")
    contents: list[str] = Field(description="An array of observation contents to add")


class MemoryDeletion(BaseModel):
    model_config = {"extra": "forbid"}
    entityName: str = Field(description="The name of the entity containing the observations")
    observations: list[str] = Field(description="An array of observations to delete")


class MemoryEntities(BaseModel):
    entities: list[MemoryEntity]


class MemoryRelations(BaseModel):
    relations: list[MemoryRelation]


class MemoryAdded(BaseModel):
    entityName: str
    addedObservations: list[str]


class MemoryObservations(BaseModel):
    results: list[MemoryAdded]


class MemoryGraph(BaseModel):
    entities: list[MemoryEntity]
    relations: list[MemoryRelation]


class MemoryDone(BaseModel):
    success: bool
    message: str


MEMORY_GRAPH_BUDGET = 30_000  # characters of the compact graph: its pretty text and structured copy stay < 100 kB


def _official(text_value: Any, structured: BaseModel) -> CallToolResult:
    """The official server's reply: ``JSON.stringify(result, null, 2)`` as text, the object as structured content."""
    text = text_value if isinstance(text_value, str) else json.dumps(text_value, ensure_ascii=False, indent=2)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json", by_alias=True),
    )


def _done(message: str) -> CallToolResult:
    return _official(message, MemoryDone(success=True, message=message))


def _memory_entity(e: Entity) -> dict[str, Any]:
    return {"name": e.name, "entityType": e.entityType, "observations": e.observations}


def _memory_relation(r: Relation) -> dict[str, Any]:
    return {"from": r.from_, "to": r.to, "relationType": r.relationType}


def _within_budget(items: list[dict[str, Any]], size: int) -> tuple[list[dict[str, Any]], int]:
    """The first ``items`` that keep the running ``size`` within ``MEMORY_GRAPH_BUDGET``, and the size then."""
    kept = []
    for item in items:
        size += len(compact_json(item))
        if size > MEMORY_GRAPH_BUDGET:
            break
        kept.append(item)
    return kept, size


def _memory_graph(entities: Sequence[Entity], relations: Sequence[Relation]) -> CallToolResult:
    """A graph reply in the official shape, cut to ``MEMORY_GRAPH_BUDGET`` with a note of what was left out."""
    shown, size = _within_budget([_memory_entity(e) for e in entities], 0)
    names = {e["name"] for e in shown}
    links = [_memory_relation(r) for r in relations if r.from_ in names or r.to in names]
    kept_links, _ = _within_budget(links, size)
    graph = {"entities": shown, "relations": kept_links}
    result = _official(graph, MemoryGraph.model_validate(graph))
    if len(shown) < len(entities) or len(kept_links) < len(links):
        result.content.append(
            TextContent(
                type="text",
                text=(
                    f"Note: this reply holds {len(shown)} of {len(entities)} entities and {len(kept_links)} of {len(links)} "
                    "of their relations, to stay under the size hosts accept; use search_nodes or open_nodes for the rest."
                ),
            )
        )
    return result


class MemoryTools:
    """The nine tools over one store, named, described and shaped as the official memory server's."""

    def __init__(self, store: Store, index: SearchIndex) -> None:
        self.store = store
        self.index = index

    def tools(self) -> dict[str, Tool]:
        return {
            "create_entities": (self.create_entities, ADD),
            "create_relations": (self.create_relations, ADD),
            "add_observations": (self.add_observations, ADD),
            "delete_entities": (self.delete_entities, CHANGE),
            "delete_observations": (self.delete_observations, CHANGE),
            "delete_relations": (self.delete_relations, CHANGE),
            "read_graph": (self.read_graph, READ),
            "search_nodes": (self.search_nodes, READ),
            "open_nodes": (self.open_nodes, READ),
        }

    def create_entities(
        self, entities: list[MemoryEntity], context: WriteContext = None
    ) -> Annotated[CallToolResult, MemoryEntities]:
        """Create multiple new entities in the knowledge graph"""
        result = self.store.create_entities([e.model_dump() for e in entities], context=context, if_exists="skip")
        created = {e.name for e in result.created}
        new = [e.model_dump() for e in entities if e.name in created]
        return _official(new, MemoryEntities.model_validate({"entities": new}))

    def create_relations(
        self, relations: list[MemoryRelation], context: WriteContext = None
    ) -> Annotated[CallToolResult, MemoryRelations]:
        """Create multiple new relations between entities in the knowledge graph. Relations should be in active voice"""
        result = self.store.create_relations([r.model_dump(by_alias=True) for r in relations], context=context)
        new = [_memory_relation(r) for r in result.created]
        return _official(new, MemoryRelations.model_validate({"relations": new}))

    def add_observations(
        self, observations: list[MemoryObservationsInput], context: WriteContext = None
    ) -> Annotated[CallToolResult, MemoryObservations]:
        """Add new observations to existing entities in the knowledge graph"""
        result = self.store.add_observations([o.model_dump() for o in observations], context=context)
        added = [{"entityName": r.entityName, "addedObservations": r.addedObservations} for r in result.results]
        return _official(added, MemoryObservations.model_validate({"results": added}))

    def delete_entities(
        self,
        entityNames: Annotated[list[str], Field(description="An array of entity names to delete")],  # noqa: N803
        context: WriteContext = None,
    ) -> Annotated[CallToolResult, MemoryDone]:
        """Delete multiple entities and their associated relations from the knowledge graph"""
        self.store.delete_entities(entityNames, context=context)
        return _done("Entities deleted successfully")

    def delete_observations(
        self, deletions: list[MemoryDeletion], context: WriteContext = None
    ) -> Annotated[CallToolResult, MemoryDone]:
        """Delete specific observations from entities in the knowledge graph"""
        self.store.delete_observations([d.model_dump() for d in deletions], context=context)
        return _done("Observations deleted successfully")

    def delete_relations(
        self,
        relations: Annotated[list[MemoryRelation], Field(description="An array of relations to delete")],
        context: WriteContext = None,
    ) -> Annotated[CallToolResult, MemoryDone]:
        """Delete multiple relations from the knowledge graph"""
        self.store.delete_relations([r.model_dump(by_alias=True) for r in relations], context=context)
        return _done("Relations deleted successfully")

    def read_graph(self, context: ContextArg = None) -> Annotated[CallToolResult, MemoryGraph]:
        """Read the entire knowledge graph (a very large graph is cut short, with a note)"""
        page = self.store.read_graph(context=context)
        return _memory_graph(page.entities, page.relations)

    def search_nodes(
        self,
        query: Annotated[
            str, Field(description="The search query to match against entity names, types, and observation content")
        ],
        context: ContextArg = None,
    ) -> Annotated[CallToolResult, MemoryGraph]:
        """Search for nodes in the knowledge graph based on a query"""
        hits = self.index.search(query, context=context, limit=MAX_LIMIT).hits
        names = [h.entity.name for h in hits]
        opened = self.store.open_entities(names, context=context) if names else None
        return _memory_graph([h.entity for h in hits], opened.relations if opened else [])

    def open_nodes(
        self,
        names: Annotated[list[str], Field(description="An array of entity names to retrieve")],
        context: ContextArg = None,
    ) -> Annotated[CallToolResult, MemoryGraph]:
        """Open specific nodes in the knowledge graph by their names"""
        result = self.store.open_entities(names, context=context)
        return _memory_graph(result.entities, result.relations)
