"""The shell commands the docs show run as shown, and their sample output is what the commands print now.

Every ``bash`` block of the README, docs/getting-started.md, docs/cli.md and docs/clients.md is split
into commands and run, in order, in a temporary directory (a copy of the repository's example
directory, a temporary HOME holding ``~/project`` and an old ``memory.jsonl``; ``/home/me`` and
``/tmp`` are mapped into it). ``coaia-store`` is this checkout. Commands that need the network, another
program or a server that keeps running are skipped, by their first word (see ``SKIPPED``). A sample
output block (a ``text`` block right after a one-command ``bash`` block) must match what the command
prints, once dates, sizes, ids, the disk line and column padding are normalised.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/getting-started.md", "docs/cli.md", "docs/clients.md"]
SKIPPED = {
    "pip": "installs packages (network)",
    "pytest": "the test suite itself",
    "claude": "needs Claude Code",
    "npx": "downloads the MCP Inspector (network)",
    "curl": "needs a server running on another host",
}
_BLOCK = re.compile(r"^(?P<indent> *)```(?P<lang>[a-z]*)\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
MEMORY_LINE = '{"type":"entity","name":"ada","entityType":"person","observations":["likes tea"]}\n'


@dataclass
class Block:
    lang: str
    body: str
    end: int
    start: int


def blocks(doc: str) -> list[Block]:
    text = (REPO / doc).read_text()
    return [
        Block(m["lang"], textwrap.dedent(m["body"]) if m["indent"] else m["body"], m.end(), m.start())
        for m in _BLOCK.finditer(text)
    ]


def commands(body: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments dropped, ``a && b`` split."""
    joined = re.sub(r"\\\n\s*", " ", body)
    found = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            found += [part.strip() for part in line.split("&&")]
    return found


def skip_reason(command: str) -> str | None:
    words = shlex.split(command)
    if words[0] in SKIPPED:
        return SKIPPED[words[0]]
    if words[0] == "coaia-store" and "serve" in words and "--http" in words:
        return "an HTTP server keeps running (tests/test_server_http.py runs it)"
    return None


class Sandbox:
    """A temporary place where the docs' commands run: cwd, HOME, PATH with this checkout's coaia-store."""

    def __init__(self, root: Path) -> None:
        self.root, self.home, self.cwd = root, root / "home", root / "work"
        (self.home / "project").mkdir(parents=True)
        (self.home / "memory.jsonl").write_text(MEMORY_LINE)
        (root / "tmp").mkdir()
        shutil.copytree(REPO / ".coaia.example", self.cwd / ".coaia.example")
        bin_dir = root / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "coaia-store"
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m coaia_store "$@"\n')
        shim.chmod(0o755)
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("COAIA_", "CLAUDE_"))}
        self.env = {
            **keep,
            "HOME": str(self.home),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(REPO),
            "COAIA_TOKEN": "docs-token",
            "NO_COLOR": "1",
        }
        self.chart_id = ""
        self.step_id = ""

    def localise(self, command: str) -> str:
        places = {"/home/me/": f"{self.home}/", "/tmp/": f"{self.root}/tmp/"}
        command = re.sub(r"/home/me/|(?<![\w/])/tmp/", lambda m: places[m.group(0)], command)
        return re.sub(r"\bCHART_ID", self.chart_id, command.replace("STEP_ID", self.step_id))

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        command = self.localise(command)
        if command.startswith("cd "):
            self.cwd = Path(os.path.expanduser(command[3:].strip().replace("~", str(self.home), 1)))
            return subprocess.CompletedProcess(command, 0, "", "")
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if created := re.search(r"created chart (\S+)", result.stdout):
            self.chart_id = created.group(1)
        if steps := re.findall(r"\b(chart_\S+_action_\d+_[0-9a-f]{8})\b", result.stdout):
            self.step_id = steps[-1]  # the last step a view lists
        return result


def _all_commands(doc: str) -> list[str]:
    return [c for b in blocks(doc) if b.lang in ("bash", "sh") for c in commands(b.body)]


@pytest.mark.parametrize("doc", DOCS)
def test_every_offline_command_in_the_doc_runs(doc: str, tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    failed, ran = [], 0
    for command in _all_commands(doc):
        if skip_reason(command):
            continue
        result = sandbox.run(command)
        ran += 1
        if result.returncode != 0:
            failed.append(f"{command}\n  exit {result.returncode}: {result.stderr.strip()[:300]}")

    assert ran > 0 and not failed, "\n".join(failed)


def test_the_docs_have_offline_commands_and_skip_only_the_listed_kinds() -> None:
    everything = [c for doc in DOCS for c in _all_commands(doc)]
    skipped = [c for c in everything if skip_reason(c)]

    assert len(everything) - len(skipped) >= 20 and all(shlex.split(c)[0] in (*SKIPPED, "coaia-store") for c in skipped)


# ---------------------------------------------------------------- sample output


def _samples() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        text = (REPO / doc).read_text()
        listed = blocks(doc)
        for shown, output in zip(listed, listed[1:], strict=False):
            runnable = commands(shown.body) if shown.lang == "bash" else []
            if output.lang == "text" and len(runnable) == 1 and not text[shown.end : output.start].strip():
                found.append((doc, runnable[0], output.body))
    return found


def normalise(text: str, sandbox: Sandbox) -> str:
    text = text.replace(str(sandbox.cwd) + "/", "").replace(str(sandbox.cwd), ".")
    rules = [
        (r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?Z?)?)?", "DATE"),
        (r"\bOVERDUE DATE", "due DATE"),  # whether a step is overdue depends on today
        (r"\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "SIZE"),
        (r"\b[0-9a-f]{12,}\b", "ID"),
        (r"(?m)^disk: .*$", "disk: ..."),
        (r"[━─]+", "─"),
        (r"[ \t]+", " "),
    ]
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())


@pytest.mark.parametrize(("doc", "command", "shown"), _samples(), ids=[f"{d}: {c}" for d, c, _ in _samples()])
def test_sample_output_matches_what_the_command_prints(doc: str, command: str, shown: str, tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    printed = sandbox.run(command).stdout

    assert normalise(printed, sandbox) == normalise(shown, sandbox)


def test_there_are_sample_outputs_to_check() -> None:
    assert len(_samples()) >= 2
