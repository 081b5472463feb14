"""One leg of the embedded engine: its socket, what it learned of the peer, its two streams.

Receiving (``on_readable``, the hot path: it runs for every datagram, 100 times a second per
relayed call, so it works on the raw header with ``struct`` instead of building packet
objects):

* symmetric RTP / latching: the first RTP packet of a negotiated payload type fixes where
  we send, whatever the SDP said — a phone behind NAT sends from a port its SDP cannot
  know. Once latched, datagrams from any other source are dropped (nobody can hijack or
  inject into the stream) until the next ``configure`` (a re-INVITE) unlatches; a phone
  whose NAT binding changes mid-call is therefore cut off until it re-INVITEs;
* SRTP (a leg whose offer/answer exchanged SDES keys, io/srtp.py): a datagram is decrypted
  and its tag checked before anything else believes it — latching included, so a forged
  packet cannot steer the stream — and what fails is counted and dropped; everything below
  works on the clear packet, and ``_send`` encrypts on the way out;
* RTCP multiplexed on the port (RFC 5761 §4) goes to the leg's RTCP end (io/rtcp_end.py)
  when offer/answer agreed to it and is dropped otherwise; unknown payload types are
  counted and dropped; audio goes to the taps (recorders, monitor mixers), the in-band
  DTMF detector (legs without telephone-event) and the bridged leg; telephone-events (RFC
  4733) to the DTMF receiver and the bridged leg. A leg bridged to nobody relays nothing:
  what a monitor leg (a silent listener) receives goes nowhere.

RTCP is the leg's ``rtcp_end`` (io/rtcp_end.py): its second socket, its reports, and what
the peer's say.

Sending: a leg has one outgoing RTP stream with its own SSRC. Whatever feeds it — a bridged
leg, a prompt, hold music — is mapped onto it with a sequence and timestamp offset taken
when that source starts (RFC 3550 §5.1 lets a translator renumber; what it must not do is
show the receiver several interleaved streams). So a caller who hears hold music and then
the operator sees one stream whose sequence numbers never jump and whose timestamps advance
by the wall-clock time that passed, with the marker bit on the first packet of each source
(RFC 3551 §4.1 "first packet of a talkspurt").
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from zvonar.media.dtmf import DtmfDigit, DtmfReceiver
from zvonar.media.engine import AddressFamily, AudioCodec, LegStats, RemoteMedia
from zvonar.media.errors import DtmfError
from zvonar.media.g711 import alaw_decode, alaw_to_ulaw, ulaw_decode, ulaw_to_alaw
from zvonar.media.goertzel import DtmfDetector
from zvonar.media.io.rtcp_end import RtcpEnd
from zvonar.media.io.srtp import SrtpStreams
from zvonar.media.rtcp_session import MIN_INTERVAL
from zvonar.media.stats import ReceiverStats, estimate_mos

if TYPE_CHECKING:
    from zvonar.media.io.player import Player

__all__ = ["CLOCK_RATE", "DECODE_TABLES", "TRANSCODE", "Leg", "Tap", "payload_bounds"]

log = logging.getLogger(__name__)

CLOCK_RATE = 8000
_SEQ_TS_SSRC = struct.Struct("!HII")  # bytes 2..11 of the fixed header (RFC 3550 §5.1)
_REWRITE = struct.Struct("!BHII")  # bytes 1..11: M+PT, sequence, timestamp, SSRC
_HEADER = struct.Struct("!BBHII")

_ALL_CODES = bytes(range(256))
TRANSCODE: dict[tuple[AudioCodec, AudioCodec], bytes] = {
    (AudioCodec.PCMU, AudioCodec.PCMA): ulaw_to_alaw(_ALL_CODES),
    (AudioCodec.PCMA, AudioCodec.PCMU): alaw_to_ulaw(_ALL_CODES),
}
"""``bytes.translate`` tables: source codec -> destination codec, one lookup per byte."""


def _decode_table(decode: Callable[[bytes], bytes]) -> tuple[bytes, bytes]:
    pcm = decode(_ALL_CODES)
    return pcm[0::2], pcm[1::2]


DECODE_TABLES: dict[AudioCodec, tuple[bytes, bytes]] = {
    AudioCodec.PCMU: _decode_table(ulaw_decode),
    AudioCodec.PCMA: _decode_table(alaw_decode),
}
"""Low and high byte of each code's int16 LE sample: decoding is two ``translate`` calls."""

