"""A scripted "phone" for media tests: a plain UDP socket that sends G.711 RTP at real pace
and keeps every packet it receives. Shared by the embedded-engine and rtpengine tests."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from zvonar.media.dtmf import generate_dtmf
from zvonar.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from zvonar.media.goertzel import goertzel_power
from zvonar.media.rtp import RtpPacket, parse_rtp

RATE = 8000
_HEADER = struct.Struct("!BBHII")
_OPEN: list[Phone] = []


def close_all_phones() -> None:
    """Close every phone a test left open (the conftest calls this after each test)."""
    while _OPEN:
        _OPEN.pop().close()


def tone_pcm(freq: float, seconds: float, *, amplitude: float = 0.3, phase: int = 0) -> bytes:
    count = round(seconds * RATE)
    samples = array(
        "h",
        (
            round(amplitude * 32767 * math.sin(2 * math.pi * freq * (phase + i) / RATE))
            for i in range(count)
        ),
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def dual_tone_pcm(f1: float, f2: float, seconds: float, *, amplitude: float = 0.25) -> bytes:
    count = round(seconds * RATE)
    samples = array(
        "h",
        (
            round(
                amplitude
                * 32767
                * (math.sin(2 * math.pi * f1 * i / RATE) + math.sin(2 * math.pi * f2 * i / RATE))
                / 2
            )
            for i in range(count)
        ),
    )
    return samples.tobytes()


def pcm_samples(pcm: bytes) -> list[float]:
    return [float(v) for v in array("h", pcm)]


def dominant(samples: list[float], candidates: tuple[float, ...]) -> float:
    """The candidate frequency with the most power in ``samples`` (Goertzel)."""
    powers = {f: goertzel_power(samples, 2 * math.cos(2 * math.pi * f / RATE)) for f in candidates}
    return max(powers, key=powers.__getitem__)


def tone_power(samples: list[float], freq: float) -> float:
    return goertzel_power(samples, 2 * math.cos(2 * math.pi * freq / RATE))


@dataclass
class Received:
    packet: RtpPacket
    at: float


@dataclass(eq=False)  # identity: close_all_phones must not mistake two silent phones
class Phone:
    """``codec`` is "PCMU" or "PCMA"; ``te_pt`` the telephone-event payload type."""

    host: str = "127.0.0.1"
    codec: str = "PCMU"
    te_pt: int = 101
    received: list[Received] = field(default_factory=list)
    # What goes on the wire and comes off it (SRTP in test_srtp.py); None: plain RTP. A
    # datagram ``unwrap`` refuses is counted in ``refused``.
    wrap: Callable[[bytes], bytes] | None = None
    unwrap: Callable[[bytes], bytes | None] | None = None
    refused: int = 0

    def __post_init__(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.ssrc = 0x1234_0000 + self.port
        self.seq = 1000
        self.ts = 50_000
        self.sent = 0
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)
        self._arrived = asyncio.Event()
        self._closed = False
        _OPEN.append(self)

    @property
    def pt(self) -> int:
        return 0 if self.codec == "PCMU" else 8

    def _on_readable(self) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            if self.unwrap is not None:
                clear = self.unwrap(data)
                if clear is None:
                    self.refused += 1
                    continue
                data = clear
            self.received.append(Received(parse_rtp(data), time.monotonic()))
            self._arrived.set()

    def encode(self, pcm: bytes) -> bytes:
        return ulaw_encode(pcm) if self.codec == "PCMU" else alaw_encode(pcm)

    def audio(self, *, pt: int | None = None) -> bytes:
        """The decoded audio of the received packets of payload type ``pt`` (the phone's
        own by default), in arrival order."""
        want = self.pt if pt is None else pt
        payload = b"".join(r.packet.payload for r in self.received if r.packet.payload_type == want)
        return alaw_decode(payload) if want == 8 else ulaw_decode(payload)

    def send_packet(
        self,
        dest: tuple[str, int],
        payload: bytes,
        *,
        pt: int | None = None,
        marker: bool = False,
        ts: int | None = None,
        advance: int = 160,
    ) -> None:
        header = _HEADER.pack(
            0x80,
            (0x80 if marker else 0) | (self.pt if pt is None else pt),
            self.seq,
            self.ts if ts is None else ts,
            self.ssrc,
        )
        packet = header + payload
        self.sock.sendto(packet if self.wrap is None else self.wrap(packet), dest)
        self.seq = (self.seq + 1) & 0xFFFF
        if ts is None:
            self.ts = (self.ts + advance) & 0xFFFFFFFF
        self.sent += 1

    async def send_audio(self, dest: tuple[str, int], pcm: bytes, *, ptime: int = 20) -> None:
        """Send ``pcm`` as RTP at real pace: packet k leaves at start + k * ptime."""
        encoded = self.encode(pcm)
        size = ptime * RATE // 1000
        start = self._loop.time()
        for k, offset in enumerate(range(0, len(encoded), size)):
            delay = start + k * ptime / 1000 - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.send_packet(dest, encoded[offset : offset + size], marker=k == 0, advance=size)

    async def send_tone(self, dest: tuple[str, int], freq: float, seconds: float) -> None:
        await self.send_audio(dest, tone_pcm(freq, seconds))

    async def send_dtmf(self, dest: tuple[str, int], digit: str, *, duration: float = 0.1) -> None:
        """An RFC 4733 digit, paced as generate_dtmf plans it."""
        start = self._loop.time()
        event_ts = self.ts
        packets = generate_dtmf(digit, timestamp=event_ts, duration=duration)
        for planned in packets:
            delay = start + planned.offset - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.send_packet(
                dest, planned.payload, pt=self.te_pt, marker=planned.marker, ts=planned.timestamp
            )
        self.ts = (event_ts + round(duration * RATE)) & 0xFFFFFFFF

    async def wait_packets(self, count: int, within: float = 3.0) -> None:
        deadline = self._loop.time() + within
        while len(self.received) < count:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    async def settle(self, quiet: float = 0.15, within: float = 3.0) -> None:
        """Wait until no packet arrived for ``quiet`` seconds."""
        deadline = self._loop.time() + within
        while self._loop.time() < deadline:
            last = self.received[-1].at if self.received else 0.0
            if time.monotonic() - last >= quiet:
                return
            await asyncio.sleep(quiet / 3)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self in _OPEN:
            _OPEN.remove(self)
        if not self._loop.is_closed():
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
