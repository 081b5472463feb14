"""The CANCEL to a fork that lost because another device answered says so (RFC 3326
``Reason: SIP;cause=200;text="Call completed elsewhere"``), so the phone does not list a
missed call; a CANCEL for any other cause (the caller hung up, the step timed out) does
not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from tests.calls.test_pickup import ringing_anna
from tests.calls.test_transfer import until
from zvonar.calls.events import CallRinging
from zvonar.calls.plan import Plan, Wave
from zvonar.sip.message import SipRequest, parse_message
from zvonar.sip.ua import Flow

ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'


@pytest.fixture
async def picker() -> AsyncIterator[Phone]:
    phone = await make_phone()
    yield phone
    await phone.runner.close()


def cancels(pbx: Pbx) -> list[SipRequest]:
    """Spy on what the PBX sends: the CANCELs, parsed."""
    sent: list[SipRequest] = []
    send = pbx.runner.send

    def spy(data: bytes, flow: Flow) -> bool:
        if data.startswith(b"CANCEL "):
            message = parse_message(data)
            assert isinstance(message, SipRequest)
            sent.append(message)
        return send(data, flow)

    pbx.runner.send = spy  # type: ignore[method-assign]
    return sent


async def test_the_forks_that_lost_are_told_the_call_was_completed_elsewhere(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    sent = cancels(pbx)
    wave = Wave((target(callee, "ring"), target(callee, "ring"), target(callee, "answer")), 5)
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (wave,))
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    await until(lambda: callee.app.calls_ended == 2)  # both ringing phones were cancelled
    assert len(sent) == 2
    assert [c.header_values("Reason") for c in sent] == [[ELSEWHERE], [ELSEWHERE]]
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_a_caller_who_hangs_up_or_a_step_that_times_out_cancels_without_a_reason(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    sent = cancels(pbx)
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "ring"),), 10),))
    leg = dial(caller, pbx, "100")
    await until(lambda: pbx.bus.of_type(CallRinging))
    hang_up(caller, leg)  # the caller's CANCEL
    await pbx.wait_ended()
    waves = (Wave((target(callee, "ring"),), 0.3), Wave((target(callee, "answer"),), 5))
    pbx.resolver.plans["200"] = Plan(ACCOUNT, waves)
    leg = dial(caller, pbx, "200")
    assert await final_status(leg) == 200  # the first wave rang out, then the second answered
    hang_up(caller, leg)
    await pbx.wait_ended(2)
    assert len(sent) == 2
    assert [c.header_values("Reason") for c in sent] == [[], []]


async def test_a_pickup_tells_the_ringing_phone_too(
    pbx: Pbx, phones: tuple[Phone, Phone], picker: Phone
) -> None:
    sent = cancels(pbx)
    leg = await ringing_anna(pbx, phones)
    picked = dial(picker, pbx, "*8101")
    assert await final_status(picked) == 200
    assert await final_status(leg) == 200
    (cancel,) = sent
    assert cancel.header_values("Reason") == [ELSEWHERE]
    hang_up(phones[0], leg)
    await pbx.wait_ended()
