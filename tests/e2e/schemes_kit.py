"""A rig for the forwarding-scheme end-to-end tests: one PBX, many SIPp phones, SIPp carriers.

Every employee's phone is a SIPp process on its own loopback port: registered once with digest
as ``<ext>@<slug>.zvonar`` (the binding outlives the REGISTER run), then, per call, a SIPp UAS
on the same port that answers, is busy or rings until CANCELled. The carrier is a SIPp UAC
calling the number from a chosen caller number. What rang, in which order, comes from the
B2BUA's events on the container's RecordingBus; what was recorded comes from the journal.
Every SIPp run is bounded (-m 1, -timeout); phones that were never called are killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.e2e import sippkit
from tests.e2e.appkit import ring_account, sqlite_container
from tests.sip.peers.harness import (
    free_port,
    register_scenario,
    run_sipp,
    sipp_command,
    sipp_media_port,
    start_sipp_bound,
)
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallStarted,
    LegEnded,
    LegEndReason,
)
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.directory.schemas import GroupIn, MemberIn
from zvonar.journal.models import CallRecord
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import PbxRuntime, start_pbx

SIPP_TIMEOUT = 12  # seconds: every SIPp run ends by then, whatever the PBX does


class Phone(enum.Enum):
    answer = "answer"
    busy = "busy"  # 180, then 486 Busy Here
    ring = "ring"  # 180 until CANCELled


class Caller(enum.Enum):
    talk = "talk"  # expects 200, talks, hangs up
    rejected = "rejected"  # expects 480 and ACKs it
    prompt = "prompt"  # expects 200 (a prompt), then the PBX's BYE


BUSY = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="rings, then busy">
  <recv request="INVITE"/>
  <send><![CDATA[

      SIP/2.0 180 Ringing{sippkit.REPLY}
      Content-Length: 0

  ]]></send>
  <pause milliseconds="100"/>
  <send><![CDATA[

      SIP/2.0 486 Busy Here{sippkit.REPLY}
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>
</scenario>
"""

_INVITE = """
      INVITE sip:{dialed}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]UAC[call_number]
      To: <sip:{dialed}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{caller}@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=carrier 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
"""


def _carrier(name: str, dialed: str, caller: str, final: str, after: str = "") -> str:
    """Call ``dialed`` from ``caller``, expect the ``final`` response and ACK it (§17.1.1.3
    for a non-2xx, §13.2.2.4 for a 2xx), then ``after``."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{name}">
  <send retrans="500"><![CDATA[
{_INVITE.format(dialed=dialed, caller=caller)}
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="{final}"/>
  {sippkit.ack(dialed)}{after}
</scenario>
"""


def carrier_rejected(dialed: str, caller: str) -> str:
    """Call ``dialed`` from ``caller``; nobody takes it: 480, which we ACK (§17.1.1.3)."""
    return _carrier("carrier call that is refused", dialed, caller, "480")


def carrier_prompt(dialed: str, caller: str) -> str:
    """Call ``dialed``; the PBX answers with a prompt and hangs up (BYE) when it is over."""
    after = f"""
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}"""
    return _carrier("carrier call answered by a prompt", dialed, caller, "200", after)


def carrier_talk(dialed: str, caller: str, *, talk_ms: int, pcap: Path | None = None) -> str:
    """``sippkit.uac`` with a caller number of our choosing (caller rules read it)."""
    xml = sippkit.uac(dialed, pcap=pcap, talk_ms=talk_ms)
    if caller.startswith("tel:"):  # a gateway writing a tel: URI in From (RFC 3966)
        xml = xml.replace("From: <sip:caller@[local_ip]:[local_port]>", f"From: <{caller}>")
    return xml.replace("sip:caller@", f"sip:{caller.removeprefix('tel:')}@")


def carrier_until_bye(dialed: str, caller: str, *, pcap: Path | None = None) -> str:
    """Call ``dialed`` from ``caller``, talk (``pcap``) until the PBX hangs up."""
    after = f"""
  {sippkit._play(pcap)}
  <recv request="BYE" timeout="30000"/>
  {sippkit.OK_IN_DIALOG}"""
    return _carrier("carrier call talking until our BYE", dialed, caller, "200", after)


def sipp_cmd(remote: str, scenario: Path, *, port: int, workdir: Path, name: str) -> list[str]:
    """One bounded SIPp call of ``scenario`` from ``port``, with a media port of its own."""
    return sipp_command(
        remote,
        workdir=workdir,
        local_port=port,
        calls=1,
        timeout=SIPP_TIMEOUT,
        scenario_file=scenario,
        name=name,
        extra=("-mp", str(sipp_media_port())),
    )


@dataclass
class Device:
    ext: str
    employee_id: uuid.UUID
    port: int = field(default_factory=free_port)


@dataclass(frozen=True)
class Ring:
    """One fork the B2BUA started: the wave it belongs to and whose phone it rang."""

    wave: int
    ext: str
    end: LegEndReason | None  # None: the leg never ended (the answered one ends completed)


