"""End to end: a supervisor acts on callers while they wait, and what a waiting caller hears.

One PBX and one account for the module (``queues_kit``), and the app's REST API served by
uvicorn on a loopback port in the same loop (``/api/v1``, a supervisor's API token), so every
supervisor action goes over HTTP as a UI would send it and the live feed is read as
Server-Sent Events. Agents' and the supervisor's phones are SIPp UASes registered with digest;
callers are SIPp UACs on the carrier side.

Covered: moving a waiting caller to another queue and to an agent, a supervisor intercepting a
waiting caller to their own phone (and talking: RTP both ways), periodic announcements with
the callback offer (the engine's playbacks), tier escalation (level 2 only after its wait), an
agent set away after missing offers in a row (the SSE alert, stored intervals), and an agent
without a registered phone shown unreachable until it registers.

Moments are read from events (the bus, the SSE stream, the media engine), never from sleeps;
SIPp callers are bounded by ``-timeout``, phones are killed at the end of each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.queues_kit import (
    Audio,
    Bye,
    CallerRun,
    Pause,
    QueueRig,
    WaitBye,
    agent_scenario,
    ring_scenario,
)
from tests.e2e.schemes_kit import Device
from tests.sip.peers.harness import SIPP, free_port
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.acd.events import QueueCallerChanged
from zvonar.acd.facts import FactKind, QueueFact
from zvonar.app import create_app
from zvonar.calls.events import CallStarted, Disposition
from zvonar.directory.schemas import EmployeeIn, NumberIn
from zvonar.journal.models import CallLeg, CallRecord
from zvonar.media.engine import MediaEvent, PlaybackFinished, PlaybackReason
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
    pytest.mark.asyncio(loop_scope="module"),
]

API = "/api/v1"
PASSWORD = "supervise-pass-42"
SLUG = "supervise"
SUPERVISOR = "900"
REGISTERED = ("601", "611", "612", "621", "631", "641", "642", "651", "662", "671", SUPERVISOR)
LATE = "661"  # registers only during its test


def _q(name: str, members: list[Any], **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"wrapup_seconds": 0, "ring_timeout": 10, "max_no_answer": 0}
    return {"name": name, "strategy": "in_turn", "members": members, **base, **kw}


QUEUES = [
    _q("mova", ["601"]),  # 601 is on DND: callers wait here
    _q("movb", ["611"]),
    _q("icq", ["621"]),  # 621 is on DND
    _q(
        "ann",
        ["631"],  # 631 is on DND
        announce_prompt="please_wait",
        announce_position=True,
        announce_interval=10,
        callback_digit="3",
    ),
    _q(
        "tier",
        [{"extension": "641", "level": 1}, {"extension": "642", "level": 2}],
        escalation={"2": 4},
    ),
    _q("away", ["651"], ring_timeout=2, max_no_answer=2),
    _q("unr", [LATE, "662"]),
    _q("icr", ["671"], ring_timeout=30),  # 671's phone rings until cancelled
]


class Env:
    def __init__(
        self, rig: QueueRig, numbers: dict[str, str], p: Principal, api: httpx.AsyncClient
    ) -> None:
        self.rig, self.numbers, self.p, self.api = rig, numbers, p, api

    def id(self, ext: str) -> str:
        return str(self.rig.devices[ext].employee_id)

    async def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        r = await self.api.request(method, f"{API}{path}", json=body, **kw)
        assert r.status_code == 200, r.text
        return r.json()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("supervise")
    container = await sqlite_container(tmp)
    account = await container.accounts.create_account("Supervise", SLUG, time_zone="UTC")
    p = Principal(account_id=account.id, role=Role.admin)
    ids = {}
    for ext in (*REGISTERED, LATE):
        made = await container.directory.create_employee(
            p, EmployeeIn(name=f"Person {ext}", extension=ext, sip_password=PASSWORD)
        )
        ids[ext] = made.view.employee.id
    for q in QUEUES:
        await container.acd_queues.create_queue(p, q)
    numbers = {}
    for i, q in enumerate(QUEUES):
        scheme = {"branches": {"working": [{"type": "queue", "queue": q["name"]}]}}
        row = await container.routing.create_scheme(
            p, q["name"], {**scheme, "final": {"type": "hangup"}}
        )
        number = f"+749577800{i:02d}"
        num = await container.directory.add_number(p, NumberIn(number=number, label=q["name"]))
        await container.routing.assign(p, num.id, row.id)
        numbers[q["name"]] = number
    boss = await container.accounts.create_user(
        account.id,
        email="boss@supervise.example",
        name="Boss",
        role=Role.supervisor,
        password="correct horse battery",
    )
    token = await container.accounts.create_token(
        account.id, name="boss", role=Role.supervisor, created_by=boss.id
    )
    config = PbxConfig(sip_port=free_port(), media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    devices = {ext: Device(ext, ids[ext]) for ext in (*REGISTERED, LATE)}
    rig = QueueRig(container, rt, f"{SLUG}.zvonar", PASSWORD, devices, tmp)
    app = create_app(container)
    app.state.acd = rt.acd  # what the app's lifespan does when it runs the PBX
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.02)
        await rig.register(*REGISTERED)
        headers = {"Authorization": f"Bearer {token.secret}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
        ) as api:
            e = Env(rig, numbers, p, api)
            for ext in ("601", "621", "631"):
                got = await e.call("PUT", f"/agents/{e.id(ext)}/status", {"status": "dnd"})
                assert got["status"] == "dnd"
            yield e
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 30)
        await rt.stop()
        await container.aclose()  # the journal's writes land before the db goes


# --- helpers --------------------------------------------------------------------------------


async def until(check: Callable[[], Any], within: float = 20.0, what: str = "") -> Any:
    """Poll ``check`` (reading the bus or the engine's events) until it is truthy."""
    deadline = time.monotonic() + within
    while not (got := check()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)
    return got


def changes(rig: QueueRig, start: int, call_id: str) -> list[QueueCallerChanged]:
    return [
        e
        for e in rig.bus.events[start:]
        if isinstance(e, QueueCallerChanged) and e.call_id == call_id
    ]


async def joined(rig: QueueRig, start: int, caller: str) -> QueueCallerChanged:
    """The caller's call as it joined its queue (the bus says so)."""

    def find() -> QueueCallerChanged | None:
        for e in rig.bus.events[start:]:
            if isinstance(e, CallStarted) and e.caller == caller:
                mine = [c for c in changes(rig, start, e.call_id) if c.what == "joined"]
                return mine[0] if mine else None
        return None

    found: QueueCallerChanged = await until(find, what=f"{caller} joined")
    return found


def dial(env: Env, queue: str, caller: str, actions: list[Any]) -> asyncio.Task[CallerRun]:
    return asyncio.create_task(env.rig.dial(env.numbers[queue], caller, actions, bound=40))


async def facts(env: Env, queue: str, call_id: str, last: FactKind) -> list[QueueFact]:
    """The stored facts of one call in one queue, once ``last`` is among them (the runtime
    writes them behind the calls)."""
    now = datetime.now(UTC)
    svc = env.rig.container.acd
    mine: list[QueueFact] = []
    for _ in range(100):
        got = await svc.queue_facts(env.p, queue, now - timedelta(hours=1), now + timedelta(1))
        mine = [f for f in got if f.call_id == call_id]
        if any(f.kind is last for f in mine):
            return mine
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {last} fact for {call_id} in {queue}: {mine}")


async def legs(env: Env, call_id: str) -> list[tuple[str, datetime]]:
    """(extension, rang at) of every leg the call rang, in order."""
    from sqlalchemy import select

    async with env.rig.container.db.read() as s:
        rows = await s.execute(
            select(CallLeg.target_id, CallLeg.rang_at)
            .join(CallRecord, CallRecord.id == CallLeg.call_pk)
            .where(CallRecord.call_id == call_id)
            .order_by(CallLeg.rang_at)
        )
        return [(env.rig.by_id[t], at) for t, at in rows.all() if t in env.rig.by_id]


@dataclass
class Sse:
    """The account's live feed as a supervisor's screen reads it (``GET /acd/events``)."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, api: httpx.AsyncClient) -> None:
        name = ""
        async with api.stream("GET", f"{API}/acd/events") as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("retry:"):
                    self.opened.set()
                elif line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.append((name, json.loads(line.removeprefix("data: "))))

    def of(self, name: str, **match: Any) -> list[dict[str, Any]]:
        return [
            d for n, d in self.events if n == name and all(d.get(k) == v for k, v in match.items())
        ]


@contextlib.asynccontextmanager
async def sse(env: Env) -> AsyncIterator[Sse]:
    feed = Sse()
    feed.task = asyncio.create_task(feed.run(env.api))
    try:
        await asyncio.wait_for(feed.opened.wait(), 10)
        yield feed
    finally:
        feed.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feed.task


def waiting(live: dict[str, Any], queue: str) -> list[tuple[str, int | None]]:
    (q,) = [q for q in live["queues"] if q["name"] == queue]
    return [(w["call_id"], w["position"]) for w in q["waiting"]]


# --- move -----------------------------------------------------------------------------------


async def test_a_waiting_caller_moved_to_another_queue_is_answered_there(env: Env) -> None:
    """Nobody serves ``mova`` (601 on DND): the supervisor moves the caller to ``movb`` over
    the API and 611 answers; the wait counts from when the caller first joined."""
    rig = env.rig
    phones = await rig.start_phones({"611": agent_scenario("611", answer_ms=300, talk_ms=1500)})
    try:
        start = rig.mark()
        caller = "+79161000101"
        task = dial(env, "mova", caller, [WaitBye()])
        first = await joined(rig, start, caller)
        call_id = first.call_id
        live = await env.call("GET", "/acd/live")
        assert waiting(live, "mova") == [(call_id, 1)]  # waiting: nobody can take it there
        moved_at = datetime.now(UTC)
        place = await env.call("POST", f"/acd/calls/{call_id}/move", {"queue": "movb"})
        assert place == {
            "call_id": call_id,
            "queue": "movb",
            "position": None,  # 611 was free: rung at once
            "offered_to": [env.id("611")],
        }
        run = await task
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(phones)
    assert run.ok, run.run.describe()
    view = calls[caller]
    assert view.answered_by == "611"
    assert view.row.answered_by == rig.devices["611"].employee_id
    assert view.row.disposition is Disposition.answered
    assert [(c.queue, c.what) for c in changes(rig, start, call_id)] == [
        ("mova", "joined"),
        ("mova", "moved_out"),
        ("movb", "moved_in"),
        ("movb", "offered"),
        ("movb", "answered"),
    ]
    assert [f.kind for f in await facts(env, "mova", call_id, FactKind.entered)] == [
        FactKind.entered  # a move is no abandon: nothing else in the source queue
    ]
    got = await facts(env, "movb", call_id, FactKind.answered)
    assert [f.kind for f in got] == [FactKind.entered, FactKind.answered]
    assert got[-1].agent_id == env.id("611")
    waited_before_move = (moved_at - first.at).total_seconds()
    assert got[-1].wait is not None and got[-1].wait >= waited_before_move


async def test_a_waiting_caller_moved_to_an_agent_is_answered_by_them(env: Env) -> None:
    """612 is in no queue: moving the caller to them rings their phone directly."""
    rig = env.rig
    phones = await rig.start_phones({"612": agent_scenario("612", answer_ms=300, talk_ms=1000)})
    try:
        start = rig.mark()
        caller = "+79161000102"
        task = dial(env, "mova", caller, [WaitBye()])
        call_id = (await joined(rig, start, caller)).call_id
        place = await env.call("POST", f"/acd/calls/{call_id}/move", {"employee_id": env.id("612")})
        assert place == {
            "call_id": call_id,
            "queue": "mova",
            "position": None,
            "offered_to": [env.id("612")],
        }
        run = await task
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(phones)
    assert run.ok, run.run.describe()
    view = calls[caller]
    assert view.answered_by == "612"
    assert view.row.answered_by == rig.devices["612"].employee_id
    assert [ext for ext, _ in await legs(env, call_id)] == ["612"]
    got = await facts(env, "mova", call_id, FactKind.answered)
    assert [f.kind for f in got] == [FactKind.entered, FactKind.answered]
    assert got[-1].agent_id == env.id("612")


# --- intercept ------------------------------------------------------------------------------


async def test_a_supervisor_intercepts_a_waiting_caller_and_talks_to_them(
    env: Env, tmp_path: Path
) -> None:
    """The caller waits in ``icq`` (621 on DND) and talks (a 440 Hz tone); the supervisor
    intercepts the call to their own phone, which rings, answers and talks back (880 Hz):
    RTP flows both ways through the bridge, and the journal says the supervisor answered."""
    rig = env.rig
    caller_tone, boss_tone = tmp_path / "caller.pcap", tmp_path / "boss.pcap"
    sippkit.write_tone_pcap(caller_tone, 440.0, 15.0, ssrc=0x1111)
    sippkit.write_tone_pcap(boss_tone, 880.0, 4.0, ssrc=0x2222)
    boss = SUPERVISOR
    phones = await rig.start_phones(
        {boss: agent_scenario(boss, answer_ms=300, talk_ms=3500, pcap=boss_tone)}
    )
    try:
        start = rig.mark()
        caller = "+79161000201"
        task = dial(env, "icq", caller, [Audio(caller_tone), WaitBye()])
        call_id = (await joined(rig, start, caller)).call_id
        place = await env.call(
            "POST", f"/acd/calls/{call_id}/intercept", {"employee_id": env.id(boss)}
        )
        assert place == {
            "call_id": call_id,
            "queue": "icq",
            "position": None,
            "offered_to": [env.id(boss)],
        }
        call = rig.rt.b2bua.calls[call_id]
        winner = await until(lambda: call.winner, what="the supervisor answered")

        async def both_ways() -> bool:
            stats = await rig.rt.engine.stats(winner.media_id)
            # rx: the supervisor's voice reached us; tx: the caller's voice went to them.
            return stats.rx_packets > 50 and stats.tx_packets > 50

        for _ in range(150):
            with contextlib.suppress(Exception):
                if await both_ways():
                    break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("no RTP both ways between the caller and the supervisor")
        status = await env.call("GET", f"/agents/{env.id(boss)}/status")
        assert (status["status"], status["call_id"]) == ("on_call", call_id)
        run = await task
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(phones)
    assert run.ok, run.run.describe()
    view = calls[caller]
    assert view.answered_by == boss
    assert view.row.answered_by == rig.devices[boss].employee_id
    assert view.row.disposition is Disposition.answered
    assert view.row.talk_seconds is not None and view.row.talk_seconds > 2
    assert [c.what for c in changes(rig, start, call_id)] == ["joined", "offered", "answered"]
    assert [ext for ext, _ in await legs(env, call_id)] == [boss]
    got = await facts(env, "icq", call_id, FactKind.answered)
    assert [f.kind for f in got] == [FactKind.entered, FactKind.answered]
    assert got[-1].agent_id == env.id(boss)


async def test_a_supervisor_intercepts_a_call_ringing_an_agent(env: Env) -> None:
    """The caller's offer rings 671 (who never answers); the supervisor intercepts: 671's
    phone is cancelled, the supervisor's rings and answers, and 671 is back online with no
    miss counted — the journal has both legs, the supervisor's answered."""
    rig = env.rig
    boss = SUPERVISOR
    phones = await rig.start_phones(
        {"671": ring_scenario(), boss: agent_scenario(boss, answer_ms=300, talk_ms=1500)}
    )
    try:
        start = rig.mark()
        caller = "+79161000211"
        task = dial(env, "icr", caller, [WaitBye()])
        call_id = (await joined(rig, start, caller)).call_id
        await until(
            lambda: [c for c in changes(rig, start, call_id) if c.what == "offered"],
            what="the offer to 671",
        )
        call = rig.rt.b2bua.calls[call_id]
        await until(lambda: call.forks, what="671's phone ringing")
        place = await env.call(
            "POST", f"/acd/calls/{call_id}/intercept", {"employee_id": env.id(boss)}
        )
        assert place["queue"] == "icr"
        await until(lambda: call.winner, what="the supervisor answered")
        agent = await env.call("GET", f"/agents/{env.id('671')}/status")
        assert agent["status"] == "online"
        run = await task
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(phones)
    assert run.ok, run.run.describe()
    view = calls[caller]
    assert view.answered_by == boss
    assert view.row.disposition is Disposition.answered
    assert [ext for ext, _ in await legs(env, call_id)] == ["671", boss]
    assert [c.what for c in changes(rig, start, call_id)] == [
        "joined",
        "offered",
        "offered",
        "answered",
    ]
    got = await facts(env, "icr", call_id, FactKind.answered)
    assert [f.kind for f in got] == [FactKind.entered, FactKind.answered]
    assert got[-1].agent_id == env.id(boss)


# --- announcements --------------------------------------------------------------------------


@dataclass
class Playbacks:
    """What the media engine played on which leg, and how each playback ended."""

    started: list[tuple[float, str, str, str]] = field(default_factory=list)  # t, leg, id, file
    ended: dict[str, PlaybackReason] = field(default_factory=dict)

    def on(self, event: MediaEvent) -> None:
        if isinstance(event, PlaybackFinished):
            self.ended[event.playback_id] = event.reason

    def on_leg(self, leg: str) -> list[tuple[float, str, str]]:
        return [(t, pid, name) for t, lg, pid, name in self.started if lg == leg]


@contextlib.contextmanager
def spy_playbacks(env: Env) -> Any:
    engine = env.rig.rt.engine
    seen = Playbacks()
    play = engine.play

    async def recording_play(leg_id: str, path: Path, *, loop: bool = False) -> str:
        playback_id = await play(leg_id, path, loop=loop)
        seen.started.append((time.time(), leg_id, playback_id, path.name))
        return playback_id

    engine.play = recording_play  # type: ignore[method-assign]
    off = engine.subscribe(seen.on)
    try:
        yield seen
    finally:
        off()
        del engine.play  # the class's method again


async def test_a_waiting_caller_hears_announcements_with_the_callback_offer(env: Env) -> None:
    """``ann`` (nobody free) announces on entry and every 10 s: its prompt, the position
    and the callback offer for its digit 3; hold music plays in between. Each announcement
    is played to its end on the caller's leg."""
    rig = env.rig
    start = rig.mark()
    caller = "+79161000301"
    with spy_playbacks(env) as plays:
        task = dial(env, "ann", caller, [Pause(18000), Bye()])
        first = await joined(rig, start, caller)
        leg = f"{first.call_id}.m"
        said = ["please_wait.wav", "queue_position.wav", "n1.wav"]
        said += ["queue_callback_press.wav", "n3.wav"]

        def announcements() -> list[list[tuple[float, str, str]]]:
            """Runs of prompt playbacks (hold music between them splits the runs)."""
            runs: list[list[tuple[float, str, str]]] = [[]]
            for t, pid, name in plays.on_leg(leg):
                if name == "hold_music.wav":
                    runs.append([])
                else:
                    runs[-1].append((t, pid, name))
            return [r for r in runs if r]

        def two_heard() -> bool:
            done = announcements()
            return len(done) >= 2 and all(
                plays.ended.get(pid) is PlaybackReason.COMPLETED for _, pid, _ in done[1]
            )

        await until(two_heard, within=30, what="two announcements played to the end")
        run = await task
    assert run.ok, run.run.describe()
    entry, periodic = announcements()[:2]
    assert [name for _, _, name in entry] == said
    assert [name for _, _, name in periodic] == said
    assert all(plays.ended[pid] is PlaybackReason.COMPLETED for _, pid, _ in entry)
    joined_at = first.at.timestamp()
    assert entry[0][0] - joined_at < 3  # on entry, nobody being free
    assert 9.5 <= periodic[0][0] - joined_at < 14  # then after the 10 s interval
    names = [name for _, _, name in plays.on_leg(leg)]
    assert names[0] == "hold_music.wav" and names.count("hold_music.wav") >= 3  # in between
    await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 20)
    got = await facts(env, "ann", first.call_id, FactKind.abandoned)
    assert got[-1].wait is not None and got[-1].wait > 15


