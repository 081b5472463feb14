"""Per-source RTP receiver statistics (RFC 3550 Appendix A) and an estimated MOS.

:class:`ReceiverStats` implements, for one SSRC:

* A.1 — sequence-number validation: a new source is "on probation" until MIN_SEQUENTIAL
  packets arrive in sequence; a jump of more than MAX_DROPOUT is believed only when the next
  packet continues it (the sender restarted), and a packet up to MAX_MISORDER behind is a
  duplicate or reordered packet;
* A.3 — the extended highest sequence number, cumulative loss and the fraction lost since the
  previous report;
* A.8 — interarrival jitter, the smoothed mean deviation of transit-time differences.

``now`` is the arrival time in seconds (monotonic or wall clock, as long as it is consistent);
the caller feeds only the packets of one payload clock (audio, not RFC 4733 events whose
timestamps freeze during an event).
"""

from __future__ import annotations

from dataclasses import dataclass

from zvonar.media.rtcp import ReportBlock, SenderReport, ntp_middle
from zvonar.media.rtp import ts_diff

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "QualityEstimate",
    "ReceiverStats",
    "estimate_mos",
    "mos_from_r",
]

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


class ReceiverStats:
    """Reception statistics of one source (RFC 3550 A.1, A.3, A.8)."""

    def __init__(self, ssrc: int, clock_rate: int, *, probation: int = MIN_SEQUENTIAL) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self._min_sequential = probation
        self.started = False
        self.max_seq = 0
        self.cycles = 0  # count of sequence number wraps, shifted left 16 bits
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1  # "so seq == bad_seq is false"
        self.probation = probation
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0  # in timestamp units, kept as a float (A.8 keeps it scaled by 16)
        self._last_arrival: float | None = None
        self._last_timestamp = 0
        self._last_sr_ntp_middle = 0
        self._last_sr_at: float | None = None

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update(self, seq: int, timestamp: int, now: float) -> bool:
        """Account for one RTP packet; False if A.1 does not (yet) count it as valid."""
        if not self.started:
            self.started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
            self.probation = self._min_sequential
            if self.probation == 0:
                self.max_seq = seq
                self.received = 1
                self._update_jitter(timestamp, now)
                return True
        if not self._update_seq(seq):
            return False
        self._update_jitter(timestamp, now)
        return True

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            # Source not yet valid: it must send MIN_SEQUENTIAL packets in sequence.
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = self._min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            # In order, with a permissible gap.
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # sequence number wrapped
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # A very large jump: believe it only if the next packet follows it.
            if seq == self.bad_seq:
                self._init_seq(seq)  # the sender restarted without telling us
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: a duplicate or reordered packet; counted, does not move max_seq.
        self.received += 1
        return True

    def _update_jitter(self, timestamp: int, now: float) -> None:
        # A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si), J += (|D| - J) / 16. Differences of the RTP
        # timestamps are taken modulo 2**32 so a timestamp wrap is harmless.
        if self._last_arrival is not None:
            arrival_delta = (now - self._last_arrival) * self.clock_rate
            d = abs(arrival_delta - ts_diff(timestamp, self._last_timestamp))
            self.jitter += (d - self.jitter) / 16
        self._last_arrival = now
        self._last_timestamp = timestamp

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.received else 0

    @property
    def cumulative_lost(self) -> int:
        """Expected minus received (A.3), clamped to the 24-bit signed field of RTCP."""
        lost = self.expected - self.received
        return max(-0x800000, min(0x7FFFFF, lost))

    @property
    def loss_ratio(self) -> float:
        """Cumulative loss as a fraction of the expected packets (0..1)."""
        expected = self.expected
        return max(0, self.cumulative_lost) / expected if expected > 0 else 0.0

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate

    def on_sender_report(self, report: SenderReport, now: float) -> None:
        """Remember an SR from this source for the LSR/DLSR fields of our next report."""
        self._last_sr_ntp_middle = ntp_middle(report.ntp_timestamp)
        self._last_sr_at = now

    def report_block(self, now: float) -> ReportBlock:
        """The report block for our next SR/RR; starts a new loss interval (A.3)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self._last_sr_at is not None:
            dlsr = min(0xFFFFFFFF, max(0, round((now - self._last_sr_at) * 65536)))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(255, fraction),
            cumulative_lost=self.cumulative_lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=min(0xFFFFFFFF, int(self.jitter)),
            lsr=self._last_sr_ntp_middle,
            dlsr=dlsr,
        )


# --- Estimated MOS: a simplified ITU-T G.107 E-model ------------------------------------


@dataclass(frozen=True)
class QualityEstimate:
    r_factor: float
    mos: float


def mos_from_r(r: float) -> float:
    """G.107 Annex B: R-factor to estimated conversational MOS (1.0 .. 4.5).

    The cubic dips just below 1 for 0 < R < 6.5; it is clamped to 1 there so the mapping is
    monotonic."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return max(1.0, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6)


def estimate_mos(
    loss: float,
    jitter_ms: float,
    latency_ms: float,
    *,
    ie: float = 0.0,
    bpl: float = 25.1,
    burst_ratio: float = 1.0,
) -> QualityEstimate:
    """Estimate MOS from packet loss (0..1), jitter and one-way latency (both in ms).

    The simplification of the G.107 E-model, ``R = R0 - Is - Id - Ie,eff + A``:

    * ``R0 - Is`` is the G.107 default 93.2 (all other parameters at defaults) and ``A = 0``;
    * the delay impairment ``Id`` uses the common two-line fit of G.107's Idd/Idte for
      default echo: ``0.024 d + 0.11 (d - 177.3)`` for d > 177.3 ms (Cole & Rosenbluth, 2001);
    * jitter has no term in G.107: it is charged as the de-jitter buffer it forces, so
      ``d = latency + 2 x jitter``;
    * ``Ie,eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl)`` with G.113 values for G.711
      (``Ie = 0``, ``Bpl = 25.1`` with packet-loss concealment, 4.3 without) and random loss
      (``BurstR = 1``).

    G.711 with no loss and low delay scores R = 93.2, MOS ≈ 4.41.
    """
    ppl = min(100.0, max(0.0, loss * 100))
    delay = max(0.0, latency_ms) + 2 * max(0.0, jitter_ms)
    delay_impairment = 0.024 * delay + (0.11 * (delay - 177.3) if delay > 177.3 else 0.0)
    ie_eff = ie + (95 - ie) * ppl / (ppl / burst_ratio + bpl)
    r = 93.2 - delay_impairment - ie_eff
    return QualityEstimate(r_factor=r, mos=mos_from_r(r))
