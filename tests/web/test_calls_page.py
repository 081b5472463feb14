"""The call journal page: the account's calls on its own clock, filtered and paged, names for
numbers, the outcome in the user's language, a player for those who may listen."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import Tenant, make_tenant
from tests.journal.conftest import CallScript, publish
from tests.web.test_web import assert_page_is_clean, post_login
from tests.web.test_web import sign_in as sign_in_any
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.calls.events import CallRecorded, Direction, Disposition, LegEndReason
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.directory.schemas import EmployeeIn
from zvonar.journal.service import JournalService
from zvonar.web import calls as calls_module

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


async def seed(container: Container, t: Tenant) -> uuid.UUID:
    """An answered and recorded call, a missed one from a known customer, an outbound one."""
    p = await _principal(container, t)
    anna = await container.directory.create_employee(
        p, EmployeeIn(name="Anna", extension="101", sip_password="pass-101-long")
    )
    by = anna.view.employee.id
    await container.contacts.create_contact(
        p, ContactIn(name="Bolts Ltd", numbers=["+79161234567"])
    )
    journal: JournalService = container.journal
    answered = CallScript(t.account_id, call_id="c-answered", start=T0, caller="+74951110001")
    missed = CallScript(
        t.account_id, call_id="c-missed", start=answered.at(3600), caller="+79161234567"
    )
    out = CallScript(
        t.account_id,
        call_id="c-out",
        start=answered.at(7200),
        caller="101",
        dialed="+74959998877",
        label=None,
        direction=Direction.outbound,
    )
    rec = journal.recording_path_for(t.account_id, "c-answered", T0)
    rec.parent.mkdir(parents=True, exist_ok=True)
    rec.write_bytes(b"RIFF....WAVE")
    await publish(
        container.bus,
        answered.started(),
        answered.ringing("a", 1, by),
        answered.answered("a", 6, by=by),
        answered.ended(72, Disposition.answered),
        CallRecorded(account_id=t.account_id, call_id="c-answered", path=str(rec), duration=66),
        missed.started(),
        missed.ringing("a", 1, by),
        missed.leg_ended("a", 21, LegEndReason.no_answer),
        missed.ended(21, Disposition.missed),
        out.started(),
        out.answered("out", 10),
        out.ended(40, Disposition.answered),
    )
    await journal.flush()
    return by


async def _principal(_container: Container, t: Tenant) -> Principal:
    return Principal(account_id=t.account_id, role=Role.admin)


async def sign_in(client: httpx.AsyncClient, t: Tenant) -> str:
    """Signed in, the page in English whatever the account's language."""
    csrf = await sign_in_any(client, t)
    r = await client.post("/settings/language", data={"csrf_token": csrf, "language": "en"})
    assert r.status_code == 303
    return csrf


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-call="[^"]+">(.*?)</tr>', html, re.S)


