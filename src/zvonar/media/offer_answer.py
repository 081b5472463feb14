"""The SDP offer/answer model (RFC 3264) for one audio stream with G.711 and RFC 4733 DTMF.

Pure functions build offers and answers and compute the :class:`NegotiatedMedia` that the
media engine needs; :class:`~zvonar.media.offer_answer_dialog.OfferAnswer` is the per-dialog
state machine around them (who offered, o= versions, glare, rollback, re-offers).

Answering rules implemented (RFC 3264 §6):

* the answer has exactly as many m-lines as the offer, in the same order; we accept the first
  audio stream over RTP/AVP, or over RTP/SAVP with an ``a=crypto`` line we accept (SDES,
  RFC 4568, :mod:`zvonar.media.sdes`; only when ``LocalMedia.srtp_key`` says the engine can
  encrypt), that carries a codec we support, and reject every other stream by answering it
  with port 0 (§6: rejected streams stay in the answer);
* the codec is the first format of the offer that we support (the offerer's preference), with
  its payload type number echoed, as is telephone-event's (§6.1), with the intersection of
  both event lists in its fmtp (RFC 4733 §2.4.1; an absent fmtp means 0-15);
* directions (§6.1): sendonly is answered recvonly, recvonly sendonly, inactive inactive;
  sendrecv gets our own wish (sendonly when we hold). A ``c=0.0.0.0`` offer (RFC 2543 hold,
  §8.4) means: send nothing to the peer;
* no acceptable stream at all raises :class:`NegotiationError` with ``status_hint`` 488.

Our offers are RTP/AVP, or RTP/SAVP with an ``a=crypto`` line per suite when
``LocalMedia.secure`` (a phone that registered over TLS): SRTP is then required, and an
answer in plain RTP is refused.

A re-offer (§8, ``build_offer(previous=...)``) never has fewer m-lines than the description
it replaces; the o= versions are the dialog's (:mod:`zvonar.media.offer_answer_dialog`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zvonar.media.dtmf import format_event_list, parse_event_list
from zvonar.media.errors import DtmfError, NegotiationError, SdpParseError
from zvonar.media.sdes import SrtpParams, choose_crypto, format_crypto, offer_lines, parse_crypto
from zvonar.media.sdp import (
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
)

__all__ = [
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Codec",
    "LocalMedia",
    "NegotiatedMedia",
    "answer_offer",
    "build_offer",
    "negotiate_offer",
    "process_answer",
]

# RFC 3551 Table 4: static audio payload types usable without an rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),
    18: ("G729", 8000),
}
_RTP_AVP = "RTP/AVP"
_RTP_SAVP = "RTP/SAVP"  # RFC 3711 §12
_DEFAULT_EVENTS = "0-15"  # RFC 4733 §2.4.1: the events when no fmtp is given


@dataclass(frozen=True)
class Codec:
    name: str
    clock_rate: int
    payload_type: int  # the number we offer (the static one where there is one)
    fmtp: str | None = None

    def rtpmap(self, payload_type: int | None = None) -> RtpMap:
        pt = self.payload_type if payload_type is None else payload_type
        return RtpMap(pt, self.name, self.clock_rate)


PCMU = Codec("PCMU", 8000, 0)
PCMA = Codec("PCMA", 8000, 8)
TELEPHONE_EVENT = Codec("telephone-event", 8000, 101, "0-16")


@dataclass(frozen=True)
class LocalMedia:
    """Our side of the stream: where we receive RTP and what we accept."""

    address: str
    port: int
    codecs: tuple[Codec, ...] = (PCMU, PCMA)
    telephone_event: Codec | None = TELEPHONE_EVENT
    ptime: int = 20
    direction: Direction = Direction.SENDRECV  # SENDONLY to hold the peer (RFC 3264 §8.4)
    rtcp_port: int | None = None  # advertised with a=rtcp (RFC 3605) when not port + 1
    # We can take RTCP on the RTP port too (RFC 5761): offered with a=rtcp-mux, and agreed to
    # when an offer has it. An offer keeps its RTCP port as well, in case the answer says no.
    rtcp_mux: bool = False
    username: str = "-"
    session_name: str = "zvonar"
    # The master key and salt we send SRTP with (RFC 4568 SDES): set when the media engine
    # can encrypt this leg, so RTP/SAVP offers are acceptable. ``secure``: our offers are
    # RTP/SAVP only (a phone over TLS), and a plain RTP answer is refused.
    srtp_key: bytes | None = field(default=None, repr=False)
    secure: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.port <= 65535 or not self.codecs or self.ptime <= 0:
            raise NegotiationError("LocalMedia needs a port, a codec and a positive ptime")
        if self.secure and self.srtp_key is None:
            raise NegotiationError("a secure offer needs an SRTP key", status_hint=500)

    @property
    def addrtype(self) -> str:
        return "IP6" if ":" in self.address else "IP4"


@dataclass(frozen=True)
class NegotiatedMedia:
    """What the media engine needs once an offer/answer exchange completed."""

    remote_address: str
    remote_port: int
    remote_rtcp_address: str
    remote_rtcp_port: int
    payload_type: int  # for sending and receiving the codec
    codec: str  # encoding name, e.g. "PCMU"
    clock_rate: int
    telephone_event_pt: int | None
    ptime: int  # ms per packet we send (the peer's a=ptime, else ours)
    direction: Direction  # OUR direction: whether we send and/or receive
    remote_hold: bool  # the peer does not want our media (sendonly/inactive/0.0.0.0)
    media_index: int  # index of the audio m-line
    srtp: SrtpParams | None = None  # the stream is SRTP (RTP/SAVP) with these keys
    rtcp_mux: bool = False  # both sides agreed to RTCP on the RTP port (RFC 5761 §5.1.1)

    @property
    def sends(self) -> bool:
        return self.direction.sends

    @property
    def receives(self) -> bool:
        return self.direction.receives


def _origin(local: LocalMedia, session_id: int, version: int) -> Origin:
    return Origin(local.username, session_id, version, local.address, "IN", local.addrtype)


def _audio_line(
    local: LocalMedia,
    codecs: list[tuple[int, Codec]],
    events: tuple[int, str] | None,
    direction: Direction,
    crypto: tuple[str, ...] = (),
    mux: bool = False,
) -> MediaDescription:
    formats = [str(pt) for pt, _ in codecs]
    attributes = [Attribute("rtpmap", str(codec.rtpmap(pt))) for pt, codec in codecs]
    for pt, codec in codecs:
        if codec.fmtp:
            attributes.append(Attribute("fmtp", f"{pt} {codec.fmtp}"))
    if events is not None and local.telephone_event is not None:
        pt, event_list = events
        formats.append(str(pt))
        attributes.append(Attribute("rtpmap", str(local.telephone_event.rtpmap(pt))))
        attributes.append(Attribute("fmtp", f"{pt} {event_list}"))
    attributes.append(Attribute("ptime", str(local.ptime)))
    if local.rtcp_port is not None and local.rtcp_port != local.port + 1:
        attributes.append(Attribute("rtcp", str(local.rtcp_port)))
    if mux:
        attributes.append(Attribute("rtcp-mux"))
    attributes.extend(Attribute("crypto", value) for value in crypto)
    attributes.append(Attribute(direction.value))
    proto = _RTP_SAVP if crypto else _RTP_AVP
    return MediaDescription(
        "audio", local.port, proto, tuple(formats), attributes=tuple(attributes)
    )


def _rejected(media: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: a rejected stream keeps its media type, proto and formats, with port 0.
    return MediaDescription(media.media, 0, media.proto, media.formats)


def _session(
    local: LocalMedia, origin: Origin, media: list[MediaDescription]
) -> SessionDescription:
    return SessionDescription(
        origin=origin,
        session_name=local.session_name,
        connection=Connection(local.address, "IN", local.addrtype),
        media=tuple(media),
    )


def build_offer(
    local: LocalMedia,
    *,
    session_id: int,
    version: int = 0,
    previous: SessionDescription | None = None,
) -> SessionDescription:
    """An offer for one audio stream. With ``previous`` (the last description we sent) it is
    a re-offer (§8): every earlier m-line stays, the audio one updated, others at port 0."""
    events = None
    if local.telephone_event is not None:
        te = local.telephone_event
        events = (te.payload_type, te.fmtp or _DEFAULT_EVENTS)
    crypto = offer_lines(local.srtp_key) if local.secure and local.srtp_key else ()
    codecs = [(c.payload_type, c) for c in local.codecs]
    ours = _audio_line(local, codecs, events, local.direction, crypto, local.rtcp_mux)
    media: list[MediaDescription] = []
    placed = False
    for old in previous.media if previous is not None else ():
        if not placed and old.media == "audio" and old.port != 0:
            media.append(ours)
            placed = True
        else:
            media.append(_rejected(old))
    if not placed:
        # No live audio line to reuse: take over a rejected audio line (port 0 lines may be
        # reused, §8.3.1), else add one at the end.
        for index, old in enumerate(media):
            if old.media == "audio":
                media[index] = ours
                break
        else:
            media.append(ours)
    return _session(local, _origin(local, session_id, version), media)


def _encoding(
    media: MediaDescription, pt: int, fallback: MediaDescription | None = None
) -> tuple[str, int] | None:
    """(name, clock rate) of payload type ``pt``: its rtpmap, else the static assignment."""
    for source in (media, fallback):
        if source is None:
            continue
        rtpmap = source.rtpmaps().get(pt)
        if rtpmap is not None:
            if rtpmap.channels not in (None, 1):
                return None
            return rtpmap.encoding, rtpmap.clock_rate
    return STATIC_PAYLOAD_TYPES.get(pt)


def _pick_codec(
    media: MediaDescription, local: LocalMedia, fallback: MediaDescription | None = None
) -> tuple[int, Codec] | None:
    for pt in media.payload_types:
        encoding = _encoding(media, pt, fallback)
        if encoding is None:
            continue
        for codec in local.codecs:
            if codec.name.lower() == encoding[0].lower() and codec.clock_rate == encoding[1]:
                return pt, codec
    return None


def _pick_events(
    media: MediaDescription, local: LocalMedia, clock_rate: int
) -> tuple[int, str] | None:
    te = local.telephone_event
    if te is None:
        return None
    for pt in media.payload_types:
        rtpmap = media.rtpmaps().get(pt)
        if rtpmap is None or not rtpmap.matches(te.name, clock_rate):
            continue
        try:
            theirs = parse_event_list(media.fmtp(pt) or _DEFAULT_EVENTS)
            common = theirs & parse_event_list(te.fmtp or _DEFAULT_EVENTS)
        except DtmfError:
            return None
        return (pt, format_event_list(common)) if common else None
    return None


def _remote_target(
    sd: SessionDescription, media: MediaDescription
) -> tuple[Connection, str, int] | None:
    """The peer's c= and RTCP address/port for ``media``, None if unusable."""
    connection = sd.connection_for(media)
    if connection is None or connection.nettype != "IN":
        return None
    if connection.addrtype not in ("IP4", "IP6"):
        return None
    try:
        rtcp = media.rtcp
    except SdpParseError:
        rtcp = None
    if rtcp is None:
        return connection, connection.address, media.port + 1  # RFC 3550 §11
    return connection, rtcp.address or connection.address, rtcp.port


