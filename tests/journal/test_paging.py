"""The journal pages by cursor: calls that arrive while someone reads it (at the top of the
newest-first list) neither repeat rows nor skip any, as an offset does; ``sort`` orders by
start either way; a cursor this server did not make is ``422 invalid_cursor``."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tests.journal.conftest import T0, CallScript, publish
from zvonar.calls.events import Disposition
from zvonar.core.bus import RecordingBus
from zvonar.journal import keyset
from zvonar.journal.keyset import CallOrder, Cursor, InvalidCursor, Position
from zvonar.journal.service import JournalService

API = "/api/v1"


async def _calls(bus: RecordingBus, t: Tenant, *minutes: float, tag: str = "c") -> list[str]:
    """A missed call started at each of ``minutes`` after T0; their call ids."""
    ids = []
    for i, m in enumerate(minutes):
        call = CallScript(t.account_id, call_id=f"{tag}{i}", start=T0 + timedelta(minutes=m))
        await publish(bus, call.started(), call.ended(5, Disposition.missed))
        ids.append(call.call_id)
    return ids


async def _page(api: httpx.AsyncClient, t: Tenant, **params: Any) -> dict[str, Any]:
    r = await api.get(f"{API}/calls", params=params, headers=t.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    return [c["call_id"] for c in body["items"]]


async def _refused(api: httpx.AsyncClient, t: Tenant, **params: Any) -> dict[str, Any]:
    r = await api.get(f"{API}/calls", params=params, headers=t.headers)
    assert r.status_code == 422, (params, r.text)
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == "invalid_cursor", error
    return error


async def test_a_cursor_goes_on_after_the_last_row_while_calls_arrive(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    await _calls(bus, tenant_a, 1, 2, 3, 4, 5)  # c0 (oldest) .. c4
    first = await _page(api, tenant_a, limit=2)
    assert _ids(first) == ["c4", "c3"] and first["total"] == 5
    assert isinstance(first["next_cursor"], str)
    # Two calls arrive at the top while the reader looks at the first page.
    await _calls(bus, tenant_a, 10, 11, tag="new")
    # An offset shifts: its second page is the first one again.
    assert _ids(await _page(api, tenant_a, limit=2, offset=2)) == ["c4", "c3"]
    second = await _page(api, tenant_a, limit=2, cursor=first["next_cursor"])
    assert _ids(second) == ["c2", "c1"] and second["total"] == 7  # total: all that match
    assert second["offset"] == 0
    last = await _page(api, tenant_a, limit=2, cursor=second["next_cursor"])
    assert _ids(last) == ["c0"] and last["next_cursor"] is None
    # A full last page says so too: no cursor to an empty page.
    exact = await _page(api, tenant_a, limit=7)
    assert len(exact["items"]) == 7 and exact["next_cursor"] is None
    # Offset paging still works, and hands out a cursor after its own last row.
    by_offset = await _page(api, tenant_a, limit=3, offset=3)
    assert _ids(by_offset) == ["c3", "c2", "c1"]
    after = await _page(api, tenant_a, limit=3, cursor=by_offset["next_cursor"])
    assert _ids(after) == ["c0"]
    # Filters apply as usual beside the cursor.
    only_new = await _page(api, tenant_a, limit=1, q="1112233", **{"from": "2024-05-01T09:09:00Z"})
    assert _ids(only_new) == ["new1"]
    assert _ids(
        await _page(
            api,
            tenant_a,
            limit=1,
            cursor=only_new["next_cursor"],
            **{"from": "2024-05-01T09:09:00Z"},
        )
    ) == ["new0"]


async def test_calls_started_in_the_same_instant_are_each_listed_once(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    made = set(await _calls(bus, tenant_a, 1, 1, 1, 1, 2))
    for sort in ("-started_at", "started_at"):
        seen: list[str] = []
        body = await _page(api, tenant_a, limit=1, sort=sort)
        seen += _ids(body)
        while body["next_cursor"] is not None:
            body = await _page(api, tenant_a, limit=1, cursor=body["next_cursor"])
            seen += _ids(body)
        assert len(seen) == 5 and set(seen) == made, sort
        assert (seen[0] == "c4") is (sort == "-started_at")


async def test_sort_by_start_either_way(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    await _calls(bus, tenant_a, 3, 1, 2)  # c1, c2, c0 by start
    assert _ids(await _page(api, tenant_a)) == ["c0", "c2", "c1"]
    assert _ids(await _page(api, tenant_a, sort="-started_at")) == ["c0", "c2", "c1"]
    oldest = await _page(api, tenant_a, sort="started_at", limit=2)
    assert _ids(oldest) == ["c1", "c2"]
    # The cursor keeps its order, named again or not.
    rest = await _page(api, tenant_a, limit=2, cursor=oldest["next_cursor"])
    assert _ids(rest) == ["c0"]
    again = await _page(api, tenant_a, limit=2, sort="started_at", cursor=oldest["next_cursor"])
    assert _ids(again) == ["c0"]
    r = await api.get(f"{API}/calls", params={"sort": "caller"}, headers=tenant_a.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    # The CSV export takes the same sort.
    r = await api.get(f"{API}/calls.csv", params={"sort": "started_at"}, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["call_id"] for row in rows] == ["c1", "c2", "c0"]


async def test_a_cursor_not_made_here_is_refused_with_a_stable_code(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    await _calls(bus, tenant_a, 1, 2, 3)
    good = (await _page(api, tenant_a, limit=1))["next_cursor"]
    middle = len(good) // 2
    swapped = "A" if good[middle] != "A" else "B"
    elsewhere = keyset.encode(
        Cursor(CallOrder.newest_first, Position(T0, uuid.uuid4())), keyset.cursor_key("other")
    )
    for bad in (
        "garbage",
        good[:-3],
        good + "AAAA",
        good[:middle] + swapped + good[middle + 1 :],
        good[:-1] + ("B" if good[-1] == "A" else "A"),  # only the unused low bits differ
        elsewhere,
    ):
        error = await _refused(api, tenant_a, cursor=bad)
        assert error["details"] == {"field": "cursor"}, bad
    # Not even the shape of one (the parameter's pattern: URL-safe base64, at most 200).
    for bad in ("", good + "==", "é" * 20, "A" * 5000):
        r = await api.get(f"{API}/calls", params={"cursor": bad}, headers=tenant_a.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", bad
    # A cursor fits the listing it continues: its own order, no offset.
    await _refused(api, tenant_a, cursor=good, sort="started_at")
    await _refused(api, tenant_a, cursor=good, offset=1)
    assert _ids(await _page(api, tenant_a, cursor=good, offset=0)) == ["c1", "c0"]


def test_the_token_round_trips_and_is_bound_to_its_key() -> None:
    key = keyset.cursor_key("secret")
    where = Cursor(CallOrder.oldest_first, Position(T0 + timedelta(microseconds=7), uuid.uuid4()))
    token = keyset.encode(where, key)
    assert keyset.decode(token, key) == where
    assert token.isascii() and "=" not in token and "+" not in token and "/" not in token
    with pytest.raises(InvalidCursor):
        keyset.decode(token, keyset.cursor_key("another secret"))
