"""End to end: an outbound call fails over between carriers, and a callee's refusal reaches
the employee as it came.

Employee 101 (SIPp, digest) dials 8 383 123-45-67. The account has two trunks, each a SIPp
carrier on loopback, "a-main" ranked first:

* a-main answers ``503 Service Unavailable`` (an overloaded carrier): the call goes out on
  b-spare at once, which answers; 101 talks and hangs up. The journal shows both attempts.
  Before, the one selected trunk's failure was the call's end (480).
* a-main answers ``486 Busy Here``: the callee is busy whatever the carrier, so 101 gets the
  486 itself (its phone plays busy; before: 480 "Temporarily Unavailable") and b-spare is
  never tried.
* 101 calls colleague 102, whose phone answers 486 (on another call): 101 hears busy too.
* The trunks' stored priority and E.164 prefixes, not their names, decide which one rings
  first: b-spare, while a-main is not even running.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import sippkit
from tests.e2e.test_early_media import _cmd
from tests.e2e.test_early_media import app as app  # the fixture
from tests.e2e.test_outbound_transfer import CALLER_XML
from tests.pbx.conftest import PASSWORD, seed_account
from tests.sip.peers.harness import (
    SIPP,
    finish_sipp,
    free_port,
    register_scenario,
    run_sipp,
    start_sipp,
    wait_bound,
)
from zvonar.accounts.access import Principal
from zvonar.calls.events import Direction, Disposition, LegEndReason
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import EmployeeIn, TrunkIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


def caller_refused(status: str, dialed: str = "83831234567") -> str:
    """101 dials ``dialed`` and gets ``status`` (ACKed), instead of an answer."""
    xml = CALLER_XML.replace("SDP_HERE", sippkit._SDP).replace("83831234567", dialed)
    head, _, _ = xml.partition('<recv response="200" rtd="true"/>')
    return f"""{head}<recv response="{status}"/>
  <send><![CDATA[

      ACK sip:{dialed}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
</scenario>
"""


async def _dial_out(
    app: Container,
    tmp_path: Path,
    first: str | None,
    *,
    spare_answers: bool,
    caller_xml: str,
    routing: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[tuple[str, bool]], Principal]:
    """101 dials out; a-main runs ``first`` (None: it is not even running), b-spare answers
    (or is not even running); ``routing``: a trunk's prefixes and priority. The SIPp runs'
    outcomes by name, and who reads the account's journal."""
    alpha = await seed_account(app, "alpha")
    ports = {"a-main": free_port(), "b-spare": free_port()}
    for name, port in ports.items():
        await app.directory.create_trunk(
            alpha.principal,
            TrunkIn(
                name=name,
                host="127.0.0.1",
                port=port,
                auth_mode=TrunkAuth.ip,
                allowed_sources=["192.0.2.1"],  # calls from them are not tested here
                **(routing or {}).get(name, {}),
            ),
        )
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    carriers = []
    try:
        scenarios = {} if first is None else {"a-main": first}
        if spare_answers:
            scenarios["b-spare"] = sippkit.uas_answer()
        for name, xml in scenarios.items():
            (tmp_path / f"{name}.xml").write_text(xml)
            cmd = _cmd(tmp_path, "", name, ports[name])
            carriers.append((name, cmd, await start_sipp(cmd, workdir=tmp_path)))
            await wait_bound(ports[name])
        (tmp_path / "caller.xml").write_text(caller_xml)
        auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"83831234567@{remote}")
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port(), *auth), workdir=tmp_path, name="caller"
        )
        runs = [("caller", caller.stats.successful == 1)]
        for name, cmd, proc in carriers:
            done = await finish_sipp(proc, cmd, workdir=tmp_path, name=name, wait=15)
            runs.append((name, done.stats.successful == 1))
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
    return runs, alpha.principal