@dataclass
class Result:
    call_id: str
    rings: list[Ring]
    answered: str | None  # the extension whose leg answered
    ended: CallEnded
    row: CallRecord
    caller_ok: bool
    caller_log: str

    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    # What each phone's SIPp saw (its messages and errors, the tails), for a failure's message:
    # a phone that "said nothing" shows whether the INVITE ever reached it.
    phones_log: str = ""

    def employee_id(self, ext: str) -> uuid.UUID:
        return self.ids[ext]

    @property
    def order(self) -> list[str]:
        return [r.ext for r in self.rings]

    @property
    def waves(self) -> list[list[str]]:
        out: dict[int, list[str]] = {}
        for r in self.rings:
            out.setdefault(r.wave, []).append(r.ext)
        return [sorted(v) for _, v in sorted(out.items())]


class Rig:
    """One PBX and account for a test module; see the module docstring."""

    def __init__(
        self,
        container: Container,
        rt: PbxRuntime,
        realm: str,
        password: str,
        devices: dict[str, Device],
        workdir: Path,
    ) -> None:
        self.container, self.rt, self.realm, self.password = container, rt, realm, password
        self.devices = devices
        self.workdir = workdir
        self.by_id = {d.employee_id: d.ext for d in devices.values()}
        self._n = 0
        bus = container.bus
        assert isinstance(bus, RecordingBus)
        self.bus = bus

    @property
    def remote(self) -> str:
        return f"127.0.0.1:{self.rt.udp.port}"

    def _name(self, what: str) -> str:
        self._n += 1
        return f"{self._n:03d}-{what}"

    async def register_all(self) -> None:
        async def one(d: Device) -> None:
            name = self._name(f"reg{d.ext}")
            xml = self.workdir / f"{name}.xml"
            xml.write_text(register_scenario(d.ext, self.realm, expires=600))
            cmd = sipp_cmd(self.remote, xml, port=d.port, workdir=self.workdir, name=name)
            cmd += ["-au", d.ext, "-ap", self.password, "-auth_uri", self.realm]
            run = await run_sipp(cmd, workdir=self.workdir, name=name)
            assert run.stats.successful == 1, run.describe()

        await asyncio.gather(*(one(d) for d in self.devices.values()))
        for d in self.devices.values():
            assert self.rt.lookup(f"sip:{d.ext}@{self.realm}"), f"{d.ext} not registered"

    async def call(
        self,
        number: str,
        phones: dict[str, Phone],
        *,
        caller: str = "+79160000001",
        expect: Caller = Caller.talk,
        talk_ms: int = 300,
        caller_pcap: Path | None = None,
        phone_pcap: Path | None = None,
    ) -> Result:
        """Start the ``phones`` (others stay silent), call ``number`` from ``caller``, wait
        until the call is over and journalled, stop every phone; what happened."""
        procs: list[asyncio.subprocess.Process] = []
        names: list[str] = []
        scenarios = {
            Phone.answer: sippkit.uas_answer(pcap=phone_pcap),
            Phone.busy: BUSY,
            Phone.ring: sippkit.uas_ring_forever(),
        }
        try:
            for ext, behaviour in phones.items():
                d = self.devices[ext]
                name = self._name(f"{behaviour.value}{ext}")
                xml = self.workdir / f"{name}.xml"
                xml.write_text(scenarios[behaviour])
                cmd = sipp_cmd("", xml, port=d.port, workdir=self.workdir, name=name)
                messages = self.workdir / f"{name}_messages.log"
                cmd += ["-trace_msg", "-message_file", str(messages)]
                names.append(name)
                procs.append(await start_sipp_bound(cmd, workdir=self.workdir, port=d.port))
            start = len(self.bus.events)
            name = self._name("carrier")
            xml = self.workdir / f"{name}.xml"
            if expect is Caller.talk:
                xml.write_text(carrier_talk(number, caller, talk_ms=talk_ms, pcap=caller_pcap))
            elif expect is Caller.rejected:
                xml.write_text(carrier_rejected(number, caller))
            else:
                xml.write_text(carrier_prompt(number, caller))
            cmd = sipp_cmd(self.remote, xml, port=free_port(), workdir=self.workdir, name=name)
            run = await run_sipp(cmd, workdir=self.workdir, name=name)
            await asyncio.wait_for(self.rt.b2bua.wait_idle(), 10)
        finally:
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
            for p in procs:
                await p.wait()
        result = await self._result(start, number, run.stats.successful == 1, run.describe())
        result.phones_log = self._phones_log(names)
        return result

    def _phones_log(self, names: list[str]) -> str:
        parts = []
        for name in names:
            for suffix in ("messages", "errors"):
                path = self.workdir / f"{name}_{suffix}.log"
                text = path.read_text(errors="replace") if path.exists() else "(none)"
                parts.append(f"--- {name} {suffix}:\n{text[-1500:]}")
        return "\n".join(parts)

    async def _result(self, start: int, number: str, ok: bool, log: str) -> Result:
        events = self.bus.events[start:]
        started = [e for e in events if isinstance(e, CallStarted)]
        assert len(started) == 1, (started, log)
        call_id = started[0].call_id
        mine = [e for e in events if getattr(e, "call_id", None) == call_id]
        ends = {e.leg_id: e.reason for e in mine if isinstance(e, LegEnded)}
        answered = [e.leg_id for e in mine if isinstance(e, CallAnswered)]
        rings: list[Ring] = []
        winner: str | None = None
        for e in mine:
            if not isinstance(e, CallRinging):
                continue
            assert e.target.target_id is not None, e
            ext = self.by_id[e.target.target_id]
            wave = int(e.leg_id.rsplit(".", 1)[-1].split("t")[0].lstrip("w"))
            rings.append(Ring(wave, ext, ends.get(e.leg_id)))
            if e.leg_id in answered:
                winner = ext
        (ended,) = [e for e in mine if isinstance(e, CallEnded)]
        row = await self.journal_row(call_id)
        ids = {d.ext: d.employee_id for d in self.devices.values()}
        return Result(call_id, rings, winner, ended, row, ok, log, ids)

    async def journal_row(self, call_id: str) -> CallRecord:
        for _ in range(100):
            async with self.container.db.read() as s:
                row = await s.scalar(select(CallRecord).where(CallRecord.call_id == call_id))
            if row is not None and row.ended_at is not None:
                return row
            await asyncio.sleep(0.02)
        raise AssertionError(f"call {call_id} never closed in the journal")


