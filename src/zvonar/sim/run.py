"""`simulate`: devices register, callers call, a report comes back. Loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass

from zvonar.sim.callers import Callers
from zvonar.sim.config import SimConfig, SimReport
from zvonar.sim.devices import Device, Devices, SimError
from zvonar.sim.endpoint import Endpoint
from zvonar.sim.numbers import CallerPool, caller_numbers
from zvonar.sip.ua import Flow

__all__ = ["SimTarget", "run_simulation", "simulate"]


@dataclass(frozen=True)
class SimTarget:
    """The PBX under test and the account the simulated people belong to."""

    host: str
    port: int
    slug: str
    employees: tuple[tuple[str, str], ...]  # (extension, SIP password)
    numbers: tuple[str, ...]  # the account's numbers, as callers dial them
    busy: tuple[tuple[str, float], ...] = ()  # per-extension busy probability overrides

    def __post_init__(self) -> None:
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:  # the simulator floods whatever it targets: never leave the host
            raise SimError(f"the simulator only targets loopback, not {self.host!r}")
        if not self.numbers:
            raise SimError("the account has no numbers to call")

    @property
    def realm(self) -> str:
        return f"{self.slug}.zvonar"


async def simulate(target: SimTarget, config: SimConfig) -> SimReport:
    """Register the employees' devices, place calls per ``config``, return what happened."""
    loop = asyncio.get_running_loop()
    rng = random.Random(config.seed)
    try:
        # A generator of its own: the pool's size does not change the seeded call stream.
        callers = CallerPool(
            config.caller_ids
            or caller_numbers(config.country, config.callers, random.Random(config.seed))
        )
    except ValueError as exc:  # a country without a number plan
        raise SimError(str(exc)) from None
    report = SimReport()
    pbx = Flow("UDP", target.host, target.port)
    phones, dialers = Endpoint(target.host), Endpoint(target.host)
    overrides = dict(target.busy)
    started = loop.time()
    try:
        await phones.start()
        await dialers.start()
        devices = Devices(
            phones,
            pbx,
            target.realm,
            [Device(ext, pw, overrides.get(ext)) for ext, pw in target.employees],
            config,
            report,
            rng,
        )
        if target.employees:
            await devices.register()
        await Callers(dialers, pbx, target.numbers, callers, config, report, rng).run()
        await devices.close()
    finally:
        report.rtp_packets_sent = sum(e.media.sent for e in (phones, dialers) if e.media)
        await dialers.close()
        await phones.close()
    report.elapsed = loop.time() - started
    return report


async def run_simulation(
    host: str,
    port: int,
    slug: str,
    employees: Sequence[tuple[str, str]],
    numbers: Sequence[str],
    config: SimConfig,
) -> SimReport:
    """:func:`simulate` with plain arguments."""
    return await simulate(SimTarget(host, port, slug, tuple(employees), tuple(numbers)), config)
