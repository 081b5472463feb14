"""Directed pickup over loopback (calls/pickup.py): a third phone dials the pickup code and
takes the call ringing an employee — answered on both sides, media bridged, the ringing fork
CANCELled, the journal's events naming the picker; nothing ringing or another account's
call: 404 and no call events."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
    Target,
    TargetKind,
)
from zvonar.calls.plan import CallerAuth, InboundCall, Pickup, Plan, RingTarget, Wave
from zvonar.sip.io.testserver import CallLeg

from .test_b2bua import dial, final_status, hang_up
from .test_delayed_offer import dial_late
from .test_steps import ScriptedRoute
from .test_transfer import until

ANNA = uuid.UUID("00000000-0000-4000-8000-0000000000a1")  # her phone rings
BORIS = uuid.UUID("00000000-0000-4000-8000-0000000000b2")  # he picks up
OTHER = uuid.UUID("00000000-0000-4000-8000-000000000002")  # another account


@pytest.fixture
async def picker() -> AsyncIterator[Phone]:
    phone = await make_phone()
    yield phone
    await phone.runner.close()


def ring_anna(phone: Phone) -> Plan:
    target = RingTarget(phone.uri("ring"), phone.flow, Target(TargetKind.employee, "Anna", ANNA))
    return Plan(ACCOUNT, (Wave((target,), 10),))


def pickup_by_boris(account: uuid.UUID = ACCOUNT) -> object:
    def order(_call: InboundCall) -> Pickup:
        return Pickup(account, ANNA, Target(TargetKind.employee, "Boris", BORIS))

    return order


def sdp(port: int, pt: int = 0, codec: str = "PCMU") -> bytes:
    return (
        b"v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        + f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {codec}/8000\r\n".encode()
        + b"a=sendrecv\r\n"
    )


def rtp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def ringing_anna(
    pbx: Pbx, phones: tuple[Phone, Phone], offer: bytes = b"", account: uuid.UUID = ACCOUNT
) -> CallLeg:
    """The caller dials 100, which rings Anna; *8101 is Boris's pickup (of ``account``'s
    calls). Returns the caller's leg once Anna's phone rings."""
    caller, callee = phones
    pbx.resolver.plans["100"] = ring_anna(callee)
    pbx.resolver.plans["*8101"] = pickup_by_boris(account)  # type: ignore[assignment]
    leg = dial(caller, pbx, "100", offer)
    await until(lambda: pbx.bus.of_type(CallRinging))
    return leg


async def relayed(pbx: Pbx, call_id: str, a_rtp: socket.socket, b_rtp: socket.socket) -> bytes:
    """Send five PCMU packets from the caller's socket to its leg; the first that reaches
    the picker's socket."""
    call = pbx.b2bua.calls[call_id]
    assert call.caller.endpoint is not None
    into = (call.caller.endpoint.address, call.caller.endpoint.port)
    loop = asyncio.get_running_loop()
    for seq in range(5):
        packet = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234) + b"\xff" * 160
        await loop.sock_sendto(a_rtp, packet, into)
    return await asyncio.wait_for(loop.sock_recv(b_rtp, 2048), 3)


async def test_pickup_bridges_the_caller_and_cancels_the_ringing_phone(
    pbx: Pbx, phones: tuple[Phone, Phone], picker: Phone
) -> None:
    caller, callee = phones
    a_rtp, b_rtp = rtp_socket(), rtp_socket()
    try:
        leg = await ringing_anna(pbx, phones, sdp(a_rtp.getsockname()[1]))
        call_id = pbx.events()[0].call_id
        picked = dial(picker, pbx, "*8101", sdp(b_rtp.getsockname()[1]))
        assert await final_status(picked) == 200
        assert await final_status(leg) == 200
        await until(lambda: pbx.bus.of_type(CallAnswered))

        # The picker's INVITE made no call of its own: one call, its events.
        assert {e.call_id for e in pbx.events()} == {call_id}
        (answered,) = pbx.bus.of_type(CallAnswered)
        assert answered.by == BORIS and answered.leg_id == f"{call_id}.pk"
        rung = {r.leg_id: r.target.target_id for r in pbx.bus.of_type(CallRinging)}
        assert rung == {f"{call_id}.w0t0": ANNA, f"{call_id}.pk": BORIS}
        ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
        assert ends == {f"{call_id}.w0t0": LegEndReason.cancelled}
        await until(lambda: callee.app.calls_ended == 1)  # our CANCEL reached Anna's phone

        # Media: RTP from the caller reaches the picker's address through the bridge.
        data = await relayed(pbx, call_id, a_rtp, b_rtp)
        assert data[1] & 0x7F == 0 and data[12:] == b"\xff" * 160

        hang_up(caller, leg)  # the caller's BYE ends the picker's leg too
        (ended,) = await pbx.wait_ended()
        assert ended.disposition is Disposition.answered
        assert ended.hangup is HangupSide.caller
        assert picked.ended is not None
        assert await asyncio.wait_for(picked.ended, 5) == "bye"
        ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
        assert ends[f"{call_id}.pk"] is LegEndReason.completed
        await asyncio.wait_for(pbx.b2bua.wait_idle(), 5)
    finally:
        a_rtp.close()
        b_rtp.close()


