"""The playout buffer, driven by a virtual clock."""

from __future__ import annotations

import pytest

from zvonar.media.jitter import JitterBuffer, PlayoutFrame
from zvonar.media.rtp import RtpPacket


def pkt(seq: int, ts: int) -> RtpPacket:
    return RtpPacket(0, seq & 0xFFFF, ts & 0xFFFFFFFF, 1, bytes([seq & 0xFF]) * 160)


def played(frames: list[PlayoutFrame]) -> list[int | None]:
    return [f.packet.sequence_number if f.packet else None for f in frames]


def test_playout_clock_and_reordering() -> None:
    jb = JitterBuffer(delay=0.06)
    assert jb.next_deadline() is None and jb.pop(0.0) == []
    jb.push(pkt(1, 0), now=1.000)
    assert jb.next_deadline() == pytest.approx(1.06)
    jb.push(pkt(3, 320), now=1.030)
    jb.push(pkt(2, 160), now=1.041)  # arrived after 3
    assert jb.pop(1.059) == []
    assert played(jb.pop(1.06)) == [1]
    assert jb.next_deadline() == pytest.approx(1.08)
    assert played(jb.pop(1.10)) == [2, 3]  # catching up two slots at once
    frames = jb.pop(1.12)
    assert played(frames) == [None] and frames[0].timestamp == 480
    assert (jb.stats.played, jb.stats.missing) == (4, 1)


def test_loss_late_and_duplicate_packets() -> None:
    jb = JitterBuffer(delay=0.02)
    jb.push(pkt(10, 1000), 0.0)
    jb.push(pkt(12, 1320), 0.04)
    jb.push(pkt(12, 1320), 0.041)
    assert jb.stats.duplicates == 1
    assert played(jb.pop(0.04)) == [10, None]  # slots at 0.02 and 0.04; 11 did not come
    jb.push(pkt(11, 1160), 0.05)  # too late
    assert jb.stats.late == 1
    assert played(jb.pop(0.06)) == [12]


def test_resync_on_a_jump_ahead_and_on_a_restart() -> None:
    jb = JitterBuffer(delay=0.0, max_gap=1.0)
    jb.push(pkt(1, 0), 0.0)
    assert played(jb.pop(0.0)) == [1]
    jb.push(pkt(2, 8000 * 5), 0.02)  # five seconds of timestamps later (silence suppression)
    assert played(jb.pop(0.02)) == [2]
    assert jb.stats.resyncs == 1
    assert jb.pop(0.04)[0].timestamp == 8000 * 5 + 160
    jb.push(pkt(1000, 77), 0.05)  # the sender restarted far behind
    assert jb.stats.resyncs == 2
    assert played(jb.pop(0.06)) == [1000]


def test_timestamps_not_aligned_to_slots() -> None:
    jb = JitterBuffer(delay=0.0)
    jb.push(pkt(1, 0), 0.0)
    jb.push(pkt(2, 240), 0.02)  # 80 samples off the slot grid
    jb.push(pkt(3, 400), 0.04)
    assert played(jb.pop(0.04)) == [1, 2, 3]


def test_overflow_drops_the_oldest() -> None:
    jb = JitterBuffer(delay=10.0, max_packets=4)
    for i in range(6):
        jb.push(pkt(i, i * 160), 0.0)
    assert played(jb.pop(10.0)) == [None]  # packets 0 and 1 were dropped
    assert played(jb.pop(10.1)) == [None, 2, 3, 4, 5]


def test_timestamp_wrap() -> None:
    jb = JitterBuffer(delay=0.0)
    for i in range(4):
        jb.push(pkt(i, 0xFFFFFF00 + i * 160), i * 0.02)
    assert played(jb.pop(0.06)) == [0, 1, 2, 3]


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(ptime=0)
