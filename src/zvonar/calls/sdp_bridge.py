"""SDP on both sides of the B2BUA: the caller's offer checked and answered, offers built for
the targets, their answers turned into what the media engine needs.

The B2BUA never relays SDP: every dialog gets *our* SDP with the engine's endpoint for that
leg (RFC 3264 offer/answer per dialog via :mod:`zvonar.media.offer_answer`), and the engine
relays (and transcodes) between the two legs.

Re-INVITEs (hold, RFC 3264 §8.4) are answered locally on the leg that sent them: the answer
mirrors the direction (sendonly → recvonly, inactive → inactive) and the engine's view of
that leg is updated, so the held side gets no RTP from us; the other dialog is left alone
(its peer keeps sending, we keep relaying what may be delivered) and hears the account's
hold music until the holder resumes (call.py). No re-offer crosses the B2BUA, so no glare
across dialogs.
"""

from __future__ import annotations

import zlib

from zvonar.media.engine import LegEndpoint, RemoteMedia
from zvonar.media.errors import MediaError, NegotiationError
from zvonar.media.offer_answer import LocalMedia, NegotiatedMedia, negotiate_offer
from zvonar.media.offer_answer_dialog import OfferAnswer
from zvonar.media.sdes import KEY_LENGTH
from zvonar.media.sdp import SessionDescription, parse_sdp

__all__ = [
    "check_offer",
    "local_media",
    "new_offer_answer",
    "parse_body",
    "remote_media",
]

# Only to test whether an offer is acceptable at all, before any leg is allocated: with an
# engine that can encrypt (RTP/SAVP acceptable) and with one that cannot.
_PROBE = LocalMedia("127.0.0.1", 9)
_PROBE_SRTP = LocalMedia("127.0.0.1", 9, srtp_key=bytes(KEY_LENGTH))


def parse_body(body: bytes) -> SessionDescription:
    """Parse an SDP body; :class:`NegotiationError` (488) for an empty or broken one."""
    if not body.strip():
        raise NegotiationError("no SDP offer in the request")
    try:
        return parse_sdp(body)
    except MediaError as exc:
        raise NegotiationError(f"unreadable SDP: {exc}") from None


def check_offer(body: bytes | SessionDescription, *, srtp: bool) -> NegotiatedMedia:
    """Whether the caller's offer is acceptable to us (raises NegotiationError, 488, if not),
    before any media is allocated. ``body`` may be the offer parsed already; ``srtp``: the
    engine can encrypt (``MediaEngine.srtp``), else an RTP/SAVP offer is refused here, not
    after a target answered."""
    offer = body if isinstance(body, SessionDescription) else parse_body(body)
    negotiated = negotiate_offer(offer, _PROBE_SRTP if srtp else _PROBE)
    remote_media(negotiated)  # a codec the engines cannot carry is a 488 as well
    return negotiated


def local_media(endpoint: LegEndpoint, *, secure: bool = False) -> LocalMedia:
    """Our side of a dialog on ``endpoint``. ``secure``: offer SRTP only (a phone over TLS),
    when the engine can encrypt the leg; otherwise plain RTP is offered."""
    key = endpoint.srtp_key
    return LocalMedia(
        endpoint.address,
        endpoint.port,
        username="zvonar",
        srtp_key=key,
        secure=secure and key is not None,
        rtcp_port=endpoint.rtcp_port,
        rtcp_mux=endpoint.rtcp_mux,
    )


def new_offer_answer(endpoint: LegEndpoint, *, secure: bool = False) -> OfferAnswer:
    """Offer/answer state for one dialog whose media lands on ``endpoint`` (``secure``: see
    :func:`local_media`)."""
    session_id = zlib.crc32(endpoint.leg_id.encode()) or 1
    return OfferAnswer(local_media(endpoint, secure=secure), session_id=session_id, version=1)


def remote_media(negotiated: NegotiatedMedia) -> RemoteMedia:
    """The engine's view of a negotiation; NegotiationError (488) if it cannot carry it."""
    try:
        return RemoteMedia.from_negotiated(negotiated)
    except MediaError as exc:
        raise NegotiationError(str(exc)) from None
