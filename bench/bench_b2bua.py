"""Calls/s through the B2BUA with a two-step scheme and journal writes, SQLite and PostgreSQL.

The PBX (``start_pbx``: SIP, B2BUA, embedded media, resolver, journal on the bus) runs in
this process, pinned to one CPU (``os.sched_setaffinity``). The account's number has a
two-step scheme: ring 102 (a device that always answers 486 Busy Here) → ring 101 (a
device that answers 200 at once). The devices are the simulator's own UA (zvonar.sim) in a
child process, registered with digest; callers are SIPp (custom UAC scenario: INVITE, ACK,
a short pause, BYE) at increasing rates bounded by -m. Recording is off (media is anchored
per leg as always: the engine allocates sockets for every fork).

The routing read model is preloaded and the collector policy of ``zvonar.pbx.heap`` applied
after start-up: start-up frozen, a keeper collecting the young objects every 20 ms and freezing
the survivors (``--gc settle``: freeze once and raised thresholds, the policy before the keeper;
``--gc default``: CPython's). Per rate: calls/s achieved with 0 failed
calls, journal rows written, CPU per call of the PBX and the device process, time in the
garbage collector (``--census`` also counts the objects it tracks), and what is left once
every call ended: media legs still allocated (a leak: the step is then not clean) and the
PBX's open descriptors. Post-dial delay (INVITE
in → first INVITE out, both stamped in this process at the socket: the datagram handler and
``SipRunner.send`` are wrapped) at half the best clean rate: p50 / p90 / p99 / max, and which
call of the step had the max. That step follows the settling (over 30 s without a call), so
its first call confirms the account's routing data by its version and reads the numbers again
(``max_age`` of ``pbx/snapshot.py``, ~1 ms each alone): the max is often call #1, or a collection.

    .venv/bin/python bench/bench_b2bua.py                       # SQLite, then PostgreSQL
    .venv/bin/python bench/bench_b2bua.py --backends sqlite --rates 50,100,200
    .venv/bin/python bench/bench_b2bua.py --pg postgresql+asyncpg://postgres@127.0.0.1:5432/zv_x
    .venv/bin/python bench/bench_b2bua.py --backends sqlite --rates 120 --steps  # task steps
    py-spy record --nonblocking -f raw -o out.txt -- .venv/bin/python bench/bench_b2bua.py ...
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import collections.abc
import cProfile
import gc
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # the SIPp helpers and scenario blocks of the test suite

from tests.e2e import sippkit  # noqa: E402
from tests.sip.peers.harness import free_port, parse_stat_csv  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
GC: GcPauses  # set in main(): the PBX process only
PROFILER: cProfile.Profile | None = None  # --profile: the rate steps only, not the start-up
NUMBER = "+74951234567"
SLUG = "bench"
STAFF = (("101", "bench-pass-101"), ("102", "bench-pass-102"))
FROM_USER = re.compile(rb"\r\n(?:From|f)\s*:[^\r\n]*?sip:([^@;>\r\n]+)@", re.IGNORECASE)


def uac_scenario(number: str, hold_ms: int) -> str:
    """SIPp caller: INVITE (From user c<n>, the key of the post-dial delay), ACK, hold, BYE."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench caller">
  <send retrans="500"><![CDATA[

      INVITE sip:{number}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:c[call_number]@[local_ip]:[local_port]>;tag=[pid]B[call_number]
      To: <sip:{number}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:c[call_number]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  {sippkit.ack(number)}
  <pause milliseconds="{hold_ms}"/>
  {sippkit.bye(number)}
  <recv response="200" crlf="true"/>
</scenario>
"""


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time of process ``pid`` (all its threads), or of its thread ``thread`` only."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def census(when: str) -> None:
    from collections import Counter

    counts = Counter(type(o).__name__ for o in gc.get_objects())
    top = ", ".join(f"{name} {n}" for name, n in counts.most_common(12))
    print(f"GC-tracked objects {when}: {sum(counts.values())} (frozen {gc.get_freeze_count()}): "
          f"{top}", flush=True)  # fmt: skip


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.5) - 1))]


# -- the devices' process ------------------------------------------------------------------


async def device_main(port: int) -> None:
    import random

    from zvonar.sim import Dist, SimConfig, SimReport
    from zvonar.sim.devices import Device, Devices
    from zvonar.sim.endpoint import Endpoint
    from zvonar.sip.ua import Flow

    config = SimConfig(
        answer_delay=Dist("fixed", 0),
        talk_time=Dist("fixed", 120, cap=120),  # the caller (SIPp) hangs up first
        busy_probability=0,
        one_call_per_device=False,
        rtp=False,
    )
    ep = Endpoint("127.0.0.1")
    await ep.start()
    devices = Devices(
        ep,
        Flow("UDP", "127.0.0.1", port),
        f"{SLUG}.zvonar",
        [Device("101", STAFF[0][1], 0.0), Device("102", STAFF[1][1], 1.0)],
        config,
        SimReport(),
        random.Random(1),
    )
    await devices.register(expires=3600)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), stop.set)  # the parent closes our stdin to stop us
    await stop.wait()
    await devices.close(1)
    await ep.close()


# -- the PBX side ----------------------------------------------------------------------------


@dataclass
class Step:
    rate: int
    calls: int
    ok: int
    failed: int
    retrans: int
    achieved: float
    journal: int
    pbx_us: float
    dev_us: float
    loop_us: float  # of pbx_us, the event loop's thread; the rest: the database driver's thread
    gc_ms: float = 0.0
    gc_max_ms: float = 0.0
    gc_full: int = 0
    legs_left: int = 0  # media legs still allocated once every call ended: a leak if not 0
    fds: int = 0  # the PBX's open descriptors then

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.ok == self.calls and self.legs_left == 0


class GcPauses:
    """Time the PBX process spends in the cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._t0))

    def take(self) -> tuple[float, float, int]:
        """(total ms, longest ms, full collections) since the last take."""
        pauses, self.pauses = self.pauses, []
        total = sum(p for _g, p in pauses) * 1000
        longest = max((p for _g, p in pauses), default=0.0) * 1000
        return total, longest, sum(1 for g, _p in pauses if g == 2)