async def test_picker_hangs_up_and_the_caller_gets_bye(
    pbx: Pbx, phones: tuple[Phone, Phone], picker: Phone
) -> None:
    leg = await ringing_anna(pbx, phones)
    picked = dial(picker, pbx, "*8101")
    assert await final_status(picked) == 200
    assert await final_status(leg) == 200
    await asyncio.sleep(0.05)  # the picker's ACK: it must not become the caller's dialog
    hang_up(picker, picked)
    assert leg.ended is not None
    assert await asyncio.wait_for(leg.ended, 5) == "bye"
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    assert ended.hangup is HangupSide.callee


async def test_nothing_ringing_is_404(pbx: Pbx, phones: tuple[Phone, Phone], picker: Phone) -> None:
    caller, callee = phones
    pbx.resolver.plans["*8101"] = pickup_by_boris()  # type: ignore[assignment]
    picked = dial(picker, pbx, "*8101")
    assert await final_status(picked) == 404
    assert pbx.events() == []
    # A call that rang Anna and was answered by her is not ringing any more either.
    answer = RingTarget(callee.uri("answer"), callee.flow, Target(TargetKind.employee, "A", ANNA))
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((answer,), 5),))
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    again = dial(picker, pbx, "*8101")
    assert await final_status(again) == 404
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_a_call_of_another_account_cannot_be_picked_up(
    pbx: Pbx, phones: tuple[Phone, Phone], picker: Phone
) -> None:
    caller, callee = phones
    leg = await ringing_anna(pbx, phones, account=OTHER)
    picked = dial(picker, pbx, "*8101")
    assert await final_status(picked) == 404
    assert not pbx.bus.of_type(CallAnswered)
    assert {e.account_id for e in pbx.events()} == {ACCOUNT}
    assert callee.app.calls_ended == 0  # Anna's phone still rings
    hang_up(caller, leg)  # CANCEL
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.abandoned
    assert not [e for e in pbx.bus.of_type(CallEnded) if e.call_id != ended.call_id]


async def test_a_picker_without_an_offer_answers_ours_in_its_ack(
    pbx: Pbx, phones: tuple[Phone, Phone], picker: Phone
) -> None:
    a_rtp, b_rtp = rtp_socket(), rtp_socket()
    try:
        leg = await ringing_anna(pbx, phones, sdp(a_rtp.getsockname()[1]))
        call_id = pbx.events()[0].call_id
        # No SDP in the INVITE; the ACK answers our offer with PCMA only.
        picked = dial_late(picker, pbx, "*8101", sdp(b_rtp.getsockname()[1], 8, "PCMA"))
        assert await final_status(picked) == 200
        assert b"PCMA/8000" in picked.remote_sdp and b"PCMU/8000" in picked.remote_sdp
        assert await final_status(leg) == 200
        await until(lambda: pbx.bus.of_type(CallAnswered))
        (answered,) = pbx.bus.of_type(CallAnswered)
        assert answered.by == BORIS

        # The picker's leg was configured from its ACK: the caller's PCMU reaches it as PCMA.
        data = await relayed(pbx, call_id, a_rtp, b_rtp)
        assert data[1] & 0x7F == 8 and len(data) == 12 + 160

        hang_up(picker, picked)  # the picker's BYE ends the caller's leg too
        assert leg.ended is not None
        assert await asyncio.wait_for(leg.ended, 5) == "bye"
        (ended,) = await pbx.wait_ended()
        assert ended.disposition is Disposition.answered
        await asyncio.wait_for(pbx.b2bua.wait_idle(), 5)
    finally:
        a_rtp.close()
        b_rtp.close()


