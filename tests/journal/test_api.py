"""The journal over HTTP: search with filters and pagination (newest first), one call with its
legs, the recording stream with Range, and the 404 rule for another account's calls."""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, make_tenant
from tests.journal.conftest import CallScript, publish
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Account, Role
from zvonar.calls.events import (
    CallRecorded,
    Direction,
    Disposition,
    LegEndReason,
    VoicemailLeft,
)
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.directory.schemas import EmployeeIn
from zvonar.journal import export
from zvonar.journal.service import JournalService

API = "/api/v1"
WAV = b"RIFF" + bytes(range(256)) * 4


async def seed(bus: RecordingBus, journal: JournalService, t: Tenant) -> dict[str, Any]:
    """Four calls an hour apart: answered+recorded, missed, outbound, busy."""
    anna, bolts = uuid.uuid4(), uuid.uuid4()  # an employee; a customer with two numbers
    base = CallScript(t.account_id)
    answered = CallScript(t.account_id, call_id="c-answered", caller="+74951110001")
    missed = CallScript(
        t.account_id,
        call_id="c-missed",
        start=base.at(3600),
        caller="+79161234567",
        contact_id=bolts,
    )
    outbound = CallScript(
        t.account_id,
        call_id="c-out",
        start=base.at(7200),
        caller="101",
        dialed="+74959998877",
        label=None,
        direction=Direction.outbound,
    )
    busy = CallScript(
        t.account_id,
        call_id="c-busy",
        start=base.at(10800),
        dialed="+74950000002",
        contact_id=bolts,
    )
    rec = journal.recording_path_for(t.account_id, answered.call_id, answered.start)
    rec.parent.mkdir(parents=True, exist_ok=True)
    rec.write_bytes(WAV)
    await publish(
        bus,
        answered.started(),
        answered.ringing("a", 1, anna),
        answered.answered("a", 6, by=anna),
        answered.ended(66, Disposition.answered),
        CallRecorded(account_id=t.account_id, call_id="c-answered", path=str(rec), duration=60),
        missed.started(),
        missed.ringing("a", 1, anna),
        missed.leg_ended("a", 21, LegEndReason.no_answer),
        missed.ended(21, Disposition.missed),
        outbound.started(),
        outbound.answered("out", 10),
        outbound.ended(40, Disposition.answered),
        busy.started(),
        busy.ringing("a", 0, anna),
        busy.leg_ended("a", 0.2, LegEndReason.busy),
        busy.ended(1, Disposition.busy),
    )
    return {"anna": anna, "bolts": bolts, "start": base.start}