class Pdd:
    """INVITE in (datagram handler) → first INVITE out (runner.send), keyed by From user."""

    def __init__(self) -> None:
        self.t_in: dict[bytes, float] = {}
        self.samples: list[float] = []
        self.on = False

    def install(self, runner: object) -> None:
        on_datagram = runner._on_datagram  # type: ignore[attr-defined]
        send = runner.send  # type: ignore[attr-defined]

        def wrapped_in(data: bytes, source: object, truncated: bool) -> None:
            if self.on and data.startswith(b"INVITE "):
                m = FROM_USER.search(data)
                if m is not None and m.group(1) not in self.t_in:
                    self.t_in[m.group(1)] = time.perf_counter()
            on_datagram(data, source, truncated)

        def wrapped_send(data: bytes, flow: object) -> bool:
            if self.on and data.startswith(b"INVITE "):
                m = FROM_USER.search(data)
                t0 = self.t_in.pop(m.group(1), None) if m is not None else None
                if t0 is not None:
                    self.samples.append(time.perf_counter() - t0)
            return bool(send(data, flow))

        runner._on_datagram = wrapped_in  # type: ignore[attr-defined]
        runner.send = wrapped_send  # type: ignore[attr-defined]


class StepTimes:
    """``--steps``: every task step on the loop timed (a task factory wraps each task's
    coroutine and times each ``send``/``throw`` of the task), per kind of task (its
    coroutine's qualified name: ``Call.run``, ``JournalWriter._run``…), in the post-dial
    delay step. A step of one task is a stretch during which no other task and no datagram
    runs: the long ones are what a datagram waits behind. A call's first step is not among
    them: it runs inside its INVITE's handling (core/eager.py)."""

    def __init__(self) -> None:
        self.on = False
        self.steps: collections.Counter[str] = collections.Counter()
        self.total: collections.Counter[str] = collections.Counter()
        self.slow: collections.Counter[str] = collections.Counter()
        self.longest: dict[str, float] = collections.defaultdict(float)

    def add(self, key: str, seconds: float) -> None:
        if self.on:
            self.steps[key] += 1
            self.total[key] += seconds
            if seconds > 0.001:
                self.slow[key] += 1
            if seconds > self.longest[key]:
                self.longest[key] = seconds

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        times = self

        class Timed(collections.abc.Coroutine):  # type: ignore[type-arg]
            __slots__ = ("coro", "key")

            def __init__(self, coro: collections.abc.Coroutine) -> None:  # type: ignore[type-arg]
                self.coro = coro
                inner = getattr(coro, "_coro", coro)  # a call's task: core/eager.py's wrapper
                self.key = getattr(inner, "__qualname__", type(inner).__name__)

            def send(self, value: object) -> object:
                t0 = time.perf_counter()
                try:
                    return self.coro.send(value)
                finally:
                    times.add(self.key, time.perf_counter() - t0)

            def throw(self, *exc: object) -> object:
                t0 = time.perf_counter()
                try:
                    return self.coro.throw(*exc)  # type: ignore[arg-type]
                finally:
                    times.add(self.key, time.perf_counter() - t0)

            def close(self) -> None:
                self.coro.close()

            def __await__(self) -> object:
                raise TypeError("a timed task's coroutine is run by its task only")

        def factory(loop: asyncio.AbstractEventLoop, coro: object, **kw: object) -> asyncio.Task:  # type: ignore[type-arg]
            return asyncio.Task(Timed(coro), loop=loop, **kw)  # type: ignore[arg-type]

        loop.set_task_factory(factory)  # type: ignore[arg-type]

    def report(self, top: int = 8) -> None:
        print("task steps in the post-dial delay step (steps, loop time, over 1 ms, longest):")
        for key, total in self.total.most_common(top):
            print(
                f"  {key:40} {self.steps[key]:7d} {total * 1000:9.1f} ms "
                f"{self.slow[key]:6d} {self.longest[key] * 1000:7.2f} ms"
            )


