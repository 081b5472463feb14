"""A loopback rig for B2BUA tests: the B2BUA on its own SipRunner with a media engine and a
recording bus, and a static resolver built from a dict the test fills in."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from zvonar.calls.b2bua import B2bua, RecordingPathFor
from zvonar.calls.events import CallEnded, CallEvent
from zvonar.calls.plan import InboundCall, Plan, Reject
from zvonar.core.bus import RecordingBus
from zvonar.media.engine import MediaEngine
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.ua import DEFAULT_ALLOW, Flow, UserAgent

ACCOUNT = uuid.UUID("00000000-0000-4000-8000-000000000001")

PlanFor = Callable[[InboundCall], Plan | Reject]


@dataclass
class StaticResolver:
    """dialed user → plan (or a function of the call); unknown numbers get 404."""

    plans: dict[str, Plan | Reject | PlanFor] = field(default_factory=dict)
    seen: list[InboundCall] = field(default_factory=list)

    async def __call__(self, call: InboundCall) -> Plan | Reject:
        self.seen.append(call)
        plan = self.plans.get(call.dialed)
        if plan is None:
            return Reject(404, "Not Found")
        return plan(call) if callable(plan) else plan


@dataclass
class Pbx:
    runner: SipRunner
    b2bua: B2bua
    bus: RecordingBus
    resolver: StaticResolver
    flow: Flow

    @property
    def address(self) -> str:
        return f"{self.flow.host}:{self.flow.port}"

    def events(self, call_id: str | None = None) -> list[CallEvent]:
        return [
            e
            for e in self.bus.events
            if isinstance(e, CallEvent) and (call_id is None or e.call_id == call_id)
        ]

    def kinds(self, call_id: str | None = None) -> list[str]:
        return [e.event_type for e in self.events(call_id)]

    async def wait_ended(self, count: int = 1, within: float = 10.0) -> list[CallEnded]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            ended = [e for e in self.bus.events if isinstance(e, CallEnded)]
            if len(ended) >= count:
                return ended
            if loop.time() > deadline:
                raise AssertionError(f"no CallEnded within {within} s: {self.kinds()}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.b2bua.close()
        await self.runner.close()


async def start_pbx(
    engine: MediaEngine,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    recording_path: RecordingPathFor | None = None,
) -> Pbx:
    ua = UserAgent(allow=(*DEFAULT_ALLOW, "REFER", "NOTIFY"))  # REFER: blind transfer
    runner = SipRunner(ua)
    flow = await runner.listen_udp(host, port)
    bus = RecordingBus()
    resolver = StaticResolver()
    b2bua = B2bua(runner, engine, bus, resolver, recording_path=recording_path)
    await b2bua.start()
    return Pbx(runner, b2bua, bus, resolver, flow)


@contextlib.asynccontextmanager
async def running(
    engine: MediaEngine, *, recording_path: RecordingPathFor | None = None
) -> AsyncIterator[Pbx]:
    """``start_pbx`` on ``engine`` for a fixture: the rig, then the engine, closed after."""
    rig = await start_pbx(engine, recording_path=recording_path)
    try:
        yield rig
    finally:
        await rig.close()
        await engine.close()
