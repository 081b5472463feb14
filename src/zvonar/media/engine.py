"""The media engine interface: what the call layer asks of whatever moves RTP.

Two implementations sit behind :class:`MediaEngine`:

* :mod:`zvonar.media.io` — the embedded asyncio engine (the default: one process, G.711,
  RFC 4733, prompts, hold music, recording);
* :mod:`zvonar.media.rtpengine` — an adapter over Sipwise rtpengine's ``ng`` control protocol,
  for deployments that outgrow one process.

The call layer sees *legs*: one RTP endpoint per SIP dialog of a call. It allocates a leg
(and writes the returned address into its SDP), applies what offer/answer negotiated with the
peer (:class:`RemoteMedia`), bridges two legs so their audio flows between them, plays files
into a leg, records the caller leg (caller on the left channel, whatever leg is bridged to it
on the right), lets a supervisor's leg listen silently to a bridged pair (both directions
mixed into it, nothing of it reaching the call) and releases the leg when the dialog ends.
Everything that happens on the media path on its own — a digit, the end of a prompt, silence
from a dead peer — arrives as a frozen :data:`MediaEvent` through the handlers given to
:meth:`MediaEngine.subscribe`.

This module is pure data and protocol definitions: no sockets, no clock.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from zvonar.media.errors import MediaError
from zvonar.media.offer_answer import NegotiatedMedia
from zvonar.media.sdes import SrtpParams
from zvonar.media.sdp import Direction

__all__ = [
    "AddressFamily",
    "AudioCodec",
    "DtmfReceived",
    "EngineClosedError",
    "EventHandler",
    "LegEndpoint",
    "LegStats",
    "MediaEngine",
    "MediaEngineError",
    "MediaEvent",
    "MediaTimeout",
    "PlaybackFinished",
    "PlaybackId",
    "PlaybackReason",
    "PortsExhaustedError",
    "PromptNotFoundError",
    "RecordingFinished",
    "RecordingId",
    "RemoteMedia",
    "UnknownLegError",
    "UnsupportedError",
]

PlaybackId = str
RecordingId = str


class AddressFamily(enum.Enum):
    """The SDP ``addrtype`` of a leg (RFC 8866 §5.7)."""

    IP4 = "IP4"
    IP6 = "IP6"


class AudioCodec(enum.Enum):
    """Audio codecs the engines carry end to end. Both are 8 kHz, one byte per sample."""

    PCMU = "PCMU"
    PCMA = "PCMA"

    @property
    def static_payload_type(self) -> int:
        # RFC 3551 §6 Table 4.
        return 0 if self is AudioCodec.PCMU else 8


# --- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LegEndpoint:
    """Where a leg receives RTP: put ``address``/``port`` into the local SDP's c=/m= lines."""

    leg_id: str
    call_id: str
    address: str
    port: int
    family: AddressFamily
    # The master key and salt this leg sends SRTP with (RFC 4568 SDES), for its SDP: set by an
    # engine that can encrypt the leg, None by one that cannot (RTP/SAVP is then refused).
    srtp_key: bytes | None = field(default=None, repr=False)
    # Where the leg receives RTCP: the SDP names it with a=rtcp (RFC 3605) unless it is
    # port + 1; None: the engine says nothing of it (the SDP then implies port + 1).
    rtcp_port: int | None = None
    rtcp_mux: bool = False  # the engine also takes RTCP on the RTP port (RFC 5761)

    def __post_init__(self) -> None:
        if not 0 < self.port <= 65535:
            raise MediaEngineError(f"local port out of range: {self.port}")
        if self.rtcp_port is not None and not 0 < self.rtcp_port <= 65535:
            raise MediaEngineError(f"local RTCP port out of range: {self.rtcp_port}")


