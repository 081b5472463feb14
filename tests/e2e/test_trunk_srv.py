"""End to end: a trunk known only by its domain is located by DNS SRV (RFC 3263), and an
outbound call fails over along the carrier's servers (§4.3).

dnsmasq on loopback is the carrier's DNS: ``_sip._udp.carrier.zvonar.test`` lists a primary
server (priority 10) and a backup (priority 20), each a SIPp on its own port; the trunk names
the domain and no port, and the PBX is told to ask that dnsmasq (``dns_servers``). Employee
101 (SIPp, digest) dials 8 383 123-45-67:

* the primary answers ``503 Service Unavailable``; the call goes to the backup, which
  answers; 101 talks and hangs up. Both servers see the carrier's domain in the
  Request-URI (``sip:+7383…@carrier.zvonar.test;transport=udp``), not an address;
* with the primary answering, the backup is never tried;
* the primary is silent (a socket that reads nothing: a dead server): after 5 s without even
  a 100 Trying the backup takes the call, not after the INVITE transaction's 32 s.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.test_early_media import _cmd
from tests.e2e.test_early_media import app as app  # the fixture
from tests.e2e.test_outbound_transfer import CALLER_XML
from tests.pbx.conftest import PASSWORD, seed_account
from tests.sip.peers.harness import SIPP, finish_sipp, free_port, run_sipp, start_sipp_bound
from tests.support.dnsmasq import dnsmasq, needs_dnsmasq, servers_zone
from zvonar.calls.events import Direction, Disposition, LegEndReason
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
    needs_dnsmasq,
]

# The carrier's server checks the Request-URI kept the domain it was located by.
RURI_CHECK = """<recv request="INVITE">
    <action>
      <ereg regexp="^INVITE sip:[+]73831234567@carrier[.]zvonar[.]test;transport=udp SIP/2[.]0"
            search_in="msg" check_it="true" assign_to="ruri"/>
    </action>
  </recv>"""


SILENT = "silent"  # the primary: a bound socket that never answers


def _checked(xml: str) -> str:
    assert '<recv request="INVITE"/>' in xml
    xml = xml.replace('<recv request="INVITE"/>', RURI_CHECK, 1)
    return xml.replace("</scenario>", '  <Reference variables="ruri"/>\n</scenario>')


async def _dial(
    app: Container, tmp_path: Path, primary: str | None, backup: str | None
) -> tuple[dict[str, bool], list[LegEndReason | None], Disposition | None]:
    alpha = await seed_account(app, "alpha")
    stack = ExitStack()
    ports = {"primary": free_port(), "backup": free_port()}
    if primary == SILENT:
        hole = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        hole.bind(("127.0.0.1", 0))
        ports["primary"], primary = hole.getsockname()[1], None
    await app.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="carrier",
            host="carrier.zvonar.test",  # no port: SRV decides where
            auth_mode=TrunkAuth.ip,
            allowed_sources=["192.0.2.1"],  # calls from it are not tested here
        ),
    )
    zone = servers_zone("carrier.zvonar.test", ports["primary"], ports["backup"])
    runs: dict[str, bool] = {}
    with stack, dnsmasq(zone, tmp_path) as dns_port:
        pbx_port = free_port()
        config = PbxConfig(
            sip_port=pbx_port,
            media_timeout=0,
            digest_algorithms=("MD5",),
            dns_servers=(("127.0.0.1", dns_port),),
        )
        rt = await start_pbx(app, config)
        remote = f"127.0.0.1:{pbx_port}"
        servers = []
        try:
            for name, xml in (("primary", primary), ("backup", backup)):
                if xml is None:
                    continue
                (tmp_path / f"{name}.xml").write_text(_checked(xml))
                cmd = _cmd(tmp_path, "", name, ports[name])
                proc = await start_sipp_bound(cmd, workdir=tmp_path, port=ports[name])
                servers.append((name, cmd, proc))
            (tmp_path / "caller.xml").write_text(CALLER_XML.replace("SDP_HERE", sippkit._SDP))
            auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"83831234567@{remote}")
            caller = await run_sipp(
                _cmd(tmp_path, remote, "caller", free_port(), *auth),
                workdir=tmp_path,
                name="caller",
            )
            runs["caller"] = caller.stats.successful == 1
            for name, cmd, proc in servers:
                done = await finish_sipp(proc, cmd, workdir=tmp_path, name=name, wait=15)
                runs[name] = done.stats.successful == 1
            await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
        finally:
            await rt.stop()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.direction is Direction.outbound
    legs = (await app.journal.get_call(alpha.principal, call.id)).legs
    return runs, [leg.end_reason for leg in legs], call.disposition


async def test_a_failing_server_hands_the_call_to_the_carriers_next_one(
    app: Container, tmp_path: Path
) -> None:
    refused = sippkit.uas_refuses("503 Service Unavailable")
    runs, legs, disposition = await _dial(app, tmp_path, refused, sippkit.uas_answer())
    assert runs == {"caller": True, "primary": True, "backup": True}, runs
    assert legs == [LegEndReason.failed, LegEndReason.completed]
    assert disposition is Disposition.answered


async def test_the_primary_server_takes_the_call_when_it_can(
    app: Container, tmp_path: Path
) -> None:
    runs, legs, disposition = await _dial(app, tmp_path, sippkit.uas_answer(), None)
    assert runs == {"caller": True, "primary": True}, runs
    assert legs == [LegEndReason.completed] and disposition is Disposition.answered


async def test_a_silent_server_is_left_after_five_seconds(app: Container, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    runs, legs, disposition = await _dial(app, tmp_path, SILENT, sippkit.uas_answer())
    took = loop.time() - began
    assert runs == {"caller": True, "backup": True}, runs
    assert legs == [LegEndReason.no_answer, LegEndReason.completed]  # our own 408, then talk
    assert disposition is Disposition.answered
    assert 5 <= took < 20, took  # SERVER_SILENCE, far from Timer B's 32 s
