"""Trunks registering at their carrier (pbx/trunk_registration.py), SIPp as the carrier's
registrar: every REGISTER is challenged (401, digest MD5 qop=auth) and SIPp checks our answer
with ``verifyauth`` (a wrong one gets 403); it grants a short expiry so the refresh is seen,
and checks that the un-REGISTER on stop says ``Expires: 0``. Back-off after a refusal and a
registrar name that does not resolve yet (an injected resolver) are shown too."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.sip.peers.harness import SIPP, finish_sipp, free_port, sipp_command, start_sipp
from tests.support.certs import make_pki
from tests.support.dnsmasq import dnsmasq, needs_dnsmasq, resolver, servers_zone
from zvonar.container import Container
from zvonar.directory.models import Transport, TrunkAuth
from zvonar.directory.schemas import TrunkIn, TrunkPatch
from zvonar.pbx.dns import HostResolver
from zvonar.pbx.trunk_registration import UNREADABLE, RegState, TrunkRegistrations
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.io.server import SipServerConfig, serve_sip
from zvonar.sip.io.tls import TlsConfig, client_context, server_context
from zvonar.sip.outbound import Registered, RegistrationFailed
from zvonar.sip.registrar import RegistrarConfig
from zvonar.sip.security import SecurityConfig
from zvonar.sip.ua import RegistrationUpdate, UaEvent, UserAgent
from zvonar.store.sealed import Sealer

from .conftest import seed_account

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

USER, PASSWORD, REALM = "trunk-7001", "carrier-pass-9", "carrier.test"

_REPLY = """
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]R[call_number]
      [last_Call-ID:]
      [last_CSeq:]"""


def _exchange(n: int, *, expires: str, grant: str | None, refuse: bool = False) -> str:
    """REGISTER → 401 → REGISTER with credentials (checked; 403 if wrong) → 200 or 403.

    ``expires``: a regexp the REGISTER's Expires must match; ``grant``: the expiry the 200
    gives our Contact (None: no Contact, as for an un-REGISTER); ``refuse``: 403 even so."""
    check = (
        f'<ereg regexp="^[[:space:]]*{expires}[[:space:]]*$" search_in="hdr" '
        f'header="Expires:" check_it="true" assign_to="x{n}"/>'
    )
    contact = f"\n      [last_Contact:];expires={grant}" if grant is not None else ""
    final = "403 Forbidden" if refuse else "200 OK"
    return f"""
  <recv request="REGISTER"><action>{check}</action></recv>
  <send><![CDATA[

      SIP/2.0 401 Unauthorized{_REPLY}
      WWW-Authenticate: Digest realm="{REALM}", nonce="n{n}abcdef0123", algorithm=MD5, qop="auth"
      Content-Length: 0

  ]]></send>
  <recv request="REGISTER"><action>
    <verifyauth assign_to="ok{n}" username="{USER}" password="{PASSWORD}"/>
  </action></recv>
  <nop hide="true" test="ok{n}" next="good{n}"/>
  <send next="end"><![CDATA[

      SIP/2.0 403 Bad Credentials{_REPLY}
      Content-Length: 0

  ]]></send>
  <label id="good{n}"/>
  <send><![CDATA[

      SIP/2.0 {final}{_REPLY}{contact if not refuse else ""}
      Content-Length: 0

  ]]></send>"""


def registrar_xml(*steps: str) -> str:
    n = len(steps)
    refs = ",".join(f"x{i},ok{i}" for i in range(n))
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier registrar with digest">
  {"".join(steps)}
  <label id="end"/>
  <Reference variables="{refs}"/>
</scenario>
"""