# --- tier escalation ------------------------------------------------------------------------


async def test_level_two_is_offered_only_after_the_escalation_wait(env: Env) -> None:
    """641 (level 1) talks to X for 9 s; Y, who arrives after, is not offered to 642 (level
    2, free all along) until Y has waited the 4 s escalation — well before 641 is free."""
    rig = env.rig
    phones = await rig.start_phones(
        {
            "641": agent_scenario("641", answer_ms=200, talk_ms=9000),
            "642": agent_scenario("642", answer_ms=200, talk_ms=500),
        }
    )
    try:
        start = rig.mark()
        x, y = "+79161000401", "+79161000402"
        x_task = dial(env, "tier", x, [WaitBye()])
        x_join = await joined(rig, start, x)
        await until(
            lambda: any(c.what == "answered" for c in changes(rig, start, x_join.call_id)),
            what="641 answered X",
        )
        y_task = dial(env, "tier", y, [WaitBye()])
        y_join = await joined(rig, start, y)
        runs = [await x_task, await y_task]
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(phones)
    assert all(r.ok for r in runs), [r.run.describe() for r in runs if not r.ok]
    assert calls[x].answered_by == "641" and calls[y].answered_by == "642"
    (x_offer,) = [c for c in changes(rig, start, x_join.call_id) if c.what == "offered"]
    (y_offer,) = [c for c in changes(rig, start, y_join.call_id) if c.what == "offered"]
    assert (x_offer.at - x_join.at).total_seconds() < 2  # level 1 at once
    y_offered_after = (y_offer.at - y_join.at).total_seconds()
    assert 4 <= y_offered_after < 7, y_offered_after
    assert [ext for ext, _ in await legs(env, x_join.call_id)] == ["641"]
    ((ext, rang_at),) = await legs(env, y_join.call_id)
    assert ext == "642" and (rang_at - y_join.at).total_seconds() >= 4
    got = await facts(env, "tier", y_join.call_id, FactKind.answered)
    assert got[-1].agent_id == env.id("642")
    assert got[-1].wait is not None and 4 <= got[-1].wait < 8


