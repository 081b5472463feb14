"""End to end: a busy lamp field. Employee 102's phone (SIPp) subscribes to extension 101
(``Event: dialog``, RFC 6665 / RFC 4235) with digest; a SIPp carrier calls the account's
number, whose scheme rings 101 (a SIPp phone that rings 1.5 s, answers, and talks until the
carrier hangs up). 102's phone must be told, in order: idle, ringing (an early dialog with
the caller), talking (confirmed), idle again; then its unsubscribe (``Expires: 0``) is
answered with a last NOTIFY that ends the subscription. Every NOTIFY's body is checked by
SIPp itself (``check_it``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.schemes_kit import carrier_talk
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
    start_sipp_bound,
)
from zvonar.container import Container
from zvonar.directory.schemas import EmployeeIn
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

WATCHER_PASSWORD = "watcher-pass-102"
CUSTOMER = "+79160000001"


def _notify(*checks: tuple[str, str, str]) -> str:
    """Wait for a NOTIFY whose ``checks`` (name, regexp, where: ``body`` or a header name)
    all match; answer 200."""
    actions = []
    for name, regexp, where in checks:
        pattern = regexp.replace("<", "&lt;").replace(">", "&gt;")  # in an XML attribute
        place = 'search_in="body"' if where == "body" else f'search_in="hdr" header="{where}"'
        actions.append(f'<ereg regexp="{pattern}" {place} check_it="true" assign_to="{name}"/>')
    names = ",".join(name for name, _, _ in checks)
    return (
        f'  <recv request="NOTIFY" timeout="20000"><action>{"".join(actions)}</action></recv>\n'
        f'  <Reference variables="{names}"/>\n  {sippkit.OK_IN_DIALOG}\n'
    )


def idle_body(target: str, realm: str) -> str:
    """A NOTIFY body with no dialog for ``target`` (a regexp; ``*`` of a slot escaped)."""
    return f"entity=.sip:{target.replace('*', '[*]')}@{realm}.>[[:space:]]*</dialog-info>"


def watcher_xml(realm: str, changes: str, *, target: str = "101", user: str = "102") -> str:
    """``user``'s phone subscribes to ``target`` with digest, takes the idle NOTIFY, then the
    NOTIFYs ``changes`` expects (``_notify`` blocks), then unsubscribes: 200 and the last
    NOTIFY."""
    subscribe = f"""
      SUBSCRIBE sip:{target}@{realm} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:{user}@{realm}>;tag=[pid]W[call_number]
      To: <sip:{target}@{realm}>
      Call-ID: [call_id]
      Contact: <sip:{user}@[local_ip]:[local_port]>
      Event: dialog
      Accept: application/dialog-info+xml
      Max-Forwards: 70"""
    idle = idle_body(target, realm)
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{user} watches {target}">
  <send retrans="500"><![CDATA[
{subscribe}
      CSeq: 1 SUBSCRIBE
      Expires: 600
      Content-Length: 0

  ]]></send>
  <recv response="407" auth="true"/>
  <send retrans="500"><![CDATA[
{subscribe}
      CSeq: 2 SUBSCRIBE
      [authentication]
      Expires: 600
      Content-Length: 0

  ]]></send>
  <recv response="200"><action>
    <ereg regexp=";tag=([^;>]*)" search_in="hdr" header="To:" assign_to="to,pbxtag"/>
    <ereg regexp="^ *600" search_in="hdr" header="Expires:" check_it="true" assign_to="exp"/>
  </action></recv>
  <Reference variables="to,exp"/>
{_notify(("idle1", idle, "body"), ("active", "^ *active;expires=", "Subscription-State:"))}
{changes}
  <send retrans="500"><![CDATA[

      SUBSCRIBE sip:{target}@{realm} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:{user}@{realm}>;tag=[pid]W[call_number]
      To: <sip:{target}@{realm}>;tag=[$pbxtag]
      Call-ID: [call_id]
      Contact: <sip:{user}@[local_ip]:[local_port]>
      CSeq: 3 SUBSCRIBE
      Event: dialog
      Expires: 0
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
{_notify(("over", "^ *terminated", "Subscription-State:"))}
</scenario>
"""