class Carrier:
    """A SIPp registrar on a free port, finished (or killed) by the test."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.cmd: list[str] = []

    async def start(self, xml: str) -> None:
        path = self.workdir / "registrar.xml"
        path.write_text(xml)
        self.cmd = sipp_command(
            "", workdir=self.workdir, local_port=self.port, calls=1, timeout=40,
            scenario_file=path, name="registrar",
        )  # fmt: skip
        self.proc = await start_sipp(self.cmd, workdir=self.workdir)
        await _bound(self.port)

    async def finish(self, wait: float = 10) -> tuple[int, str]:
        assert self.proc is not None
        run = await finish_sipp(
            self.proc, self.cmd, workdir=self.workdir, name="registrar", wait=wait
        )
        return run.stats.successful, run.describe()


async def _bound(port: int) -> None:
    for _ in range(250):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"SIPp did not bind {port}")


@pytest.fixture
async def runner() -> AsyncIterator[SipRunner]:
    r = SipRunner(UserAgent())
    await r.listen_udp("127.0.0.1", 0)
    yield r
    await r.close(unregister_within=0.5)


class Seen:
    """Registration events as the UA reported them, with the loop time they arrived at."""

    def __init__(self, runner: SipRunner) -> None:
        self.loop = runner.loop
        self.events: list[tuple[float, object]] = []
        runner.add_event_hook(self.hook)

    def hook(self, event: UaEvent) -> None:
        if isinstance(event, RegistrationUpdate):
            self.events.append((self.loop.time(), event.event))

    def times(self, kind: type) -> list[float]:
        return [t for t, e in self.events if isinstance(e, kind)]

    async def until(self, kind: type, count: int, within: float = 15) -> None:
        deadline = self.loop.time() + within
        while len(self.times(kind)) < count:
            if self.loop.time() > deadline:
                raise AssertionError(f"{count} x {kind.__name__} not seen: {self.events}")
            await asyncio.sleep(0.02)


async def _trunk(
    container: Container, port: int, transport: Transport = Transport.udp, **extra: object
) -> TrunkIn:
    seeded = await seed_account(container)
    data = TrunkIn(
        name="carrier",
        host="127.0.0.1",
        port=port,
        transport=transport,
        auth_mode=TrunkAuth.registration,
        username=USER,
        password=PASSWORD,
        **extra,
    )
    await container.directory.create_trunk(seeded.principal, data)
    return data


async def _srv_trunk(container: Container) -> None:
    """Account alpha's carrier, known by its domain alone: located by SRV (RFC 3263)."""
    seeded = await seed_account(container)
    await container.directory.create_trunk(
        seeded.principal,
        TrunkIn(
            name="carrier",
            host="carrier.zvonar.test",
            auth_mode=TrunkAuth.registration,
            username=USER,
            password=PASSWORD,
        ),
    )


async def test_registers_with_digest_refreshes_and_unregisters(
    container: Container, runner: SipRunner, tmp_path: Path
) -> None:
    carrier = Carrier(tmp_path)
    await carrier.start(
        registrar_xml(
            _exchange(0, expires="3600", grant="4"),
            _exchange(1, expires="3600", grant="4"),  # the refresh, before the 4 s run out
            _exchange(2, expires="0", grant=None),  # stop(): the binding is removed
        )
    )
    await _trunk(container, carrier.port)
    seen = Seen(runner)
    regs = TrunkRegistrations(container.db, runner, retry_base=1.0)
    try:
        await regs.start()
        await seen.until(Registered, 2)
        (status,) = regs.status()
        assert status.state is RegState.registered and status.expires == 4
        assert status.registrar == f"127.0.0.1:{carrier.port}" and status.last_status == 200
        first, second = seen.times(Registered)
        assert 1.0 <= second - first < 4.0  # refreshed before the binding expired
        assert not seen.times(RegistrationFailed)
    finally:
        await regs.stop(within=5)
    successful, describe = await carrier.finish()
    assert successful == 1, describe  # every exchange, the Expires: 0 one included
    assert regs.status() == []


async def test_backs_off_after_a_refusal_and_waits_for_dns(
    container: Container, runner: SipRunner, tmp_path: Path
) -> None:
    carrier = Carrier(tmp_path)
    await carrier.start(
        registrar_xml(
            _exchange(0, expires="3600", grant="60", refuse=True),
            _exchange(1, expires="3600", grant="60"),
            _exchange(2, expires="0", grant=None),
        )
    )
    table: dict[str, list[str]] = {}
    queries: list[str] = []

    async def lookup(host: str) -> list[str]:
        queries.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "not yet")
        return table[host]

    dns = HostResolver(lookup=lookup, negative_ttl=0.05)
    await _trunk(container, carrier.port, registrar="sip.carrier.test")
    seen = Seen(runner)
    regs = TrunkRegistrations(container.db, runner, dns, retry_base=1.0)
    loop = asyncio.get_running_loop()
    try:
        await regs.start()
        (status,) = regs.status()
        assert status.state is RegState.unresolved and status.retry_at is not None
        assert queries == ["sip.carrier.test"]
        table["sip.carrier.test"] = ["127.0.0.1"]  # the carrier's name appears
        await seen.until(RegistrationFailed, 1)
        failed_at = loop.time()
        (status,) = regs.status()
        assert status.state is RegState.failed and status.last_status == 403
        assert status.failures == 1 and status.retry_at is not None
        await seen.until(Registered, 1)
        (registered_at,) = seen.times(Registered)
        assert registered_at - failed_at >= 0.45  # the back-off: 0.5-1 s after one failure
        (status,) = regs.status()
        assert status.state is RegState.registered and status.failures == 0
    finally:
        await regs.stop(within=5)
    successful, describe = await carrier.finish()
    assert successful == 1, describe


