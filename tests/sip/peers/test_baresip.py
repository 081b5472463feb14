"""Our SIP server against baresip 1.0 (Debian), inside a private network namespace.

baresip opens sockets beyond loopback (DNS on 0.0.0.0), so the server and baresip run
together in `unshare -n` (see baresip_driver.py); the driver writes a JSON report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import pytest

from tests.sip.peers.harness import BARESIP, UNSHARE, have_root

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(BARESIP is None, reason="baresip not installed (Debian package baresip)"),
    pytest.mark.skipif(UNSHARE is None or not have_root(), reason="needs root and unshare -n"),
]

ROOT = Path(__file__).resolve().parents[3]


async def test_baresip_registers_and_calls_both_ways(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    inner = (
        f"ip link set lo up && exec {sys.executable} -m tests.sip.peers.baresip_driver "
        f"{out} {tmp_path}"
    )
    proc = await asyncio.create_subprocess_exec(
        UNSHARE or "unshare", "-n", "sh", "-c", inner,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    log = tmp_path / "baresip.log"
    context = output.decode(errors="replace") + (
        log.read_text(errors="replace") if log.exists() else ""
    )
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