class Stalls:
    """``--stalls MS``: where the event loop was when it stalled. A heartbeat callback runs
    on the loop every millisecond; a watchdog thread that finds it ``MS`` late takes the main
    thread's stack (``sys._current_frames``), once per millisecond while the stall lasts. The
    switch interval is lowered to 1 ms meanwhile, so the watchdog gets the GIL in time."""

    def __init__(self, threshold_ms: float) -> None:
        self.threshold = threshold_ms / 1000
        self.samples: collections.Counter[tuple[str, ...]] = collections.Counter()
        self.stalls = 0
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._main = threading.main_thread().ident

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        if not self._stop.is_set():
            asyncio.get_running_loop().call_later(0.001, self._heartbeat)

    def _watch(self) -> None:
        stalled = False
        while not self._stop.wait(0.001):
            late = time.monotonic() - self._beat
            if late < self.threshold:
                stalled = False
                continue
            if not stalled:
                self.stalls += 1
                stalled = True
            frame = sys._current_frames().get(self._main or 0)
            stack: list[str] = []
            while frame is not None and len(stack) < 8:
                code = frame.f_code
                where = code.co_filename.rsplit("/site-packages/", 1)[-1].rsplit("/src/", 1)[-1]
                stack.append(f"{where}:{frame.f_lineno} {code.co_name}")
                frame = frame.f_back
            self.samples[tuple(stack)] += 1

    def start(self) -> None:
        self._old_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)
        self._stop.clear()
        self._heartbeat()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._old_interval)

    def report(self, top: int = 12) -> None:
        total = sum(self.samples.values())
        print(f"stalls over {self.threshold * 1000:.0f} ms: {self.stalls} ({total} samples)")
        for stack, count in self.samples.most_common(top):
            print(f"  {count:5d}  " + "\n         <- ".join(stack))