async def test_trunk_edits_reregister_and_ip_trunks_never_register(
    container: Container, runner: SipRunner, tmp_path: Path
) -> None:
    carrier = Carrier(tmp_path)
    await carrier.start(
        registrar_xml(
            _exchange(0, expires="3600", grant="60"),
            _exchange(1, expires="0", grant=None),  # switched to IP auth: unregistered
        )
    )
    seeded = await seed_account(container)
    trunk = await container.directory.create_trunk(
        seeded.principal,
        TrunkIn(
            name="carrier", host="127.0.0.1", port=carrier.port, username=USER, password=PASSWORD
        ),
    )
    await container.directory.create_trunk(  # IP authentication: nothing to register
        seeded.principal,
        TrunkIn(
            name="ip-only",
            host="127.0.0.1",
            port=carrier.port,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["127.0.0.2"],
        ),
    )
    seen = Seen(runner)
    regs = TrunkRegistrations(container.db, runner)
    detach = regs.attach(container.bus)
    try:
        await regs.start()
        await seen.until(Registered, 1)
        assert [s.trunk_name for s in regs.status()] == ["carrier"]
        assert regs.status(seeded.account_id) == regs.status()
        await container.directory.update_trunk(
            seeded.principal,
            trunk.id,
            TrunkPatch(auth_mode=TrunkAuth.ip, allowed_sources=["127.0.0.1"]),
        )
        successful, describe = await carrier.finish(wait=15)
        assert successful == 1, describe  # the un-REGISTER came
        assert regs.status() == []
    finally:
        detach()
        await regs.stop(within=1)


