"""A rig for the queue, IVR and rating end-to-end tests (and the SIPp queue bench).

Builds on ``schemes_kit``: one PBX, agents' phones are SIPp processes registered with digest.
Here several calls run at once, so an agent's phone is one SIPp UAS serving ``calls`` calls in
a row (answer after a delay, talk, hang up itself: the agent's BYE starts their wrap-up and,
for a rated scheme, the caller's rating). Carrier callers are SIPp UACs built from a few
actions after the PBX answers them (it answers at once to play hold music): pause, send an
RFC 4733 digit (SIPp replays a pcap of the event), hang up, or wait for the PBX's BYE.

What happened is read from the bus (``CallStarted`` gives a call's caller number, the ACD's
``QueueCallerChanged`` the queue moments, ``CallAnswered`` who answered), the journal and the
stored queue facts. Every SIPp run is bounded by ``-timeout``; phones are killed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e import sippkit
from tests.e2e.schemes_kit import _INVITE, Device, Rig, sipp_cmd
from tests.sip.peers.harness import (
    SippRun,
    free_port,
    register_scenario,
    run_sipp,
    sipp_command,
    sipp_media_port,
    wait_bound,
)
from zvonar.acd.events import QueueCallerChanged
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRated,
    CallStarted,
    Direction,
)
from zvonar.journal.models import CallRecord

__all__ = [
    "Audio",
    "Bye",
    "Digit",
    "Pause",
    "QueueRig",
    "WaitBye",
    "agent_scenario",
    "caller_scenario",
    "ring_scenario",
]

DTMF_DIR = Path("/usr/share/sip-tester")
_DTMF_NAMES = {"*": "star", "#": "pound"}


def dtmf_pcap(digit: str) -> Path:
    """SIPp's own capture of one RFC 4733 event (PT 101), shipped with sip-tester."""
    return DTMF_DIR / f"dtmf_2833_{_DTMF_NAMES.get(digit, digit)}.pcap"


@dataclass(frozen=True)
class Pause:
    ms: int


@dataclass(frozen=True)
class Digit:
    """Send one digit as RFC 4733 events (the pcap lasts ~0.3 s; SIPp plays it in the
    background, so a pause should follow before the next digit)."""

    digit: str


@dataclass(frozen=True)
class InfoDigit:
    """Send one digit by SIP INFO (``application/dtmf-relay``), as phones set to "SIP INFO"
    DTMF do, and take its 200."""

    digit: str


@dataclass(frozen=True)
class Bye:
    """The caller hangs up."""


@dataclass(frozen=True)
class WaitBye:
    """Wait for the PBX to hang up (after the agent's BYE, a rating, a callback prompt)."""


@dataclass(frozen=True)
class Audio:
    """Start playing a pcap of RTP (``sippkit.write_tone_pcap``) in the background: the
    caller talks while the next actions run."""

    pcap: Path


Action = Pause | Digit | InfoDigit | Bye | WaitBye | Audio


