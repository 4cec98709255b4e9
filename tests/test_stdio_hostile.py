"""`coaia-store serve` over stdio answers every request line, even one it cannot read.

A real server subprocess gets raw bytes on stdin; each unreadable line must come back as a
JSON-RPC error (-32700 parse error, -32600 invalid request) on stdout, and the next valid
call must still work. Nothing an unreadable line holds is ever stored.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import SCALE

from coaia_store import Store

REPLY_WAIT_S = 60  # only so a missing reply fails the test instead of hanging it


class StdioServer:
    """One `coaia-store serve` process, spoken to line by line."""

    def __init__(self, store_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coaia_store", "serve", "--dir", str(store_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._pending = b""
        self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "hostile-test", "version": "1"},
            },
            0,
        )
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def reply(self) -> dict[str, Any]:
        """The next message the server writes (fails when none comes)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                assert sel.select(REPLY_WAIT_S), "the server sent no reply"
                chunk = os.read(fd, 65536)
                assert chunk, "the server closed stdout"
                self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def request(self, method: str, params: dict[str, Any], request_id: int) -> dict[str, Any]:
        self.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode())
        return self.reply()

    def call(self, tool: str, arguments: dict[str, Any], request_id: int) -> dict[str, Any]:
        return self.request("tools/call", {"name": tool, "arguments": arguments}, request_id)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server(store_dir: Path) -> Iterator[StdioServer]:
    running = StdioServer(store_dir)
    yield running
    running.close()


def _create(name: str, request_id: int) -> bytes:
    call = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "create_entity", "arguments": {"entities": [{"name": name, "entityType": "t"}]}},
    }
    return json.dumps(call).encode()


def _still_serves(server: StdioServer) -> None:
    created = server.call("create_entity", {"entities": [{"name": "after", "entityType": "t"}]}, 99)
    assert created["id"] == 99 and created["result"]["isError"] is False


def _stored_names(store_dir: Path) -> list[str]:
    with Store(store_dir) as store:
        return [e.name for e in store.read_graph().entities]


def _assert_error(reply: dict[str, Any], code: int, request_id: int | None, *words: str) -> None:
    assert reply["jsonrpc"] == "2.0" and reply["id"] == request_id
    assert reply["error"]["code"] == code
    for word in words:
        assert word in reply["error"]["message"]


def test_a_line_that_is_not_json_gets_a_parse_error_and_the_server_carries_on(server: StdioServer) -> None:
    server.send(b"hello, is this the server?")

    _assert_error(server.reply(), -32700, None, "Parse error")
    _still_serves(server)


def test_truncated_json_gets_a_parse_error_with_id_null(server: StdioServer) -> None:
    server.send(_create("cut", 5)[:40])

    _assert_error(server.reply(), -32700, None, "Parse error")
    _still_serves(server)


def test_a_lone_surrogate_escape_gets_a_parse_error_naming_it_for_that_request(
    server: StdioServer, store_dir: Path
) -> None:
    server.send(_create("a\ud800", 6))  # json.dumps writes the escape "a\ud800", as JavaScript clients do

    _assert_error(server.reply(), -32700, 6, "unpaired", "surrogate")
    _still_serves(server)
    server.close()
    assert _stored_names(store_dir) == ["after"]


def test_nesting_beyond_the_parser_limit_gets_a_parse_error_naming_the_depth(server: StdioServer) -> None:
    deep = "[" * 250 + "]" * 250
    server.send(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"create_entity","arguments":{"entities":'
        + deep.encode()
        + b"}}}"
    )

    _assert_error(server.reply(), -32700, 7, "nested deeper than 200")
    _still_serves(server)


def test_invalid_utf8_is_refused_and_never_stored_as_a_replacement_character(
    server: StdioServer, store_dir: Path
) -> None:
    server.send(_create("cafe", 8).replace(b"cafe", b"caf\xff"))

    _assert_error(server.reply(), -32700, 8, "not valid UTF-8", "0xff")
    _still_serves(server)
    server.close()
    assert _stored_names(store_dir) == ["after"]


def test_valid_json_that_is_not_a_message_gets_invalid_request_with_id_null(server: StdioServer) -> None:
    server.send(b"[1, 2, 3]")

    _assert_error(server.reply(), -32600, None, "Invalid Request")
    _still_serves(server)


def test_a_request_without_a_method_gets_invalid_request_with_its_id(server: StdioServer) -> None:
    server.send(b'{"jsonrpc": "2.0", "id": 9, "params": {}}')

    _assert_error(server.reply(), -32600, 9, "Invalid Request")
    _still_serves(server)


def test_a_request_whose_id_is_not_a_number_or_text_gets_invalid_request(server: StdioServer) -> None:
    server.send(b'{"jsonrpc": "2.0", "id": true, "method": "ping"}')  # mcp alone took it for a notification

    _assert_error(server.reply(), -32600, None, "Invalid Request")
    _still_serves(server)


def test_a_burst_of_hostile_lines_gets_one_reply_each(server: StdioServer) -> None:
    hostile = [
        b"{",
        b"nope",
        b"[]",
        b'"just a string"',
        b"\xc3\x28",
        b'{"jsonrpc":"2.0","id":1,"method":"x","params":"a\\udc00"}',
    ]
    for line in hostile:
        server.send(line)

    replies = [server.reply() for _ in hostile]
    assert all(r["error"]["code"] in (-32700, -32600) for r in replies)
    _still_serves(server)


def _hostile_lines(rng: random.Random, count: int) -> list[bytes]:
    """Lines no server can take: random bytes, cut requests, surrogate escapes, deep nesting, non-messages."""
    valid = _create("fuzzed", 1)
    kinds = [
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"\n", b"?"),
        lambda: valid[: rng.randrange(1, len(valid))],
        lambda: valid.replace(b"fuzzed", b"\\u" + rng.choice([b"d800", b"dbff", b"dc00", b"dfff"])),
        lambda: valid.replace(b"fuzzed", b"caf" + bytes([rng.randrange(0x80, 0x100)])),
        lambda: (
            b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":'
            + b"[" * (n := rng.randrange(200, 3000))
            + b"]" * n
            + b"}}"
        ),
        lambda: rng.choice(
            [
                b"[]",
                b"42",
                b"null",
                b'"text"',
                b'{"jsonrpc":"1.0","id":1,"method":"ping"}',
                b'{"jsonrpc":"2.0","id":true,"method":"ping"}',
                b'{"id":1}',
            ]
        ),
    ]
    lines = [rng.choice(kinds)() for _ in range(count)]
    return [line for line in lines if line.strip()]


def test_every_fuzzed_hostile_line_gets_exactly_one_error_reply(server: StdioServer, store_dir: Path) -> None:
    replies = []
    for line in _hostile_lines(random.Random(9), 300 * SCALE):
        server.send(line)
        replies.append(server.reply())  # one at a time: the next message out must be this line's answer

    _still_serves(server)
    server.close()
    assert {r["error"]["code"] for r in replies} <= {-32700, -32600}
    assert _stored_names(store_dir) == ["after"]
