"""A repair in a separate process that SIGKILLs itself just before its Nth changing I/O call.

Run it by path: ``python tests/proc_repair.py DIR COMMAND KILL_AT``. COMMAND is the interface the
repair goes through: ``validate`` (``coaia-store validate --fix``), ``doctor``
(``coaia-store doctor --fix``), ``library`` (``validate_integrity(store, repair=True)``) or ``mcp``
(the ``validate_integrity`` tool with ``repair: true``, through ``mcp.Client``); or ``backup``, a manual
backup of every context (``coaia-store backup``), for the manifest's kill tests. ``KILL_AT`` 0 never
kills. Every changing call of the I/O seam counts (write, fsync, fsync_dir, truncate, replace,
link, unlink, mkdir): a kill before call N is also a kill just after call N-1, so N = 1, 2, ...
reaches every point where what is on disk differs. When the process is not killed it prints
``CALLS <n>``, the changing calls it made.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from coaia_store.storage.fileio import FileIO

CHANGING = ("write", "fsync", "fsync_dir", "truncate", "replace", "link", "unlink", "mkdir")
_calls = [0]


def arm(kill_at: int) -> None:
    """Make every FileIO in this process count its changing calls and die before call ``kill_at``."""
    for name in CHANGING:
        original = getattr(FileIO, name)

        def counted(self: FileIO, *args: Any, _original: Any = original) -> Any:
            _calls[0] += 1
            if _calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return _original(self, *args)

        setattr(FileIO, name, counted)


def run_cli(directory: str, command: str) -> None:
    from coaia_store.cli import app

    try:
        app([command, "--fix", "--json", "--dir", directory], standalone_mode=False)
    except SystemExit:
        pass


def run_library(directory: str) -> None:
    from coaia_store import Store
    from coaia_store.store import validate_integrity

    with Store(directory) as store:
        validate_integrity(store, repair=True)


def run_mcp(directory: str) -> None:
    import anyio
    from mcp import Client

    from coaia_store import Store
    from coaia_store.server.app import build_server

    async def call() -> None:
        with Store(directory) as store:
            async with Client(build_server(store, "full")) as client:
                result = await client.call_tool("validate_integrity", {"repair": True})
                assert not result.is_error, result.content

    anyio.run(call)


def main() -> None:
    directory, command, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    arm(kill_at)
    if command in ("validate", "doctor"):
        run_cli(directory, command)
    elif command == "backup":
        from coaia_store.cli import app

        app(["backup", "--dir", directory], standalone_mode=False)
    elif command == "library":
        run_library(directory)
    elif command == "mcp":
        run_mcp(directory)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(f"CALLS {_calls[0]}", flush=True)


if __name__ == "__main__":
    main()
