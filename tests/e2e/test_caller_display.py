"""End to end: employees' phones see on which line a customer calls, and who it is.

A SIPp carrier calls the account's number (label "Sales") from +79160000001; employee 101's
SIPp phone must receive our INVITE with ``From: "Sales: <who>" <sip:89160000001@…>`` — the
line's label and the contact's name from the directory when the number is a known contact,
else the number — while the address stays the caller's (so "call back" from the phone's
history dials the customer). Before, the phone saw the carrier's From as it came. The
carrier sends the number the national way (8916…): the phone's display and the journal's
caller are E.164, and the journal row names the contact.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.pbxkit import call_101
from tests.e2e.schemes_kit import carrier_talk
from tests.e2e.test_early_media import app as app  # the fixture
from tests.pbx.conftest import NUMBER, seed_account
from tests.sip.peers.harness import SIPP, free_port
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.runtime import PbxRuntime
from zvonar.pbx.trunk_registration import RegState

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

CUSTOMER = "+79160000001"


def phone_expecting(display: str, user: str = "8" + CUSTOMER[2:]) -> str:
    """101 answers once the INVITE's From shows ``display`` with the customer's address
    (``user``: by default the carrier's own way of writing the number)."""
    # SIPp reads attributes in double quotes only: "." stands for the display's quotes.
    shown = display.replace("+", "\\+")
    pattern = f"^ *.{shown}. &lt;sip:{user.replace('+', chr(92) + '+')}@"
    check = (
        f'<action><ereg regexp="{pattern}" search_in="hdr" header="From:" check_it="true" '
        'assign_to="shown"/></action>'
    )
    xml = sippkit.uas_answer()
    xml = xml.replace('<recv request="INVITE"/>', f'<recv request="INVITE">{check}</recv>', 1)
    return xml.replace("</scenario>", '<Reference variables="shown"/></scenario>')


@pytest.mark.parametrize(
    ("contact", "display"), [(None, f"Sales: {CUSTOMER}"), ("Bolts Ltd", "Sales: Bolts Ltd")]
)
async def test_the_phone_shows_the_line_and_the_caller(
    app: Container, tmp_path: Path, contact: str | None, display: str
) -> None:
    alpha = await seed_account(app, "alpha")
    contact_id = None
    if contact is not None:
        made = await app.contacts.create_contact(
            alpha.principal, ContactIn(name=contact, numbers=[CUSTOMER])
        )
        contact_id = made.contact.id
    carrier = carrier_talk(NUMBER.lstrip("+"), "8" + CUSTOMER[2:], talk_ms=300)  # 8916…
    _rt, runs = await call_101(
        app, tmp_path, alpha, phone=phone_expecting(display), carrier=carrier
    )
    assert runs["carrier"].stats.successful == 1, runs["carrier"].describe()
    assert runs["phone"].stats.successful == 1, runs["phone"].describe()  # From checked
    # The journal: the caller in E.164 whatever the carrier sent, and their contact.
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.caller == CUSTOMER and call.caller_contact_id == contact_id


@pytest.mark.parametrize("trunk_of", ["alpha", "beta"], ids=["own-trunk", "another-tenants-trunk"])
async def test_a_trusted_trunks_asserted_identity_is_the_caller(
    app: Container, tmp_path: Path, trunk_of: str
) -> None:
    """A carrier that writes ``anonymous`` (or its trunk number) in From and the caller in
    P-Asserted-Identity (RFC 3325): from a trunk we trust, the asserted number is the caller
    for the caller rule's contact lookup, the journal and the phone, whose "call back" then
    dials it. A trunk vouches for its own account only: when the address is listed by
    another tenant's trunk, a call to alpha's number from there is a stranger's (anyone may
    list any address)."""
    alpha = await seed_account(app, "alpha")
    beta = await seed_account(app, "beta", number="+74951230002")
    await app.directory.create_trunk(
        (alpha if trunk_of == "alpha" else beta).principal,
        TrunkIn(name="Carrier", host="127.0.0.1", auth_mode=TrunkAuth.ip,
                allowed_sources=["127.0.0.1"]),
    )  # fmt: skip
    made = await app.contacts.create_contact(
        alpha.principal, ContactIn(name="Bolts Ltd", numbers=[CUSTOMER])
    )
    carrier = carrier_talk(NUMBER.lstrip("+"), "anonymous", talk_ms=300).replace(
        "Max-Forwards: 70",
        f"Max-Forwards: 70\n      P-Asserted-Identity: <sip:{CUSTOMER}@[local_ip];user=phone>",
        1,
    )
    trusted = trunk_of == "alpha"
    if trusted:
        phone = phone_expecting("Sales: Bolts Ltd", CUSTOMER)
    else:
        phone = phone_expecting("Sales: anonymous", "anonymous")
    _rt, runs = await call_101(app, tmp_path, alpha, phone=phone, carrier=carrier)
    assert runs["carrier"].stats.successful == 1, runs["carrier"].describe()
    assert runs["phone"].stats.successful == 1, runs["phone"].describe()  # From checked
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    if trusted:
        assert call.caller == CUSTOMER and call.caller_contact_id == made.contact.id
    else:
        assert call.caller == "anonymous" and call.caller_contact_id is None


# The carrier's registrar: takes our REGISTER (no challenge: digest is registration's own
# test) and binds the Contact we sent.
_REGISTRAR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier registrar">
  <recv request="REGISTER"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]R[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Contact:];expires=600
      Content-Length: 0

  ]]></send>
