"""End to end: "press 1 to take the call" on a forwarded mobile (calls/accept.py).

The account's number rings employee 101 with ``confirm: true`` and an announcement (the
built-in "one" stands for an uploaded "a call on the Resorts line"); 101 has a SIPp desk phone
and a mobile rung in the same wave through the account's trunk (a SIPp carrier playing the
mobile network). The mobile answers at once in both tests:

- the person presses 1 (SIPp's RFC 2833 capture of "1", a second after the answer, as
  someone who listened to the prompt): the customer is answered only then, the desk phone
  is cancelled, the journal says 101 answered on the mobile leg;
- it is the mobile's voicemail (it never presses anything): it gets our BYE when the wait
  runs out, the desk phone that picks up three seconds later takes the call.

Without the confirmation the mobile's answer wins at once in both: the first test's wait
to answer would be under a second, the second's desk phone would be cancelled.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.pbxkit import call_101, mobile_of_101
from tests.e2e.schemes_kit import carrier_talk
from tests.e2e.test_early_media import app as app  # the fixture
from tests.pbx.conftest import NUMBER, Seeded, seed_account
from tests.sip.peers.harness import SIPP
from zvonar.calls import accept
from zvonar.calls.events import Disposition, LegEndReason, TargetKind
from zvonar.container import Container
from zvonar.journal.models import CallRecord
from zvonar.journal.service import CallFilter

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

MOBILE = "+79161112233"
CUSTOMER = "+79160000001"


async def _mobile_with_confirm(app: Container) -> tuple[Seeded, int]:
    """Seed the account: a trunk (the carrier's port returned), 101's mobile rung with its
    desk phone, the number's scheme ringing 101 with ``confirm``."""
    alpha = await seed_account(app, "alpha")
    carrier_port = await mobile_of_101(app, alpha, MOBILE)
    scheme = await app.routing.create_scheme(
        alpha.principal,
        "Confirm on the mobile",
        {
            "branches": {
                "working": [
                    {
                        "type": "ring",
                        "targets": [{"employee": "101"}],
                        "timeout": 20,
                        "confirm": True,
                        "announce": "n1",  # "one", as an uploaded "Resorts line" would be
                    }
                ]
            },
            "final": {"type": "hangup"},
        },
    )
    await app.routing.assign(alpha.principal, alpha.number_id, scheme.id)
    return alpha, carrier_port


def _after_ack(xml: str, ms: int) -> str:
    ack = '<recv request="ACK"/>'
    return xml.replace(ack, f'{ack}<pause milliseconds="{ms}"/>')


async def _legs(
    app: Container, alpha: Seeded
) -> tuple[CallRecord, list[tuple[TargetKind | None, LegEndReason | None]]]:
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    legs = (await app.journal.get_call(alpha.principal, call.id)).legs
    return call, sorted((leg.target_kind, leg.end_reason) for leg in legs)


async def test_the_mobile_takes_the_call_by_pressing_1(app: Container, tmp_path: Path) -> None:
    alpha, carrier_port = await _mobile_with_confirm(app)
    pressing = _after_ack(sippkit.uas_answer(pcap=sippkit.DTMF_1), 1000)
    _rt, runs = await call_101(
        app,
        tmp_path,
        alpha,
        phone=sippkit.uas_ring_forever(),
        carrier=carrier_talk(NUMBER.lstrip("+"), CUSTOMER, talk_ms=500),
        others=(("mobile", pressing, carrier_port),),
    )
    for name in ("carrier", "mobile", "phone"):
        assert runs[name].stats.successful == 1, runs[name].describe()
    call, legs = await _legs(app, alpha)
    assert call.disposition is Disposition.answered
    assert call.answered_by == alpha.employee_id
    # the customer was answered after the key, not at the mobile's answer
    assert call.wait_seconds is not None and call.wait_seconds >= 1.0, call
    assert legs == sorted(
        [(TargetKind.employee, LegEndReason.cancelled), (TargetKind.mobile, LegEndReason.completed)]
    )


async def test_a_mobile_voicemail_never_takes_the_call(
    app: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accept, "ACCEPT_SECONDS", 1.0)
    alpha, carrier_port = await _mobile_with_confirm(app)
    _rt, runs = await call_101(
        app,
        tmp_path,
        alpha,
        phone=sippkit.uas_answer(ring_ms=3000),  # the desk phone picks up after 3 s
        carrier=carrier_talk(NUMBER.lstrip("+"), CUSTOMER, talk_ms=500),
        others=(("mobile", sippkit.uas_answer(), carrier_port),),  # answers, says nothing
    )
    for name in ("carrier", "mobile", "phone"):
        assert runs[name].stats.successful == 1, runs[name].describe()  # the mobile: our BYE
    call, legs = await _legs(app, alpha)
    assert call.disposition is Disposition.answered
    assert legs == sorted(
        [(TargetKind.employee, LegEndReason.completed), (TargetKind.mobile, LegEndReason.no_answer)]
    )
