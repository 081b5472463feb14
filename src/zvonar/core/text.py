"""Text that can be stored: Python strings may hold lone UTF-16 surrogates (JSON's ``"\\ud800"``
escape, YAML's too) that no UTF-8 column, file or response can encode. They are refused where
documents come in (the API's JSON bodies, configuration files), with the path of the first one,
so nothing downstream ever meets a string it cannot write."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["lone_surrogate_path", "may_hold_surrogate"]

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_MAX_DEPTH = 200


def _printable(key: str) -> str:
    """A key as it can be shown in the error (its own surrogates as ``\\udXXX``)."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def may_hold_surrogate(raw: bytes) -> bool:
    """Cheap screen of a JSON body: only an escape in D800–DFFF can decode to a surrogate
    (raw UTF-8 cannot encode one: the decoder refuses it)."""
    return _ESCAPE.search(raw) is not None


def lone_surrogate_path(value: Any, path: str = "", depth: int = 0) -> str | None:
    """The path (``a.b[2]``; ``""`` for the value itself) of the first string, or mapping key,
    holding a surrogate, else ``None``. A correct pair (an emoji escaped as two) has decoded to
    one character by then, so any surrogate left is a lone one."""
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if depth > _MAX_DEPTH:  # deeper than any document we accept: the parser refuses it anyway
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = _printable(str(key))
            at = f"{path}.{name}" if path else name
            if isinstance(key, str) and _SURROGATE.search(key):
                return at
            found = lone_surrogate_path(item, at, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = lone_surrogate_path(item, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
    return None
