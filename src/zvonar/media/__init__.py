"""Zvonar's media protocol core: SDP, offer/answer, RTP/RTCP, G.711, DTMF, WAV.

Sans-IO like :mod:`zvonar.sip`: nothing here opens a socket, reads a clock or sleeps, and
nothing imports the rest of Zvonar. The asyncio media engine (``zvonar.media.io``) feeds
these modules bytes and the current time and sends what they return.

Modules: :mod:`~zvonar.media.sdp` and :mod:`~zvonar.media.sdp_fields` (RFC 8866),
:mod:`~zvonar.media.offer_answer` and :mod:`~zvonar.media.offer_answer_dialog` (RFC 3264),
:mod:`~zvonar.media.rtp` and :mod:`~zvonar.media.rtcp` (RFC 3550),
:mod:`~zvonar.media.stats` (RFC 3550 App. A, E-model MOS), :mod:`~zvonar.media.g711`,
:mod:`~zvonar.media.dtmf` (RFC 4733), :mod:`~zvonar.media.goertzel` (in-band DTMF),
:mod:`~zvonar.media.wav` and :mod:`~zvonar.media.resample` (prompts, recordings),
:mod:`~zvonar.media.jitter` (playout buffer), :mod:`~zvonar.media.errors`.
"""

from zvonar.media.dtmf import DtmfDigit, DtmfEnd, DtmfReceiver, TelephoneEvent, generate_dtmf
from zvonar.media.errors import (
    CodecError,
    DtmfError,
    MediaError,
    NegotiationError,
    RtcpParseError,
    RtpParseError,
    SdpParseError,
    WavError,
)
from zvonar.media.goertzel import DtmfDetector
from zvonar.media.jitter import JitterBuffer
from zvonar.media.offer_answer import (
    Codec,
    LocalMedia,
    NegotiatedMedia,
    answer_offer,
    build_offer,
    process_answer,
)
from zvonar.media.offer_answer_dialog import OfferAnswer
from zvonar.media.rtcp import parse_rtcp, serialize_rtcp
from zvonar.media.rtp import RtpPacket, RtpPacketizer, parse_rtp
from zvonar.media.sdp import Direction, SessionDescription, parse_sdp
from zvonar.media.stats import ReceiverStats, estimate_mos
from zvonar.media.wav import WavWriter, parse_wav, wav_to_pcm8k

__all__ = [
    "Codec",
    "CodecError",
    "Direction",
    "DtmfDetector",
    "DtmfDigit",
    "DtmfEnd",
    "DtmfError",
    "DtmfReceiver",
    "JitterBuffer",
    "LocalMedia",
    "MediaError",
    "NegotiatedMedia",
    "NegotiationError",
    "OfferAnswer",
    "ReceiverStats",
    "RtcpParseError",
    "RtpPacket",
    "RtpPacketizer",
    "RtpParseError",
    "SdpParseError",
    "SessionDescription",
    "TelephoneEvent",
    "WavError",
    "WavWriter",
    "answer_offer",
    "build_offer",
    "estimate_mos",
    "generate_dtmf",
    "parse_rtcp",
    "parse_rtp",
    "parse_sdp",
    "parse_wav",
    "process_answer",
    "serialize_rtcp",
    "wav_to_pcm8k",
]
