"""docs/format.md stays true to the code: its worked example, its constants and its example lines.

The checksum is recomputed here the way the page describes it (zlib's CRC-32 of the bytes before the
19-byte suffix), never with the engine's encoder, so a page that drifted from the code fails.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import pytest

from coaia_store.storage import lines

PAGE = Path(__file__).resolve().parent.parent / "docs" / "format.md"
SUFFIX_HEAD = b',"_crc":"'
CHECKSUMMED_LINE = re.compile(r'^\{.*,"_crc":"[0-9a-f]{8}"\}$')


def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def block(name: str) -> str:
    """The text of the fenced block right after the marker ``<!-- format-doc:<name> -->``."""
    found = re.search(rf"<!-- format-doc:{re.escape(name)} -->\n```[a-z]*\n(.*?)\n```", page(), re.S)
    assert found is not None, f"docs/format.md has no block marked format-doc:{name}"
    return found.group(1)


def constants() -> dict[str, str]:
    return dict(re.fullmatch(r"(\w+)\s*=\s*(\S+)", row).groups() for row in block("constants").splitlines())  # type: ignore[misc]


def suffix_len() -> int:
    return len(block("example-suffix").encode())


def page_checksum(line: bytes) -> bytes:
    """What the page says the suffix's digits must be: CRC-32 of the bytes before the suffix, 8 lowercase hex."""
    return b"%08x" % zlib.crc32(line[: -suffix_len()])


def page_writer(record: dict) -> bytes:
    """A writer built from the page alone: compact JSON, raw UTF-8, final '}' replaced by the suffix, LF."""
    head = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()[:-1]
    return head + SUFFIX_HEAD + b"%08x" % zlib.crc32(head) + b'"}\n'


def example_lines() -> list[bytes]:
    """Every checksummed line shown in a fenced block of the page."""
    fenced = re.findall(r"```[a-z]*\n(.*?)\n```", page(), re.S)
    return [row.encode() for text in fenced for row in text.splitlines() if CHECKSUMMED_LINE.match(row)]


def test_worked_example_line_is_accepted_by_the_strict_decoder() -> None:
    record, problem = lines.decode_line(block("example-line").encode(), strict=True)
    assert problem is None and record is not None and record["name"] == "Zoë"


def test_worked_example_checksum_recomputed_as_the_page_describes_matches_its_suffix() -> None:
    hashed = block("example-hashed").encode()
    suffix = block("example-suffix").encode()
    assert suffix == SUFFIX_HEAD + b"%08x" % zlib.crc32(hashed) + b'"}'


def test_worked_example_hashed_bytes_are_the_line_before_its_suffix() -> None:
    line = block("example-line").encode()
    assert line == block("example-hashed").encode() + block("example-suffix").encode()


def test_documented_format_version_matches_the_code() -> None:
    assert int(constants()["FORMAT_VERSION"]) == lines.FORMAT_VERSION


def test_documented_format_name_matches_the_code() -> None:
    assert constants()["FORMAT_NAME"] == lines.FORMAT_NAME


def test_documented_header_type_matches_the_code() -> None:
    assert constants()["HEADER_TYPE"] == lines.HEADER_TYPE


def test_documented_suffix_length_matches_the_code_and_the_example() -> None:
    assert int(constants()["SUFFIX_LEN"]) == lines.SUFFIX_LEN == suffix_len()


def test_documented_header_line_is_a_header_of_the_current_version() -> None:
    record, problem = lines.decode_line(block("header-line").encode(), strict=True)
    assert problem is None and record is not None and lines.is_header(record)
    assert record["version"] == lines.FORMAT_VERSION


def test_every_checksummed_line_on_the_page_has_the_checksum_the_page_describes() -> None:
    found = example_lines()
    assert len(found) >= 10  # the worked example, the header, the example, compacted and migrated files
    wrong = [line.decode() for line in found if line[-10:-2] != page_checksum(line)]
    assert not wrong, "lines on docs/format.md with a wrong checksum:\n" + "\n".join(wrong)


def test_every_checksummed_line_on_the_page_is_accepted_by_the_strict_decoder() -> None:
    rejected = [
        (line.decode(), problem) for line in example_lines() if (problem := lines.decode_line(line, strict=True)[1])
    ]
    assert not rejected, rejected


@pytest.mark.parametrize(
    "record",
    [
        {
            "type": "entity",
            "name": "Zoë",
            "entityType": "person",
            "observations": ["Prefers tea"],
            "_prev": [],
            "_op": "3f9c0a7b12d4e856",
            "_ts": "2026-11-21T04:18:33.123Z",
        },
        {"type": "relation", "from": "a", "to": "b", "relationType": "knows", "metadata": {"w": 1.5, "n": None}},
        {"type": "entity", "name": 'quote " and\nnewline \u2028 \U0001f600', "observations": [], "big": 2**63},
    ],
    ids=["worked example", "relation with metadata", "escapes and astral"],
)
def test_a_writer_following_the_page_writes_the_bytes_of_the_encoder(record: dict) -> None:
    assert page_writer(record) == lines.encode_line(record)
