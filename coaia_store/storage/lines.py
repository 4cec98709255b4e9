"""The line format: one JSON object per line, closed by a fixed-length checksum suffix.

A line written by this engine is ``{...record...,"_crc":"xxxxxxxx"}`` where the eight
lowercase hex digits are ``zlib.crc32`` of every byte before ``,"_crc"``. The line stays
valid JSON, so the official memory server and the coaia tools still read it. The first
line of a file written by this engine is a header record of type ``_coaia`` naming the
format version; a file with that header is *strict*: every line must carry a valid
checksum. A file without it is *legacy* (written by another tool): lines without a
checksum are accepted as they are, ``#`` lines are kept as comments.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import orjson

FORMAT_NAME = "coaia-store"
FORMAT_VERSION = 1
HEADER_TYPE = "_coaia"
COMMENT_TYPE = "_comment"
SUFFIX_LEN = len(b',"_crc":"00000000"}')
_SUFFIX_HEAD = b',"_crc":"'
_BOM = b"\xef\xbb\xbf"
_REWRITTEN_TYPES = frozenset({"entity", "narrative_beat", "relation"})  # what other tools edit and write back

Record = dict[str, Any]


def dumps(record: Record) -> bytes:
    """Compact JSON in the same shape ``JSON.stringify`` writes (raw UTF-8, no spaces).

    A value holding an unpaired surrogate (possible only in data read from a legacy file)
    cannot be UTF-8; that one line is then written with ``\\u`` escapes instead.
    """
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except UnicodeEncodeError:
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode()


def encode_line(record: Record) -> bytes:
    """One record as one checksummed line, newline included."""
    head = dumps(record)[:-1]
    return b'%s,"_crc":"%08x"}\n' % (head, zlib.crc32(head))


def header_record(created_at: str) -> Record:
    return {"type": HEADER_TYPE, "format": FORMAT_NAME, "version": FORMAT_VERSION, "createdAt": created_at}


def is_header(record: Record) -> bool:
    return record.get("type") == HEADER_TYPE and record.get("format") == FORMAT_NAME


def decode_line(line: bytes, *, strict: bool) -> tuple[Record | None, str | None]:
    """Decode one line (without its newline) into ``(record, None)`` or ``(None, problem)``.

    Never raises: hostile input (deep nesting, bad UTF-8, NaN) comes back as a problem.
    """
    if len(line) >= SUFFIX_LEN and line[-SUFFIX_LEN:-10] == _SUFFIX_HEAD and line[-2:] == b'"}':
        head = line[:-SUFFIX_LEN]
        if b"%08x" % zlib.crc32(head) != line[-10:-2]:
            return None, "checksum mismatch"
        return _parse(head + b"}")
    if strict:
        return None, "no valid checksum"
    return _decode_legacy(line)


def decode_legacy_line(line: bytes) -> tuple[Record | None, str | None]:
    """A line of a file without our header: ``decode_line(strict=False)``, and one more case.

    coaia-memory, coaia-spiral and coaia-narrative write back every key of the objects they
    parsed, our ``_crc`` included, after editing them. In a file without our header such a
    stale checksum proves no more than a missing one, so the record is read without it. Only
    graph records qualify: a damaged header is still damage, and keeps its file strict.
    """
    record, problem = decode_line(line, strict=False)
    if problem != "checksum mismatch":
        return record, problem
    edited, _ = _parse(line[:-SUFFIX_LEN] + b"}")
    if edited is None or edited.get("type") not in _REWRITTEN_TYPES:
        return None, problem
    return edited, None


def _decode_legacy(line: bytes) -> tuple[Record | None, str | None]:
    line = line.removeprefix(_BOM).rstrip(b"\r")
    stripped = line.strip()
    if not stripped:
        return None, None
    if stripped.startswith(b"#"):
        try:
            return {"type": COMMENT_TYPE, "text": line.decode()}, None
        except UnicodeDecodeError:
            return None, "invalid UTF-8"
    return _parse(line)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: read as inf, which no JSON writer (nor compaction) can write back
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _parse(data: bytes) -> tuple[Record | None, str | None]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        # orjson is strict about what the stdlib tolerates in data from other tools
        # (escaped lone surrogates, integers beyond 64 bits); only bad lines pay twice.
        try:
            value = json.loads(data.decode(), parse_constant=_reject_constant, parse_float=_finite_float)
        except UnicodeDecodeError:
            return None, "invalid UTF-8"
        except (ValueError, RecursionError) as exc:
            return None, f"not valid JSON ({str(exc)[:80]})"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    return value, None


def json_document_values(data: bytes) -> list[Any] | None:
    """The values of a file that holds JSON but is not JSONL, else ``None``.

    Such a file is one JSON array, or JSON pretty-printed over several lines (one object, or a
    stream of them as ``jq .`` writes). A file of one compact value per line is JSONL (perhaps
    with bad lines): ``None``.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
    values: list[Any] = []
    multiline = False
    pos = _skip_space(text, 0)
    try:
        while pos < len(text):
            value, end = decoder.raw_decode(text, pos)
            multiline = multiline or "\n" in text[pos:end]
            values.append(value)
            pos = _skip_space(text, end)
    except (ValueError, RecursionError):
        return None
    one_array = len(values) == 1 and isinstance(values[0], list)
    return values if multiline or one_array else None


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
