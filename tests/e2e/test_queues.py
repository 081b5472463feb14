"""End to end: ACD queues, IVR menus and post-call rating through the real PBX and SIPp.

One PBX and one account for the module (``queues_kit``): every agent's phone is a SIPp UAS
registered with digest; callers are SIPp UACs on the carrier side which the PBX answers at
once (hold music), some of which send RFC 4733 digits or hang up while waiting. Each queue
below exercises one rule (FIFO with VIP priority, one strategy, wrap-up, DND, abandonment,
callback, the agent's announcement); we check who answered whom in which order on the bus,
the journal rows and the stored queue facts. Ring and talk times are short but with
generous margins between moments that must not overlap (the machine is loaded).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.appkit import sqlite_container
from tests.e2e.queues_kit import (
    Bye,
    Digit,
    InfoDigit,
    Pause,
    QueueRig,
    WaitBye,
    agent_scenario,
    ring_scenario,
)
from tests.e2e.schemes_kit import Device
from tests.media.engine.phone import Phone
from tests.sip.peers.harness import SIPP, free_port
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.acd.agents import Status
from zvonar.acd.facts import FactKind
from zvonar.calls.events import Direction, Disposition
from zvonar.calls.plan import RingTarget
from zvonar.contacts.schemas import ContactIn
from zvonar.directory.schemas import EmployeeIn, NumberIn
from zvonar.media.g711 import ulaw_encode
from zvonar.media.prompts import prompt_path
from zvonar.media.wav import wav_to_pcm8k
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.queues import queue_callback_dialer
from zvonar.pbx.runtime import start_pbx
from zvonar.sip.ua import Flow

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
    pytest.mark.asyncio(loop_scope="module"),
]

PASSWORD = "queues-pass-42"
SLUG = "queues"
VIP = "+79163330009"
AGENTS = (
    *("501", "511", "512", "513", "521", "522", "523", "531", "532", "533"),
    *("541", "542", "543", "551", "552", "556", "557", "561", "571", "581", "582", "591"),
    *("598", "599", "601"),
)


def _q(name: str, strategy: str, members: list[str], **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"wrapup_seconds": 0, "ring_timeout": 10, "max_no_answer": 0}
    return {"name": name, "strategy": strategy, "members": members, **base, **kw}


QUEUES = [
    _q("fifo", "in_turn", ["501"]),
    _q("robin", "round_robin", ["511", "512", "513"]),
    _q("turn", "in_turn", ["521", "522", "523"]),
    _q("recent", "least_recent", ["531", "532", "533"]),
    _q("all", "all_at_once", ["541", "542", "543"]),
    _q("wrap", "in_turn", ["551", "552"], wrapup_seconds=5),
    _q("dnd", "in_turn", ["556", "557"]),
    _q("lonely", "in_turn", ["561"], ring_timeout=30),
    _q("cb", "in_turn", ["571"], callback_digit="5"),
    _q("rate", "in_turn", ["591"]),
    _q("exitq", "in_turn", ["598"], exit_digit="0", max_wait=4),
    # "one" stands for an uploaded "a call from the Sales queue"
    _q("announced", "in_turn", ["601"], agent_announce="n1"),
]


def _ring(ext: str) -> dict[str, Any]:
    return {"type": "ring", "targets": [{"employee": ext}], "timeout": 10}


SCHEMES: dict[str, dict[str, Any]] = {
    **{
        q["name"]: {"branches": {"working": [{"type": "queue", "queue": q["name"]}]}}
        for q in QUEUES
        if q["name"] not in ("rate", "exitq")
    },
    "exitq": {
        "branches": {"working": [{"type": "queue", "queue": "exitq", "overflow": [_ring("599")]}]}
    },
    "rate": {
        "branches": {"working": [{"type": "queue", "queue": "rate"}]},
        "rating": True,
    },
    "ivr": {
        "branches": {
            "working": [
                {
                    "type": "ivr",
                    "prompt": "greeting",
                    "timeout": 8,
                    "options": [
                        {"digit": "1", "steps": [_ring("581")]},
                        {"digit": "2", "steps": [_ring("582")]},
                    ],
                }
            ]
        },
    },
}


class Env:
    def __init__(self, rig: QueueRig, numbers: dict[str, str], p: Principal) -> None:
        self.rig, self.numbers, self.p = rig, numbers, p

    @property
    def account_id(self) -> Any:
        return self.p.account_id

    def agent(self, ext: str) -> str:
        return str(self.rig.devices[ext].employee_id)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("queues")
    container = await sqlite_container(tmp)
    account = await container.accounts.create_account("Queues", SLUG, time_zone="UTC")
    p = Principal(account_id=account.id, role=Role.admin)
    ids = {}
    for ext in AGENTS:
        made = await container.directory.create_employee(
            p, EmployeeIn(name=f"Agent {ext}", extension=ext, sip_password=PASSWORD)
        )
        ids[ext] = made.view.employee.id
    await container.contacts.create_contact(
        p, ContactIn(name="Big Customer", tags=["vip"], numbers=[VIP])
    )
    for q in QUEUES:
        await container.acd_queues.create_queue(p, q)
    numbers = {}
    for i, (name, scheme) in enumerate(SCHEMES.items()):
        row = await container.routing.create_scheme(
            p, name, {**scheme, "final": {"type": "hangup"}}
        )
        number = f"+749577700{i:02d}"
        num = await container.directory.add_number(p, NumberIn(number=number, label=name))
        await container.routing.assign(p, num.id, row.id)
        numbers[name] = number
    config = PbxConfig(sip_port=free_port(), media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    devices = {ext: Device(ext, ids[ext]) for ext in AGENTS}
    rig = QueueRig(container, rt, f"{SLUG}.zvonar", PASSWORD, devices, tmp)
    try:
        await rig.register_all()
        yield Env(rig, numbers, p)
    finally:
        await rt.stop()
        await container.aclose()  # the journal's writes land before the db goes


async def _facts(env: Env, queue: str) -> list[Any]:
    """The queue's stored facts (the runtime writes them behind the calls: wait a little)."""
    now = datetime.now(UTC)
    svc = env.rig.container.acd
    for _ in range(50):
        facts = await svc.queue_facts(env.p, queue, now - timedelta(hours=1), now + timedelta(1))
        if facts and all(f.kind is not FactKind.entered for f in facts[-1:]):
            return facts
        await asyncio.sleep(0.1)
    return facts