# --- away after missed offers, unreachable, intervals ---------------------------------------


async def _intervals(env: Env, ext: str, status: str, n: int) -> list[dict[str, Any]]:
    """The agent's stored intervals in ``status`` once there are ``n`` (written behind)."""
    now = datetime.now(UTC)
    params = {
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(hours=1)).isoformat(),
    }
    found: list[dict[str, Any]] = []
    for _ in range(100):
        got = await env.call("GET", f"/agents/{env.id(ext)}/status-intervals", params=params)
        found = [i for i in got["intervals"] if i["status"] == status]
        if len(found) >= n:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{ext}: {len(found)} {status} intervals, wanted {n}")


def _seconds(interval: dict[str, Any]) -> float:
    start = datetime.fromisoformat(interval["start"])
    end = datetime.fromisoformat(interval["end"])
    return (end - start).total_seconds()


async def test_an_agent_who_lets_offers_ring_out_is_set_away_and_the_supervisor_told(
    env: Env,
) -> None:
    """651's phone rings until cancelled; ``away`` gives up after 2 s a ring and allows two
    no-answers in a row: then 651 is away, the SSE feed carries the alert, and each ring is a
    stored interval."""
    rig = env.rig
    agent = env.id("651")
    phones = await rig.start_phones({"651": ring_scenario()}, calls=2)
    try:
        async with sse(env) as feed:
            start = rig.mark()
            caller = "+79161000501"
            task = dial(env, "away", caller, [Pause(9000), Bye()])
            first = await joined(rig, start, caller)
            (alert,) = await until(
                lambda: feed.of("AgentAlerted", agent_id=agent), what="the alert on the feed"
            )
            assert (alert["reason"], alert["no_answers"]) == ("no_answer", 2)
            await until(
                lambda: feed.of("AgentStatusChanged", agent_id=agent, new="away"),
                what="away on the feed",
            )
            status = await env.call("GET", f"/agents/{agent}/status")
            assert (status["status"], status["reason"]) == ("away", "no_answer")
            live = await env.call("GET", "/acd/live")
            assert waiting(live, "away") == [(first.call_id, 1)]  # nobody else to offer to
            run = await task
    finally:
        await rig.stop_phones(phones)
    assert run.ok, run.run.describe()
    offers = [c.what for c in changes(rig, start, first.call_id)]
    assert offers == ["joined", "offered", "offered", "abandoned"]
    rings = await _intervals(env, "651", "ringing", 2)
    assert len(rings) == 2 and all(1.5 < _seconds(i) < 4 for i in rings), rings
    got = await facts(env, "away", first.call_id, FactKind.abandoned)
    assert got[-1].wait is not None and got[-1].wait > 8
    # The supervisor puts them back online.
    back = await env.call("PUT", f"/agents/{agent}/status", {"status": "online"})
    assert back["status"] == "online"
    away = await _intervals(env, "651", "away", 1)
    assert away[-1]["reason"] == "no_answer"