def _follows_a_call(realm: str) -> str:
    """101 rings with the customer shown, talks, and is idle again."""
    caller = f"<identity>tel:[+]{CUSTOMER[1:]}</identity>"  # who rings, as a tel: URI
    ringing = _notify(
        ("ringing", "direction=.recipient.>[[:space:]]*<state>early</state>", "body"),
        ("caller", caller, "body"),
    )
    talking = _notify(("talking", "<state>confirmed</state>", "body"))
    return ringing + talking + _notify(("idle2", idle_body("101", realm), "body"))


async def test_a_busy_lamp_field_follows_a_call(app: Container, tmp_path: Path) -> None:
    alpha = await seed_account(app, "alpha")
    await app.directory.create_employee(
        alpha.principal,
        EmployeeIn(name="Boris", extension="102", sip_password=WATCHER_PASSWORD),
    )
    pbx_port, phone_port, watcher_port = free_port(), free_port(), free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    realm = alpha.realm
    try:
        (tmp_path / "register.xml").write_text(register_scenario("101", realm))
        reg = await run_sipp(
            _cmd(tmp_path, remote, "register", phone_port, "-au", "101", "-ap", PASSWORD,
                 "-auth_uri", realm),
            workdir=tmp_path, name="register",
        )  # fmt: skip
        assert reg.stats.successful == 1, reg.describe()
        # The watching phone subscribes first; its first NOTIFY (idle) must be answered.
        (tmp_path / "watcher.xml").write_text(watcher_xml(realm, _follows_a_call(realm)))
        watcher_cmd = _cmd(tmp_path, remote, "watcher", watcher_port, "-au", "102", "-ap",
                           WATCHER_PASSWORD, "-auth_uri", f"101@{realm}")  # fmt: skip
        watcher = await start_sipp(watcher_cmd, workdir=tmp_path)
        assert rt.blf is not None
        for _ in range(200):
            if rt.blf.count == 1:
                break
            await asyncio.sleep(0.05)
        assert rt.blf.count == 1, "the watcher never subscribed"
        await asyncio.sleep(0.3)  # its idle NOTIFY is answered
        (tmp_path / "phone.xml").write_text(sippkit.uas_answer(ring_ms=1500))
        phone_cmd = _cmd(tmp_path, "", "phone", phone_port)
        phone = await start_sipp_bound(phone_cmd, workdir=tmp_path, port=phone_port)
        (tmp_path / "carrier.xml").write_text(
            carrier_talk(NUMBER.lstrip("+"), CUSTOMER, talk_ms=1000)
        )
        carrier = await run_sipp(
            _cmd(tmp_path, remote, "carrier", free_port()), workdir=tmp_path, name="carrier"
        )
        assert carrier.stats.successful == 1, carrier.describe()
        answered = await finish_sipp(phone, phone_cmd, workdir=tmp_path, name="phone", wait=10)
        assert answered.stats.successful == 1, answered.describe()
        watched = await finish_sipp(watcher, watcher_cmd, workdir=tmp_path, name="watcher", wait=20)
        assert watched.stats.successful == 1, watched.describe()
        assert rt.blf.count == 0
    finally:
        await rt.stop()


_OPTIONS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="what does the PBX take">
  <send retrans="500"><![CDATA[

      OPTIONS sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:probe@[local_ip]>;tag=[pid]O[call_number]
      To: <sip:[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"><action>
    <ereg regexp="SUBSCRIBE" search_in="hdr" header="Allow:" check_it="true" assign_to="a"/>
    <ereg regexp="^ *dialog, presence" search_in="hdr" header="Allow-Events:" check_it="true"
          assign_to="e"/>
  </action></recv>
  <Reference variables="a,e"/>
</scenario>
"""


async def test_options_name_the_event_packages(app: Container, tmp_path: Path) -> None:
    """RFC 6665 §4.4.4: a notifier lists its event packages in its answers to OPTIONS."""
    pbx_port = free_port()
    rt = await start_pbx(app, PbxConfig(sip_port=pbx_port, media_timeout=0))
    try:
        (tmp_path / "options.xml").write_text(_OPTIONS)
        run = await run_sipp(
            _cmd(tmp_path, f"127.0.0.1:{pbx_port}", "options", free_port()),
            workdir=tmp_path,
            name="options",
        )
        assert run.stats.successful == 1, run.describe()
    finally:
        await rt.stop()
