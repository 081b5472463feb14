"""The rtpengine adapter's model of its legs (sans-IO): each :class:`Pair` is one rtpengine
call with two tags, a :class:`Slot` per tag holding at most one of Zvonar's legs, and what
rtpengine's ``query`` replies say about them — the streams per tag, a leg's counters
(:func:`leg_stats`), when its peer was last heard (:func:`last_heard`). The adapter
(:mod:`zvonar.media.rtpengine.adapter`) does the ``ng`` I/O around them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from zvonar.media.engine import AddressFamily, LegStats, RemoteMedia, UnknownLegError
from zvonar.media.rtpengine.bencode import BValue
from zvonar.media.rtpengine.ng import as_dict, as_int, as_list

__all__ = ["Pair", "Playback", "Recording", "Slot", "last_heard", "leg_stats", "streams_by_tag"]


@dataclass
class Slot:
    tag: str
    address: str
    port: int
    leg_id: str | None = None
    remote: RemoteMedia | None = None
    configured_at: float = 0.0  # wall clock, as rtpengine's "last packet"
    timed_out_at: float | None = None
    playback: Playback | None = None


@dataclass
class Playback:
    playback_id: str
    timer: asyncio.TimerHandle | None = None


@dataclass
class Pair:
    ng_call_id: str
    call_id: str
    family: AddressFamily
    slots: tuple[Slot, Slot]
    bridged: bool = False
    version: int = 1
    recordings: list[str] = field(default_factory=list)

    def slot_of(self, leg_id: str) -> Slot:
        for slot in self.slots:
            if slot.leg_id == leg_id:
                return slot
        raise UnknownLegError(f"no such leg: {leg_id!r}")

    def other(self, slot: Slot) -> Slot:
        return self.slots[1] if slot is self.slots[0] else self.slots[0]


@dataclass
class Recording:
    recording_id: str
    pair: Pair
    leg_id: str
    slot: Slot  # the recorded leg's side: the left channel, even once that leg is released
    path: Path
    started: float  # wall clock


def streams_by_tag(reply: dict[str, BValue]) -> dict[str, dict[str, BValue]]:
    """A ``query`` reply's first stream (RTP) of each tag's first media, by tag."""
    out = {}
    for tag, info in as_dict(reply.get("tags", {})).items():
        medias = as_list(as_dict(info).get("medias", []))
        if medias:
            streams = as_list(as_dict(medias[0]).get("streams", []))
            if streams:
                out[tag] = as_dict(streams[0])
    return out


def leg_stats(pair: Pair, slot: Slot, streams: dict[str, dict[str, BValue]]) -> LegStats:
    """``slot``'s leg's counters from ``streams_by_tag`` (no loss, jitter or MOS: rtpengine
    computes none while it only forwards)."""
    mine = as_dict(streams.get(slot.tag, {}).get("stats", {}))
    theirs = as_dict(streams.get(pair.other(slot).tag, {}).get("stats", {}))
    return LegStats(
        leg_id=slot.leg_id or "?",
        rx_packets=as_int(mine.get("packets", 0)),
        rx_bytes=as_int(mine.get("bytes", 0)),
        # What the partner sent is what rtpengine forwarded to us while bridged.
        tx_packets=as_int(theirs.get("packets", 0)) if pair.bridged else 0,
        tx_bytes=as_int(theirs.get("bytes", 0)) if pair.bridged else 0,
        dropped=as_int(mine.get("errors", 0)),
    )


def last_heard(slot: Slot, stream: dict[str, BValue]) -> float:
    """When (wall clock) ``slot``'s peer last sent, by its stream's ``last packet``; the
    moment it was configured if it has sent nothing since (one-second resolution)."""
    packets = as_int(as_dict(stream.get("stats", {})).get("packets", 0))
    if packets == 0:
        return slot.configured_at
    return max(float(as_int(stream.get("last packet", 0))), slot.configured_at)
