"""A trunk's asserted caller stands only for its own account's numbers (plan.CallerAuth):
what the resolver was asked, what the forks' From says, and what the journal keeps, on an
answered call and on one the account refuses."""

from __future__ import annotations

import uuid

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx
from tests.calls.test_b2bua import final_status, hang_up, target
from zvonar.calls.events import CallStarted
from zvonar.calls.plan import CallerAuth, Plan, Reject, Wave
from zvonar.pbx.invite_auth import trunk_auth
from zvonar.sip.io.testserver import CallLeg
from zvonar.sip.message import SipRequest
from zvonar.sip.ua import IncomingRequest, UaEvent

CUSTOMER = "+79161234567"
PAI = ("P-Asserted-Identity", f"<sip:{CUSTOMER}@carrier.example;user=phone>")
ANON = '"Anonymous" <sip:anonymous@anonymous.invalid>'


def dial_asserting(caller: Phone, pbx: Pbx, user: str) -> CallLeg:
    leg = caller.app.originate(
        f"sip:{user}@{pbx.address}",
        pbx.flow,
        caller.runner.loop.time(),
        from_header=ANON,
        headers=(PAI,),
    )
    caller.runner.pump()
    return leg


@pytest.mark.parametrize(
    ("auth", "asserted"),
    [
        (trunk_auth(ACCOUNT, srtp=False), True),
        (trunk_auth(uuid.uuid4(), srtp=False) | trunk_auth(ACCOUNT, srtp=False), True),
        (trunk_auth(uuid.uuid4(), srtp=False), False),  # another tenant's trunk
        (CallerAuth(), False),  # a stranger
    ],
    ids=["own-trunk", "shared-address", "another-tenants-trunk", "stranger"],
)
async def test_the_asserted_caller_of_an_answered_call(
    pbx: Pbx, phones: tuple[Phone, Phone], auth: CallerAuth, asserted: bool
) -> None:
    caller, callee = phones
    invites: list[SipRequest] = []
    handle = callee.app.handle_event

    def seen(event: UaEvent, now: float) -> None:
        if isinstance(event, IncomingRequest) and event.request.method == "INVITE":
            invites.append(event.request)
        handle(event, now)

    callee.app.handle_event = seen  # type: ignore[method-assign]
    pbx.b2bua.gate = lambda inc, now: auth
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial_asserting(caller, pbx, "100")
    assert await final_status(leg) == 200
    # The resolver is asked with From's identity and the assertion beside it: the number's
    # account decides (the real resolver calls for_account the moment it finds the number).
    (asked,) = pbx.resolver.seen
    assert asked.caller == "anonymous"
    assert asked.for_account(ACCOUNT).caller == (CUSTOMER if asserted else "anonymous")
    (started,) = [e for e in pbx.events() if isinstance(e, CallStarted)]
    assert started.caller == (CUSTOMER if asserted else "anonymous")
    # The fork's From: the customer's address when asserted, so "call back" dials them.
    (fork_invite,) = invites
    fork_from = str(fork_invite.from_.uri)
    assert fork_from.startswith(f"sip:{CUSTOMER}@" if asserted else "sip:anonymous@")
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_a_refused_call_keeps_the_asserted_caller(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """The account has no route for the number: the missed call is still the customer's."""
    caller, _ = phones
    pbx.b2bua.gate = lambda inc, now: trunk_auth(ACCOUNT, srtp=False)
    pbx.resolver.plans["100"] = Reject(480, "No Route", account_id=ACCOUNT)
    leg = dial_asserting(caller, pbx, "100")
    assert await final_status(leg) == 480
    (ended,) = await pbx.wait_ended()
    (started,) = [e for e in pbx.events() if isinstance(e, CallStarted)]
    assert started.caller == CUSTOMER and ended.call_id == started.call_id
