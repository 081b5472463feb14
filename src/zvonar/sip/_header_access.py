"""Header access shared by SipRequest and SipResponse (RFC 3261 §7.3).

Names are matched case-insensitively with compact forms folded (§7.3.3); structured
values are parsed on first access and cached in the frozen message's `__dict__`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, Generic, TypeAlias, TypeVar, overload

from zvonar.sip.errors import SipParseError
from zvonar.sip.headers import (
    LIST_HEADERS,
    TOKEN,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    header_key,
    parse_cseq,
    parse_name_addr,
    parse_name_addr_list,
    parse_via,
    parse_via_list,
    split_comma_list,
)

__all__ = ["HeaderAccess", "HeaderList", "cached_property", "check_header"]

HeaderList: TypeAlias = tuple[tuple[str, str], ...]

_T = TypeVar("_T")


class cached_property(Generic[_T]):
    """functools.cached_property without its per-instance lock (Python 3.11 takes an RLock
    on every first access, a measurable cost on the parsing hot path). Same semantics:
    the value is stored in the instance `__dict__`, which then shadows this descriptor."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> cached_property[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> _T | cached_property[_T]:
        if obj is None:
            return self
        value = self.func(obj)
        obj.__dict__[self.name] = value
        return value


def check_header(name: str, value: str) -> None:
    if not TOKEN.fullmatch(name):
        raise ValueError(f"bad header name {name!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"header value with CR/LF for {name!r}")


def _int_header(value: str, name: str, limit: int) -> int:
    v = value.strip()
    if not (v.isdigit() and v.isascii()) or len(v) > 12 or int(v) > limit:
        raise SipParseError(f"bad {name} value {value!r}")
    return int(v)


# What shed() keeps: the dataclass fields of SipRequest / SipResponse and the wire bytes.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_KEPT = frozenset({"method", "uri", "status", "reason", "headers", "body", "version", "_wire"})


class HeaderAccess:
    """Mixin for SipRequest / SipResponse: header lookup, copies with changed headers,
    parsed accessors and serialization."""

    headers: HeaderList
    body: bytes

    @cached_property
    def _index(self) -> dict[str, tuple[str, ...]]:
        # Tuples (see parse_message): the GC stops tracking them after one pass.
        lists: dict[str, list[str]] = {}
        for name, value in self.headers:
            key = header_key(name)
            values = lists.get(key)
            if values is None:
                lists[key] = [value]
            else:
                values.append(value)
        return {key: tuple(values) for key, values in lists.items()}

    def header(self, name: str) -> str | None:
        """First value of the header, as received; None if absent."""
        values = self._index.get(header_key(name))
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """All values in wire order; comma lists of list headers split (§7.3.1)."""
        key = header_key(name)
        values = self._index.get(key, ())
        if key not in LIST_HEADERS:
            return list(values)
        return [item for v in values for item in split_comma_list(v) if item]

    def has_header(self, name: str) -> bool:
        return header_key(name) in self._index

    def _required(self, key: str) -> str:
        values = self._index.get(key)
        if not values:
            raise SipParseError(f"missing {canonical_name(key)} header")
        return values[0]

    # -- copies with changed headers (the message itself is immutable) --------------------

    def _with_headers(self, headers: HeaderList) -> HeaderAccess:
        return self._copy(headers=headers)

    def _copy(self, **changes: object) -> HeaderAccess:
        """``dataclasses.replace`` without re-checking the start line (it is valid already):
        the fields copied, ``changes`` applied, no parsed cache carried over."""
        cls = type(self)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
        copy = object.__new__(cls)
        state = copy.__dict__
        mine = self.__dict__
        for name in names:
            state[name] = mine[name]
        state.update(changes)
        return copy

    def with_header(self, name: str, value: str) -> HeaderAccess:
        """Replace every `name` header by one (at the first one's place, else appended)."""
        check_header(name, value)
        key = header_key(name)
        out: list[tuple[str, str]] = []
        placed = False
        for h in self.headers:
            if header_key(h[0]) == key:
                if not placed:
                    out.append((name, value))
                    placed = True
            else:
                out.append(h)
        if not placed:
            out.append((name, value))
        return self._with_headers(tuple(out))

    def adding_header(self, name: str, value: str, first: bool = False) -> HeaderAccess:
        """Add a header after the last (or, with first=True, before the first) of its kind."""
        check_header(name, value)
        key = header_key(name)
        positions = [i for i, h in enumerate(self.headers) if header_key(h[0]) == key]
        out = list(self.headers)
        if first:
            out.insert(positions[0] if positions else 0, (name, value))
        elif positions:
            out.insert(positions[-1] + 1, (name, value))
        else:
            out.append((name, value))
        return self._with_headers(tuple(out))

    def without_header(self, name: str) -> HeaderAccess:
        key = header_key(name)
        return self._with_headers(tuple(h for h in self.headers if header_key(h[0]) != key))

    def with_top_via(self, via: Via) -> HeaderAccess:
        """Copy with the first Via value replaced by `via` (§18.2.1 received, RFC 3581 rport).

        Unlike the other copies this one keeps every parsed value of the original (From,
        To, CSeq, Contact…: none of them depends on Via), so annotating a request does not
        throw its parse away; the index, the Via parses and the wire form are redone.
        """
        headers = list(self.headers)
        top = str(via)
        for i, (name, value) in enumerate(headers):
            if header_key(name) == "via":
                if "," in value:
                    top = ", ".join([top, *split_comma_list(value)[1:]])
                headers[i] = (name, top)
                break
        else:
            raise SipParseError("missing Via header")
        index = dict(self._index)
        index["via"] = (top, *index["via"][1:])
        copy = object.__new__(type(self))  # the fields are valid already: no __post_init__
        cache = copy.__dict__
        cache.update(self.__dict__)
        cache.pop("_wire", None)
        cache["headers"] = tuple(headers)
        cache["_index"] = index
        cache["top_via"] = via
        vias: list[Via] | None = cache.pop("vias", None)
        if vias:
            cache["vias"] = [via, *vias[1:]]
        return copy

    def with_body(self, body: bytes, content_type: str | None = None) -> HeaderAccess:
        """Copy with a new body; Content-Length is fixed, Content-Type set if given
        (removed when the body is empty and no type is given)."""
        msg = self.with_header("Content-Length", str(len(body)))
        if content_type is not None:
            msg = msg.with_header("Content-Type", content_type)
        elif not body:
            msg = msg.without_header("Content-Type")
        return msg._copy(body=body)

    # -- parsed, cached accessors ----------------------------------------------------------

    @cached_property
    def call_id(self) -> str:
        return self._required("call-id")

    @cached_property
    def cseq(self) -> CSeq:
        return parse_cseq(self._required("cseq"))

    @cached_property
    def from_(self) -> NameAddr:
        return parse_name_addr(self._required("from"))

    @cached_property
    def to(self) -> NameAddr:
        return parse_name_addr(self._required("to"))

    @cached_property
    def vias(self) -> list[Via]:
        raw = self._index.get("via", ())
        out: list[Via] = []
        for i, v in enumerate(raw):
            if i == 0 and "top_via" in self.__dict__ and "," not in v:
                out.append(self.__dict__["top_via"])  # already parsed by parse_message
            else:
                out.extend(parse_via_list(v))
        return out

    @cached_property
    def top_via(self) -> Via:
        if "vias" in self.__dict__:
            vias: list[Via] = self.__dict__["vias"]
            if vias:
                return vias[0]
        first = self._required("via")
        if "," in first:
            return parse_via_list(first)[0]
        return parse_via(first)

    @cached_property
    def contacts(self) -> list[NameAddr]:
        return [c for v in self._index.get("contact", ()) for c in parse_name_addr_list(v)]

    @cached_property
    def record_routes(self) -> list[NameAddr]:
        return [c for v in self._index.get("record-route", ()) for c in parse_name_addr_list(v)]

    @cached_property
    def routes(self) -> list[NameAddr]:
        return [c for v in self._index.get("route", ()) for c in parse_name_addr_list(v)]

    @cached_property
    def max_forwards(self) -> int | None:
        v = self.header("max-forwards")
        return None if v is None else _int_header(v, "Max-Forwards", 255)

    @cached_property
    def expires(self) -> int | None:
        v = self.header("expires")
        return None if v is None else _int_header(v, "Expires", 2**32 - 1)

    @cached_property
    def content_length(self) -> int | None:
        v = self.header("content-length")
        return None if v is None else _int_header(v, "Content-Length", 2**32 - 1)

    @cached_property
    def content_type(self) -> str | None:
        return self.header("content-type")

    @cached_property
    def user_agent(self) -> str | None:
        return self.header("user-agent")

    # -- memory ----------------------------------------------------------------------------

    def shed(self) -> None:
        """Drop the parsed caches (they are rebuilt on the next access), keeping the fields
        and the wire form. For a message that only waits to be retransmitted or matched (a
        transaction's last 32 s): a dozen objects fewer for the garbage collector to walk."""
        cache = self.__dict__
        for name in [n for n in cache if n not in _KEPT]:
            del cache[name]

    # -- wire form -------------------------------------------------------------------------

    def _start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire bytes: header names as stored, one header per line, correct Content-Length."""
        cached: bytes | None = self.__dict__.get("_wire")
        if cached is not None:
            return cached
        body = self.body
        lines = [self._start_line()]
        cl_done = False
        for name, value in self.headers:
            if header_key(name) == "content-length":
                if cl_done:
                    continue
                value = str(len(body))
                cl_done = True
            lines.append(f"{name}: {value}")
        if not cl_done:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("\r\n")
        wire = "\r\n".join(lines).encode("utf-8", "surrogateescape") + body
        self.__dict__["_wire"] = wire
        return wire
