"""Events to JSON and back, for carrying them between processes (``store/outbox.py``).

An event travels as its class name and its fields. The fields' annotations say how each is
read back: ids, times, enums, ``tuple[str, ...]``, mappings of strings, plain scalars and
``X | None`` of those. An event with any other field (a nested dataclass) cannot travel:
:func:`encode_event` raises :class:`EventCodecError` for it.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from zvonar.core.errors import ZvonarError
from zvonar.core.events import Event

__all__ = ["EventCodecError", "decode_event", "encode_event"]


class EventCodecError(ZvonarError):
    """An event that cannot be written as JSON or read back (unknown type, bad field)."""

    code = "event_codec"


_Convert = Callable[[Any], Any]
# Per event class: per field, (to JSON, from JSON).
_FIELDS: dict[type[Event], dict[str, tuple[_Convert, _Convert]]] = {}
_CLASSES: dict[str, type[Event]] = {}


def _same(value: Any) -> Any:
    return value


def _converters(hint: Any) -> tuple[_Convert, _Convert]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise EventCodecError(f"unsupported field type {hint!r}")
        out, back = _converters(args[0])
        return (
            lambda v: None if v is None else out(v),
            lambda v: None if v is None else back(v),
        )
    if origin is tuple:
        if typing.get_args(hint) != (str, Ellipsis):
            raise EventCodecError(f"unsupported field type {hint!r}")
        return list, tuple
    if origin in (Mapping, dict):
        if typing.get_args(hint) != (str, str):
            raise EventCodecError(f"unsupported field type {hint!r}")
        return dict, dict
    if hint is uuid.UUID:
        return str, uuid.UUID
    if hint is datetime:
        return datetime.isoformat, datetime.fromisoformat
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return (lambda v: v.value), hint
    if hint in (str, int, float, bool):
        return _same, _same
    raise EventCodecError(f"unsupported field type {hint!r}")


def _fields(cls: type[Event]) -> dict[str, tuple[_Convert, _Convert]]:
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = {f.name: _converters(hints[f.name]) for f in dataclasses.fields(cls)}
        _FIELDS[cls] = found
    return found


def _subclasses(cls: type[Event]) -> typing.Iterator[type[Event]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _class(name: str) -> type[Event]:
    cls = _CLASSES.get(name)
    if cls is None:  # a class imported since the last look
        _CLASSES.update({c.__name__: c for c in _subclasses(Event)})
        cls = _CLASSES.get(name)
        if cls is None:
            raise EventCodecError(f"unknown event type {name!r}")
    return cls


def encode_event(event: Event) -> tuple[str, dict[str, Any]]:
    """The event's type name and its fields as JSON values."""
    cls = type(event)
    if _class(cls.__name__) is not cls:
        raise EventCodecError(f"two event classes are named {cls.__name__!r}")
    return cls.__name__, {
        name: out(getattr(event, name)) for name, (out, _back) in _fields(cls).items()
    }


def decode_event(name: str, payload: Mapping[str, Any]) -> Event:
    """The event :func:`encode_event` wrote as ``name`` and ``payload``."""
    cls = _class(name)
    try:
        values = {field: back(payload[field]) for field, (_out, back) in _fields(cls).items()}
        return cls(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise EventCodecError(f"a {name} that does not read back: {exc!r}") from exc