def _send_ptime(media: MediaDescription, local: LocalMedia) -> int:
    # The peer's a=ptime is what it wants to receive (RFC 8866 §6.4); a=maxptime caps it.
    ptime = media.ptime or local.ptime
    if media.maxptime is not None:
        ptime = min(ptime, media.maxptime)
    return max(10, round(ptime))


def _negotiated(
    sd: SessionDescription,
    media: MediaDescription,
    index: int,
    codec: tuple[int, Codec],
    events: tuple[int, str] | None,
    local: LocalMedia,
    direction: Direction,
    srtp: SrtpParams | None = None,
    mux: bool = False,
) -> NegotiatedMedia:
    target = _remote_target(sd, media)
    if target is None:  # callers checked
        raise NegotiationError("no usable connection address")
    connection, rtcp_address, rtcp_port = target
    remote_direction = sd.direction_for(media)
    return NegotiatedMedia(
        remote_address=connection.address,
        remote_port=media.port,
        remote_rtcp_address=rtcp_address,
        remote_rtcp_port=rtcp_port,
        payload_type=codec[0],
        codec=codec[1].name,
        clock_rate=codec[1].clock_rate,
        telephone_event_pt=None if events is None else events[0],
        ptime=_send_ptime(media, local),
        direction=direction,
        remote_hold=not remote_direction.receives or connection.is_null,
        media_index=index,
        srtp=srtp,
        rtcp_mux=mux,
    )


