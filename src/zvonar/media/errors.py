"""The media layer's error tree.

Every error raised by :mod:`zvonar.media` derives from :class:`MediaError`. Errors that a SIP
layer would turn into a response carry ``status_hint`` — the SIP status code the RFCs suggest
(400 for an unparsable SDP body, 488 Not Acceptable Here for a failed offer/answer exchange,
491 Request Pending for offer glare). The media layer never builds SIP responses itself: the
caller translates the hint at the layer boundary.
"""

from __future__ import annotations


class MediaError(Exception):
    """Base of all media-layer errors."""

    status_hint: int = 500

    def __init__(self, reason: str, *, status_hint: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status_hint is not None:
            self.status_hint = status_hint


class SdpParseError(MediaError):
    """An SDP body violates the RFC 8866 grammar (a SIP UAS answers 400)."""

    status_hint = 400


class NegotiationError(MediaError):
    """An RFC 3264 offer/answer exchange failed (no common codec, bad re-offer, glare...)."""

    status_hint = 488


class RtpParseError(MediaError):
    """A datagram is not a valid RTP packet (RFC 3550 §5.1); the receiver drops it."""


class RtcpParseError(MediaError):
    """A datagram is not a valid RTCP compound packet (RFC 3550 §6.1); dropped."""


class DtmfError(MediaError):
    """A telephone-event payload is malformed (RFC 4733 §2.3) or a digit is unknown."""


class WavError(MediaError):
    """A WAV file is malformed or uses an encoding we do not read."""


class CodecError(MediaError):
    """PCM or G.711 data of an impossible shape (e.g. an odd number of PCM bytes)."""
