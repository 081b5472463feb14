"""A private userspace rtpengine on loopback for the adapter tests (skipped without it).

It is started once per session with the kernel module disabled (``--table=-1``), pcap
recording into a temporary directory and DTMF logging to a UDP port the adapter listens on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.media.engine.conftest import Events
from tests.media.engine.phone import close_all_phones
from tests.support.rtpengine import Daemon
from zvonar.media.rtpengine import RtpengineMediaEngine


@pytest.fixture(autouse=True)
async def _close_phones() -> AsyncIterator[None]:
    yield
    close_all_phones()


@pytest.fixture
async def rtpe(rtpengine_daemon: Daemon) -> AsyncIterator[RtpengineMediaEngine]:
    engine = RtpengineMediaEngine(
        "127.0.0.1",
        rtpengine_daemon.ng_port,
        recording_dir=rtpengine_daemon.recording_dir,
        dtmf_listen=("127.0.0.1", rtpengine_daemon.dtmf_port),
        media_timeout=0,
    )
    await engine.start()
    yield engine
    with contextlib.suppress(Exception):
        await engine.close()


@pytest.fixture
def events(rtpe: RtpengineMediaEngine) -> Events:
    return Events(rtpe)
