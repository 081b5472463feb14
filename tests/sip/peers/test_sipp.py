"""Our SIP stack against SIPp (Debian sip-tester 3.6.1), over real UDP/TCP on loopback.

Each SIPp run is bounded (-m, -timeout with -timeout_error, -nostdin); the test reads
SIPp's -trace_stat CSV and asserts every call succeeded and none failed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.sip.peers.harness import (
    SIPP,
    PeerStartError,
    SippRun,
    finish_sipp,
    free_port,
    run_sipp,
    sipp_command,
    start_sipp,
    start_sipp_bound,
    wait_bound,
)
from zvonar.sip.io.server import SipServer, SipServerConfig, serve_sip
from zvonar.sip.security import SecurityConfig
from zvonar.sip.ua import Flow

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
# Loopback peers are trusted: SIPp sends faster than the per-IP rate limits allow.
TRUSTED = SecurityConfig(trusted=("127.0.0.0/8", "::1/128"))


async def _server(**kw: object) -> SipServer:
    fields: dict[str, object] = {
        "listen": (("127.0.0.1", 0),),
        "users": USERS,
        "realm": "zvonar.test",
        "security": TRUSTED,
    }
    fields.update(kw)
    return await serve_sip(SipServerConfig(**fields))  # type: ignore[arg-type]


@pytest.fixture
async def server() -> AsyncIterator[SipServer]:
    srv = await _server()
    yield srv
    await srv.close()


def _remote(srv: SipServer, transport: str = "UDP", family: int = 4) -> str:
    flow = srv.flow(transport, family)
    return f"[{flow.host}]:{flow.port}" if family == 6 else f"{flow.host}:{flow.port}"


async def _sipp(srv: SipServer, tmp_path: Path, name: str, **kw: object) -> SippRun:
    cmd = sipp_command(
        _remote(srv, str(kw.pop("transport", "UDP"))),
        workdir=tmp_path,
        local_port=free_port(),
        name=name,
        **kw,  # type: ignore[arg-type]
    )
    run = await run_sipp(cmd, workdir=tmp_path, name=name)
    calls = kw["calls"]
    assert run.returncode == 0, run.describe()
    assert run.stats.failed == 0, run.describe()
    assert run.stats.successful == calls, run.describe()
    return run


async def test_register_with_digest(server: SipServer, tmp_path: Path) -> None:
    port = free_port()
    cmd = sipp_command(
        _remote(server),
        workdir=tmp_path,
        local_port=port,
        calls=3,
        scenario="register_auth.xml",
        extra=("-s", "alice", "-au", "alice", "-ap", USERS["alice"]),
        name="register",
    )
    run = await run_sipp(cmd, workdir=tmp_path, name="register")
    assert run.returncode == 0 and run.stats.failed == 0, run.describe()
    assert run.stats.successful == 3
    bindings = server.ua.lookup("sip:alice@127.0.0.1", asyncio.get_running_loop().time())
    assert [(b.source, b.transport) for b in bindings] == [(("127.0.0.1", port), "UDP")]
    # SIPp writes transport=UDP in upper case: the same binding, refreshed (§19.1.4).
    assert "transport=UDP" in bindings[0].contact


async def test_register_with_wrong_password_fails(server: SipServer, tmp_path: Path) -> None:
    cmd = sipp_command(
        _remote(server),
        workdir=tmp_path,
        local_port=free_port(),
        calls=1,
        timeout=5,
        scenario="register_auth.xml",
        extra=("-s", "alice", "-au", "alice", "-ap", "wrong", "-recv_timeout", "2000"),
        name="badpass",
    )
    run = await run_sipp(cmd, workdir=tmp_path, name="badpass")
    assert run.stats.successful == 0 and run.stats.failed == 1, run.describe()
    assert server.ua.counters.auth_failures >= 1
    assert server.ua.lookup("sip:alice@127.0.0.1", asyncio.get_running_loop().time()) == []


async def test_sipp_uac_calls_answer(server: SipServer, tmp_path: Path) -> None:
    await _sipp(server, tmp_path, "uac", calls=20, extra=("-s", "answer", "-r", "50"))
    assert server.pbx.calls_answered == 20


async def test_sipp_uac_over_tcp(tmp_path: Path) -> None:
    srv = await _server(tcp=True)
    try:
        await _sipp(srv, tmp_path, "tcp", transport="TCP", calls=10,
                    extra=("-s", "answer", "-r", "20", "-t", "t1"))  # fmt: skip
        assert srv.runner.stats.tcp_accepted == 1  # every message reused SIPp's connection
    finally:
        await srv.close()


async def test_sipp_uac_over_ipv6(tmp_path: Path) -> None:
    srv = await _server(listen=(("::1", 0),))
    try:
        cmd = sipp_command(_remote(srv, family=6), workdir=tmp_path, local_ip="::1",
                           local_port=free_port("::1"), calls=5, name="v6",
                           extra=("-s", "answer", "-r", "20"))  # fmt: skip
        run = await run_sipp(cmd, workdir=tmp_path, name="v6")
        assert run.returncode == 0 and run.stats.failed == 0, run.describe()
        assert run.stats.successful == 5
    finally:
        await srv.close()


async def test_busy_486(server: SipServer, tmp_path: Path) -> None:
    await _sipp(server, tmp_path, "busy", calls=5, scenario="uac_busy.xml", extra=("-s", "busy"))


async def test_cancel_487(server: SipServer, tmp_path: Path) -> None:
    await _sipp(server, tmp_path, "cancel", calls=5, scenario="uac_cancel.xml",
                extra=("-s", "ring"))  # fmt: skip
    assert server.runner.stats.internal_errors == 0


async def test_reinvite(server: SipServer, tmp_path: Path) -> None:
    await _sipp(server, tmp_path, "reinvite", calls=5, scenario="uac_reinvite.xml",
                extra=("-s", "answer"))  # fmt: skip


async def test_invite_with_proxy_auth(tmp_path: Path) -> None:
    srv = await _server(auth_invites=True)
    try:
        # SIPp's digest uri defaults to remote_ip:port; RFC 7616 §3.4.6 wants the
        # Request-URI, which our challenger checks, so tell SIPp (-auth_uri).
        auth = ("-au", "bob", "-ap", USERS["bob"], "-auth_uri", f"answer@{_remote(srv)}")
        await _sipp(srv, tmp_path, "auth", calls=5, scenario="uac_auth_invite.xml",
                    extra=("-s", "answer", *auth))  # fmt: skip
        assert srv.pbx.calls_answered == 5
    finally:
        await srv.close()


async def test_calls_complete_under_packet_loss(server: SipServer, tmp_path: Path) -> None:
    # SIPp drops 10% of what it sends and receives: both sides must retransmit (§17).
    run = await _sipp(server, tmp_path, "lossy", calls=20, timeout=40,
                      extra=("-s", "answer", "-r", "20", "-lost", "10"))  # fmt: skip
    assert run.stats.retransmissions > 0  # losses happened and were recovered from


async def test_our_uac_calls_sipp_uas(server: SipServer, tmp_path: Path) -> None:
    port = free_port()
    cmd = sipp_command(
        "", workdir=tmp_path, local_port=port, calls=3, scenario="uas.xml", name="uas"
    )
    proc = await start_sipp(cmd, workdir=tmp_path)
    await wait_bound(port)
    loop = asyncio.get_running_loop()
    for _ in range(3):
        leg = server.pbx.originate(f"sip:service@127.0.0.1:{port}", Flow("UDP", "127.0.0.1", port),
                                   loop.time())  # fmt: skip
        server.runner.pump()
        assert leg.answered is not None and leg.ended is not None
        assert await asyncio.wait_for(leg.answered, 10) == 200
        server.pbx.hangup(leg, loop.time())
        server.runner.pump()
        assert await asyncio.wait_for(leg.ended, 10) == "local"
    run = await finish_sipp(proc, cmd, workdir=tmp_path, name="uas")
    assert run.returncode == 0 and run.stats.failed == 0, run.describe()
    assert run.stats.successful == 3


async def test_call_relayed_to_registered_sipp(server: SipServer, tmp_path: Path) -> None:
    """bob (a SIPp UAS) registers; a SIPp UAC calls bob; the echo PBX bridges two dialogs."""
    bob_port = free_port()
    reg = sipp_command(_remote(server), workdir=tmp_path, local_port=bob_port, calls=1,
                       scenario="register_auth.xml", name="bobreg",
                       extra=("-s", "bob", "-au", "bob", "-ap", USERS["bob"]))  # fmt: skip
    run = await run_sipp(reg, workdir=tmp_path, name="bobreg")
    assert run.stats.successful == 1, run.describe()
    uas = sipp_command("", workdir=tmp_path, local_port=bob_port, calls=5, scenario="uas.xml",
                       name="bob")  # fmt: skip
    proc = await start_sipp(uas, workdir=tmp_path)
    await wait_bound(bob_port)
    await _sipp(server, tmp_path, "caller", calls=5, extra=("-s", "bob", "-r", "10"))
    bob = await finish_sipp(proc, uas, workdir=tmp_path, name="bob")
    assert bob.returncode == 0 and bob.stats.failed == 0, bob.describe()
    assert bob.stats.successful == 5


async def test_a_sipp_that_cannot_start_is_reported_at_once(tmp_path: Path) -> None:
    """The harness's start: a SIPp that dies before binding its port (here: a scenario it
    cannot read) is tried again, then reported with what it printed — not a 15 s wait for a
    port nobody will bind. One that starts is handed back bound."""
    port = free_port()
    broken = tmp_path / "broken.xml"
    broken.write_text("<scenario><recv request=")
    cmd = sipp_command("", workdir=tmp_path, local_port=port, calls=1, scenario_file=broken)
    started = asyncio.get_running_loop().time()
    with pytest.raises(PeerStartError, match="exited with"):
        await start_sipp_bound(cmd, workdir=tmp_path, port=port)
    assert asyncio.get_running_loop().time() - started < 10
    good = sipp_command("", workdir=tmp_path, local_port=port, calls=1, builtin="uas")
    proc = await start_sipp_bound(good, workdir=tmp_path, port=port)
    try:
        assert proc.returncode is None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, pytest.raises(OSError):
            probe.bind(("127.0.0.1", port))
    finally:
        proc.kill()
        await proc.wait()
