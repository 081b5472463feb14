"""Routing over HTTP: scheme CRUD, validation codes with paths, number assignment, calendar,
events after commit, and the 404 rule for another account's ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tests.conftest import Tenant
from zvonar.configfile import apply_config
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.integrations.http_route import CallFacts, build_route_request
from zvonar.integrations.signing import SIGNATURE_HEADER, route_secret, verify
from zvonar.routing.events import CalendarChanged, SchemeAssigned, SchemeChanged

API = "/api/v1"


async def call(
    client: httpx.AsyncClient, t: Tenant, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, f"{API}{path}", json=body, headers=t.headers)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    return err


async def setup_directory(client: httpx.AsyncClient, t: Tenant, e164: str = "+74951234567") -> str:
    ok(await call(client, t, "POST", "/employees", {"name": "Office", "extension": "100"}), 201)
    ok(await call(client, t, "POST", "/groups", {"name": "Managers"}), 201)
    n = ok(await call(client, t, "POST", "/numbers", {"number": e164}), 201)
    number_id: str = n["id"]
    return number_id


MAIN = {
    "name": "Main",
    "branches": {
        "working": [
            {"type": "ring", "label": "Office", "targets": [{"employee": 100}], "timeout": 20},
            {"type": "ring", "targets": [{"group": "Managers"}]},
            {"type": "goto", "scheme": "Shop"},
        ]
    },
}
SHOP = {
    "name": "Shop",
    "branches": {"working": [{"type": "ring", "targets": [{"sip": "sip:shop@pbx.example"}]}]},
}


async def test_scheme_crud_assignment_and_events(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, bus: RecordingBus
) -> None:
    number_id = await setup_directory(client, tenant_a)
    # Main goes to Shop, which does not exist yet.
    err = error(await call(client, tenant_a, "POST", "/schemes", MAIN), 422)
    assert err["code"] == "unknown_scheme" and err["details"]["path"] == "branches.working[2]"
    shop = ok(await call(client, tenant_a, "POST", "/schemes", SHOP), 201)
    main = ok(await call(client, tenant_a, "POST", "/schemes", MAIN), 201)
    assert main["branches"]["working"][0]["targets"] == [{"employee": "100"}]
    assert main["final"] is None
    assert [e.scheme_name for e in bus.of_type(SchemeChanged)] == ["Shop", "Main"]

    page = ok(await call(client, tenant_a, "GET", "/schemes?q=ma"))
    assert page["total"] == 1 and page["items"][0]["name"] == "Main"
    assert error(await call(client, tenant_a, "POST", "/schemes", SHOP), 409)["code"] == (
        "scheme_name_taken"
    )

    # Assign and read back; Shop cannot go while Main jumps to it, Main not while assigned.
    out = ok(
        await call(
            client, tenant_a, "PUT", f"/numbers/{number_id}/scheme", {"scheme_id": main["id"]}
        )
    )
    assert out == {"number_id": number_id, "e164": "+74951234567", "scheme_id": main["id"]}
    assert bus.of_type(SchemeAssigned)[-1].scheme_id is not None
    got = ok(await call(client, tenant_a, "GET", f"/numbers/{number_id}/scheme"))
    assert got["scheme_id"] == main["id"]
    assert (
        error(await call(client, tenant_a, "DELETE", f"/schemes/{shop['id']}"), 409)["code"]
        == "scheme_in_use"
    )
    assert (
        error(await call(client, tenant_a, "DELETE", f"/schemes/{main['id']}"), 409)["code"]
        == "scheme_in_use"
    )

    err = error(await call(client, tenant_a, "DELETE", f"/schemes/{shop['id']}"), 409)
    assert err["details"] == {"schemes": ["Main"], "scheme": "Main", "path": "branches.working[2]"}

    # Renaming Shop would leave Main going nowhere: refused as in use, naming Main — not as
    # an unknown scheme in Main's step. Main's own rename is fine (nobody goes to it).
    err = error(
        await call(client, tenant_a, "PUT", f"/schemes/{shop['id']}", {**SHOP, "name": "Store"}),
        409,
    )
    assert err["code"] == "scheme_in_use" and err["details"]["schemes"] == ["Main"]
    assert err["details"]["path"] == "branches.working[2]" and "'Main'" in err["message"]
    renamed = ok(
        await call(client, tenant_a, "PUT", f"/schemes/{main['id']}", {**MAIN, "name": "Main 2"})
    )
    assert renamed["name"] == "Main 2"
    ok(await call(client, tenant_a, "PUT", f"/schemes/{main['id']}", MAIN))

    # Replace: a loop Main → Shop → Main that rings nobody on the way is refused.
    loop = {"name": "Shop", "branches": {"working": [{"type": "goto", "scheme": "Main"}]}}
    main_silent = {"name": "Main", "branches": {"working": [{"type": "goto", "scheme": "Shop"}]}}
    ok(await call(client, tenant_a, "PUT", f"/schemes/{main['id']}", main_silent))
    err = error(await call(client, tenant_a, "PUT", f"/schemes/{shop['id']}", loop), 422)
    assert err["code"] == "goto_cycle"

    # Another tenant sees none of it.
    for method, path, body in [
        ("GET", f"/schemes/{main['id']}", None),
        ("PUT", f"/schemes/{main['id']}", SHOP),
        ("DELETE", f"/schemes/{shop['id']}", None),
        ("GET", f"/numbers/{number_id}/scheme", None),
        ("PUT", f"/numbers/{number_id}/scheme", {"scheme_id": None}),
    ]:
        assert error(await call(client, tenant_b, method, path, body), 404)["code"] == "not_found"
    assert ok(await call(client, tenant_b, "GET", "/schemes"))["total"] == 0
    b_number = await setup_directory(client, tenant_b, "+74957654321")
    err = error(
        await call(
            client, tenant_b, "PUT", f"/numbers/{b_number}/scheme", {"scheme_id": main["id"]}
        ),
        404,
    )
    assert err["code"] == "not_found"

    # Unassign, then both schemes can go.
    ok(await call(client, tenant_a, "PUT", f"/numbers/{number_id}/scheme", {"scheme_id": None}))
    ok(await call(client, tenant_a, "DELETE", f"/schemes/{main['id']}"), 204)
    ok(await call(client, tenant_a, "DELETE", f"/schemes/{shop['id']}"), 204)
    assert bus.of_type(SchemeChanged)[-1].action.value == "deleted"


async def test_scheme_validation_codes(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    await setup_directory(client, tenant_a)
    cases = [
        (
            {
                "name": "X",
                "branches": {"working": [{"type": "ring", "targets": [{"employee": "999"}]}]},
            },
            "unknown_reference",
            "branches.working[0].targets[0].employee",
        ),
        (
            {
                "name": "X",
                "branches": {"working": [{"type": "ring", "targets": [{"group": "Nope"}]}]},
            },
            "unknown_reference",
            "branches.working[0].targets[0].group",
        ),
        (
            {"name": "X", "branches": {"working": [{"type": "jump"}]}},
            "invalid_scheme",
            "branches.working[0]",
        ),
        ({"name": "X", "branches": {"working": []}}, "empty_scheme", "branches"),
        # A prompt key no prompt can have (it would play the default without a word).
        (
            {"name": "X", "branches": {"working": [{"type": "play", "prompt": "after-hours"}]}},
            "invalid_scheme",
            "branches.working[0].prompt",
        ),
        (
            {
                "name": "X",
                "branches": {"working": [{"type": "play", "prompt": "greeting"}]},
                "final": {"type": "voicemail", "greeting": "Off Hours"},
            },
            "invalid_scheme",
            "final.greeting",
        ),
        (
            {
                "name": "X",
                "branches": {
                    "off": [
                        {
                            "type": "ivr",
                            "prompt": "menu",
                            "invalid_prompt": "bad-choice",
                            "options": [{"digit": "1", "steps": [{"type": "hangup"}]}],
                        }
                    ]
                },
            },
            "invalid_scheme",
            "branches.off[0].invalid_prompt",
        ),
        (
            {
                "name": "X",
                "branches": {
                    "working": [
                        {"type": "ring", "targets": [{"group": "Managers"}], "announce": "Line1"}
                    ]
                },
            },
            "invalid_scheme",
            "branches.working[0].announce",
        ),
    ]
    for body, code, path in cases:
        err = error(await call(client, tenant_a, "POST", "/schemes", body), 422)
        assert (err["code"], err["details"]["path"]) == (code, path), body
    err = error(
        await call(client, tenant_a, "POST", "/schemes", {"name": "X", "extra": 1, "branches": {}}),
        422,
    )
    assert err["code"] == "validation_error"
    rated = {**MAIN, "name": "R", "rating": "yes"}  # a config file's flag must be a boolean too
    assert error(await call(client, tenant_a, "POST", "/schemes", rated), 422)["code"] == (
        "validation_error"
    )


async def test_calendar(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, bus: RecordingBus
) -> None:
    default = ok(await call(client, tenant_a, "GET", "/calendar"))
    assert default["hours"]["mon"] == ["09:00-18:00"] and default["hours"]["sat"] == []
    assert "country" not in default  # none of its own: the account's
    assert default["effective_country"] == "RU" and default["time_zone"] == "UTC"
    body = {"hours": {"sat": ["10:00-14:00"]}, "working_days": ["2024-06-12"]}
    cal = ok(await call(client, tenant_a, "PUT", "/calendar", body))
    assert cal["hours"]["mon"] == [] and cal["working_days"] == ["2024-06-12"]
    assert len(bus.of_type(CalendarChanged)) == 1
    # Saturday 11:00 UTC: open under the new hours; the default tenant is off.
    at = "2024-03-16T11:00:00%2B00:00"
    assert (
        ok(await call(client, tenant_a, "GET", f"/calendar/branch?at={at}"))["branch"] == "working"
    )
    assert ok(await call(client, tenant_b, "GET", f"/calendar/branch?at={at}"))["branch"] == "off"
    err = error(
        await call(client, tenant_a, "PUT", "/calendar", {"hours": {"mon": ["9 to 5"]}}), 422
    )
    assert err["code"] == "invalid_calendar" and err["details"]["path"] == "hours.mon[0]"
    # Midnight as an end, a one-digit hour: taken, and answered in the canonical form.
    evening = {"hours": {"fri": ["9:00-18:00", "22:00-00:00"]}}
    cal = ok(await call(client, tenant_a, "PUT", "/calendar", evening))
    assert cal["hours"]["fri"] == ["09:00-18:00", "22:00-24:00"]
    err = error(
        await call(client, tenant_a, "PUT", "/calendar", {"hours": {"fri": ["18:00-18:00"]}}), 422
    )
    assert err["details"]["path"] == "hours.fri[0]" and "same time" in err["message"]
    err = error(await call(client, tenant_a, "PUT", "/calendar", {"country": "ZZ"}), 422)
    assert err["code"] == "invalid_country"


async def test_a_calendar_without_a_country_follows_the_accounts(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """Saved with ``country`` left out, the calendar takes the account's country whenever it
    is used: the account moving to Kazakhstan moves its holidays (Russia Day, Thursday 12 June
    2025, is a working day there); one that names its country (or none) keeps it."""
    hours = {"mon": ["09:00-18:00"], "thu": ["09:00-18:00"]}
    saved = ok(await call(client, tenant_a, "PUT", "/calendar", {"hours": hours}))
    assert "country" not in saved and saved["effective_country"] == "RU"
    at = "2025-06-12T06:00:00%2B00:00"  # 09:00 in Moscow, 11:00 in Almaty
    branch = f"/calendar/branch?at={at}"
    assert ok(await call(client, tenant_a, "GET", branch))["branch"] == "holiday"
    moved = {"country": "KZ", "time_zone": "Asia/Almaty"}
    ok(await call(client, tenant_a, "PATCH", "/account", moved))
    cal = ok(await call(client, tenant_a, "GET", "/calendar"))
    assert "country" not in cal and cal["effective_country"] == "KZ"
    assert cal["time_zone"] == "Asia/Almaty"
    assert ok(await call(client, tenant_a, "GET", branch))["branch"] == "working"
    # A country of its own, or none at all, stays whatever the account does.
    for own in ("RU", None):
        cal = ok(await call(client, tenant_a, "PUT", "/calendar", {"hours": hours, "country": own}))
        assert cal["country"] == own and cal["effective_country"] == own


def _scheme(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": "X", "branches": {"working": list(steps)}}


def _route(url: str) -> dict[str, Any]:
    return {"type": "http_route", "url": url, "fallback": [{"type": "hangup"}]}


async def test_a_scheme_the_api_takes_is_one_that_can_run(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """Write rules past parsing: what the API took, a call can use and `config apply` of its
    own export takes again."""
    await setup_directory(client, tenant_a)
    rule = {"type": "caller_rule", "rules": [{"tags": ["a b!"], "steps": [{"type": "hangup"}]}]}
    cases: list[tuple[dict[str, Any], str, str]] = [
        (_scheme(rule), "invalid_scheme", "branches.working[0].rules[0].tags"),
        (_scheme({"type": "caller_rule"}), "invalid_scheme", "branches.working[0].rules"),
        # config apply refuses a queue step naming no queue: so does the API now.
        (
            _scheme({"type": "queue", "queue": "nosuch"}),
            "unknown_reference",
            "branches.working[0].queue",
        ),
        (_scheme({"type": ["ring"]}), "invalid_scheme", "branches.working[0]"),
        (_scheme(_route("http://[::1/")), "invalid_scheme", "branches.working[0].url"),
    ]
    for url in (
        "http://127.0.0.1:8080/api/v1/me",
        "http://10.0.0.5/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://localhost/x",
        "https://user:secret@crm.example/route",
        "https://crm.example:99999/route",
    ):
        cases.append((_scheme(_route(url)), "unsafe_url", "branches.working[0].url"))
    for body, code, path in cases:
        err = error(await call(client, tenant_a, "POST", "/schemes", body), 422)
        assert (err["code"], err["details"]["path"]) == (code, path), body
    assert ok(await call(client, tenant_a, "GET", "/schemes"))["total"] == 0

    # A public name is checked against its addresses when a call asks, not now.
    ok(
        await call(client, tenant_a, "POST", "/schemes", _scheme(_route("https://crm.example/r"))),
        201,
    )
    # Contacts keep tags lower-case: so does a rule, or VIP would never match vip.
    vip = {"type": "caller_rule", "rules": [{"tags": ["VIP"], "steps": [{"type": "hangup"}]}]}
    made = ok(await call(client, tenant_a, "POST", "/schemes", {**_scheme(vip), "name": "V"}), 201)
    assert made["branches"]["working"][0]["rules"][0]["tags"] == ["vip"]


async def test_an_account_that_allows_private_targets_may_route_to_its_own_network(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    body = _scheme(_route("http://192.168.1.10:8000/route"))
    assert (
        error(await call(client, tenant_a, "POST", "/schemes", body), 422)["code"] == "unsafe_url"
    )
    doc = {"version": 1, "account": {"http_route_private": True}}
    await apply_config(container, tenant_a.account_id, doc, dry_run=False)
    ok(await call(client, tenant_a, "POST", "/schemes", body), 201)
    # Credentials in the URL stay refused: the request is signed instead.
    creds = _scheme(_route("http://u:p@192.168.1.10/route"))
    assert (
        error(await call(client, tenant_a, "POST", "/schemes", creds), 422)["code"] == "unsafe_url"
    )


async def test_lone_surrogates_are_refused_before_anything_is_written(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """JSON may escape half a UTF-16 pair; nothing could store or send it back (the scheme
    list answered 500 once such a label was stored)."""
    headers = {**tenant_a.headers, "Content-Type": "application/json"}
    for raw in (
        b'{"name":"sl","branches":{"working":[{"type":"hangup","label":"\\ud800"}]}}',
        b'{"name":"sl","branches":{"working":[{"type":"hangup","label":"x\\uDFFFy"}]}}',
        b'{"name":"\\ud83d","branches":{"working":[{"type":"hangup"}]}}',
    ):
        r = await client.post(f"{API}/schemes", content=raw, headers=headers)
        err = error(r, 400)
        assert err["code"] == "malformed_json" and "surrogate" in err["message"], raw
    assert ok(await call(client, tenant_a, "GET", "/schemes"))["total"] == 0
    # A whole pair is one character (an emoji): taken, and answered as that character.
    raw = b'{"name":"sl","branches":{"working":[{"type":"hangup","label":"\\ud83d\\ude00"}]}}'
    made = ok(await client.post(f"{API}/schemes", content=raw, headers=headers), 201)
    assert made["branches"]["working"][0]["label"] == "\U0001f600"
    assert ok(await call(client, tenant_a, "GET", "/schemes"))["total"] == 1
    # Bodies the JSON decoder refuses past its syntax are malformed JSON too.
    for raw in (b'{"name": ' + b"9" * 5000 + b"}", b'{"name": "\xff\xfe"}'):
        r = await client.post(f"{API}/schemes", content=raw, headers=headers)
        assert error(r, 400)["code"] == "malformed_json"


async def test_the_http_route_signing_key_is_the_accounts_own(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, container: Container
) -> None:
    a = ok(await call(client, tenant_a, "GET", "/routing/http-route"))
    b = ok(await call(client, tenant_b, "GET", "/routing/http-route"))
    assert a["secret"] != b["secret"] and len(a["secret"]) == 64
    assert a["signature_header"] == SIGNATURE_HEADER and a["tolerance_seconds"] == 300
    # The key the PBX signs with (pbx/runtime.py derives it the same way): a request it
    # signs verifies with what the API gave.
    key = container.settings.effective_secret_key
    assert a["secret"] == route_secret(key, tenant_a.account_id)
    body, headers = build_route_request(
        CallFacts("c1", "+79161234567", "+74951234567", "Resorts", datetime.now(UTC)),
        a["secret"],
        now=1_800_000_000,
    )
    assert verify(headers[SIGNATURE_HEADER], body, a["secret"], now=1_800_000_010)
    assert not verify(headers[SIGNATURE_HEADER], body, b["secret"], now=1_800_000_010)
