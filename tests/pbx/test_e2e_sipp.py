"""End to end: a real app container, the PBX runtime, SIPp phones on loopback.

SIPp registers as 101@alpha.zvonar with digest auth, then answers as a UAS on the same port;
a second SIPp calls +74951234567 at the PBX; the scheme rings 101; the journal shows one
answered call with the leg to 101. Every SIPp run is bounded (-m 1, -timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.sip.peers.harness import (
    SIPP,
    finish_sipp,
    free_port,
    register_scenario,
    run_sipp,
    sipp_command,
    start_sipp,
    wait_bound,
)
from zvonar.calls.events import Disposition, TargetKind
from zvonar.container import Container
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

from .conftest import NUMBER, PASSWORD, seed_account

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Container]:
    container = await sqlite_container(tmp_path)
    yield container
    await container.aclose()  # the journal's writes land before the db goes


async def test_registered_sipp_answers_a_call_to_the_number(app: Container, tmp_path: Path) -> None:
    alpha = await seed_account(app, "alpha", ring_seconds=10)
    pbx_port = free_port()
    # SIPp 3.6 answers only the first challenge and knows only MD5 of the digest algorithms.
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    try:
        phone_port = free_port()
        register = register_scenario("101", "alpha.zvonar", expires=300)
        (tmp_path / "register.xml").write_text(register)
        (tmp_path / "answer.xml").write_text(sippkit.uas_answer())
        (tmp_path / "caller.xml").write_text(sippkit.uac(NUMBER, talk_ms=1000))

        def cmd(remote_: str, name: str, port: int, *extra: str) -> list[str]:
            return sipp_command(
                remote_,
                workdir=tmp_path,
                local_port=port,
                calls=1,
                timeout=15,
                scenario_file=tmp_path / f"{name}.xml",
                name=name,
                extra=extra,
            )

        reg = await run_sipp(
            # SIPp's digest uri defaults to remote_ip:port; ours checks the Request-URI.
            cmd(
                remote,
                "register",
                phone_port,
                "-au",
                "101",
                "-ap",
                PASSWORD,
                "-auth_uri",
                "alpha.zvonar",
            ),
            workdir=tmp_path,
            name="register",
        )
        assert reg.stats.successful == 1, reg.describe()
        (binding,) = rt.lookup("sip:101@alpha.zvonar")
        assert binding.source == ("127.0.0.1", phone_port)

        uas_cmd = cmd("", "answer", phone_port)
        uas = await start_sipp(uas_cmd, workdir=tmp_path)
        await wait_bound(phone_port)
        caller = await run_sipp(cmd(remote, "caller", free_port()), workdir=tmp_path, name="caller")
        answered = await finish_sipp(uas, uas_cmd, workdir=tmp_path, name="answer", wait=20)
        assert caller.returncode == 0 and caller.stats.successful == 1, caller.describe()
        assert answered.stats.successful == 1, answered.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()

    listing = await app.journal.list_calls(alpha.principal, CallFilter())
    assert listing.total == 1
    (call,) = listing.items
    assert call.disposition is Disposition.answered
    assert call.dialed == NUMBER and call.dialed_label == "Sales"
    assert call.answered_by == alpha.employee_id
    assert call.scheme_path and call.scheme_path[0].startswith("Main")
    view = await app.journal.get_call(alpha.principal, call.id)
    assert [(leg.target_kind, leg.target_id) for leg in view.legs if leg.answered_at] == [
        (TargetKind.employee, alpha.employee_id)
    ]


_REFUSED_CALL = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="zvonar overloaded">
  INVITE_NO_SDP
  <recv response="503">
    <action>
      <ereg regexp="Retry-After: 2" search_in="msg" check_it="true" assign_to="ra"/>
    </action>
  </recv>
  <Reference variables="ra"/>
  <send><![CDATA[

      ACK sip:NUMBER@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]UAC[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
</scenario>
"""


