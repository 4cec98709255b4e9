"""The MCP server over Streamable HTTP: the ASGI app, the bearer-token gate and the Host rules.

Who gets in:

* bound to loopback (127.0.0.1, localhost, ::1) without a token: the SDK's DNS-rebinding
  protection, so a web page cannot reach the server through a name it controls. ``Host`` must be
  a loopback name (or one given with ``--allowed-host``), and so must ``Origin`` when sent;
* with a token (required beyond loopback): the token is the guard. Any ``Host`` and ``Origin`` is
  accepted (clients reach the server by whatever name or address the network gives it; a web page
  cannot read the token), unless ``--allowed-host`` names the only hosts to accept.

OAuth discovery paths answer 404, so OAuth-capable clients fall back to the configured header
instead of starting a flow; a refused token gets ``401`` with ``WWW-Authenticate: Bearer
error="invalid_token", error_description="..."``.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings

from ..errors import UsageError
from ..storage.caller import acting_as
from ..store import Store
from .tokens import TokenTable

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
ENV_ALLOWED_HOSTS = "COAIA_ALLOWED_HOSTS"
WELL_KNOWN = "/.well-known/"


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    tokens: TokenTable | None = None
    allowed_hosts: tuple[str, ...] = ()

    def check(self) -> None:
        """Refuse settings that cannot work or would leave the store open, before anything starts."""
        check_port(self.port)
        if self.host not in LOOPBACK and self.tokens is None:
            raise UsageError(
                f"refusing to listen on {self.host} without a token: anyone who can reach it could change your "
                "charts. Pass --token (or set COAIA_TOKEN) or --tokens-file, or keep the default --host 127.0.0.1"
            )


def allowed_host_list(values: Sequence[str]) -> tuple[str, ...]:
    """``--allowed-host`` values (repeatable; the environment variable may hold several, comma- or
    space-separated) as lower-case host names, each optionally with a port."""
    return tuple(h.strip().lower() for v in values for h in v.replace(",", " ").split() if h.strip())


def check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port: give a number from 1 to 65535 (default 8765)")


def http_app(store: Store, profile: str, settings: HttpSettings) -> Any:
    """The ASGI app serving ``profile``'s tools over ``store`` at ``/mcp``."""
    from .app import WARM_UP_AFTER_S, build_server  # the tool definitions live with the MCP server

    settings.check()
    server = build_server(store, profile, warm_up=WARM_UP_AFTER_S)  # type: ignore[arg-type]
    if settings.tokens is None:
        return server.streamable_http_app(host=settings.host, transport_security=_loopback_security(settings))
    app = server.streamable_http_app(
        host=settings.host, transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    return TokenGate(app, settings.tokens, settings.allowed_hosts)


def _loopback_security(settings: HttpSettings) -> TransportSecuritySettings | None:
    """The SDK's default loopback protection, widened by ``--allowed-host`` (e.g. behind a local proxy)."""
    if not settings.allowed_hosts:
        return None  # the SDK's own: loopback names only
    hosts = [
        "127.0.0.1:*",
        "localhost:*",
        "[::1]:*",
        *settings.allowed_hosts,
        *(f"{h}:*" for h in settings.allowed_hosts),
    ]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class TokenGate:
    """ASGI wrapper: every HTTP request must carry ``Authorization: Bearer <token>`` (the scheme in any case);
    with named tokens the request runs as that token's caller (attribution and write rights)."""

    def __init__(self, app: Any, tokens: TokenTable, allowed_hosts: Sequence[str] = ()) -> None:
        self._app = app
        self._tokens = tokens
        self._allowed_hosts = frozenset(allowed_hosts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if str(scope.get("path", "")).startswith(WELL_KNOWN):
            await _reply(send, 404, {"error": "not_found", "message": "this server uses a bearer token, not OAuth"})
            return
        headers = dict(scope.get("headers") or [])
        if self._allowed_hosts and not _host_allowed(headers.get(b"host", b""), self._allowed_hosts):
            await _reply(
                send,
                421,
                {"error": "misdirected", "message": "this Host is not one the server accepts (--allowed-host)"},
            )
            return
        given = _bearer(headers.get(b"authorization", b""))
        known, caller = self._tokens.match(given) if given is not None else (False, None)
        if not known:
            await _reply_401(send, "missing" if b"authorization" not in headers else "wrong")
            return
        with acting_as(caller):
            await self._app(scope, receive, send)


def _bearer(header: bytes) -> bytes | None:
    """The token of an ``Authorization`` header whose scheme is Bearer (RFC 7235: case-insensitive)."""
    scheme, _, token = header.strip().partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" and token.strip() else None


def _host_allowed(host: bytes, allowed: frozenset[str]) -> bool:
    """``Host`` (with or without its port) is one of ``allowed``."""
    value = host.decode("latin-1").strip().lower()
    if value.startswith("["):  # an IPv6 literal: [::1]:8765
        name = value.split("]", 1)[0] + "]"
    else:
        name = value.rsplit(":", 1)[0]
    return value in allowed or name in allowed


async def _reply(send: Any, status: int, body: dict[str, str], headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), *headers]}
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def _reply_401(send: Any, why: str) -> None:
    description = (
        "no bearer token: send the server's token as 'Authorization: Bearer <token>'"
        if why == "missing"
        else "the bearer token is not one this server accepts; check the token you configured"
    )
    challenge = f'Bearer realm="coaia-store", error="invalid_token", error_description="{description}"'
    await _reply(
        send, 401, {"error": "unauthorized", "message": description}, [(b"www-authenticate", challenge.encode())]
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a :class:`UsageError` saying why not and what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(
            f"--host {host}: not an address or name this machine can listen on ({exc}); "
            "use 127.0.0.1, 0.0.0.0 or one of this machine's addresses"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UsageError(_bind_problem(host, port, exc)) from None
    return sock


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another server is listening there): stop it, "
            "or pick another port with --port N"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"--host {host} is not an address of this machine: use 127.0.0.1, 0.0.0.0 or one of its addresses"
    if exc.errno == errno.EACCES:
        return f"listening on port {port} needs administrator rights: use a port from 1024 up, e.g. --port 8765"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def serve_http(store: Store, profile: str, settings: HttpSettings) -> None:
    import uvicorn

    from .app import log_to_stderr, startup_report

    log_to_stderr()
    app = http_app(store, profile, settings)
    sock = bind(settings.host, settings.port)
    guard = "" if settings.tokens is None else f" ({len(settings.tokens.entries)} bearer token(s) accepted)"
    log.info("%s; listening on http://%s:%d/mcp%s", startup_report(store, profile), settings.host, settings.port, guard)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
