"""SRTP (SDES) with Linphone over TLS, end to end: the second real softphone after baresip
(test_tls_baresip.py), with its own media stack. The driver runs in ``unshare -n``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.linphone_kit import NETNS_PEERS
from tests.sip.peers.harness import run_in_netns

pytestmark = NETNS_PEERS


async def test_linphone_over_tls_talks_srtp_with_the_pbx(tmp_path: Path) -> None:
    out, context = await run_in_netns("tests.e2e.srtp_linphone_driver", tmp_path, wait=60)
    assert out.exists(), context[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"], (report, context[-4000:])
    ((_contact, transport),) = report["registered"]
    assert transport == "TLS", report
    assert report["caller_ok"] and report["disposition"] == "answered", report
    # One ring, answered: Linphone took the SRTP offer (no plain second try).
    assert report["rings"] == [["701", "completed"]], report
    assert report["negotiated_srtp"] and report["srtp_errors"] == [], report
    assert report["legs_srtp"] == [True] and report["leg_mos"][0] is not None, report
    # Linphone agreed to RTCP on the RTP port (RFC 5761), and its reports (SRTCP) reached the
    # PBX that way and were read: none of our RTP went missing. (Our own SRTCP to it is
    # covered by the absence of SRTP errors in its log, above.)
    assert report["answered_rtcp_mux"], report
    assert report["legs_rtcp"][0][0] == 0, report
    # The PBX decrypted Linphone: its 1000 Hz is the phone's channel of the recording.
    left, right = report["recording"]["left"], report["recording"]["right"]
    assert right["loud"] > 8000 and right["1000"] > 20 * right["440"], report
    assert left["loud"] > 8000 and left["440"] > 20 * left["1000"], report
    # Linphone decrypted the PBX: what it recorded is the carrier's 440 Hz.
    heard = report["heard"]
    assert heard["loud"] > 8000 and heard["440"] > 20 * heard["1000"], report
