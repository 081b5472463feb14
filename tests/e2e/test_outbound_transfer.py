"""End to end, outbound: a real app container and PBX runtime; SIPp as extension 101 dials
8 383 123-45-67 with digest auth (407 in alpha.zvonar); a SIPp UAS plays the carrier's trunk
and checks that From and P-Asserted-Identity carry the account's Novosibirsk number.

The extension's blind transfer of the customer it called is in test_outbound_refer.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.pbx.conftest import PASSWORD, seed_account
from tests.sip.peers.harness import (
    SIPP,
    finish_sipp,
    free_port,
    run_sipp,
    sipp_command,
    start_sipp,
    wait_bound,
)
from zvonar.calls.events import Direction, Disposition
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import NumberIn, TrunkIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

CALLEE = "+73831234567"
NSK = "+73832000000"

CALLER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="101 dials out with digest">
  <send retrans="500"><![CDATA[

      INVITE sip:83831234567@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:101@alpha.zvonar>;tag=[pid]O[call_number]
      To: <sip:83831234567@alpha.zvonar>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:101@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      SDP_HERE

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <send><![CDATA[

      ACK sip:83831234567@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:101@alpha.zvonar>;tag=[pid]O[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

      INVITE sip:83831234567@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:101@alpha.zvonar>;tag=[pid]O[call_number]
      To: <sip:83831234567@alpha.zvonar>
      Call-ID: [call_id]
      CSeq: 2 INVITE
      Contact: <sip:101@[local_ip]:[local_port];transport=[transport]>
      [authentication]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      SDP_HERE

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[

      ACK sip:83831234567@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <pause milliseconds="500"/>
  <send retrans="500"><![CDATA[

      BYE sip:83831234567@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def trunk_xml(login: str | None = None, *, private: bool = False) -> str:
    """The carrier: answers only if From and P-Asserted-Identity show the Novosibirsk number
    (check_it fails the SIPp call otherwise); with a ``login`` (Trunk.from_user), From must
    name it instead, and P-Asserted-Identity the number; ``private`` (*67): From anonymous,
    ``Privacy: id``, the number in P-Asserted-Identity still."""
    from_user = login or ("anonymous" if private else "\\+73832000000")
    privacy = (
        '<ereg regexp="^ *id" search_in="hdr" header="Privacy:" check_it="true" assign_to="v"/>'
        if private
        else ""
    )
    check = (
        '<recv request="INVITE"><action>'
        f'<ereg regexp="sip:{from_user}@" search_in="hdr" header="From:" check_it="true" '
        'assign_to="f"/>'
        '<ereg regexp="sip:\\+73832000000@" search_in="hdr" header="P-Asserted-Identity:" '
        'check_it="true" assign_to="p"/>'
        '<ereg regexp="^INVITE sip:\\+73831234567@" search_in="msg" check_it="true" '
        f'assign_to="r"/>{privacy}'
        "</action></recv>"
        f'<Reference variables="f,p,r{",v" if private else ""}"/>'
    )
    xml = sippkit.uas_answer()
    return xml.replace('<recv request="INVITE"/>', check, 1)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Container]:
    container = await sqlite_container(tmp_path)
    yield container
    await container.aclose()  # the journal's writes land before the db goes


def _cmd(tmp: Path, remote: str, name: str, port: int, *extra: str) -> list[str]:
    scenario = tmp / f"{name}.xml"
    return sipp_command(
        remote,
        workdir=tmp,
        local_port=port,
        calls=1,
        timeout=15,
        scenario_file=scenario,
        name=name,
        extra=extra,
    )


@pytest.mark.parametrize(
    "shared_by",
    [None, "alpha", "beta"],
    ids=["phones-own-address", "own-trunk-at-the-phones-address", "beta-lists-alphas-address"],
)
async def test_extension_dials_out_with_the_regional_caller_id(
    app: Container, tmp_path: Path, shared_by: str | None
) -> None:
    """``shared_by``: whose trunk also lists the phone's address (127.0.0.1) as a source. An
    office's own PBX or gateway shares its NAT address with its phones; another tenant may
    list any address. The phone is still a phone: challenged, and dialling out."""
    await _dial_out(app, tmp_path, shared_by=shared_by)


async def test_a_carrier_that_wants_its_login_in_from(app: Container, tmp_path: Path) -> None:
    """Trunk.from_user: many carriers take calls only with their account login as From's
    user; the caller ID then rides in P-Asserted-Identity."""
    await _dial_out(app, tmp_path, shared_by=None, login="7001234")


async def test_a_withheld_number(app: Container, tmp_path: Path) -> None:
    """101 dials *67 before the number: the carrier gets From anonymous and ``Privacy: id``
    (RFC 3323), and the chosen caller ID in P-Asserted-Identity to bill and to keep."""
    await _dial_out(app, tmp_path, shared_by=None, dial="*6783831234567")


async def _dial_out(
    app: Container,
    tmp_path: Path,
    *,
    shared_by: str | None,
    login: str | None = None,
    dial: str = "83831234567",
) -> None:
    """101 dials 8 383 123-45-67 through the carrier's trunk (``login``: its from_user)."""
    alpha = await seed_account(app, "alpha")
    beta = await seed_account(app, "beta", number="+74951230002")
    trunk_port = free_port()
    trunk = await app.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="carrier",
            host="127.0.0.1",
            port=trunk_port,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["192.0.2.1"],  # only an allow-list: never contacted
            from_user=login,
        ),
    )
    if shared_by is not None:
        await app.directory.create_trunk(
            (alpha if shared_by == "alpha" else beta).principal,
            TrunkIn(name="office PBX", host="127.0.0.1", port=free_port(),  # never answers
                    auth_mode=TrunkAuth.ip, allowed_sources=["127.0.0.1"]),
        )  # fmt: skip
    await app.directory.add_number(alpha.principal, NumberIn(number=NSK, trunk_id=trunk.id))
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    try:
        sdp = sippkit._SDP  # the SIPp SDP template shared by the e2e scenarios
        caller_xml = CALLER_XML.replace("SDP_HERE", sdp).replace("83831234567", dial)
        (tmp_path / "caller.xml").write_text(caller_xml)
        (tmp_path / "trunk.xml").write_text(trunk_xml(login, private=dial.startswith("*67")))
        uas_cmd = _cmd(tmp_path, "", "trunk", trunk_port)
        uas = await start_sipp(uas_cmd, workdir=tmp_path)
        await wait_bound(trunk_port)
        auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"{dial}@{remote}")
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port(), *auth), workdir=tmp_path, name="caller"
        )
        carrier = await finish_sipp(uas, uas_cmd, workdir=tmp_path, name="trunk", wait=20)
        assert caller.returncode == 0 and caller.stats.successful == 1, caller.describe()
        assert carrier.stats.successful == 1, carrier.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()

    listing = await app.journal.list_calls(alpha.principal, CallFilter())
    (call,) = listing.items
    assert call.direction is Direction.outbound
    assert call.disposition is Disposition.answered
