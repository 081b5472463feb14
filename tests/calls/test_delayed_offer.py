"""A delayed offer through the B2BUA over loopback (RFC 3261 §13.2.1): a caller whose INVITE
has no SDP (carriers send them) gets our offer in the 200 and answers in its ACK. The
caller's leg is configured from that answer before anything plays to it, so a greeting goes
out in the codec the ACK chose and the caller's own audio is taken in it; a fork that wins is
bridged to it the same way; an ACK without a usable answer ends the call on both sides. The
SIPp e2e tests (tests/e2e/test_sipp_calls.py) do the same with a real peer."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx, running
from tests.calls.test_b2bua import final_status, hang_up, target
from tests.calls.test_early import progress_of
from tests.media.engine.phone import Phone as RtpPhone
from tests.media.engine.phone import close_all_phones, dominant, tone_pcm
from zvonar.calls.events import CallEnded, Direction, Disposition, HangupSide, VoicemailLeft
from zvonar.calls.plan import CallerAuth, Plan, Reject, VoicemailSpec, Wave
from zvonar.calls.voicemail import BEEP_HZ
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.sdes import new_master_key
from zvonar.media.sdp import parse_sdp
from zvonar.media.wav import encode_wav
from zvonar.pbx.invite_auth import trunk_auth
from zvonar.sip.io.testserver import CallLeg

GREETING_HZ = 600.0
TONE = 440.0


@pytest.fixture
async def lpbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    engine = EmbeddedMediaEngine(media_timeout=0, host6=None)
    async with running(
        engine, recording_path=lambda a, c, s: tmp_path / "rec" / str(a) / f"{c}.wav"
    ) as rig:
        yield rig
    close_all_phones()


def answer(rtp: RtpPhone) -> bytes:
    """The caller's answer to our offer: its own codec only, with telephone-event."""
    return (
        "v=0\r\no=carrier 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {rtp.port} RTP/AVP {rtp.pt} 101\r\n"
        f"a=rtpmap:{rtp.pt} {rtp.codec}/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
    ).encode()


def dial_late(
    caller: Phone,
    pbx: Pbx,
    user: str,
    sdp: bytes = b"",
    *,
    answer_in_ack: bool = True,
    bye_before_ack: bool = False,
) -> CallLeg:
    leg = caller.app.originate(
        f"sip:{user}@{pbx.address}",
        pbx.flow,
        caller.runner.loop.time(),
        sdp=sdp,
        delayed_offer=True,
        answer_in_ack=answer_in_ack,
        bye_before_ack=bye_before_ack,
    )
    caller.runner.pump()
    return leg


def our_offer(leg: CallLeg) -> set[str]:
    """The encodings our 200 offered the caller."""
    assert leg.request is not None and leg.request.body == b""  # the INVITE offered nothing
    (media,) = parse_sdp(leg.remote_sdp).media
    return {
        a.value.split()[1].split("/")[0].upper() for a in media.attributes if a.name == "rtpmap"
    }


async def test_the_greeting_goes_out_in_the_codec_the_ack_chose(
    lpbx: Pbx, phones: tuple[Phone, Phone], tmp_path: Path
) -> None:
    caller, _ = phones
    greeting = tmp_path / "greeting.wav"
    greeting.write_bytes(encode_wav(tone_pcm(GREETING_HZ, 0.4)))
    spec = VoicemailSpec(greeting=greeting)
    lpbx.resolver.plans["200"] = Reject(
        480, account_id=ACCOUNT, voicemail=spec, disposition=Disposition.voicemail
    )
    rtp = RtpPhone(codec="PCMA")
    leg = dial_late(caller, lpbx, "200", answer(rtp))
    assert await final_status(leg) == 200
    assert {"PCMU", "PCMA", "TELEPHONE-EVENT"} <= our_offer(leg)
    await rtp.wait_packets(1)
    await rtp.settle(quiet=0.15, within=5)  # the greeting and the beep
    assert {r.packet.payload_type for r in rtp.received} == {8}  # PCMA from the first packet
    heard = rtp.audio()
    head = [float(v) for v in memoryview(heard).cast("h")[:1600]]
    assert dominant(head, (GREETING_HZ, BEEP_HZ, TONE)) == GREETING_HZ
    (call,) = lpbx.b2bua.calls.values()
    assert call.caller.endpoint is not None
    dest = (call.caller.endpoint.address, call.caller.endpoint.port)
    await rtp.send_tone(dest, TONE, 2.0)  # taken in PCMA: the message is the caller's tone
    hang_up(caller, leg)
    (ended,) = await lpbx.wait_ended()
    assert ended.disposition is Disposition.voicemail and ended.hangup is HangupSide.caller
    (message,) = lpbx.bus.of_type(VoicemailLeft)
    assert 1.7 <= message.duration <= 2.7, message.duration


