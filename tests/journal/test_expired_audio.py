"""A recording or voicemail message retention deleted reads as expired — its length kept —,
not as a call that was never recorded: in the call view and in the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx

from tests.conftest import Tenant
from tests.journal.conftest import CallScript, publish
from zvonar.calls.events import CallRecorded, Disposition, VoicemailLeft
from zvonar.core.bus import RecordingBus
from zvonar.journal.service import JournalService

API = "/api/v1"


async def _view(api: httpx.AsyncClient, t: Tenant, call_id: str) -> dict[str, Any]:
    r = await api.get(f"{API}/calls", params={"limit": 200}, headers=t.headers)
    (pk,) = [c["id"] for c in r.json()["items"] if c["call_id"] == call_id]
    r = await api.get(f"{API}/calls/{pk}", headers=t.headers)
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()
    return view


async def test_expired_recordings_and_messages_say_so(
    api: httpx.AsyncClient, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    a = tenant_a.account_id
    recorded = CallScript(a, call_id="c-recorded")
    message = CallScript(a, call_id="c-message", start=recorded.at(60))
    plain = CallScript(a, call_id="c-plain", start=recorded.at(120))
    rec = journal.recording_path_for(a, recorded.call_id, recorded.start)
    vm = journal.recording_path_for(a, message.call_id, message.start).with_suffix(".vm.wav")
    rec.parent.mkdir(parents=True, exist_ok=True)
    for path in (rec, vm):
        path.write_bytes(b"RIFF....WAVE")
    await publish(
        bus,
        recorded.started(),
        recorded.ringing("a", 1),
        recorded.answered("a", 2),
        recorded.ended(62, Disposition.answered),
        CallRecorded(account_id=a, call_id=recorded.call_id, path=str(rec), duration=60),
        message.started(),
        message.ended(20, Disposition.missed),
        VoicemailLeft(account_id=a, call_id=message.call_id, path=str(vm), duration=9),
        plain.started(),
        plain.ended(5, Disposition.missed),
    )
    fresh = await _view(api, tenant_a, "c-recorded")
    assert (fresh["has_recording"], fresh["recording_expired"]) == (True, False)

    assert await journal.purge_recordings(a, 30, recorded.at(0) + timedelta(days=31)) == 2
    gone = await _view(api, tenant_a, "c-recorded")
    assert (gone["has_recording"], gone["recording_seconds"], gone["recording_expired"]) == (
        False,
        60,
        True,
    )
    assert (gone["has_voicemail"], gone["voicemail_expired"]) == (False, False)
    left = await _view(api, tenant_a, "c-message")
    assert (left["has_voicemail"], left["voicemail_seconds"], left["voicemail_expired"]) == (
        False,
        9,
        True,
    )
    assert left["disposition"] == "voicemail"
    never = await _view(api, tenant_a, "c-plain")
    assert (never["recording_seconds"], never["recording_expired"]) == (None, False)
    assert (never["voicemail_seconds"], never["voicemail_expired"]) == (None, False)
    # The files themselves are gone as before, with the same stable codes.
    for kind in ("recording", "voicemail"):
        pk = (gone if kind == "recording" else left)["id"]
        r = await api.get(f"{API}/calls/{pk}/{kind}", headers=tenant_a.headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == f"{kind}_not_found"

    r = await api.get(f"{API}/calls.csv", headers=tenant_a.headers)
    rows = {
        row["call_id"]: row for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))
    }
    assert (rows["c-recorded"]["recording_seconds"], rows["c-recorded"]["recording_expired"]) == (
        "60.0",
        "true",
    )
    assert (rows["c-message"]["voicemail_seconds"], rows["c-message"]["voicemail_expired"]) == (
        "9.0",
        "true",
    )
    assert (rows["c-plain"]["recording_seconds"], rows["c-plain"]["recording_expired"]) == (
        "",
        "false",
    )
