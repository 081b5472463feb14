"""The simulator against the real PBX in-process: its report matches the journal."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import zvonar.pbx.models  # noqa: F401  (sip_bindings on Base.metadata before create_all)
from tests.sip.peers.harness import free_port
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.app import create_container
from zvonar.calls.events import Disposition
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.directory.schemas import EmployeeIn, NumberIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import PbxRuntime, start_pbx
from zvonar.settings import Settings
from zvonar.sim import Dist, SimConfig, SimError, SimTarget, simulate
from zvonar.sim.config import OFFICE_DAY, percentile
from zvonar.sim.numbers import caller_numbers
from zvonar.store.base import Base

NUMBER = "+74951234567"
STAFF = (("101", "pw-101-secret"), ("102", "pw-102-secret"), ("103", "pw-103-secret"))


@dataclass
class Office:
    container: Container
    rt: PbxRuntime
    principal: Principal


def _free_port() -> int:
    return free_port()


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Office]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'sim.sqlite3'}",
        secret_key="test-secret-key-not-for-production",
    )
    c = create_container(settings, bus=RecordingBus())
    async with c.db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    account = await c.accounts.create_account("Sim office", "simoffice")
    p = Principal(account_id=account.id, role=Role.admin)
    for ext, pw in STAFF:
        await c.directory.create_employee(
            p, EmployeeIn(name=f"E{ext}", extension=ext, sip_password=pw)
        )
    num = await c.directory.add_number(p, NumberIn(number=NUMBER, label="Sales"))
    scheme = await c.routing.create_scheme(
        p,
        "Main",
        {
            "branches": {
                "working": [
                    {
                        "type": "ring",
                        "targets": [{"employee": "101"}, {"employee": "102"}],
                        "timeout": 2,
                    },
                    {"type": "ring", "targets": [{"employee": "103"}], "timeout": 2},
                ]
            },
            "final": {"type": "hangup"},
        },
    )
    await c.routing.assign(p, num.id, scheme.id)
    rt = await start_pbx(c, PbxConfig(sip_port=_free_port(), sip_tcp=False, media_timeout=0))
    try:
        yield Office(c, rt, p)
    finally:
        await rt.stop()
        await c.aclose()  # the journal's writes land before the db goes


async def test_simulation_fills_the_journal_as_reported(office: Office) -> None:
    target = SimTarget("127.0.0.1", office.rt.udp.port, "simoffice", STAFF, (NUMBER,))
    config = SimConfig(
        duration=8,
        rate_per_minute=150,
        max_calls=10,
        answer_delay=Dist("uniform", 0.05, 0.5),
        talk_time=Dist("uniform", 0.1, 0.4),
        patience=Dist("uniform", 0.2, 2.5),
        busy_probability=0.2,
        rtp=True,
        drain_timeout=10,
        seed=7,
    )
    report = await simulate(target, config)
    await asyncio.wait_for(office.rt.b2bua.wait_idle(), 5)

    assert report.placed == 10
    assert report.finished == 10, report.summary()
    assert report.failed == 0, report.summary()
    assert report.answered > 0, report.summary()
    assert len(report.answer_waits) == report.answered
    assert report.rtp_packets_sent > 0

    listing = await office.container.journal.list_calls(office.principal, CallFilter(), limit=100)
    assert listing.total == 10
    got: dict[Disposition, int] = {}
    for call in listing.items:
        got[call.disposition] = got.get(call.disposition, 0) + 1
        assert call.dialed == NUMBER
    assert got.get(Disposition.answered, 0) == report.answered
    assert got.get(Disposition.abandoned, 0) == report.abandoned
    unanswered = got.get(Disposition.missed, 0) + got.get(Disposition.busy, 0)
    assert unanswered == report.rejected
    assert got.get(Disposition.failed, 0) == 0
    # Customers, not one number: callers of the account's country (RU) from the seed's pool,
    # some of them calling again.
    callers = [call.caller for call in listing.items]
    assert set(callers) <= set(caller_numbers("RU", config.callers, random.Random(config.seed)))
    assert 1 < len(set(callers)) < len(callers)
    # Devices unregistered on the way out.
    assert office.rt.lookup("sip:101@simoffice.zvonar") == []


async def test_callers_the_pbx_answers_itself_hang_up_after_their_talk_time(
    office: Office,
) -> None:
    """Voicemail answers at once (no ringing): each caller leaves its piece and hangs up,
    rather than holding on until the message limit or the end of the simulation."""
    c, p = office.container, office.principal
    line = "+74951234500"
    number = await c.directory.add_number(p, NumberIn(number=line, label="After hours"))
    scheme = await c.routing.create_scheme(
        p, "Messages", {"branches": {"working": [{"type": "voicemail"}]}}
    )
    await c.routing.assign(p, number.id, scheme.id)
    target = SimTarget("127.0.0.1", office.rt.udp.port, "simoffice", STAFF, (line,))
    config = SimConfig(
        duration=3,
        rate_per_minute=120,
        max_calls=4,
        talk_time=Dist("uniform", 0.3, 0.6),
        rtp=True,
        drain_timeout=10,
        seed=3,
    )
    report = await simulate(target, config)
    await asyncio.wait_for(office.rt.b2bua.wait_idle(), 5)
    assert report.placed == report.answered == report.pbx_answered == 4, report.summary()
    assert report.finished == 4 and report.failed == 0 and report.cut == 0, report.summary()
    assert report.device_answers == 0
    assert report.elapsed < 3 + 5  # nobody waited for voicemail's 120 s limit
    listing = await c.journal.list_calls(p, CallFilter(), limit=100)
    assert [call.dialed for call in listing.items] == [line] * 4


async def test_wrong_password_is_a_sim_error(office: Office) -> None:
    target = SimTarget("127.0.0.1", office.rt.udp.port, "simoffice", (("101", "nope"),), (NUMBER,))
    with pytest.raises(SimError, match="refused"):
        await simulate(target, SimConfig(duration=1, max_calls=1))


def test_only_loopback_targets() -> None:
    with pytest.raises(SimError, match="loopback"):
        SimTarget("192.0.2.1", 5060, "a", (), (NUMBER,))
    SimTarget("::1", 5060, "a", (), (NUMBER,))


def test_distributions_and_profile() -> None:
    rng = random.Random(1)
    assert Dist.parse("2") == Dist("fixed", 2.0)
    assert Dist.parse("1..4") == Dist("uniform", 1.0, 4.0)
    assert Dist.parse("exp:3").kind == "exponential"
    assert Dist.parse("lognormal:20:0.8") == Dist("lognormal", 20.0, 0.8)
    draws = [Dist("exponential", 2.0, cap=50).draw(rng) for _ in range(4000)]
    assert 1.8 < sum(draws) / len(draws) < 2.2
    assert all(1 <= Dist("uniform", 1, 4).draw(rng) <= 4 for _ in range(100))
    assert max(Dist("lognormal", 10, 2, cap=30).draw(rng) for _ in range(500)) == 30
    with pytest.raises(ValueError):
        Dist("uniform", 3, 1)

    flat = SimConfig(rate_per_minute=60)
    assert flat.rate_at(123.0) == flat.peak_rate == 1.0
    day = SimConfig(rate_per_minute=60, day_seconds=24, start_hour=0)
    mean = sum(OFFICE_DAY) / 24
    assert day.rate_at(3.5) == pytest.approx(OFFICE_DAY[3] / mean)  # 03:30, night
    assert day.rate_at(10.5) == pytest.approx(OFFICE_DAY[10] / mean)  # 10:30, the peak
    assert day.peak_rate == pytest.approx(max(OFFICE_DAY) / mean)
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile([], 0.5) is None
