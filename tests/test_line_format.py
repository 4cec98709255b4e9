"""The line format: checksummed JSON lines, strict and legacy decoding, hostile input.

``decode_line`` must never raise, must never accept a changed checksummed line, and must
return exactly what ``encode_line`` was given. Legacy lines (written by other tools) are
accepted without a checksum, with the tolerances the format promises (BOM, CRLF, comments).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults import SCALE, crc_line, data_file, entity, raw_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coaia_store import Store
from coaia_store.errors import InvalidInputError
from coaia_store.storage.lines import SUFFIX_LEN, decode_line, encode_line

EXAMPLES = 100 * SCALE
hypothesis_settings = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text including lone surrogates, which only legacy files can carry but the encoder must survive.
_chars = st.characters(exclude_categories=()) | st.characters(categories=["Cs"])
texts = st.text(_chars, max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)  # wider ones are refused at the API (see below)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=16
)
# "_crc" is the suffix's key: a record may not carry its own. Every record has at least a type.
records = st.dictionaries(texts.filter(lambda k: k != "_crc"), json_values, min_size=1, max_size=6)

ENTITY_JSON = b'{"type":"entity","name":"n","entityType":"t","observations":["o"]}'
DEEP = b"[" * 200_000
BAD_UTF8 = {
    "lone 0xff byte": b"\xff",
    "overlong slash": b"\xc0\xaf",
    "truncated 3-byte sequence": b"\xe2\x82",
    "UTF-8-encoded surrogate": b"\xed\xa0\x80",
}


def entity_json_with(text: bytes) -> bytes:
    return b'{"type":"entity","name":"' + text + b'","entityType":"t","observations":[]}'


def checksummed(json_object: bytes) -> bytes:
    """A line (no newline) whose checksum is valid for ``json_object``, whatever it holds."""
    return crc_line(json_object[:-1])[:-1]


# ------------------------------------------------------------------ the encoder


@hypothesis_settings
@given(records)
def test_any_record_decodes_to_itself_after_encoding(record: dict[str, Any]) -> None:
    line = encode_line(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line[:-1], strict=True) == (record, None)


@hypothesis_settings
@given(records)
def test_encoded_line_is_json_ending_in_a_lowercase_crc32_of_the_bytes_before_the_suffix(
    record: dict[str, Any],
) -> None:
    line = encode_line(record)
    head, suffix = line[: -SUFFIX_LEN - 1], line[-SUFFIX_LEN - 1 :]
    assert re.fullmatch(rb',"_crc":"[0-9a-f]{8}"\}\n', suffix)
    assert suffix[9:17] == b"%08x" % zlib.crc32(head)
    assert json.loads(line)["_crc"] == suffix[9:17].decode()


@hypothesis_settings
@given(records, st.data())
def test_a_checksummed_line_with_any_byte_changed_is_never_accepted_in_a_strict_file(
    record: dict[str, Any], data: st.DataObject
) -> None:
    line = bytearray(encode_line(record)[:-1])
    at = data.draw(st.integers(0, len(line) - 1), label="offset")
    line[at] ^= data.draw(st.integers(1, 255), label="xor mask")
    assert decode_line(bytes(line), strict=True)[0] is None


def test_uppercase_checksum_digits_are_a_checksum_mismatch() -> None:
    lines = (encode_line({"type": "entity", "name": f"n{i}"})[:-1] for i in range(1000))
    line = next(x for x in lines if re.search(rb"[a-f]", x[-10:-2]))
    upper = line[:-10] + line[-10:-2].upper() + line[-2:]
    assert decode_line(upper, strict=True) == (None, "checksum mismatch")
    assert decode_line(upper, strict=False) == (None, "checksum mismatch")


def test_integers_beyond_64_bits_are_refused_before_writing(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="64 bits"):
        store.create_entities([{**entity("big"), "metadata": {"n": 1 << 64}}])
    assert not data_file(store.path).exists()


# ------------------------------------------------------------------ strict and legacy decoding


def test_strict_decoding_refuses_a_line_without_checksum() -> None:
    assert decode_line(ENTITY_JSON, strict=True) == (None, "no valid checksum")


def test_legacy_decoding_accepts_a_plain_json_line() -> None:
    assert decode_line(ENTITY_JSON, strict=False) == (json.loads(ENTITY_JSON), None)


def test_a_checksum_is_verified_even_in_a_legacy_file() -> None:
    line = checksummed(ENTITY_JSON)
    damaged = line.replace(b'"o"', b'"0"')
    assert decode_line(damaged, strict=False) == (None, "checksum mismatch")


def test_legacy_comment_lines_are_kept_as_comment_records_and_refused_in_strict_files() -> None:
    assert decode_line(b"# written by hand", strict=False) == ({"type": "_comment", "text": "# written by hand"}, None)
    assert decode_line(b"# written by hand", strict=True)[0] is None


@pytest.mark.parametrize("line", [b"", b"   ", b"\t", b"\r"], ids=["empty", "spaces", "tab", "lone CR"])
def test_blank_lines_are_nothing_in_legacy_files_and_damage_in_strict_files(line: bytes) -> None:
    assert decode_line(line, strict=False) == (None, None)
    assert decode_line(line, strict=True) == (None, "no valid checksum")


@pytest.mark.parametrize(
    "variant",
    [b"\xef\xbb\xbf" + ENTITY_JSON, ENTITY_JSON + b"\r", b"\xef\xbb\xbf" + ENTITY_JSON + b"\r"],
    ids=["BOM", "CRLF", "BOM and CRLF"],
)
def test_legacy_lines_tolerate_a_byte_order_mark_and_crlf(variant: bytes) -> None:
    assert decode_line(variant, strict=False) == (json.loads(ENTITY_JSON), None)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
@pytest.mark.parametrize("make_line", [lambda j: j, checksummed], ids=["legacy", "checksummed"])
def test_non_finite_numbers_are_refused_even_with_a_valid_checksum(
    constant: bytes, make_line: Callable[[bytes], bytes]
) -> None:
    line = make_line(b'{"type":"entity","name":"n","x":' + constant + b"}")
    assert decode_line(line, strict=False)[0] is None


@pytest.mark.parametrize("value", [b"[1,2]", b"[]", b"1", b'"text"', b"null", b"true", b"-0.5"])
def test_json_that_is_not_an_object_is_refused(value: bytes) -> None:
    assert decode_line(value, strict=False) == (None, "not a JSON object")


def test_duplicate_keys_in_a_legacy_line_keep_the_last_value() -> None:
    record, problem = decode_line(b'{"type":"entity","name":"a","name":"b"}', strict=False)
    assert problem is None and record == {"type": "entity", "name": "b"}


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(
    "line",
    [
        DEEP,
        b'{"a":' * 100_000,
        b'{"a":' + DEEP + b"]" * 200_000 + b"}",
        checksummed(b'{"a":' + DEEP + b"]" * 200_000 + b"}"),
    ],
    ids=["open arrays", "open objects", "closed arrays", "closed arrays with valid checksum"],
)
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "legacy"])
def test_deep_nesting_is_a_problem_not_a_recursion_error(line: bytes, strict: bool) -> None:
    record, problem = decode_line(line, strict=strict)
    assert record is None and problem


@pytest.mark.parametrize("bad", BAD_UTF8.values(), ids=BAD_UTF8.keys())
@pytest.mark.parametrize("make_line", [lambda j: j, checksummed], ids=["legacy", "checksummed"])
def test_invalid_utf8_is_refused_even_with_a_valid_checksum(bad: bytes, make_line: Callable[[bytes], bytes]) -> None:
    assert decode_line(make_line(entity_json_with(bad)), strict=False) == (None, "invalid UTF-8")


@hypothesis_settings
@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_never_raises(line: bytes) -> None:
    for strict in (True, False):
        record, problem = decode_line(line, strict=strict)
        assert (record is None) or isinstance(record, dict)


def test_an_escaped_lone_surrogate_in_a_legacy_line_loads_as_that_character() -> None:
    assert decode_line(entity_json_with(b"\\ud800"), strict=False) == (
        {"type": "entity", "name": "\ud800", "entityType": "t", "observations": []},
        None,
    )


def test_lone_surrogates_from_a_legacy_file_survive_its_rewrite(store_dir: Path) -> None:
    store_dir.mkdir()
    lines = [
        b'{"type":"entity","name":"a\\udc80","entityType":"t",'
        b'"observations":["x\\ud800y"],"metadata":{"k\\udfff":"v"}}',
        b'{"type":"relation","from":"a\\udc80","to":"b","relationType":"r\\ud800"}',
        b'{"type":"entity","name":"b","entityType":"t","observations":[]}',
    ]
    data_file(store_dir).write_bytes(b"\n".join(lines) + b"\n")
    with Store(store_dir) as store:
        before = raw_state(store)
        assert before[0]["a\udc80"]["observations"] == ["x\ud800y"]
        store.create_entities([entity("c")])  # migrates: the whole file is rewritten, checksummed
    with Store(store_dir) as reopened:
        (info,) = reopened.list_contexts()
        assert info.checksummed and not info.degraded
        after = raw_state(reopened)
    assert after[0]["a\udc80"] == before[0]["a\udc80"]
    assert after[1] == before[1]
