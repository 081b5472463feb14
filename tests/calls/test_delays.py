"""Post-dial delay (calls/delays.py): the histogram's buckets, and what the B2BUA counts —
a call rung directly, once, not one we answered first for a menu or a queue."""

from __future__ import annotations

import math
from pathlib import Path

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from tests.calls.test_steps import FakeSession, ScriptedRoute
from tests.media.engine.phone import tone_pcm
from zvonar.calls.delays import DelayHistogram
from zvonar.calls.plan import Enqueue, Plan, QueueOffer, Wave
from zvonar.media.wav import encode_wav


def test_buckets_are_cumulative_and_inclusive() -> None:
    h = DelayHistogram((0.001, 0.01, 0.1))
    for seconds in (0.0005, 0.001, 0.002, 0.5, 7.0):
        h.observe(seconds)
    assert h.buckets() == [(0.001, 2), (0.01, 3), (0.1, 3), (math.inf, 5)]
    assert h.count == 5 and math.isclose(h.total, 7.5035)


async def test_a_call_rung_directly_counts_once(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    waves = (Wave((target(callee, "busy"),), 5), Wave((target(callee, "answer"),), 5))
    pbx.resolver.plans["100"] = Plan(ACCOUNT, waves)  # two waves: the first INVITE counts
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    pdd = pbx.b2bua.post_dial_delay
    assert pdd.count == 1 and 0 < pdd.total < 1.0
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_a_call_we_answer_first_does_not_count(
    pbx: Pbx, phones: tuple[Phone, Phone], tmp_path: Path
) -> None:
    caller, callee = phones
    music = tmp_path / "music.wav"
    music.write_bytes(encode_wav(tone_pcm(600.0, 0.3)))
    session = FakeSession()
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (), route=ScriptedRoute([Enqueue(session, music)]))
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200  # the queue's music: answered by us
    await session.wait_for("enter")
    assert session.notify is not None
    session.notify(QueueOffer(1, (target(callee, "answer"),), 5))
    await session.wait_for("answered")
    assert pbx.b2bua.post_dial_delay.count == 0
    hang_up(caller, leg)
    await pbx.wait_ended()