def _our_direction(local: LocalMedia, remote: Direction, null_address: bool) -> Direction:
    # §6.1: we may only send what they receive and receive what they send; c=0.0.0.0 (§8.4)
    # forbids sending RTP and RTCP to the peer.
    return Direction.from_flags(
        send=local.direction.sends and remote.receives and not null_address,
        receive=local.direction.receives and remote.sends,
    )


def _answer_keys(
    offered: MediaDescription, local: LocalMedia
) -> tuple[SrtpParams | None, tuple[str, ...]] | None:
    """SRTP of an offered stream: (None, ()) for plain RTP, (keys, our a=crypto) for an
    RTP/SAVP stream with a line we accept (RFC 4568 §7.1.1), None if it cannot be taken."""
    if offered.proto != _RTP_SAVP:
        return None, ()
    if local.srtp_key is None:
        return None
    chosen = choose_crypto(offered.attribute_values("crypto"))
    if chosen is None or chosen.suite is None or chosen.key is None:
        return None
    srtp = SrtpParams(chosen.suite, local.srtp_key, chosen.key)
    return srtp, (format_crypto(chosen.tag, chosen.suite, local.srtp_key),)


def _answered_keys(
    offered: MediaDescription, answered: MediaDescription, local: LocalMedia
) -> SrtpParams | None:
    """SRTP of the answer to our offer: a secure offer needs an RTP/SAVP answer with one line
    of a tag and suite we offered (RFC 4568 §7.1.3); a plain one, a plain answer."""
    if offered.proto != _RTP_SAVP:
        if answered.proto == _RTP_SAVP:  # keys we never offered to exchange
            raise NegotiationError("the answer to a plain RTP offer is RTP/SAVP")
        return None
    if answered.proto != _RTP_SAVP or local.srtp_key is None:
        raise NegotiationError("our offer required SRTP and the answer is plain RTP")
    ours = {c.tag: c.suite for c in map(parse_crypto, offered.attribute_values("crypto"))}
    lines = [parse_crypto(v) for v in answered.attribute_values("crypto")]
    if len(lines) != 1:
        raise NegotiationError("an SRTP answer needs exactly one a=crypto line")
    (line,) = lines
    if not line.acceptable or line.suite is None or line.key is None:
        raise NegotiationError("the answer's a=crypto line is not one we can use")
    if ours.get(line.tag) is not line.suite:
        raise NegotiationError("the answer's a=crypto line matches no line of our offer")
    return SrtpParams(line.suite, local.srtp_key, line.key)


