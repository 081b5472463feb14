"""RFC 3264 offer/answer: offers, answers, directions and hold, re-offers, the state machine."""

from __future__ import annotations

import dataclasses

import pytest

from zvonar.media.errors import NegotiationError
from zvonar.media.offer_answer import (
    PCMA,
    PCMU,
    LocalMedia,
    NegotiatedMedia,
    answer_offer,
    build_offer,
    negotiate_offer,
    process_answer,
)
from zvonar.media.offer_answer_dialog import OfferAnswer, OfferAnswerState
from zvonar.media.sdp import Direction, SessionDescription, parse_sdp

LOCAL = LocalMedia(address="192.0.2.1", port=40000)


def state(oa: OfferAnswer) -> OfferAnswerState:
    return oa.state  # a call, so that type checkers do not narrow across transitions


def sdp(media: str, *, session: str = "", address: str = "192.0.2.10") -> SessionDescription:
    family = "IP6" if ":" in address else "IP4"
    return parse_sdp(
        f"v=0\r\no=peer 7 7 IN {family} {address}\r\ns=-\r\nc=IN {family} {address}\r\n"
        f"t=0 0\r\n{session}{media}"
    )


AUDIO = (
    "m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)


def test_build_offer_exact_text() -> None:
    offer = build_offer(LOCAL, session_id=42)
    assert offer.serialize() == (
        "v=0\r\n"
        "o=- 42 0 IN IP4 192.0.2.1\r\n"
        "s=zvonar\r\n"
        "c=IN IP4 192.0.2.1\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def test_build_offer_ipv6_hold_and_rtcp_port() -> None:
    local = LocalMedia(
        address="2001:db8::5",
        port=40000,
        direction=Direction.SENDONLY,
        rtcp_port=40011,
        telephone_event=None,
        codecs=(PCMA,),
    )
    text = build_offer(local, session_id=1, version=3).serialize()
    assert "o=- 1 3 IN IP6 2001:db8::5\r\n" in text
    assert "c=IN IP6 2001:db8::5\r\n" in text
    assert "m=audio 40000 RTP/AVP 8\r\n" in text
    assert "a=rtcp:40011\r\n" in text
    assert "a=sendonly\r\n" in text
    assert "telephone-event" not in text


def test_answer_picks_the_offerers_first_supported_codec() -> None:
    offer = sdp(
        "m=audio 49170 RTP/AVP 96 9 8 0 101 100\r\n"
        "a=rtpmap:96 opus/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:100 telephone-event/48000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
    )
    answer, result = answer_offer(offer, LOCAL, session_id=5, version=0)
    assert answer.serialize() == (
        "v=0\r\n"
        "o=- 5 0 IN IP4 192.0.2.1\r\n"
        "s=zvonar\r\n"
        "c=IN IP4 192.0.2.1\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 8 101\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
    assert result == NegotiatedMedia(
        remote_address="192.0.2.10",
        remote_port=49170,
        remote_rtcp_address="192.0.2.10",
        remote_rtcp_port=49171,
        payload_type=8,
        codec="PCMA",
        clock_rate=8000,
        telephone_event_pt=101,
        ptime=20,
        direction=Direction.SENDRECV,
        remote_hold=False,
        media_index=0,
    )
    assert result.sends and result.receives


def test_dynamic_payload_type_and_telephone_event_numbers_are_echoed() -> None:
    offer = sdp(
        "m=audio 5000 RTP/AVP 97 96\r\na=rtpmap:97 pcmu/8000\r\n"
        "a=rtpmap:96 telephone-event/8000\r\n"
    )
    answer, result = answer_offer(offer, LOCAL, session_id=1)
    audio = answer.media[0]
    assert audio.formats == ("97", "96")
    assert result.payload_type == 97 and result.codec == "PCMU"
    assert result.telephone_event_pt == 96
    # no fmtp in the offer means events 0-15 (RFC 4733 §2.4.1): the intersection with ours
    assert audio.fmtp(96) == "0-15"


def test_static_payload_types_without_rtpmap() -> None:
    _, result = answer_offer(sdp("m=audio 5000 RTP/AVP 18 0\r\n"), LOCAL, session_id=1)
    assert (result.payload_type, result.codec, result.telephone_event_pt) == (0, "PCMU", None)


def test_event_list_intersection() -> None:
    offer = sdp(
        "m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-11,66,70\r\n"
    )
    answer, _ = answer_offer(offer, LOCAL, session_id=1)
    assert answer.media[0].fmtp(101) == "0-11"
    offer = sdp(
        "m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 66\r\n"
    )
    _, result = answer_offer(offer, LOCAL, session_id=1)
    assert result.telephone_event_pt is None  # nothing in common: no telephone-event


def test_unsupported_codecs_fail_with_488() -> None:
    offer = sdp("m=audio 5000 RTP/AVP 18 96\r\na=rtpmap:96 opus/48000/2\r\n")
    with pytest.raises(NegotiationError) as info:
        answer_offer(offer, LOCAL, session_id=1)
    assert info.value.status_hint == 488


@pytest.mark.parametrize(
    "media",
    [
        "m=audio 5000 RTP/SAVP 0\r\n",  # SRTP is not ours
        "m=audio 0 RTP/AVP 0\r\n",  # disabled stream
        "m=video 5000 RTP/AVP 31\r\n",
        "m=audio 5000 RTP/AVP 0\r\nc=ATM NSAP 47.0091\r\n",
    ],
)
def test_no_acceptable_stream_fails_with_488(media: str) -> None:
    with pytest.raises(NegotiationError) as info:
        answer_offer(sdp(media), LOCAL, session_id=1)
    assert info.value.status_hint == 488


def test_rejected_streams_stay_in_the_answer_with_port_0() -> None:
    offer = sdp(
        "m=video 3227 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n"
        "m=audio 0 RTP/AVP 0\r\n" + AUDIO + "m=audio 6000 RTP/AVP 8\r\n"
    )
    answer, result = answer_offer(offer, LOCAL, session_id=1)
    assert [(m.media, m.port, m.proto, m.formats) for m in answer.media] == [
        ("video", 0, "RTP/AVP", ("31",)),
        ("audio", 0, "RTP/AVP", ("0",)),
        ("audio", 40000, "RTP/AVP", ("0", "101")),
        ("audio", 0, "RTP/AVP", ("8",)),  # only one audio stream is accepted
    ]
    assert result.media_index == 2
    assert result.remote_port == 49170
    assert answer.media[0].attributes == ()


@pytest.mark.parametrize(
    "media",
    [
        AUDIO,
        AUDIO + "a=sendonly\r\n",
        "m=video 3227 RTP/AVP 31\r\nm=audio 0 RTP/AVP 0\r\n" + AUDIO + "m=audio 6000 RTP/AVP 8\r\n",
        "m=audio 5000 RTP/AVP 18 8\r\na=rtcp-mux\r\n",
    ],
)
def test_negotiating_an_offer_alone_gives_what_answering_it_gives(media: str) -> None:
    # The B2BUA checks a caller's offer this way before any leg exists (calls.sdp_bridge).
    local = dataclasses.replace(LOCAL, rtcp_mux=True)
    _answer, negotiated = answer_offer(sdp(media), local, session_id=1)
    assert negotiate_offer(sdp(media), local) == negotiated


def test_negotiating_an_unacceptable_offer_fails_with_488() -> None:
    with pytest.raises(NegotiationError) as info:
        negotiate_offer(sdp("m=audio 5000 RTP/AVP 18\r\n"), LOCAL)
    assert info.value.status_hint == 488


# (offered direction, our wish) -> answered direction, RFC 3264 §6.1
DIRECTIONS = {
    ("sendrecv", "sendrecv"): "sendrecv",
    ("sendrecv", "sendonly"): "sendonly",
    ("sendrecv", "recvonly"): "recvonly",
    ("sendrecv", "inactive"): "inactive",
    ("sendonly", "sendrecv"): "recvonly",
    ("sendonly", "sendonly"): "inactive",
    ("sendonly", "recvonly"): "recvonly",
    ("sendonly", "inactive"): "inactive",
    ("recvonly", "sendrecv"): "sendonly",
    ("recvonly", "sendonly"): "sendonly",
    ("recvonly", "recvonly"): "inactive",
    ("recvonly", "inactive"): "inactive",
    ("inactive", "sendrecv"): "inactive",
    ("inactive", "sendonly"): "inactive",
    ("inactive", "recvonly"): "inactive",
    ("inactive", "inactive"): "inactive",
}


@pytest.mark.parametrize(("offered", "wish"), list(DIRECTIONS))
def test_direction_answering_rules(offered: str, wish: str) -> None:
    local = dataclasses.replace(LOCAL, direction=Direction(wish))
    answer, result = answer_offer(sdp(AUDIO + f"a={offered}\r\n"), local, session_id=1)
    expected = Direction(DIRECTIONS[offered, wish])
    assert answer.media[0].direction_attribute is expected
    assert result.direction is expected
    # the peer holds us when it does not want to receive (RFC 3264 §8.4)
    assert result.remote_hold is (offered in ("sendonly", "inactive"))


def test_session_level_direction_applies() -> None:
    _, result = answer_offer(sdp(AUDIO, session="a=sendonly\r\n"), LOCAL, session_id=1)
    assert result.remote_hold and result.direction is Direction.RECVONLY


def test_old_style_hold_with_null_address() -> None:
    # RFC 3264 §8.4: c=0.0.0.0 means send neither RTP nor RTCP to the peer.
    answer, result = answer_offer(sdp(AUDIO, address="0.0.0.0"), LOCAL, session_id=1)
    assert result.remote_hold
    assert not result.sends and result.receives
    assert answer.media[0].direction_attribute is Direction.RECVONLY


def test_ipv6_offer() -> None:
    answer, result = answer_offer(sdp(AUDIO, address="2001:db8::9"), LOCAL, session_id=1)
    assert (result.remote_address, result.remote_rtcp_address) == ("2001:db8::9", "2001:db8::9")
    assert answer.media[0].port == 40000


@pytest.mark.parametrize(
    ("attrs", "ptime"),
    [("", 20), ("a=ptime:30\r\n", 30), ("a=ptime:30\r\na=maxptime:20\r\n", 20),
     ("a=maxptime:10\r\n", 10), ("a=ptime:junk\r\n", 20)],
)  # fmt: skip
def test_send_ptime_follows_the_peer(attrs: str, ptime: int) -> None:
    _, result = answer_offer(sdp(AUDIO + attrs), LOCAL, session_id=1)
    assert result.ptime == ptime


def test_rtcp_attribute_with_and_without_address() -> None:
    _, result = answer_offer(sdp(AUDIO + "a=rtcp:53020\r\n"), LOCAL, session_id=1)
    assert (result.remote_rtcp_address, result.remote_rtcp_port) == ("192.0.2.10", 53020)
    _, result = answer_offer(
        sdp(AUDIO + "a=rtcp:53020 IN IP6 2001:db8::7\r\n"), LOCAL, session_id=1
    )
    assert (result.remote_rtcp_address, result.remote_rtcp_port) == ("2001:db8::7", 53020)


MUX = dataclasses.replace(LOCAL, rtcp_mux=True)


@pytest.mark.parametrize(
    ("local", "offered", "agreed"),
    [(MUX, True, True), (MUX, False, False), (LOCAL, True, False), (LOCAL, False, False)],
)
def test_rtcp_mux_is_answered_only_when_offered_and_supported(
    local: LocalMedia, offered: bool, agreed: bool
) -> None:
    """RFC 5761 §5.1.1: the answerer agrees with a=rtcp-mux in its answer, or not at all."""
    answer, result = answer_offer(
        sdp(AUDIO + ("a=rtcp-mux\r\n" if offered else "")), local, session_id=1
    )
    assert answer.media[0].has_attribute("rtcp-mux") is agreed
    assert result.rtcp_mux is agreed


@pytest.mark.parametrize(("answered", "agreed"), [(True, True), (False, False)])
def test_our_rtcp_mux_offer_keeps_an_rtcp_port_for_an_answer_that_declines(
    answered: bool, agreed: bool
) -> None:
    local = dataclasses.replace(MUX, rtcp_port=40007)
    offer = build_offer(local, session_id=1)
    assert offer.media[0].has_attribute("rtcp-mux")
    assert offer.media[0].attribute("rtcp") == "40007"  # for a peer that does not multiplex
    answer = sdp("m=audio 7000 RTP/AVP 0\r\n" + ("a=rtcp-mux\r\n" if answered else ""))
    assert process_answer(offer, answer, local).rtcp_mux is agreed


def test_an_answer_cannot_agree_to_a_multiplexing_we_did_not_offer() -> None:
    offer = build_offer(LOCAL, session_id=1)
    assert not offer.media[0].has_attribute("rtcp-mux")
    answer = sdp("m=audio 7000 RTP/AVP 0\r\na=rtcp-mux\r\n")
    assert process_answer(offer, answer, LOCAL).rtcp_mux is False


# --- the offerer's side -------------------------------------------------------------------


def test_process_answer() -> None:
    offer = build_offer(LOCAL, session_id=1)
    answer = sdp(
        "m=audio 7000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:30\r\na=recvonly\r\n"
    )
    result = process_answer(offer, answer, LOCAL)
    assert (result.remote_port, result.payload_type, result.codec) == (7000, 8, "PCMA")
    assert result.telephone_event_pt == 101
    assert result.ptime == 30
    assert result.direction is Direction.SENDONLY
    assert not result.remote_hold


def test_process_answer_uses_static_and_offered_mappings() -> None:
    offer = build_offer(LOCAL, session_id=1)
    result = process_answer(offer, sdp("m=audio 7000 RTP/AVP 0\r\n"), LOCAL)
    assert (result.payload_type, result.codec) == (0, "PCMU")


@pytest.mark.parametrize(
    "media",
    [
        "m=audio 0 RTP/AVP 0\r\n",  # rejected
        "m=audio 7000 RTP/AVP 18\r\n",  # a codec we never offered
        "m=video 7000 RTP/AVP 0\r\n",
        "m=audio 7000 RTP/AVP 0\r\nm=audio 7002 RTP/AVP 0\r\n",  # m-line count differs
    ],
)
def test_process_answer_errors(media: str) -> None:
    with pytest.raises(NegotiationError):
        process_answer(build_offer(LOCAL, session_id=1), sdp(media), LOCAL)


# --- the state machine ----------------------------------------------------------------------


def answer_for(offer: SessionDescription, direction: str = "sendrecv") -> SessionDescription:
    return sdp(
        f"m=audio 7000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
        + "".join(f"m={m.media} 0 {m.proto} {m.formats[0]}\r\n" for m in offer.media[1:])
    )


def test_offerer_flow_hold_resume_and_versions() -> None:
    oa = OfferAnswer(LOCAL, session_id=99)
    assert state(oa) is OfferAnswerState.IDLE
    offer = oa.create_offer()
    assert state(oa) is OfferAnswerState.OFFER_SENT
    assert offer.origin.version == 0
    result = oa.receive_answer(answer_for(offer))
    assert state(oa) is OfferAnswerState.STABLE
    assert oa.negotiated == result and result.codec == "PCMU"

    # a session refresh re-offer with nothing changed keeps the version (RFC 3264 §8)
    refresh = oa.create_offer()
    assert refresh.origin.version == 0 and refresh == offer
    oa.receive_answer(answer_for(refresh))

    # hold: a changed re-offer bumps the version and keeps the m-line count
    hold = oa.create_offer(dataclasses.replace(LOCAL, direction=Direction.SENDONLY))
    assert hold.origin.version == 1
    assert hold.origin.session_id == 99
    assert len(hold.media) == len(offer.media)
    assert hold.media[0].direction_attribute is Direction.SENDONLY
    held = oa.receive_answer(answer_for(hold, "recvonly"))
    assert held.direction is Direction.SENDONLY

    resume = oa.create_offer(LOCAL)
    assert resume.origin.version == 2
    assert oa.receive_answer(answer_for(resume)).direction is Direction.SENDRECV


def test_an_early_answer_is_previewed_and_the_offer_stays_outstanding() -> None:
    oa = OfferAnswer(LOCAL, session_id=7)
    with pytest.raises(NegotiationError) as info:
        oa.preview_answer(sdp(AUDIO))  # nothing offered yet
    assert info.value.status_hint == 400
    offer = oa.create_offer()
    early = oa.preview_answer(answer_for(offer))  # a 183's copy of the answer (§13.2.1)
    assert early.codec == "PCMU" and early.remote_port == 7000
    assert state(oa) is OfferAnswerState.OFFER_SENT and oa.negotiated is None
    with pytest.raises(NegotiationError):
        oa.preview_answer(sdp("m=audio 7000 RTP/AVP 18\r\n"))  # nothing we offered
    assert oa.receive_answer(answer_for(offer)) == early  # the 2xx's answer is taken
    assert state(oa) is OfferAnswerState.STABLE
    with pytest.raises(NegotiationError):
        oa.preview_answer(answer_for(offer))  # no offer outstanding any more


def test_glare_and_stray_answer() -> None:
    oa = OfferAnswer(LOCAL, session_id=1)
    with pytest.raises(NegotiationError) as info:
        oa.receive_answer(sdp(AUDIO))
    assert info.value.status_hint == 400
    oa.create_offer()
    with pytest.raises(NegotiationError) as info:
        oa.receive_offer(sdp(AUDIO))
    assert info.value.status_hint == 491
    with pytest.raises(NegotiationError) as info:
        oa.create_offer()
    assert info.value.status_hint == 491
    assert state(oa) is OfferAnswerState.OFFER_SENT


def test_rollback_restores_the_session_and_never_reuses_a_version() -> None:
    oa = OfferAnswer(LOCAL, session_id=1)
    with pytest.raises(NegotiationError):
        oa.rollback()
    oa.create_offer()
    oa.rollback()  # the initial offer was refused
    assert state(oa) is OfferAnswerState.IDLE and oa.negotiated is None

    first = oa.create_offer()
    assert first.origin.version == 1  # version 0 was seen by the peer already
    established = oa.receive_answer(answer_for(first))
    hold = oa.create_offer(dataclasses.replace(LOCAL, direction=Direction.INACTIVE))
    assert hold.origin.version == 2
    oa.rollback()  # e.g. the re-INVITE got 491
    assert state(oa) is OfferAnswerState.STABLE and oa.negotiated == established
    other = oa.create_offer(dataclasses.replace(LOCAL, direction=Direction.SENDONLY))
    assert other.origin.version == 3


def test_answerer_flow_and_reoffers() -> None:
    oa = OfferAnswer(LOCAL, session_id=8, version=10)
    answer, result = oa.receive_offer(sdp(AUDIO))
    assert state(oa) is OfferAnswerState.STABLE
    assert answer.origin.version == 10 and result.codec == "PCMU"

    # the same offer again: our answer is unchanged, so is its version
    again, _ = oa.receive_offer(sdp(AUDIO))
    assert again == answer

    # the peer holds us: our answer changes (recvonly), version + 1
    held, result = oa.receive_offer(sdp(AUDIO + "a=sendonly\r\n"))
    assert held.origin.version == 11 and result.remote_hold
    assert held.media[0].direction_attribute is Direction.RECVONLY

    # a re-offer adding video: answered with video rejected
    with_video, _ = oa.receive_offer(sdp(AUDIO + "m=video 9000 RTP/AVP 31\r\n"))
    assert [m.port for m in with_video.media] == [40000, 0]

    # a re-offer may not drop m-lines: refused, the session stays as it was
    before = oa.negotiated
    with pytest.raises(NegotiationError) as info:
        oa.receive_offer(sdp(AUDIO))
    assert info.value.status_hint == 488
    assert oa.negotiated == before and oa.local_sdp == with_video

    # an offer we cannot accept is refused and leaves the session alone
    with pytest.raises(NegotiationError):
        oa.receive_offer(sdp("m=audio 5000 RTP/AVP 18\r\nm=video 9000 RTP/AVP 31\r\n"))
    assert oa.negotiated == before

    # our own re-offer keeps both m-lines, video still disabled
    reoffer = oa.create_offer()
    assert [(m.media, m.port) for m in reoffer.media] == [("audio", 40000), ("video", 0)]
    assert reoffer.origin.version == with_video.origin.version + 1


def test_reoffer_reuses_a_rejected_audio_line() -> None:
    previous = sdp("m=audio 0 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n")
    offer = build_offer(LOCAL, session_id=1, previous=previous)
    assert [(m.media, m.port) for m in offer.media] == [("audio", 40000), ("video", 0)]
    offer = build_offer(LOCAL, session_id=1, previous=sdp("m=video 0 RTP/AVP 31\r\n"))
    assert [(m.media, m.port) for m in offer.media] == [("video", 0), ("audio", 40000)]


def test_local_media_validation() -> None:
    with pytest.raises(NegotiationError):
        LocalMedia(address="192.0.2.1", port=0)
    with pytest.raises(NegotiationError):
        LocalMedia(address="192.0.2.1", port=1, codecs=())
    assert LocalMedia(address="::1", port=1).addrtype == "IP6"
    assert PCMU.rtpmap().payload_type == 0
