"""coaia-store serve --http: Streamable HTTP on loopback, with and without a bearer token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _start(
    store_dir: Path, *extra: str, host: str = "127.0.0.1", env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port(host)
    bind = ["--host", host] if host != "127.0.0.1" else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coaia_store",
            "serve",
            "--dir",
            str(store_dir),
            "--http",
            "--port",
            str(port),
            *bind,
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return proc, f"http://{host}:{port}/mcp"
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "server exited") from None
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
        response = await http.post(
            server, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Host": "evil.example.com"}
        )

    assert response.status_code == 421


def test_listening_beyond_loopback_without_a_token_is_refused(store_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coaia_store", "serve", "--dir", str(store_dir), "--http", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2 and "without a token" in result.stderr


# ---------------------------------------------------------------- a team on a real network
# 127.0.0.2 is not one of the loopback names the server trusts (127.0.0.1, localhost, ::1): bound there, the
# server behaves as on a LAN address, and requests can name it by a host name a client would use.

TEAM_HOST = "127.0.0.2"
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@pytest.fixture
def lan_server(store_dir: Path) -> Iterator[str]:
    proc, url = _start(store_dir, "--token", "s3cret", host=TEAM_HOST)
    yield url
    proc.terminate()
    proc.wait(10)


def _named(url: str, name: str) -> str:
    return url.split("//", 1)[1].split("/", 1)[0].replace(TEAM_HOST, name)


async def test_with_a_token_a_client_reaching_the_server_by_another_name_is_served(lan_server: str) -> None:
    headers = {"Authorization": "Bearer s3cret", "Host": _named(lan_server, "coaia.team.example")}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(lan_server, http_client=http)) as client:
            status = await client.call_tool("storage_status", {})

    assert status.structured_content["degraded"] is False


async def test_with_a_token_a_request_with_an_origin_header_is_served(lan_server: str) -> None:
    origin = "http://" + _named(lan_server, "coaia.team.example")
    headers = {"Authorization": "Bearer s3cret", "Host": _named(lan_server, "coaia.team.example"), "Origin": origin}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(lan_server, http_client=http)) as client:
            tools = await client.list_tools()

    assert tools.tools


async def _tools_when_named(url: str, name: str) -> list[Any]:
    headers = {"Authorization": "Bearer s3cret", "Host": _named(url, name)}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            return (await client.list_tools()).tools


async def _status_when_named(url: str, name: str) -> int:
    async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret", "Host": _named(url, name)}) as http:
        return (await http.post(url, json=PING)).status_code


@pytest.mark.parametrize(
    ("option", "env"),
    [
        (["--allowed-host", "coaia.team.example", "--allowed-host", "other.example"], {}),
        ([], {"COAIA_ALLOWED_HOSTS": "coaia.team.example,other.example"}),
    ],
    ids=["option", "environment"],
)
async def test_allowed_hosts_refuse_other_host_names(store_dir: Path, option: list[str], env: dict[str, str]) -> None:
    proc, url = _start(store_dir, "--token", "s3cret", *option, host=TEAM_HOST, env=env)
    try:
        other, tools = await _status_when_named(url, "evil.example"), await _tools_when_named(url, "other.example")
    finally:
        proc.terminate()
        proc.wait(10)

    assert other == 421 and tools


async def test_on_loopback_without_a_token_allowed_host_adds_names_to_the_loopback_ones(store_dir: Path) -> None:
    proc, url = _start(store_dir, "--allowed-host", "coaia.local")
    port = url.rsplit(":", 1)[1].split("/")[0]
    try:
        async with httpx2.AsyncClient() as http:
            other = (await http.post(url, json=PING, headers={"Host": f"evil.example:{port}"})).status_code
        async with httpx2.AsyncClient(
            headers={"Host": f"coaia.local:{port}", "Origin": f"http://coaia.local:{port}"}
        ) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                tools = (await client.list_tools()).tools
    finally:
        proc.terminate()
        proc.wait(10)

    assert other == 421 and tools


async def test_on_loopback_without_a_token_a_foreign_origin_is_refused(server: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(server, json=PING, headers={"Origin": "http://evil.example.com"})

    assert response.status_code == 403


# ---------------------------------------------------------------- what OAuth-capable clients see


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/mcp",
    ],
)
async def test_oauth_discovery_paths_answer_404(token_server: str, path: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(token_server.removesuffix("/mcp") + path)

    assert response.status_code == 404


async def test_a_refused_token_gets_a_bearer_challenge_with_the_error(token_server: str) -> None:
    async with httpx2.AsyncClient(headers={"Authorization": "Bearer wrong"}) as http:
        response = await http.post(token_server, json=PING)

    challenge = response.headers["www-authenticate"]
    assert response.status_code == 401
    assert (
        challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge and "error_description=" in challenge
    )


async def test_the_auth_scheme_is_matched_in_any_case(token_server: str) -> None:
    async with httpx2.AsyncClient(headers={"Authorization": "bearer s3cret"}) as http:
        async with Client(streamable_http_client(token_server, http_client=http)) as client:
            status = await client.call_tool("storage_status", {})

    assert status.structured_content["degraded"] is False


# ---------------------------------------------------------------- start-up errors: one line, exit 2


def _serve(store_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coaia_store", "serve", "--dir", str(store_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _one_line_usage_error(result: subprocess.CompletedProcess[str], words: str) -> bool:
    lines = result.stderr.strip().splitlines()
    return result.returncode == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line_and_a_usage_error(store_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _serve(store_dir, "--http", "--port", str(taken.getsockname()[1]))

    assert _one_line_usage_error(result, "already in use")


def test_a_port_out_of_range_is_one_line_and_a_usage_error(store_dir: Path) -> None:
    assert _one_line_usage_error(_serve(store_dir, "--http", "--port", "99999"), "1 to 65535")


def test_a_token_without_http_is_refused_not_ignored(store_dir: Path) -> None:
    assert _one_line_usage_error(_serve(store_dir, "--token", "t"), "--http")


def test_an_unknown_tool_profile_is_a_usage_error(store_dir: Path) -> None:
    assert _one_line_usage_error(_serve(store_dir, "--tools", "everything"), "full")


UNREADABLE_BODIES = {
    "not json": b"hello, is this the server?",
    "truncated json": b'{"jsonrpc":"2.0","id":5,"method":"tools/call"',
    "lone surrogate escape": b'{"jsonrpc":"2.0","id":6,"method":"ping","params":{"a":"a\\ud800"}}',
    "nesting of 250 levels": b'{"jsonrpc":"2.0","id":7,"method":"ping","params":{"a":'
    + b"[" * 250
    + b"]" * 250
    + b"}}",
    "invalid utf-8": b'{"jsonrpc":"2.0","id":8,"method":"ping","params":{"a":"caf\xff"}}',
    "json that is not a message": b"[1, 2, 3]",
}


@pytest.mark.parametrize("body", UNREADABLE_BODIES.values(), ids=UNREADABLE_BODIES.keys())
async def test_an_unreadable_request_body_gets_a_json_rpc_error_and_the_server_carries_on(
    server: str, body: bytes
) -> None:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with httpx2.AsyncClient() as http:
        response = await http.post(server, content=body, headers=headers)
    async with Client(server) as client:
        created = await client.call_tool("create_entity", {"entities": [{"name": "after", "entityType": "t"}]})

    reply = response.json()
    assert response.status_code == 400 and reply["id"] is None and reply["error"]["code"] in (-32700, -32600, -32602)
    assert created.is_error is False
