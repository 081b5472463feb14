"""End to end: a customer's call forwarded out takes the trunk its callee ranks first.

The account's number rings employee 101 (scheme "ring 101"): a SIPp desk phone that rings
without answering, and 101's mobile +79161112233 (``ring_mobile``). The account has two
trunks: "a-world", first by name, which dials any number and whose carrier is not even
running, and "b-mobile", for Russian mobiles only (prefixes ``["+7916"]``), a SIPp carrier
that answers as the mobile network would. The mobile rings through b-mobile, answers, and the
desk phone is cancelled; the journal shows no failed leg (a try on a-world would be one).
Before, a forwarded call went out on the number's trunk, else the first active one by name,
whatever the trunks' prefixes and priorities said.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.pbxkit import call_101
from tests.e2e.schemes_kit import carrier_talk
from tests.e2e.test_early_media import app as app  # the fixture
from tests.e2e.test_ring_mobile import MOBILE, mobile_network_answers
from tests.pbx.conftest import NUMBER, seed_account
from tests.sip.peers.harness import SIPP, free_port
from zvonar.calls.events import Disposition, LegEndReason, TargetKind
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import EmployeePatch, TrunkIn
from zvonar.journal.service import CallFilter

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


async def test_the_mobile_rings_through_the_trunk_of_its_prefix(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha")
    mobile_port = free_port()
    for name, port, sources, prefixes in (
        ("a-world", free_port(), ["192.0.2.1/32"], []),  # nothing listens there
        ("b-mobile", mobile_port, ["127.0.0.1/32"], ["+7916"]),  # the customer's call too
    ):
        await app.directory.create_trunk(
            alpha.principal,
            TrunkIn(name=name, host="127.0.0.1", port=port, auth_mode=TrunkAuth.ip,
                    allowed_sources=sources, prefixes=prefixes),
        )  # fmt: skip
    await app.directory.update_employee(
        alpha.principal, alpha.employee_id, EmployeePatch(mobile_numbers=[MOBILE], ring_mobile=True)
    )
    _rt, runs = await call_101(
        app,
        tmp_path,
        alpha,
        phone=sippkit.uas_ring_forever(),  # the desk phone rings, nobody picks it up
        carrier=carrier_talk(NUMBER.lstrip("+"), "+79160000001", talk_ms=500),
        others=(("mobile", mobile_network_answers(), mobile_port),),
    )
    for name in ("carrier", "mobile", "phone"):  # answered on b-mobile; the phone: CANCEL
        assert runs[name].stats.successful == 1, runs[name].describe()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is Disposition.answered and call.answered_by == alpha.employee_id
    legs = (await app.journal.get_call(alpha.principal, call.id)).legs
    kinds = sorted((leg.target_kind, leg.end_reason) for leg in legs)
    assert kinds == sorted(
        [(TargetKind.employee, LegEndReason.cancelled), (TargetKind.mobile, LegEndReason.completed)]
    ), legs
