"""Concurrent HTTP clients with named tokens against one `coaia-store serve --http` process.

    python bench/bench_http.py --clients 8 --calls 300     # 8 clients, 300 calls each (half writes)

Each client has its own token (``--tokens-file``) and alternates create_entity and open_entities.
Afterwards the store is read back: every acknowledged entity must be there (lost = 0) and every
operation must be attributed to the token that made it (misattributed = 0). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coaia_store import Store  # noqa: E402
from coaia_store.history import History  # noqa: E402


def _serve(store_dir: Path, tokens: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
            "--tokens-file",
            str(tokens),
        ],
        stderr=subprocess.DEVNULL,
    )
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


async def _client(url: str, name: str, calls: int, counts: dict[str, int]) -> None:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {name}-secret-token"}, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            for i in range(calls):
                if i % 2 == 0:
                    result = await client.call_tool(
                        "create_entity", {"entities": [{"name": f"{name}-{i}", "entityType": "t"}]}
                    )
                    counts["acknowledged"] += not result.is_error
                else:
                    result = await client.call_tool("open_entities", {"names": [f"{name}-{i - 1}"]})
                counts["calls"] += 1
                counts["errors"] += bool(result.is_error)


async def _run(url: str, clients: int, calls: int) -> tuple[dict[str, int], float]:
    counts = {"calls": 0, "errors": 0, "acknowledged": 0}
    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for c in range(clients):
            group.start_soon(_client, url, f"c{c}", calls, counts)
    return counts, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", dest="callsPerClient", type=int, default=300, help="calls per client")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens.json"
        tokens.write_text(json.dumps([{"name": f"c{c}", "token": f"c{c}-secret-token"} for c in range(args.clients)]))
        os.chmod(tokens, 0o600)
        proc, url = _serve(Path(tmp) / ".coaia", tokens)
        try:
            counts, seconds = anyio.run(_run, url, args.clients, args.callsPerClient)
        finally:
            proc.terminate()
            proc.wait(10)
        with Store(Path(tmp) / ".coaia") as store:
            stored = store.read_graph(limit=None).totalEntities
            operations = list(History(store).every_operation("default"))
    misattributed = sum(op.by != op.entities[0].split("-")[0] for op in operations)
    print(
        json.dumps(
            {
                **vars(args),
                **counts,
                "seconds": round(seconds, 2),
                "callsPerSecond": round(counts["calls"] / seconds),
                "stored": stored,
                "lost": counts["acknowledged"] - stored,
                "misattributed": misattributed,
            }
        )
    )


if __name__ == "__main__":
    main()