async def test_an_agent_without_a_registered_phone_is_unreachable_until_it_registers(
    env: Env,
) -> None:
    """661 comes first in ``unr`` but has no registered phone: the caller goes to 662 and
    661 shows unreachable (status, live view). Once 661 registers, the live view and the feed
    say online, the next caller is theirs, and the unreachable time is a stored interval."""
    rig = env.rig
    late = env.id(LATE)
    phones = await rig.start_phones({"662": agent_scenario("662", answer_ms=200, talk_ms=500)})
    try:
        start = rig.mark()
        caller = "+79161000601"
        run = await rig.dial(env.numbers["unr"], caller, [WaitBye()])
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(phones)
    assert run.ok, run.run.describe()
    assert calls[caller].answered_by == "662"
    assert [ext for ext, _ in await legs(env, calls[caller].call_id)] == ["662"]
    status = await env.call("GET", f"/agents/{late}/status")
    assert (status["status"], status["presence"]) == ("unreachable", "online")

    def agents(live: dict[str, Any]) -> dict[str, str]:
        (q,) = [q for q in live["queues"] if q["name"] == "unr"]
        return {a["extension"]: a["status"] for a in q["agents"]}

    assert agents(await env.call("GET", "/acd/live")) == {LATE: "unreachable", "662": "online"}
    async with sse(env) as feed:
        await rig.register(LATE)
        # The live view checks the phones again: no call needed to notice.
        assert agents(await env.call("GET", "/acd/live"))[LATE] == "online"
        await until(
            lambda: feed.of("AgentStatusChanged", agent_id=late, old="unreachable", new="online"),
            what="online on the feed",
        )
    phones = await rig.start_phones({LATE: agent_scenario(LATE, answer_ms=200, talk_ms=500)})
    try:
        start = rig.mark()
        caller = "+79161000602"
        run = await rig.dial(env.numbers["unr"], caller, [WaitBye()])
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(phones)
    assert run.ok, run.run.describe()
    assert calls[caller].answered_by == LATE
    spells = await _intervals(env, LATE, "unreachable", 1)
    assert _seconds(spells[-1]) > 1  # from the account's start until the phone registered
