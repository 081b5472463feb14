"""The adapter's reading of rtpengine's ``query`` replies (sans-IO; the shape is what
rtpengine 10.5 answers, as tests/media/rtpengine/test_adapter.py sees it for real)."""

from __future__ import annotations

from zvonar.media.engine import AddressFamily
from zvonar.media.rtpengine.bencode import BValue
from zvonar.media.rtpengine.pairs import Pair, Slot, last_heard, leg_stats, streams_by_tag


def _stream(port: int, packets: int, last: int, errors: int = 0) -> dict[str, BValue]:
    stats: dict[str, BValue] = {"packets": packets, "bytes": packets * 172, "errors": errors}
    return {"local port": port, "last packet": last, "stats": stats}


def _reply(a: dict[str, BValue], b: dict[str, BValue]) -> dict[str, BValue]:
    rtcp = _stream(0, 1, 0)
    return {
        "SSRC": {},
        "tags": {
            "a": {"tag": "a", "medias": [{"streams": [a, rtcp]}]},
            "b": {"tag": "b", "medias": [{"streams": [b, rtcp]}]},
        },
    }


def _pair(bridged: bool) -> Pair:
    slots = (Slot("a", "127.0.0.1", 40000, "caller"), Slot("b", "127.0.0.1", 40002, "agent"))
    return Pair("ng-1", "call-1", AddressFamily.IP4, slots, bridged=bridged)


def test_each_tag_gives_its_rtp_stream() -> None:
    streams = streams_by_tag(_reply(_stream(40000, 50, 1000), _stream(40002, 30, 1001)))
    assert {tag: s["local port"] for tag, s in streams.items()} == {"a": 40000, "b": 40002}
    assert streams_by_tag({"tags": {"a": {"medias": []}}}) == {}


def test_a_legs_counters_and_what_was_forwarded_to_it() -> None:
    streams = streams_by_tag(_reply(_stream(40000, 50, 1000, errors=2), _stream(40002, 30, 1)))
    pair = _pair(bridged=True)
    stats = leg_stats(pair, pair.slots[0], streams)
    assert (stats.leg_id, stats.rx_packets, stats.rx_bytes, stats.dropped) == (
        "caller",
        50,
        8600,
        2,
    )
    assert (stats.tx_packets, stats.tx_bytes) == (30, 5160)  # the agent's, relayed to it
    assert leg_stats(_pair(bridged=False), pair.slots[0], streams).tx_packets == 0
    assert stats.mos is None and stats.loss == 0.0


def test_last_heard_is_the_last_packet_or_the_configuration() -> None:
    slot = Slot("a", "127.0.0.1", 40000, "caller", configured_at=1000.0)
    assert last_heard(slot, _stream(40000, 5, 1005)) == 1005.0
    assert last_heard(slot, _stream(40000, 5, 990)) == 1000.0  # before this configuration
    assert last_heard(slot, _stream(40000, 0, 0)) == 1000.0  # nothing sent yet
    assert last_heard(slot, {}) == 1000.0
