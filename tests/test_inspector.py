"""End to end with a real client: the official MCP Inspector CLI drives `coaia-store serve` over stdio."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
NPX = shutil.which("npx")
OFFLINE_SIGNS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "network request")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(NPX is None, reason="npx (Node.js) is not installed")]


def _inspector(store_dir: Path, *method: str) -> dict:
    command = [
        NPX,
        "-y",
        INSPECTOR,
        "--cli",
        sys.executable,
        "-m",
        "coaia_store",
        "serve",
        "--dir",
        str(store_dir),
        *method,
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NPM_CONFIG_LOGLEVEL": "error", "NO_UPDATE_NOTIFIER": "1"},
    )
    if done.returncode != 0 and any(sign in done.stderr for sign in OFFLINE_SIGNS):
        pytest.skip(f"the npm registry is unreachable, so the Inspector cannot be fetched: {done.stderr[-200:]}")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_inspector_lists_the_tools_with_schemas(store_dir: Path) -> None:
    tools = _inspector(store_dir, "--method", "tools/list")["tools"]

    by_name = {t["name"]: t for t in tools}
    assert "create_entity" in by_name and by_name["create_entity"]["inputSchema"]["additionalProperties"] is False


def test_inspector_call_writes_to_the_store(store_dir: Path) -> None:
    result = _inspector(
        store_dir,
        "--method",
        "tools/call",
        "--tool-name",
        "create_entity",
        "--tool-arg",
        'entities=[{"name":"from-inspector","entityType":"test"}]',
    )

    assert result["structuredContent"]["created"] == ["from-inspector"]
    assert b"from-inspector" in (store_dir / "charts.jsonl").read_bytes()
