"""A forwarding scheme's call answered by baresip (a real softphone), after a SIPp phone that
does not answer. baresip opens sockets beyond loopback, so the PBX, baresip and the SIPp
carrier run together in `unshare -n` (see schemes_baresip_driver.py), which writes a report.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.baresip_kit import NETNS_PEERS
from tests.sip.peers.harness import run_in_netns

pytestmark = NETNS_PEERS


async def test_baresip_answers_after_the_first_step_times_out(tmp_path: Path) -> None:
    out, context = await run_in_netns("tests.e2e.schemes_baresip_driver", tmp_path, wait=60)
    assert out.exists(), context[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"], (report, context[-4000:])
    assert report["registered"], report  # baresip registered with digest as 501@bare.zvonar
    assert report["caller_ok"], report
    assert report["waves"] == [["601"], ["501"]], report
    assert report["ends"] == {"601": "no_answer", "501": "completed"}, report
    assert report["answered"] == "501" and report["disposition"] == "answered", report
    assert report["answered_by"] == report["baresip_id"], report
    assert report["talk_seconds"] is not None and report["talk_seconds"] >= 0.5, report