</scenario>
"""


@pytest.mark.parametrize(
    ("token", "from_registrar", "listed", "trusted"),
    [
        (True, False, False, True),
        (False, True, False, True),
        (False, False, True, True),
        (False, False, False, False),
    ],
    ids=["to-the-bound-contact", "from-the-registrar", "from-a-listed-address", "stranger"],
)
async def test_a_registration_trunks_calls_are_told_apart(
    app: Container, tmp_path: Path, token: bool, from_registrar: bool, listed: bool, trusted: bool
) -> None:
    """A trunk that registers binds our Contact with a ``line`` token; the carrier sends its
    calls to that Contact, so the token comes back in the Request-URI and the call is that
    trunk's: its P-Asserted-Identity is the caller. A carrier that sends to the number
    instead is still known when the INVITE comes from its registrar's address and port, or
    from an address the trunk lists (``allowed_sources``: the carrier's SBCs). Any other such
    INVITE is a stranger's, and what it asserts is ignored."""
    alpha = await seed_account(app, "alpha")
    made = await app.contacts.create_contact(
        alpha.principal, ContactIn(name="Bolts Ltd", numbers=[CUSTOMER])
    )
    registrar_port = free_port()

    async def carrier(rt: PbxRuntime) -> str:
        trunk = await app.directory.create_trunk(
            alpha.principal,
            TrunkIn(name="Carrier", host="127.0.0.1", port=registrar_port,
                    auth_mode=TrunkAuth.registration, username="trunk-7001",
                    password="carrier-pass-9",
                    allowed_sources=["127.0.0.1"] if listed else []),
        )  # fmt: skip
        for _ in range(200):
            status = rt.registrations.get(trunk.id)
            if status is not None and status.state is RegState.registered:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the trunk never registered: {status}")
        seen = (tmp_path / "registrar_messages.log").read_text()
        (bound,) = set(re.findall(r"Contact: <(sip:trunk-7001@[^>]+)>", seen))
        assert ";line=" in bound
        ruri = bound if token else bound.split(";line=")[0]
        xml = carrier_talk(NUMBER.lstrip("+"), "anonymous", talk_ms=300)
        xml = xml.replace(f"INVITE sip:{NUMBER.lstrip('+')}@[remote_ip]:[remote_port]",
                          f"INVITE {ruri}", 1)  # fmt: skip
        return xml.replace(
            "Max-Forwards: 70",
            f"Max-Forwards: 70\n      P-Asserted-Identity: <sip:{CUSTOMER}@[local_ip]>",
            1,
        )

    registrar = ("registrar", _REGISTRAR, registrar_port)
    if trusted:
        phone = phone_expecting("Sales: Bolts Ltd", CUSTOMER)
    else:
        phone = phone_expecting("Sales: anonymous", "anonymous")
    _rt, runs = await call_101(
        app,
        tmp_path,
        alpha,
        phone=phone,
        carrier=carrier,
        others=(registrar,),
        carrier_port=registrar_port if from_registrar else None,  # the registrar has ended
    )
    assert runs["carrier"].stats.successful == 1, runs["carrier"].describe()
    assert runs["phone"].stats.successful == 1, runs["phone"].describe()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    if trusted:
        assert call.caller == CUSTOMER and call.caller_contact_id == made.contact.id
    else:
        assert call.caller == "anonymous" and call.caller_contact_id is None
