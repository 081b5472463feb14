"""End to end: a phone that forwards by 302 (its own "forward my calls" setting).

A SIPp carrier calls the number whose scheme rings 101; 101's phone (SIPp) answers
``302 Moved Temporarily`` with ``Contact: <sip:102@…>``; 102 (SIPp) must ring in its place
and answer, and the journal must show 101's leg ``forwarded`` and 102's answered. A phone
that forwards to itself is followed at most three times, then the call fails as any
unanswered one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.test_early_media import _cmd
from tests.e2e.test_early_media import app as app  # the fixture
from tests.pbx.conftest import NUMBER, PASSWORD, seed_account
from tests.sip.peers.harness import (
    SIPP,
    finish_sipp,
    free_port,
    register_scenario,
    run_sipp,
    start_sipp,
    wait_bound,
)
from zvonar.calls.events import Disposition, LegEndReason
from zvonar.container import Container
from zvonar.directory.schemas import EmployeeIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


def forwards_to(user: str) -> str:
    """A phone set to forward every call to ``user``: 302 with that Contact."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="phone forwarding by 302">
  <recv request="INVITE"/>
  <send><![CDATA[

      SIP/2.0 302 Moved Temporarily
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]UAS[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{user}@alpha.zvonar>
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>
</scenario>
"""


async def _register(tmp: Path, remote: str, realm: str, ext: str, port: int) -> None:
    (tmp / f"reg{ext}.xml").write_text(register_scenario(ext, realm))
    reg = await run_sipp(
        _cmd(tmp, remote, f"reg{ext}", port, "-au", ext, "-ap", PASSWORD, "-auth_uri", realm),
        workdir=tmp,
        name=f"reg{ext}",
    )
    assert reg.stats.successful == 1, reg.describe()


@pytest.mark.parametrize("to_self", [False, True])
async def test_a_phone_that_forwards_by_302_has_its_contact_rung(
    app: Container, tmp_path: Path, to_self: bool
) -> None:
    alpha = await seed_account(app, "alpha")
    await app.directory.create_employee(
        alpha.principal, EmployeeIn(name="Boris", extension="102", sip_password=PASSWORD)
    )
    pbx_port, p101, p102 = free_port(), free_port(), free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    sipps = []
    try:
        await _register(tmp_path, remote, alpha.realm, "101", p101)
        await _register(tmp_path, remote, alpha.realm, "102", p102)
        # Forwarding to itself, 101 is rung once and then three times more (the limit).
        calls_101 = 4 if to_self else 1
        (tmp_path / "a101.xml").write_text(forwards_to("101" if to_self else "102"))
        a_cmd = _cmd(tmp_path, "", "a101", p101, "-m", str(calls_101))
        sipps.append(("a101", a_cmd, await start_sipp(a_cmd, workdir=tmp_path)))
        if not to_self:
            (tmp_path / "b102.xml").write_text(sippkit.uas_answer())
            b_cmd = _cmd(tmp_path, "", "b102", p102)
            sipps.append(("b102", b_cmd, await start_sipp(b_cmd, workdir=tmp_path)))
            await wait_bound(p102)
        await wait_bound(p101)
        xml = sippkit.uac(NUMBER.lstrip("+"), talk_ms=300)
        if to_self:  # the call fails: the caller gets 480, and ACKs it
            head, _, _ = xml.partition('<recv response="200" rtd="true"/>')
            xml = (
                head
                + '<recv response="480"/>\n  '
                + sippkit.ack(NUMBER.lstrip("+"))
                + "\n</scenario>\n"
            )
        (tmp_path / "caller.xml").write_text(xml)
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port()), workdir=tmp_path, name="caller"
        )
        runs = {
            name: await finish_sipp(proc, cmd, workdir=tmp_path, name=name, wait=10)
            for name, cmd, proc in sipps
        }
        sipps.clear()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        for _name, _cmd_, proc in sipps:
            proc.kill()
            await proc.wait()
        await rt.stop()
    assert caller.stats.successful == 1, caller.describe()
    for name, run in runs.items():
        assert run.stats.successful == (calls_101 if name == "a101" else 1), run.describe()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    legs = (await app.journal.get_call(alpha.principal, call.id)).legs
    ends = [(leg.target_display, leg.end_reason) for leg in legs]
    if to_self:
        assert call.disposition is Disposition.failed
        # Three redirects followed; the fourth 302 ends the leg as a failure.
        assert ends == [("Anna", LegEndReason.forwarded)] * 3 + [("Anna", LegEndReason.failed)]
    else:
        assert call.disposition is Disposition.answered
        assert ends == [("Anna", LegEndReason.forwarded), ("Boris", LegEndReason.completed)]
