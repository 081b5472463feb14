"""End to end with SIPp phones registered with digest (``schemes_kit``): the feature codes a
phone dials, through the real PBX runtime.

Do not disturb:
101 dials ``*78`` with digest: the PBX answers, speaks the confirmation and hangs up (the
SIPp phone takes the BYE), with nothing in the journal. A carrier then calls the number whose
scheme rings 101 and 102 all at once: only 102's phone rings (101's SIPp
would answer, and never sees an INVITE) and 102 answers. 101 dials ``*79``: the next call rings
both again.

Intercom: 102 dials ``*9101``; 101's SIPp phone answers only if the INVITE asks it to answer
by itself (``Call-Info: ...;answer-after=0`` and ``Answer-Mode: Auto``, checked by SIPp); 102
talks and hangs up; the journal has an internal call answered by 101.

Call pull (``*11`` or Replaces) and call park (a REFER to ``*51``, then ``*51`` dialled from
102's phone): see the tests' docstrings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.e2e import sippkit
from tests.e2e.schemes_kit import (
    Device,
    Phone,
    Rig,
    carrier_until_bye,
    desk_rig,
    dialer_xml,
    sipp_cmd,
    until,
)
from tests.e2e.test_blf import _notify, idle_body, watcher_xml
from tests.e2e.test_pickup_transfer import referrer_xml
from tests.sip.peers.harness import (
    SIPP,
    SippRun,
    finish_sipp,
    free_port,
    run_sipp,
    start_sipp,
    start_sipp_bound,
)
from zvonar.calls.events import (
    CallAnswered,
    CallStarted,
    Direction,
    Disposition,
    LegEnded,
    LegEndReason,
)
from zvonar.calls.park import PARK_CODE
from zvonar.directory.models import Employee
from zvonar.journal.models import CallRecord
from zvonar.pbx.features import DND_OFF_CODE, DND_ON_CODE, INTERCOM_CODE, PULL_CODE

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

PASSWORD = "dnd-pass-4242"
SLUG = "dnd"
REALM = f"{SLUG}.zvonar"
NUMBER = "+74951234600"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    both = [{"employee": "101"}, {"employee": "102"}]
    ring = {"type": "ring", "targets": both, "strategy": "all_at_once", "timeout": 8}
    async with desk_rig(tmp_path, slug=SLUG, password=PASSWORD, number=NUMBER, ring=ring) as made:
        yield made


async def _dial_code(
    rig: Rig,
    code: str,
    device: str = "101",
    talk_ms: int | None = None,
    replaces: str | None = None,
) -> float:
    """``device`` (a key of ``rig.devices``) dials ``code`` as its employee; returns the
    seconds from its start to the end of the call: the PBX's BYE, or, with ``talk_ms``, the
    phone's own after that long."""
    phone = rig.devices[device]
    name = f"dial{code.strip('*')}"
    xml = rig.workdir / f"{name}.xml"
    xml.write_text(dialer_xml(code, phone.ext, REALM, talk_ms=talk_ms, replaces=replaces))
    cmd = sipp_cmd(rig.remote, xml, port=phone.port, workdir=rig.workdir, name=name)
    cmd += ["-au", phone.ext, "-ap", PASSWORD, "-auth_uri", f"{code}@{rig.remote}"]
    loop = asyncio.get_running_loop()
    began = loop.time()
    run = await run_sipp(cmd, workdir=rig.workdir, name=name)
    assert run.stats.successful == 1, run.describe()  # answered, then our BYE taken
    await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 10)
    return loop.time() - began


async def _dnd(rig: Rig, ext: str) -> bool:
    async with rig.container.db.read() as s:
        value = await s.scalar(
            select(Employee.dnd).where(Employee.id == rig.devices[ext].employee_id)
        )
    assert value is not None
    return value


