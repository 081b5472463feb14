"""The RTP port pool keeps released pairs warm, and never hands out one an old peer still
reaches (real sockets on loopback)."""

from __future__ import annotations

import socket

import pytest

from tests.sip.peers.harness import sipp_media_port
from zvonar.media.engine import AddressFamily, PortsExhaustedError
from zvonar.media.io.engine import EmbeddedMediaEngine
from zvonar.media.io.sockets import PortPool

V4 = AddressFamily.IP4
HOST = "127.0.0.1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def poke(sock: socket.socket) -> None:
    """A datagram from the old call's peer, who still sends."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.sendto(b"\x80\x00late rtp", (HOST, port(sock)))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def base() -> int:
    """Four free ports from this worker's slice below the kernel's ephemeral range: two pairs
    (a port the kernel handed to someone else would break the assertions on ports)."""
    return sipp_media_port(HOST)


def test_a_quiet_released_pair_is_handed_out_again(clock: Clock, base: int) -> None:
    pool = PortPool((base, base + 3), quiet=2.0, clock=clock)
    rtp, rtcp = pool.bind(HOST, V4)
    ports = port(rtp), port(rtcp)
    pool.release(rtp, rtcp, V4)
    assert pool.warm == 1

    clock.now += 2.0
    again = pool.bind(HOST, V4)
    assert again == (rtp, rtcp)
    assert (port(again[0]), port(again[1])) == ports
    assert pool.reused == 1 and pool.warm == 0
    pool.release(*again, V4)
    pool.close()
    assert rtp.fileno() == -1 and rtcp.fileno() == -1


def test_a_pair_released_moments_ago_waits_while_the_range_has_ports(
    clock: Clock, base: int
) -> None:
    pool = PortPool((base, base + 3), quiet=2.0, clock=clock)
    first = pool.bind(HOST, V4)
    pool.release(*first, V4)
    clock.now += 1.9
    second = pool.bind(HOST, V4)
    assert port(second[0]) != port(first[0])
    assert pool.reused == 0 and pool.warm == 1
    for pair in (first, second):
        pair[0].close()
        pair[1].close()


@pytest.mark.parametrize("which", ["rtp", "rtcp"])
def test_a_warm_pair_its_old_peer_still_reaches_is_closed_not_reused(
    clock: Clock, base: int, which: str
) -> None:
    pool = PortPool((base, base + 3), quiet=2.0, clock=clock)  # two pairs
    rtp, rtcp = pool.bind(HOST, V4)
    old = port(rtp)
    pool.release(rtp, rtcp, V4)
    poke(rtp if which == "rtp" else rtcp)
    clock.now += 5.0

    fresh = pool.bind(HOST, V4)
    assert port(fresh[0]) != old
    assert rtp.fileno() == -1 and rtcp.fileno() == -1
    assert pool.discarded == 1 and pool.reused == 0
    # Its port went back to the range, reused last: with the other pair taken it comes next.
    last = pool.bind(HOST, V4)
    assert port(last[0]) == old
    for pair in (fresh, last):
        pair[0].close()
        pair[1].close()


def test_with_the_range_used_up_a_young_silent_pair_is_handed_out(clock: Clock, base: int) -> None:
    pool = PortPool((base, base + 1), quiet=2.0, clock=clock)  # one pair
    pair = pool.bind(HOST, V4)
    with pytest.raises(PortsExhaustedError):
        pool.bind(HOST, V4)
    pool.release(*pair, V4)
    assert pool.bind(HOST, V4) == pair
    pool.release(*pair, V4)
    poke(pair[0])
    with pytest.raises(PortsExhaustedError):  # closed, its port back: bound afresh
        pool.bind(HOST, V4)
    assert pool.discarded == 1


def test_at_most_warm_max_pairs_wait_the_oldest_is_closed(clock: Clock) -> None:
    pool = PortPool(None, warm_max=2, clock=clock)
    pairs = [pool.bind(HOST, V4) for _ in range(3)]
    for pair in pairs:
        pool.release(*pair, V4)
    assert pool.warm == 2
    assert pairs[0][0].fileno() == -1 and pairs[0][1].fileno() == -1
    assert all(sock.fileno() != -1 for pair in pairs[1:] for sock in pair)
    pool.close()
    assert pool.warm == 0
    assert all(sock.fileno() == -1 for pair in pairs for sock in pair)


async def test_the_engine_reuses_a_released_legs_ports_and_closes_them_when_it_closes(
    base: int,
) -> None:
    engine = EmbeddedMediaEngine(media_timeout=0, port_range=(base, base + 3), host6=None)
    await engine.start()
    try:
        first = await engine.allocate("c1", "a")
        await engine.release("a")
        # The range has another pair: that one is bound while the released pair settles.
        second = await engine.allocate("c1", "b")
        assert second.port != first.port
        # The range is used up now: the released pair, silent, serves the third leg.
        third = await engine.allocate("c1", "c")
        assert (third.port, third.rtcp_port) == (first.port, first.rtcp_port)
        await engine.release("b")
        await engine.release("c")
    finally:
        await engine.close()
    for p in (first.port, first.rtcp_port, second.port, second.rtcp_port):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, p))  # free again: nothing left open
