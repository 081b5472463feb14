"""A forwarding scheme's call answered by baresip (a real softphone), after a SIPp phone that
does not answer. baresip opens sockets beyond loopback, so the PBX, baresip and the SIPp
carrier run together in `unshare -n` (see schemes_baresip_driver.py), which writes a report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import pytest

from tests.sip.peers.harness import BARESIP, SIPP, UNSHARE, have_root

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
    pytest.mark.skipif(BARESIP is None, reason="baresip not installed (Debian package baresip)"),
    pytest.mark.skipif(UNSHARE is None or not have_root(), reason="needs root and unshare -n"),
]

ROOT = Path(__file__).resolve().parents[2]


async def test_baresip_answers_after_the_first_step_times_out(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    inner = (
        f"ip link set lo up && exec {sys.executable} -m tests.e2e.schemes_baresip_driver "
        f"{out} {tmp_path}"
    )
    proc = await asyncio.create_subprocess_exec(
        UNSHARE or "unshare", "-n", "sh", "-c", inner,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
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
    assert report["registered"], report  # baresip registered with digest as 501@bare.zvonar
    assert report["caller_ok"], report
    assert report["waves"] == [["601"], ["501"]], report
    assert report["ends"] == {"601": "no_answer", "501": "completed"}, report
    assert report["answered"] == "501" and report["disposition"] == "answered", report
    assert report["answered_by"] == report["baresip_id"], report
    assert report["talk_seconds"] is not None and report["talk_seconds"] >= 0.5, report
