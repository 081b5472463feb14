"""Keyset paging of the journal: its two orders, "after this row", and the cursor token.

Calls arrive all the time at the top of the newest-first list, so an offset shifts under a
reader paging down it and rows come twice. A position — the last row's (``started_at``,
``id``), unique and in the list's own order — does not move: the next page is the rows beyond
it. The API hands the position out as an opaque cursor, signed (HMAC-SHA256 with a key derived
from the server's secret key) so that a cursor this server did not make, or one altered, is
refused as ``invalid_cursor`` rather than read as some other place in the list.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, UnaryExpression, and_, or_

from zvonar.core.errors import InvalidInput
from zvonar.journal.models import CallRecord

__all__ = [
    "CallOrder",
    "Cursor",
    "InvalidCursor",
    "Position",
    "beyond",
    "cursor_key",
    "decode",
    "encode",
    "ordering",
    "resume",
]


class CallOrder(enum.StrEnum):
    """The journal's ``sort``: by when the call started, ``-`` for newest first."""

    newest_first = "-started_at"
    oldest_first = "started_at"


class InvalidCursor(InvalidInput):
    """A cursor this server did not hand out (altered, cut short, made with another secret
    key), or one that does not fit the request (another ``sort``, an ``offset``)."""

    code = "invalid_cursor"


@dataclass(frozen=True)
class Position:
    """A row's place in either order: ``id`` breaks ties between calls started together."""

    started_at: datetime
    id: uuid.UUID


@dataclass(frozen=True)
class Cursor:
    order: CallOrder
    after: Position


def ordering(order: CallOrder) -> tuple[UnaryExpression[datetime], UnaryExpression[uuid.UUID]]:
    if order is CallOrder.oldest_first:
        return CallRecord.started_at.asc(), CallRecord.id.asc()
    return CallRecord.started_at.desc(), CallRecord.id.desc()


def beyond(order: CallOrder, after: Position) -> ColumnElement[bool]:
    """The rows that come after ``after`` in ``order``."""
    at, pk = after.started_at, after.id
    if order is CallOrder.oldest_first:
        return or_(
            CallRecord.started_at > at, and_(CallRecord.started_at == at, CallRecord.id > pk)
        )
    return or_(CallRecord.started_at < at, and_(CallRecord.started_at == at, CallRecord.id < pk))


# --- the token ----------------------------------------------------------------------------------
# version, order, started_at (microseconds since the epoch, UTC), id; then the MAC's first bytes.
_LAYOUT = struct.Struct(">BBq16s")
_VERSION = 1
_MAC_BYTES = 12
_ORDERS = (CallOrder.newest_first, CallOrder.oldest_first)  # their codes are their indexes
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TEXT = 128  # a token is 51 characters: anything much longer is not one


def cursor_key(secret: str) -> bytes:
    """The cursors' own key, derived from the server's secret key (so it never signs
    anything else)."""
    return hmac.new(secret.encode(), b"zvonar journal cursor", hashlib.sha256).digest()


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode(cursor: Cursor, key: bytes) -> str:
    after = cursor.after
    micros = (after.started_at - _EPOCH) // timedelta(microseconds=1)
    payload = _LAYOUT.pack(_VERSION, _ORDERS.index(cursor.order), micros, after.id.bytes)
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode("ascii")


def decode(text: str, key: bytes) -> Cursor:
    """The cursor ``text`` stands for; :class:`InvalidCursor` unless this server made it."""
    if len(text) > _MAX_TEXT or not text.isascii():
        raise InvalidCursor("not a cursor of this journal", field="cursor")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor("not a cursor of this journal", field="cursor") from None
    payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
    # Only the spelling encode() gives: base64 would read a changed last character (its
    # unused bits) or stray padding as the same bytes.
    canonical = base64.urlsafe_b64encode(raw).rstrip(b"=") == text.encode("ascii")
    if not canonical or len(raw) != _LAYOUT.size + _MAC_BYTES:
        raise InvalidCursor("not a cursor of this journal", field="cursor")
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise InvalidCursor("not a cursor of this journal", field="cursor")
    version, order, micros, pk = _LAYOUT.unpack(payload)
    if version != _VERSION or order >= len(_ORDERS):  # signed by us, but by another release
        raise InvalidCursor("a cursor of another version: list again", field="cursor")
    try:
        started_at = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise InvalidCursor("not a cursor of this journal", field="cursor") from None
    return Cursor(_ORDERS[order], Position(started_at, uuid.UUID(bytes=pk)))


def resume(
    cursor: str | None, sort: CallOrder | None, offset: int, key: bytes
) -> tuple[CallOrder, Position | None]:
    """A listing request's order and where it starts: after the ``cursor``'s row, in the
    cursor's order; without one, ``sort`` (newest first by default) from the top. A cursor
    with another ``sort`` or with an ``offset`` is refused: which of the two would win is
    not for us to guess."""
    if cursor is None:
        return sort or CallOrder.newest_first, None
    got = decode(cursor, key)
    if sort is not None and sort is not got.order:
        raise InvalidCursor(f"this cursor continues a list sorted {got.order}", field="sort")
    if offset:
        raise InvalidCursor("a cursor goes on where its page ended: no offset", field="offset")
    return got.order, got.after
