"""End to end with SIPp phones registered with digest (``schemes_kit``): directed pickup and
blind transfer through the real PBX runtime, checked in the B2BUA's events and the journal.

- pickup: a carrier calls the number whose scheme rings 101 (a SIPp phone that rings until
  CANCELled); 102 dials ``*8101`` (directed) or ``*8`` (group pickup: 101 and 102 share the
  group "desk") with digest → the carrier and 102 are answered and bridged (the carrier's RTP
  reaches 102's leg), 101 gets CANCEL; the journal says answered by 102;
- transfer: 101 answers, sends REFER (Refer-To: 102) in its dialog, gets 202, NOTIFYs and BYE;
  102 answers the carrier; the journal holds the blind transfer to 102.

A picker whose INVITE carries no SDP (RFC 3261 §13.2.1) answers our offer in its ACK: the
carrier's RTP reaching 102's leg proves that leg was configured from it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.schemes_kit import Rig, carrier_talk, desk_rig, dialer_xml, sipp_cmd, until
from tests.sip.peers.harness import SIPP, SippRun, finish_sipp, free_port, start_sipp, wait_bound
from zvonar.calls.events import CallRinging, CallTransferred, Disposition, LegEnded
from zvonar.calls.events import LegEndReason as Why
from zvonar.pbx.features import GROUP_PICKUP_CODE, PICKUP_CODE

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

PASSWORD = "pickup-pass-42"
SLUG = "pickup"
REALM = f"{SLUG}.zvonar"
NUMBER = "+74951234500"


def referrer_xml(refer_to: str) -> str:
    """Answer, then REFER the call to ``refer_to`` in our dialog (RFC 3515): 202, NOTIFYs
    (100 Trying, 200 OK) answered 200, then the PBX's BYE."""
    capture = (
        '<recv request="INVITE"><action>'
        '<ereg regexp=".*" search_in="hdr" header="From:" assign_to="peer"/>'
        '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="me"/>'
        '<ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="target"/>'
        "</action></recv>"
    )
    xml = sippkit.uas_answer()
    head, _, _ = xml.partition('<recv request="BYE"/>')
    head = head.replace('<recv request="INVITE"/>', capture, 1)
    return f"""{head}
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[

      REFER [$target] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: [$me];tag=[pid]UAS[call_number]
      To: [$peer]
      Call-ID: [call_id]
      CSeq: 1 REFER
      Contact: <sip:101@[local_ip]:[local_port];transport=[transport]>
      Refer-To: <{refer_to}>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="202"/>
  <recv request="NOTIFY"/>
  {sippkit.OK_IN_DIALOG}
  <recv request="NOTIFY"/>
  {sippkit.OK_IN_DIALOG}
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
  <pause milliseconds="200"/>
</scenario>
"""


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    ring = {"type": "ring", "targets": [{"employee": "101"}], "timeout": 8}
    async with desk_rig(tmp_path, slug=SLUG, password=PASSWORD, number=NUMBER, ring=ring) as made:
        yield made