async def test_a_failing_carrier_hands_the_call_to_the_spare_trunk(
    app: Container, tmp_path: Path
) -> None:
    caller_xml = CALLER_XML.replace("SDP_HERE", sippkit._SDP)
    first = sippkit.uas_refuses("503 Service Unavailable")
    runs, p = await _dial_out(app, tmp_path, first, spare_answers=True, caller_xml=caller_xml)
    assert runs == [("caller", True), ("a-main", True), ("b-spare", True)], runs
    (call,) = (await app.journal.list_calls(p, CallFilter())).items
    assert call.direction is Direction.outbound and call.disposition is Disposition.answered
    # whom in E.164 (101 dialled 8383…), and who dialled
    (anna,) = (await app.directory.list_employees(p, q="101")).items
    assert call.dialed == "+73831234567" and call.placed_by == anna.employee.id
    legs = (await app.journal.get_call(p, call.id)).legs
    assert [(leg.end_reason, leg.answered_at is not None) for leg in legs] == [
        (LegEndReason.failed, False),  # a-main's 503
        (LegEndReason.completed, True),  # b-spare
    ], legs


async def test_a_busy_callee_is_busy_for_the_employee(app: Container, tmp_path: Path) -> None:
    first = sippkit.uas_busy()
    runs, p = await _dial_out(
        app, tmp_path, first, spare_answers=False, caller_xml=caller_refused("486")
    )
    assert runs == [("caller", True), ("a-main", True)], runs  # 486 reached 101
    (call,) = (await app.journal.list_calls(p, CallFilter())).items
    assert call.disposition is Disposition.busy
    legs = (await app.journal.get_call(p, call.id)).legs
    assert [leg.end_reason for leg in legs] == [LegEndReason.busy]  # b-spare never tried


async def test_a_busy_colleague_is_busy_for_the_employee(app: Container, tmp_path: Path) -> None:
    alpha = await seed_account(app, "alpha")
    await app.directory.create_employee(
        alpha.principal, EmployeeIn(name="Boris", extension="102", sip_password=PASSWORD)
    )
    pbx_port, phone_port = free_port(), free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    try:
        (tmp_path / "register.xml").write_text(register_scenario("102", alpha.realm))
        reg = await run_sipp(
            _cmd(tmp_path, remote, "register", phone_port, "-au", "102", "-ap", PASSWORD,
                 "-auth_uri", alpha.realm),
            workdir=tmp_path, name="register",
        )  # fmt: skip
        assert reg.stats.successful == 1, reg.describe()
        (tmp_path / "b102.xml").write_text(sippkit.uas_busy())
        b_cmd = _cmd(tmp_path, "", "b102", phone_port)
        boris = await start_sipp(b_cmd, workdir=tmp_path)
        await wait_bound(phone_port)
        (tmp_path / "caller.xml").write_text(caller_refused("486", "102"))
        auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"102@{remote}")
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port(), *auth), workdir=tmp_path, name="caller"
        )
        busy = await finish_sipp(boris, b_cmd, workdir=tmp_path, name="b102", wait=10)
        assert caller.stats.successful == 1, caller.describe()  # 486, not 480
        assert busy.stats.successful == 1, busy.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.direction is Direction.internal and call.disposition is Disposition.busy


@pytest.mark.parametrize(
    "routing",
    [
        {"a-main": {"priority": 200}, "b-spare": {"priority": 10}},  # priority, not the name
        {"a-main": {"prefixes": ["+380"]}},  # a-main cannot dial +7383…
        {"a-main": {"prefixes": ["+7"]}, "b-spare": {"prefixes": ["+7383"], "priority": 500}},
    ],
    ids=["priority", "prefix-only", "longest-prefix"],
)
async def test_the_stored_prefixes_and_priorities_choose_the_trunk(
    app: Container, tmp_path: Path, routing: dict[str, dict[str, Any]]
) -> None:
    """b-spare takes 101's call to +7 383… at once: a-main is not even running, so had it been
    tried first (by name, as before) the journal would show its failed leg before b-spare's."""
    caller_xml = CALLER_XML.replace("SDP_HERE", sippkit._SDP)
    runs, p = await _dial_out(
        app, tmp_path, None, spare_answers=True, caller_xml=caller_xml, routing=routing
    )
    assert runs == [("caller", True), ("b-spare", True)], runs
    (call,) = (await app.journal.list_calls(p, CallFilter())).items
    assert call.disposition is Disposition.answered
    legs = (await app.journal.get_call(p, call.id)).legs
    assert [(leg.end_reason, leg.answered_at is not None) for leg in legs] == [
        (LegEndReason.completed, True)
    ], legs
