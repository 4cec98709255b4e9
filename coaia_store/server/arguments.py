"""Strict arguments: the argument types the tools share, the refusal of an argument a tool does not take (with
the nearest valid name), and the text of a validation error. A refused call writes nothing."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field, ValidationError

from ..graph.config import describe_validation_error

ContextArg = Annotated[str | None, Field(description="Context (life domain), e.g. 'work'; omitted: every context.")]
WriteContext = Annotated[str | None, Field(description="Context to write to; omitted: 'default'.")]
ChartContext = Annotated[str | None, Field(description="Context holding it; omitted: found in any.")]
ChartId = Annotated[str, Field(description="A chart id ('chart_...').")]
StepName = Annotated[str, Field(description="An action step's name ('<chartId>_action_N').")]
Limit = Annotated[int, Field(ge=1, le=100)]
Cursor = Annotated[str | None, Field(description="nextCursor of the previous page.")]
DueDate = Annotated[str | None, Field(description="ISO date, or date-time with timezone.")]

# Arguments of the 0.1 tools that have another name now (see CHANGELOG.md).
RENAMED = {
    "progressNote": "note",
    "addToCurrentReality": "noteToReality",
    "observations": "addToReality",
    "includeSubCharts": "topLevelOnly",
    "names": "entities",
    "deletions": "observations",
    "opIds": "operationId",
    "count": "operationId",
    "actionStep": "target",
    "chartId": "target",
    "name": "entity",
}


def _normal(name: str) -> str:
    return name.replace("_", "").replace("-", "").casefold()


def unknown_argument_error(tool: str, given: Sequence[str], schema: dict[str, Any]) -> str | None:
    """The refusal of arguments ``tool`` does not take: each named, with the nearest valid name and the list."""
    valid = list(schema.get("properties") or {})
    unknown = [g for g in given if g not in valid]
    if not unknown:
        return None
    by_normal = {_normal(v): v for v in valid}
    parts = []
    for name in unknown:
        renamed = RENAMED.get(name)
        near = (
            [_normal(renamed)]
            if renamed is not None and renamed in valid
            else difflib.get_close_matches(_normal(name), list(by_normal), n=1, cutoff=0.6)
        )
        hint = f"; did you mean '{by_normal[near[0]]}'?" if near else ";"
        parts.append(f"unknown argument '{name}' for {tool}{hint}")
    return f"{' '.join(parts)} It takes: {', '.join(valid) or 'no arguments'}. Nothing was written."


def validation_message(tool: str, exc: ValidationError) -> str:
    """The refusal of arguments that do not fit ``tool``'s schema."""
    return f"invalid arguments for {tool}: {describe_validation_error(exc)} Nothing was written."
