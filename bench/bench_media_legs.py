"""What a media leg's set-up and release cost: ``allocate`` then ``release`` on the embedded
engine, with released port pairs kept warm (the default) and without (every leg binds two
fresh sockets and closes them: what each leg cost before the warm pool).

A call through the B2BUA opens one leg per phone rung plus the caller's, so three in
bench_b2bua.py's two-step scheme. Prints CPU (user + system) per leg, and how many pairs
were handed out warm.

    .venv/bin/python bench/bench_media_legs.py [--legs 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from zvonar.media.io import sockets  # noqa: E402
from zvonar.media.io.engine import EmbeddedMediaEngine  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(legs: int, *, warm: bool, live: int) -> tuple[float, float, int]:
    """``live`` legs stay allocated at any time (calls in progress), each released after
    ``live`` further allocations, as calls end in turn."""
    span = (20000, 29999)
    engine = EmbeddedMediaEngine(media_timeout=0, port_range=span, host6=None)
    clock = [0.0]  # 10 ms per leg: 100 legs/s
    # The bench's own pool, on its clock; warm_max 0: every released pair is closed.
    pool = sockets.PortPool(span, clock=lambda: clock[0], warm_max=None if warm else 0)
    engine._ports = pool
    await engine.start()
    try:
        # Calls end in turn: the pool reaches its steady state before the clock starts.
        for i in range(live):
            await engine.allocate("c", f"w{i}")
        for i in range(live):
            await engine.release(f"w{i}")
        clock[0] += 10.0
        t0, c0 = time.perf_counter(), cpu()
        for i in range(legs):
            clock[0] += 0.01
            await engine.allocate("c", f"l{i}")
            if i >= live:
                await engine.release(f"l{i - live}")
        wall, used = time.perf_counter() - t0, cpu() - c0
        return wall / legs * 1e6, used / legs * 1e6, pool.reused
    finally:
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legs", type=int, default=20_000)
    parser.add_argument("--live", type=int, default=300, help="legs allocated at any time")
    args = parser.parse_args()
    print(f"warm pool: a released pair waits {sockets.WARM_QUIET} s; 100 legs/s, {args.live} live")
    for warm in (False, True):
        wall, used, reused = asyncio.run(run(args.legs, warm=warm, live=args.live))
        name = "warm pairs reused" if warm else "fresh sockets    "
        print(
            f"{name}  allocate + release: {used:6.1f} us CPU per leg ({wall:6.1f} us wall), "
            f"{reused} of {args.legs} handed out warm"
        )


if __name__ == "__main__":
    main()
