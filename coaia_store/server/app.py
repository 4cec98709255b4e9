"""The MCP server: each tool is a thin wrapper over one library call.

A profile picks the published tool set (:mod:`.profiles`); each tool area has its module (``tools_*``).
Replies are short and bounded (:mod:`.replies`): a write says what changed (with its ``operationId``), the
text block is compact JSON without nulls or empty lists, and every reply stays under ``REPLY_BUDGET``
characters per copy, saying what it left out and how to get it. Arguments are strict (:mod:`.arguments`): an
unknown argument is refused with the nearest valid name. Errors the caller can fix come back as tool errors
whose text says what to do; nothing is written by a refused call. stdout belongs to the protocol: logs go to
stderr.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from .. import __version__
from ..charts import Charts
from ..errors import CoaiaError
from ..graph.config import describe_validation_error
from ..graph.metrics import CallMetrics
from ..search.index import SearchIndex
from ..store import Store
from . import stdio
from .arguments import unknown_argument_error, validation_message
from .hints import ToolFn
from .profiles import PROFILES, Profile, profile_tools
from .prompts import register_prompts
from .replies import error_reply
from .resources import register_resources
from .schemas import compact_schema, one_line

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Durable storage for structural tension charts (desired outcome, current reality, action steps that "
    "telescope into sub-charts) and the knowledge graph beneath them. Data lives in contexts (life domains such "
    "as 'work'); omit `context` to write to 'default' and to read every context. Usual order: list_charts or "
    "storage_status to see what exists; create_chart; get_chart for the tree; add_action_steps, "
    "update_action_step, telescope_action_step while planning; complete (reopen: true reverses) as steps get "
    "done; update_chart for new facts; move_chart to 'completed' to archive. Graph: search, open_entities, "
    "create_entity, add_relation. Every write returns an operationId; history lists them and undo reverts one. "
    "Calls are atomic, durable and safe to retry."
)
WARM_UP_AFTER_S = 1.0


class CoaiaServer(MCPServer):
    """``MCPServer`` with strict arguments, plain error texts, and a warning line on every reply that touches
    a degraded or read-only context (:meth:`Store.warnings`), so an agent can tell its person."""

    def __init__(self, store: Store, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store = store

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None) -> Any:
        result = await self._strict_call(name, arguments, context)
        context_arg = arguments.get("context")
        warnings = self.store.warnings(context_arg if isinstance(context_arg, str) else None)
        if warnings and isinstance(result, CallToolResult):
            result.content.extend(TextContent(type="text", text=w) for w in warnings)
        return result

    async def _strict_call(self, name: str, arguments: dict[str, Any], context: Context | None) -> Any:
        schema = self._tool_input_schema(name)
        if schema is not None and (problem := unknown_argument_error(name, list(arguments), schema)):
            return error_reply(problem)
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                return error_reply(validation_message(name, cause))
            return error_reply(str(cause) if isinstance(cause, ToolError) else str(exc))


def _tool_errors(fn: ToolFn, calls: CallMetrics) -> ToolFn:
    """The library's errors become tool errors with their own text (anything unexpected stays hidden); every
    call is timed for the monitoring that storage_status reports."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> CallToolResult:
        with calls.timed(fn.__name__):
            try:
                return fn(*args, **kwargs)
            except CoaiaError as exc:
                raise ToolError(str(exc)) from exc
            except ValidationError as exc:  # a model built from the arguments inside the tool
                raise ToolError(f"invalid arguments for {fn.__name__}: {describe_validation_error(exc)}") from exc

    return wrapper


def build_server(store: Store, profile: Profile = "full", *, warm_up: float | None = None) -> MCPServer:
    """An MCP server publishing ``profile``'s tools over ``store``, with the resources and prompts.

    ``warm_up``: that many seconds after start, load every context and the search index in a
    thread, so later calls need not do it (``None``: never). Not at once: on 2 cores, loading
    during the MCP handshake slowed the handshake by 0.1-0.4 s (bench/bench_stdio.py), and a call
    that comes before the warm-up loads what it needs itself.
    """
    if profile not in PROFILES:
        raise CoaiaError(f"unknown tool profile {profile!r}: choose one of {', '.join(PROFILES)}")
    server = CoaiaServer(store, "coaia-store", version=__version__, instructions=INSTRUCTIONS)
    index = SearchIndex(store)
    if warm_up is not None:
        timer = threading.Timer(warm_up, _warm_up, args=(index,))
        timer.name, timer.daemon = "coaia-warm-up", True
        timer.start()
    for fn, hints in profile_tools(store, profile, index):
        server.add_tool(
            _tool_errors(fn, store.calls),
            description=one_line(fn.__doc__),
            annotations=hints,
            structured_output=profile == "memory",
        )
        tool = server._tool_manager.get_tool(fn.__name__)  # the published schema, compacted once
        assert tool is not None
        tool.parameters = compact_schema(tool.parameters)
    charts = Charts(store)
    register_resources(server, store, charts)
    register_prompts(server, charts)
    return server


def _warm_up(index: SearchIndex) -> None:
    try:
        index.refresh()
    except CoaiaError as exc:  # the first call that needs it will report the problem
        log.warning("loading at start-up failed: %s", exc)


def startup_report(store: Store, profile: str) -> str:
    contexts = ", ".join(store.contexts()) or "none yet"
    return (
        f"coaia-store {__version__}: data in {store.path} ({store.location.reason}); "
        f"contexts: {contexts}; tools: {profile}"
    )


def log_to_stderr() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def serve_stdio(store: Store, profile: Profile) -> None:
    log_to_stderr()
    log.info(startup_report(store, profile))
    anyio.run(stdio.serve, build_server(store, profile, warm_up=WARM_UP_AFTER_S))