async def test_a_pickers_ack_without_an_answer_ends_the_call(
    pbx: Pbx, phones: tuple[Phone, Phone], picker: Phone
) -> None:
    leg = await ringing_anna(pbx, phones)
    picked = dial_late(picker, pbx, "*8101", answer_in_ack=False)
    assert await final_status(picked) == 200
    assert picked.ended is not None and leg.ended is not None
    assert await asyncio.wait_for(picked.ended, 5) == "bye"  # ours: no media can flow
    assert await asyncio.wait_for(leg.ended, 5) == "bye"
    (ended,) = await pbx.wait_ended()
    assert ended.hangup is HangupSide.system
    await asyncio.wait_for(pbx.b2bua.wait_idle(), 5)


@pytest.mark.parametrize(
    ("whose", "names", "status"),
    [
        (ACCOUNT, "the-fork", 200),  # a BLF key of Anna's account: a directed pickup
        (OTHER, "the-fork", 481),  # a phone of another account names it: no such dialog
        (ACCOUNT, "nothing", 481),  # a dialog we never had (RFC 3891 §3)
        (None, "the-fork", 481),  # not a phone of ours
    ],
    ids=["own-account", "other-account", "unknown-dialog", "stranger"],
)
async def test_an_invite_with_replaces_picks_up_the_fork_it_names(
    pbx: Pbx,
    phones: tuple[Phone, Phone],
    picker: Phone,
    whose: uuid.UUID | None,
    names: str,
    status: int,
) -> None:
    caller, _callee = phones
    leg = await ringing_anna(pbx, phones)
    pbx.b2bua.gate = lambda inc, now: (
        CallerAuth(account_id=whose, user="102", realm="x.zvonar") if whose else CallerAuth()
    )
    pbx.resolver.plans["101"] = pickup_by_boris()  # type: ignore[assignment]
    (call,) = pbx.b2bua.calls.values()
    (fork,) = call.forks.values()
    ids = pbx.b2bua.fork_ids(call.call_id, fork.leg_id)
    assert ids is not None and ids[2] is not None  # the ringing phone's tag from its 180
    sip_call_id, ours, theirs = ids
    if names == "nothing":
        sip_call_id = "no-such-call@zvonar"
    replaces = f"{sip_call_id};to-tag={theirs};from-tag={ours};early-only"
    picked = picker.app.originate(
        f"sip:101@{pbx.address}",
        pbx.flow,
        picker.runner.loop.time(),
        headers=(("Replaces", replaces),),
    )
    picker.runner.pump()
    assert await final_status(picked) == status
    if status == 200:
        assert pbx.resolver.seen[-1].picks == ANNA
        await until(lambda: pbx.bus.of_type(CallAnswered))
        hang_up(picker, picked)
    else:
        assert not pbx.bus.of_type(CallAnswered)
        hang_up(caller, leg)
    await pbx.wait_ended()


async def test_a_picked_up_step_tells_the_route_who_took_the_call(
    pbx: Pbx, phones: tuple[Phone, Phone], picker: Phone
) -> None:
    """The scheme's ring step was answered, by the picker: the route hears it (the journal's
    path marks the step ``[answered]``, not nothing; a scheme's rating follows the talk)."""
    caller, callee = phones
    route = ScriptedRoute(list(ring_anna(callee).waves))
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (), route=route)
    pbx.resolver.plans["*8101"] = pickup_by_boris()  # type: ignore[assignment]
    leg = dial(caller, pbx, "100")
    await until(lambda: pbx.bus.of_type(CallRinging))
    picked = dial(picker, pbx, "*8101")
    assert await final_status(picked) == 200
    assert await final_status(leg) == 200
    assert route.by == [Target(TargetKind.employee, "Boris", BORIS)]
    hang_up(caller, leg)
    await pbx.wait_ended()
