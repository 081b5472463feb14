"""One leg's end of RTCP in the embedded engine: its socket, where reports go, when the next
is due, and the peer's reports as the session (media/rtcp_session.py) reads them.

RTCP arrives on the leg's second socket (port + 1, or the port a=rtcp names), or on the RTP
socket where a=rtcp-mux was agreed (RFC 5761: one NAT binding for both; io/leg.py hands such
datagrams over). It is terminated here, never relayed (rtcp_session.py says why). A report is
believed only from the peer's address (the one RTP latched to, else the SDP's) and, on an
SRTP leg, only with a valid SRTCP tag; ours go where the peer's came from (symmetric RTCP,
RFC 4961), else where its SDP says. The engine's slow tick calls :meth:`RtcpEnd.tick`; a BYE
goes out when the leg is released.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

from zvonar.media.engine import RemoteMedia
from zvonar.media.rtcp_session import MIN_INTERVAL, RtcpSession, report_interval

if TYPE_CHECKING:
    from zvonar.media.io.leg import Leg

__all__ = ["RtcpEnd"]

_RTCP_MAX = 2048  # a compound report of a two-party call is ~100 bytes; more is not ours


class RtcpEnd:
    """The RTCP of the leg whose own RTP stream is ``ssrc``, on ``sock``; ``interval`` is
    the minimum report interval (RFC 3550 §6.2)."""

    def __init__(self, ssrc: int, sock: socket.socket, interval: float = MIN_INTERVAL) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.port: int = sock.getsockname()[1]
        self.session = RtcpSession(ssrc)
        self.interval = interval
        self.dest: tuple[str, int] | None = None
        self.latched = False
        self.due: float | None = None
        self.last_heard: float | None = None  # when the peer's last report was accepted

    def configure(self, remote: RemoteMedia, now: float) -> None:
        """A new SDP: reports go where it says until the peer's own RTCP shows otherwise."""
        self.dest = remote.rtcp
        self.latched = False
        if self.due is None:
            self.due = now + report_interval(self.interval, initial=True)

    # --- receiving ----------------------------------------------------------------------

    def on_readable(self, leg: Leg) -> None:
        try:
            data, addr = self.sock.recvfrom(_RTCP_MAX)
        except OSError:  # nothing after all, or an ICMP error for one of our reports
            return
        self.take(leg, data, addr)

    def take(self, leg: Leg, data: bytes, addr: tuple[str, int]) -> None:
        """One datagram of RTCP for ``leg``; what cannot be believed counts as dropped."""
        remote = leg.remote
        if remote is None or len(data) < 8 or data[0] & 0xC0 != 0x80:
            leg.dropped += 1
            return
        host = addr[0]
        if self.latched:
            trusted = (host, addr[1]) == self.dest
        else:
            trusted = host == (leg.source[0] if leg.source is not None else remote.address)
            trusted = trusted or host == remote.rtcp_address
        if not trusted:
            leg.dropped += 1
            return
        if leg.srtp is not None:
            clear = leg.srtp.unprotect_rtcp(data)
            if clear is None:
                leg.dropped += 1
                return
            data = clear
        now = time.monotonic()
        if not self.session.receive(
            data, wall=time.time(), now=now, receiver=leg.rx_stats, sent_packets=leg.tx_packets
        ):
            leg.dropped += 1
            return
        self.last_heard = now
        if not self.latched:
            self.latched = True
            self.dest = (host, addr[1])

    # --- sending ------------------------------------------------------------------------

    def send(self, leg: Leg, now: float, *, bye: bool = False) -> None:
        """Our report (and a BYE) to ``leg``'s peer, if there is somewhere to send it."""
        remote = leg.remote
        if remote is None:
            return
        sock, dest = self.sock, self.dest
        if remote.rtcp_mux:  # on the RTP socket, to where RTP latched until RTCP itself came
            sock = leg.sock
            if not self.latched and leg.source is not None:
                dest = leg.source
        if dest is None:
            return
        packet = self.session.report(
            wall=time.time(),
            now=now,
            rtp_timestamp=leg.stream_timestamp(now),
            sent_packets=leg.tx_packets,
            sent_bytes=leg.tx_bytes,
            receiver=leg.rx_stats,
            bye=bye,
        )
        if leg.srtp is not None:
            secured = leg.srtp.protect_rtcp(packet)
            if secured is None:
                return
            packet = secured
        try:
            sock.sendto(packet, dest)
        except OSError:
            leg.send_errors += 1

    def tick(self, leg: Leg, now: float) -> None:
        due = self.due
        if due is not None and now >= due:
            self.due = now + report_interval(self.interval)
            self.send(leg, now)

    def leave(self, leg: Leg, now: float) -> None:
        """The leg is released: a BYE (RFC 3550 §6.3.7 — the peer may stop waiting for us,
        but one who never sent RTP or RTCP MUST NOT send it). The socket stays open: the
        engine hands it back to its port pool with the RTP socket."""
        if leg.tx_packets or self.session.sent:
            self.send(leg, now, bye=True)