def exts(rings: Sequence[Ring], end: LegEndReason | None) -> list[str]:
    return [r.ext for r in rings if r.end is end]


def dialer_xml(
    dialed: str,
    user: str,
    realm: str,
    *,
    delayed_offer: bool = False,
    replaces: str | None = None,
    talk_ms: int | None = None,
) -> str:
    """Phone ``user`` of ``realm`` dials ``dialed`` with digest (407 first), is answered
    (ringing on the way, or not), waits for the BYE (a pickup's, a feature code's prompt's) —
    or, with ``talk_ms``, talks that long and hangs up itself.
    ``delayed_offer``: its INVITE has no SDP and its ACK answers the 200's offer;
    ``replaces``: its INVITE carries that Replaces header (RFC 3891), as a BLF key's pickup."""
    body = sippkit._body(sdp=not delayed_offer)
    invite = f"""
      INVITE sip:{dialed}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:{user}@{realm}>;tag=[pid]P[call_number]
      To: <sip:{dialed}@{realm}>
      Call-ID: [call_id]
      CSeq: CSEQ INVITE
      Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
      AUTH{f"{chr(10)}      Replaces: {replaces}" if replaces else ""}
      Max-Forwards: 70
      {body}
"""
    ack = f"""
      ACK sip:{dialed}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: CSEQ ACK
      Max-Forwards: 70
      BODY
"""
    if talk_ms is None:
        end = f'<recv request="BYE"/>\n  {sippkit.OK_IN_DIALOG}'
    else:
        end = f'<pause milliseconds="{talk_ms}"/>\n  {sippkit.bye(dialed, 3)}\n'
        end += '  <recv response="200" crlf="true"/>'
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{user} dials {dialed} with digest">
  <send retrans="500"><![CDATA[
{invite.replace("CSEQ", "1").replace("AUTH", "X-No-Auth: yet")}
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <send><![CDATA[
{ack.replace("CSEQ", "1").replace("BODY", "Content-Length: 0")}
  ]]></send>
  <send retrans="500"><![CDATA[
{invite.replace("CSEQ", "2").replace("AUTH", "[authentication]")}
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
{ack.replace("CSEQ", "2").replace("BODY", sippkit._body(sdp=delayed_offer))}
  ]]></send>
  {end}
</scenario>
"""


@contextlib.asynccontextmanager
async def desk_rig(
    workdir: Path, *, slug: str, password: str, number: str, ring: dict[str, Any]
) -> AsyncIterator[Rig]:
    """A PBX on SQLite with account ``slug``: 101 and 102 (SIP password ``password``, their
    SIPp phones registered), both in the group "desk", and ``number`` whose scheme is the
    one ``ring`` step, then hang up."""
    container = await sqlite_container(workdir)
    admin, ids = await ring_account(
        container, slug, extensions=("101", "102"), password=password, number=number, steps=[ring]
    )
    desk = [MemberIn(employee_id=i) for i in ids.values()]
    await container.directory.create_group(admin, GroupIn(name="desk", members=desk))
    config = PbxConfig(sip_port=free_port(), media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    devices = {ext: Device(ext, i) for ext, i in ids.items()}
    rig = Rig(container, rt, f"{slug}.zvonar", password, devices, workdir)
    try:
        await rig.register_all()
        yield rig
    finally:
        await rt.stop()
        await container.aclose()  # the journal's writes land before the db goes


async def until(check: Callable[[], object], within: float = 8.0) -> None:
    """Wait (polling the loop) until ``check()`` is true; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
