"""What a leg's end says of its media (teardown's ``_quality``): the engine's LegStats,
clamped and rounded to what LegEnded/CallEnded accept, each figure only once it is known."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import pytest

from zvonar.calls import teardown
from zvonar.calls.events import CallEnded, Disposition, HangupSide, LegEnded, LegEndReason
from zvonar.media.engine import LegStats
from zvonar.media.errors import MediaError

if TYPE_CHECKING:
    from zvonar.calls.call import Call

AT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@dataclass
class _Engine:
    stats_of: dict[str, LegStats] = field(default_factory=dict)

    async def stats(self, media_id: str) -> LegStats:
        found = self.stats_of.get(media_id)
        if found is None:
            raise MediaError(f"no leg {media_id}")
        return found


@dataclass
class _Host:
    engine: _Engine
    tracked: set[str]

    def tracks_media(self, media_id: str) -> bool:
        return media_id in self.tracked


@dataclass
class _Call:
    host: _Host
    prompt_media: str | None = None  # voicemail's own leg: the call's, though untracked


def _call(
    *stats: LegStats, tracked: set[str] | None = None, prompt_media: str | None = None
) -> Call:
    engine = _Engine({s.leg_id: s for s in stats})
    host = _Host(engine, tracked if tracked is not None else set(engine.stats_of))
    return cast("Call", _Call(host, prompt_media))


async def test_the_peers_report_and_the_round_trip_are_carried_clamped_and_rounded() -> None:
    stats = LegStats(
        leg_id="m1",
        loss=0.0123456,
        jitter_ms=3.14159,
        mos=4.2345,
        srtp=True,
        peer_loss=0.0456789,
        peer_jitter_ms=7.777,
        rtt_ms=41.236,
    )
    quality = await teardown._quality(_call(stats), "m1")
    assert quality == {
        "loss": 0.0123,
        "jitter_ms": 3.14,
        "mos": 4.23,
        "srtp": True,
        "peer_loss": 0.0457,
        "peer_jitter_ms": 7.78,
        "rtt_ms": 41.24,
    }
    # What the events accept: the figures go into LegEnded and CallEnded unchanged.
    ended = CallEnded(
        account_id=uuid.uuid4(),
        call_id="c1",
        disposition=Disposition.answered,
        ended_at=AT,
        hangup=HangupSide.caller,
        **quality,  # type: ignore[arg-type]
    )
    assert (ended.peer_loss, ended.peer_jitter_ms, ended.rtt_ms) == (0.0457, 7.78, 41.24)


@pytest.mark.parametrize(
    ("reported", "kept"),
    [((1.2, -0.5, -3.0), (1.0, 0.0, 0.0)), ((-0.01, 0.0, 0.0), (0.0, 0.0, 0.0))],
)
async def test_out_of_range_figures_are_clamped(
    reported: tuple[float, float, float], kept: tuple[float, float, float]
) -> None:
    # A peer's odd report: RFC 3550's cumulative lost count goes negative with duplicates,
    # and a round trip from a skewed LSR/DLSR may come out below zero.
    peer_loss, peer_jitter_ms, rtt_ms = reported
    stats = LegStats(
        leg_id="m1", mos=4.0, peer_loss=peer_loss, peer_jitter_ms=peer_jitter_ms, rtt_ms=rtt_ms
    )
    quality = await teardown._quality(_call(stats), "m1")
    assert (quality["peer_loss"], quality["peer_jitter_ms"], quality["rtt_ms"]) == kept
    LegEnded(  # and the event takes them
        account_id=uuid.uuid4(),
        call_id="c1",
        leg_id="a",
        reason=LegEndReason.completed,
        at=AT,
        **quality,  # type: ignore[arg-type]
    )


async def test_a_peer_that_reported_nothing_leaves_the_figures_out() -> None:
    quality = await teardown._quality(_call(LegStats(leg_id="m1", mos=4.3)), "m1")
    assert set(quality) == {"loss", "jitter_ms", "mos", "srtp"}


async def test_the_peers_report_is_kept_when_none_of_its_rtp_arrived() -> None:
    """A peer on hold (recvonly) sends no RTP, so no MOS, but still reports on ours."""
    stats = LegStats(leg_id="m1", peer_loss=0.0, peer_jitter_ms=2.5, rtt_ms=80.0)
    quality = await teardown._quality(_call(stats), "m1")
    assert quality == {"srtp": False, "peer_loss": 0.0, "peer_jitter_ms": 2.5, "rtt_ms": 80.0}


async def test_a_leg_that_is_gone_says_nothing() -> None:
    stats = LegStats(leg_id="m1", mos=4.3, peer_loss=0.1, rtt_ms=20.0)
    assert await teardown._quality(_call(stats, tracked=set()), "m1") == {}
    assert await teardown._quality(_call(stats, tracked={"m2"}), "m2") == {}  # MediaError
    assert await teardown._quality(_call(stats), None) == {}


async def test_voicemails_own_leg_is_the_calls() -> None:
    stats = LegStats(leg_id="vm", loss=0.0, jitter_ms=1.0, mos=4.4)
    call = _call(stats, tracked=set(), prompt_media="vm")
    assert await teardown._quality(call, "vm") == {
        "srtp": False,
        "loss": 0.0,
        "jitter_ms": 1.0,
        "mos": 4.4,
    }
