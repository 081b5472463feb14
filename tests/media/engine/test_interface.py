"""The engine-neutral values of zvonar.media.engine."""

from __future__ import annotations

import pytest

from zvonar.media.engine import (
    AddressFamily,
    AudioCodec,
    LegEndpoint,
    MediaEngine,
    MediaEngineError,
    RemoteMedia,
    UnsupportedError,
)
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.offer_answer import LocalMedia, answer_offer
from zvonar.media.sdp import Direction, parse_sdp

OFFER = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 192.0.2.10\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 8 0 96\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:96 telephone-event/8000\r\n"
    "a=fmtp:96 0-15\r\n"
    "a=ptime:30\r\n"
    "a=sendonly\r\n"
)


def test_remote_media_from_offer_answer() -> None:
    """The call layer's path: offer -> answer_offer -> NegotiatedMedia -> RemoteMedia."""
    _answer, negotiated = answer_offer(
        parse_sdp(OFFER), LocalMedia("192.0.2.1", 30000), session_id=7
    )
    remote = RemoteMedia.from_negotiated(negotiated)
    assert remote == RemoteMedia(
        address="192.0.2.10",
        port=40000,
        codec=AudioCodec.PCMA,
        payload_type=8,
        telephone_event_pt=96,
        ptime_ms=30,
        direction=Direction.RECVONLY,  # the peer only sends (it holds us)
    )
    assert not remote.we_send and remote.peer_sends


def test_unsupported_codec_is_refused() -> None:
    offer = OFFER.replace("RTP/AVP 8 0 96", "RTP/AVP 9 96").replace(
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:9 G722/8000\r\n"
    )
    from zvonar.media.offer_answer import Codec

    local = LocalMedia("192.0.2.1", 30000, codecs=(Codec("G722", 8000, 9),))
    _answer, negotiated = answer_offer(parse_sdp(offer), local, session_id=7)
    with pytest.raises(UnsupportedError):
        RemoteMedia.from_negotiated(negotiated)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": "phone.example"},
        {"port": 70000},
        {"payload_type": 128},
        {"telephone_event_pt": 0},  # same as the codec's payload type
        {"ptime_ms": 5},
    ],
)
def test_remote_media_validation(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"address": "192.0.2.10", "port": 4000, **kwargs}
    with pytest.raises(MediaEngineError):
        RemoteMedia(**args)  # type: ignore[arg-type]


def test_null_address_means_do_not_send() -> None:
    held = RemoteMedia("0.0.0.0", 4000)
    assert held.is_null and not held.we_send and held.peer_sends
    assert RemoteMedia("2001:db8::1", 4000).family.value == "IP6"


def test_values_and_protocol() -> None:
    with pytest.raises(MediaEngineError):
        LegEndpoint("leg", "call", "192.0.2.1", 0, AddressFamily.IP4)
    assert isinstance(EmbeddedMediaEngine(), MediaEngine)
    assert AudioCodec.PCMA.static_payload_type == 8
