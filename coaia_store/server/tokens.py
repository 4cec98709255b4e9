"""Named HTTP tokens: who may use the server, read-only or not, and in which contexts.

A tokens file is TOML (``[[tokens]]`` tables) or JSON (``{"tokens": [...]}``), one entry per
person or agent::

    [[tokens]]
    name = "ana"
    token = "a long random string"
    role = "write"            # or "read"
    contexts = ["work"]       # optional: the contexts this token may write (default: every one)

The file must not be readable by group or others (it holds secrets). Tokens are compared in
constant time and never logged; only their names appear in logs and in the journal.
"""

from __future__ import annotations

import hmac
import json
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import CoaiaError, UsageError
from ..graph.contexts import validate_context_name
from ..storage.caller import Caller

ENV_TOKENS_FILE = "COAIA_TOKENS_FILE"
SINGLE_TOKEN_NAME = "token"  # the name of the one --token: not recorded in the journal


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
    token: str = Field(min_length=1)
    role: Literal["read", "write"] = "write"
    contexts: list[str] | None = Field(None, min_length=1)

    @field_validator("contexts")
    @classmethod
    def _valid_contexts(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            try:
                validate_context_name(name)
            except CoaiaError as exc:
                raise ValueError(str(exc)) from None
        return value


class _TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: list[TokenEntry] = Field(min_length=1)


@dataclass(frozen=True)
class TokenTable:
    """The accepted tokens, each with the caller it stands for (``None``: the single ``--token``)."""

    entries: tuple[tuple[bytes, Caller | None], ...]

    @classmethod
    def single(cls, token: str) -> TokenTable:
        return cls(((token.encode(), None),))

    def match(self, given: bytes) -> tuple[bool, Caller | None]:
        """Whether ``given`` is a known token, and whose; every entry is compared, in constant time."""
        found, caller = False, None
        for token, who in self.entries:
            if hmac.compare_digest(given, token):
                found, caller = True, who
        return found, caller


def load_tokens(path: str | os.PathLike[str]) -> TokenTable:
    """Read a tokens file; refuse it when group or others can read it, or when an entry is invalid."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"the tokens file {file} is not a regular file")
        if mode & 0o077:
            raise UsageError(
                f"the tokens file {file} can be read by others (mode {stat.filemode(mode)}); it holds "
                f"secrets: run chmod 600 {file}"
            )
        raw = file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the tokens file {file}: {exc.strerror}") from None
    parsed = _parse(file, raw)
    entries = parsed.tokens
    for what in ("name", "token"):
        values = [getattr(e, what) for e in entries]
        if len(set(values)) != len(values):
            raise UsageError(f"the tokens file {file} has two entries with the same {what}: each must be unique")
    return TokenTable(
        tuple(
            (e.token.encode(), Caller(e.name, e.role, frozenset(e.contexts) if e.contexts else None)) for e in entries
        )
    )


def _parse(file: Path, raw: bytes) -> _TokensFile:
    suffix = file.suffix.lower()
    try:
        if suffix == ".json" or (suffix != ".toml" and raw.lstrip()[:1] == b"{"):
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise UsageError(f"the tokens file {file} is neither valid TOML nor JSON: {exc}") from None
    if isinstance(data, list):
        data = {"tokens": data}
    try:
        return _TokensFile.model_validate(data)
    except ValidationError as exc:  # the values are not shown: they may be tokens
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors())
        raise UsageError(
            f"the tokens file {file}: {problems} (each entry needs name, "
            "token, role 'read' or 'write', and optionally contexts)"
        ) from None
