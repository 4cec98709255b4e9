"""Normalising example output: what differs between runs (the temporary directory, operation ids, random
backup-name suffixes, digests, file times) becomes a stable placeholder, so the page changes only when a tool,
a schema or a result shape changes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .examples import DOC_DIR

_VOLATILE_KEYS = {"lastModified": "2026-11-02T09:00:00.000Z", "sha256": "<sha256>"}
_HEX16 = re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])")
_RANDOM_SUFFIX = re.compile(r"(\d{8}T\d{6,12}Z)-[0-9a-f]{6}\b")
_INODE_SUFFIX = re.compile(r"(\d{8}T\d{6,12}Z)-\d+(\.jsonl\.gz)")


class Normaliser:
    """Replaces what differs between runs: the temporary directory, operation ids (16 hex digits, numbered
    in order of appearance), random backup-name suffixes, digests and file modification times."""

    def __init__(self, directory: Path) -> None:
        self._paths = [(str(directory), DOC_DIR), (str(directory.parent), str(Path(DOC_DIR).parent))]
        self._ops: dict[str, str] = {}

    def __call__(self, value: Any, key: str | None = None) -> Any:
        if key in _VOLATILE_KEYS and isinstance(value, str):
            return _VOLATILE_KEYS[key]
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return self._record(value)
        return value

    def _record(self, value: dict[str, Any]) -> dict[str, Any]:
        out = {k: self(v, k) for k, v in value.items()}
        if "sha256" in out and isinstance(out.get("size"), int):
            out["size"] = "<gzip size>"  # the compressed size depends on the random operation ids
        stamp = out.get("sourceStamp")
        if isinstance(stamp, list) and len(stamp) == 3:
            out["sourceStamp"] = ["<inode>", stamp[1], "<mtime_ns>"]
        return out

    def _text(self, text: str) -> str:
        for real, shown in self._paths:
            text = text.replace(real, shown)
        text = _RANDOM_SUFFIX.sub(r"\1-000000", text)
        text = _INODE_SUFFIX.sub(r"\1-<inode>\2", text)
        return _HEX16.sub(self._op, text)

    def _op(self, match: re.Match[str]) -> str:
        return self._ops.setdefault(match.group(0), f"{len(self._ops) + 1:016x}")
