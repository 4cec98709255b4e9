"""coaia-store serve --http: Streamable HTTP on loopback, with and without a bearer token."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(store_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "coaia_store", "serve", "--dir", str(store_dir), "--http", "--port", str(port), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "server exited")
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start listening")


@pytest.fixture
def server(store_dir: Path) -> Iterator[str]:
    proc, url = _start(store_dir)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def token_server(store_dir: Path) -> Iterator[str]:
    proc, url = _start(store_dir, "--token", "s3cret")
    yield url
    proc.terminate()
    proc.wait(10)


async def test_tools_work_over_streamable_http(server: str) -> None:
    async with Client(server) as client:
        await client.call_tool("create_entity", {"entities": [{"name": "h", "entityType": "t"}]})
        opened = await client.call_tool("open_entities", {"names": ["h"]})

    assert opened.structured_content["entities"][0]["name"] == "h"


async def test_a_request_without_the_token_is_refused(token_server: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(token_server, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})

    assert response.status_code == 401 and "Bearer" in response.json()["message"]


async def test_a_request_with_the_token_is_served(token_server: str) -> None:
    async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}) as http:
        async with Client(streamable_http_client(token_server, http_client=http)) as client:
            status = await client.call_tool("storage_status", {})

    assert status.structured_content["degraded"] is False


async def test_a_foreign_host_header_is_refused(server: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(server, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                   headers={"Host": "evil.example.com"})

    assert response.status_code == 421


def test_listening_beyond_loopback_without_a_token_is_refused(store_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coaia_store", "serve", "--dir", str(store_dir), "--http", "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 1 and "without a token" in result.stderr


UNREADABLE_BODIES = {
    "not json": b"hello, is this the server?",
    "truncated json": b'{"jsonrpc":"2.0","id":5,"method":"tools/call"',
    "lone surrogate escape": b'{"jsonrpc":"2.0","id":6,"method":"ping","params":{"a":"a\\ud800"}}',
    "nesting of 250 levels": b'{"jsonrpc":"2.0","id":7,"method":"ping","params":{"a":' + b"[" * 250 + b"]" * 250 + b"}}",
    "invalid utf-8": b'{"jsonrpc":"2.0","id":8,"method":"ping","params":{"a":"caf\xff"}}',
    "json that is not a message": b"[1, 2, 3]",
}


@pytest.mark.parametrize("body", UNREADABLE_BODIES.values(), ids=UNREADABLE_BODIES.keys())
async def test_an_unreadable_request_body_gets_a_json_rpc_error_and_the_server_carries_on(server: str, body: bytes) -> None:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with httpx2.AsyncClient() as http:
        response = await http.post(server, content=body, headers=headers)
    async with Client(server) as client:
        created = await client.call_tool("create_entity", {"entities": [{"name": "after", "entityType": "t"}]})

    reply = response.json()
    assert response.status_code == 400 and reply["id"] is None and reply["error"]["code"] in (-32700, -32600, -32602)
    assert created.is_error is False
