"""End to end: a carrier that challenges our INVITEs (RFC 3261 §22.2-22.3), SIPp as the carrier.

Most carriers ask for the account's credentials on every call (401, or 407 Proxy
Authentication Required), even on a trunk that knows us by IP. The SIPp carrier challenges the
first INVITE, checks the second — the digest with ``verifyauth`` (MD5, qop=auth) for 401, the
shape of Proxy-Authorization for 407 — and that its CSeq went one up, answers, and checks
that the ACK of its 200 carries the same credentials (§13.2.2.4).

* outbound: extension 101 (SIPp, digest to the PBX) dials 8 383 123-45-67 through the trunk;
* a scheme step rings an external number through the trunk, then 101;
* a carrier that challenges the credentials again (they are wrong for it): the PBX does not
  loop — the fork ends after the second challenge and the scheme rings 101.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.test_outbound_transfer import CALLER_XML
from tests.pbx.conftest import NUMBER, PASSWORD, seed_account
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
from zvonar.calls.events import Direction, Disposition, TargetKind
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

CARRIER_USER, CARRIER_PASSWORD, CARRIER_REALM = "acct-4411", "carrier-secret-7", "sip.carrier.test"
EXTERNAL = "+73831234567"


_CHALLENGE = {
    401: ("401 Unauthorized", "WWW-Authenticate", "Authorization"),
    407: ("407 Proxy Authentication Required", "Proxy-Authenticate", "Proxy-Authorization"),
}


def _challenge(status: int, nonce: str) -> str:
    line, header, _ = _CHALLENGE[status]
    return f"""<send><![CDATA[

      SIP/2.0 {line}{sippkit.REPLY}
      {header}: Digest realm="{CARRIER_REALM}", nonce="{nonce}", algorithm=MD5, qop="auth"
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>"""


def carrier_xml(status: int, *, accept: bool) -> str:
    """Challenge with ``status``, check the credentials; ``accept``: ring and answer, else
    challenge again (what a carrier does with credentials it does not take) and expect
    nothing more. SIPp's ``verifyauth`` reads only ``Authorization``: for 407 the scenario
    checks the shape of ``Proxy-Authorization`` (user, realm, nonce, a response), and the 401
    runs prove the digest itself right."""
    _, _, answer = _CHALLENGE[status]
    shape = (
        f'<ereg regexp="^[[:space:]]*Digest .*username=.{CARRIER_USER}..*realm=.{CARRIER_REALM}.'
        f'.*nonce=.n1abcdef0123..*response=" search_in="hdr" header="{answer}:" '
        'check_it="true" assign_to="shape"/>'
    )
    verify = (
        f'<verifyauth assign_to="ok" username="{CARRIER_USER}" password="{CARRIER_PASSWORD}"/>'
        if status == 401
        else ""
    )
    second = (
        f'<recv request="INVITE"><action>{shape}{verify}'
        '<ereg regexp="^[[:space:]]*2 INVITE" search_in="hdr" header="CSeq:" check_it="true" '
        'assign_to="cseq"/>'
        "</action></recv>"
    )
    if not accept:
        return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier refusing the credentials">
  <recv request="INVITE"/>
  {_challenge(status, "n1abcdef0123")}
  {second}
  {_challenge(status, "n2abcdef0123")}
  <pause milliseconds="1500"/>
  <Reference variables="shape,cseq{",ok" if verify else ""}"/>
</scenario>
"""
    check_ok = (
        f"""<nop hide="true" test="ok" next="good"/>
  <send next="end"><![CDATA[

      SIP/2.0 403 Bad Credentials{sippkit.REPLY}
      Content-Length: 0

  ]]></send>
  <label id="good"/>"""
        if verify
        else ""
    )
    # The rest is an answering callee's (sippkit.uas_answer), its ACK checked for credentials.
    ack = (
        f'<recv request="ACK"><action><ereg regexp="Digest .*username=.{CARRIER_USER}." '
        f'search_in="hdr" header="{answer}:" check_it="true" assign_to="ackauth"/>'
        "</action></recv>"
    )
    challenged = f'<recv request="INVITE"/>{_challenge(status, "n1abcdef0123")}{second}{check_ok}'
    xml = sippkit.uas_answer()
    xml = xml.replace('<recv request="ACK"/>', ack, 1)  # first: the challenge has ACKs too
    xml = xml.replace('<recv request="INVITE"/>', challenged, 1)
    end = '<label id="end"/><Reference variables="shape,cseq,ackauth"/></scenario>'
    return xml.replace("</scenario>", end, 1)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Container]:
    container = await sqlite_container(tmp_path)
    yield container
    await container.aclose()  # the journal's writes land before the db goes


def _cmd(tmp: Path, remote: str, name: str, port: int, *extra: str, timeout: int = 20) -> list[str]:
    return sipp_command(
        remote, workdir=tmp, local_port=port, calls=1, timeout=timeout,
        scenario_file=tmp / f"{name}.xml", name=name, extra=extra,
    )  # fmt: skip


async def _trunk(app: Container, principal: object, port: int) -> None:
    # Known by IP for what it sends us, and still challenging what we send it.
    await app.directory.create_trunk(
        principal,  # type: ignore[arg-type]
        TrunkIn(
            name="carrier",
            host="127.0.0.1",
            port=port,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["192.0.2.1"],  # never contacted: calls from it are not tested
            username=CARRIER_USER,
            password=CARRIER_PASSWORD,
        ),
    )


async def test_an_outbound_call_answers_the_carriers_challenge(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha")
    carrier_port = free_port()
    await _trunk(app, alpha.principal, carrier_port)
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    try:
        (tmp_path / "caller.xml").write_text(CALLER_XML.replace("SDP_HERE", sippkit._SDP))
        (tmp_path / "carrier.xml").write_text(carrier_xml(401, accept=True))
        carrier_cmd = _cmd(tmp_path, "", "carrier", carrier_port)
        carrier = await start_sipp(carrier_cmd, workdir=tmp_path)
        await wait_bound(carrier_port)
        auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"83831234567@{remote}")
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port(), *auth), workdir=tmp_path, name="caller"
        )
        done = await finish_sipp(carrier, carrier_cmd, workdir=tmp_path, name="carrier", wait=20)
        assert caller.returncode == 0 and caller.stats.successful == 1, caller.describe()
        assert done.stats.successful == 1 and done.stats.failed == 0, done.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.direction is Direction.outbound
    assert call.disposition is Disposition.answered