async def test_a_fork_that_answers_is_bridged_to_the_answer(
    lpbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    lpbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    rtp = RtpPhone(codec="PCMA")
    leg = dial_late(caller, lpbx, "100", answer(rtp))
    assert await final_status(leg) == 200
    assert "PCMA" in our_offer(leg)
    (call,) = lpbx.b2bua.calls.values()
    assert call.winner is not None and call.caller.media_id == f"{call.winner.leg_id}.c"
    assert call.caller.oa is not None
    for _ in range(100):  # the 200 reached the caller; its ACK reaches us a moment later
        if call.caller.oa.negotiated is not None:
            break
        await asyncio.sleep(0.01)
    assert call.caller.oa.negotiated is not None
    assert call.caller.oa.negotiated.codec == "PCMA"
    assert call.caller.endpoint is not None
    dest = (call.caller.endpoint.address, call.caller.endpoint.port)
    await rtp.send_tone(dest, TONE, 0.5)
    engine = lpbx.b2bua.engine
    caller_side = await engine.stats(call.caller.media_id)
    fork_side = await engine.stats(call.winner.media_id)
    assert caller_side.rx_packets >= 20 and caller_side.lost == 0  # accepted as PCMA
    assert fork_side.tx_packets >= 20  # and relayed to the one who answered
    hang_up(caller, leg)
    (ended,) = await lpbx.wait_ended()
    assert ended.disposition is Disposition.answered and ended.hangup is HangupSide.caller
    assert callee.app.calls_ended == 1


async def test_an_ack_without_an_answer_ends_the_call_on_both_sides(
    lpbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    lpbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial_late(caller, lpbx, "100", answer_in_ack=False)
    assert await final_status(leg) == 200
    assert leg.ended is not None
    assert await asyncio.wait_for(leg.ended, 5) == "bye"  # ours
    (ended,) = await lpbx.wait_ended()
    assert ended.hangup is HangupSide.system
    for _ in range(100):
        if callee.app.calls_ended == 1:
            break
        await asyncio.sleep(0.02)
    assert callee.app.calls_ended == 1  # the fork that answered got its BYE
    assert not lpbx.b2bua.calls


async def test_a_bye_before_the_ack_ends_the_call_at_once(
    lpbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """A caller that cannot take our offer may send its BYE before the ACK that answers it
    (Linphone does, with SRTP mandatory and our offer plain): the BYE is answered and the call
    ends now, not when the wait for the ACK gives up (32 s)."""
    caller, callee = phones
    lpbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    refusal = (  # the stream turned down (port 0), as Linphone's ACK had it
        b"v=0\r\no=carrier 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 0 RTP/AVP 0\r\n"
    )
    leg = dial_late(caller, lpbx, "100", refusal, bye_before_ack=True)
    assert await final_status(leg) == 200
    (ended,) = await lpbx.wait_ended(within=3)
    assert ended.hangup is HangupSide.caller
    for _ in range(100):
        if callee.app.calls_ended == 1 and not lpbx.b2bua.calls:
            break
        await asyncio.sleep(0.02)
    assert callee.app.calls_ended == 1  # the fork that answered got its BYE
    assert not lpbx.b2bua.calls


async def test_no_early_media_without_an_offer_to_answer(
    lpbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    waves = (Wave((target(callee, "early"),), 0.3), Wave((target(callee, "answer"),), 5))
    lpbx.resolver.plans["601"] = Plan(ACCOUNT, waves, direction=Direction.outbound)
    rtp = RtpPhone()
    leg = dial_late(caller, lpbx, "601", answer(rtp))
    assert await progress_of(leg, 180) == b""  # a plain 180: a 183 could carry no answer
    assert await final_status(leg) == 200
    assert 183 not in [status for status, _ in leg.progress]
    assert "PCMU" in our_offer(leg)
    hang_up(caller, leg)
    (ended,) = await lpbx.wait_ended()
    assert isinstance(ended, CallEnded) and ended.disposition is Disposition.answered


def savp_answer(port: int, key: bytes) -> bytes:
    """A carrier's SRTP answer to our SRTP offer: PCMU, its own key."""
    inline = base64.b64encode(key).decode()
    return (
        "v=0\r\no=carrier 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{inline}\r\na=sendrecv\r\n"
    ).encode()


@pytest.mark.parametrize("srtp_answer", [True, False], ids=["srtp-answer", "plain-answer"])
async def test_a_trunk_that_requires_srtp_is_offered_srtp_only(
    lpbx: Pbx, phones: tuple[Phone, Phone], srtp_answer: bool
) -> None:
    caller, callee = phones
    lpbx.b2bua.gate = lambda inc, now: trunk_auth(ACCOUNT, srtp=True)  # Trunk.srtp
    lpbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    rtp = RtpPhone()
    sdp = savp_answer(rtp.port, new_master_key()) if srtp_answer else answer(rtp)
    leg = dial_late(caller, lpbx, "100", sdp)
    assert await final_status(leg) == 200
    (media,) = parse_sdp(leg.remote_sdp).media
    assert media.proto == "RTP/SAVP"
    assert [a for a in media.attributes if a.name == "crypto"]
    if not srtp_answer:  # plain RTP cannot answer an SRTP-only offer: the call ends
        assert leg.ended is not None
        assert await asyncio.wait_for(leg.ended, 5) == "bye"
        (ended,) = await lpbx.wait_ended()
        assert ended.hangup is HangupSide.system
        return
    (call,) = lpbx.b2bua.calls.values()
    assert call.caller.oa is not None
    for _ in range(100):  # the 200 reached the caller; its ACK reaches us a moment later
        if call.caller.oa.negotiated is not None:
            break
        await asyncio.sleep(0.01)
    assert call.caller.oa.negotiated is not None and call.caller.oa.negotiated.srtp is not None
    hang_up(caller, leg)
    (ended,) = await lpbx.wait_ended()
    assert ended.disposition is Disposition.answered and ended.srtp is True


@pytest.mark.parametrize(
    "auth",
    [
        trunk_auth(ACCOUNT, srtp=False),
        # The address is also another tenant's trunk, one that requires SRTP: that trunk
        # speaks for its own account's numbers only.
        trunk_auth(ACCOUNT, srtp=False) | trunk_auth(uuid.uuid4(), srtp=True),
        trunk_auth(uuid.uuid4(), srtp=True),
    ],
    ids=["plain-trunk", "srtp-trunk-of-another-account-too", "srtp-trunk-of-another-account"],
)
async def test_a_trunk_without_srtp_is_offered_plain_rtp(
    lpbx: Pbx, phones: tuple[Phone, Phone], auth: CallerAuth
) -> None:
    caller, callee = phones
    lpbx.b2bua.gate = lambda inc, now: auth
    lpbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial_late(caller, lpbx, "100", answer(RtpPhone()))
    assert await final_status(leg) == 200
    (media,) = parse_sdp(leg.remote_sdp).media
    assert media.proto == "RTP/AVP" and not [a for a in media.attributes if a.name == "crypto"]
    hang_up(caller, leg)
    (ended,) = await lpbx.wait_ended()
    assert ended.srtp is False
