"""SDES (RFC 4568): a=crypto lines read and written, and SRTP through offer/answer."""

from __future__ import annotations

import base64

import pytest

from zvonar.media.errors import NegotiationError, SdpParseError
from zvonar.media.offer_answer import LocalMedia, answer_offer, process_answer
from zvonar.media.offer_answer_dialog import OfferAnswer
from zvonar.media.sdes import (
    Crypto,
    CryptoSuite,
    SrtpParams,
    choose_crypto,
    new_master_key,
    offer_lines,
    parse_crypto,
)
from zvonar.media.sdp import SessionDescription, parse_sdp

KEY = bytes(range(30))
INLINE = base64.b64encode(KEY).decode()
THEIRS = bytes(range(100, 130))
THEIRS_INLINE = base64.b64encode(THEIRS).decode()
OURS = bytes(range(200, 230))
LOCAL = LocalMedia("192.0.2.1", 40000, srtp_key=OURS)


def sdp(proto: str, *crypto: str) -> SessionDescription:
    lines = "".join(f"a=crypto:{c}\r\n" for c in crypto)
    return parse_sdp(
        "v=0\r\no=peer 7 7 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        f"m=audio 49170 {proto} 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{lines}"
    )


# --- a=crypto -----------------------------------------------------------------------------------


def test_an_rfc_4568_line_is_read() -> None:
    # RFC 4568 §4's example, with a key of the right length.
    line = parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^20")
    assert line == Crypto(1, "AES_CM_128_HMAC_SHA1_80", CryptoSuite.AES_CM_128_HMAC_SHA1_80, KEY)
    assert line.acceptable
    assert line.serialize() == f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"
    assert INLINE not in repr(line) and str(KEY) not in repr(line)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^20|1:4", "an MKI"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|1:4", "an MKI without a lifetime"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE};inline:{INLINE}", "two keys"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE} KDR=1", "a session parameter"),
        (f"1 AES_256_CM_HMAC_SHA1_80 inline:{INLINE}", "a suite we do not speak"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", "a short key"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:not*base64", "a key that is not base64"),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{INLINE}", "another key method"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|never", "a lifetime that is no number"),
    ],
)
def test_lines_we_cannot_use_are_read_and_not_accepted(value: str, why: str) -> None:
    assert not parse_crypto(value).acceptable, why


@pytest.mark.parametrize("value", ["", "1", "1 AES_CM_128_HMAC_SHA1_80", f"x AES inline:{INLINE}"])
def test_what_is_no_crypto_line_at_all_is_an_sdp_error(value: str) -> None:
    with pytest.raises(SdpParseError):
        parse_crypto(value)


def test_the_first_acceptable_line_is_chosen() -> None:
    lines = [
        "broken",
        f"1 AES_256_CM_HMAC_SHA1_80 inline:{INLINE}",
        f"2 AES_CM_128_HMAC_SHA1_32 inline:{INLINE}",
        f"3 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}",
    ]
    chosen = choose_crypto(lines)
    assert chosen is not None and chosen.tag == 2
    assert chosen.suite is CryptoSuite.AES_CM_128_HMAC_SHA1_32
    assert choose_crypto(lines[:2]) is None


def test_our_offer_lists_both_suites_under_one_fresh_key() -> None:
    key = new_master_key()
    assert len(key) == 30 and key != new_master_key()
    lines = [parse_crypto(v) for v in offer_lines(key)]
    assert [(c.tag, c.suite) for c in lines] == [
        (1, CryptoSuite.AES_CM_128_HMAC_SHA1_80),
        (2, CryptoSuite.AES_CM_128_HMAC_SHA1_32),
    ]
    assert all(c.key == key and c.acceptable for c in lines)


def test_srtp_params_keep_their_keys_out_of_repr() -> None:
    text = repr(SrtpParams(CryptoSuite.AES_CM_128_HMAC_SHA1_80, KEY, THEIRS))
    assert "AES_CM_128_HMAC_SHA1_80" in text and str(KEY) not in text and str(THEIRS) not in text


# --- offer/answer -------------------------------------------------------------------------------