@pytest.mark.parametrize(
    ("status", "accept"),
    [(407, True), (401, False), (407, False)],
    ids=["407-accepted", "401-challenged-again", "407-challenged-again"],
)
async def test_a_scheme_rings_an_external_number_through_a_challenging_carrier(
    app: Container, tmp_path: Path, status: int, accept: bool
) -> None:
    alpha = await seed_account(app, "alpha")
    carrier_port = free_port()
    await _trunk(app, alpha.principal, carrier_port)
    scheme = await app.routing.create_scheme(
        alpha.principal,
        "Carrier first",
        {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"number": EXTERNAL}], "timeout": 10},
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                ]
            },
            "final": {"type": "hangup"},
        },
    )
    await app.routing.assign(alpha.principal, alpha.number_id, scheme.id)
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    phone_port = free_port()
    try:
        (tmp_path / "register.xml").write_text(
            register_scenario("101", alpha.realm, expires=300)  # answers if the carrier did not
        )
        reg = await run_sipp(
            _cmd(tmp_path, remote, "register", phone_port, "-au", "101", "-ap", PASSWORD,
                 "-auth_uri", alpha.realm),
            workdir=tmp_path, name="register",
        )  # fmt: skip
        assert reg.stats.successful == 1, reg.describe()
        (tmp_path / "phone.xml").write_text(sippkit.uas_answer())
        phone_cmd = _cmd(tmp_path, "", "phone", phone_port, timeout=25)
        phone = await start_sipp(phone_cmd, workdir=tmp_path)
        (tmp_path / "carrier.xml").write_text(carrier_xml(status, accept=accept))
        carrier_cmd = _cmd(tmp_path, "", "carrier", carrier_port)
        carrier = await start_sipp(carrier_cmd, workdir=tmp_path)
        await wait_bound(carrier_port)
        await wait_bound(phone_port)
        (tmp_path / "caller.xml").write_text(sippkit.uac(NUMBER.lstrip("+"), talk_ms=500))
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port()), workdir=tmp_path, name="caller"
        )
        done = await finish_sipp(carrier, carrier_cmd, workdir=tmp_path, name="carrier", wait=20)
        assert caller.returncode == 0 and caller.stats.successful == 1, caller.describe()
        assert done.stats.successful == 1 and done.stats.failed == 0, done.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
        if accept:
            phone.kill()  # never rung
            await phone.wait()
        else:
            rang = await finish_sipp(phone, phone_cmd, workdir=tmp_path, name="phone", wait=10)
            assert rang.stats.successful == 1, rang.describe()
    finally:
        await rt.stop()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is Disposition.answered
    view = await app.journal.get_call(alpha.principal, call.id)
    answered = [leg for leg in view.legs if leg.answered_at]
    assert len(answered) == 1
    if accept:
        assert answered[0].target_kind is TargetKind.external
        assert answered[0].target_display == EXTERNAL
    else:
        assert answered[0].target_kind is TargetKind.employee
        assert answered[0].target_id == alpha.employee_id