_TRANSIENT_RECV = (BlockingIOError, InterruptedError)


def payload_bounds(buf: bytearray | bytes, n: int) -> tuple[int, int] | None:
    """(start, end) of the payload of the RTP packet in ``buf[:n]`` past CSRCs, the header
    extension and padding (RFC 3550 §5.1, §5.3.1); None if the lengths do not add up."""
    first = buf[0]
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if n < start + 4:
            return None
        start += 4 + 4 * ((buf[start + 2] << 8) | buf[start + 3])
    end = n
    if first & 0x20:
        end -= buf[n - 1]
    if end < start:
        return None
    return start, end


class Tap(Protocol):
    """Where a leg's received audio is copied: a recording, a monitor's mix. ``leg_id`` is
    the leg it follows, heard on ``channel`` (0 unless a recording moved to the peer of the
    leg it followed); its bridged peer is heard on the other channel."""

    leg_id: str
    channel: int

    def audio(
        self, channel: int, ssrc: int, ts: int, payload: bytes, codec: AudioCodec, now: float
    ) -> None: ...


class Leg:
    """State of one leg. The engine owns the socket registration and the timers."""

    def __init__(
        self,
        *,
        leg_id: str,
        call_id: str,
        family: AddressFamily,
        sock: socket.socket,
        advertised: str,
        buf: bytearray,
        emit_dtmf: Callable[[Leg, DtmfDigit], None],
        srtp_key: bytes | None = None,
        rtcp_sock: socket.socket,
        rtcp_interval: float = MIN_INTERVAL,
    ) -> None:
        self.leg_id = leg_id
        self.call_id = call_id
        self.family = family
        self.sock = sock
        self.fd = sock.fileno()
        self.port: int = sock.getsockname()[1]
        self.advertised = advertised
        self._buf = buf
        self._view = memoryview(buf)
        self._emit_dtmf = emit_dtmf
        # What offer/answer said, and where we actually send.
        self.remote: RemoteMedia | None = None
        self.codec = AudioCodec.PCMU
        self.pt = 0
        self.te_pt = -1  # -1: no telephone-event negotiated (never equals a real PT)
        self.ptime_samples = 160
        self.dest: tuple[str, int] | None = None  # None: send nothing (unknown, on hold)
        self.source: tuple[str, int] | None = None  # the latched source address
        self.latched = False
        self.configured_at: float | None = None
        self.srtp_key = srtp_key  # what we send SRTP with, if the SDP exchange asks for it
        self.srtp: SrtpStreams | None = None
        # Who we relay to, and what feeds our outgoing stream.
        self.peer: Leg | None = None
        self.player: Player | None = None
        self.sending_event = False  # our own RFC 4733 digit goes out (dtmf_out.py)
        # Recordings and monitor mixes this leg's received audio goes to, with the channel
        # (0: the tap's own leg, 1: its bridged peer).
        self.taps: list[tuple[Tap, int]] = []
        # Outgoing stream (RFC 3550 §5.1: random initial SSRC, sequence and timestamp).
        self.ssrc = random.getrandbits(32)
        self.next_seq = random.getrandbits(16)
        self.last_ts = random.getrandbits(32)
        self.last_sent: float | None = None
        self._src_key: object = None
        self._seq_off = 0
        self._last_in = -2  # sequence number of the last relayed packet (-2: none yet)
        self._ts_off = 0
        # Receiving side.
        self.rx_stats: ReceiverStats | None = None
        self.rx_packets = 0
        self.rx_bytes = 0
        self.lost_before = 0  # losses of earlier SSRCs of this leg
        self.expected_before = 0
        self.dropped = 0
        self.tx_packets = 0
        self.tx_bytes = 0
        self.send_errors = 0
        self.last_rx: float | None = None
        self.timed_out_at: float | None = None
        self.dtmf: DtmfReceiver | None = None
        self.inband: DtmfDetector | None = None
        self.inband_enabled = True
        self.rtcp_end = RtcpEnd(self.ssrc, rtcp_sock, rtcp_interval)

    # --- configuration ------------------------------------------------------------------

    def configure(self, remote: RemoteMedia, now: float) -> None:
        self.remote = remote
        self.codec = remote.codec
        self.pt = remote.payload_type
        self.ptime_samples = remote.ptime_ms * CLOCK_RATE // 1000
        if remote.srtp is None:
            self.srtp = None
        elif self.srtp is None or self.srtp.params != remote.srtp:
            self.srtp = SrtpStreams(remote.srtp, previous=self.srtp)
        if remote.telephone_event_pt is None:
            self.te_pt = -1
            self.dtmf = None
            self.inband = DtmfDetector() if self.inband_enabled else None
        else:
            if self.te_pt != remote.telephone_event_pt or self.dtmf is None:
                self.dtmf = DtmfReceiver(clock_rate=CLOCK_RATE)
            self.te_pt = remote.telephone_event_pt
            self.inband = None
        # A new SDP may move the peer: trust it until packets show where it really is.
        self.dest = (remote.address, remote.port) if remote.we_send else None
        # Whatever we send next continues our stream from its last packet: what was not sent
        # meanwhile (the peer held us) must not show up as a gap, which it would read as loss.
        self.restart_source()
        self.source = None
        self.latched = False
        self.configured_at = now
        self.timed_out_at = None
        self.rtcp_end.configure(remote, now)

    def _latch(self, addr: tuple[str, int]) -> None:
        self.latched = True
        self.source = addr
        if self.remote is not None and self.remote.we_send:
            if self.dest != addr:
                log.debug("leg %s latched to %s (SDP said %s)", self.leg_id, addr, self.dest)
            self.dest = addr

    # --- receiving (hot path) -----------------------------------------------------------

    def on_readable(self) -> None:
        buf = self._buf
        try:
            n, addr = self.sock.recvfrom_into(buf)
        except _TRANSIENT_RECV:
            return
        except OSError:  # e.g. ICMP port unreachable reported for an earlier send
            return
        b1 = buf[1]
        if n < 12 or buf[0] & 0xC0 != 0x80 or 192 <= b1 <= 223:
            # Not RTP v2. RTCP multiplexed on this port (RFC 5761 §4) counts where agreed to.
            remote = self.remote
            if 192 <= b1 <= 223 and n >= 8 and remote is not None and remote.rtcp_mux:
                self.rtcp_end.take(self, bytes(buf[:n]), addr)
            else:
                self.dropped += 1
            return
        pt = b1 & 0x7F
        latch = False
        if addr != self.source:
            if len(addr) > 2:  # IPv6: (host, port, flowinfo, scope_id)
                addr = (addr[0], addr[1])
            # Only media we negotiated may latch: a stray datagram must not steer the stream.
            if addr != self.source and (
                self.latched or self.remote is None or (pt != self.pt and pt != self.te_pt)
            ):
                self.dropped += 1
                return
            latch = addr != self.source
        if self.srtp is not None:
            clear = self.srtp.unprotect(bytes(buf[:n]))
            if clear is None or len(clear) < 12:
                self.dropped += 1
                return
            n = len(clear)
            buf[:n] = clear  # same length as the slice: the shared buffer keeps its size
        if latch:
            self._latch(addr)
        now = time.monotonic()
        self.last_rx = now
        self.rx_packets += 1
        self.rx_bytes += n
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(buf, 2)
        peer = self.peer
        if pt == self.pt:
            stats = self.rx_stats
            if stats is None or stats.ssrc != ssrc:
                stats = self._new_source(ssrc)
            stats.update(seq, ts, now)
            if self.taps or self.inband is not None:
                self._tap_audio(buf, n, ssrc, ts, now)
            if (
                peer is not None
                and peer.player is None
                and peer.dest is not None
                and not peer.sending_event
            ):
                peer.relay(buf, n, b1 & 0x80, seq, ts, ssrc, self.codec, False, now)
        elif pt == self.te_pt:
            if self.dtmf is not None:
                self._on_event(buf, n, ts, b1 & 0x80, now)
            if (
                peer is not None
                and peer.player is None
                and peer.dest is not None
                and not peer.sending_event
            ):
                if peer.te_pt >= 0:
                    peer.relay(buf, n, b1 & 0x80, seq, ts, ssrc, self.codec, True, now)
                else:  # it hears the key as tones (dtmf_out.py) instead of this packet
                    peer.dropped_one(seq, ssrc)
        else:
            self.dropped += 1  # comfort noise, a codec we did not negotiate...
            if peer is not None:
                peer.dropped_one(seq, ssrc)

    def _new_source(self, ssrc: int) -> ReceiverStats:
        old = self.rx_stats
        if old is not None:
            self.lost_before += max(0, old.cumulative_lost)
            self.expected_before += old.expected
        stats = ReceiverStats(ssrc, CLOCK_RATE)
        self.rx_stats = stats
        return stats

    def _tap_audio(self, buf: bytearray, n: int, ssrc: int, ts: int, now: float) -> None:
        bounds = payload_bounds(buf, n)
        if bounds is None:
            return
        payload = bytes(buf[bounds[0] : bounds[1]])
        for tap, channel in self.taps:
            tap.audio(channel, ssrc, ts, payload, self.codec, now)
        if self.inband is not None:
            lo, hi = DECODE_TABLES[self.codec]
            pcm = bytearray(2 * len(payload))
            pcm[0::2] = payload.translate(lo)
            pcm[1::2] = payload.translate(hi)
            for digit in self.inband.feed(bytes(pcm)):
                self._emit_dtmf(self, digit)

    def _on_event(self, buf: bytearray, n: int, ts: int, marker: int, now: float) -> None:
        bounds = payload_bounds(buf, n)
        if bounds is None or self.dtmf is None:
            return
        try:
            digits = self.dtmf.receive(
                ts, bytes(buf[bounds[0] : bounds[1]]), now, marker=bool(marker)
            )
        except DtmfError:
            self.dropped += 1
            return
        for digit in digits:
            self._emit_dtmf(self, digit)

    def dtmf_timer(self, now: float) -> None:
        if self.dtmf is not None:
            for digit in self.dtmf.handle_timer(now):
                self._emit_dtmf(self, digit)

    # --- sending ------------------------------------------------------------------------

    def restart_source(self) -> None:
        """The next packet starts a new source (a new bridge, a playback's end)."""
        self._src_key = None

    def _anchor(self, key: object, seq: int, ts: int, now: float) -> None:
        if self.last_sent is None:
            advance = 0  # the very first packet carries the random initial timestamp
        else:
            advance = max(self.ptime_samples, round((now - self.last_sent) * CLOCK_RATE))
        self._seq_off = (self.next_seq - seq) & 0xFFFF
        self._ts_off = (self.last_ts + advance - ts) & 0xFFFFFFFF
        self._src_key = key

    def relay(
        self,
        buf: bytearray,
        n: int,
        marker: int,
        seq: int,
        ts: int,
        key: object,
        codec: AudioCodec,
        event: bool,
        now: float,
    ) -> None:
        """Send the packet in ``buf[:n]`` (from another leg) on this leg's stream; the
        header and, when transcoding, the payload are rewritten in place."""
        if key != self._src_key:
            self._anchor(key, seq, ts, now)
            marker = 0x80
        self._last_in = seq
        oseq = (seq + self._seq_off) & 0xFFFF
        ots = (ts + self._ts_off) & 0xFFFFFFFF
        _REWRITE.pack_into(
            buf, 1, marker | (self.te_pt if event else self.pt), oseq, ots, self.ssrc
        )
        if codec is not self.codec and not event:
            bounds = payload_bounds(buf, n)
            if bounds is None:
                return
            start, end = bounds
            buf[start:end] = buf[start:end].translate(TRANSCODE[codec, self.codec])
        self._send(self._view[:n], oseq, ots, now)

    def dropped_one(self, seq: int, key: object) -> None:
        """Packet ``seq`` of source ``key`` is not sent on (an event for a side without
        telephone-event, comfort noise, a payload type it did not negotiate): the packets
        after it keep consecutive numbers (a gap would read as loss to the receiver, RFC 3550
        §6.4.1). Only the next packet of the stream being relayed counts: a late one was
        numbered past already, and one of another source starts a new numbering anyway."""
        if key == self._src_key and seq == (self._last_in + 1) & 0xFFFF:
            self._seq_off = (self._seq_off - 1) & 0xFFFF
            self._last_in = seq

    def send_frame(self, payload: bytes, seq: int, ts: int, key: object, now: float) -> None:
        """Send one generated audio frame (a prompt, hold music) on this leg's stream."""
        if self.sending_event:
            return  # our digit has the stream (dtmf_out.py); the player keeps its pace
        marker = 0
        if key != self._src_key:
            self._anchor(key, seq, ts, now)
            marker = 0x80
        oseq = (seq + self._seq_off) & 0xFFFF
        ots = (ts + self._ts_off) & 0xFFFFFFFF
        packet = _HEADER.pack(0x80, marker | self.pt, oseq, ots, self.ssrc) + payload
        self._send(packet, oseq, ots, now)

    def stream_timestamp(self, now: float) -> int:
        """Where this leg's outgoing RTP clock stands at ``now`` (an event's start)."""
        if self.last_sent is None:
            return self.last_ts
        advance = max(self.ptime_samples, round((now - self.last_sent) * CLOCK_RATE))
        return (self.last_ts + advance) & 0xFFFFFFFF

    def send_own(self, payload: bytes, marker: bool, ts: int, event: bool, now: float) -> None:
        """A packet of our own on this leg's stream (a key: an RFC 4733 event or a tone
        frame, dtmf_out.py) with the next sequence number."""
        pt = self.te_pt if event else self.pt
        if pt < 0:
            return
        seq = self.next_seq
        packet = _HEADER.pack(0x80, (0x80 if marker else 0) | pt, seq, ts, self.ssrc)
        self._send(packet + payload, seq, ts, now)

    def event_over(self, end_ts: int) -> None:
        """Our digit is out: the stream's clock moves past it and whatever feeds the stream
        next (the relay, a prompt) re-anchors there."""
        self.last_ts = end_ts & 0xFFFFFFFF
        self.sending_event = False
        self._src_key = None

    def _send(self, data: bytes | memoryview, oseq: int, ots: int, now: float) -> None:
        dest = self.dest
        if dest is None:
            return
        # Remember the newest packet only: a reordered old one must not move us back.
        if self.last_sent is None or (oseq - self.next_seq) & 0xFFFF < 0x8000:
            self.next_seq = (oseq + 1) & 0xFFFF
            self.last_ts = ots
        self.last_sent = now
        size = len(data)  # the RTP packet's: an SR counts payload octets (RFC 3550 §6.4.1)
        if self.srtp is not None:
            secured = self.srtp.protect(bytes(data))
            if secured is None:
                self.send_errors += 1
                return
            data = secured
        try:
            self.sock.sendto(data, dest)
        except OSError:
            self.send_errors += 1  # full socket buffer or ICMP error: RTP may drop it
            return
        self.tx_packets += 1
        self.tx_bytes += size

    # --- reporting ----------------------------------------------------------------------

    def stats(self) -> LegStats:
        stats = self.rx_stats
        lost = self.lost_before
        expected = self.expected_before
        jitter_ms = 0.0
        if stats is not None:
            lost += max(0, stats.cumulative_lost)
            expected += stats.expected
            jitter_ms = stats.jitter_seconds * 1000
        loss = lost / expected if expected > 0 else 0.0
        rtcp = self.rtcp_end.session
        report, rtt = rtcp.peer, rtcp.rtt
        one_way_ms = rtt * 500 if rtt is not None else 0.0
        mos = estimate_mos(loss, jitter_ms, one_way_ms).mos if stats is not None else None
        if report is not None and mos is not None:
            # What the peer heard of us counts too: the worse direction is the call's quality.
            mos = min(mos, estimate_mos(report.loss, report.jitter * 1000, one_way_ms).mos)
        return LegStats(
            leg_id=self.leg_id,
            rx_packets=self.rx_packets,
            rx_bytes=self.rx_bytes,
            tx_packets=self.tx_packets,
            tx_bytes=self.tx_bytes,
            lost=lost,
            loss=loss,
            jitter_ms=jitter_ms,
            mos=mos,
            dropped=self.dropped,
            srtp=self.srtp is not None,
            peer_loss=report.loss if report is not None else None,
            peer_jitter_ms=report.jitter * 1000 if report is not None else None,
            rtt_ms=rtt * 1000 if rtt is not None else None,
            rtcp_received=rtcp.received,
            rtcp_sent=rtcp.sent,
        )
