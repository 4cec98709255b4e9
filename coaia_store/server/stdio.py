"""The stdio transport: mcp's own, with request lines checked before they reach the server.

mcp 2.x reads stdin as UTF-8 with ``errors="replace"`` (invalid bytes become U+FFFD and could
be stored) and drops a line it cannot parse without a reply, so the client waits for its own
timeout. Here every line is decoded strictly and parsed first; one that is not a JSON-RPC
message is answered with a JSON-RPC error (``-32700`` parse error, ``-32600`` invalid request)
carrying the request's id when it can still be read, else ``null``, and the server carries on.
The rest (the stdout claim that keeps stray prints off the wire, the writer) is mcp's.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, NoReturn

import anyio
import pydantic_core
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

from ..models import lone_surrogate

log = logging.getLogger(__name__)

MAX_DEPTH = 200  # pydantic-core's JSON parser refuses deeper nesting


class Refusal(Exception):
    """A request line the server cannot take, with the JSON-RPC error that answers it."""

    def __init__(self, code: int, message: str, request_id: int | str | None) -> None:
        super().__init__(message)
        self.reply = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


def check_line(line: bytes) -> str:
    """The line as text if it holds one JSON-RPC message; :class:`Refusal` saying why not otherwise."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(
            PARSE_ERROR,
            f"Parse error: the request is not valid UTF-8 (byte 0x{line[exc.start]:02x} at position {exc.start}); "
            "send UTF-8 text",
            _request_id(line.decode("utf-8", "replace")),
        ) from None
    try:
        message = jsonrpc_message_adapter.validate_json(text, by_name=False)
    except ValidationError:
        _diagnose(text)
    if isinstance(message, JSONRPCNotification) and "id" in pydantic_core.from_json(text):
        _refuse_invalid(None)  # an id that is neither a number nor a text: mcp would take it for a notification
    return text


def _diagnose(text: str) -> NoReturn:
    try:
        value = pydantic_core.from_json(text)
    except ValueError as exc:
        raise Refusal(PARSE_ERROR, _parse_problem(text, exc), _request_id(text)) from None
    _refuse_invalid(_id_of(value))


def _refuse_invalid(request_id: int | str | None) -> NoReturn:
    raise Refusal(
        INVALID_REQUEST,
        'Invalid Request: not a JSON-RPC 2.0 message (an object with "jsonrpc": "2.0" and a "method" with an '
        '"id" that is a number or a string, or a response to a request of the server); batches are not supported',
        request_id,
    )


def _parse_problem(text: str, exc: ValueError) -> str:
    lenient = _lenient_json(text)
    if lone_surrogate(lenient) is not None:
        return (
            "Parse error: the request holds an unpaired UTF-16 surrogate escape (such as \\ud800 without its "
            "low half), which is not Unicode text; send valid Unicode"
        )
    if "recursion limit" in str(exc):
        return f"Parse error: the request is nested deeper than {MAX_DEPTH} levels; send flatter data"
    return f"Parse error: {exc}; send one JSON-RPC message per line"


def _lenient_json(text: str) -> Any:
    """Python's reader takes what pydantic-core refuses (lone surrogates, deeper nesting), so the id can be read."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _request_id(text: str) -> int | str | None:
    return _id_of(_lenient_json(text))


def _id_of(value: Any) -> int | str | None:
    found = value.get("id") if isinstance(value, dict) else None
    if (
        isinstance(found, int)
        and not isinstance(found, bool)
        or isinstance(found, str)
        and lone_surrogate(found) is None
    ):
        return found
    return None


class CheckedLines:
    """stdin as the text lines mcp's reader expects; other lines are answered on the write stream."""

    def __init__(self, stdin: BinaryIO) -> None:
        self._stdin = anyio.wrap_file(stdin)
        self._replies: Any = None
        self._ready = anyio.Event()

    def answer_on(self, write_stream: Any) -> None:
        self._replies = write_stream
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in self._stdin:
            if not line.strip():
                continue
            try:
                yield check_line(line)
            except Refusal as refusal:
                log.warning("refused a request line: %s", refusal)
                await self._ready.wait()
                await self._replies.send(SessionMessage(refusal.reply))


async def serve(server: MCPServer) -> None:
    """Serve ``server`` over this process's stdin and stdout until stdin closes."""
    lines = CheckedLines(sys.stdin.buffer)
    async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
        lines.answer_on(write_stream)
        # What MCPServer.run_stdio_async does, with the checked reader in place of mcp's.
        lowlevel = server._lowlevel_server
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
