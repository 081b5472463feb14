"""End to end: SIPp callers and callees through the B2BUA (SipRunner + UserAgent + B2bua +
a media engine) on loopback, with RTP relayed, recorded and DTMF reported.

Every SIPp run is bounded (-m 1, -timeout with -timeout_error); ports are free ports.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.calls.rig import ACCOUNT, Pbx, start_pbx
from tests.e2e import sippkit
from tests.media.rtpengine.conftest import Daemon
from tests.sip.peers.harness import (
    SIPP,
    SippRun,
    finish_sipp,
    free_port,
    sipp_command,
    sipp_media_port,
    start_sipp,
    wait_bound,
)
from zvonar.calls.b2bua import RecordingPathFor
from zvonar.calls.call import Call
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRecorded,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
)
from zvonar.calls.legs import CallDtmf
from zvonar.calls.plan import Plan, RingTarget, Wave
from zvonar.media.engine import LegStats, MediaEngine
from zvonar.media.goertzel import goertzel_power
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.rtpengine import RtpengineMediaEngine
from zvonar.media.wav import parse_wav
from zvonar.sip.ua import Flow

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

TONE_SECONDS = 2.0


class Peer:
    """One SIPp process with its scenario."""

    def __init__(self, tmp: Path, name: str, xml: str, remote: str = "") -> None:
        self.name, self.port, self.workdir = name, free_port(), tmp
        scenario = tmp / f"{name}.xml"
        scenario.write_text(xml)
        self.cmd = sipp_command(
            remote,
            workdir=tmp,
            local_port=self.port,
            calls=1,
            timeout=20,
            scenario_file=scenario,
            name=name,
            extra=("-mp", str(sipp_media_port())),
        )
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def flow(self) -> Flow:
        return Flow("UDP", "127.0.0.1", self.port)

    def target(self, user: str = "callee") -> RingTarget:
        return RingTarget(f"sip:{user}@127.0.0.1:{self.port}", self.flow)

    async def start(self) -> None:
        self.proc = await start_sipp(self.cmd, workdir=self.workdir)
        await wait_bound(self.port)

    async def finish(self, wait: float = 25) -> SippRun:
        assert self.proc is not None
        return await finish_sipp(
            self.proc, self.cmd, workdir=self.workdir, name=self.name, wait=wait
        )


@pytest.fixture
async def embedded() -> AsyncIterator[EmbeddedMediaEngine]:
    engine = EmbeddedMediaEngine(media_timeout=0, host6=None)
    yield engine
    await engine.close()


def _recording_path(tmp: Path) -> RecordingPathFor:
    def where(account_id: uuid.UUID, call_id: str, started_at: datetime) -> Path:
        return tmp / "rec" / str(account_id) / f"{call_id}.wav"

    return where


async def _answered_call(pbx: Pbx, within: float = 8.0) -> Call:
    for _ in range(int(within / 0.02)):
        for call in pbx.b2bua.calls.values():
            if call.winner is not None and call.caller.media_id is not None:
                return call
        await asyncio.sleep(0.02)
    raise AssertionError(f"no answered call: {pbx.kinds()}")


async def _stats_when(engine: MediaEngine, leg: str, packets: int, within: float) -> LegStats:
    stats = await engine.stats(leg)
    for _ in range(int(within / 0.05)):
        if stats.rx_packets >= packets:
            break
        await asyncio.sleep(0.05)
        stats = await engine.stats(leg)
    return stats


def _power(samples: list[float], freq: float) -> float:
    return goertzel_power(samples, 2 * math.cos(2 * math.pi * freq / 8000))


def _check_recording(path: Path) -> float:
    wav = parse_wav(path.read_bytes())
    assert (wav.channels, wav.sample_rate) == (2, 8000)
    samples = list(wav.samples())
    left, right = samples[0::2], samples[1::2]
    for channel, want, other in ((left, 440.0, 880.0), (right, 880.0, 440.0)):
        loud = [v for v in channel if abs(v) > 0.05]
        assert len(loud) > 8000, "a channel holds less than a second of audio"
        assert _power(channel, want) > 20 * _power(channel, other)
    return wav.duration


async def _relay(
    pbx: Pbx,
    engine: MediaEngine,
    tmp_path: Path,
    *,
    delayed_offer: bool = False,
    sip_i: bool = False,
    recorded: bool = True,
) -> None:
    caller_pcap, callee_pcap = tmp_path / "a440.pcap", tmp_path / "b880.pcap"
    sent = sippkit.write_tone_pcap(caller_pcap, 440, TONE_SECONDS, ssrc=0x1111)
    sippkit.write_tone_pcap(callee_pcap, 880, TONE_SECONDS, ssrc=0x2222)
    callee = Peer(tmp_path, "callee", sippkit.uas_answer(pcap=callee_pcap))
    await callee.start()
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((callee.target(),), 10),), record=True)
    uac = sippkit.uac("100", pcap=caller_pcap, delayed_offer=delayed_offer, sip_i=sip_i)
    caller = Peer(tmp_path, "caller", uac, pbx.address)
    await caller.start()
    call = await _answered_call(pbx)
    assert call.winner is not None and call.caller.media_id is not None
    a = await _stats_when(engine, call.caller.media_id, sent, TONE_SECONDS + 3)
    b = await _stats_when(engine, call.winner.media_id, sent, TONE_SECONDS + 3)
    caller_run, callee_run = await caller.finish(), await callee.finish()
    assert caller_run.stats.successful == 1, caller_run.describe()
    assert callee_run.stats.successful == 1, callee_run.describe()
    # nominal rate over loopback: every packet of each side arrived, in order
    assert (a.rx_packets, a.lost) == (sent, 0), a
    assert (b.rx_packets, b.lost) == (sent, 0), b
    assert a.tx_packets >= sent - 2 and b.tx_packets >= sent - 2  # relayed to the other side
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered and ended.hangup is HangupSide.caller
    if not recorded:
        assert pbx.bus.of_type(CallRecorded) == []
        return
    (recording,) = pbx.bus.of_type(CallRecorded)
    duration = _check_recording(Path(recording.path))
    # a packet or two may be relayed before the engine starts recording (rtpengine once
    # recorded 1.98 s of a 2 s tone)
    assert TONE_SECONDS - 0.1 <= duration <= TONE_SECONDS + 3.5
    assert abs(recording.duration - duration) < 0.5


async def test_relay_and_recording_embedded(embedded: EmbeddedMediaEngine, tmp_path: Path) -> None:
    pbx = await start_pbx(embedded, recording_path=_recording_path(tmp_path))
    try:
        await _relay(pbx, embedded, tmp_path)
    finally:
        await pbx.close()


async def test_a_recording_that_cannot_start_leaves_the_call_going(
    embedded: EmbeddedMediaEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The recordings directory is broken (a file where a folder must be; a full disk is
    alike): the answered call still carries both directions to its end, unrecorded."""
    (tmp_path / "rec").write_text("not a directory")
    pbx = await start_pbx(embedded, recording_path=_recording_path(tmp_path))
    try:
        with caplog.at_level(logging.ERROR, logger="zvonar.calls.recording"):
            await _relay(pbx, embedded, tmp_path, recorded=False)
        assert "the call goes on unrecorded" in caplog.text
    finally:
        await pbx.close()


