"""Our SIP server against baresip 1.0 (Debian), inside a private network namespace.

baresip opens sockets beyond loopback (DNS on 0.0.0.0), so the server and baresip run
together in `unshare -n` (see baresip_driver.py); the driver writes a JSON report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sip.peers.harness import BARESIP, UNSHARE, have_root, run_in_netns

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(BARESIP is None, reason="baresip not installed (Debian package baresip)"),
    pytest.mark.skipif(UNSHARE is None or not have_root(), reason="needs root and unshare -n"),
]


async def test_baresip_registers_and_calls_both_ways(tmp_path: Path) -> None:
    out, context = await run_in_netns("tests.sip.peers.baresip_driver", tmp_path, wait=90)
    assert out.exists(), context[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"], (report, context[-4000:])
    # Registered with digest (challenged first), and refreshed at least once (regint=4).
    assert report["registered"] and report["reregistered"], report
    assert report["server_stats"]["auth_challenges"] >= 1
    assert report["server_stats"]["auth_failures"] == 0
    [binding] = report["bindings"]
    assert binding["source"] == ["127.0.0.1", 5081] and binding["transport"] == "UDP"
    # baresip → our "answer" endpoint: established, then baresip hangs up.
    assert report["out_established"] and report["out_closed"], report
    # us → baresip (auto-answer): 200, then our BYE ends it on both sides.
    assert report["in_status"] == 200 and report["in_established"], report
    assert report["in_ended"] == "local" and report["in_closed"], report
    assert report["server_stats"]["internal_errors"] == 0
