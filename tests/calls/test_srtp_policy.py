"""Who gets SRTP: phones registered over TLS are offered it only, when the engine can
encrypt; RTP/SAVP offers pass the B2BUA's first check; the setting that turns it all off."""

from __future__ import annotations

import base64

import pytest

from zvonar.calls.plan import RingTarget, Target, TargetKind
from zvonar.calls.sdp_bridge import check_offer, new_offer_answer
from zvonar.media.engine import AddressFamily, LegEndpoint
from zvonar.media.errors import NegotiationError
from zvonar.media.sdes import new_master_key
from zvonar.media.sdp import parse_sdp
from zvonar.settings import Settings
from zvonar.sip.ua.events import Flow

WHO = Target(TargetKind.employee, "Emp 701")


def endpoint(key: bytes | None) -> LegEndpoint:
    return LegEndpoint("c1.w1t0", "c1", "192.0.2.1", 40000, AddressFamily.IP4, key)


@pytest.mark.parametrize(("transport", "secure"), [("TLS", True), ("TCP", False), ("UDP", False)])
def test_a_phone_is_secure_when_it_registered_over_tls(transport: str, secure: bool) -> None:
    ring = RingTarget.phone("sip:701@192.0.2.7", Flow(transport, "192.0.2.7", 5061), WHO, "x701")
    assert ring.secure_media is secure and ring.plain_retry is secure
    refused = ring.plain(488)
    assert (refused is not None) is secure
    assert ring.plain(486) is None  # busy is busy, whatever the media


def test_a_secure_target_gets_an_srtp_offer_when_the_engine_can_encrypt() -> None:
    offer = new_offer_answer(endpoint(new_master_key()), secure=True).create_offer()
    assert (
        offer.media[0].proto == "RTP/SAVP" and len(offer.media[0].attribute_values("crypto")) == 2
    )
    plain = new_offer_answer(endpoint(new_master_key())).create_offer()
    assert plain.media[0].proto == "RTP/AVP" and not plain.media[0].attribute_values("crypto")


def test_a_secure_target_gets_plain_rtp_from_an_engine_without_srtp() -> None:
    offer = new_offer_answer(endpoint(None), secure=True).create_offer()
    assert offer.media[0].proto == "RTP/AVP" and not offer.media[0].attribute_values("crypto")


def test_a_callers_srtp_offer_passes_the_first_check_only_with_an_engine_that_encrypts() -> None:
    inline = base64.b64encode(new_master_key()).decode()
    offer = parse_sdp(
        "v=0\r\no=p 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
        f"m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{inline}\r\n"
    )
    assert check_offer(offer, srtp=True).srtp is not None
    with pytest.raises(NegotiationError) as refused:
        check_offer(offer, srtp=False)
    assert refused.value.status_hint == 488


def test_the_setting_reaches_the_pbx(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().pbx_config().media_srtp is True
    monkeypatch.setenv("ZVONAR_MEDIA_SRTP", "false")
    assert Settings().pbx_config().media_srtp is False