async def seed(container: object) -> None:
    from sqlalchemy import update

    from zvonar.accounts.access import Principal
    from zvonar.accounts.models import Account, Role
    from zvonar.directory.schemas import EmployeeIn, NumberIn

    c = container
    account = await c.accounts.create_account("Bench", SLUG)  # type: ignore[attr-defined]
    async with c.db.engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(
            update(Account).where(Account.id == account.id).values(recording_enabled=False)
        )
    p = Principal(account_id=account.id, role=Role.admin)
    for ext, pw in STAFF:
        await c.directory.create_employee(  # type: ignore[attr-defined]
            p, EmployeeIn(name=f"E{ext}", extension=ext, sip_password=pw)
        )
    num = await c.directory.add_number(p, NumberIn(number=NUMBER, label="Bench"))  # type: ignore[attr-defined]
    scheme = await c.routing.create_scheme(  # type: ignore[attr-defined]
        p,
        "TwoStep",
        {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"employee": "102"}], "timeout": 5},
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                ],
                "off": [
                    {"type": "ring", "targets": [{"employee": "102"}], "timeout": 5},
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                ],
            },
            "final": {"type": "hangup"},
        },
    )
    await c.routing.assign(p, num.id, scheme.id)  # type: ignore[attr-defined]


async def journal_rows(container: object) -> int:
    from sqlalchemy import func, select

    from zvonar.journal.models import CallRecord

    await container.journal.flush()  # type: ignore[attr-defined]  # (write-behind)
    async with container.db.read() as s:  # type: ignore[attr-defined]
        return int(await s.scalar(select(func.count()).select_from(CallRecord)) or 0)


