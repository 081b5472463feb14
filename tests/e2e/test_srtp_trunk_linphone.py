"""A delayed offer from a carrier that takes secure calls only, with Linphone as the carrier
(srtp_trunk_linphone_driver.py, in ``unshare -n``): the trunk's ``srtp`` makes the PBX offer
SRTP in its 200, Linphone answers in the ACK, and both directions are heard through SRTP.
Without ``srtp`` on the trunk the PBX offers plain RTP; Linphone turns it down with a BYE
before its ACK, and the call ends at once."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.linphone_kit import NETNS_PEERS
from tests.sip.peers.harness import run_in_netns

pytestmark = NETNS_PEERS

DRIVER = "tests.e2e.srtp_trunk_linphone_driver"


async def test_a_secure_carriers_delayed_offer_is_offered_srtp(tmp_path: Path) -> None:
    out, context = await run_in_netns(DRIVER, tmp_path, wait=60)
    assert out.exists(), context[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"], (report, context[-4000:])
    assert report["invite_had_sdp"] == [False], report  # a delayed offer
    offer, answer = report["our_offer"], report["ack_answer"]
    assert offer[0].startswith("m=audio ") and offer[0].split()[2] == "RTP/SAVP", report
    assert any(x.startswith("a=crypto:") for x in offer[1:]), report
    assert answer[0].split()[2] == "RTP/SAVP" and answer[1].startswith("a=crypto:"), report
    assert report["negotiated_srtp"] and report["srtp_errors"] == [], report
    assert report["disposition"] == "answered" and report["srtp"] is True, report
    # The PBX took Linphone's key from the ACK: its 1000 Hz is the caller's channel.
    left, right = report["recording"]["left"], report["recording"]["right"]
    assert left["loud"] > 8000 and left["1000"] > 20 * left["440"], report
    assert right["loud"] > 8000 and right["440"] > 20 * right["1000"], report
    # Linphone took ours from the 200: what it recorded is 101's 440 Hz.
    heard = report["heard"]
    assert heard["loud"] > 8000 and heard["440"] > 20 * heard["1000"], report


async def test_a_plain_offer_turned_down_before_the_ack_ends_the_call(tmp_path: Path) -> None:
    out, context = await run_in_netns(DRIVER, tmp_path, wait=60, args=("plain-trunk",))
    assert out.exists(), context[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"], (report, context[-4000:])
    assert report["our_offer"][0].split()[2] == "RTP/AVP", report
    assert not report["negotiated_srtp"], report
    # Its BYE came before its ACK, and was answered at once (not after the ACK wait's 32 s).
    assert report["bye_answers"] == ["SIP/2.0 200 OK"], report
    assert report["disposition"] == "answered" and report["talk_seconds"] < 1, report
