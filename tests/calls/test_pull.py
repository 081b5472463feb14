"""Call pull over loopback (calls/pull.py): Anna answers a customer on her desk phone, then
dials ``*11`` on her other device — the call moves there (answered, the customer's media
bridged to it) and the desk phone gets a BYE; one call, answered by Anna. With no answered
call of hers (nothing, only a ringing one, a colleague's): 404 and no call events."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx
from zvonar.calls.events import (
    CallAnswered,
    CallRinging,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
    Target,
    TargetKind,
)
from zvonar.calls.plan import CallerAuth, InboundCall, Plan, Reject, RingTarget, Wave
from zvonar.calls.pull import Pull
from zvonar.media.errors import MediaError
from zvonar.sip.io.testserver import CallLeg

from .test_b2bua import dial, final_status, hang_up
from .test_pickup import ANNA, BORIS, relayed, rtp_socket, sdp
from .test_transfer import until


@pytest.fixture
async def mobile() -> AsyncIterator[Phone]:
    """Anna's other device (the softphone on her mobile)."""
    phone = await make_phone()
    yield phone
    await phone.runner.close()


def pull_for(employee: uuid.UUID) -> object:
    def order(_call: InboundCall) -> Pull:
        return Pull(ACCOUNT, employee, Target(TargetKind.employee, "Anna", employee))

    return order


def anna(phone: Phone, behaviour: str) -> Plan:
    target = Target(TargetKind.employee, "Anna", ANNA)
    return Plan(ACCOUNT, (Wave((RingTarget(phone.uri(behaviour), phone.flow, target),), 10),))


async def _answered_then_pulled(
    pbx: Pbx, phones: tuple[Phone, Phone], mobile: Phone, a_rtp: socket.socket, b_rtp: socket.socket
) -> tuple[CallLeg, str, CallLeg]:
    """The caller (RTP on ``a_rtp``) is answered by Anna's desk phone; then her mobile (RTP on
    ``b_rtp``) dials *11. The caller's leg, the call's id and the mobile's leg."""
    caller, desk = phones
    pbx.resolver.plans["100"] = anna(desk, "answer")
    pbx.resolver.plans["*11"] = pull_for(ANNA)  # type: ignore[assignment]
    leg = dial(caller, pbx, "100", sdp(a_rtp.getsockname()[1]))
    assert await final_status(leg) == 200
    call_id = pbx.events()[0].call_id
    return leg, call_id, dial(mobile, pbx, "*11", sdp(b_rtp.getsockname()[1]))


async def test_the_call_moves_to_the_device_that_dials_the_code(
    pbx: Pbx, phones: tuple[Phone, Phone], mobile: Phone
) -> None:
    caller, desk = phones
    a_rtp, b_rtp = rtp_socket(), rtp_socket()
    try:
        leg, call_id, pulled = await _answered_then_pulled(pbx, phones, mobile, a_rtp, b_rtp)
        assert await final_status(pulled) == 200
        await until(lambda: desk.app.calls_ended == 1)  # our BYE reached the desk phone
        await until(lambda: len(pbx.bus.of_type(CallAnswered)) == 2)

        # One call: the puller's INVITE made none of its own.
        assert {e.call_id for e in pbx.events()} == {call_id}
        first, then = ((a.leg_id, a.by) for a in pbx.bus.of_type(CallAnswered))
        assert first == (f"{call_id}.w0t0", ANNA)
        new_leg = then[0]
        assert new_leg.startswith(f"{call_id}.pl") and then[1] == ANNA
        assert {r.leg_id for r in pbx.bus.of_type(CallRinging)} == {f"{call_id}.w0t0", new_leg}
        ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
        assert ends == {f"{call_id}.w0t0": LegEndReason.completed}

        # The customer's RTP now reaches the new device.
        data = await relayed(pbx, call_id, a_rtp, b_rtp)
        assert data[12:] == b"\xff" * 160

        hang_up(caller, leg)  # the customer's BYE ends the new device's leg
        assert pulled.ended is not None
        assert await asyncio.wait_for(pulled.ended, 5) == "bye"
        (ended,) = await pbx.wait_ended()
        assert ended.disposition is Disposition.answered
        assert ended.hangup is HangupSide.caller
        ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
        assert ends[new_leg] is LegEndReason.completed
        await asyncio.wait_for(pbx.b2bua.wait_idle(), 5)
        assert pbx.b2bua.engine.leg_count == 0  # type: ignore[attr-defined]
    finally:
        a_rtp.close()
        b_rtp.close()


@pytest.mark.parametrize("case", ["nothing", "ringing", "a-colleagues-call"])
async def test_nothing_to_pull_is_404(
    pbx: Pbx, phones: tuple[Phone, Phone], mobile: Phone, case: str
) -> None:
    caller, desk = phones
    whose = BORIS if case == "a-colleagues-call" else ANNA
    pbx.resolver.plans["*11"] = pull_for(whose)  # type: ignore[assignment]
    leg = None
    if case != "nothing":
        pbx.resolver.plans["100"] = anna(desk, "ring" if case == "ringing" else "answer")
        leg = dial(caller, pbx, "100")
        if case == "ringing":
            await until(lambda: pbx.bus.of_type(CallRinging))
        else:
            assert await final_status(leg) == 200
    before = len(pbx.events())
    pulled = dial(mobile, pbx, "*11")
    assert await final_status(pulled) == 404
    assert len(pbx.events()) == before  # no call events for the refused pull
    assert desk.app.calls_ended == 0  # Anna's desk phone keeps its call (or rings on)
    if leg is not None:
        hang_up(caller, leg)
        await pbx.wait_ended()


