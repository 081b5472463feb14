"""End to end: a real app container, the PBX runtime, SIPp phones on loopback.

SIPp registers as 101@alpha.zvonar with digest auth, then answers as a UAS on the same port;
a second SIPp calls +74951234567 at the PBX; the scheme rings 101; the journal shows one
answered call with the leg to 101. Every SIPp run is bounded (-m 1, -timeout).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.sip.peers.harness import SIPP, finish_sipp, free_port, run_sipp, sipp_command, start_sipp
from zvonar.app import create_container
from zvonar.calls.events import Disposition, TargetKind
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx
from zvonar.settings import Settings
from zvonar.store.base import Base

from .conftest import NUMBER, PASSWORD, seed_account

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register 101 at alpha.zvonar with digest">
  <send retrans="500"><![CDATA[

      REGISTER sip:alpha.zvonar SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:101@alpha.zvonar>;tag=[pid]R[call_number]
      To: <sip:101@alpha.zvonar>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:101@[local_ip]:[local_port];transport=[transport]>
      Expires: 300
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[

      REGISTER sip:alpha.zvonar SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:101@alpha.zvonar>;tag=[pid]R[call_number]
      To: <sip:101@alpha.zvonar>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:101@[local_ip]:[local_port];transport=[transport]>
      [authentication]
      Expires: 300
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Container]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'pbx.sqlite3'}",
        secret_key="test-secret-key-not-for-production",
    )
    container = create_container(settings, bus=RecordingBus())
    async with container.db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield container
    await container.db.dispose()


async def _wait_bound(port: int) -> None:
    for _ in range(250):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"SIPp did not bind UDP {port}")


async def test_registered_sipp_answers_a_call_to_the_number(app: Container, tmp_path: Path) -> None:
    alpha = await seed_account(app, "alpha", ring_seconds=10)
    pbx_port = free_port()
    # SIPp 3.6 answers only the first challenge and knows only MD5 of the digest algorithms.
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    try:
        phone_port = free_port()
        (tmp_path / "register.xml").write_text(REGISTER_XML)
        (tmp_path / "answer.xml").write_text(sippkit.uas_answer())
        (tmp_path / "caller.xml").write_text(sippkit.uac(NUMBER, talk_ms=1000))

        def cmd(remote_: str, name: str, port: int, *extra: str) -> list[str]:
            scenario = ("-sf", str(tmp_path / f"{name}.xml"))
            c = sipp_command(
                remote_,
                workdir=tmp_path,
                local_port=port,
                calls=1,
                timeout=15,
                name=name,
                extra=(*scenario, *extra),
            )
            i = c.index("-sn")  # sipp_command adds a built-in scenario; ours replaces it
            return c[:i] + c[i + 2 :]

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
        await _wait_bound(phone_port)
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