def caller_scenario(dialed: str, caller: str, actions: Sequence[Action]) -> str:
    """Call ``dialed`` from ``caller``; once answered (200, ACKed) perform ``actions``."""
    body: list[str] = []
    cseq = 1  # the INVITE's; each request of ours in the dialog takes the next
    for a in actions:
        if isinstance(a, Pause):
            body.append(f'<pause milliseconds="{a.ms}"/>')
        elif isinstance(a, InfoDigit):
            cseq += 1
            body.append(sippkit.info_digit(dialed, a.digit, cseq))
            body.append('<recv response="200"/>')
        elif isinstance(a, Digit):
            body.append(
                f'<nop><action><exec play_pcap_audio="{dtmf_pcap(a.digit)}"/></action></nop>'
            )
        elif isinstance(a, Bye):
            cseq += 1
            body.append(sippkit.bye(dialed, cseq))
            body.append('<recv response="200" crlf="true"/>')
        elif isinstance(a, Audio):
            body.append(f'<nop><action><exec play_pcap_audio="{a.pcap}"/></action></nop>')
        else:
            body.append('<recv request="BYE"/>')
            body.append(sippkit.OK_IN_DIALOG)
    invite = _INVITE.format(dialed=dialed, caller=caller).replace(
        "m=audio [media_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000",
        "m=audio [media_port] RTP/AVP 0 101\n      a=rtpmap:0 PCMU/8000\n"
        "      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15",
    )
    steps = "\n  ".join(body)
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="queue caller">
  <send retrans="500"><![CDATA[
{invite}
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  {sippkit.ack(dialed)}
  {steps}
</scenario>
"""


def agent_scenario(
    ext: str,
    *,
    answer_ms: int,
    talk_ms: int,
    pcap: Path | None = None,
    media_port: int | None = None,
) -> str:
    """An agent's phone: ring ``answer_ms``, answer, talk ``talk_ms`` (playing ``pcap`` if
    given), hang up (BYE in the dialog the PBX's INVITE made: its From, with tag, is our
    To). ``media_port``: its SDP names that loopback port for its audio (a test's socket
    listening to what the agent hears) instead of SIPp's own."""
    play = f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>' if pcap else ""
    sdp = sippkit._SDP
    if media_port is not None:
        sdp = sdp.replace("[media_port]", str(media_port)).replace(
            "c=IN IP[media_ip_type] [media_ip]", "c=IN IP4 127.0.0.1"
        )
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="agent answers, talks, hangs up">
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp="&lt;.*" search_in="hdr" header="From:" assign_to="pbx_from"/>
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 180 Ringing{sippkit.REPLY}
      Content-Length: 0

  ]]></send>
  <pause milliseconds="{answer_ms}"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK{sippkit.REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sdp}

  ]]></send>
  <recv request="ACK"/>
  {play}
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{ext}@[local_ip]:[local_port]>;tag=[pid]UAS[call_number]
      To: [$pbx_from]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""


def ring_scenario() -> str:
    """An agent who lets every offer ring out (CANCEL → 200, 487, ACK)."""
    return sippkit.uas_ring_forever()


@dataclass
class CallerRun:
    caller: str
    run: SippRun

    @property
    def ok(self) -> bool:
        return self.run.stats.successful == 1


@dataclass(frozen=True)
class CallView:
    """One inbound call as the bus and journal tell it."""

    call_id: str
    caller: str
    answered_by: str | None  # extension
    ended: CallEnded
    queue: list[str]  # QueueCallerChanged.what, in order
    rated: int | None
    row: CallRecord


