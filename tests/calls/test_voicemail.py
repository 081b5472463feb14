"""Voicemail in the B2BUA over loopback: a caller nobody took hears the greeting and the beep,
talks (a tone over real RTP), and the message is announced as VoicemailLeft before CallEnded;
no message when the caller leaves before the beep, stays silent, or the B2BUA cannot record."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx, running
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from tests.media.engine.phone import Phone as RtpPhone
from tests.media.engine.phone import close_all_phones, dominant, tone_pcm, tone_power
from zvonar.calls.events import CallEnded, Disposition, HangupSide, VoicemailLeft
from zvonar.calls.plan import Plan, Reject, VoicemailSpec, Wave
from zvonar.calls.voicemail import BEEP_HZ, beep_path
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.wav import encode_wav, parse_wav
from zvonar.sip.io.testserver import CallLeg

TONE = 440.0
GREETING_HZ = 600.0


@pytest.fixture
async def vm_pbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    def where(account: uuid.UUID, call_id: str, started_at: datetime) -> Path:
        return tmp_path / "recordings" / str(account) / f"{call_id}.wav"

    engine = EmbeddedMediaEngine(media_timeout=0, host6=None)
    async with running(engine, recording_path=where) as rig:
        yield rig
    close_all_phones()


@pytest.fixture
def greeting(tmp_path: Path) -> Path:
    path = tmp_path / "greeting.wav"
    path.write_bytes(encode_wav(tone_pcm(GREETING_HZ, 0.4)))
    return path


def offer(rtp: RtpPhone) -> bytes:
    return (
        "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {rtp.port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
    ).encode()


def voicemail(spec: VoicemailSpec) -> Reject:
    return Reject(480, account_id=ACCOUNT, voicemail=spec, disposition=Disposition.voicemail)


async def answered(
    pbx: Pbx, caller: Phone, number: str
) -> tuple[CallLeg, RtpPhone, tuple[str, int]]:
    """Dial ``number`` with an RTP phone behind the offer; the B2BUA's RTP address."""
    rtp = RtpPhone()
    leg = dial(caller, pbx, number, sdp=offer(rtp))
    assert await final_status(leg) == 200
    (call,) = pbx.b2bua.calls.values()
    assert call.caller.endpoint is not None
    return leg, rtp, (call.caller.endpoint.address, call.caller.endpoint.port)


async def after_beep(rtp: RtpPhone) -> None:
    """Until the greeting and the beep have been played to the phone."""
    await rtp.wait_packets(1)
    await rtp.settle(quiet=0.15, within=5)


def left(pbx: Pbx) -> list[VoicemailLeft]:
    return pbx.bus.of_type(VoicemailLeft)


def samples(path: Path) -> tuple[int, float, list[float]]:
    wav = parse_wav(path.read_bytes())
    return wav.channels, wav.duration, wav.mono()


