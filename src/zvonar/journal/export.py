"""The journal as a CSV file: what ``GET /api/v1/calls.csv`` streams (RFC 4180).

The same filters as the journal's search, newest first (or oldest first), up to
:data:`MAX_ROWS` calls. Rows are read in chunks by keyset (``started_at``, ``id``:
:mod:`zvonar.journal.keyset`), each chunk in its own short read, so
an export of a busy year neither holds a database session open while the client reads nor
slows down page after page as an offset would. Times are in the account's time zone with
their offset; who answered or dialled and the caller's contact are names, as a person
reading the file wants them. The file starts with a UTF-8 byte order mark (spreadsheet
programs then read Cyrillic right) and the column names below are stable keys, in English,
for scripts that read them.

A cell a spreadsheet would run as a formula (``=``, ``@``, a ``+``/``-`` that is not a plain
number, a leading tab or CR) is prefixed with ``'`` (CSV injection): callers' display names
and contact names come from outside.

:class:`Separator` ``semicolon`` writes what Excel opens by a double click where the decimal
mark is a comma (Russian and Ukrainian settings, most of Europe's): it splits lines at the
list separator of the system's region, ``;`` there, and reads ``6.0`` as text, not a number.
"""

from __future__ import annotations

import csv
import enum
import io
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import tzinfo
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import aliased

from zvonar.accounts.zone import account_zone
from zvonar.contacts.models import Contact
from zvonar.directory.models import Employee
from zvonar.journal import rules
from zvonar.journal.keyset import CallOrder, Position, beyond, ordering
from zvonar.journal.models import CallRecord
from zvonar.store.db import Database

__all__ = ["CHUNK", "COLUMNS", "MAX_ROWS", "Separator", "export_csv"]

_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")  # from tracking
COLUMNS = (
    "started_at",
    "direction",
    "caller",
    "contact",
    "dialed",
    "line",
    "disposition",
    "answered_by",
    "answered_extension",
    "placed_by",
    "wait_seconds",
    "talk_seconds",
    "hangup",
    "scheme_path",
    "recording_seconds",
    "voicemail_seconds",
    "rating",
    "mos",
    *_UTM,
    "call_id",
    "id",
    # Added later, so at the end: scripts that read columns by position keep working.
    "srtp",
    "peer_loss",
    "peer_jitter_ms",
    "rtt_ms",
    "recording_expired",
    "voicemail_expired",
)
MAX_ROWS = 100_000
CHUNK = 1_000
_NUMBER = re.compile(r"[+-][0-9 ()-]*")
_BOM = "\ufeff"


class Separator(enum.StrEnum):
    """Between cells, and with it the decimal mark in numbers."""

    comma = "comma"  # RFC 4180: `,` between cells, `.` in numbers
    semicolon = "semicolon"  # `;` between cells, `,` in numbers (see the module docstring)

    @property
    def delimiter(self) -> str:
        return "," if self is Separator.comma else ";"

    @property
    def decimal(self) -> str:
        return "." if self is Separator.comma else ","


_Answered = aliased(Employee)
_Placed = aliased(Employee)


def _safe(value: str) -> str:
    if value and (value[0] in "=@\t\r" or (value[0] in "+-" and not _NUMBER.fullmatch(value))):
        return "'" + value
    return value


def _figure(value: float | None, digits: int, decimal: str) -> str:
    if value is None:
        return ""
    text = f"{value:.{digits}f}"
    return text if decimal == "." else text.replace(".", decimal)


def _flag(value: bool | None) -> str:
    return "" if value is None else str(value).lower()  # as the API's JSON spells it


def _row(
    call: CallRecord,
    contact: str | None,
    answered: tuple[str | None, str | None],
    placed: str | None,
    zone: tzinfo,
    decimal: str,
) -> list[str]:
    tracking = call.tracking or {}

    def seconds(value: float | None) -> str:
        return _figure(value, 1, decimal)

    values: list[str] = [
        call.started_at.astimezone(zone).isoformat(timespec="seconds"),
        call.direction.value,
        call.caller,
        contact or "",
        call.dialed,
        call.dialed_label or "",
        call.disposition.value if call.disposition is not None else "",
        answered[0] or "",
        answered[1] or "",
        placed or "",
        seconds(call.wait_seconds),
        seconds(call.talk_seconds),
        call.hangup.value if call.hangup is not None else "",
        " > ".join(call.scheme_path or ()),
        seconds(call.recording_seconds),  # also once expired (the last two columns)
        seconds(call.voicemail_seconds),
        "" if call.rating is None else str(call.rating),
        _figure(call.mos, 2, decimal),
        *(str(tracking.get(k, "")) for k in _UTM),
        call.call_id,
        str(call.id),
        _flag(call.srtp),
        _figure(call.peer_loss, 4, decimal),
        _figure(call.peer_jitter_ms, 2, decimal),
        _figure(call.rtt_ms, 2, decimal),
        _flag(rules.expired(call.recording_path, call.recording_seconds)),
        _flag(rules.expired(call.voicemail_path, call.voicemail_seconds)),
    ]
    return [_safe(v) for v in values]


def _lines(rows: Sequence[Sequence[str]], delimiter: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


async def export_csv(
    db: Database,
    account_id: uuid.UUID,
    filtered: Select[Any],
    *,
    max_rows: int = MAX_ROWS,
    order: CallOrder = CallOrder.newest_first,
    separator: Separator = Separator.comma,
) -> AsyncIterator[bytes]:
    """The CSV of the calls ``filtered`` selects (a ``select(CallRecord)`` already scoped to
    the account) in ``order``, in chunks of bytes: the header first."""
    zone = await account_zone(db, account_id)
    sep, decimal = separator.delimiter, separator.decimal
    yield (_BOM + sep.join(COLUMNS) + "\r\n").encode("utf-8")
    stmt = (
        filtered.add_columns(Contact.name, _Answered.name, _Answered.extension, _Placed.name)
        .outerjoin(Contact, Contact.id == CallRecord.caller_contact_id)
        .outerjoin(_Answered, _Answered.id == CallRecord.answered_by)
        .outerjoin(_Placed, _Placed.id == CallRecord.placed_by)
        .order_by(*ordering(order))
    )
    after: Position | None = None
    left = max_rows
    while left > 0:
        page = stmt if after is None else stmt.where(beyond(order, after))
        async with db.read() as s:
            found = (await s.execute(page.limit(min(CHUNK, left)))).all()
        if not found:
            return
        yield _lines(
            [
                _row(call, contact, (by, ext), placer, zone, decimal)
                for call, contact, by, ext, placer in found
            ],
            sep,
        )
        last = found[-1][0]
        after = Position(last.started_at, last.id)
        left -= len(found)
        if len(found) < CHUNK:
            return
