"""DTMF as RTP telephone-events (RFC 4733): payload codec, receiver and generator.

* :class:`TelephoneEvent` parses/serializes the 4-byte payload of RFC 4733 §2.3.
* :class:`DtmfReceiver` turns a stream of event packets into :class:`DtmfDigit` events
  (sans-IO: fed packets and ``now``, it reports its next deadline for a lost end packet).
* :func:`generate_dtmf` plans the packets of one digit for a sender.

In-band (audio) detection lives in :mod:`zvonar.media.goertzel` and reports the same
:class:`DtmfDigit`.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass

from zvonar.media.errors import DtmfError
from zvonar.media.rtp import RtpPacket, ts_diff

__all__ = [
    "DIGITS",
    "DtmfDigit",
    "DtmfEnd",
    "DtmfPacket",
    "DtmfReceiver",
    "DtmfSource",
    "TelephoneEvent",
    "digit_to_event",
    "event_to_digit",
    "format_event_list",
    "generate_dtmf",
    "parse_event_list",
]

# RFC 4733 §3.2 Table 7: events 0-9, *, #, A-D and 16 = flash (hook flash shown as "!").
DIGITS = "0123456789*#ABCD!"
_EVENT_FORMAT = struct.Struct("!BBH")
_MAX_DURATION = 0xFFFF


def digit_to_event(digit: str) -> int:
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise DtmfError(f"not a DTMF digit: {digit!r}")
    return index


def event_to_digit(event: int) -> str | None:
    """The digit for a DTMF event code, None for the other telephone-events (tones etc.)."""
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


def parse_event_list(text: str) -> frozenset[int]:
    """Events of an ``a=fmtp:<pt> 0-15,66`` list (RFC 4733 §2.4.1); raise on junk."""
    events: set[int] = set()
    for item in text.replace(" ", "").split(","):
        low, sep, high = item.partition("-")
        try:
            first, last = int(low), int(high if sep else low)
        except ValueError:
            raise DtmfError(f"malformed telephone-event list: {text!r}") from None
        if not 0 <= first <= last <= 255:
            raise DtmfError(f"malformed telephone-event list: {text!r}")
        events.update(range(first, last + 1))
    return frozenset(events)


def format_event_list(events: frozenset[int] | set[int]) -> str:
    """Compact ranges, e.g. {0..16} -> "0-16", {0..15, 66} -> "0-15,66"."""
    parts: list[str] = []
    ordered = sorted(events)
    start = prev = -2
    for event in [*ordered, -2]:
        if event == prev + 1:
            prev = event
            continue
        if start >= 0:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = event
    return ",".join(parts)


@dataclass(frozen=True)
class TelephoneEvent:
    """The RFC 4733 §2.3 payload::

        |     event     |E|R| volume    |          duration             |

    ``volume`` is the power level in -dBm0 (0..63); ``duration`` is in RTP timestamp units
    since the event's timestamp. The R bit is sent as zero and ignored on receipt.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise DtmfError(f"event code out of range: {self.event}")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"volume out of range: {self.volume}")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise DtmfError(f"duration out of range: {self.duration}")

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) != 4:
            raise DtmfError(f"telephone-event payload is 4 bytes, got {len(payload)}")
        event, flags, duration = _EVENT_FORMAT.unpack(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        return _EVENT_FORMAT.pack(
            self.event, (0x80 if self.end else 0) | self.volume, self.duration
        )

    @property
    def digit(self) -> str | None:
        return event_to_digit(self.event)


class DtmfSource(enum.Enum):
    RFC4733 = "rfc4733"
    INBAND = "inband"


class DtmfEnd(enum.Enum):
    """Why a digit was reported as finished."""

    END_BIT = "end"  # an RFC 4733 end packet (E bit) arrived
    TIMEOUT = "timeout"  # the end packets were lost; no update within the timeout
    NEXT_EVENT = "next_event"  # a new event (new RTP timestamp) started first
    TONE_STOPPED = "tone_stopped"  # in-band: the tone pair disappeared


@dataclass(frozen=True)
class DtmfDigit:
    """One received digit. ``timestamp`` is the RTP timestamp of the event (RFC 4733) or the
    index of its first sample (in-band); ``duration`` is in seconds."""

    digit: str
    duration: float
    source: DtmfSource
    end_reason: DtmfEnd
    timestamp: int
    volume: int | None = None


@dataclass
class _Current:
    timestamp: int
    event: int
    duration: int  # highest duration seen in this segment
    volume: int
    last_seen: float
    base: int = 0  # duration of completed segments of a long event (RFC 4733 §2.5.1.3)


class DtmfReceiver:
    """Telephone-event packets in, :class:`DtmfDigit` out (RFC 4733 §2.5.2).

    * An event is identified by its RTP timestamp: every packet of one event carries the
      timestamp of its start (§2.5.1.2), so a new timestamp means a new event.
    * The first end packet (E bit) reports the digit; its two retransmissions (§2.5.1.4) and any
      late update of an ended event are recognised by timestamp and ignored.
    * If all end packets are lost, the digit is reported by the next event or when no packet
      arrived for ``end_timeout`` seconds (see :meth:`next_deadline`).
    * A long event whose duration would overflow 16 bits continues as a new segment whose
      timestamp is the old one + 0xFFFF, without marker (§2.5.1.3); segments are joined.
    * Events other than the 17 DTMF ones (e.g. modem tones) are ignored.
    """

    def __init__(self, *, clock_rate: int = 8000, end_timeout: float = 0.25) -> None:
        if clock_rate <= 0 or end_timeout <= 0:
            raise DtmfError("clock_rate and end_timeout must be positive")
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self._current: _Current | None = None
        self._ended: deque[int] = deque(maxlen=16)

    def receive_packet(self, packet: RtpPacket, now: float) -> list[DtmfDigit]:
        return self.receive(packet.timestamp, packet.payload, now, marker=packet.marker)

    def receive(
        self, timestamp: int, payload: bytes, now: float, *, marker: bool = False
    ) -> list[DtmfDigit]:
        """Feed one telephone-event payload; raise :class:`DtmfError` if it is malformed."""
        event = TelephoneEvent.parse(payload)
        out = self.handle_timer(now)
        if event.digit is None or timestamp in self._ended:
            return out
        current = self._current
        if current is not None and timestamp != current.timestamp:
            delta = ts_diff(timestamp, current.timestamp)
            if delta < 0:
                return out  # a late packet of an event older than the current one
            if delta == _MAX_DURATION and event.event == current.event and not marker:
                current.base += _MAX_DURATION  # next segment of a long event
                current.timestamp = timestamp
                current.duration = 0
            else:
                out.append(self._finish(DtmfEnd.NEXT_EVENT))
                current = None
        if current is None and self._ended and ts_diff(timestamp, self._ended[-1]) < 0:
            return out  # a reordered packet of an event older than the last one ended
        if current is None:
            current = _Current(timestamp, event.event, 0, event.volume, now)
            self._current = current
        current.duration = max(current.duration, event.duration)
        current.volume = event.volume
        current.last_seen = now
        if event.end:
            out.append(self._finish(DtmfEnd.END_BIT))
        return out

    def next_deadline(self) -> float | None:
        """When an event without its end packet times out, or None."""
        if self._current is None:
            return None
        return self._current.last_seen + self.end_timeout

    def handle_timer(self, now: float) -> list[DtmfDigit]:
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            return [self._finish(DtmfEnd.TIMEOUT)]
        return []

    def _finish(self, reason: DtmfEnd) -> DtmfDigit:
        current = self._current
        if current is None:  # callers only finish an existing event
            raise DtmfError("internal: no event in progress")
        self._current = None
        self._ended.append(current.timestamp)
        start = (current.timestamp - current.base) & 0xFFFFFFFF
        return DtmfDigit(
            digit=DIGITS[current.event],
            duration=(current.base + current.duration) / self.clock_rate,
            source=DtmfSource.RFC4733,
            end_reason=reason,
            timestamp=start,
            volume=current.volume,
        )


@dataclass(frozen=True)
class DtmfPacket:
    """One planned telephone-event packet: send it ``offset`` seconds after the digit starts,
    with the given marker, RTP timestamp and payload; the sender assigns sequence numbers."""

    offset: float
    marker: bool
    timestamp: int
    event: TelephoneEvent

    @property
    def payload(self) -> bytes:
        return self.event.serialize()


def generate_dtmf(
    digit: str,
    *,
    timestamp: int,
    duration: float = 0.1,
    ptime: int = 20,
    volume: int = 10,
    clock_rate: int = 8000,
    end_repeats: int = 3,
) -> list[DtmfPacket]:
    """The packets for one digit (RFC 4733 §2.5.1).

    Every packet carries the event's start ``timestamp`` (§2.5.1.2). The first has the marker
    bit; an update follows every ``ptime`` ms, each reporting the duration covered up to the end
    of its packet interval (the convention of audio packets); then the end packet with the E bit
    and the full duration is sent ``end_repeats`` times, one update interval apart (§2.5.1.4).
    Events longer than 0xFFFF samples (8.19 s at 8 kHz) are refused rather than segmented.
    """
    event = digit_to_event(digit)
    total = round(duration * clock_rate)
    step = ptime * clock_rate // 1000
    if step <= 0 or total <= 0 or end_repeats < 1:
        raise DtmfError("duration, ptime and end_repeats must be positive")
    if total > _MAX_DURATION:
        raise DtmfError("DTMF event longer than 0xFFFF timestamp units")
    timestamp &= 0xFFFFFFFF
    packets: list[DtmfPacket] = []
    covered = 0
    index = 0
    while covered + step < total:
        covered += step
        packets.append(
            DtmfPacket(
                offset=index * ptime / 1000,
                marker=index == 0,
                timestamp=timestamp,
                event=TelephoneEvent(event, False, volume, covered),
            )
        )
        index += 1
    end = TelephoneEvent(event, True, volume, total)
    for repeat in range(end_repeats):
        packets.append(
            DtmfPacket(
                offset=(index + repeat) * ptime / 1000,
                marker=index == 0 and repeat == 0,
                timestamp=timestamp,
                event=end,
            )
        )
    return packets
