"""RFC 3550 Appendix A receiver statistics and the E-model MOS estimate."""

from __future__ import annotations

import pytest

from zvonar.media.rtcp import ReportBlock, SenderReport, ntp_middle
from zvonar.media.stats import (
    MAX_DROPOUT,
    ReceiverStats,
    estimate_mos,
    mos_from_r,
)


def feed(stats: ReceiverStats, seqs: list[int], *, t0: float = 0.0) -> list[bool]:
    # 20 ms packets, perfectly timed: arrival and timestamp advance together
    return [stats.update(s & 0xFFFF, (s * 160) & 0xFFFFFFFF, t0 + s * 0.02) for s in seqs]


def test_probation_then_clean_stream() -> None:
    stats = ReceiverStats(0x1234, 8000)
    valid = feed(stats, list(range(1000, 1100)))
    assert valid[0] is False  # A.1: MIN_SEQUENTIAL = 2, the first packet only starts probation
    assert all(valid[1:])
    assert stats.base_seq == 1001
    assert stats.received == 99
    assert stats.expected == 99
    assert stats.cumulative_lost == 0
    block = stats.report_block(2.0)
    assert block == ReportBlock(0x1234, 0, 0, 1099, 0, 0, 0)


def test_probation_restarts_on_a_gap() -> None:
    stats = ReceiverStats(1, 8000)
    assert feed(stats, [10, 12, 13]) == [False, False, True]
    assert stats.base_seq == 13


def test_no_probation_for_a_signalled_source() -> None:
    stats = ReceiverStats(1, 8000, probation=0)
    assert feed(stats, [5, 6]) == [True, True]
    assert (stats.received, stats.expected) == (2, 2)


def test_loss_fraction_per_interval_and_cumulative() -> None:
    stats = ReceiverStats(1, 8000)
    seqs = [s for s in range(0, 101) if s % 10 != 5]  # lose 5, 15, ... 95: 10 packets
    feed(stats, seqs)
    # base_seq = 1 after probation; 1..100 expected = 100, received = 90
    assert (stats.expected, stats.received, stats.cumulative_lost) == (100, 90, 10)
    first = stats.report_block(3.0)
    assert first.fraction_lost == 10 * 256 // 100  # 25
    assert first.cumulative_lost == 10
    assert first.highest_sequence == 100
    # next interval: 50 expected, 5 lost
    feed(stats, [s for s in range(101, 151) if s % 10 != 7])
    second = stats.report_block(4.0)
    assert second.fraction_lost == 5 * 256 // 50  # 25
    assert second.cumulative_lost == 15
    # an interval with nothing new: fraction 0
    assert stats.report_block(5.0).fraction_lost == 0
    assert stats.loss_ratio == pytest.approx(15 / 150)


def test_duplicates_make_cumulative_loss_negative_and_fraction_zero() -> None:
    stats = ReceiverStats(1, 8000)
    feed(stats, [1, 2, 3, 4, 4, 4])
    assert stats.cumulative_lost == -2
    block = stats.report_block(1.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, -2)
    assert stats.loss_ratio == 0.0


def test_sequence_wrap_extends_the_highest_number() -> None:
    stats = ReceiverStats(1, 8000)
    feed(stats, list(range(65530, 65546)))  # 65530 .. 65535, 0 .. 9
    assert stats.cycles == 65536
    assert stats.extended_max == 65536 + 9
    assert stats.report_block(1.0).highest_sequence == 65545
    assert stats.cumulative_lost == 0


def test_reordered_packet_is_counted_without_moving_the_maximum() -> None:
    stats = ReceiverStats(1, 8000)
    feed(stats, [1, 2, 3, 5, 4, 6])
    assert stats.max_seq == 6 and stats.received == 5 and stats.cumulative_lost == 0


def test_large_jump_is_believed_only_when_confirmed() -> None:
    stats = ReceiverStats(1, 8000)
    feed(stats, list(range(100, 110)))
    jump = 110 + MAX_DROPOUT + 500
    assert stats.update(jump, 0, 1.0) is False  # a stray packet far ahead
    assert stats.max_seq == 109
    assert stats.update(110, 110 * 160, 1.0) is True  # the stream continues normally
    assert stats.update(jump + 10, 0, 1.1) is False
    assert stats.update(jump + 11, 160, 1.12) is True  # sequential after the jump: restart
    assert (stats.base_seq, stats.received, stats.max_seq) == (jump + 11, 1, jump + 11)


def test_jitter_follows_a8_exactly() -> None:
    stats = ReceiverStats(1, 8000, probation=0)
    # transit alternates between 0 and 10 ms: |D| = 80 timestamp units each packet
    for i in range(40):
        stats.update(i, i * 160, i * 0.02 + (0.01 if i % 2 else 0.0))
    # J(n) = 80 * (1 - (15/16)^n) after n differences
    assert stats.jitter == pytest.approx(80 * (1 - (15 / 16) ** 39))
    block = stats.report_block(1.0)
    assert block.jitter == int(stats.jitter)
    assert stats.jitter_seconds == pytest.approx(stats.jitter / 8000)


def test_jitter_is_zero_for_a_perfect_stream_across_a_timestamp_wrap() -> None:
    stats = ReceiverStats(1, 8000, probation=0)
    for i in range(50):
        stats.update(i, (0xFFFFF000 + i * 160) & 0xFFFFFFFF, 100.0 + i * 0.02)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_lsr_and_dlsr_from_the_last_sender_report() -> None:
    stats = ReceiverStats(1, 8000)
    feed(stats, [1, 2, 3])
    sr = SenderReport(1, 0x1122334455667788, 0, 3, 480)
    stats.on_sender_report(sr, now=10.0)
    block = stats.report_block(11.5)
    assert block.lsr == ntp_middle(sr.ntp_timestamp) == 0x33445566
    assert block.dlsr == int(1.5 * 65536)


def test_e_model_figures() -> None:
    best = estimate_mos(0.0, 0.0, 0.0)
    assert best.r_factor == pytest.approx(93.2)
    assert best.mos == pytest.approx(1 + 0.035 * 93.2 + 93.2 * 33.2 * 6.8 * 7e-6)  # 4.41
    # 1 % random loss with PLC: Ie,eff = 95 * 1 / (1 + 25.1)
    assert estimate_mos(0.01, 0, 0).r_factor == pytest.approx(93.2 - 95 / 26.1)
    # 200 ms one-way: Id = 0.024 * 200 + 0.11 * (200 - 177.3)
    assert estimate_mos(0, 0, 200).r_factor == pytest.approx(93.2 - 4.8 - 0.11 * 22.7)
    # jitter counts twice, as buffer delay
    assert estimate_mos(0, 50, 100).r_factor == pytest.approx(estimate_mos(0, 0, 200).r_factor)
    # quality falls as loss grows
    scores = [estimate_mos(p / 100, 10, 50).mos for p in range(0, 50, 5)]
    assert scores == sorted(scores, reverse=True)
    assert estimate_mos(1.0, 500, 1000).mos == 1.0


def test_mos_from_r_bounds() -> None:
    assert mos_from_r(-5) == 1.0
    assert mos_from_r(0) == 1.0
    assert mos_from_r(100) == 4.5
    assert mos_from_r(120) == 4.5
    assert mos_from_r(50) == pytest.approx(1 + 1.75 + 50 * -10 * 50 * 7e-6)
    values = [mos_from_r(r) for r in range(0, 101)]
    assert values == sorted(values)
