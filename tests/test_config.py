"""config.json: optional, validated, with errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coaia_store import ConfigError, RecordTooLargeError, Store


def _write_config(store_dir: Path, data: object) -> None:
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / "config.json").write_text(data if isinstance(data, str) else json.dumps(data))


def test_missing_config_means_defaults(store: Store) -> None:
    assert (store.config.fsync, store.config.maxRecordBytes, store.config.lockTimeoutSeconds) == (
        "always",
        1 << 20,
        10.0,
    )


def test_config_values_are_applied(store_dir: Path) -> None:
    _write_config(store_dir, {"maxRecordBytes": 2048, "_comment": "small records", "$schema": "x"})
    store = Store(store_dir)

    with pytest.raises(RecordTooLargeError, match="2048"):
        store.create_entities([{"name": "big", "entityType": "t", "observations": ["x" * 4000]}])


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"fsync": "sometimes"}, "fsync"),
        ({"maxRecordBytes": -1}, "maxRecordBytes"),
        ({"compaction": {"garbageRatio": 2}}, "compaction.garbageRatio"),
        ({"fsyncc": "always"}, "fsyncc"),
        ({"backup": {"dailyKeep": 0}}, "backup.dailyKeep"),
    ],
)
def test_a_bad_field_is_an_error_naming_it(store_dir: Path, data: dict, field: str) -> None:
    _write_config(store_dir, data)

    with pytest.raises(ConfigError, match=f"field '{field}'"):
        Store(store_dir)


def test_invalid_json_is_an_error_naming_the_file(store_dir: Path) -> None:
    _write_config(store_dir, "{ not json")

    with pytest.raises(ConfigError, match="config.json is not valid JSON"):
        Store(store_dir)