async def calls(api: httpx.AsyncClient, t: Tenant, **params: Any) -> dict[str, Any]:
    r = await api.get(f"{API}/calls", params=params, headers=t.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [c["call_id"] for c in body["items"]]


async def test_search_filters_and_pages_newest_first(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    s = await seed(bus, journal, tenant_a)
    everything = await calls(api, tenant_a)
    assert ids(everything) == ["c-busy", "c-out", "c-missed", "c-answered"]
    assert everything["total"] == 4
    first = everything["items"][3]
    assert first["disposition"] == "answered" and first["has_recording"] is True
    assert (first["wait_seconds"], first["talk_seconds"]) == (6.0, 60.0)
    assert first["dialed_label"] == "Sales" and first["tracking"] == {"utm_source": "yandex"}

    page = await calls(api, tenant_a, limit=2, offset=2)
    assert ids(page) == ["c-missed", "c-answered"] and page["total"] == 4
    assert ids(await calls(api, tenant_a, disposition="missed")) == ["c-missed"]
    both = await api.get(
        f"{API}/calls?disposition=missed&disposition=busy", headers=tenant_a.headers
    )
    assert ids(both.json()) == ["c-busy", "c-missed"]
    assert ids(await calls(api, tenant_a, direction="outbound")) == ["c-out"]
    assert ids(await calls(api, tenant_a, number="9998877")) == ["c-out"]
    assert ids(await calls(api, tenant_a, q="916")) == ["c-missed"]
    assert ids(await calls(api, tenant_a, employee_id=str(s["anna"]))) == ["c-answered"]
    assert ids(await calls(api, tenant_a, contact_id=str(s["bolts"]))) == ["c-busy", "c-missed"]
    assert (await calls(api, tenant_a, contact_id=str(uuid.uuid4())))["total"] == 0
    r = await api.get(f"{API}/calls", params={"contact_id": "bolts"}, headers=tenant_a.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert ids(await calls(api, tenant_a, has_recording="true")) == ["c-answered"]
    assert "c-answered" not in ids(await calls(api, tenant_a, has_recording="false"))
    window = await calls(
        api,
        tenant_a,
        **{"from": "2024-05-01T10:00:00+00:00", "to": "2024-05-01T12:00:00Z"},
    )
    assert ids(window) == ["c-out", "c-missed"]
    # LIKE wildcards in a filter are literal characters.
    assert (await calls(api, tenant_a, q="%"))["total"] == 0


async def test_a_day_is_read_on_the_accounts_clock(
    api: httpx.AsyncClient,
    bus: RecordingBus,
    container: Container,
    journal: JournalService,
    tenant_a: Tenant,
) -> None:
    """``from``/``to`` given as days mean the account's midnights, ``to``'s day included."""
    async with container.db.unit_of_work() as uow:
        account = await uow.session.get(Account, tenant_a.account_id)
        assert account is not None
        account.time_zone = "Asia/Novosibirsk"  # UTC+7
    base = CallScript(tenant_a.account_id)  # 2024-05-01 09:00 UTC
    # 23:30 on May 1 and 00:30 on May 2 in Novosibirsk: one UTC day, two local ones.
    late = CallScript(tenant_a.account_id, call_id="c-late", start=base.at(7.5 * 3600))
    after = CallScript(tenant_a.account_id, call_id="c-after", start=base.at(8.5 * 3600))
    await publish(
        bus,
        *(e for c in (late, after) for e in (c.started(), c.ended(30, Disposition.missed))),
    )
    assert ids(await calls(api, tenant_a, **{"from": "2024-05-02"})) == ["c-after"]
    assert ids(await calls(api, tenant_a, to="2024-05-01")) == ["c-late"]
    may_1 = {"from": "2024-05-01", "to": "2024-05-01"}
    assert ids(await calls(api, tenant_a, **may_1)) == ["c-late"]
    assert ids(await calls(api, tenant_a, **{"from": "2024-05-01", "to": "2024-05-02"})) == [
        "c-after",
        "c-late",
    ]
    # A day and an instant mix; the same bounds select the CSV's rows.
    mixed = {"from": "2024-05-01T17:00:00Z", "to": "2024-05-02"}
    assert ids(await calls(api, tenant_a, **mixed)) == ["c-after"]
    r = await api.get(f"{API}/calls.csv", params=may_1, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["call_id"] for row in rows] == ["c-late"]
    assert rows[0]["started_at"] == "2024-05-01T23:30:00+07:00"


async def test_one_call_with_its_legs(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    await seed(bus, journal, tenant_a)
    missed = (await calls(api, tenant_a, disposition="missed"))["items"][0]
    r = await api.get(f"{API}/calls/{missed['id']}", headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["scheme_path"] == ["working hours", "ring sales"]
    [leg] = detail["legs"]
    assert leg["leg_id"] == "a" and leg["end_reason"] == "no_answer"
    assert leg["ring_seconds"] == 20.0 and leg["target_kind"] == "employee"
    assert detail["transfers"] == []


async def streams(api: httpx.AsyncClient, url: str, t: Tenant, content: bytes) -> None:
    """``url`` serves ``content`` as WAV, whole and by ``Range`` (players seek)."""
    whole = await api.get(url, headers=t.headers)
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
    assert whole.content == content
    part = await api.get(url, headers={**t.headers, "Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == content[4:12]
    # A Range we cannot read is ignored (RFC 9110 §14.2): the whole file, not a bare-text 400.
    for bad in ("garbage", "bytes=9-3", "items=0-1"):
        r = await api.get(url, headers={**t.headers, "Range": bad})
        assert r.status_code == 200 and r.content == content, bad
    # Past the end: 416 with where the file ends.
    r = await api.get(url, headers={**t.headers, "Range": f"bytes={len(content) + 10}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(content)}"


async def test_recording_streams_with_range(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    await seed(bus, journal, tenant_a)
    listed = await calls(api, tenant_a, has_recording="true")
    await streams(api, f"{API}/calls/{listed['items'][0]['id']}/recording", tenant_a, WAV)
    # No recording: a stable error code.
    missed = (await calls(api, tenant_a, disposition="missed"))["items"][0]
    r = await api.get(f"{API}/calls/{missed['id']}/recording", headers=tenant_a.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "recording_not_found"


async def test_recording_deleted_from_disk_is_a_404(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    s = await seed(bus, journal, tenant_a)
    journal.recording_path_for(tenant_a.account_id, "c-answered", s["start"]).unlink()
    listed = await calls(api, tenant_a, has_recording="true")
    r = await api.get(f"{API}/calls/{listed['items'][0]['id']}/recording", headers=tenant_a.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "recording_not_found"


async def test_voicemail_message_streams_with_range(
    api: httpx.AsyncClient,
    bus: RecordingBus,
    container: Container,
    journal: JournalService,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    s = await seed(bus, journal, tenant_a)
    left = CallScript(tenant_a.account_id, call_id="c-vm", start=s["start"])
    message = journal.recording_path_for(tenant_a.account_id, "c-vm", left.start)
    message = message.with_suffix(".vm.wav")
    message.write_bytes(WAV[::-1])
    await publish(
        bus,
        left.started(),
        left.ended(30, Disposition.missed),
        VoicemailLeft(
            account_id=tenant_a.account_id, call_id="c-vm", path=str(message), duration=9
        ),
    )
    (row,) = (await calls(api, tenant_a, disposition="voicemail"))["items"]
    assert (row["call_id"], row["has_voicemail"], row["voicemail_seconds"]) == ("c-vm", True, 9)
    url = f"{API}/calls/{row['id']}/voicemail"
    await streams(api, url, tenant_a, WAV[::-1])
    # Its recording is not its message, and a call with no message says so.
    r = await api.get(f"{API}/calls/{row['id']}/recording", headers=tenant_a.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "recording_not_found"
    answered = (await calls(api, tenant_a, has_recording="true"))["items"][0]["id"]
    r = await api.get(f"{API}/calls/{answered}/voicemail", headers=tenant_a.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "voicemail_not_found"
    # Another account, and a role that may not listen, get nothing.
    r = await api.get(url, headers=tenant_b.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    operator = await container.accounts.create_token(
        tenant_a.account_id, name="desk", role=Role.operator
    )
    r = await api.get(url, headers={"Authorization": f"Bearer {operator.secret}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    message.unlink()
    r = await api.get(url, headers=tenant_a.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "voicemail_not_found"


async def test_another_accounts_calls_are_not_found(
    api: httpx.AsyncClient,
    bus: RecordingBus,
    journal: JournalService,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    await seed(bus, journal, tenant_a)
    assert (await calls(api, tenant_b))["total"] == 0
    theirs = (await calls(api, tenant_a, has_recording="true"))["items"][0]["id"]
    for path in (f"/calls/{theirs}", f"/calls/{theirs}/recording", f"/calls/{uuid.uuid4()}"):
        r = await api.get(f"{API}{path}", headers=tenant_b.headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path


async def test_reading_needs_authentication_and_a_role_that_reads(
    api: httpx.AsyncClient, container: Container, journal: JournalService
) -> None:
    assert (await api.get(f"{API}/calls")).status_code == 401
    operator = await make_tenant(container, "ops", role=Role.operator)
    assert (await api.get(f"{API}/calls", headers=operator.headers)).status_code == 200
    r = await api.get(f"{API}/calls", params={"limit": 0}, headers=operator.headers)
    assert r.status_code == 422


async def _csv(api: httpx.AsyncClient, t: Tenant, **params: Any) -> list[dict[str, str]]:
    r = await api.get(f"{API}/calls.csv", params=params, headers=t.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="calls.csv"'
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")  # spreadsheets read UTF-8 (Cyrillic) by this mark
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert tuple(rows[0]) == export.COLUMNS
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


async def test_export_as_csv(
    api: httpx.AsyncClient,
    bus: RecordingBus,
    container: Container,
    journal: JournalService,
    tenant_a: Tenant,
    tenant_b: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same filters as the search, newest first; times in the account's zone; names of
    who answered and of the caller's contact; a formula in a name is defused."""
    p = Principal(account_id=tenant_a.account_id, role=Role.admin)
    anna = await container.directory.create_employee(
        p, EmployeeIn(name="Анна Петрова", extension="101", sip_password="pass-101-long")
    )
    evil = await container.contacts.create_contact(
        p, ContactIn(name='=HYPERLINK("http://x")', numbers=["+79161234567"])
    )
    async with container.db.unit_of_work() as uow:
        account = await uow.session.get(Account, tenant_a.account_id)
        assert account is not None
        account.time_zone = "Asia/Novosibirsk"  # UTC+7
    base = CallScript(tenant_a.account_id)
    answered = CallScript(tenant_a.account_id, call_id="c-answered")
    missed = CallScript(
        tenant_a.account_id,
        call_id="c-missed",
        start=base.at(3600),
        caller="+79161234567",
        contact_id=evil.contact.id,
    )
    await publish(
        bus,
        answered.started(),
        answered.ringing("a", 1, anna.view.employee.id),
        answered.answered("a", 6, by=anna.view.employee.id),
        dataclasses.replace(
            answered.ended(66, Disposition.answered),
            srtp=True,
            peer_loss=0.0125,
            peer_jitter_ms=3.456,
            rtt_ms=42.0,
        ),
        missed.started(),
        missed.ended(21, Disposition.missed),
    )
    other = CallScript(tenant_b.account_id, call_id="c-elsewhere")
    await publish(bus, other.started(), other.ended(5, Disposition.missed))

    rows = await _csv(api, tenant_a)
    assert [r["call_id"] for r in rows] == ["c-missed", "c-answered"]
    # Stable keys: the old columns in their old places, the later ones appended.
    assert export.COLUMNS[-8:-2] == (
        "call_id",
        "id",
        "srtp",
        "peer_loss",
        "peer_jitter_ms",
        "rtt_ms",
    )
    assert export.COLUMNS[-2:] == ("recording_expired", "voicemail_expired")
    assert export.COLUMNS.index("mos") == 17
    got = rows[1]
    assert (got["srtp"], got["peer_loss"], got["peer_jitter_ms"], got["rtt_ms"]) == (
        "true",
        "0.0125",
        "3.46",
        "42.00",
    )
    figures = ("mos", "srtp", "peer_loss", "peer_jitter_ms", "rtt_ms")
    assert all(rows[0][k] == "" for k in figures)  # the missed call had no media at all
    r = await api.get(f"{API}/calls/{got['id']}", headers=tenant_a.headers)
    assert r.status_code == 200
    body = r.json()  # the same figures through GET /calls/{id}
    assert (body["srtp"], body["peer_loss"], body["peer_jitter_ms"], body["rtt_ms"]) == (
        True,
        0.0125,
        3.456,
        42.0,
    )
    assert got["started_at"] == "2024-05-01T16:00:00+07:00"  # 09:00 UTC
    assert (got["direction"], got["disposition"], got["line"]) == ("inbound", "answered", "Sales")
    assert (got["answered_by"], got["answered_extension"]) == ("Анна Петрова", "101")
    assert (got["wait_seconds"], got["talk_seconds"], got["utm_source"]) == (
        "6.0",
        "60.0",
        "yandex",
    )
    assert got["caller"] == "+74951112233"  # a plain number stays as it is
    assert rows[0]["contact"] == '\'=HYPERLINK("http://x")'
    assert rows[0]["answered_by"] == "" and rows[0]["disposition"] == "missed"
    assert [r["call_id"] for r in await _csv(api, tenant_a, disposition="missed")] == ["c-missed"]
    assert await _csv(api, tenant_a, q="000000") == []
    # Keyset chunks: every call once, in order, across chunk boundaries.
    monkeypatch.setattr(export, "CHUNK", 1)
    assert [r["call_id"] for r in await _csv(api, tenant_a)] == ["c-missed", "c-answered"]
    r = await api.get(
        f"{API}/calls.csv", params={"direction": "sideways"}, headers=tenant_a.headers
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert (await api.get(f"{API}/calls.csv")).status_code == 401


async def test_calls_that_sounded_bad_are_found_by_mos(
    api: httpx.AsyncClient, bus: RecordingBus, tenant_a: Tenant
) -> None:
    """``mos_below`` finds a call by its caller's MOS or by any target leg's; calls with no
    figures (no audio) never match."""

    def quality(script: CallScript, caller: float | None, leg: float | None) -> list[Any]:
        return [
            script.started(),
            script.ringing("a", 1),
            script.answered("a", 2),
            script.leg_ended("a", 30, LegEndReason.completed, mos=leg),
            script.ended(30, Disposition.answered, mos=caller),
        ]

    base = CallScript(tenant_a.account_id)
    good = CallScript(tenant_a.account_id, call_id="q-good")
    bad_caller = CallScript(tenant_a.account_id, call_id="q-caller", start=base.at(60))
    bad_agent = CallScript(tenant_a.account_id, call_id="q-agent", start=base.at(120))
    silent = CallScript(tenant_a.account_id, call_id="q-none", start=base.at(180))
    await publish(
        bus,
        *quality(good, 4.4, 4.3),
        *quality(bad_caller, 2.9, 4.3),
        *quality(bad_agent, 4.4, 3.1),
        *quality(silent, None, None),
    )
    assert ids(await calls(api, tenant_a, mos_below=3.6)) == ["q-agent", "q-caller"]
    assert ids(await calls(api, tenant_a, mos_below=3.0)) == ["q-caller"]
    assert ids(await calls(api, tenant_a, mos_below=5)) == ["q-agent", "q-caller", "q-good"]
    for wrong in ("1", "5.5", "bad"):
        r = await api.get(f"{API}/calls", params={"mos_below": wrong}, headers=tenant_a.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