async def test_delayed_offer_relay_and_recording(
    embedded: EmbeddedMediaEngine, tmp_path: Path
) -> None:
    """A carrier's INVITE without SDP (RFC 3261 §13.2.1): our 200 offers, SIPp's ACK answers,
    and the call carries and records both directions as with an offer up front."""
    pbx = await start_pbx(embedded, recording_path=_recording_path(tmp_path))
    try:
        await _relay(pbx, embedded, tmp_path, delayed_offer=True)
    finally:
        await pbx.close()


async def test_a_sip_i_offer_relay_and_recording(
    embedded: EmbeddedMediaEngine, tmp_path: Path
) -> None:
    """A carrier's offer as one part of a multipart/mixed body with ISUP (SIP-I, RFC 5621):
    the SDP part is answered, the ISUP part ignored, and the call carries and records both
    directions as with a plain SDP body."""
    pbx = await start_pbx(embedded, recording_path=_recording_path(tmp_path))
    try:
        await _relay(pbx, embedded, tmp_path, sip_i=True)
    finally:
        await pbx.close()


# A delayed-offer caller whose ACK brings no answer: the session cannot be used, so the PBX
# hangs up (BYE), which this caller answers.
_ACK_WITHOUT_ANSWER = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="zvonar e2e caller: ACK without an answer">
  {sippkit.invite("100", offer=False)}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
  {sippkit.ack("100")}
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
</scenario>
"""


async def test_delayed_offer_ack_without_an_answer_is_hung_up(
    embedded: EmbeddedMediaEngine, tmp_path: Path
) -> None:
    pbx = await start_pbx(embedded)
    try:
        callee = Peer(tmp_path, "callee", sippkit.uas_answer())
        await callee.start()
        pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((callee.target(),), 10),))
        caller = Peer(tmp_path, "caller", _ACK_WITHOUT_ANSWER, pbx.address)
        await caller.start()
        caller_run, callee_run = await caller.finish(), await callee.finish()
        assert caller_run.stats.successful == 1, caller_run.describe()
        assert callee_run.stats.successful == 1, callee_run.describe()  # its BYE came too
        (ended,) = await pbx.wait_ended()
        assert ended.hangup is HangupSide.system
        await asyncio.sleep(0.05)
        assert embedded.leg_count == 0
    finally:
        await pbx.close()


async def test_dtmf_from_the_caller_is_reported(
    embedded: EmbeddedMediaEngine, tmp_path: Path
) -> None:
    pbx = await start_pbx(embedded)
    try:
        callee = Peer(tmp_path, "callee", sippkit.uas_answer())
        await callee.start()
        pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((callee.target(),), 10),))
        uac = sippkit.uac("100", pcap=sippkit.DTMF_1, talk_ms=1500)
        caller = Peer(tmp_path, "caller", uac, pbx.address)
        await caller.start()
        caller_run, callee_run = await caller.finish(), await callee.finish()
        assert caller_run.stats.successful == 1, caller_run.describe()
        assert callee_run.stats.successful == 1, callee_run.describe()
        await pbx.wait_ended()
        digits = pbx.bus.of_type(CallDtmf)
        assert [d.digit for d in digits] == ["1"]
        assert digits[0].leg_id.endswith(".a")  # the caller's leg
    finally:
        await pbx.close()


async def test_busy_and_answering_callee_in_one_wave(
    embedded: EmbeddedMediaEngine, tmp_path: Path
) -> None:
    pbx = await start_pbx(embedded)
    try:
        busy = Peer(tmp_path, "busy", sippkit.uas_busy())
        # the answer waits a moment: a 200 that overtook the 486 would CANCEL the busy fork
        # first, and its leg would rightly end "cancelled" (seen once in CI)
        good = Peer(tmp_path, "good", sippkit.uas_answer(ring_ms=300))
        await busy.start()
        await good.start()
        pbx.resolver.plans["200"] = Plan(ACCOUNT, (Wave((busy.target(), good.target()), 10),))
        caller = Peer(tmp_path, "caller", sippkit.uac("200", talk_ms=300), pbx.address)
        await caller.start()
        runs = [await caller.finish(), await busy.finish(), await good.finish()]
        for run in runs:
            assert run.stats.successful == 1, run.describe()
        (ended,) = await pbx.wait_ended()
        call_id = ended.call_id
        assert ended.disposition is Disposition.answered
        assert [a.leg_id for a in pbx.bus.of_type(CallAnswered)] == [f"{call_id}.w0t1"]
        legs = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
        assert legs == {
            f"{call_id}.w0t0": LegEndReason.busy,
            f"{call_id}.w0t1": LegEndReason.completed,
        }
    finally:
        await pbx.close()


async def test_second_wave_answers_after_the_first_times_out(
    embedded: EmbeddedMediaEngine, tmp_path: Path
) -> None:
    pbx = await start_pbx(embedded)
    try:
        silent = Peer(tmp_path, "silent", sippkit.uas_ring_forever())
        good = Peer(tmp_path, "good", sippkit.uas_answer())
        await silent.start()
        await good.start()
        waves = (Wave((silent.target(),), 1.0), Wave((good.target(),), 10))
        pbx.resolver.plans["300"] = Plan(ACCOUNT, waves)
        caller = Peer(tmp_path, "caller", sippkit.uac("300", talk_ms=300), pbx.address)
        await caller.start()
        runs = [await caller.finish(), await silent.finish(), await good.finish()]
        for run in runs:
            assert run.stats.successful == 1, run.describe()
        (ended,) = await pbx.wait_ended()
        call_id = ended.call_id
        assert [a.leg_id for a in pbx.bus.of_type(CallAnswered)] == [f"{call_id}.w1t0"]
        legs = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
        assert legs == {
            f"{call_id}.w0t0": LegEndReason.no_answer,
            f"{call_id}.w1t0": LegEndReason.completed,
        }
        assert pbx.bus.of_type(CallEnded)[0].disposition is Disposition.answered
    finally:
        await pbx.close()


async def test_relay_and_recording_rtpengine(rtpengine_daemon: Daemon, tmp_path: Path) -> None:
    """The same relay through rtpengine (skipped without it: the daemon fixture says why)."""
    engine = RtpengineMediaEngine(
        "127.0.0.1",
        rtpengine_daemon.ng_port,
        recording_dir=rtpengine_daemon.recording_dir,
        dtmf_listen=("127.0.0.1", rtpengine_daemon.dtmf_port),
        media_timeout=0,
    )
    pbx = await start_pbx(engine, recording_path=_recording_path(tmp_path))
    try:
        await _relay(pbx, engine, tmp_path)
    finally:
        await pbx.close()
        await engine.close()