async def test_do_not_disturb_from_the_phone(rig: Rig) -> None:
    start = len(rig.bus.events)
    took = await _dial_code(rig, DND_ON_CODE)
    # The Russian confirmation lasts about 1.9 s: the BYE came after it, not at once.
    assert took > 1.0, took
    assert await _dnd(rig, "101") is True
    # A feature code is no call: no journal row, no call event.
    assert not [e for e in rig.bus.events[start:] if isinstance(e, CallStarted)]
    async with rig.container.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(CallRecord)) == 0

    both = {"101": Phone.answer, "102": Phone.answer}
    result = await rig.call(NUMBER, both)
    assert result.caller_ok, result.caller_log
    assert result.waves == [["102"]], result.phones_log  # 101 is passed over
    assert result.answered == "102"
    assert result.row.disposition is Disposition.answered

    await _dial_code(rig, DND_OFF_CODE)
    assert await _dnd(rig, "101") is False
    result = await rig.call(NUMBER, {"101": Phone.answer, "102": Phone.ring})
    assert result.caller_ok, result.caller_log
    assert result.waves == [["101", "102"]], result.phones_log
    assert result.answered == "101"


def _auto_answering_phone() -> str:
    """101's phone: answers only an INVITE that asks it to answer by itself (SIPp's check_it
    fails the call otherwise)."""
    check = (
        '<recv request="INVITE"><action>'
        '<ereg regexp="answer-after=0" search_in="hdr" header="Call-Info:" check_it="true" '
        'assign_to="c"/>'
        '<ereg regexp="^ *Auto" search_in="hdr" header="Answer-Mode:" check_it="true" '
        'assign_to="m"/>'
        '</action></recv><Reference variables="c,m"/>'
    )
    return sippkit.uas_answer().replace('<recv request="INVITE"/>', check, 1)


async def test_intercom_asks_the_colleagues_phone_to_answer_itself(rig: Rig) -> None:
    start = len(rig.bus.events)
    d101 = rig.devices["101"]
    xml = rig.workdir / "intercom101.xml"
    xml.write_text(_auto_answering_phone())
    cmd = sipp_cmd("", xml, port=d101.port, workdir=rig.workdir, name="intercom101")
    phone = await start_sipp_bound(cmd, workdir=rig.workdir, port=d101.port)
    try:
        await _dial_code(rig, f"{INTERCOM_CODE}101", "102", talk_ms=500)
        assert await asyncio.wait_for(phone.wait(), 10) == 0  # its checks held, BYE taken
    finally:
        if phone.returncode is None:
            phone.kill()
            await phone.wait()
    (started,) = [e for e in rig.bus.events[start:] if isinstance(e, CallStarted)]
    assert started.direction is Direction.internal
    row = await rig.journal_row(started.call_id)
    assert row.disposition is Disposition.answered
    assert row.answered_by == d101.employee_id


@dataclass
class DeskCall:
    """The two SIPp processes of a desk-phone test: 101's desk phone (its scenario) and the
    carrier calling NUMBER, talking a tone until our BYE."""

    rig: Rig
    desk: asyncio.subprocess.Process
    desk_cmd: list[str]
    desk_name: str
    carrier: asyncio.subprocess.Process
    carrier_cmd: list[str]

    async def finish_desk(self) -> SippRun:
        return await finish_sipp(
            self.desk, self.desk_cmd, workdir=self.rig.workdir, name=self.desk_name
        )

    async def finish_carrier(self) -> SippRun:
        return await finish_sipp(
            self.carrier, self.carrier_cmd, workdir=self.rig.workdir, name="carrier"
        )


