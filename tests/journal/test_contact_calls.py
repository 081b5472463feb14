"""``contact_id`` finds the customer's calls: from any of its numbers (also the calls made
before the contact existed), the account's calls to them, and the calls taken for it when
they were made — in the search and in the CSV export alike."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from tests.conftest import Tenant
from tests.journal.conftest import CallScript, publish
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.calls.events import Direction, Disposition
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.journal.service import JournalService

API = "/api/v1"
MOBILE, OFFICE = "+79161234567", "+74957654321"


async def test_a_contacts_calls_from_and_to_its_numbers(
    api: httpx.AsyncClient,
    bus: RecordingBus,
    container: Container,
    journal: JournalService,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    a = tenant_a.account_id
    base = CallScript(a)

    def call(name: str, hour: int, **kw: Any) -> CallScript:
        return CallScript(a, call_id=name, start=base.at(hour * 3600), **kw)

    # Before the customer was in the directory: the call row names no contact.
    before = call("c-before", 0, caller=MOBILE)
    p = Principal(account_id=a, role=Role.admin)
    bolts = await container.contacts.create_contact(
        p, ContactIn(name="Bolts Ltd", numbers=[MOBILE, OFFICE])
    )
    other = await container.contacts.create_contact(
        p, ContactIn(name="Nuts", numbers=["+79160000000"])
    )
    cid = bolts.contact.id
    outbound = call("c-out", 1, caller="101", dialed=OFFICE, direction=Direction.outbound)
    # A number the customer called from then, no longer among its numbers: the stored id.
    then = call("c-then", 2, caller="+79990001122", contact_id=cid)
    callback = call("c-callback", 3, caller=OFFICE, direction=Direction.callback)
    # Not theirs: another customer; an inbound call *to* a line that is their number is no
    # call of theirs (the caller is someone else); a colleague's internal call.
    nuts = call("c-nuts", 4, caller="+79160000000", contact_id=other.contact.id)
    wrong_way = call("c-wrong-way", 5, caller="+79160000000", dialed=MOBILE)
    internal = call("c-internal", 6, caller=MOBILE, direction=Direction.internal, dialed="102")
    scripts = (before, outbound, then, callback, nuts, wrong_way, internal)
    await publish(
        bus, *(e for c in scripts for e in (c.started(), c.ended(30, Disposition.missed)))
    )
    # Another account's call from the same number stays theirs.
    elsewhere = CallScript(tenant_b.account_id, call_id="c-b", caller=MOBILE)
    await publish(bus, elsewhere.started(), elsewhere.ended(5, Disposition.missed))

    r = await api.get(f"{API}/calls", params={"contact_id": str(cid)}, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    theirs = ["c-callback", "c-then", "c-out", "c-before"]
    assert [c["call_id"] for c in r.json()["items"]] == theirs
    assert r.json()["total"] == 4
    r = await api.get(f"{API}/calls.csv", params={"contact_id": str(cid)}, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["call_id"] for row in rows] == theirs
    # Another account cannot reach them through the contact's id.
    r = await api.get(f"{API}/calls", params={"contact_id": str(cid)}, headers=tenant_b.headers)
    assert r.json()["total"] == 0
