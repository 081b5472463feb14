"""HTTP endpoints of the call journal: search calls (or export them as CSV), read one with its
legs, play its recording.

Reading needs ``calls.read``, listening to a recording or a voicemail message
``recordings.listen``. Another account's call is a 404, like a call that never existed. Error
codes beyond the generic ones: ``recording_not_found``, ``voicemail_not_found`` (404),
``invalid_cursor`` (422).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, StreamingResponse
from starlette.responses import MalformedRangeHeader

from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.api.pagination import Paging
from zvonar.calls.events import Direction, Disposition
from zvonar.core.schemas import PRINTABLE, DayOrInstant
from zvonar.journal import keyset
from zvonar.journal.export import Separator
from zvonar.journal.keyset import CallOrder
from zvonar.journal.schemas import CallDetailOut, CallOut, CallPage
from zvonar.journal.service import CallFilter, JournalService

router = APIRouter(tags=["journal"])


def journal_service(c: AppContainer) -> JournalService:
    return c.journal


Journal = Annotated[JournalService, Depends(journal_service)]


def call_filter(
    started_from: Annotated[
        DayOrInstant | None,
        Query(
            alias="from",
            description="Calls started at or after: an instant with its offset, or a day "
            "(2026-12-01) from its midnight on the account's clock.",
        ),
    ] = None,
    started_to: Annotated[
        DayOrInstant | None,
        Query(
            alias="to",
            description="Calls started before: an instant with its offset, or a day on the "
            "account's clock, which is included (from=2026-12-01&to=2026-12-07: the week).",
        ),
    ] = None,
    disposition: Annotated[
        list[Disposition] | None,
        # Bounded (a repeated parameter is a list), yet every disposition can be asked for.
        Query(max_length=len(Disposition), description="Any of; repeat it for several."),
    ] = None,
    direction: Direction | None = None,
    number: Annotated[
        str | None,
        Query(
            min_length=1, max_length=64, pattern=PRINTABLE, description="Dialed number contains."
        ),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1, max_length=64, pattern=PRINTABLE, description="Caller number contains."
        ),
    ] = None,
    employee_id: Annotated[
        uuid.UUID | None, Query(description="The employee who answered.")
    ] = None,
    has_recording: bool | None = None,
    contact_id: Annotated[
        uuid.UUID | None,
        Query(
            description="The customer's contact: their calls from and to any of its numbers "
            "(also those made before the contact existed), and the calls taken for it."
        ),
    ] = None,
    mos_below: Annotated[
        float | None,
        Query(
            gt=1,
            le=5,
            description="Calls that sounded bad: the caller's or a target's estimated MOS "
            "(the worse direction of that leg) below this, e.g. 3.6.",
        ),
    ] = None,
) -> CallFilter:
    return CallFilter(
        started_from=started_from,
        started_to=started_to,
        dispositions=tuple(disposition or ()),
        direction=direction,
        number=number,
        caller=q,
        answered_by=employee_id,
        has_recording=has_recording,
        contact_id=contact_id,
        mos_below=mos_below,
    )


Filter = Annotated[CallFilter, Depends(call_filter)]
Sort = Annotated[
    CallOrder | None,
    Query(
        description="started_at: oldest first; -started_at: newest first (the default). "
        "With a cursor: the cursor's own order."
    ),
]


def _cursor_key(c: AppContainer) -> bytes:
    return keyset.cursor_key(c.settings.effective_secret_key)


CursorKey = Annotated[bytes, Depends(_cursor_key)]


@router.get("/calls", response_model=CallPage)
async def list_calls(
    p: CurrentPrincipal,
    journal: Journal,
    page: Paging,
    f: Filter,
    key: CursorKey,
    sort: Sort = None,
    cursor: Annotated[
        str | None,
        Query(
            description="The next_cursor of the page before: the rows after its last one, "
            "in its order (offset must then be 0). Keep the same filters.",
            pattern=r"^[A-Za-z0-9_-]+$",  # URL-safe base64, as next_cursor is
            max_length=200,
        ),
    ] = None,
) -> CallPage:
    order, after = keyset.resume(cursor, sort, page.offset, key)
    found = await journal.list_calls(
        p, f, limit=page.limit, offset=page.offset, order=order, after=after
    )
    following = keyset.encode(keyset.Cursor(order, found.next), key) if found.next else None
    return CallPage(
        items=[CallOut.of(c) for c in found.items],
        total=found.total,
        limit=page.limit,
        offset=page.offset,
        next_cursor=following,
    )


@router.get(
    "/calls.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The calls as CSV."}},
)
async def export_calls(
    p: CurrentPrincipal,
    journal: Journal,
    f: Filter,
    sort: Sort = None,
    sep: Annotated[
        Separator,
        Query(
            description="comma: RFC 4180 (`,` between cells, `.` in numbers); semicolon: "
            "`;` between cells and `,` in numbers, as Excel with Russian or Ukrainian "
            "(most European) regional settings opens it."
        ),
    ] = Separator.comma,
) -> StreamingResponse:
    """The calls the same filters select, newest first (``sort``), as a CSV file (UTF-8 with a byte
    order mark; times in the account's time zone; at most 100,000 calls). Columns:
    ``started_at``, ``direction``, ``caller``, ``contact``, ``dialed``, ``line``,
    ``disposition``, ``answered_by``, ``answered_extension``, ``placed_by``,
    ``wait_seconds``, ``talk_seconds``, ``hangup``, ``scheme_path``, ``recording_seconds``,
    ``voicemail_seconds``, ``rating``, ``mos``, ``utm_source``, ``utm_medium``,
    ``utm_campaign``, ``utm_term``, ``utm_content``, ``call_id``, ``id``, ``srtp``,
    ``peer_loss``, ``peer_jitter_ms``, ``rtt_ms``, ``recording_expired``,
    ``voicemail_expired``. ``sep=semicolon``: ``;`` between cells and ``,`` in numbers, for
    Excel with a decimal comma (Russian, Ukrainian regional settings)."""
    body = await journal.export_calls(p, f, sort or CallOrder.newest_first, sep)
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="calls.csv"'},
    )


@router.get("/calls/{call_pk}", response_model=CallDetailOut)
async def get_call(call_pk: uuid.UUID, p: CurrentPrincipal, journal: Journal) -> CallDetailOut:
    view = await journal.get_call(p, call_pk)
    return CallDetailOut.detail(view.call, view.legs)


# HEAD as GET without the body (RFC 9110 §9.3.2): players and download managers ask it for the
# length and Accept-Ranges before they seek; FileResponse leaves the body out for HEAD itself.
# Not in the OpenAPI document (the GET operations say it): its operations are walked expecting
# a JSON error body, which a HEAD answer never has.
@router.head("/calls/{call_pk}/recording", include_in_schema=False)
@router.get(
    "/calls/{call_pk}/recording",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}, "description": "The WAV recording."}},
)
async def get_recording(call_pk: uuid.UUID, p: CurrentPrincipal, journal: Journal) -> FileResponse:
    """Streams the recording; honours ``Range`` so players can seek. ``HEAD`` answers the same
    headers (``Content-Length``, ``Accept-Ranges``) without the body."""
    return _wav(await journal.audio_file(p, call_pk, "recording"))


@router.head("/calls/{call_pk}/voicemail", include_in_schema=False)
@router.get(
    "/calls/{call_pk}/voicemail",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}, "description": "The message, as WAV."}},
)
async def get_voicemail(call_pk: uuid.UUID, p: CurrentPrincipal, journal: Journal) -> FileResponse:
    """Streams the voicemail message the caller left; honours ``Range``. ``HEAD`` answers the
    same headers without the body."""
    return _wav(await journal.audio_file(p, call_pk, "voicemail"))


class _AudioFile(FileResponse):
    """A WAV served with ``Range``; a malformed ``Range`` is ignored and the whole file sent
    (RFC 9110 §14.2 lets a server ignore it; Starlette would answer a bare-text 400, the one
    error without our JSON body). An unsatisfiable one stays 416 with ``Content-Range``."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []  # no range: the whole file, 200


def _wav(file: Path) -> FileResponse:
    return _AudioFile(file, media_type="audio/wav", filename=file.name)