@contextlib.asynccontextmanager
async def _desk_call(
    rig: Rig, desk_scenario: str, desk_name: str, tone_seconds: float
) -> AsyncIterator[DeskCall]:
    """101's desk phone runs ``desk_scenario``; then the carrier calls, its tone lasting
    ``tone_seconds``. Whatever is still running at the end is killed."""
    tone = rig.workdir / "tone.pcap"
    sippkit.write_tone_pcap(tone, 440, tone_seconds, ssrc=0x5151)
    d101 = rig.devices["101"]
    desk_xml = rig.workdir / f"{desk_name}.xml"
    desk_xml.write_text(desk_scenario)
    desk_cmd = sipp_cmd("", desk_xml, port=d101.port, workdir=rig.workdir, name=desk_name)
    desk = await start_sipp_bound(desk_cmd, workdir=rig.workdir, port=d101.port)
    carrier_xml = rig.workdir / "carrier.xml"
    carrier_xml.write_text(carrier_until_bye(NUMBER, "+79160000001", pcap=tone))
    carrier_cmd = sipp_cmd(
        rig.remote, carrier_xml, port=free_port(), workdir=rig.workdir, name="carrier"
    )
    carrier = await start_sipp(carrier_cmd, workdir=rig.workdir)
    try:
        yield DeskCall(rig, desk, desk_cmd, desk_name, carrier, carrier_cmd)
    finally:
        for proc in (desk, carrier):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _sent_by(rig: Rig, media_id: str) -> int:
    """The RTP packets the engine sent out of ``media_id``, once more than 10 (or 2 s)."""
    sent = 0
    for _ in range(100):
        with contextlib.suppress(Exception):
            sent = (await rig.rt.engine.stats(media_id)).tx_packets
        if sent > 10:
            break
        await asyncio.sleep(0.02)
    return sent


@pytest.mark.parametrize("how", ["code", "replaces"])
async def test_call_pull_moves_the_call_to_the_other_device(rig: Rig, how: str) -> None:
    """101 answers a customer on the desk phone, then, from another device (a SIPp phone on
    a port of its own, digest as 101), dials ``*11`` — or INVITEs 101 with Replaces naming
    the answered leg's dialog, as a BLF key on one's own line does: the customer's RTP reaches
    the new device's leg, the desk phone gets our BYE, and the new device talks on and hangs
    up."""
    start = len(rig.bus.events)
    d101 = rig.devices["101"]
    async with _desk_call(rig, sippkit.uas_answer(), "desk101", 3.0) as sipps:
        await until(lambda: [e for e in rig.bus.events[start:] if isinstance(e, CallAnswered)])
        (call_id,) = {e.call_id for e in rig.bus.events[start:] if isinstance(e, CallStarted)}
        mobile = Device("101", d101.employee_id)  # the same employee, another device
        rig.devices["101m"] = mobile
        replaces = None
        if how == "replaces":  # what 101's BLF key read in the dialog-info (pbx/blf.py)
            winner = rig.rt.b2bua.calls[call_id].winner
            assert winner is not None
            ids = rig.rt.b2bua.fork_ids(call_id, winner.leg_id)
            assert ids is not None
            replaces = f"{ids[0]};to-tag={ids[2]};from-tag={ids[1]}"
        dialed = PULL_CODE if how == "code" else "101"
        puller = asyncio.create_task(
            _dial_code(rig, dialed, "101m", talk_ms=1500, replaces=replaces)
        )

        def pulled() -> bool:
            winner = rig.rt.b2bua.calls[call_id].winner
            return winner is not None and winner.leg_id.startswith(f"{call_id}.pl")

        await until(pulled)
        new = rig.rt.b2bua.calls[call_id].winner
        assert new is not None
        # the carrier's tone goes out to the new device's leg
        assert await _sent_by(rig, new.media_id) > 10, "no RTP reached the new device's leg"
        assert await asyncio.wait_for(sipps.desk.wait(), 10) == 0  # our BYE ended the desk's call
        await puller
        carried = await sipps.finish_carrier()
        assert carried.stats.successful == 1, carried.describe()  # our BYE after the pull
    row = await rig.journal_row(call_id)
    assert row.disposition is Disposition.answered
    assert row.answered_by == d101.employee_id
    ends = {e.leg_id: e.reason for e in rig.bus.events[start:] if isinstance(e, LegEnded)}
    assert ends[f"{call_id}.w0t0"] is LegEndReason.completed
    assert ends[new.leg_id] is LegEndReason.completed


