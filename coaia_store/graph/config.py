"""``.coaia/config.json``: every field optional, each with a default that suits most people.

Keys that start with ``_`` or ``$`` are comments and are ignored, so the file can explain
itself. Any other unknown key is an error, so a typo never silently does nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from ..storage.journal import JournalSettings

CONFIG_FILE = "config.json"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_comments(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k[:1] in "_$")}
        return data


class CompactionConfig(_Section):
    garbageRatio: float = Field(0.5, gt=0, le=1, description="Compact when this share of records is superseded.")
    minBytes: int = Field(1 << 20, ge=0, description="Never compact a file smaller than this.")


class BackupConfig(_Section):
    dailyKeep: int = Field(
        7, ge=1, le=3650, description="Daily backups kept (by count and by days, whichever keeps more)."
    )
    weeklyKeep: int = Field(
        5, ge=1, le=520, description="Weekly backups kept (by count and by weeks, whichever keeps more)."
    )


class MonitoringConfig(_Section):
    freeSpaceWarningMiB: int = Field(
        500, ge=0, description="Warn in status when the disk has less free space than this."
    )
    daysLeftWarning: int = Field(
        30, ge=0, description="Warn in status when, at the current growth, the disk is full in fewer days than this."
    )


class StoreConfig(_Section):
    fsync: Literal["always", "never"] = Field(
        "always",
        description="'always': a call returns only after its data is on disk. 'never': the OS writes it "
        "within about 30 s; a power cut or kernel crash can lose the last 30 s of calls (a process crash loses nothing).",
    )
    maxRecordBytes: int = Field(1 << 20, ge=1024, le=64 << 20, description="Largest line one call may write.")
    lockTimeoutSeconds: float = Field(10.0, gt=0, le=600, description="How long a write waits for another process.")
    stateCacheMinBytes: int = Field(
        1 << 20,
        ge=0,
        description="After replaying this many bytes of a context's file, save the replayed state in .cache/ so "
        "the next process starts from it instead (derived data: deleting .cache/ loses nothing).",
    )
    compaction: CompactionConfig = CompactionConfig()
    backup: BackupConfig = BackupConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    def journal_settings(self) -> JournalSettings:
        return JournalSettings(
            fsync=self.fsync,
            lock_timeout=self.lockTimeoutSeconds,
            max_record_bytes=self.maxRecordBytes,
            compaction_ratio=self.compaction.garbageRatio,
            compaction_min_bytes=self.compaction.minBytes,
            state_cache_min_bytes=self.stateCacheMinBytes,
        )


def load_config(store_dir: Path) -> StoreConfig:
    """Read ``store_dir/config.json``; a missing file means all defaults."""
    path = store_dir / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return StoreConfig()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}; fix it or delete it to use the defaults") from exc
    try:
        return StoreConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from exc


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors as one plain sentence each, naming the field (no model names, no URLs)."""
    errors = [_untagged(err) for err in exc.errors(include_url=False)]
    # A value tried against "an object or a text" fails both: the text branch's complaint is noise then.
    kept = [e for e in errors if not (e["tagged"] and e["type"] == "string_type")] or errors
    return " ".join(dict.fromkeys(_sentence(err) for err in kept))


def _untagged(err: Any) -> Any:
    """The error with union-branch tags (``StepInput``, ``str``) dropped from its location."""
    loc = [p for p in err["loc"] if isinstance(p, int) or not (p[:1].isupper() or p in _TYPE_TAGS or "[" in p)]
    return {**err, "loc": tuple(loc), "tagged": len(loc) != len(err["loc"])}


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


_PLAIN = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "model_type": "should be an object",
    "model_attributes_type": "should be an object",
    "dict_type": "should be an object",
    "list_type": "should be a list",
    "string_type": "should be text",
}


def _sentence(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "value"
    plain = _PLAIN.get(err["type"])
    if plain is not None:
        return f"field '{where}' {plain}."
    msg = str(err["msg"]).removeprefix("Value error, ")
    given = err.get("input")
    shown = "" if isinstance(given, dict | list) or err["type"] == "value_error" else f" (got {given!r})"
    return f"field '{where}': {msg[:1].lower() + msg[1:]}{shown}."
