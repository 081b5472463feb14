"""SIP over TLS end to end with baresip, a real softphone and TLS peer (RFC 3261 §26.2,
RFC 5922). Each case runs its driver inside ``unshare -n`` (baresip opens sockets beyond
loopback); the driver writes a JSON report, asserted here.

* a phone registers over TLS (checking the PBX's certificate against a test CA) and a
  carrier's call reaches it over that very connection (this phone lacks SRTP: it refuses the
  SRTP offer and is rung again with plain RTP);
* an outbound call goes out over a TLS trunk known by its domain (``_sips._tcp`` SRV), the
  carrier's certificate checked against that domain; baresip is the carrier and answers;
* a carrier presenting a certificate for another domain is refused and the call fails at
  once, without ringing anyone;
* SRTP (SDES, RFC 4568): a trunk that requires it gets it from a carrier that takes nothing
  else (and, without ``srtp``, is refused by it); a phone over TLS with libsrtp talks SRTP
  with the PBX both when called and when calling, heard on both sides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.baresip_kit import NETNS_PEERS
from tests.sip.peers.harness import run_in_netns
from tests.support.dnsmasq import needs_dnsmasq

pytestmark = NETNS_PEERS


async def _report(module: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    out, context = await run_in_netns(module, tmp_path, wait=60, args=args)
    assert out.exists(), context[-4000:]
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["ok"], (report, context[-4000:])
    return report


async def test_a_phone_registered_over_tls_is_called_over_its_connection(tmp_path: Path) -> None:
    report = await _report("tests.e2e.tls_baresip_driver", tmp_path)
    assert report["tls_listening"], report
    ((contact, transport),) = report["registered"]
    assert transport == "TLS" and contact.endswith(";transport=tls"), report
    assert report["caller_ok"], report
    # Offered SRTP (it registered over TLS), this baresip without SRTP refused with 488 and
    # was rung again at once with plain RTP, in the same wave.
    assert report["waves"] == [["701", "701"]], report
    assert report["rings"] == [["701", "failed"], ["701", "completed"]], report
    assert report["answered"] == "701" and report["disposition"] == "answered", report
    assert report["answered_by"] == report["baresip_id"], report
    assert report["talk_seconds"] >= 0.5, report
    # The INVITE went over the connection baresip registered on: none was opened to it.
    assert report["stats"]["tcp_accepted"] == 1 and report["stats"]["tcp_connected"] == 0


@needs_dnsmasq
async def test_an_outbound_call_over_a_tls_trunk_located_by_srv(tmp_path: Path) -> None:
    report = await _report("tests.e2e.tls_trunk_driver", tmp_path)
    assert report["caller_ok"], report
    assert report["tls_names"] == {"127.0.0.1:5092": "carrier.zvonar.test"}, report
    assert report["direction"] == "outbound" and report["disposition"] == "answered", report
    assert report["legs"] == ["completed"], report
    assert report["stats"]["tcp_connected"] == 1, report
    assert "Call established: sip:101@alpha.zvonar" in report["baresip_log"], report


@needs_dnsmasq
async def test_a_carrier_with_another_domains_certificate_is_refused(tmp_path: Path) -> None:
    report = await _report("tests.e2e.tls_trunk_driver", tmp_path, "impostor")
    assert not report["caller_ok"], report
    assert report["disposition"] == "failed" and report["legs"] == ["failed"], report
    assert report["seconds"] < 5, report  # the handshake failed: no Timer B, no silence bound
    assert report["stats"]["tcp_connected"] == 0 and report["stats"]["send_errors"] == 1
    assert "Call established" not in report["baresip_log"], report


@needs_dnsmasq
async def test_a_trunk_that_requires_srtp_gets_it(tmp_path: Path) -> None:
    report = await _report("tests.e2e.tls_trunk_driver", tmp_path, "srtp")
    assert report["caller_ok"], report
    assert report["disposition"] == "answered" and report["legs"] == ["completed"], report
    assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in report["baresip_log"]
    assert "srtp: failed" not in report["baresip_log"], report


@needs_dnsmasq
async def test_a_carrier_that_requires_srtp_refuses_a_trunk_without_it(tmp_path: Path) -> None:
    """The control for the case above: the same carrier, the trunk's ``srtp`` left off."""
    report = await _report("tests.e2e.tls_trunk_driver", tmp_path, "srtp-unset")
    assert not report["caller_ok"], report
    assert report["disposition"] != "answered" and report["legs"] == ["failed"], report
    assert "Call established" not in report["baresip_log"], report


