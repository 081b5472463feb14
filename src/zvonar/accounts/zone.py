"""The account's clock: the time zone its people read days and hours on."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from zvonar.accounts.models import Account
from zvonar.core.schemas import bound_instant, checked_instant
from zvonar.store.db import Database

__all__ = ["account_zone", "range_on_clock", "span_on_clock", "zone_or_utc"]

_UTC = ZoneInfo("UTC")


async def account_zone(db: Database, account_id: uuid.UUID) -> ZoneInfo:
    """The account's time zone; UTC for an account gone or a name this machine's zone data
    lacks (reading a report never fails on it)."""
    async with db.read() as s:
        name = await s.scalar(select(Account.time_zone).where(Account.id == account_id))
    return zone_or_utc(name)


def zone_or_utc(name: str | None) -> ZoneInfo:
    """The zone called ``name``; UTC for none or one this machine's zone data lacks."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return _UTC


async def range_on_clock(
    db: Database,
    account_id: uuid.UUID,
    since: date | datetime | None,
    until: date | datetime | None,
) -> tuple[datetime | None, datetime | None]:
    """``[since, until)`` as UTC instants, days read on the account's clock (``until``'s day
    included; :func:`~zvonar.core.schemas.bound_instant`). A time without its offset is
    ``InvalidInput`` (``checked_instant``). Instants alone cost no query."""
    zone = _UTC
    if any(b is not None and not isinstance(b, datetime) for b in (since, until)):
        zone = await account_zone(db, account_id)
    return (
        None if since is None else checked_instant(bound_instant(since, zone)),
        None if until is None else checked_instant(bound_instant(until, zone, end=True)),
    )


async def span_on_clock(
    db: Database, account_id: uuid.UUID, since: date | datetime, until: date | datetime
) -> tuple[datetime, datetime]:
    """:func:`range_on_clock` of a range with both bounds."""
    start, end = await range_on_clock(db, account_id, since, until)
    assert start is not None and end is not None
    return start, end