class QueueRig(Rig):
    """``schemes_kit.Rig`` with phones that serve many calls and callers that run at once."""

    async def start_phones(
        self, scenarios: dict[str, str], *, calls: int = 1, bound: float = 60
    ) -> list[asyncio.subprocess.Process]:
        """Start a SIPp UAS on each extension's registered port (``calls`` calls each)."""
        procs = []
        for ext, xml_text in scenarios.items():
            d = self.devices[ext]
            name = self._name(f"phone{ext}")
            xml = self.workdir / f"{name}.xml"
            xml.write_text(xml_text)
            cmd = sipp_command(
                "",
                workdir=self.workdir,
                local_port=d.port,
                calls=calls,
                timeout=int(bound),
                scenario_file=xml,
                name=name,
                extra=("-mp", str(sipp_media_port())),
            )
            procs.append(
                await asyncio.create_subprocess_exec(
                    *cmd,
                    cwd=self.workdir,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
        for ext in scenarios:
            await wait_bound(self.devices[ext].port)
        return procs

    async def register(self, *exts: str) -> None:
        """Register only these extensions' phones (``register_all`` does every device)."""

        async def one(d: Device) -> None:
            name = self._name(f"reg{d.ext}")
            xml = self.workdir / f"{name}.xml"
            xml.write_text(register_scenario(d.ext, self.realm, expires=600))
            cmd = sipp_cmd(self.remote, xml, port=d.port, workdir=self.workdir, name=name)
            cmd += ["-au", d.ext, "-ap", self.password, "-auth_uri", self.realm]
            run = await run_sipp(cmd, workdir=self.workdir, name=name)
            assert run.stats.successful == 1, run.describe()

        await asyncio.gather(*(one(self.devices[e]) for e in exts))
        for e in exts:
            assert self.rt.lookup(f"sip:{e}@{self.realm}"), f"{e} not registered"

    async def start_customer(self, port: int, *, bound: float = 60) -> asyncio.subprocess.Process:
        """A customer's phone behind the "trunk": answers one call, waits for the BYE."""
        name = self._name("customer")
        xml = self.workdir / f"{name}.xml"
        xml.write_text(sippkit.uas_answer())
        cmd = sipp_command(
            "",
            workdir=self.workdir,
            local_port=port,
            calls=1,
            timeout=int(bound),
            scenario_file=xml,
            name=name,
            extra=("-mp", str(sipp_media_port())),
        )
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await wait_bound(port)
        return proc

    @staticmethod
    async def stop_phones(procs: list[asyncio.subprocess.Process]) -> None:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        for p in procs:
            await p.wait()

    async def dial(
        self, number: str, caller: str, actions: Sequence[Action], *, bound: float = 40
    ) -> CallerRun:
        """One carrier call (SIPp gives up after ``bound`` seconds)."""
        name = self._name(f"caller{caller[-4:]}")
        xml = self.workdir / f"{name}.xml"
        xml.write_text(caller_scenario(number, caller, actions))
        cmd = sipp_command(
            self.remote,
            workdir=self.workdir,
            local_port=free_port(),
            calls=1,
            timeout=int(bound),
            scenario_file=xml,
            name=name,
            extra=("-mp", str(sipp_media_port())),
        )
        return CallerRun(caller, await run_sipp(cmd, workdir=self.workdir, name=name))

    async def dial_staggered(
        self,
        number: str,
        callers: Sequence[tuple[str, Sequence[Action]]],
        *,
        gap: float = 0.6,
        bound: float = 40,
    ) -> list[CallerRun]:
        """Start the callers ``gap`` seconds apart (their arrival order), wait for all."""

        async def later(i: int, caller: str, actions: Sequence[Action]) -> CallerRun:
            await asyncio.sleep(i * gap)
            return await self.dial(number, caller, actions, bound=bound)

        return await asyncio.gather(*(later(i, c, a) for i, (c, a) in enumerate(callers)))

    def mark(self) -> int:
        return len(self.bus.events)

    async def calls_since(
        self, start: int, *, idle: float = 20, direction: Direction = Direction.inbound
    ) -> dict[str, CallView]:
        """Every call of ``direction`` started since ``start``, by caller number (waits for
        the B2BUA to be idle and the journal to close the rows)."""
        await asyncio.wait_for(self.rt.b2bua.wait_idle(), idle)
        events = self.bus.events[start:]
        out: dict[str, CallView] = {}
        for s in [e for e in events if isinstance(e, CallStarted) and e.direction is direction]:
            mine = [e for e in events if getattr(e, "call_id", None) == s.call_id]
            by = [e.by for e in mine if isinstance(e, CallAnswered) and e.by is not None]
            (ended,) = [e for e in mine if isinstance(e, CallEnded)]
            queue = [
                e.what
                for e in events
                if isinstance(e, QueueCallerChanged) and e.call_id == s.call_id
            ]
            rated = [e.score for e in mine if isinstance(e, CallRated)]
            out[s.caller] = CallView(
                s.call_id,
                s.caller,
                self.by_id.get(by[0]) if by else None,
                ended,
                queue,
                rated[0] if rated else None,
                await self.journal_row(s.call_id),
            )
        return out

    def answer_order(self, start: int) -> list[str]:
        """Callers in the order an agent answered them."""
        events = self.bus.events[start:]
        caller_of = {e.call_id: e.caller for e in events if isinstance(e, CallStarted)}
        return [
            caller_of[e.call_id]
            for e in events
            if isinstance(e, CallAnswered) and e.by is not None and e.call_id in caller_of
        ]

    def answered_by(self, start: int) -> list[tuple[str, str]]:
        """(caller, agent extension) in answer order."""
        events = self.bus.events[start:]
        caller_of = {e.call_id: e.caller for e in events if isinstance(e, CallStarted)}
        return [
            (caller_of[e.call_id], self.by_id[e.by])
            for e in events
            if isinstance(e, CallAnswered) and e.by is not None and e.call_id in caller_of
        ]