async def test_message_after_busy_wave(
    vm_pbx: Pbx, phones: tuple[Phone, Phone], greeting: Path
) -> None:
    caller, callee = phones
    spec = VoicemailSpec(greeting=greeting, notify=("boss@example.com",))
    vm_pbx.resolver.plans["100"] = Plan(
        ACCOUNT, (Wave((target(callee, "busy"),), 5),), final=voicemail(spec)
    )
    leg, rtp, dest = await answered(vm_pbx, caller, "100")
    await after_beep(rtp)
    heard = rtp.audio()
    # The greeting, then the beep: the last 0.2 s the phone heard is the 1 kHz tone.
    tail = [float(v) for v in memoryview(heard).cast("h")[-1600:]]
    head = [float(v) for v in memoryview(heard).cast("h")[:1600]]
    assert dominant(tail, (GREETING_HZ, BEEP_HZ, TONE)) == BEEP_HZ
    assert dominant(head, (GREETING_HZ, BEEP_HZ, TONE)) == GREETING_HZ
    await rtp.send_tone(dest, TONE, 2.0)
    hang_up(caller, leg)
    (ended,) = await vm_pbx.wait_ended()
    assert ended.disposition is Disposition.voicemail
    assert ended.hangup is HangupSide.caller
    # Voicemail answered them (the journal's wait ends there), a message's length before the end.
    assert ended.caller_answered_at is not None
    assert (ended.ended_at - ended.caller_answered_at).total_seconds() >= 2.0
    # How the caller sounded is in the journal, as for a call an employee took.
    assert ended.mos is not None and ended.mos > 4.0 and ended.loss == 0.0
    (message,) = left(vm_pbx)
    kinds = vm_pbx.kinds()
    assert kinds.index("VoicemailLeft") == len(kinds) - 2  # just before CallEnded
    assert message.notify == ("boss@example.com",)
    assert 1.7 <= message.duration <= 2.7, message.duration
    path = Path(message.path)
    assert path.name == f"{message.call_id}.vm.wav"
    channels, duration, audio = samples(path)
    assert channels == 1
    assert abs(duration - message.duration) < 0.05
    loud = [v for v in audio if abs(v) > 0.05]
    assert len(loud) > 0.5 * 8000 * 1.5  # most of the message is the caller's tone
    middle = audio[len(audio) // 2 - 2000 : len(audio) // 2 + 2000]
    assert dominant(middle, (GREETING_HZ, BEEP_HZ, TONE)) == TONE
    assert tone_power(middle, TONE) > 100 * tone_power(middle, BEEP_HZ)
    assert not vm_pbx.b2bua.calls


async def test_hang_up_before_the_beep_leaves_no_message(
    vm_pbx: Pbx, phones: tuple[Phone, Phone], tmp_path: Path
) -> None:
    caller, _ = phones
    long_greeting = tmp_path / "long.wav"
    long_greeting.write_bytes(encode_wav(tone_pcm(GREETING_HZ, 3.0)))
    vm_pbx.resolver.plans["200"] = voicemail(VoicemailSpec(greeting=long_greeting))
    leg, rtp, dest = await answered(vm_pbx, caller, "200")
    await rtp.send_tone(dest, TONE, 0.5)  # talking over the greeting is no message
    hang_up(caller, leg)
    (ended,) = await vm_pbx.wait_ended()
    assert ended.hangup is HangupSide.caller
    # Voicemail took no message: nobody took the call, so it is missed (mailed, listed for
    # call-back), not the resolver's "voicemail".
    assert ended.disposition is Disposition.missed
    assert left(vm_pbx) == []
    assert not list((tmp_path / "recordings").rglob("*.wav"))


async def test_hash_ends_the_message_and_we_hang_up(
    vm_pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, _ = phones
    vm_pbx.resolver.plans["300"] = voicemail(VoicemailSpec(beep=True))
    leg, rtp, dest = await answered(vm_pbx, caller, "300")
    await after_beep(rtp)
    await rtp.send_tone(dest, TONE, 1.5)
    await rtp.send_dtmf(dest, "#")
    assert leg.ended is not None
    await asyncio.wait_for(leg.ended, 5)  # our BYE
    (ended,) = await vm_pbx.wait_ended()
    assert ended.hangup is HangupSide.system
    (message,) = left(vm_pbx)
    assert 1.3 <= message.duration <= 2.3, message.duration
    assert ended.disposition is Disposition.voicemail


async def test_short_message_and_silence_are_dropped(
    vm_pbx: Pbx, phones: tuple[Phone, Phone], tmp_path: Path
) -> None:
    caller, _ = phones
    # No RTP at all after the beep: the B2BUA stops waiting after the silence timeout.
    vm_pbx.resolver.plans["400"] = voicemail(VoicemailSpec(beep=False, silence_timeout=0.5))
    leg, quiet, _dest = await answered(vm_pbx, caller, "400")
    assert leg.ended is not None
    await asyncio.wait_for(leg.ended, 5)
    (ended,) = await vm_pbx.wait_ended()
    quiet.close()
    assert left(vm_pbx) == [] and ended.disposition is Disposition.missed
    # Half a second of talk is under min_seconds (1 s).
    vm_pbx.resolver.plans["401"] = voicemail(VoicemailSpec(beep=False))
    leg, rtp, dest = await answered(vm_pbx, caller, "401")
    await rtp.send_tone(dest, TONE, 0.5)
    hang_up(caller, leg)
    await vm_pbx.wait_ended(2)
    assert left(vm_pbx) == []
    assert not list((tmp_path / "recordings").rglob("*.wav"))


async def test_max_length_ends_the_message(vm_pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, _ = phones
    vm_pbx.resolver.plans["500"] = voicemail(VoicemailSpec(beep=False, max_seconds=1.2))
    leg, rtp, dest = await answered(vm_pbx, caller, "500")
    sending = asyncio.create_task(rtp.send_tone(dest, TONE, 3.0))
    try:
        assert leg.ended is not None
        await asyncio.wait_for(leg.ended, 5)
    finally:
        sending.cancel()
    await vm_pbx.wait_ended()
    (message,) = left(vm_pbx)
    assert 1.1 <= message.duration <= 1.5, message.duration


async def test_without_recordings_the_greeting_is_a_prompt(
    pbx: Pbx, phones: tuple[Phone, Phone], greeting: Path
) -> None:
    caller, _ = phones
    pbx.resolver.plans["600"] = voicemail(VoicemailSpec(greeting=greeting))
    leg, rtp, _dest = await answered(pbx, caller, "600")
    assert leg.ended is not None
    await asyncio.wait_for(leg.ended, 5)  # hung up on after the greeting
    (ended,) = await pbx.wait_ended()
    assert ended.hangup is HangupSide.system
    assert left(pbx) == []
    await rtp.settle()
    assert rtp.received
    rtp.close()


def test_beep_is_a_short_1khz_tone() -> None:
    wav = parse_wav(beep_path().read_bytes())
    assert wav.channels == 1 and wav.sample_rate == 8000
    assert 0.2 <= wav.duration <= 0.3
    audio = wav.mono()
    assert dominant(audio, (500.0, BEEP_HZ, 2000.0)) == BEEP_HZ
    assert max(abs(v) for v in audio) < 0.5
    assert beep_path() == beep_path()


async def test_bad_offer_gets_the_final_status(vm_pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, _ = phones
    vm_pbx.resolver.plans["700"] = voicemail(VoicemailSpec())
    g729 = (
        b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
    )
    leg = dial(caller, vm_pbx, "700", sdp=g729)
    assert await final_status(leg) == 480
    (ended,) = await vm_pbx.wait_ended()
    assert left(vm_pbx) == [] and isinstance(ended, CallEnded)