def refused_call(number: str) -> str:
    """A caller that expects 503 + Retry-After: 2 to its INVITE (overload), and ACKs it."""
    scenario = _REFUSED_CALL.replace("INVITE_NO_SDP", sippkit.invite(number, offer=False))
    return scenario.replace("NUMBER", number)


async def test_an_overloaded_pbx_answers_503_with_retry_after_and_starts_no_call(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha", ring_seconds=10)
    pbx_port = free_port()
    rt = await start_pbx(app, PbxConfig(sip_port=pbx_port, media_timeout=0))
    try:
        await rt.lag.stop()  # the test, not the loop, says the PBX is overloaded
        guard = rt.b2bua.overload
        assert guard is not None
        for _ in range(guard.late_ticks):
            guard.observe(1.0)
        (tmp_path / "refused.xml").write_text(refused_call(NUMBER))
        run = await run_sipp(
            sipp_command(
                f"127.0.0.1:{pbx_port}",
                workdir=tmp_path,
                local_port=free_port(),
                calls=1,
                timeout=15,
                scenario_file=tmp_path / "refused.xml",
                name="refused",
            ),
            workdir=tmp_path,
            name="refused",
        )
        assert run.returncode == 0 and run.stats.successful == 1, run.describe()
        assert guard.shed == 1 and rt.b2bua.calls == {}
    finally:
        await rt.stop()
    listing = await app.journal.list_calls(alpha.principal, CallFilter())
    assert listing.total == 0  # shed before any call existed


async def test_a_carrier_calling_our_registered_contact_reaches_the_number_in_to(
    app: Container, tmp_path: Path
) -> None:
    # Registered at a carrier as "acct-4411", its calls come to sip:acct-4411@<us>; the number
    # is in To. The scheme of that number rings 101; the journal says which number was dialed.
    alpha = await seed_account(app, "alpha", ring_seconds=10)
    pbx_port = free_port()
    rt = await start_pbx(
        app, PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    )
    remote = f"127.0.0.1:{pbx_port}"
    try:
        phone_port = free_port()
        (tmp_path / "register.xml").write_text(
            register_scenario("101", "alpha.zvonar", expires=300)
        )
        reg = await run_sipp(
            sipp_command(
                remote, workdir=tmp_path, local_port=phone_port, calls=1, timeout=15,
                scenario_file=tmp_path / "register.xml", name="register",
                extra=("-au", "101", "-ap", PASSWORD, "-auth_uri", "alpha.zvonar"),
            ),
            workdir=tmp_path, name="register",
        )  # fmt: skip
        assert reg.stats.successful == 1, reg.describe()
        (tmp_path / "answer.xml").write_text(sippkit.uas_answer())
        carrier = sippkit.uac("acct-4411", talk_ms=500).replace(
            "To: <sip:acct-4411@[remote_ip]:[remote_port]>",
            f"To: <sip:{NUMBER}@sip.carrier.example;user=phone>",
        )
        assert f"To: <sip:{NUMBER}@" in carrier
        (tmp_path / "caller.xml").write_text(carrier)
        uas_cmd = sipp_command(
            "", workdir=tmp_path, local_port=phone_port, calls=1, timeout=15,
            scenario_file=tmp_path / "answer.xml", name="answer",
        )  # fmt: skip
        uas = await start_sipp(uas_cmd, workdir=tmp_path)
        await wait_bound(phone_port)
        caller = await run_sipp(
            sipp_command(
                remote, workdir=tmp_path, local_port=free_port(), calls=1, timeout=15,
                scenario_file=tmp_path / "caller.xml", name="caller",
            ),
            workdir=tmp_path, name="caller",
        )  # fmt: skip
        answered = await finish_sipp(uas, uas_cmd, workdir=tmp_path, name="answer", wait=20)
        assert caller.returncode == 0 and caller.stats.successful == 1, caller.describe()
        assert answered.stats.successful == 1, answered.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is Disposition.answered and call.answered_by == alpha.employee_id
    assert call.dialed == NUMBER and call.dialed_label == "Sales"
