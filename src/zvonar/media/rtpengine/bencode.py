"""Bencoding, the dictionary format of rtpengine's ``ng`` control protocol (sans-IO).

The grammar (BitTorrent BEP 3, which defines it)::

    value   = integer / string / list / dict
    integer = "i" ["-"] 1*DIGIT "e"        ; no leading zeros, no "-0"
    string  = length ":" length*OCTET      ; length = 1*DIGIT, no leading zeros
    list    = "l" *value "e"
    dict    = "d" *(string value) "e"      ; keys sorted as raw byte strings

Decoded strings stay ``bytes`` (an SDP body or a file blob is not necessarily UTF-8);
dictionary keys, which rtpengine only ever spells in ASCII, are decoded to ``str``.
Encoding accepts ``str`` (UTF-8) as well as ``bytes``, ``bool`` as 0/1 is refused on purpose
(rtpengine's flags are strings such as ``"yes"``). Dictionaries are written with sorted keys
as BEP 3 asks, although rtpengine does not insist on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union

from zvonar.media.engine import MediaEngineError

__all__ = ["BValue", "BencodeError", "decode", "encode"]

BValue = Union[int, bytes, list["BValue"], dict[str, "BValue"]]  # noqa: UP007
EncodableValue = object  # int | str | bytes | Sequence | Mapping, checked at runtime

_MAX_DEPTH = 64


class BencodeError(MediaEngineError):
    """Malformed bencoded data, or a value bencoding cannot represent."""


def encode(value: EncodableValue) -> bytes:
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: EncodableValue, out: list[bytes], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise BencodeError("structure nested too deeply")
    if isinstance(value, bool):
        raise BencodeError("booleans have no bencoding; use a string such as 'yes'")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        out.append(b"%d:" % len(data))
        out.append(data)
    elif isinstance(value, str):
        _encode(value.encode(), out, depth)
    elif isinstance(value, Mapping):
        items: list[tuple[bytes, object]] = []
        for key, item in value.items():
            if isinstance(key, str):
                key = key.encode()
            if not isinstance(key, bytes):
                raise BencodeError(f"dictionary keys are strings, not {type(key).__name__}")
            items.append((key, item))
        items.sort(key=lambda pair: pair[0])
        out.append(b"d")
        for key, item in items:
            out.append(b"%d:" % len(key))
            out.append(key)
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, Sequence):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> BValue:
    """Decode exactly one value; trailing bytes are an error."""
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} trailing bytes after the value")
    return value


def _digits(data: bytes, start: int, stop: int, what: str) -> int:
    text = data[start:stop]
    negative = text.startswith(b"-")
    body = text[1:] if negative else text
    if (
        not body.isdigit()
        or (len(body) > 1 and body.startswith(b"0"))
        or (negative and body == b"0")
    ):
        raise BencodeError(f"malformed {what} at offset {start}")
    return int(text)


def _decode(data: bytes, pos: int, depth: int) -> tuple[BValue, int]:
    if depth > _MAX_DEPTH:
        raise BencodeError("structure nested too deeply")
    if pos >= len(data):
        raise BencodeError("truncated data")
    lead = data[pos]
    if lead == ord("i"):
        end = data.find(b"e", pos + 1)
        if end < 0:
            raise BencodeError("unterminated integer")
        return _digits(data, pos + 1, end, "integer"), end + 1
    if lead == ord("l"):
        items: list[BValue] = []
        pos += 1
        while pos < len(data) and data[pos] != ord("e"):
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
        if pos >= len(data):
            raise BencodeError("unterminated list")
        return items, pos + 1
    if lead == ord("d"):
        result: dict[str, BValue] = {}
        pos += 1
        while pos < len(data) and data[pos] != ord("e"):
            key, pos = _string(data, pos)
            value, pos = _decode(data, pos, depth + 1)
            try:
                result[key.decode()] = value
            except UnicodeDecodeError:
                raise BencodeError("dictionary key is not UTF-8") from None
        if pos >= len(data):
            raise BencodeError("unterminated dictionary")
        return result, pos + 1
    return _string(data, pos)


def _string(data: bytes, pos: int) -> tuple[bytes, int]:
    colon = data.find(b":", pos)
    if colon < 0:
        raise BencodeError(f"expected a string at offset {pos}")
    length = _digits(data, pos, colon, "string length")
    if length < 0:
        raise BencodeError(f"negative string length at offset {pos}")
    end = colon + 1 + length
    if end > len(data):
        raise BencodeError("truncated string")
    return data[colon + 1 : end], end
