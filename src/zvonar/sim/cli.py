"""The typer-free body of ``zvonar simulate`` (the CLI module wires options to it)."""

from __future__ import annotations

import asyncio

from zvonar.sim.config import Dist, SimConfig, SimReport
from zvonar.sim.run import run_simulation

__all__ = ["cli_simulate"]


def cli_simulate(
    *,
    host: str,
    port: int,
    account: str,
    employees: list[tuple[str, str]],
    numbers: list[str],
    minutes: float = 2.0,
    rate: float = 30.0,
    day_seconds: float = 0.0,
    start_hour: float = 9.0,
    max_calls: int = 1000,
    answer_delay: str = "0.5..3",
    talk_time: str = "lognormal:10:0.6",
    patience: str = "5..20",
    busy: float = 0.1,
    rtp: bool = True,
    seed: int | None = None,
) -> SimReport:
    """Run one bounded simulation and return its report (the caller prints ``summary()``).

    ``employees``/``numbers`` come from the account (the CLI reads them from the database
    or the demo credentials); distributions use :meth:`Dist.parse` syntax.
    """
    config = SimConfig(
        duration=minutes * 60,
        rate_per_minute=rate,
        day_seconds=day_seconds,
        start_hour=start_hour,
        max_calls=max_calls,
        answer_delay=Dist.parse(answer_delay),
        talk_time=Dist.parse(talk_time),
        patience=Dist.parse(patience),
        busy_probability=busy,
        rtp=rtp,
        seed=seed,
    )
    return asyncio.run(run_simulation(host, port, account, employees, numbers, config))
