"""What the B2BUA tells the journal about a call, over loopback: an employee's refused call
is theirs (direction, placed_by), a call that found nobody to ring is missed (not failed),
a ring step whose phones were busy or declined ended busy, and the number a carrier dialled
with escapes in its Request-URI is the number itself (RFC 3261 §19.1.2)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from tests.calls.test_steps import ScriptedRoute
from zvonar.calls.events import CallStarted, Direction, Disposition
from zvonar.calls.plan import Plan, Reject, StepResult, StepResultKind, Wave
from zvonar.notify.missed import NOTIFY_ON
from zvonar.sip.io.testserver import EchoPbx
from zvonar.sip.message import SipRequest, parse_message
from zvonar.sip.ua import IncomingRequest
from zvonar.sip.uri import SipUri

ANNA = uuid.UUID("00000000-0000-4000-8000-0000000000a1")


@pytest.mark.parametrize(
    ("dialed", "refusal", "direction"),
    [
        ("+442079460000", Reject(403, "Forbidden (international_not_allowed)"), "outbound"),
        ("+74951112233", Reject(403, "Forbidden (too_many_concurrent)"), "outbound"),
        ("8916", Reject(484, "Address Incomplete"), "outbound"),
        ("999", Reject(404, "Not Found", direction=Direction.internal), "internal"),
    ],
)
async def test_an_employees_refused_call_is_theirs_in_the_journal(
    pbx: Pbx, phones: tuple[Phone, Phone], dialed: str, refusal: Reject, direction: str
) -> None:
    """The resolver names who placed a refused call (pbx/resolver.py ``_placed``); the
    call's CallStarted carries it, not "inbound, placed by nobody"."""
    caller, _ = phones
    kind = Direction(direction)
    pbx.resolver.plans[dialed] = Reject(
        refusal.status, refusal.reason, account_id=ACCOUNT, direction=kind, placed_by=ANNA
    )
    leg = dial(caller, pbx, dialed)
    assert await final_status(leg) == refusal.status
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.failed  # refused: not a missed call of anyone's
    (started,) = pbx.bus.of_type(CallStarted)
    assert (started.direction, started.placed_by, started.dialed) == (kind, ANNA, dialed)


async def test_a_plan_names_who_placed_the_call(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["102"] = Plan(
        ACCOUNT,
        (Wave((target(callee, "answer"),), 5),),
        direction=Direction.internal,
        placed_by=ANNA,
    )
    leg = dial(caller, pbx, "102")
    assert await final_status(leg) == 200
    hang_up(caller, leg)
    await pbx.wait_ended()
    (started,) = pbx.bus.of_type(CallStarted)
    assert (started.direction, started.placed_by) == (Direction.internal, ANNA)


class _BrokenRoute(ScriptedRoute):
    async def next(self, result: StepResult | None) -> Wave:
        raise RuntimeError("the scheme interpreter broke")


@pytest.mark.parametrize(
    ("plan", "disposition"),
    [
        # The customer called and nobody answered: the missed-call mail and call-back list
        # (notify/missed.py) take it.
        (Plan(ACCOUNT, (), route=ScriptedRoute([])), Disposition.missed),
        # A scheme that ran out of steps the same way (the route's final 480).
        (
            Plan(ACCOUNT, (), route=ScriptedRoute([Reject(480, account_id=ACCOUNT)])),
            Disposition.missed,
        ),
        # A colleague with no phone registered (the internal path's empty plan).
        (
            Plan(ACCOUNT, (), final=Reject(480, account_id=ACCOUNT), direction=Direction.internal),
            Disposition.missed,
        ),
        # Our fault, not the caller's bad luck.
        (Plan(ACCOUNT, (), route=_BrokenRoute([])), Disposition.failed),
        # No carrier to try: the PBX's path.
        (Plan(ACCOUNT, (), direction=Direction.outbound), Disposition.failed),
    ],
    ids=[
        "scheme-hangs-up",
        "scheme-ran-out",
        "colleague-unregistered",
        "route-broke",
        "outbound-nowhere",
    ],
)
async def test_a_call_that_rang_nobody_is_missed_unless_the_pbx_failed_it(
    pbx: Pbx, phones: tuple[Phone, Phone], plan: Plan, disposition: Disposition
) -> None:
    caller, _ = phones
    pbx.resolver.plans["100"] = plan
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 480
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is disposition
    assert (ended.disposition in NOTIFY_ON) is (disposition is Disposition.missed)


class _Declining(EchoPbx):
    """EchoPbx, and a user "decline" that answers 603 at once (a phone's "reject" key)."""

    def _new_call(self, inc: IncomingRequest, now: float) -> None:
        uri = inc.request.uri
        if isinstance(uri, SipUri) and uri.user == "decline":
            self._reply(inc, 603, now)
            return
        super()._new_call(inc, now)


@pytest.mark.parametrize(
    ("users", "outcome"),
    [
        (("busy", "decline"), StepResultKind.busy),
        (("decline", "decline"), StepResultKind.busy),
        (("busy", "busy"), StepResultKind.busy),
        (("busy", "nobody"), StepResultKind.no_answer),  # 404 is no refusal by a person
    ],
)
async def test_a_step_whose_phones_declined_ended_busy(
    pbx: Pbx, phones: tuple[Phone, Phone], users: Iterable[str], outcome: StepResultKind
) -> None:
    """The route (and the journal's scheme_path) hears ``busy`` when each phone refused the
    call, 603 Decline as much as 486 Busy Here."""
    caller, callee = phones
    declining = _Declining(callee.runner.ua)
    declining.flush = callee.runner.pump
    callee.runner.app = declining
    route = ScriptedRoute([Wave(tuple(target(callee, u) for u in users), 5)])
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (), route=route)
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 480
    await pbx.wait_ended()
    assert route.results == [None, StepResult(outcome)]


def _escaped_invite(user: str) -> SipRequest:
    data = (
        f"INVITE sip:{user}@pbx.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n"
        "From: <sip:%2B79161112233@carrier.example>;tag=1\r\nTo: <sip:x@pbx.example>\r\n"
        "Call-ID: c1@192.0.2.10\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


async def test_an_escaped_plus_in_the_request_uri_dials_the_number(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """``INVITE sip:%2B74951234567@…`` is a call to +74951234567 (§19.1.4: an escaped
    character equals its unescaped form); before, the number was looked up escaped: 404."""
    caller, callee = phones
    pbx.resolver.plans["+74951234567"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial(caller, pbx, "%2B74951234567")
    assert await final_status(leg) == 200
    (seen,) = pbx.resolver.seen
    assert seen.dialed == "+74951234567"
    hang_up(caller, leg)
    await pbx.wait_ended()


def test_the_users_of_uris_are_read_unescaped() -> None:
    from zvonar.calls.identity import caller_identity
    from zvonar.calls.signalling import uri_user

    request = _escaped_invite("%2B7495%20123")
    assert uri_user(request.uri) == "+7495 123"
    assert caller_identity(request, trusted=False).user == "+79161112233"
    # What decodes to no printable text stays as it came: journals and logs get no raw bytes.
    assert uri_user(_escaped_invite("12%00").uri) == "12%00"
    assert uri_user(_escaped_invite("12%FF").uri) == "12%FF"