# --- FIFO and priorities --------------------------------------------------------------------


async def test_fifo_order_holds_and_a_vip_goes_first(env: Env) -> None:
    """One agent, four callers arriving 0.5 s apart while the agent talks to the first for
    3 s: the others are answered in arrival order, except the VIP (third to arrive), who is
    answered right after the first."""
    rig = env.rig
    phones = await rig.start_phones(
        {"501": agent_scenario("501", answer_ms=200, talk_ms=3000)}, calls=4, bound=90
    )
    try:
        start = rig.mark()
        callers = ["+79160000101", "+79160000102", VIP, "+79160000104"]
        runs = await rig.dial_staggered(
            env.numbers["fifo"], [(c, [WaitBye()]) for c in callers], gap=0.5, bound=60
        )
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(phones)
    assert all(r.ok for r in runs), [r.run.describe() for r in runs if not r.ok]
    assert rig.answer_order(start) == ["+79160000101", VIP, "+79160000102", "+79160000104"]
    for c in callers:
        view = calls[c]
        assert view.answered_by == "501"
        assert view.row.disposition is Disposition.answered
        assert view.queue[0] == "joined" and "answered" in view.queue
    # The last one waited for three calls of ~3 s each.
    assert calls["+79160000104"].row.wait_seconds is not None
    assert calls["+79160000104"].row.wait_seconds > 6
    facts = await _facts(env, "fifo")
    answered = [f for f in facts if f.kind is FactKind.answered]
    assert len(answered) == 4 and all(f.agent_id == env.agent("501") for f in answered)
    assert [f.priority for f in answered] == [0, 1, 0, 0]


# --- strategies -----------------------------------------------------------------------------


async def _one_by_one(env: Env, queue: str, phones: dict[str, str], n: int) -> list[str]:
    """``n`` calls to ``queue``, one after another; the extension that answered each."""
    rig = env.rig
    procs = await rig.start_phones(phones, calls=n, bound=60)
    try:
        start = rig.mark()
        for i in range(n):
            run = await rig.dial(env.numbers[queue], f"+7916000020{i}", [WaitBye()])
            assert run.ok, run.run.describe()
            await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 20)
        return [ext for _, ext in rig.answered_by(start)]
    finally:
        await rig.stop_phones(procs)