async def settle(c: object, rt: object, within: float) -> float:
    """Wait until the last step's SIP transactions have run out their timers (up to 32 s
    after an overloaded step) and the journal caught up: the post-dial delay is then measured
    in a steady state, not during the recovery from the overload."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    udp = rt.ua.layer("UDP")  # type: ignore[attr-defined]  # the bench listens on UDP only
    while loop.time() - start < within:
        if not udp.transactions():
            break
        await asyncio.sleep(0.25)
    await c.journal.flush()  # type: ignore[attr-defined]
    return loop.time() - start


async def run_backend(name: str, url: str, args: argparse.Namespace, tmp: Path) -> None:
    import zvonar.models  # (every slice's tables on Base.metadata)
    import zvonar.pbx.models  # noqa: F401
    from zvonar.app import create_container
    from zvonar.pbx.config import PbxConfig
    from zvonar.pbx.runtime import start_pbx
    from zvonar.settings import Settings
    from zvonar.store.base import Base

    step_times = StepTimes() if args.steps else None
    if step_times is not None:  # before anything starts a task
        step_times.install(asyncio.get_running_loop())
    settings = Settings(data_dir=tmp / f"data-{name}", database_url=url, secret_key="bench-key")
    c = create_container(settings)
    async with c.db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    await seed(c)
    port = free_port()
    rt = await start_pbx(c, PbxConfig(sip_port=port, sip_tcp=False, media_timeout=0))
    snapshot = getattr(rt.resolver, "snapshot", None)
    if snapshot is not None:  # the routing read model, loaded before the first call
        await snapshot.preload()
    # start_pbx applied the PBX's collector policy (zvonar.pbx.heap); after the preload, settle
    # again (idempotent keeper), or replace it for a comparison.
    from zvonar.pbx.heap import release_heap, settle_heap

    if args.gc == "pbx":  # freeze + thresholds + the heap keeper
        settle_heap()
    else:
        release_heap()  # no keeper, nothing frozen
        if args.gc == "settle":  # the policy before the keeper: freeze once, (3000, 20, 100)
            settle_heap((3_000, 20, 100), keep=False)
        else:  # CPython's own
            gc.set_threshold(700, 10, 10)
    if args.gc_threshold:  # experiments, over --gc
        gc.set_threshold(*(int(x) for x in args.gc_threshold.split(",")))
    if args.census:
        census("after start")
    pdd = Pdd()
    pdd.install(rt.runner)
    dev = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--device", str(port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, {args.load_cpu}),
    )  # fmt: skip
    assert dev.stdout is not None
    try:
        line = await asyncio.wait_for(dev.stdout.readline(), 15)
        if not line.startswith(b"ready"):
            raise RuntimeError(f"devices did not register: {line!r}")
        scenario = tmp / "uac.xml"
        scenario.write_text(uac_scenario(NUMBER, args.hold_ms))
        steps: list[Step] = []
        for rate in (int(r) for r in args.rates.split(",")):
            step = await run_rate(c, rt, dev.pid, rate, args, scenario, tmp, name)
            steps.append(step)
            print(
                f"{name:8} target {rate:5d} cps: achieved {step.achieved:7.1f}, "
                f"{step.ok}/{step.calls} ok, {step.failed} failed, {step.retrans} retrans, "
                f"journal +{step.journal}, CPU/call PBX {step.pbx_us:.0f} us "
                f"(loop thread {step.loop_us:.0f}), "
                f"devices {step.dev_us:.0f} us; GC {step.gc_ms:.0f} ms (longest "
                f"{step.gc_max_ms:.0f} ms, {step.gc_full} full); media legs left "
                f"{step.legs_left}, open fds {step.fds}" + ("" if step.clean else "  <- NOT CLEAN"),
                flush=True,
            )
            if args.census:
                census(f"after {rate} cps")
            if not step.clean or step.achieved < 0.9 * rate:
                break
        clean = [s for s in steps if s.clean]
        best = max(clean, key=lambda s: s.achieved, default=None)
        if best is None:
            print(f"{name}: no clean rate")
            return
        half = max(1, int(best.achieved / 2))
        if args.settle:
            waited = await settle(c, rt, within=45.0)
            print(f"{name}: settled for {waited:.1f} s (transactions of the last step over)")
        pdd.samples.clear()
        pdd.t_in.clear()
        pdd.on = True
        stalls = Stalls(args.stalls) if args.stalls else None
        if stalls is not None:
            stalls.start()
        if step_times is not None:
            step_times.on = True
        step = await run_rate(c, rt, dev.pid, half, args, scenario, tmp, name + "-pdd")
        if stalls is not None:
            stalls.stop()
        if step_times is not None:
            step_times.on = False
        pdd.on = False
        ms = [s * 1000 for s in pdd.samples]
        print(
            f"{name}: best clean {best.achieved:.0f} calls/s (target {best.rate}); "
            f"post-dial delay at {half} cps ({len(ms)} calls, {step.failed} failed): "
            f"p50 {pct(ms, 0.5):.2f} ms, p90 {pct(ms, 0.9):.2f} ms, p99 {pct(ms, 0.99):.2f} ms, "
            f"max {max(ms):.2f} ms (call #{ms.index(max(ms)) + 1})",
            flush=True,
        )
        if stalls is not None:
            stalls.report()
        if step_times is not None:
            step_times.report()
    finally:
        if dev.stdin is not None:
            dev.stdin.close()
        try:
            await asyncio.wait_for(dev.wait(), 10)
        except TimeoutError:
            dev.kill()
            await dev.wait()
        await rt.stop()
        await c.db.dispose()


async def run_rate(
    c: object, rt: object, dev_pid: int, rate: int, args: argparse.Namespace,
    scenario: Path, tmp: Path, tag: str,
) -> Step:  # fmt: skip
    calls = max(1, int(rate * args.seconds))
    csv = tmp / f"{tag}-{rate}.csv"
    port = rt.udp.port  # type: ignore[attr-defined]
    cmd = ["sipp", f"127.0.0.1:{port}", "-sf", str(scenario), "-i", "127.0.0.1",
           "-p", str(free_port()), "-r", str(rate), "-m", str(calls), "-nostdin",
           "-timeout", f"{args.seconds * 3 + 20:g}s", "-timeout_error", "-buff_size", "4194304",
           "-trace_stat", "-stf", str(csv), "-fd", "1"]  # fmt: skip
    before_rows = await journal_rows(c)
    GC.take()
    pid = os.getpid()
    me, dev0, loop0 = (
        cpu_seconds(pid),
        cpu_seconds(dev_pid),
        cpu_seconds(pid, threading.get_native_id()),
    )
    if PROFILER is not None:
        PROFILER.enable()
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=tmp, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {args.load_cpu}),
    )  # fmt: skip
    await proc.wait()
    try:  # an overloaded step leaves calls waiting out their timers (Timer B: 32 s)
        await asyncio.wait_for(rt.b2bua.wait_idle(), 90)  # type: ignore[attr-defined]
    except TimeoutError:
        live = len(rt.b2bua.calls)  # type: ignore[attr-defined]
        print(f"{tag}: {live} calls still in progress 90 s after the step", flush=True)
    used, dev_used = cpu_seconds(pid) - me, cpu_seconds(dev_pid) - dev0
    loop_used = cpu_seconds(pid, threading.get_native_id()) - loop0
    if PROFILER is not None:
        PROFILER.disable()
    gc_ms, gc_max, gc_full = GC.take()
    stats = parse_stat_csv(csv)
    ok = stats.successful
    elapsed = stats.elapsed - args.hold_ms / 1000
    rows = await journal_rows(c) - before_rows
    legs_left = rt.b2bua.engine.leg_count  # type: ignore[attr-defined]
    fds = len(os.listdir("/proc/self/fd"))
    return Step(rate, calls, ok, stats.failed, stats.retransmissions,
                ok / elapsed if elapsed > 0 else 0.0, rows, used / max(ok, 1) * 1e6,
                dev_used / max(ok, 1) * 1e6, loop_used / max(ok, 1) * 1e6,
                gc_ms, gc_max, gc_full, legs_left, fds)  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--backends", default="sqlite,pg")
    ap.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rates", default="25,50,100,200,400,700,1000")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each rate step")
    ap.add_argument("--hold-ms", type=int, default=100, help="SIPp's pause between ACK and BYE")
    ap.add_argument("--pbx-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1, help="CPU of SIPp and the devices")
    ap.add_argument("--profile", default=None, help="cProfile the PBX in the rate steps into FILE")
    ap.add_argument("--gc", choices=("pbx", "settle", "default"), default="pbx",
                    help="pbx: zvonar.pbx.heap.settle_heap() (freeze, thresholds, keeper); "
                         "settle: freeze once, (3000, 20, 100); default: CPython's")  # fmt: skip
    ap.add_argument("--census", action="store_true", help="count GC-tracked objects by type")
    ap.add_argument(
        "--stalls",
        type=float,
        default=0.0,
        help="in the post-dial delay step: sample the loop's stack in stalls > MS",
    )
    ap.add_argument("--steps", action="store_true",
                    help="post-dial delay step: time each task step, by kind of task")  # fmt: skip
    ap.add_argument("--gc-threshold", default=None, help="gc.set_threshold(a,b,c): 50000,20,100")
    ap.add_argument("--settle", action=argparse.BooleanOptionalAction, default=True,
                    help="before the post-dial delay run, wait for the last step's "
                         "transactions to end (--no-settle: measure right after it)")  # fmt: skip
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                    help="uvloop: what `zvonar serve` runs on when installed")  # fmt: skip
    args = ap.parse_args()
    run = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        run = uvloop.run
    logging.basicConfig(level=logging.ERROR)
    if args.device is not None:
        run(device_main(args.device))
        return 0
    if shutil.which("sipp") is None:
        print("sipp not installed (Debian package sip-tester)")
        return 2
    os.sched_setaffinity(0, {args.pbx_cpu})
    global GC
    GC = GcPauses()
    global PROFILER
    if args.profile:
        import cProfile

        PROFILER = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for name in args.backends.split(","):
            url = f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}" if name == "sqlite" else args.pg
            run(run_backend(name, url, args, tmp))
    if PROFILER is not None:
        PROFILER.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
