"""The running PBX seen from the API: ``GET /api/v1/pbx/status`` and ``GET /metrics``.

A real PBX (``start_pbx``) with a SIPp phone registered as 101@alpha.zvonar (digest), a trunk
registering at a SIPp carrier registrar (digest, then the un-REGISTER on stop), and a second
account "beta" with nothing live. Checked over HTTP (the app on an ASGI transport, its
``state.pbx`` set as the lifespan does): the account's phone with where it registered from,
the trunk's state, calls in progress; a second tenant sees none of it; no PBX → 503
``pbx_unavailable``; /metrics answers 404 until ``metrics_token`` is set, 401 for any other
token (an account's API token included), and then counts what really happened — the live
registration, the registered trunk, an INVITE refused with 503 by overload control.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.e2e.appkit import sqlite_container
from tests.sip.peers.harness import SIPP, free_port, register_scenario, run_sipp, sipp_command
from zvonar.accounts.models import Role
from zvonar.app import create_app
from zvonar.container import Container
from zvonar.core.bus import InProcessBus
from zvonar.directory.models import Transport, TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import PbxRuntime, start_pbx
from zvonar.pbx.status import Metric, render_prometheus
from zvonar.pbx.trunk_registration import RegState
from zvonar.sip.io.tls import HANDSHAKE_FAILURES

from .conftest import NUMBER, PASSWORD, seed_account
from .test_e2e_sipp import refused_call
from .test_trunk_registration import PASSWORD as TRUNK_PASSWORD
from .test_trunk_registration import USER as TRUNK_USER
from .test_trunk_registration import Carrier, _exchange, registrar_xml

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

METRICS_TOKEN = "scrape-token-for-tests"


@dataclass
class Env:
    container: Container
    rt: PbxRuntime
    api: httpx.AsyncClient
    admin: dict[str, str]
    operator: dict[str, str]
    beta: dict[str, str]
    trunk_id: uuid.UUID
    phone_port: int
    pbx_port: int
    workdir: Path


async def _token(c: Container, account_id: uuid.UUID, role: Role, email: str) -> dict[str, str]:
    user = await c.accounts.create_user(
        account_id, email=email, name="Someone", role=role, password="a-long-password-1"
    )
    issued = await c.accounts.create_token(account_id, name=email, role=role, created_by=user.id)
    return {"Authorization": f"Bearer {issued.secret}"}


async def _until_registered(rt: PbxRuntime, trunk_id: uuid.UUID) -> None:
    loop = rt.runner.loop
    deadline = loop.time() + 15
    while (st := rt.registrations.get(trunk_id)) is None or st.state is not RegState.registered:
        if loop.time() > deadline:
            raise AssertionError(f"trunk not registered: {st}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    container = await sqlite_container(tmp_path)
    container.settings.metrics_token = None  # off until a test turns it on
    alpha = await seed_account(container, "alpha")
    beta = await seed_account(container, "beta", number="+74951234568")
    carrier = Carrier(tmp_path)
    await carrier.start(
        registrar_xml(
            _exchange(0, expires="[0-9]+", grant="300"),
            _exchange(1, expires="0", grant=None),  # the un-REGISTER when the PBX stops
        )
    )
    trunk = await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="carrier",
            host="127.0.0.1",
            port=carrier.port,
            transport=Transport.udp,
            auth_mode=TrunkAuth.registration,
            username=TRUNK_USER,
            password=TRUNK_PASSWORD,
        ),
    )
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    app = create_app(container)
    app.state.pbx, app.state.acd = rt, rt.acd  # what the lifespan does with a PBX
    phone_port = free_port()
    try:
        (tmp_path / "register.xml").write_text(register_scenario("101", alpha.realm, expires=300))
        cmd = sipp_command(
            f"127.0.0.1:{pbx_port}", workdir=tmp_path, local_port=phone_port, calls=1,
            timeout=15, scenario_file=tmp_path / "register.xml", name="register",
        )  # fmt: skip
        cmd += ["-au", "101", "-ap", PASSWORD, "-auth_uri", alpha.realm]
        run = await run_sipp(cmd, workdir=tmp_path, name="register")
        assert run.stats.successful == 1, run.describe()
        await _until_registered(rt, trunk.id)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            yield Env(
                container,
                rt,
                api,
                await _token(container, alpha.account_id, Role.admin, "admin@alpha.example"),
                await _token(container, alpha.account_id, Role.operator, "op@alpha.example"),
                await _token(container, beta.account_id, Role.admin, "admin@beta.example"),
                trunk.id,
                phone_port,
                pbx_port,
                tmp_path,
            )
    finally:
        await rt.stop()
        ok, log = await carrier.finish()
        assert ok == 1, log  # both exchanges, the un-REGISTER included
        await container.aclose()  # the journal's writes land before the db goes


async def test_status_shows_the_accounts_phones_trunks_and_calls(env: Env) -> None:
    r = await env.api.get("/api/v1/pbx/status", headers=env.admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["calls_in_progress"] == 0
    [phone] = body["phones"]
    assert phone["user"] == "101" and phone["transport"] == "UDP"
    assert phone["source"] == f"127.0.0.1:{env.phone_port}"
    assert phone["contact"].startswith("sip:") and 0 < phone["expires_in"] <= 300
    [trunk] = body["trunks"]
    assert trunk["trunk_id"] == str(env.trunk_id) and trunk["name"] == "carrier"
    assert trunk["state"] == "registered" and trunk["expires"] == 300
    assert trunk["last_status"] == 200 and trunk["failures"] == 0

    # An operator reads it too (directory.read); another tenant sees nothing of alpha's.
    op = await env.api.get("/api/v1/pbx/status", headers=env.operator)
    assert op.status_code == 200 and op.json()["phones"] == body["phones"]
    other = (await env.api.get("/api/v1/pbx/status", headers=env.beta)).json()
    assert other == {"calls_in_progress": 0, "phones": [], "trunks": []}
    anonymous = await env.api.get("/api/v1/pbx/status")
    assert anonymous.status_code == 401


async def test_status_without_a_pbx_in_the_process_is_503(env: Env) -> None:
    app = create_app(env.container)  # state.pbx stays None: an API-only process
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        r = await api.get("/api/v1/pbx/status", headers=env.admin)
    assert r.status_code == 503 and r.json()["error"]["code"] == "pbx_unavailable"


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_metrics_need_the_operators_token_and_count_what_happened(env: Env) -> None:
    off = await env.api.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert off.status_code == 404 and off.json()["error"]["code"] == "not_found"

    env.container.settings.metrics_token = SecretStr(METRICS_TOKEN)
    for headers in ({}, env.admin, {"Authorization": "Bearer wrong"}):
        r = await env.api.get("/metrics", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"

    # Overload control refuses a real INVITE (the test, not the loop, says it is overloaded).
    await env.rt.lag.stop()
    guard = env.rt.b2bua.overload
    assert guard is not None
    for _ in range(guard.late_ticks):
        guard.observe(1.0)
    scenario = env.workdir / "refused.xml"
    scenario.write_text(refused_call(NUMBER))
    run = await run_sipp(
        sipp_command(
            f"127.0.0.1:{env.pbx_port}", workdir=env.workdir, local_port=free_port(), calls=1,
            timeout=15, scenario_file=scenario, name="refused",
        ),
        workdir=env.workdir,
        name="refused",
    )  # fmt: skip
    assert run.stats.successful == 1, run.describe()
    # A name looked up twice: asked (the system resolver: /etc/hosts), then from the cache.
    assert await env.rt.dns.addresses("localhost") == await env.rt.dns.addresses("localhost")

    r = await env.api.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE zvonar_overload_rejected_invites_total counter" in r.text
    got = _samples(r.text)
    assert got["zvonar_pbx_up"] == 1
    assert got["zvonar_overload_rejected_invites_total"] == 1
    assert got["zvonar_overload_shedding"] == 1
    assert got["zvonar_event_loop_lag_seconds"] == 1.0
    assert got["zvonar_calls_in_progress"] == 0 and got["zvonar_media_legs"] == 0
    assert got["zvonar_sip_registrations"] == 1
    assert got['zvonar_trunk_registrations{state="registered"}'] == 1
    assert got['zvonar_trunk_registrations{state="failed"}'] == 0
    dns = env.rt.dns.stats
    assert (
        (dns.hits, dns.misses, dns.failures)
        == (1, 1, 0)
        == (
            got['zvonar_dns_lookups_total{result="cached"}'],
            got['zvonar_dns_lookups_total{result="asked"}'],
            got['zvonar_dns_lookups_total{result="failed"}'],
        )
    )
    sip = env.rt.runner.all_stats()
    assert got['zvonar_sip_messages_total{direction="in"}'] == sip["received"] > 0
    assert got['zvonar_sip_messages_total{direction="out"}'] == sip["sent"] > 0
    assert got['zvonar_sip_rejected_total{class="5xx"}'] == sip["rejected_5xx"]
    assert got['zvonar_sip_connections_total{event="tls_handshake_failed"}'] == 0
    for reason in HANDSHAKE_FAILURES:  # why, each exposed (tests/sip/test_io_tls.py counts)
        label = f'zvonar_sip_tls_handshake_failures_total{{reason="{reason}"}}'
        assert got[label] == sip[f"tls_failed_{reason}"] == 0
    assert got["zvonar_journal_dropped_events_total"] == 0
    bus = env.container.bus
    assert isinstance(bus, InProcessBus)  # the e2e container's RecordingBus
    assert got["zvonar_bus_events_published_total"] == bus.published > 0
    # The refused INVITE rang nobody: an empty post-dial delay histogram, all of it exposed.
    assert "# TYPE zvonar_post_dial_delay_seconds histogram" in r.text
    assert got['zvonar_post_dial_delay_seconds_bucket{le="0.005"}'] == 0
    assert got['zvonar_post_dial_delay_seconds_bucket{le="+Inf"}'] == 0
    assert got["zvonar_post_dial_delay_seconds_count"] == 0


def test_prometheus_text_escapes_labels_and_writes_help_once() -> None:
    text = render_prometheus(
        [
            Metric("a_total", "counter", "A.", 3),
            Metric("g", "gauge", "G.", 0.25, (("k", 'x"y\\z\n'),)),
            Metric("g", "gauge", "G.", 2.0, (("k", "b"),)),
            Metric("n", "gauge", "N.", float("nan")),
            Metric("h", "histogram", "H.", 1, (("le", "0.5"),), "_bucket"),
            Metric("h", "histogram", "H.", 2, (("le", "+Inf"),), "_bucket"),
            Metric("h", "histogram", "H.", 1.25, (), "_sum"),
        ]
    )
    assert text == (
        "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n"
        '# HELP g G.\n# TYPE g gauge\ng{k="x\\"y\\\\z\\n"} 0.25\ng{k="b"} 2\n'
        "# HELP n N.\n# TYPE n gauge\nn NaN\n"
        '# HELP h H.\n# TYPE h histogram\nh_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\n'
        "h_sum 1.25\n"
    )


def test_every_sip_counter_exposed_is_one_the_transports_keep() -> None:
    from zvonar.pbx.status import _SIP_COUNTERS
    from zvonar.sip.io.stats import TransportStats
    from zvonar.sip.ua.events import UaCounters

    kept = TransportStats().as_dict().keys() | UaCounters().as_dict().keys()
    exposed = {c for _help, _label, counters in _SIP_COUNTERS.values() for c in counters}
    assert exposed <= kept, exposed - kept
