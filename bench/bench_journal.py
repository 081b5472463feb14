"""Journal write throughput and call-path cost, on SQLite and PostgreSQL.

A synthetic stream of call events (per call: CallStarted, two CallRinging, CallAnswered,
LegEnded, CallEnded: 6 events) is published on the in-process bus with the journal attached,
``--concurrent`` calls interleaved the way a busy B2BUA interleaves them. Reported per backend:

- publish: how long ``bus.publish`` took per event (the time the call path waits): mean, p99;
- written: events/s and calls/s from the first publish until the journal holds every row
  (``journal.flush()`` when the journal writes behind, else when the last publish returns);
- CPU: this process's CPU time (every thread: aiosqlite's too) per call over the same span;
- rows: the closed call rows found afterwards (must equal the calls published).

``--rate R`` paces the stream at R calls/s (their events spread evenly, published every
5 ms) instead of publishing it all at once: the journal then writes small batches, as under
a B2BUA's steady load, and the CPU per call includes each batch's fixed cost.

    .venv/bin/python bench/bench_journal.py                       # SQLite, then PostgreSQL
    .venv/bin/python bench/bench_journal.py --backends sqlite --calls 5000
    .venv/bin/python bench/bench_journal.py --calls 600 --rate 60    # small batches
    .venv/bin/python bench/bench_journal.py --pg postgresql+asyncpg://postgres@127.0.0.1:5432/zv_x
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

EVENTS_PER_CALL = 6


def call_events(account_id: uuid.UUID, n: int) -> list[object]:
    from zvonar.calls.events import (
        CallAnswered,
        CallEnded,
        CallRinging,
        CallStarted,
        Direction,
        Disposition,
        HangupSide,
        LegEnded,
        LegEndReason,
        Target,
        TargetKind,
    )

    t0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    target = Target(TargetKind.employee, "Anna", uuid.uuid4())
    out: list[object] = []
    for i in range(n):
        cid, at = f"bench-{i}", t0 + timedelta(seconds=i)
        out.append(
            [
                CallStarted(
                    account_id=account_id,
                    call_id=cid,
                    direction=Direction.inbound,
                    caller="+74951112233",
                    dialed="+74950000001",
                    started_at=at,
                ),
                CallRinging(account_id=account_id, call_id=cid, leg_id="a", target=target, at=at),
                CallRinging(account_id=account_id, call_id=cid, leg_id="b", target=target, at=at),
                CallAnswered(account_id=account_id, call_id=cid, leg_id="a", at=at, by=None),
                LegEnded(
                    account_id=account_id,
                    call_id=cid,
                    leg_id="b",
                    reason=LegEndReason.cancelled,
                    at=at,
                ),
                CallEnded(
                    account_id=account_id,
                    call_id=cid,
                    disposition=Disposition.answered,
                    ended_at=at + timedelta(seconds=30),
                    hangup=HangupSide.caller,
                ),
            ]
        )
    return out


def interleave(calls: list[object], concurrent: int) -> list[object]:
    """Calls in waves of ``concurrent``, their events round-robin (as live calls overlap)."""
    stream: list[object] = []
    for w in range(0, len(calls), concurrent):
        wave = calls[w : w + concurrent]
        for step in range(EVENTS_PER_CALL):
            stream.extend(c[step] for c in wave)  # type: ignore[index]
    return stream


async def run(url: str, args: argparse.Namespace) -> None:
    from sqlalchemy import func, select

    import zvonar.models  # noqa: F401  (every table on the metadata)
    from zvonar.app import create_container
    from zvonar.core.bus import InProcessBus
    from zvonar.journal.models import CallRecord, CallStatus
    from zvonar.settings import Settings
    from zvonar.store.base import Base

    with tempfile.TemporaryDirectory() as tmp:
        if url == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        settings = Settings(data_dir=Path(tmp) / "data", database_url=url, secret_key="b" * 32)
        bus = InProcessBus()
        c = create_container(settings, bus=bus)
        async with c.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        account = await c.accounts.create_account("Bench", "bench")
        stream = interleave(call_events(account.id, args.calls), args.concurrent)
        lat: list[float] = []
        cpu0 = time.process_time()  # every thread of the process: aiosqlite's too
        start = time.perf_counter()
        per_second = args.rate * EVENTS_PER_CALL
        for i, ev in enumerate(stream):
            if per_second:
                wait = start + i / per_second - time.perf_counter()
                if wait > 0.005:
                    await asyncio.sleep(wait)
            t = time.perf_counter()
            await bus.publish(ev)  # type: ignore[arg-type]
            lat.append(time.perf_counter() - t)
        published = time.perf_counter() - start
        flush = getattr(c.journal, "flush", None)
        if flush is not None:
            await flush()
        total = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        async with c.db.read() as s:
            rows = await s.scalar(
                select(func.count())
                .select_from(CallRecord)
                .where(CallRecord.status == CallStatus.closed)
            )
        close = getattr(c.journal, "aclose", None)
        if close is not None:
            await close()
        await c.db.dispose()
    lat.sort()
    mean_us = sum(lat) / len(lat) * 1e6
    p99_us = lat[int(len(lat) * 0.99)] * 1e6
    name = url.split(":", 1)[0]
    print(
        f"{name:<20} {args.calls} calls, {len(stream)} events: publish mean {mean_us:.0f} us, "
        f"p99 {p99_us:.0f} us (all published in {published:.2f} s); written "
        f"{len(stream) / total:,.0f} events/s = {args.calls / total:,.0f} calls/s; "
        f"CPU {cpu / args.calls * 1e6:,.0f} us/call; closed rows {rows}",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backends", default="sqlite,pg")
    ap.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/zv_journal")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrent", type=int, default=50, help="calls whose events interleave")
    ap.add_argument("--rate", type=float, default=0.0, help="calls/s to pace at (0: no pacing)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for backend in args.backends.split(","):
        asyncio.run(run("sqlite" if backend == "sqlite" else args.pg, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
