"""One inbound call through the real PBX, for e2e tests that check one feature of it: employee
101 (a SIPp phone running the test's scenario) registers with digest, a SIPp carrier runs the
test's scenario against the account's number, other SIPp peers (a carrier the PBX calls out
through, …) run alongside; every run's result comes back by name."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.e2e.test_early_media import _cmd
from tests.pbx.conftest import PASSWORD, Seeded
from tests.sip.peers.harness import (
    SippRun,
    finish_sipp,
    free_port,
    register_scenario,
    run_sipp,
    start_sipp_bound,
)
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import EmployeePatch, TrunkIn
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import PbxRuntime, start_pbx

__all__ = ["call_101", "mobile_of_101"]


async def mobile_of_101(app: Container, alpha: Seeded, mobile: str) -> int:
    """An IP trunk on a free port (returned: the SIPp "mobile network" listens there; the
    customer's calls come from it too) and 101's ``mobile``, rung with their devices."""
    port = free_port()
    await app.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="carrier",
            host="127.0.0.1",
            port=port,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["127.0.0.1/32"],
        ),
    )
    await app.directory.update_employee(
        alpha.principal, alpha.employee_id, EmployeePatch(mobile_numbers=[mobile], ring_mobile=True)
    )
    return port


async def call_101(
    app: Container,
    tmp_path: Path,
    alpha: Seeded,
    *,
    phone: str,
    carrier: str | Callable[[PbxRuntime], Awaitable[str]],
    others: tuple[tuple[str, str, int], ...] = (),
    carrier_port: int | None = None,
    **config: Any,
) -> tuple[PbxRuntime, dict[str, SippRun]]:
    """Start the PBX (``config``: PbxConfig fields beyond the port), register 101, start its
    ``phone`` scenario and ``others`` (name, scenario, port), run ``carrier`` (or the one it
    makes once the rest runs; from ``carrier_port`` if given) to the end and wait for the
    rest; the runtime is stopped on return (its counters stay readable)."""
    pbx_port, phone_port = free_port(), free_port()
    settings = {"media_timeout": 0, "digest_algorithms": ("MD5",), **config}
    rt = await start_pbx(app, PbxConfig(sip_port=pbx_port, **settings))
    remote = f"127.0.0.1:{pbx_port}"
    runs: dict[str, SippRun] = {}
    try:
        (tmp_path / "register.xml").write_text(register_scenario("101", alpha.realm))
        reg = await run_sipp(
            _cmd(tmp_path, remote, "register", phone_port, "-au", "101", "-ap", PASSWORD,
                 "-auth_uri", alpha.realm),
            workdir=tmp_path, name="register",
        )  # fmt: skip
        assert reg.stats.successful == 1, reg.describe()
        peers = []
        for name, xml, port in (("phone", phone, phone_port), *others):
            (tmp_path / f"{name}.xml").write_text(xml)
            trace = ("-trace_msg", "-message_file", str(tmp_path / f"{name}_messages.log"))
            cmd = _cmd(tmp_path, "", name, port, *trace)  # what each saw: for the test too
            peers.append((name, cmd, await start_sipp_bound(cmd, workdir=tmp_path, port=port)))
        if not isinstance(carrier, str):
            carrier = await carrier(rt)
        (tmp_path / "carrier.xml").write_text(carrier)
        runs["carrier"] = await run_sipp(
            _cmd(tmp_path, remote, "carrier", carrier_port or free_port()),
            workdir=tmp_path,
            name="carrier",
        )
        for name, cmd, proc in peers:
            runs[name] = await finish_sipp(proc, cmd, workdir=tmp_path, name=name, wait=10)
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
    return rt, runs
