"""End to end: an employee who chose to be rung on their mobile (``ring_mobile``).

The account's number rings employee 101 (scheme "ring 101"). 101 has a SIPp desk phone that
rings without answering, and a mobile, +79161112233, which the PBX must ring at the same time
through the account's trunk — a SIPp carrier that answers as the mobile network would. The
call is answered on the mobile, the desk phone is cancelled, and the journal says 101
answered (on a "mobile" leg). The INVITE to the mobile names the account's number as the
diverting one (RFC 5806 ``Diversion``): carriers that take calls only from the numbers they
host accept the customer's number in From then. Before, ``ring_mobile`` was stored and never
rung.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.pbxkit import call_101, mobile_of_101
from tests.e2e.schemes_kit import carrier_talk
from tests.e2e.test_early_media import app as app  # the fixture
from tests.pbx.conftest import NUMBER, seed_account
from tests.sip.peers.harness import SIPP, free_port
from tests.support.dnsmasq import dnsmasq, needs_dnsmasq, servers_zone
from zvonar.calls.events import Disposition, LegEndReason, TargetKind
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import EmployeePatch, TrunkIn
from zvonar.journal.service import CallFilter

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

MOBILE = "+79161112233"


def mobile_network_answers() -> str:
    """The carrier: the INVITE must be for the mobile number; it answers, waits for BYE."""
    xml = sippkit.uas_answer()
    check = (
        '<action><ereg regexp="^INVITE sip:\\+79161112233@" search_in="msg" check_it="true" '
        'assign_to="to_mobile"/>'
        # forwarded from the account's number (RFC 5806), so the carrier takes the
        # customer's number in From
        '<ereg regexp="^ *&lt;sip:\\+74951234567@.*reason=unconditional" search_in="hdr" '
        'header="Diversion:" check_it="true" assign_to="diverted"/></action>'
    )
    xml = xml.replace('<recv request="INVITE"/>', f'<recv request="INVITE">{check}</recv>', 1)
    return xml.replace("</scenario>", '<Reference variables="to_mobile,diverted"/></scenario>')


async def test_the_mobile_rings_with_the_desk_phone_and_answers(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha")
    carrier_port = await mobile_of_101(app, alpha, MOBILE)
    _rt, runs = await call_101(
        app,
        tmp_path,
        alpha,
        phone=sippkit.uas_ring_forever(),  # the desk phone rings, nobody picks it up
        carrier=carrier_talk(NUMBER.lstrip("+"), "+79160000001", talk_ms=500),
        others=(("mobile", mobile_network_answers(), carrier_port),),
    )
    assert runs["carrier"].stats.successful == 1, runs["carrier"].describe()
    assert runs["mobile"].stats.successful == 1, runs["mobile"].describe()  # it answered
    assert runs["phone"].stats.successful == 1, runs["phone"].describe()  # CANCEL, 487
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is Disposition.answered and call.answered_by == alpha.employee_id
    legs = (await app.journal.get_call(alpha.principal, call.id)).legs
    kinds = sorted((leg.target_kind, leg.end_reason) for leg in legs)
    assert kinds == sorted(
        [(TargetKind.employee, LegEndReason.cancelled), (TargetKind.mobile, LegEndReason.completed)]
    ), legs


@needs_dnsmasq
async def test_the_mobile_rings_through_the_carriers_next_server_when_one_fails(
    app: Container, tmp_path: Path
) -> None:
    """The trunk names a domain and no port: its SRV records list two servers (RFC 3263).
    The first answers 503; the mobile's INVITE goes to the second in the same ring step,
    which answers, while the desk phone still rings (and is cancelled)."""
    alpha = await seed_account(app, "alpha")
    first, second = free_port(), free_port()
    await app.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="carrier",
            host="carrier.zvonar.test",
            auth_mode=TrunkAuth.ip,
            allowed_sources=["127.0.0.1/32"],  # the customer's call comes from it
        ),
    )
    await app.directory.update_employee(
        alpha.principal, alpha.employee_id, EmployeePatch(mobile_numbers=[MOBILE], ring_mobile=True)
    )
    zone = servers_zone("carrier.zvonar.test", first, second)
    with dnsmasq(zone, tmp_path) as dns_port:
        _rt, runs = await call_101(
            app,
            tmp_path,
            alpha,
            phone=sippkit.uas_ring_forever(),
            carrier=carrier_talk(NUMBER.lstrip("+"), "+79160000001", talk_ms=500),
            others=(
                ("sbc1", sippkit.uas_refuses("503 Service Unavailable"), first),
                ("sbc2", mobile_network_answers(), second),
            ),
            dns_servers=(("127.0.0.1", dns_port),),
        )
    for name in ("carrier", "sbc1", "sbc2", "phone"):
        assert runs[name].stats.successful == 1, runs[name].describe()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is Disposition.answered and call.answered_by == alpha.employee_id
    legs = (await app.journal.get_call(alpha.principal, call.id)).legs
    kinds = sorted((leg.target_kind, leg.end_reason) for leg in legs)
    assert kinds == sorted(
        [
            (TargetKind.employee, LegEndReason.cancelled),
            (TargetKind.mobile, LegEndReason.failed),  # sbc1's 503
            (TargetKind.mobile, LegEndReason.completed),  # through sbc2
        ]
    ), legs