async def test_a_failed_pull_leaves_the_call_with_the_old_device(
    pbx: Pbx, phones: tuple[Phone, Phone], mobile: Phone, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller, desk = phones
    a_rtp, desk_rtp = rtp_socket(), rtp_socket()
    engine = pbx.b2bua.engine
    configure = engine.configure

    async def refuse_the_new_leg(leg_id: str, remote: object) -> None:
        if ".pl" in leg_id:
            raise MediaError("no such codec here")
        await configure(leg_id, remote)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "configure", refuse_the_new_leg)
    try:
        leg, call_id, pulled = await _answered_then_pulled(pbx, phones, mobile, a_rtp, desk_rtp)
        assert await final_status(pulled) == 500
        ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
        (failed,) = ends
        assert failed.startswith(f"{call_id}.pl") and ends[failed] is LegEndReason.failed
        assert desk.app.calls_ended == 0  # the desk phone keeps the customer
        assert pbx.b2bua.calls[call_id].winner.leg_id == f"{call_id}.w0t0"  # type: ignore[union-attr]
        hang_up(caller, leg)
        (ended,) = await pbx.wait_ended()
        assert ended.disposition is Disposition.answered
        await until(lambda: desk.app.calls_ended == 1)  # our BYE, passed on from the caller
    finally:
        a_rtp.close()
        desk_rtp.close()


@pytest.mark.parametrize(
    ("user", "status"), [("101", 200), ("102", 403)], ids=["own-line", "a-colleague"]
)
async def test_an_invite_with_replaces_naming_the_answered_leg_pulls_it(
    pbx: Pbx, phones: tuple[Phone, Phone], mobile: Phone, user: str, status: int
) -> None:
    """A BLF key on one's own line: the phone copies the answered leg's dialog (call-id and
    tags, from the dialog-info) into Replaces. The B2BUA tells the resolver it names
    Anna's answered leg (``picks`` and ``pulls``); the PBX's features make it a pull for her
    own phone, 403 for a colleague's (pbx/features.py, tested with the resolver)."""
    caller, desk = phones
    pbx.resolver.plans["100"] = anna(desk, "answer")
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    pbx.b2bua.gate = lambda inc, now: CallerAuth(account_id=ACCOUNT, user=user, realm="x.zvonar")
    pbx.resolver.plans["101"] = (  # type: ignore[assignment]
        pull_for(ANNA) if user == "101" else lambda _call: Reject(403, "Forbidden")
    )
    (call,) = pbx.b2bua.calls.values()
    assert call.winner is not None
    ids = pbx.b2bua.fork_ids(call.call_id, call.winner.leg_id)
    assert ids is not None and ids[2] is not None
    sip_call_id, ours, theirs = ids
    pulled = mobile.app.originate(
        f"sip:101@{pbx.address}",
        pbx.flow,
        mobile.runner.loop.time(),
        headers=(("Replaces", f"{sip_call_id};to-tag={theirs};from-tag={ours}"),),
    )
    mobile.runner.pump()
    assert await final_status(pulled) == status
    seen = pbx.resolver.seen[-1]
    assert (seen.picks, seen.pulls) == (ANNA, call.call_id)
    if status == 200:
        await until(lambda: desk.app.calls_ended == 1)  # the desk phone got our BYE
    else:
        assert desk.app.calls_ended == 0
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_replaces_pulls_the_call_it_names_not_the_newest(
    pbx: Pbx, phones: tuple[Phone, Phone], mobile: Phone
) -> None:
    """Anna talks on two calls (one held, say): her BLF key names the older one's leg, and
    the older one moves; the newer stays on the desk phone."""
    caller, desk = phones
    pbx.resolver.plans["100"] = anna(desk, "answer")
    first = dial(caller, pbx, "100")
    assert await final_status(first) == 200
    second = dial(caller, pbx, "100")
    assert await final_status(second) == 200
    older, newer = sorted(pbx.b2bua.calls.values(), key=lambda c: c.facts.started_at)
    assert older.winner is not None and newer.winner is not None
    named = older.call_id

    def order(_call: InboundCall) -> Pull:
        return Pull(ACCOUNT, ANNA, Target(TargetKind.employee, "Anna", ANNA), call_id=named)

    pbx.resolver.plans["*11"] = order  # type: ignore[assignment]
    pulled = dial(mobile, pbx, "*11")
    assert await final_status(pulled) == 200
    await until(lambda: desk.app.calls_ended == 1)
    assert older.winner.leg_id.startswith(f"{older.call_id}.pl")
    assert newer.winner.leg_id == f"{newer.call_id}.w0t0"  # still the desk's
    hang_up(caller, first)
    hang_up(caller, second)
    await pbx.wait_ended(2)
