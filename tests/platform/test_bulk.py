"""store.bulk: a row written through BulkStatement reads back exactly as one written by
SQLAlchemy's own executemany (UUIDs, UTC datetimes, enums, JSON, booleans, NULLs), on
SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Table, bindparam, insert, select, update

from zvonar.calls.events import Direction, Disposition
from zvonar.container import Container
from zvonar.journal.models import CallRecord, CallStatus
from zvonar.store.bulk import BulkStatement

CALLS: Table = CallRecord.__table__  # type: ignore[assignment]
COLUMNS = [c.name for c in CALLS.columns]
PLACER = uuid.UUID("5f0c6d2e-4b7a-4f1e-9a53-0d1e2f3a4b5c")


def _row(account_id: uuid.UUID, call_id: str) -> dict[str, object]:
    # A zone other than UTC: the column's own processor must convert it, as SQLAlchemy does.
    at = datetime(2026, 3, 1, 12, 30, 5, tzinfo=timezone(timedelta(hours=7)))
    return {
        "id": uuid.uuid4(),
        "account_id": account_id,
        "call_id": call_id,
        "direction": Direction.inbound,
        "caller": "+74951112233",
        "caller_contact_id": None,
        "placed_by": PLACER,
        "dialed": "+74950000001",
        "dialed_label": "Resorts",
        "tracking": {"utm_source": "ya", "n": 1},
        "started_at": at,
        "answered_at": at + timedelta(seconds=3),
        "ended_at": None,
        "last_activity_at": at,
        "answered_by": None,
        "answered_leg_id": "leg-1",
        "wait_seconds": 3.0,
        "talk_seconds": None,
        "disposition": Disposition.answered,
        "hangup": None,
        "scheme_path": ["main", "ring:1"],
        "transfers": [],
        "recording_path": None,
        "recording_seconds": None,
        "voicemail_path": None,
        "voicemail_seconds": None,
        "rating": 5,
        "loss": 0.0,
        "jitter_ms": None,
        "mos": 4.3,
        "srtp": True,  # a boolean through the driver tuples, as SQLAlchemy binds it
        "peer_loss": 0.0125,
        "peer_jitter_ms": None,
        "rtt_ms": 42.5,
        "status": CallStatus.open,
        "recovered": False,
        "owner_id": uuid.UUID("0b7c6a1e-2f4d-4c3b-8a9e-1d2c3b4a5f60"),
        "created_at": at,
        "updated_at": datetime(2026, 3, 1, 5, 30, 5, 17, tzinfo=UTC),
    }


def _comparable(row: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in row.items() if k not in ("id", "call_id")}


async def test_rows_match_sqlalchemy(container: Container) -> None:
    account = await container.accounts.create_account("Bulk", "bulk")
    ours = [_row(account.id, f"bulk-{i}") for i in range(3)]
    theirs = [_row(account.id, f"core-{i}") for i in range(3)]
    stmt = BulkStatement(insert(CALLS).values({c: bindparam(c) for c in COLUMNS}))
    async with container.db.engine.begin() as conn:
        await stmt.run(conn, ours)
        await conn.execute(insert(CALLS), theirs)
        await stmt.run(conn, [])  # nothing to do, no statement
    async with container.db.engine.connect() as conn:
        found = {r["call_id"]: dict(r) for r in (await conn.execute(select(CALLS))).mappings()}
    assert len(found) == 6
    for i in range(3):
        mine, core = found[f"bulk-{i}"], found[f"core-{i}"]
        assert _comparable(mine) == _comparable(core)
        assert mine["id"] == ours[i]["id"]
    assert found["bulk-0"]["started_at"] == datetime(2026, 3, 1, 5, 30, 5, tzinfo=UTC)
    assert found["bulk-0"]["tracking"] == {"utm_source": "ya", "n": 1}
    assert found["bulk-0"]["disposition"] is Disposition.answered


async def test_update_many_and_missing_parameter(container: Container) -> None:
    account = await container.accounts.create_account("Bulk", "bulk")
    rows = [_row(account.id, f"u-{i}") for i in range(2)]
    async with container.db.engine.begin() as conn:
        await conn.execute(insert(CALLS), rows)
    stmt = BulkStatement(
        update(CALLS)
        .where(CALLS.c.id == bindparam("_pk"))
        .values(status=bindparam("v_status"), updated_at=bindparam("v_at"))
    )
    at = datetime(2026, 3, 2, tzinfo=UTC)
    async with container.db.engine.begin() as conn:
        await stmt.run(
            conn, [{"_pk": r["id"], "v_status": CallStatus.closed, "v_at": at} for r in rows]
        )
    async with container.db.engine.connect() as conn:
        got = (await conn.execute(select(CALLS.c.status, CALLS.c.updated_at))).all()
    assert got == [(CallStatus.closed, at), (CallStatus.closed, at)]
    # Defaults and onupdate values are not filled in: a row must name every parameter.
    async with container.db.engine.begin() as conn:
        with pytest.raises(KeyError):
            await stmt.run(conn, [{"_pk": rows[0]["id"], "v_status": CallStatus.open}])