def _agents(*exts: str) -> dict[str, str]:
    return {e: agent_scenario(e, answer_ms=200, talk_ms=500) for e in exts}


async def test_round_robin_goes_round(env: Env) -> None:
    assert await _one_by_one(env, "robin", _agents("511", "512", "513"), 4) == [
        *("511", "512", "513", "511")
    ]


async def test_in_turn_always_starts_from_the_first(env: Env) -> None:
    assert await _one_by_one(env, "turn", _agents("521", "522", "523"), 3) == ["521"] * 3


async def test_least_recent_offers_the_longest_idle(env: Env) -> None:
    # Everybody idle since the start: the listed order; then whoever finished longest ago.
    assert await _one_by_one(env, "recent", _agents("531", "532", "533"), 4) == [
        *("531", "532", "533", "531")
    ]


async def test_all_at_once_rings_every_free_agent(env: Env) -> None:
    rig = env.rig
    phones = {
        "541": ring_scenario(),
        "542": agent_scenario("542", answer_ms=600, talk_ms=500),
        "543": ring_scenario(),
    }
    procs = await rig.start_phones(phones, calls=1, bound=60)
    try:
        start = rig.mark()
        run = await rig.dial(env.numbers["all"], "+79160000301", [WaitBye()])
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(procs)
    assert run.ok, run.run.describe()
    view = calls["+79160000301"]
    assert view.answered_by == "542"
    legs = await _legs(env, view.call_id)
    assert sorted(legs) == ["541", "542", "543"]  # one offer rang all three
    assert legs["541"] == legs["543"] == "cancelled" and legs["542"] == "completed"


async def _legs(env: Env, call_id: str) -> dict[str, str]:
    from sqlalchemy import select

    from zvonar.journal.models import CallLeg, CallRecord

    async with env.rig.container.db.read() as s:
        rows = await s.execute(
            select(CallLeg.target_id, CallLeg.end_reason)
            .join(CallRecord, CallRecord.id == CallLeg.call_pk)
            .where(CallRecord.call_id == call_id)
        )
        return {
            env.rig.by_id[tid]: str(reason) for tid, reason in rows.all() if tid in env.rig.by_id
        }


# --- wrap-up and DND ------------------------------------------------------------------------


async def test_wrap_up_is_respected(env: Env) -> None:
    """In turn prefers 551; right after a call 551 is in wrap-up (5 s), so 552 is offered;
    once wrap-up is over, 551 again."""
    rig = env.rig
    procs = await rig.start_phones(_agents("551", "552"), calls=2, bound=60)
    try:
        start = rig.mark()
        for i in range(2):
            run = await rig.dial(env.numbers["wrap"], f"+7916000040{i}", [WaitBye()])
            assert run.ok, run.run.describe()
            await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 20)
        await asyncio.sleep(6)  # 551's wrap-up is over by now
        run = await rig.dial(env.numbers["wrap"], "+79160000409", [WaitBye()])
        assert run.ok, run.run.describe()
        await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 20)
        order = [ext for _, ext in rig.answered_by(start)]
    finally:
        await rig.stop_phones(procs)
    assert order == ["551", "552", "551"]


async def test_dnd_agent_is_not_offered(env: Env) -> None:
    rig = env.rig
    acd = rig.rt.acd
    got = await acd.set_status(env.account_id, env.agent("556"), Status.dnd, "lunch")
    assert got is Status.dnd
    try:
        assert await _one_by_one(env, "dnd", _agents("556", "557"), 2) == ["557", "557"]
    finally:
        await acd.set_status(env.account_id, env.agent("556"), Status.online, None)
    assert await _one_by_one(env, "dnd", _agents("556", "557"), 1) == ["556"]


# --- abandonment ----------------------------------------------------------------------------