class Sipps:
    """SIPp processes of one test, each finished (or killed) and its results read."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.running: list[tuple[asyncio.subprocess.Process, list[str], str]] = []

    async def start(
        self, name: str, xml: str, *, port: int, remote: bool, extra: tuple[str, ...] = ()
    ) -> int:
        path = self.rig.workdir / f"{name}.xml"
        path.write_text(xml)
        cmd = sipp_cmd(
            self.rig.remote if remote else "", path, port=port, workdir=self.rig.workdir, name=name
        )
        cmd += list(extra)
        self.running.append((await start_sipp(cmd, workdir=self.rig.workdir), cmd, name))
        return len(self.running) - 1

    async def finish(self, index: int, wait: float = 15) -> SippRun:
        proc, cmd, name = self.running[index]
        return await finish_sipp(proc, cmd, workdir=self.rig.workdir, name=name, wait=wait)

    async def kill_all(self) -> None:
        for proc, _, _ in self.running:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("code", "late"),
    [
        (f"{PICKUP_CODE}101", False),
        (GROUP_PICKUP_CODE, False),
        (f"{PICKUP_CODE}101", True),
        ("101", False),  # INVITE 101 with Replaces naming its ringing fork (a BLF key)
    ],
    ids=["directed", "group", "directed-delayed-offer", "replaces"],
)
async def test_pickup_takes_the_call_ringing_101(rig: Rig, code: str, late: bool) -> None:
    sipps = Sipps(rig)
    start = len(rig.bus.events)
    tone = rig.workdir / "tone.pcap"
    sippkit.write_tone_pcap(tone, 440, 1.0, ssrc=0x4444)
    try:
        d101, d102 = rig.devices["101"], rig.devices["102"]
        ringing = await sipps.start(
            "ring101", sippkit.uas_ring_forever(), port=d101.port, remote=False
        )
        await wait_bound(d101.port)
        carrier = await sipps.start(
            "carrier",
            carrier_talk(NUMBER, "+79160000001", talk_ms=2000, pcap=tone),
            port=free_port(),
            remote=True,
        )
        await until(lambda: [e for e in rig.bus.events[start:] if isinstance(e, CallRinging)])
        (call_id,) = {e.call_id for e in rig.bus.events[start:] if isinstance(e, CallRinging)}
        replaces = None
        if code == "101":  # what 102's BLF key read in the NOTIFY's dialog-info
            (fork,) = rig.rt.b2bua.calls[call_id].forks.values()
            ids = rig.rt.b2bua.fork_ids(call_id, fork.leg_id)
            assert ids is not None and ids[2] is not None
            sip_call_id, ours, theirs = ids
            replaces = f"{sip_call_id};to-tag={theirs};from-tag={ours};early-only"
        auth = ("-au", "102", "-ap", PASSWORD, "-auth_uri", f"{code}@{rig.remote}")
        picker = await sipps.start(
            "pick102",
            dialer_xml(code, "102", REALM, delayed_offer=late, replaces=replaces),
            port=d102.port,
            remote=True,
            extra=auth,
        )
        # While they talk, the carrier's tone goes out to 102 through the bridge.
        await until(
            lambda: (c := rig.rt.b2bua.calls.get(call_id)) is not None and c.winner is not None
        )
        winner = rig.rt.b2bua.calls[call_id].winner
        assert winner is not None
        sent = 0
        for _ in range(100):
            with contextlib.suppress(Exception):
                sent = (await rig.rt.engine.stats(winner.media_id)).tx_packets
            if sent > 10:
                break
            await asyncio.sleep(0.02)
        assert sent > 10, "no RTP reached the picker's leg"
        runs = {
            n: await sipps.finish(i)
            for n, i in (("carrier", carrier), ("picker", picker), ("ring", ringing))
        }
        for name, run in runs.items():
            assert run.stats.successful == 1, (name, run.describe())  # 101's: CANCEL seen
        await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 10)
    finally:
        await sipps.kill_all()
    row = await rig.journal_row(call_id)
    assert row.disposition is Disposition.answered
    assert row.answered_by == d102.employee_id
    ends = {e.leg_id: e.reason for e in rig.bus.events[start:] if isinstance(e, LegEnded)}
    assert ends[f"{call_id}.w0t0"] is Why.cancelled
    assert ends[f"{call_id}.pk"] is Why.completed


async def test_blind_transfer_from_101_to_102(rig: Rig) -> None:
    sipps = Sipps(rig)
    start = len(rig.bus.events)
    try:
        d101, d102 = rig.devices["101"], rig.devices["102"]
        referrer = await sipps.start(
            "refer101", referrer_xml(f"sip:102@{REALM}"), port=d101.port, remote=False
        )
        target = await sipps.start("answer102", sippkit.uas_answer(), port=d102.port, remote=False)
        await wait_bound(d101.port)
        await wait_bound(d102.port)
        carrier = await sipps.start(
            "carrier",
            carrier_talk(NUMBER, "+79160000001", talk_ms=3000),
            port=free_port(),
            remote=True,
        )
        runs = {
            n: await sipps.finish(i)
            for n, i in (("carrier", carrier), ("101", referrer), ("102", target))
        }
        for name, run in runs.items():
            assert run.stats.successful == 1, (name, run.describe())
        await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 10)
    finally:
        await sipps.kill_all()
    (moved,) = [e for e in rig.bus.events[start:] if isinstance(e, CallTransferred)]
    row = await rig.journal_row(moved.call_id)
    assert row.disposition is Disposition.answered
    assert row.answered_by == d101.employee_id  # the first answer; then the transfer
    (entry,) = row.transfers
    assert entry["kind"] == "blind" and entry["to_id"] == str(d102.employee_id)