@dataclass(frozen=True, slots=True)
class _Accepted:
    """The offered stream we accept (§6) and how: what the answer's m-line and the engine
    need."""

    index: int
    codec: tuple[int, Codec]
    events: tuple[int, str] | None
    direction: Direction
    crypto: tuple[str, ...]
    mux: bool
    negotiated: NegotiatedMedia


def _accept(offer: SessionDescription, local: LocalMedia) -> _Accepted:
    for index, offered in enumerate(offer.media):
        if (
            offered.port == 0
            or offered.media != "audio"
            or offered.proto not in (_RTP_AVP, _RTP_SAVP)
            or _remote_target(offer, offered) is None
        ):
            continue
        codec = _pick_codec(offered, local)
        keys = _answer_keys(offered, local)
        if codec is None or keys is None:
            continue
        srtp, crypto = keys
        events = _pick_events(offered, local, codec[1].clock_rate)
        connection = offer.connection_for(offered)
        null = connection is not None and connection.is_null
        direction = _our_direction(local, offer.direction_for(offered), null)
        mux = local.rtcp_mux and offered.has_attribute("rtcp-mux")
        negotiated = _negotiated(offer, offered, index, codec, events, local, direction, srtp, mux)
        return _Accepted(index, codec, events, direction, crypto, mux, negotiated)
    raise NegotiationError("no acceptable audio stream or codec in the offer")


def negotiate_offer(offer: SessionDescription, local: LocalMedia) -> NegotiatedMedia:
    """What answering ``offer`` would negotiate, without building the answer (whether an
    offer is acceptable at all); raise :class:`NegotiationError` (488) if nothing is."""
    return _accept(offer, local).negotiated


def answer_offer(
    offer: SessionDescription, local: LocalMedia, *, session_id: int, version: int = 0
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer`` (§6); raise :class:`NegotiationError` (488) if nothing is acceptable."""
    ok = _accept(offer, local)
    line = _audio_line(local, [ok.codec], ok.events, ok.direction, ok.crypto, ok.mux)
    media = [line if i == ok.index else _rejected(m) for i, m in enumerate(offer.media)]
    return _session(local, _origin(local, session_id, version), media), ok.negotiated


def process_answer(
    offer: SessionDescription, answer: SessionDescription, local: LocalMedia
) -> NegotiatedMedia:
    """Check ``answer`` against our ``offer`` and compute the negotiated stream."""
    if len(answer.media) != len(offer.media):
        raise NegotiationError("the answer must have one m-line per offered m-line (§6)")
    for index, (offered, answered) in enumerate(zip(offer.media, answer.media, strict=True)):
        if offered.port == 0 or offered.media != "audio":
            continue
        if answered.media != offered.media:
            raise NegotiationError("answer m-line media type differs from the offer")
        if answered.port == 0:
            raise NegotiationError("the peer rejected the audio stream")
        if _remote_target(answer, answered) is None:
            raise NegotiationError("no usable connection address in the answer")
        codec = _pick_codec(answered, local, fallback=offered)
        if codec is None:
            raise NegotiationError("the answer holds no codec we offered")
        try:
            srtp = _answered_keys(offered, answered, local)
        except SdpParseError as exc:
            raise NegotiationError(f"unreadable a=crypto in the answer: {exc}") from None
        events = _pick_events(answered, local, codec[1].clock_rate)
        connection = answer.connection_for(answered)
        null = connection is not None and connection.is_null
        direction = _our_direction(local, answer.direction_for(answered), null)
        # RFC 5761 §5.1.1: an answer may agree only to a multiplexing we offered.
        mux = offered.has_attribute("rtcp-mux") and answered.has_attribute("rtcp-mux")
        return _negotiated(answer, answered, index, codec, events, local, direction, srtp, mux)
    raise NegotiationError("our offer has no active audio stream")