async def test_abandoned_caller_is_recorded_with_their_wait(env: Env) -> None:
    rig = env.rig
    procs = await rig.start_phones({"561": ring_scenario()}, calls=1, bound=60)
    try:
        start = rig.mark()
        run = await rig.dial(env.numbers["lonely"], "+79160000501", [Pause(3000), Bye()])
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(procs)
    assert run.ok, run.run.describe()
    view = calls["+79160000501"]
    assert view.answered_by is None
    assert view.queue[0] == "joined" and view.queue[-1] == "abandoned"
    assert view.row.disposition is Disposition.abandoned
    assert view.row.wait_seconds is not None and 2.5 < view.row.wait_seconds < 10
    facts = [f for f in await _facts(env, "lonely") if f.call_id == view.call_id]
    kinds = [f.kind for f in facts]
    assert kinds[0] is FactKind.entered and kinds[-1] is FactKind.abandoned, kinds
    assert facts[-1].wait is not None and 2.5 < facts[-1].wait < 10


# --- IVR and rating -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digit", "ext", "how"),
    [("1", "581", "rfc4733"), ("2", "582", "rfc4733"), ("2", "582", "info")],
)
async def test_ivr_digit_routes(env: Env, digit: str, ext: str, how: str) -> None:
    """A key as RFC 4733 events in the media, or by SIP INFO (phones set that way)."""
    rig = env.rig
    procs = await rig.start_phones(_agents("581", "582"), calls=1, bound=60)
    try:
        start = rig.mark()
        caller = f"+7916000060{digit}" + ("9" if how == "info" else "")
        key = Digit(digit) if how == "rfc4733" else InfoDigit(digit)
        run = await rig.dial(env.numbers["ivr"], caller, [Pause(500), key, WaitBye()])
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(procs)
    assert run.ok, run.run.describe()
    assert calls[caller].answered_by == ext
    assert calls[caller].row.disposition is Disposition.answered


async def test_post_call_rating_lands(env: Env) -> None:
    """591 talks 1.5 s and hangs up; the caller hears the rating prompt, presses 4, hears
    the thanks and the PBX hangs up."""
    rig = env.rig
    procs = await rig.start_phones(
        {"591": agent_scenario("591", answer_ms=200, talk_ms=1500)}, calls=1, bound=60
    )
    try:
        start = rig.mark()
        caller = "+79160000701"
        run = await rig.dial(env.numbers["rate"], caller, [Pause(5000), Digit("4"), WaitBye()])
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(procs)
    assert run.ok, run.run.describe()
    view = calls[caller]
    assert view.answered_by == "591"
    assert view.rated == 4
    assert view.row.disposition is Disposition.answered
    assert view.row.rating == 4


