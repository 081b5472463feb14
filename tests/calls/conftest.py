from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.calls.rig import Pbx, running
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.io.testserver import EchoPbx
from zvonar.sip.ua import Flow, UserAgent


@dataclass
class Phone:
    """A signalling-only SIP peer (the stack's EchoPbx): users "answer", "busy", "ring"."""

    runner: SipRunner
    app: EchoPbx
    flow: Flow

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.flow.host}:{self.flow.port}"


async def make_phone() -> Phone:
    ua = UserAgent()
    app = EchoPbx(ua)
    runner = SipRunner(ua, app)
    app.flush = runner.pump
    flow = await runner.listen_udp("127.0.0.1", 0)
    return Phone(runner, app, flow)


@pytest.fixture
async def pbx() -> AsyncIterator[Pbx]:
    async with running(EmbeddedMediaEngine(media_timeout=0, host6=None)) as rig:
        yield rig


@pytest.fixture
async def phones() -> AsyncIterator[tuple[Phone, Phone]]:
    caller, callee = await make_phone(), await make_phone()
    yield caller, callee
    await caller.runner.close()
    await callee.runner.close()