def test_an_srtp_offer_is_answered_in_srtp_with_our_own_key_on_the_chosen_line() -> None:
    offer = sdp(
        "RTP/SAVP",
        f"1 AES_256_CM_HMAC_SHA1_80 inline:{THEIRS_INLINE}",
        f"2 AES_CM_128_HMAC_SHA1_32 inline:{THEIRS_INLINE}|2^31",
    )
    answer, negotiated = answer_offer(offer, LOCAL, session_id=1)
    (media,) = answer.media
    assert media.proto == "RTP/SAVP"
    assert media.attribute_values("crypto") == [
        f"2 AES_CM_128_HMAC_SHA1_32 inline:{base64.b64encode(OURS).decode()}"
    ]
    assert negotiated.srtp == SrtpParams(CryptoSuite.AES_CM_128_HMAC_SHA1_32, OURS, THEIRS)


def test_a_plain_offer_is_answered_in_plain_rtp_even_by_a_leg_that_could_encrypt() -> None:
    answer, negotiated = answer_offer(sdp("RTP/AVP"), LOCAL, session_id=1)
    assert answer.media[0].proto == "RTP/AVP" and answer.media[0].attribute_values("crypto") == []
    assert negotiated.srtp is None


@pytest.mark.parametrize(
    ("local", "crypto"),
    [
        (LocalMedia("192.0.2.1", 40000), f"1 AES_CM_128_HMAC_SHA1_80 inline:{THEIRS_INLINE}"),
        (LOCAL, f"1 AES_CM_128_HMAC_SHA1_80 inline:{THEIRS_INLINE}|2^20|1:4"),
    ],
    ids=["an engine without SRTP", "no line we accept"],
)
def test_an_srtp_offer_we_cannot_take_is_refused_with_488(local: LocalMedia, crypto: str) -> None:
    with pytest.raises(NegotiationError) as caught:
        answer_offer(sdp("RTP/SAVP", crypto), local, session_id=1)
    assert caught.value.status_hint == 488


def secure_offer() -> tuple[OfferAnswer, SessionDescription]:
    oa = OfferAnswer(LocalMedia("192.0.2.1", 40000, srtp_key=OURS, secure=True), session_id=5)
    return oa, oa.create_offer()


def test_a_secure_offer_is_srtp_only_and_takes_the_answer_of_one_of_its_lines() -> None:
    oa, offer = secure_offer()
    (media,) = offer.media
    assert media.proto == "RTP/SAVP"
    assert [parse_crypto(v).key for v in media.attribute_values("crypto")] == [OURS, OURS]
    answer = sdp("RTP/SAVP", f"2 AES_CM_128_HMAC_SHA1_32 inline:{THEIRS_INLINE}")
    negotiated = oa.receive_answer(answer)
    assert negotiated.srtp == SrtpParams(CryptoSuite.AES_CM_128_HMAC_SHA1_32, OURS, THEIRS)
    # A re-offer (hold, say) is secure as well, under the same key of ours.
    again = oa.create_offer()
    assert again.media[0].proto == "RTP/SAVP"
    assert parse_crypto(again.media[0].attribute_values("crypto")[0]).key == OURS


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (sdp("RTP/AVP"), "plain RTP"),
        (sdp("RTP/SAVP"), "exactly one a=crypto"),
        (sdp("RTP/SAVP", f"3 AES_CM_128_HMAC_SHA1_80 inline:{THEIRS_INLINE}"), "matches no line"),
        (sdp("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_32 inline:{THEIRS_INLINE}"), "matches no line"),
        (sdp("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"), "not one we can use"),
        (sdp("RTP/SAVP", "1"), "unreadable"),
    ],
)
def test_a_secure_offer_refuses_answers_that_would_leave_the_media_in_clear(
    answer: SessionDescription, why: str
) -> None:
    oa, offer = secure_offer()
    with pytest.raises(NegotiationError, match=why):
        process_answer(offer, answer, oa.local)


def test_a_plain_offer_refuses_an_srtp_answer() -> None:
    oa = OfferAnswer(LOCAL, session_id=5)
    offer = oa.create_offer()
    assert offer.media[0].proto == "RTP/AVP" and not offer.media[0].attribute_values("crypto")
    answer = sdp("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{THEIRS_INLINE}")
    with pytest.raises(NegotiationError, match="plain RTP offer"):
        oa.receive_answer(answer)


def test_a_secure_offer_needs_a_key() -> None:
    with pytest.raises(NegotiationError):
        LocalMedia("192.0.2.1", 40000, secure=True)