async def test_a_password_that_does_not_open_is_shown_failed_and_not_sent(
    container: Container, runner: SipRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The installation's secret_key changed since the password was sealed.
    seeded = await seed_account(container)
    trunk = await container.directory.create_trunk(
        seeded.principal,
        TrunkIn(
            name="carrier", host="127.0.0.1", port=free_port(), username=USER, password=PASSWORD
        ),
    )
    monkeypatch.setattr(container.db, "_sealer", Sealer("a different secret key"))
    seen = Seen(runner)
    regs = TrunkRegistrations(container.db, runner)
    try:
        await regs.start()
        [status] = regs.status(seeded.account_id)
        assert status.trunk_id == trunk.id and status.state is RegState.failed
        assert status.last_reason == UNREADABLE and regs.get(trunk.id) == status
        await asyncio.sleep(0.2)
        assert seen.events == []  # no REGISTER went out
    finally:
        await regs.stop()


@needs_dnsmasq
async def test_registers_at_a_registrar_located_by_srv(
    container: Container, runner: SipRunner, tmp_path: Path
) -> None:
    """A trunk with a domain and no port: its registrar is where the domain's SRV records
    point (RFC 3263 §4.2), and the REGISTER's Request-URI keeps the domain."""
    carrier = Carrier(tmp_path)
    await carrier.start(
        registrar_xml(
            _exchange(0, expires="3600", grant="60"),
            _exchange(1, expires="0", grant=None),
        )
    )
    await _srv_trunk(container)
    seen = Seen(runner)
    with dnsmasq(servers_zone("carrier.zvonar.test", carrier.port), tmp_path) as dns_port:
        regs = TrunkRegistrations(container.db, runner, resolver(dns_port), retry_base=1.0)
        try:
            await regs.start()
            await seen.until(Registered, 1)
            (status,) = regs.status()
            assert status.state is RegState.registered and status.last_status == 200
            assert status.registrar == "carrier.zvonar.test;transport=udp"
        finally:
            await regs.stop(within=5)
    successful, describe = await carrier.finish()
    assert successful == 1, describe


REFUSE_503 = (
    """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="an overloaded registrar server">
  <recv request="REGISTER"/>
  <send><![CDATA[

      SIP/2.0 503 Service Unavailable"""
    + _REPLY
    + """
      Content-Length: 0

  ]]></send>
</scenario>
"""
)


@needs_dnsmasq
async def test_a_failing_registrar_server_sends_the_retry_to_the_next(
    container: Container, runner: SipRunner, tmp_path: Path
) -> None:
    """SRV lists two servers; the first answers 503 (RFC 3263 §4.3): the retry goes to the
    second, which takes the binding, and the un-REGISTER goes there too."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    overloaded, backup = Carrier(tmp_path / "one"), Carrier(tmp_path / "two")
    await overloaded.start(REFUSE_503)
    await backup.start(
        registrar_xml(
            _exchange(0, expires="3600", grant="60"),
            _exchange(1, expires="0", grant=None),
        )
    )
    await _srv_trunk(container)
    zone = servers_zone("carrier.zvonar.test", overloaded.port, backup.port)
    seen = Seen(runner)
    with dnsmasq(zone, tmp_path) as dns_port:
        regs = TrunkRegistrations(container.db, runner, resolver(dns_port), retry_base=1.0)
        try:
            await regs.start()
            await seen.until(RegistrationFailed, 1)
            (status,) = regs.status()
            assert status.last_status == 503
            assert status.server == f"127.0.0.1:{backup.port}"  # where the retry will go
            await seen.until(Registered, 1)
            (status,) = regs.status()
            assert status.state is RegState.registered
            assert status.server == f"127.0.0.1:{backup.port}"
        finally:
            await regs.stop(within=5)
    assert (await overloaded.finish())[0] == 1
    successful, describe = await backup.finish()
    assert successful == 1, describe  # the binding and its removal, both at the backup


async def test_registers_over_tls_at_a_registrar_with_a_checked_certificate(
    container: Container, tmp_path: Path
) -> None:
    """A TLS trunk registers over TLS (the carrier's certificate checked against the CA we
    were given), with digest; the carrier's binding says TLS and names our TLS listener. The
    carrier is our own stack's registrar over real TLS sockets (SIPp has no TLS here)."""
    pki = make_pki(tmp_path / "pki")
    ours, theirs = pki.issue("pbx", ips=("127.0.0.1",)), pki.issue("reg", ips=("127.0.0.1",))
    port = free_port()
    await _trunk(container, port, transport=Transport.tls)
    registrar = await serve_sip(
        SipServerConfig(
            listen=(("127.0.0.1", 0),),
            tls_port=port,
            realm=REALM,
            users={USER: PASSWORD},
            security=SecurityConfig(trusted=("127.0.0.0/8",)),
            registrar=RegistrarConfig(min_expires=60),
            tls=TlsConfig(
                client=client_context(ca=pki.ca), server=server_context(theirs.cert, theirs.key)
            ),
        )
    )
    runner = SipRunner(UserAgent())
    await runner.listen_udp("127.0.0.1", 0)
    tls = TlsConfig(
        client=client_context(ca=pki.ca, cert=ours.cert, key=ours.key),
        server=server_context(ours.cert, ours.key),
    )
    local = await runner.listen_tls("127.0.0.1", 0, tls)
    seen = Seen(runner)
    regs = TrunkRegistrations(container.db, runner, retry_base=1.0)
    try:
        await regs.start()
        await seen.until(Registered, 1)
        (status,) = regs.status()
        assert status.state is RegState.registered and status.registrar == f"127.0.0.1:{port}"
        (binding,) = registrar.ua.lookup(f"sip:{USER}@127.0.0.1", runner.loop.time())
        assert binding.transport == "TLS"
        ours_uri = f"sip:{USER}@127.0.0.1:{local.port};transport=tls;line="
        assert binding.contact.startswith(ours_uri)
        # The token tells this trunk's calls apart: they come to the bound Contact.
        line = binding.contact.removeprefix(ours_uri)
        caller = regs.caller_for_line(line)
        assert caller is not None and caller.trunk_of == {status.account_id}
        assert not caller.srtp_for(status.account_id)
        assert regs.caller_for_line("0" * 16) is None
        # A carrier that drops the token is still known by its registrar's address and port.
        assert regs.caller_for_source("127.0.0.1", port) == caller
        assert regs.caller_for_source("127.0.0.1", port + 1) is None
    finally:
        await regs.stop(within=5)
        await runner.close(unregister_within=0.5)
        await registrar.close()
    assert not registrar.ua.lookup(f"sip:{USER}@127.0.0.1", runner.loop.time())  # un-REGISTERed


async def test_a_tls_trunk_on_a_pbx_without_tls_is_shown_unsupported(
    container: Container, runner: SipRunner
) -> None:
    await _trunk(container, 5061, transport=Transport.tls)
    regs = TrunkRegistrations(container.db, runner, retry_base=1.0)
    try:
        await regs.start()
        (status,) = regs.status()
        assert status.state is RegState.unsupported and "TLS" in (status.last_reason or "")
    finally:
        await regs.stop(within=1)