async def _park_key(rig: Rig, slot: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """102's park key: a SIPp phone subscribed (with digest) to ``slot``, its idle NOTIFY
    answered; it expects the slot lit with the customer, then dark, then unsubscribes."""
    lit = _notify(
        ("lit", "direction=.recipient.>[[:space:]]*<state>confirmed</state>", "body"),
        ("caller", "<identity>tel:[+]79160000001</identity>", "body"),
    )
    dark = _notify(("dark", idle_body(slot, REALM), "body"))
    xml = rig.workdir / "parkkey.xml"
    xml.write_text(watcher_xml(REALM, lit + dark, target=slot, user="102"))
    cmd = sipp_cmd(rig.remote, xml, port=free_port(), workdir=rig.workdir, name="parkkey")
    cmd += ["-au", "102", "-ap", PASSWORD, "-auth_uri", f"{slot}@{REALM}"]
    key = await start_sipp(cmd, workdir=rig.workdir)
    blf = rig.rt.blf
    assert blf is not None
    await until(lambda: blf.count == 1 and blf.settled)
    await asyncio.sleep(0.3)  # its idle NOTIFY is answered
    return key, cmd


async def test_park_and_take_the_call_from_another_phone(rig: Rig) -> None:
    """101 answers a customer on its desk phone and blind-transfers them to ``*51`` (REFER,
    as a park key does): 202, the NOTIFYs, our BYE. The customer hears our music meanwhile.
    Then 102 dials ``*51`` from its phone: the customer's RTP reaches 102's new leg; 102
    talks and hangs up, and the carrier gets our BYE. The journal: the transfer to the slot,
    102's leg answered. Meanwhile 102's park key (subscribed to ``*51``) is lit with the
    customer while they wait and dark once 102 took the call."""
    start = len(rig.bus.events)
    d101, d102 = rig.devices["101"], rig.devices["102"]
    slot = f"{PARK_CODE}1"
    key, key_cmd = await _park_key(rig, slot)
    async with _desk_call(rig, referrer_xml(f"sip:{slot}@{REALM}"), "park101", 6.0) as sipps:
        parked = await sipps.finish_desk()
        assert parked.stats.successful == 1, parked.describe()  # 202, NOTIFYs, our BYE
        (call_id,) = {e.call_id for e in rig.bus.events[start:] if isinstance(e, CallStarted)}
        call = rig.rt.b2bua.calls[call_id]
        await until(lambda: call.parked is not None and call.parked.settled)
        assert call.caller.media_id is not None
        before = (await rig.rt.engine.stats(call.caller.media_id)).tx_packets
        await asyncio.sleep(0.3)
        music = (await rig.rt.engine.stats(call.caller.media_id)).tx_packets - before
        assert music > 5, "the parked customer hears nothing"

        rig.devices["102m"] = Device("102", d102.employee_id)  # a port no fork rang
        taker = asyncio.create_task(_dial_code(rig, slot, "102m", talk_ms=1500))

        def taken() -> bool:
            winner = call.winner
            return winner is not None and winner.leg_id.startswith(f"{call_id}.pk")

        await until(taken)
        new = call.winner
        assert new is not None
        # the carrier's tone goes out to 102's leg
        assert await _sent_by(rig, new.media_id) > 10, "no RTP reached the taker's leg"
        await taker
        carried = await sipps.finish_carrier()
        assert carried.stats.successful == 1, carried.describe()  # our BYE after 102's
    watched = await finish_sipp(key, key_cmd, workdir=rig.workdir, name="parkkey", wait=15)
    assert watched.stats.successful == 1, watched.describe()  # lit, dark, unsubscribed
    row = await rig.journal_row(call_id)
    assert row.disposition is Disposition.answered
    (entry,) = row.transfers
    assert (entry["kind"], entry["to_kind"], entry["to_display"]) == ("blind", "park", slot)
    answers = [e for e in rig.bus.events[start:] if isinstance(e, CallAnswered)]
    assert [a.by for a in answers] == [d101.employee_id, d102.employee_id]
    ends = {e.leg_id: e.reason for e in rig.bus.events[start:] if isinstance(e, LegEnded)}
    assert ends[f"{call_id}.w0t0"] is LegEndReason.completed
    assert ends[new.leg_id] is LegEndReason.completed
