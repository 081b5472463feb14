"""Outbound registration: virtual-clock timing against a sans-IO registrar, then real UDP."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from zvonar.sip.auth import (
    Authorized,
    ClientCredentials,
    Credentials,
    DigestChallenger,
    InMemoryCredentialStore,
    auth_response,
)
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.io.server import SipServerConfig, serve_sip
from zvonar.sip.message import SipRequest, SipResponse, make_response
from zvonar.sip.outbound import (
    OutboundRegistration,
    Registered,
    RegistrationConfig,
    RegistrationFailed,
    RegistrationState,
    Unregistered,
)
from zvonar.sip.registrar import Registrar, RegistrarConfig
from zvonar.sip.security import SecurityConfig
from zvonar.sip.ua import RegistrationUpdate, UaEvent, UserAgent
from zvonar.sip.uri import SipUri

REALM = "trunk.test"


def config(password: str = "pw", **kw: object) -> RegistrationConfig:
    fields: dict[str, object] = {
        "registrar": SipUri(host="trunk.test"),
        "aor": SipUri(user="alice", host="trunk.test"),
        "contact": SipUri(user="alice", host="192.0.2.1", port=5060),
        "via": "SIP/2.0/UDP 192.0.2.1:5060",
        "credentials": ClientCredentials("alice", password),
        "expires": 600,
    }
    fields.update(kw)
    return RegistrationConfig(**fields)  # type: ignore[arg-type]


class Trunk:
    """A sans-IO registrar with digest, answering requests directly (no transport)."""

    def __init__(self, **registrar: object) -> None:
        store = InMemoryCredentialStore([Credentials.from_password("alice", REALM, "pw")])
        self.challenger = DigestChallenger(REALM, b"s" * 32, store)
        self.registrar = Registrar(config=RegistrarConfig(**registrar))  # type: ignore[arg-type]
        self.seen: list[SipRequest] = []

    def answer(self, request: SipRequest, now: float) -> SipResponse:
        self.seen.append(request)
        result = self.challenger.check(request, now)
        if not isinstance(result, Authorized):
            return auth_response(request, result, to_tag="t")
        return self.registrar.handle_register(request, ("192.0.2.1", 5060), "UDP", None, now,
                                              user=result.username)  # fmt: skip


def exchange(reg: OutboundRegistration, trunk: Trunk, now: float) -> None:
    """Deliver every pending REGISTER to the trunk and its responses back."""
    for _ in range(10):
        requests = reg.requests_to_send()
        if not requests:
            return
        for req in requests:
            reg.receive_response(trunk.answer(req, now), now)


def test_registers_with_digest_and_refreshes_at_50_to_80_percent() -> None:
    trunk = Trunk()
    reg = OutboundRegistration(config(), rng=random.Random(1))
    reg.start(0.0)
    exchange(reg, trunk, 0.0)
    [event] = reg.events()
    assert isinstance(event, Registered) and event.expires == 600
    assert 300 <= event.refresh_at <= 480 and reg.next_deadline() == event.refresh_at
    # 401 then an authorized REGISTER, same Call-ID, CSeq increasing (§10.2, §22.2).
    assert [r.cseq.seq for r in trunk.seen] == [1, 2]
    assert len({r.call_id for r in trunk.seen}) == 1
    assert trunk.registrar.lookup("sip:alice@trunk.test", 1.0)
    reg.handle_timer(event.refresh_at - 0.01)
    assert reg.requests_to_send() == []  # not yet
    reg.handle_timer(event.refresh_at)
    exchange(reg, trunk, event.refresh_at)
    [again] = reg.events()
    assert isinstance(again, Registered) and trunk.seen[-1].cseq.seq > 2
    # Bound again before the first binding expired: no gap.
    assert trunk.registrar.lookup("sip:alice@trunk.test", 599.0)


def test_wrong_password_backs_off_exponentially_with_jitter() -> None:
    trunk = Trunk()
    reg = OutboundRegistration(config(password="nope", retry_base=2.0, retry_max=60.0),
                               rng=random.Random(3))  # fmt: skip
    now, delays = 0.0, []
    reg.start(now)
    for _ in range(7):
        exchange(reg, trunk, now)
        [event] = reg.events()
        assert isinstance(event, RegistrationFailed) and event.status == 401
        assert event.retry_at is not None
        delays.append(event.retry_at - now)
        now = event.retry_at
        reg.handle_timer(now)
    # Equal jitter: each delay lies in [b/2, b] for b = 2, 4, 8, … capped at 60.
    for i, delay in enumerate(delays):
        backoff = min(60.0, 2.0 * 2**i)
        assert backoff / 2 <= delay <= backoff
    assert len(set(delays)) == len(delays)  # jittered, not fixed
    assert reg.state is RegistrationState.REGISTERING


def test_timeout_then_recovery_resets_the_backoff() -> None:
    trunk = Trunk()
    reg = OutboundRegistration(config(), rng=random.Random(5))
    reg.start(0.0)
    assert len(reg.requests_to_send()) == 1
    reg.transaction_failed(32.0)  # Timer F
    [failed] = reg.events()
    assert isinstance(failed, RegistrationFailed) and failed.status is None
    assert failed.retry_at is not None and 33.0 <= failed.retry_at <= 34.0
    reg.handle_timer(failed.retry_at)
    exchange(reg, trunk, failed.retry_at)
    [ok] = reg.events()
    assert isinstance(ok, Registered) and reg.failures == 0


def test_interval_too_brief_is_retried_with_min_expires() -> None:
    trunk = Trunk(min_expires=900, default_expires=1800, max_expires=3600)
    reg = OutboundRegistration(config(expires=300), rng=random.Random(1))
    reg.start(0.0)
    exchange(reg, trunk, 0.0)
    [event] = reg.events()
    assert isinstance(event, Registered) and event.expires == 900
    assert trunk.seen[-1].expires == 900


def test_503_retry_after_is_honoured() -> None:
    reg = OutboundRegistration(config(credentials=None), rng=random.Random(1))
    reg.start(0.0)
    [req] = reg.requests_to_send()
    reg.receive_response(make_response(req, 503, headers=[("Retry-After", "120")]), 0.0)
    [event] = reg.events()
    assert isinstance(event, RegistrationFailed) and event.retry_at == 120.0


def test_stop_unregisters() -> None:
    trunk = Trunk()
    reg = OutboundRegistration(config(), rng=random.Random(1))
    reg.start(0.0)
    exchange(reg, trunk, 0.0)
    reg.events()
    reg.stop(10.0)
    exchange(reg, trunk, 10.0)
    [event] = reg.events()
    assert isinstance(event, Unregistered) and event.status == 200
    assert trunk.seen[-1].expires == 0
    assert trunk.registrar.lookup("sip:alice@trunk.test", 11.0) == []
    assert reg.next_deadline() is None and reg.state is RegistrationState.STOPPED


@pytest.mark.parametrize("bad", [{"expires": 0}, {"refresh_min": 0.9, "refresh_max": 0.5}])
def test_config_is_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        config(**bad)


async def test_registers_over_real_udp_to_our_registrar() -> None:
    server = await serve_sip(SipServerConfig(
        listen=(("127.0.0.1", 0),), users={"alice": "pw"}, realm=REALM,
        security=SecurityConfig(trusted=("127.0.0.0/8",)),
    ))  # fmt: skip
    counter = itertools.count()
    client_ua = UserAgent(token=lambda: f"c{next(counter)}")
    runner = SipRunner(client_ua)
    events: list[UaEvent] = []
    runner.add_event_hook(events.append)
    local = await runner.listen_udp("127.0.0.1", 0)
    srv = server.flow("UDP")
    reg = OutboundRegistration(config(
        registrar=SipUri(host="127.0.0.1", port=srv.port),
        aor=SipUri(user="alice", host="127.0.0.1"),
        contact=client_ua.contact_uri(local, "alice"),
        via=f"SIP/2.0/UDP 127.0.0.1:{local.port}",
        expires=120,
    ))  # fmt: skip
    loop = asyncio.get_running_loop()

    async def wait_for(kind: type) -> RegistrationUpdate:
        for _ in range(200):
            for e in events:
                if isinstance(e, RegistrationUpdate) and isinstance(e.event, kind):
                    events.remove(e)
                    return e
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind.__name__} in {events}")

    try:
        client_ua.add_registration(reg, srv, loop.time())
        runner.pump()
        update = await wait_for(Registered)
        assert isinstance(update.event, Registered) and update.event.expires == 120
        [binding] = server.ua.lookup("sip:alice@127.0.0.1", loop.time())
        assert binding.source == ("127.0.0.1", local.port)
        assert server.stats()["auth_challenges"] == 1
        client_ua.stop_registration(reg, loop.time())
        runner.pump()
        await wait_for(Unregistered)
        assert server.ua.lookup("sip:alice@127.0.0.1", loop.time()) == []
    finally:
        await runner.close()
        await server.close()


async def test_runner_close_unregisters() -> None:
    server = await serve_sip(SipServerConfig(listen=(("127.0.0.1", 0),), security=None))
    client_ua = UserAgent()
    runner = SipRunner(client_ua)
    local = await runner.listen_udp("127.0.0.1", 0)
    srv = server.flow("UDP")
    reg = OutboundRegistration(
        config(
            registrar=SipUri(host="127.0.0.1", port=srv.port),
            aor=SipUri(user="carol", host="127.0.0.1"),
            contact=client_ua.contact_uri(local, "carol"),
            via=f"SIP/2.0/UDP 127.0.0.1:{local.port}",
            credentials=None,
        )
    )
    loop = asyncio.get_running_loop()
    try:
        client_ua.add_registration(reg, srv, loop.time())
        runner.pump()
        for _ in range(200):
            if reg.registered:
                break
            await asyncio.sleep(0.01)
        assert server.ua.lookup("sip:carol@127.0.0.1", loop.time())
        await runner.close()  # sends Expires: 0 and waits for the 200
        assert reg.state is RegistrationState.STOPPED
        assert server.ua.lookup("sip:carol@127.0.0.1", loop.time()) == []
        assert client_ua.registrations == []
    finally:
        await runner.close()
        await server.close()
