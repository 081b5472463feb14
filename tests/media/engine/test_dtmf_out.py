"""Keys the engine sends as RFC 4733 telephone-events on a leg's stream (media/io/dtmf_out.py),
over real UDP: the operator's phone hears a caller's audio, then our digits, then the audio
again — one stream whose sequence numbers never jump, no audio interleaved with a digit, the
clock moved past each digit, and the events readable by an RFC 4733 receiver."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import pytest

from tests.media.engine.phone import Phone
from tests.media.engine.test_relay import leg_for, remote_for
from zvonar.media.dtmf import DtmfReceiver, TelephoneEvent
from zvonar.media.engine import UnsupportedError
from zvonar.media.errors import DtmfError
from zvonar.media.goertzel import DtmfDetector
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.rtp import seq_diff, ts_diff


async def test_digits_go_out_as_events_on_the_relayed_stream(
    engine: EmbeddedMediaEngine,
) -> None:
    caller, operator = Phone(), Phone()
    to_c = await leg_for(engine, "c", caller)
    await leg_for(engine, "o", operator)
    await engine.bridge("c", "o")
    talking = asyncio.create_task(caller.send_tone(to_c, 440, 1.2))
    await asyncio.sleep(0.3)
    await engine.send_dtmf("o", "5", 0.1)
    await engine.send_dtmf("o", "#", 0.08)  # waits for the first
    await talking
    await operator.settle()

    packets = [r.packet for r in operator.received]
    assert len({p.ssrc for p in packets}) == 1
    for before, after in itertools.pairwise(packets):
        assert seq_diff(after.sequence_number, before.sequence_number) == 1
    kinds = "".join("e" if p.payload_type == 101 else "a" for p in packets)
    # audio, the first digit's events, (a little audio in the gap), the second's, audio
    runs = [k for k, _ in itertools.groupby(kinds)]
    assert runs[0] == "a" and runs[-1] == "a" and runs.count("e") == 2, kinds

    events = [p for p in packets if p.payload_type == 101]
    receiver = DtmfReceiver()
    digits = []
    for p in events:
        digits += receiver.receive(p.timestamp, p.payload, 0.0, marker=p.marker)
    assert [(d.digit, round(d.duration, 2)) for d in digits] == [("5", 0.1), ("#", 0.08)]
    parsed = [(p, TelephoneEvent.parse(p.payload)) for p in events]
    starts = [p for p, e in parsed if p.marker]
    assert len(starts) == 2 and all(e.duration > 0 for _, e in parsed)
    assert sum(e.end for _, e in parsed) == 6  # the end packet three times per digit

    # The clock moved past each digit: the audio after it is stamped after its end.
    last_event = events[-1]
    after = next(p for p in packets[packets.index(last_event) :] if p.payload_type == 0)
    assert ts_diff(after.timestamp, last_event.timestamp) >= 0.08 * 8000
    first_audio_after_digit = packets[kinds.index("e") - 1]
    assert ts_diff(starts[0].timestamp, first_audio_after_digit.timestamp) > 0


async def test_a_leg_without_telephone_event_or_a_bad_key_is_refused(
    engine: EmbeddedMediaEngine,
) -> None:
    phone = Phone()
    await engine.allocate("call-1", "p")
    await engine.configure("p", replace(remote_for(phone), telephone_event_pt=None))
    with pytest.raises(UnsupportedError):
        await engine.send_dtmf("p", "1")
    other = Phone()
    await leg_for(engine, "q", other)
    with pytest.raises(DtmfError):
        await engine.send_dtmf("q", "X")


async def test_a_key_to_a_side_without_telephone_event_is_played_as_tones(
    engine: EmbeddedMediaEngine,
) -> None:
    """The employee's phone sends RFC 4733; the trunk's side negotiated no telephone-event
    (an in-band-only carrier): it hears the key's dual tone, on its one stream."""
    phone, trunk = Phone(), Phone(codec="PCMA")
    to_phone = await leg_for(engine, "p", phone)
    await engine.allocate("call-1", "t")
    await engine.configure("t", replace(remote_for(trunk), telephone_event_pt=None))
    await engine.bridge("p", "t")
    talking = asyncio.create_task(phone.send_tone(to_phone, 440, 0.6))
    await asyncio.sleep(0.2)
    await phone.send_dtmf(to_phone, "7", duration=0.12)
    await talking
    await trunk.settle()
    packets = [r.packet for r in trunk.received]
    assert {p.payload_type for p in packets} == {8} and len({p.ssrc for p in packets}) == 1
    for before, after in itertools.pairwise(packets):  # no gap where the events were
        assert seq_diff(after.sequence_number, before.sequence_number) == 1
    detector = DtmfDetector()
    heard = [d.digit for d in detector.feed(trunk.audio())]
    assert heard == ["7"]


async def test_keys_asked_for_in_band_on_a_leg_without_telephone_event(
    engine: EmbeddedMediaEngine,
) -> None:
    trunk = Phone()
    await engine.allocate("call-1", "t")
    await engine.configure("t", replace(remote_for(trunk), telephone_event_pt=None))
    await engine.send_dtmf("t", "4", 0.1, inband=True)
    await engine.send_dtmf("t", "#", 0.1, inband=True)
    await asyncio.sleep(0.5)
    await trunk.settle()
    assert [d.digit for d in DtmfDetector().feed(trunk.audio())] == ["4", "#"]
