"""``serve``: run the MCP server over stdio, or over Streamable HTTP with its tokens and allowed hosts."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import UsageError
from ..store import Store
from .options import DirOption, open_store

_ToolsOption = Annotated[
    str,
    typer.Option(
        "--tools",
        envvar="COAIA_TOOLS",
        help="Tool profile: full (24 tools), charts (chart "
        "tools with history, undo, status, report), graph (graph and store tools), or memory (the "
        "official memory server's nine tools, as a drop-in).",
    ),
]
_HttpFlag = Annotated[bool, typer.Option("--http", help="Serve Streamable HTTP at /mcp instead of stdio.")]
_HostOption = Annotated[str, typer.Option("--host", help="HTTP address; beyond loopback a token is required.")]
_PortOption = Annotated[int, typer.Option("--port", help="HTTP port (1-65535).")]
_TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="COAIA_TOKEN", help="Bearer token every HTTP request must carry.", show_default=False
    ),
]
_TokensFileOption = Annotated[
    str | None,
    typer.Option(
        "--tokens-file",
        envvar="COAIA_TOKENS_FILE",
        help="Named tokens (TOML or JSON: name, "
        "token, role read|write, optional contexts); each write records who made it.",
        show_default=False,
    ),
]
_AllowedHostOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allowed-host",
        envvar="COAIA_ALLOWED_HOSTS",
        help="Accept only requests "
        "whose Host is this name (repeatable). With a token any Host is accepted "
        "otherwise; on loopback without one, only loopback names.",
        show_default=False,
    ),
]


def serve(
    ctx: typer.Context,
    directory: DirOption = None,
    tools: _ToolsOption = "full",
    http: _HttpFlag = False,
    host: _HostOption = "127.0.0.1",
    port: _PortOption = 8765,
    token: _TokenOption = None,
    tokens_file: _TokensFileOption = None,
    allowed_hosts: _AllowedHostOption = None,
) -> None:
    """Run the MCP server: stdio by default (what Claude Desktop, Claude Code, VS Code and Cursor start),
    or Streamable HTTP with --http so several agents can share one server.

    Example: coaia-store serve --dir ~/project/.coaia --tools memory
    """
    from ..server.app import PROFILES
    from ..server.http import HttpSettings, allowed_host_list  # the MCP SDK loads only for this command

    if tools not in PROFILES:
        raise UsageError(f"--tools {tools}: unknown tool profile; choose one of {', '.join(PROFILES)}")
    _http_options_need_http(ctx, http)
    if token and tokens_file:
        raise UsageError(
            "give --token or --tokens-file, not both (put the shared token in the tokens file as an entry)"
        )
    settings = HttpSettings(
        host=host, port=port, tokens=_tokens(token, tokens_file), allowed_hosts=allowed_host_list(allowed_hosts or [])
    )
    if http:
        settings.check()
    store = open_store(directory, background_backups=True)  # the day's first call need not wait for its backups
    try:
        _run_server(store, tools, settings if http else None)
    finally:
        store.close()  # lets a backup under way finish


def _http_options_need_http(ctx: typer.Context, http: bool) -> None:
    """An HTTP option typed on the command line without --http would be silently ignored: refuse it."""
    flags = {
        "host": "--host",
        "port": "--port",
        "token": "--token",
        "tokens_file": "--tokens-file",
        "allowed_hosts": "--allowed-host",
    }
    typed = [
        flag for name, flag in flags.items() if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    ]  # typer vendors click's enum
    if typed and not http:
        raise UsageError(
            f"{', '.join(typed)} only work(s) with --http: add --http to serve over HTTP, or drop the option for stdio"
        )


def _tokens(token: str | None, tokens_file: str | None) -> Any:
    from ..server.tokens import TokenTable, load_tokens

    if tokens_file:
        return load_tokens(tokens_file)
    return TokenTable.single(token) if token else None


def _run_server(store: Store, tools: str, settings: Any) -> None:
    if settings is None:
        from ..server.app import serve_stdio

        serve_stdio(store, tools)  # type: ignore[arg-type]
    else:
        from ..server.http import serve_http

        serve_http(store, tools, settings)
