"""Smaller promises of the journal's API: every disposition can be filtered on (all seven at
once), HEAD on a recording or a message answers as GET does without the body, and the CSV
comes in the shape Excel with a decimal comma opens."""

from __future__ import annotations

import csv
import io

import httpx

from tests.conftest import Tenant
from tests.journal.conftest import CallScript, publish
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.calls.events import CallRecorded, Disposition, VoicemailLeft
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.journal import export
from zvonar.journal.service import JournalService

API = "/api/v1"
WAV = b"RIFF" + bytes(range(256)) * 3


async def test_every_disposition_can_be_asked_for(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    base = CallScript(tenant_a.account_id)
    for i, disposition in enumerate(Disposition):
        call = CallScript(tenant_a.account_id, call_id=f"c-{disposition}", start=base.at(i))
        await publish(bus, call.started(), call.ended(5, disposition))
    everything = [("disposition", d.value) for d in Disposition]
    assert len(everything) == 7
    r = await api.get(f"{API}/calls", params=everything, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 7
    r = await api.get(f"{API}/calls", params={"disposition": "callback"}, headers=tenant_a.headers)
    assert r.status_code == 200 and [c["call_id"] for c in r.json()["items"]] == ["c-callback"]
    # Still bounded: a list longer than there are dispositions is refused.
    r = await api.get(
        f"{API}/calls", params=[*everything, ("disposition", "missed")], headers=tenant_a.headers
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_head_on_a_recording_or_a_message_is_get_without_the_body(
    api: httpx.AsyncClient,
    bus: RecordingBus,
    container: Container,
    journal: JournalService,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    a = tenant_a.account_id
    recorded = CallScript(a, call_id="c-rec")
    left = CallScript(a, call_id="c-vm", start=recorded.at(60))
    rec = journal.recording_path_for(a, recorded.call_id, recorded.start)
    vm = journal.recording_path_for(a, left.call_id, left.start).with_suffix(".vm.wav")
    rec.parent.mkdir(parents=True, exist_ok=True)
    rec.write_bytes(WAV)
    vm.write_bytes(WAV[:500])
    await publish(
        bus,
        recorded.started(),
        recorded.ended(30, Disposition.answered),
        CallRecorded(account_id=a, call_id=recorded.call_id, path=str(rec), duration=20),
        left.started(),
        left.ended(20, Disposition.missed),
        VoicemailLeft(account_id=a, call_id=left.call_id, path=str(vm), duration=9),
    )
    listed = (await api.get(f"{API}/calls", headers=tenant_a.headers)).json()["items"]
    pk = {c["call_id"]: c["id"] for c in listed}
    for kind, call_id, size in (("recording", "c-rec", len(WAV)), ("voicemail", "c-vm", 500)):
        url = f"{API}/calls/{pk[call_id]}/{kind}"
        got = await api.get(url, headers=tenant_a.headers)
        head = await api.head(url, headers=tenant_a.headers)
        assert head.status_code == 200, (kind, head.status_code)
        assert head.content == b""
        assert head.headers["content-length"] == str(size) == got.headers["content-length"]
        assert head.headers["accept-ranges"] == "bytes"
        assert head.headers["content-type"] == "audio/wav"
        part = await api.head(url, headers={**tenant_a.headers, "Range": "bytes=4-11"})
        assert part.status_code == 206 and part.content == b""
        assert part.headers["content-range"] == f"bytes 4-11/{size}"
        # The same rules as GET: another account, a role that may not listen.
        assert (await api.head(url, headers=tenant_b.headers)).status_code == 404
        operator = await container.accounts.create_token(a, name=kind, role=Role.operator)
        r = await api.head(url, headers={"Authorization": f"Bearer {operator.secret}"})
        assert r.status_code == 403
    # A call without that file: 404, as GET.
    r = await api.head(f"{API}/calls/{pk['c-vm']}/recording", headers=tenant_a.headers)
    assert r.status_code == 404


async def test_the_csv_for_excel_with_a_decimal_comma(
    api: httpx.AsyncClient,
    bus: RecordingBus,
    container: Container,
    journal: JournalService,
    tenant_a: Tenant,
) -> None:
    """``sep=semicolon``: `;` between cells and `,` in numbers, what Excel opens by a double
    click with Russian or Ukrainian regional settings; the default stays RFC 4180."""
    p = Principal(account_id=tenant_a.account_id, role=Role.admin)
    horns = await container.contacts.create_contact(
        p, ContactIn(name="Рога; Копыта", numbers=["+74951112233"])
    )
    call = CallScript(tenant_a.account_id, call_id="c-1", contact_id=horns.contact.id)
    await publish(
        bus,
        call.started(),
        call.ringing("a", 1),
        call.answered("a", 6.25),
        call.ended(66, Disposition.answered, mos=4.3, rtt_ms=42.5),
    )
    r = await api.get(f"{API}/calls.csv", params={"sep": "semicolon"}, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeffstarted_at;direction;caller;")
    rows = list(csv.DictReader(io.StringIO(text[1:]), delimiter=";"))
    assert tuple(rows[0]) == export.COLUMNS
    (row,) = rows
    assert (row["wait_seconds"], row["talk_seconds"], row["mos"], row["rtt_ms"]) == (
        "6,2",
        "59,8",
        "4,30",
        "42,50",
    )
    # A cell holding the separator is quoted, as RFC 4180 quotes a comma.
    assert row["contact"] == "Рога; Копыта" and '"Рога; Копыта"' in text
    # The default is unchanged.
    plain = await api.get(f"{API}/calls.csv", headers=tenant_a.headers)
    (row,) = list(csv.DictReader(io.StringIO(plain.content.decode("utf-8-sig"))))
    assert (row["wait_seconds"], row["mos"]) == ("6.2", "4.30")
    assert plain.content.decode("utf-8-sig").startswith("started_at,direction,caller,")
    r = await api.get(f"{API}/calls.csv", params={"sep": "tab"}, headers=tenant_a.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