async def test_media_to_and_from_a_phone_over_tls_is_srtp(tmp_path: Path) -> None:
    """baresip (libsrtp, ``mediaenc=srtp-mand``: no call in plain RTP) is called by a
    carrier and calls a colleague; the PBX speaks SRTP to it and plain RTP to the others."""
    report = await _report("tests.e2e.srtp_baresip_driver", tmp_path)
    ((_contact, transport),) = report["registered"]
    assert transport == "TLS", report
    inbound, outgoing = report["inbound"], report["outgoing"]
    assert inbound["caller_ok"] and inbound["answered"] == "701", report
    assert inbound["disposition"] == "answered", report
    assert outgoing["calls"] == 1 and outgoing["disposition"] == "answered", report
    assert outgoing["answered_by"] == outgoing["phone702"], report
    # baresip set up SRTP on both calls, again on its hold and resume re-INVITEs of the second,
    # and never failed to decrypt a packet.
    assert report["srtp_enabled"] >= 4 and report["srtp_failures"] == 0, report
    assert report["held_and_resumed"], report
    # The PBX decrypted baresip: its 1000 Hz is on the recording's phone side (right on the
    # first call, where baresip answered; left on the second, where it called).
    for side, leg in (("right", inbound), ("left", outgoing)):
        heard = leg["recording"][side]
        assert heard["loud"] > 4000 and heard["1000"] > 20 * heard["440"], report
    for side, leg in (("left", inbound), ("right", outgoing)):
        heard = leg["recording"][side]
        assert heard["loud"] > 4000 and heard["440"] > 20 * heard["1000"], report
    # The journal says which side was encrypted: baresip's, not the carrier's nor 702's.
    assert (inbound["srtp"], inbound["legs_srtp"]) == (False, [True]), report
    assert (outgoing["srtp"], outgoing["legs_srtp"]) == (True, [False]), report
    # baresip decrypted the PBX: what it decoded on each call is the other side's 440 Hz.
    decoded = list(report["dumps"].values())
    assert len(decoded) == 2, report
    for heard in decoded:
        assert heard["loud"] > 4000 and heard["440"] > 20 * heard["1000"], report
    # After the hold and resume (re-INVITEs that re-offer SRTP), both directions still get
    # through: the last second of the call holds baresip's tone on the recording and 702's in
    # what baresip decoded.
    after = outgoing["recording"]["left"]["tail"]
    assert after["loud"] > 4000 and after["1000"] > 20 * after["440"], report
    after = decoded[-1]["tail"]
    assert after["loud"] > 4000 and after["440"] > 20 * after["1000"], report
    # baresip's RTCP reports (SRTCP) reached the PBX: the journal has its view of our RTP, all
    # of it received (the hold left no gap in our numbering), and the round trip on loopback.
    # 702 (SIPp) sends no RTCP, so its leg has none of it.
    theirs = outgoing["caller_rtcp"]
    assert theirs["peer_loss"] == 0 and theirs["mos"] > 4.3, report
    assert theirs["rtt_ms"] is not None and 0 <= theirs["rtt_ms"] < 50, report
    assert outgoing["rtcp"] == [{"peer_loss": None, "peer_jitter_ms": None, "rtt_ms": None}]