def text(fragment: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


async def test_the_journal_page_shows_the_accounts_calls_newest_first(
    client: httpx.AsyncClient, container: Container, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await seed(container, tenant_a)
    await sign_in(client, tenant_a)
    r = await client.get("/calls")
    assert r.status_code == 200
    assert_page_is_clean(r)
    found = [text(row) for row in rows(r.text)]
    assert len(found) == 3
    out, missed, answered = found
    # Times on the account's clock (UTC for a new account), names for numbers and people.
    assert out.startswith("2026-12-01 09:00:00 outgoing +74959998877")
    assert "Bolts Ltd +79161234567" in missed and "missed" in missed and "Sales" in missed
    assert "Anna (101)" in answered and "0:06 1:06 answered" in answered
    assert r.text.count('<audio controls preload="none" src="/api/v1/calls/') == 1
    # The other account sees none of them.
    other = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with other:
        await sign_in(other, tenant_b)
        assert rows((await other.get("/calls")).text) == []


async def test_filters_and_the_users_language(
    client: httpx.AsyncClient, container: Container, tenant_a: Tenant
) -> None:
    await seed(container, tenant_a)
    csrf = await sign_in(client, tenant_a)
    r = await client.get("/calls", params={"disposition": "missed"})
    assert [text(x).split()[2] for x in rows(r.text)] == ["incoming"]
    r = await client.get("/calls", params={"direction": "outbound", "q": "8877"})
    assert len(rows(r.text)) == 1
    r = await client.get("/calls", params={"q": "+7 916 123"})
    assert "Bolts Ltd" in r.text and len(rows(r.text)) == 1
    # A number as people write it in the account's country, and the customer on either side.
    r = await client.get("/calls", params={"q": "8 916 123"})
    assert "Bolts Ltd" in r.text and len(rows(r.text)) == 1
    r = await client.get("/calls", params={"q": "9998877"})
    assert [text(x).split()[2] for x in rows(r.text)] == ["outgoing"]
    r = await client.get("/calls", params={"from": "2026-12-02"})
    assert rows(r.text) == [] and 'id="calls-empty"' in r.text
    for far in ({"to": "9999-12-31"}, {"from": "0001-01-01"}, {"q": "sipp"}):
        r = await client.get("/calls", params=far)
        assert r.status_code == 200 and len(rows(r.text)) == 3, far
        assert r.text.count('role="alert"') == 1, far
    # Bad input is said and left out, never a 500.
    r = await client.get("/calls", params={"from": "yesterday", "disposition": "lost"})
    assert r.status_code == 200 and len(rows(r.text)) == 3
    assert r.text.count('role="alert"') == 2
    # The language switch comes back to this page, in Russian.
    here = "/calls?disposition=missed&q=916"
    page = await client.get(here)
    assert f'name="next" value="{here.replace("&", "&amp;")}"' in page.text
    switched = await client.post(
        "/settings/language", data={"csrf_token": csrf, "language": "ru", "next": here}
    )
    assert switched.status_code == 303 and switched.headers["location"] == here
    r = await client.get("/calls")
    assert "пропущен" in r.text and "Звонки" in r.text and "3 звонка" in r.text


async def test_the_language_switch_never_redirects_off_site(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    csrf = await sign_in(client, tenant_a)
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", ""):
        r = await client.post(
            "/settings/language", data={"csrf_token": csrf, "language": "en", "next": target}
        )
        assert r.headers["location"] == "/", target


async def test_older_calls_follow_the_cursor(
    client: httpx.AsyncClient,
    container: Container,
    tenant_a: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed(container, tenant_a)
    await sign_in(client, tenant_a)
    monkeypatch.setattr(calls_module, "PAGE_SIZE", 2)
    first = await client.get("/calls")
    older = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert older and len(rows(first.text)) == 2
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert [text(x).split()[0:2] for x in rows(second.text)] == [["2026-12-01", "07:00:00"]]
    assert 'rel="next"' not in second.text and "Newest calls" in second.text
    bad = await client.get("/calls", params={"cursor": "forged"})
    assert bad.status_code == 200 and "The page link has expired" in bad.text


async def test_who_sees_the_page_and_the_player(
    client: httpx.AsyncClient, container: Container, tenant_a: Tenant
) -> None:
    await seed(container, tenant_a)
    for role, player in ((Role.operator, False), (Role.supervisor, True)):
        email = f"{role.value}@alpha.example"
        await container.accounts.create_user(
            tenant_a.account_id,
            email=email,
            name=role.value,
            role=role,
            password="a long password 1",
        )
        async with httpx.AsyncClient(
            transport=client._transport, base_url="http://testserver"
        ) as c:
            assert (await post_login(c, email, "a long password 1")).status_code == 303
            r = await c.get("/calls")
            assert r.status_code == 200 and len(rows(r.text)) == 3
            answered = rows(r.text)[-1]
            assert ("<audio" in answered) is player
            assert ('<span class="muted small">' in answered) is not player  # "recorded"
            assert 'href="/calls"' in (await c.get("/")).text


async def test_signed_out_goes_to_login(client: httpx.AsyncClient) -> None:
    r = await client.get("/calls")
    assert r.status_code == 303 and r.headers["location"] == "/login"


async def test_an_account_with_a_zone_shows_its_own_clock(
    client: httpx.AsyncClient, container: Container
) -> None:
    t = await make_tenant(container, "moscow")
    await container.accounts.update_settings(
        Principal(account_id=t.account_id, role=Role.admin), {"time_zone": "Europe/Moscow"}
    )
    await seed(container, t)
    await sign_in(client, t)
    r = await client.get("/calls")
    assert text(rows(r.text)[-1]).startswith("2026-12-01 10:00:00")
    assert "Europe/Moscow" in r.text


async def test_one_calls_page_has_its_legs_path_and_player(
    client: httpx.AsyncClient, container: Container, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await seed(container, tenant_a)
    await sign_in(client, tenant_a)
    listing = await client.get("/calls")
    links = re.findall(r'<a href="(/calls/[0-9a-f-]{36})">', listing.text)
    assert len(links) == 3
    r = await client.get(links[-1])  # the oldest: answered by Anna after 6 s, recorded
    assert r.status_code == 200
    assert_page_is_clean(r)
    facts = text(re.search(r'<dl class="facts" id="call-facts">(.*?)</dl>', r.text, re.S)[1])
    assert "Anna (101)" in facts and "0:06" in facts and "1:06" in facts
    legs = text(re.search(r'<table class="calls" id="call-legs">(.*?)</table>', r.text, re.S)[1])
    # The leg rang from 1 s and was answered at 6 s: it rang for 5 s.
    assert "Employee a employee 07:00:01 0:05 answered hung up" in legs
    path = text(re.search(r'<ol class="path" id="call-path">(.*?)</ol>', r.text, re.S)[1])
    assert path == "working hours ring sales"
    assert f'<audio controls preload="none" src="/api/v1{links[-1]}/recording">' in r.text
    # Another account's call, or no call at all, is not found; signed out goes to sign in.
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as c:
        await sign_in(c, tenant_b)
        assert (await c.get(links[-1])).status_code == 404
        assert (await c.get("/calls/not-a-call")).status_code == 404
        assert (await c.get(f"/calls/{uuid.uuid4()}")).status_code == 404
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as c:
        r = await c.get(links[-1])
        assert r.status_code == 303 and r.headers["location"] == "/login"
