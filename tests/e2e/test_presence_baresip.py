"""baresip (a real softphone) watches a colleague's presence through the PBX: offline while
their phone is not registered, online once it is, busy while they talk, online again after,
busy while they are in do not disturb.
baresip opens sockets beyond loopback, so the PBX, baresip and SIPp run together in
``unshare -n`` (presence_baresip_driver.py), which writes a report."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.baresip_kit import NETNS_PEERS
from tests.sip.peers.harness import run_in_netns

pytestmark = NETNS_PEERS


async def test_baresip_sees_a_colleague_come_talk_and_finish(tmp_path: Path) -> None:
    out, context = await run_in_netns("tests.e2e.presence_baresip_driver", tmp_path, wait=80)
    assert out.exists(), context[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"], (report, context[-4000:])
    assert report["subscribed"], report  # digest, as a phone of the account
    assert report["online"], report
    assert report["busy"], report
    assert report["call_ok"] and report["answered"] == "601", report
    assert report["online_after"], report
    assert report["dnd"] and report["dnd_off"], report
    # Offline first: 601 had no phone registered when baresip subscribed; busy on the call,
    # and again in do not disturb.
    assert report["statuses"] == ["Offline", "Online", "Busy", "Online", "Busy", "Online"], report