async def test_the_agent_hears_the_queue_announcement_before_the_caller(env: Env) -> None:
    """``agent_announce``: 601 answers and hears the queue's prompt (its SDP points at this
    test's socket) — the prompt's own audio, at its length — and only then gets the caller:
    the journal's wait covers the prompt. The caller sends no audio, so without the
    announcement the socket would hear nothing at all."""
    rig = env.rig
    ear = Phone()  # what 601 hears
    procs = await rig.start_phones(
        {"601": agent_scenario("601", answer_ms=200, talk_ms=1500, media_port=ear.port)},
        calls=1,
        bound=60,
    )
    try:
        start = rig.mark()
        caller = "+79160000601"
        run = await rig.dial(env.numbers["announced"], caller, [WaitBye()])
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(procs)
        ear.close()
    assert run.ok, run.run.describe()
    view = calls[caller]
    assert view.answered_by == "601" and view.row.disposition is Disposition.answered
    language = (await rig.container.accounts.get_account(env.account_id)).language
    prompt = wav_to_pcm8k(prompt_path("n1", language).read_bytes())
    heard = b"".join(r.packet.payload for r in ear.received)
    frames = -(-len(prompt) // 320)  # 16-bit samples, 160 per 20 ms packet
    assert len(ear.received) == frames
    assert heard[: (frames - 1) * 160] == ulaw_encode(prompt)[: (frames - 1) * 160]
    seconds = len(prompt) / 16000
    assert view.row.wait_seconds is not None and view.row.wait_seconds >= 0.2 + seconds - 0.05


# --- queue callback -------------------------------------------------------------------------


async def test_queue_callback_keeps_the_place(env: Env) -> None:
    """571 talks to X for 4 s. Y joins, presses 5 and is hung up on after the confirmation;
    Z joins after that. When 571 is free, Y's callback comes first: 571 is rung, answers,
    then Y's number (a SIPp UAS on loopback standing in for the trunk) is rung and answers;
    Z is answered only after that."""
    rig = env.rig
    customer_port = free_port()

    async def customer(account_id: Any, call_id: str, phone: str) -> RingTarget | None:
        uri = f"sip:{phone}@127.0.0.1:{customer_port}"
        return RingTarget(uri, Flow("UDP", "127.0.0.1", customer_port))

    acd = rig.rt.acd
    acd.dial_callback = queue_callback_dialer(rig.rt.b2bua.originate, customer)
    x, y, z = "+79160000801", "+79160000802", "+79160000803"
    phones = await rig.start_phones(
        {"571": agent_scenario("571", answer_ms=200, talk_ms=4000)}, calls=3, bound=90
    )
    cust = await rig.start_customer(customer_port, bound=90)
    try:
        start = rig.mark()
        runs = await rig.dial_staggered(
            env.numbers["cb"],
            [(x, [WaitBye()]), (y, [Pause(1000), Digit("5"), WaitBye()]), (z, [WaitBye()])],
            gap=1.5,
            bound=60,
        )
        await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 30)
        for _ in range(100):  # the callback's origination ends after the inbound calls
            if not acd.accounts[env.account_id].sessions:
                break
            await asyncio.sleep(0.1)
        calls = await rig.calls_since(start)
        back = await rig.calls_since(start, direction=Direction.callback)
    finally:
        acd.dial_callback = None
        await rig.stop_phones([*phones, cust])
    assert all(r.ok for r in runs), [r.run.describe() for r in runs if not r.ok]
    assert calls[y].row.disposition is Disposition.callback
    assert calls[y].answered_by is None  # the inbound call itself reached nobody
    assert calls[y].queue == ["joined", "callback", "offered", "answered"]  # the callback's offer
    # The agent answered X, then Y's callback, then Z: Y kept the place ahead of Z.
    order = [c for c, ext in rig.answered_by(start) if ext == "571"]
    assert order[0] == x and order[-1] == z, order
    assert y in order and order.index(y) < order.index(z), order
    facts = await _facts(env, "cb")
    mine = [f for f in facts if f.call_id in (calls[y].call_id, calls[z].call_id)]
    kinds = [(f.call_id == calls[y].call_id, f.kind) for f in mine]
    assert (True, FactKind.callback_requested) in kinds
    answered = [is_y for is_y, k in kinds if k is FactKind.answered]
    assert answered == [True, False], kinds
    # The callback is journaled as one: agent first, then the customer, both talked.
    assert back[y].answered_by == "571"
    assert back[y].row.disposition is Disposition.answered


# --- overflow -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "actions"),
    [("exit_digit", [Pause(1000), Digit("0"), WaitBye()]), ("max_wait", [WaitBye()])],
)
async def test_overflow_runs_the_steps_after_the_queue(
    env: Env, how: str, actions: list[Any]
) -> None:
    """Nobody serves exitq (598 is on DND): the caller leaves it by the exit digit or after
    its max wait (4 s), and the queue step's overflow rings 599."""
    rig = env.rig
    acd = rig.rt.acd
    await acd.set_status(env.account_id, env.agent("598"), Status.dnd, None)
    procs = await rig.start_phones(_agents("598", "599"), calls=1, bound=60)
    try:
        start = rig.mark()
        caller = "+791600009" + ("01" if how == "exit_digit" else "02")
        run = await rig.dial(env.numbers["exitq"], caller, actions)
        calls = await rig.calls_since(start)
    finally:
        await rig.stop_phones(procs)
    assert run.ok, run.run.describe()
    view = calls[caller]
    assert view.answered_by == "599"
    assert view.queue == ["joined", "overflow"]
    facts = [f for f in await _facts(env, "exitq") if f.call_id == view.call_id]
    assert facts[-1].kind is FactKind.overflowed and facts[-1].reason is not None
    assert facts[-1].reason.value == how
    if how == "max_wait":
        assert facts[-1].wait is not None and 4 <= facts[-1].wait < 8
    else:
        assert facts[-1].wait is not None and facts[-1].wait < 4
