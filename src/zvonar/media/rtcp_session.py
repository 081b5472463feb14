"""One leg's end of RTCP (RFC 3550 §6): the reports we send and what the peer's tell us.

The embedded engine terminates RTCP on each leg instead of relaying it, as it does with the
RTP stream itself: a relayed stream is renumbered onto the leg's own SSRC (io/leg.py), so a
report about the other side's stream would describe packets this peer never saw. Each leg
therefore reports, as any RTP endpoint does:

* an SR while we send (§6.4.1: our packet and octet counts, and the NTP/RTP timestamp pair
  the peer needs for its round trip), an RR otherwise, with one report block about the
  peer's stream (loss, jitter, LSR/DLSR from :class:`zvonar.media.stats.ReceiverStats`);
* an SDES with a CNAME in every compound packet (§6.1), random per leg as RFC 7022 asks,
  so a report names no host or user;
* a BYE when the leg is released (§6.3.7).

From the peer's reports it keeps what our RTP was like at the far end: the fraction lost,
the jitter, and the round trip from LSR/DLSR (§6.4.1). That is the only view a B2BUA has of
the audio its callers *hear*; the engine's own receiver statistics cover only what it
hears from them.

The interval is §6.3.1's for a two-party audio session: the 5 s minimum applies (RTCP's
5 % of a 64 kbit/s stream would allow far more), halved for the first report (§6.2), drawn
from [0.5, 1.5] of it and divided by e - 3/2 (the reconsideration compensation), so the
reports of many legs never fire in step.

Sans-IO: callers hand in bytes and clock readings and get bytes back; SRTCP is the leg's
business (io/srtp.py).
"""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass

from zvonar.media.errors import RtcpParseError
from zvonar.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SdesItem,
    SdesType,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    parse_rtcp,
    rtt_from_report,
    serialize_rtcp,
)
from zvonar.media.stats import ReceiverStats

__all__ = ["MIN_INTERVAL", "PeerReport", "RtcpSession", "report_interval"]

MIN_INTERVAL = 5.0  # seconds (§6.2)
_COMPENSATION = math.e - 1.5  # §6.3.1: keeps the mean interval at Td despite reconsideration
_RTP_HEADER = 12


def report_interval(
    minimum: float = MIN_INTERVAL, *, initial: bool = False, rng: random.Random | None = None
) -> float:
    """Seconds to the next report: §6.3.1 with the minimum Td of §6.2 (half of it first)."""
    td = minimum / 2 if initial else minimum
    draw = (rng or random).uniform(0.5, 1.5)
    return td * draw / _COMPENSATION


@dataclass(frozen=True)
class PeerReport:
    """What the peer's latest report said about our stream. ``loss`` is cumulative: the
    packets it counts as lost over the packets we had sent by then (ours is the only count
    of what was sent that both ends can agree on); ``rtt`` is None until the peer has an SR
    of ours to echo (LSR = 0)."""

    fraction_lost: float  # in the last interval, 0..1
    loss: float  # since the start, 0..1
    jitter: float  # seconds
    rtt: float | None  # seconds


class RtcpSession:
    """RTCP of one leg whose own RTP stream has SSRC ``ssrc``. ``clock_rate``: the audio
    clock, for the jitter the peer reports in timestamp units."""

    def __init__(self, ssrc: int, *, clock_rate: int = 8000, cname: str | None = None) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.cname = cname if cname is not None else secrets.token_urlsafe(12)
        self.peer: PeerReport | None = None
        self.rtt: float | None = None  # the last round trip measured, kept if a report lacks it
        self.received = 0  # compound packets accepted
        self.rejected = 0  # datagrams that were not RTCP we could read
        self.sent = 0
        self.peer_left = False  # the peer sent a BYE for its stream
        self._packets_at_report = 0  # our sent-packet count at the last report

    # --- sending ------------------------------------------------------------------------

    def report(
        self,
        *,
        wall: float,
        now: float,
        rtp_timestamp: int,
        sent_packets: int,
        sent_bytes: int,
        receiver: ReceiverStats | None,
        bye: bool = False,
    ) -> bytes:
        """Our next compound packet: SR (if we sent RTP since the last report) or RR, SDES,
        and a BYE when ``bye``. ``wall`` is the Unix time (for the NTP timestamp), ``now``
        the clock ``receiver`` was fed with; ``sent_bytes`` counts whole RTP packets."""
        blocks: tuple[ReportBlock, ...] = ()
        if receiver is not None and receiver.received:
            blocks = (receiver.report_block(now),)
        packets: list[RtcpPacket]
        if sent_packets > self._packets_at_report:
            octets = max(0, sent_bytes - _RTP_HEADER * sent_packets)  # payload octets (§6.4.1)
            packets = [
                SenderReport(
                    self.ssrc,
                    ntp_from_unix(wall),
                    rtp_timestamp & 0xFFFFFFFF,
                    sent_packets & 0xFFFFFFFF,
                    octets & 0xFFFFFFFF,
                    blocks,
                )
            ]
        else:
            packets = [ReceiverReport(self.ssrc, blocks)]
        self._packets_at_report = sent_packets
        packets.append(
            SourceDescription((SdesChunk(self.ssrc, (SdesItem(SdesType.CNAME, self.cname),)),))
        )
        if bye:
            packets.append(Bye((self.ssrc,)))
        self.sent += 1
        return serialize_rtcp(packets)

    # --- receiving ----------------------------------------------------------------------

    def receive(
        self,
        data: bytes,
        *,
        wall: float,
        now: float,
        receiver: ReceiverStats | None,
        sent_packets: int,
    ) -> bool:
        """Take in one compound packet from the peer; False (and nothing changed) if it is
        not RTCP we can read. ``sent_packets``: how many RTP packets we have sent so far."""
        try:
            packets = parse_rtcp(data)
        except RtcpParseError:
            self.rejected += 1
            return False
        if not packets:
            self.rejected += 1
            return False
        # §6.1 wants a compound packet to start with SR or RR, but reduced-size RTCP (RFC
        # 5506) and the APP packets some phones send to open their NAT do not: taken as is.
        self.received += 1
        for packet in packets:
            if isinstance(packet, SenderReport):
                if receiver is not None and receiver.ssrc == packet.ssrc:
                    receiver.on_sender_report(packet, now)
                self._blocks(packet.reports, wall, sent_packets)
            elif isinstance(packet, ReceiverReport):
                self._blocks(packet.reports, wall, sent_packets)
            elif isinstance(packet, Bye) and receiver is not None:
                self.peer_left = self.peer_left or receiver.ssrc in packet.ssrcs
        return True

    def _blocks(self, blocks: tuple[ReportBlock, ...], wall: float, sent_packets: int) -> None:
        for block in blocks:
            if block.ssrc != self.ssrc:
                continue  # about a stream that is not ours (a conference of its own...)
            rtt = rtt_from_report(block, ntp_from_unix(wall))
            if rtt is not None:
                self.rtt = rtt
            lost = max(0, block.cumulative_lost)
            self.peer = PeerReport(
                fraction_lost=block.fraction_lost / 256,
                loss=min(1.0, lost / sent_packets) if sent_packets > 0 else 0.0,
                jitter=block.jitter / self.clock_rate,
                rtt=self.rtt,
            )
