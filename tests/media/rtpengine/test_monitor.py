"""The rtpengine adapter refuses silent listening (see its module docstring): the call layer
gets UnsupportedError and answers the supervisor accordingly; nothing is half set up."""

from __future__ import annotations

import pytest

from zvonar.media.engine import UnknownLegError, UnsupportedError
from zvonar.media.rtpengine import RtpengineMediaEngine

pytestmark = pytest.mark.peer


async def test_monitor_is_unsupported_and_leaves_the_pair_alone(
    rtpe: RtpengineMediaEngine,
) -> None:
    for leg_id in ("c", "o"):
        await rtpe.allocate("call-1", leg_id)
    await rtpe.allocate("call-2", "s")
    await rtpe.bridge("c", "o")
    with pytest.raises(UnsupportedError):
        await rtpe.monitor("s", "c")
    with pytest.raises(UnknownLegError):
        await rtpe.monitor("s", "nope")
    await rtpe.unmonitor("s")  # monitors nothing: a no-op
    with pytest.raises(UnknownLegError):
        await rtpe.unmonitor("nope")
    await rtpe.unbridge("c")  # the pair still works as before