@functools.lru_cache(maxsize=4096)  # every leg's answer is checked; peers repeat addresses
def _ip_literal(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class RemoteMedia:
    """The outcome of offer/answer for one leg, as the engine needs it (RFC 3264 §6.1).

    ``direction`` is *our* direction towards the peer, as in
    :class:`zvonar.media.offer_answer.NegotiatedMedia`: ``sends`` — the peer wants our RTP
    (not when it holds us with sendonly/inactive or a null address, RFC 3264 §8.4);
    ``receives`` — the peer sends, so silence from it is a media timeout.
    :meth:`from_negotiated` builds one from the offer/answer result.
    """

    address: str
    port: int
    codec: AudioCodec = AudioCodec.PCMU
    payload_type: int = 0
    telephone_event_pt: int | None = None
    ptime_ms: int = 20
    direction: Direction = Direction.SENDRECV
    srtp: SrtpParams | None = None  # SRTP with these keys (the local one from LegEndpoint)
    # Where the peer takes RTCP (a=rtcp, RFC 3605); None: port + 1 on ``address``. With
    # ``rtcp_mux`` (RFC 5761, agreed in offer/answer) RTCP shares the RTP port both ways.
    rtcp_address: str | None = None
    rtcp_port: int | None = None
    rtcp_mux: bool = False

    def __post_init__(self) -> None:
        if not _ip_literal(self.address):
            raise MediaEngineError(f"remote media address is not an IP literal: {self.address!r}")
        if not 0 <= self.port <= 65535:
            raise MediaEngineError(f"remote port out of range: {self.port}")
        if self.rtcp_address is not None and not _ip_literal(self.rtcp_address):
            raise MediaEngineError(f"RTCP address is not an IP literal: {self.rtcp_address!r}")
        if self.rtcp_port is not None and not 0 <= self.rtcp_port <= 65535:
            raise MediaEngineError(f"remote RTCP port out of range: {self.rtcp_port}")
        if not 0 <= self.payload_type <= 127:
            raise MediaEngineError(f"payload type out of range: {self.payload_type}")
        te = self.telephone_event_pt
        if te is not None and (not 0 <= te <= 127 or te == self.payload_type):
            raise MediaEngineError(f"bad telephone-event payload type: {te}")
        if not 10 <= self.ptime_ms <= 200:
            raise MediaEngineError(f"unsupported ptime: {self.ptime_ms} ms")

    @classmethod
    def from_negotiated(cls, negotiated: NegotiatedMedia) -> RemoteMedia:
        """The engine's view of an offer/answer result; raise :class:`UnsupportedError`
        for a codec the engines do not carry."""
        try:
            codec = AudioCodec(negotiated.codec.upper())
        except ValueError:
            raise UnsupportedError(f"codec {negotiated.codec} is not supported") from None
        rtcp_address, rtcp_port = negotiated.remote_rtcp_address, negotiated.remote_rtcp_port
        return cls(
            address=negotiated.remote_address,
            port=negotiated.remote_port,
            codec=codec,
            payload_type=negotiated.payload_type,
            telephone_event_pt=negotiated.telephone_event_pt,
            ptime_ms=negotiated.ptime,
            direction=negotiated.direction,
            srtp=negotiated.srtp,
            # Only what a=rtcp changes is kept; one we cannot use (a host name, a port past
            # 65535) costs the peer its RTCP, never the call.
            rtcp_address=(
                rtcp_address
                if rtcp_address != negotiated.remote_address and _ip_literal(rtcp_address)
                else None
            ),
            rtcp_port=(
                rtcp_port
                if rtcp_port != negotiated.remote_port + 1 and 0 < rtcp_port <= 65535
                else None
            ),
            rtcp_mux=negotiated.rtcp_mux,
        )

    @property
    def family(self) -> AddressFamily:
        return AddressFamily.IP6 if ":" in self.address else AddressFamily.IP4

    @property
    def is_null(self) -> bool:
        return self.port == 0 or self.address in ("0.0.0.0", "::")  # noqa: S104

    @property
    def rtcp(self) -> tuple[str, int] | None:
        """Where our RTCP goes by the SDP; None when the peer's RTP port is null or 65535."""
        if self.rtcp_mux:
            return None if self.is_null else (self.address, self.port)
        port = self.rtcp_port if self.rtcp_port is not None else self.port + 1
        if self.is_null or not 0 < port <= 65535:
            return None
        return (self.rtcp_address or self.address, port)

    @property
    def we_send(self) -> bool:
        """Whether the peer wants our RTP."""
        return self.direction.sends and not self.is_null

    @property
    def peer_sends(self) -> bool:
        """Whether we should expect RTP from the peer (and so watch it for a timeout)."""
        return self.direction.receives


@dataclass(frozen=True)
class LegStats:
    """Counters of one leg. ``rx_*``: RTP received from the peer; ``tx_*``: sent to it.

    ``loss`` is the cumulative fraction of expected packets that never arrived (RFC 3550
    A.3), ``jitter_ms`` the interarrival jitter (A.8). ``peer_loss`` and ``peer_jitter_ms``
    are the same figures for *our* RTP as the peer's RTCP reports them (RFC 3550 §6.4), and
    ``rtt_ms`` the round trip measured from its report blocks (LSR/DLSR, §6.4.1); all three
    None while the peer has reported nothing. ``mos`` is an E-model estimate (see
    :func:`zvonar.media.stats.estimate_mos`) of the worse of the two directions, with half
    the round trip as the one-way delay when it is known; None before any packet arrived.
    """

    leg_id: str
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    lost: int = 0
    loss: float = 0.0
    jitter_ms: float = 0.0
    mos: float | None = None
    dropped: int = 0  # datagrams refused: wrong source after latching, unknown payload...
    srtp: bool = False  # the leg's media is SRTP (keys exchanged by SDES)
    peer_loss: float | None = None
    peer_jitter_ms: float | None = None
    rtt_ms: float | None = None
    rtcp_received: int = 0  # RTCP compound packets accepted from the peer
    rtcp_sent: int = 0


# --- events -----------------------------------------------------------------------------


class PlaybackReason(enum.Enum):
    COMPLETED = "completed"  # the file ended (a one-shot play)
    STOPPED = "stopped"  # stop_playback(), or a new play replaced it
    RELEASED = "released"  # the leg was released while playing
    FAILED = "failed"  # the engine could not play (unreadable file, peer refused)


@dataclass(frozen=True)
class DtmfReceived:
    """A digit from the peer of ``leg_id``: RFC 4733 events, or in-band tones (Goertzel)
    on a leg that negotiated no telephone-event."""

    leg_id: str
    digit: str
    duration: float  # seconds
    inband: bool = False


@dataclass(frozen=True)
class PlaybackFinished:
    leg_id: str
    playback_id: PlaybackId
    reason: PlaybackReason


@dataclass(frozen=True)
class MediaTimeout:
    """No RTP from the peer of ``leg_id`` for ``seconds`` — or, while it holds the call, no
    RTCP once it had sent some during the hold (the peer vanished; hang up)."""

    leg_id: str
    seconds: float


@dataclass(frozen=True)
class RecordingFinished:
    """A recording was closed; ``path`` is a complete stereo WAV of ``duration`` seconds."""

    recording_id: RecordingId
    leg_id: str
    path: Path
    duration: float


MediaEvent = DtmfReceived | PlaybackFinished | MediaTimeout | RecordingFinished
EventHandler = Callable[[MediaEvent], None]


# --- errors -----------------------------------------------------------------------------


class MediaEngineError(MediaError):
    """Base of the media engines' errors (a 500-class failure for the call)."""


class UnknownLegError(MediaEngineError):
    """The leg id was never allocated here, or was released."""


class PortsExhaustedError(MediaEngineError):
    """No free RTP port in the configured range (a SIP layer answers 503)."""

    status_hint = 503


class PromptNotFoundError(MediaEngineError):
    """A file to play does not exist or is not an 8 kHz mono WAV the engine reads."""


class UnsupportedError(MediaEngineError):
    """The engine cannot do what was asked (e.g. rtpengine cannot bridge unpaired legs)."""


class EngineClosedError(MediaEngineError):
    """The engine was closed (or its control connection lost)."""

    status_hint = 503


# --- the interface ----------------------------------------------------------------------


@runtime_checkable
class MediaEngine(Protocol):
    """What the call layer needs from a media engine. All methods are coroutines that
    raise :class:`MediaEngineError` subclasses; events go to every subscribed handler."""

    #: Whether any two legs can be bridged; False where only the two legs allocated together
    #: in one call can (rtpengine). Early media needs it: the caller's leg outlives forks.
    bridges_any_legs: bool
    #: Whether legs get SRTP keys (``LegEndpoint.srtp_key``): RTP/SAVP offers are acceptable
    #: only then, which the call layer must know before it rings anyone.
    srtp: bool

    async def start(self) -> None:
        """Get ready (bind control sockets, start timers). Idempotent."""

    async def close(self) -> None:
        """Release every leg (finishing recordings and playbacks) and stop."""

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        """Call ``handler`` for every event; returns a function that unsubscribes it."""
        ...

    async def allocate(
        self, call_id: str, leg_id: str, *, family: AddressFamily = AddressFamily.IP4
    ) -> LegEndpoint:
        """A receiving endpoint for a new leg (ids are the caller's choice, unique)."""
        ...

    async def configure(self, leg_id: str, remote: RemoteMedia) -> None:
        """Apply negotiated media (again on every re-INVITE: hold, new address, codec)."""

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        """Relay audio and telephone-events both ways between two legs, transcoding
        PCMU <-> PCMA if they differ. Either leg's earlier bridge is undone first."""

    async def unbridge(self, leg_id: str) -> None:
        """Stop relaying between ``leg_id`` and its bridged peer (no-op if none)."""

    async def play(self, leg_id: str, path: Path, *, loop: bool = False) -> PlaybackId:
        """Play an 8 kHz mono 16-bit WAV to the peer of ``leg_id`` (replacing relayed audio
        while it plays), once or in a loop; ends with :class:`PlaybackFinished`."""
        ...

    async def stop_playback(self, leg_id: str) -> None:
        """Stop the playback on ``leg_id``, if any (no-op otherwise)."""

    async def send_dtmf(
        self, leg_id: str, digit: str, duration: float = 0.1, *, inband: bool = False
    ) -> None:
        """Send the key ``digit`` (0-9, *, #, A-D) to the peer of ``leg_id`` as RFC 4733
        telephone-events of ``duration`` seconds — or, with ``inband``, as tones when the leg
        negotiated no telephone-event — in place of relayed audio while it goes out; digits
        asked for in a row go out in turn. :class:`UnsupportedError` when the leg negotiated
        no telephone-event and ``inband`` is False (or the engine cannot generate keys).
        A key received as RFC 4733 on a leg whose bridged peer negotiated no telephone-event
        is played to that peer as tones by the engine itself."""

    async def start_recording(self, leg_id: str, path: Path) -> RecordingId:
        """Record ``leg_id``'s audio on the left channel and its bridged peer's on the right
        into a stereo 8 kHz 16-bit WAV at ``path``."""
        ...

    async def stop_recording(self, recording_id: RecordingId) -> Path:
        """Finish the recording; returns the WAV path (also sent as RecordingFinished)."""
        ...

    async def move_recording(self, recording_id: RecordingId, leg_id: str) -> None:
        """Let the recording follow ``leg_id``, the leg now bridged to the one it follows,
        each side keeping its channel: the leg it followed can then be released and whatever
        is bridged to ``leg_id`` later is heard on that leg's channel (a call whose caller
        hands the other party on, calls/transfer.py). :class:`UnsupportedError` where legs of
        two allocations cannot be bridged (``bridges_any_legs`` is False)."""
        ...

    async def monitor(self, monitor_leg: str, leg_id: str) -> None:
        """Send the peer of ``monitor_leg`` (a supervisor's phone) the live audio of both
        sides of ``leg_id``'s bridge: what ``leg_id`` and whatever leg is bridged to it (now
        or later, as for a recording) receive, decoded, summed and encoded in
        ``monitor_leg``'s codec, one frame per ptime. ``monitor_leg`` is bridged to nothing
        (an earlier bridge is undone), so whatever its peer sends is dropped: the call never
        hears the listener. Replaces an earlier monitor of ``monitor_leg``; bridging
        ``monitor_leg``, or releasing either leg, ends it. :class:`UnsupportedError` where
        the engine cannot mix legs it did not pair (rtpengine)."""

    async def unmonitor(self, monitor_leg: str) -> None:
        """Stop feeding ``monitor_leg`` (no-op if it monitors nothing)."""

    async def stats(self, leg_id: str) -> LegStats:
        """The leg's counters now."""
        ...

    async def release(self, leg_id: str) -> LegStats:
        """Free the leg (unbridging, stopping its playback and recording); final counters."""
        ...
