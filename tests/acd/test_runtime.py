"""AcdRuntime without calls: sessions driven the way calls.steps drives them, a fake clock.

Checks what the call sees (signals), what is stored (the recorder's batches) and what goes on
the bus, for offers, answers, wrap-up, no-answers, abandonment, priorities, supervisor
statuses and queue callbacks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from zvonar.acd.agents import Status
from zvonar.acd.definitions import QueueDef, QueueMember
from zvonar.acd.events import AgentStatusChanged, QueueCallerChanged
from zvonar.acd.facts import FactKind, QueueFact
from zvonar.acd.queue import Strategy
from zvonar.acd.runtime import MAX_CALLBACK_TRIES, AcdRuntime, CallbackOutcome
from zvonar.calls.events import Target, TargetKind
from zvonar.calls.plan import QueueCallback, QueueOffer, QueueOverflow, QueueSignal, RingTarget
from zvonar.core.bus import RecordingBus
from zvonar.core.errors import NotFound
from zvonar.sip.ua import Flow

ACCOUNT = uuid.uuid4()
STAFF = {"101": str(uuid.uuid4()), "102": str(uuid.uuid4()), "103": str(uuid.uuid4())}
EXT = {v: k for k, v in STAFF.items()}


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Rig:
    def __init__(self, **queue: Any) -> None:
        members = tuple(QueueMember(e) for e in queue.pop("members", ("101", "102")))
        self.defs = {"q": QueueDef("q", members=members, **queue)}
        self.clock = Clock()
        self.bus = RecordingBus()
        self.stored: list[object] = []
        self.registered = set(STAFF.values())
        self.dialled: list[tuple[str, tuple[str, ...], str]] = []
        self.callback_outcome = CallbackOutcome.talked
        self.rt = AcdRuntime(
            self.load, self.bus, record=self.record, dial_callback=self.dial, clock=self.clock
        )
        self.signals: dict[str, list[QueueSignal]] = {}
        self.sessions: dict[str, Any] = {}

    async def load(self, account_id: uuid.UUID) -> tuple[Mapping[str, QueueDef], dict[str, str]]:
        return self.defs, STAFF

    async def record(self, account_id: uuid.UUID, events: list[object]) -> int:
        self.stored.extend(events)
        return len(events)

    async def dial(
        self, account_id: uuid.UUID, call_id: str, targets: tuple[RingTarget, ...], t: float, n: str
    ) -> CallbackOutcome:
        self.dialled.append((call_id, tuple(x.label or "" for x in targets), n))
        return self.callback_outcome

    def targets(self, agent_id: str) -> tuple[RingTarget, ...]:
        if agent_id not in self.registered:
            return ()
        target = Target(TargetKind.employee, EXT[agent_id], uuid.UUID(agent_id))
        flow = Flow("UDP", "127.0.0.1", 5060)
        return (RingTarget(f"sip:{EXT[agent_id]}@127.0.0.1", flow, target, EXT[agent_id]),)

    async def join(self, call_id: str, *, tags: frozenset[str] = frozenset()) -> bool:
        opened = await self.rt.open(
            ACCOUNT,
            "q",
            call_id,
            caller_tags=tags,
            language="en",
            prompts_dir=None,
            targets=self.targets,
            caller=f"+7916{call_id[-1]}000000",
        )
        assert opened is not None
        session, music = opened
        assert music is not None  # the built-in hold music
        self.sessions[call_id] = session
        inbox = self.signals.setdefault(call_id, [])
        return await session.enter(inbox.append)

    def offers(self, call_id: str) -> list[QueueOffer]:
        return [s for s in self.signals.get(call_id, []) if isinstance(s, QueueOffer)]

    def rung(self, call_id: str) -> list[list[str]]:
        return [[t.label or "" for t in o.targets] for o in self.offers(call_id)]

    def answer(self, call_id: str) -> None:
        offer = self.offers(call_id)[-1]
        self.sessions[call_id].answered(offer.offer, offer.targets[0].target)

    async def facts(self) -> list[QueueFact]:
        await self.rt._flush()
        return [e for e in self.stored if isinstance(e, QueueFact)]

    def status(self, ext: str) -> Status:
        return self.rt.accounts[ACCOUNT].dispatcher.agents[STAFF[ext]].status


async def test_a_caller_is_offered_to_the_first_free_agent_and_answered() -> None:
    rig = Rig(strategy=Strategy.in_turn)
    assert await rig.join("c1")
    assert rig.rung("c1") == [["101"]]
    assert rig.offers("c1")[0].timeout == 15.0
    assert rig.status("101") is Status.ringing
    rig.clock.t += 4
    rig.answer("c1")
    assert rig.status("101") is Status.on_call
    facts = await rig.facts()
    assert [f.kind for f in facts] == [FactKind.entered, FactKind.answered]
    assert facts[1].wait == pytest.approx(4) and facts[1].agent_id == STAFF["101"]
    whats = [e.what for e in rig.bus.of_type(QueueCallerChanged)]
    assert whats == ["joined", "offered", "answered"]


async def test_wrap_up_keeps_the_agent_from_offers_until_it_elapses() -> None:
    rig = Rig(strategy=Strategy.in_turn, wrapup_seconds=5)
    await rig.join("c1")
    rig.answer("c1")
    rig.sessions["c1"].call_ended()
    assert rig.status("101") is Status.wrap_up
    await rig.join("c2")
    assert rig.rung("c2") == [["102"]]  # 101 is in wrap-up
    rig.answer("c2")
    await rig.join("c3")
    assert rig.rung("c3") == []  # both busy
    rig.clock.t += 5.1
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    assert rig.status("101") is not Status.wrap_up
    assert rig.rung("c3") == [["101"]]


async def test_an_offer_that_rings_out_goes_to_the_next_agent() -> None:
    rig = Rig(strategy=Strategy.in_turn)
    await rig.join("c1")
    rig.sessions["c1"].not_answered(rig.offers("c1")[0].offer)
    assert rig.rung("c1") == [["101"], ["102"]]


async def test_all_at_once_offers_every_free_agent() -> None:
    rig = Rig(strategy=Strategy.all_at_once, members=("101", "102", "103"))
    await rig.join("c1")
    assert sorted(rig.rung("c1")[0]) == ["101", "102", "103"]
    offer = rig.offers("c1")[0]
    rig.sessions["c1"].answered(offer.offer, offer.targets[1].target)
    statuses = {e: rig.status(e) for e in ("101", "102", "103")}
    picked = offer.targets[1].label or ""
    assert statuses.pop(picked) is Status.on_call
    assert set(statuses.values()) == {Status.online}  # the others are free again


async def test_a_vip_waits_ahead_of_earlier_callers() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",))
    await rig.join("c1")
    rig.answer("c1")
    await rig.join("c2")
    await rig.join("c3", tags=frozenset({"vip"}))
    rig.sessions["c1"].call_ended()  # wrap-up 10 s by default
    rig.clock.t += 11
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    assert rig.rung("c3") == [["101"]] and rig.rung("c2") == []


async def test_a_caller_who_hangs_up_is_abandoned_with_their_wait() -> None:
    rig = Rig(members=("101",))
    rig.registered.clear()  # nobody can be rung
    assert await rig.join("c1")
    assert rig.rung("c1") == []
    rig.clock.t += 7.5
    rig.sessions["c1"].left()
    rig.sessions["c1"].left()  # the call's teardown may say it twice
    facts = await rig.facts()
    assert [f.kind for f in facts] == [FactKind.entered, FactKind.abandoned]
    assert facts[1].wait == pytest.approx(7.5)


async def test_leaving_while_offered_frees_the_agent() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",))
    await rig.join("c1")
    assert rig.status("101") is Status.ringing
    rig.sessions["c1"].left()
    assert rig.status("101") is Status.online
    assert [f.kind for f in await rig.facts()][-1] is FactKind.abandoned


async def test_dnd_agents_are_not_offered_and_unknown_agents_are_not_found() -> None:
    rig = Rig(strategy=Strategy.in_turn)
    await rig.rt.set_status(ACCOUNT, STAFF["101"], Status.dnd, "lunch")
    await rig.join("c1")
    assert rig.rung("c1") == [["102"]]
    await rig.rt._flush()
    changes = rig.bus.of_type(AgentStatusChanged)
    assert any(c.new == "dnd" and c.reason == "lunch" for c in changes)
    with pytest.raises(NotFound):
        await rig.rt.set_status(ACCOUNT, str(uuid.uuid4()), Status.dnd, None)


async def test_max_wait_overflows_the_caller() -> None:
    rig = Rig(members=("101",), max_wait=30)
    rig.registered.clear()
    await rig.join("c1")
    rig.clock.t += 31
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    assert isinstance(rig.signals["c1"][-1], QueueOverflow)
    assert [f.kind for f in await rig.facts()][-1] is FactKind.overflowed


async def test_a_callback_keeps_the_place_and_dials_agent_then_customer() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",), callback_digit="5")
    await rig.join("c1")
    rig.answer("c1")
    await rig.join("c2")
    rig.sessions["c2"].digit("5")
    assert isinstance(rig.signals["c2"][-1], QueueCallback)
    rig.sessions["c2"].left()  # the caller hangs up after the confirmation: still queued
    await rig.join("c3")
    rig.sessions["c1"].call_ended()
    rig.clock.t += 11
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    for _ in range(10):
        await asyncio.sleep(0)
    assert rig.dialled == [("c2", ("101",), "+79162000000")]
    assert rig.rung("c3") == []  # 101 took the callback (then wrap-up)
    kinds = [(f.call_id, f.kind) for f in await rig.facts()]
    assert ("c2", FactKind.callback_requested) in kinds
    assert ("c2", FactKind.answered) in kinds and ("c3", FactKind.answered) not in kinds
    assert rig.status("101") is Status.wrap_up


async def _callback_waiting(rig: Rig) -> None:
    """101 talks to c1; c2 asks for a callback; c3 joins; 101 hangs up and wraps up."""
    await rig.join("c1")
    rig.answer("c1")
    await rig.join("c2")
    rig.sessions["c2"].digit("5")
    rig.sessions["c2"].left()
    await rig.join("c3")
    rig.sessions["c1"].call_ended()
    rig.clock.t += 11
    rig.rt._tick(rig.rt.accounts[ACCOUNT])
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_callback_the_customer_misses_is_retried_then_dropped() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",), callback_digit="5")
    rig.callback_outcome = CallbackOutcome.customer_missed
    await _callback_waiting(rig)
    assert [d[0] for d in rig.dialled] == ["c2"] * MAX_CALLBACK_TRIES
    # Not the agent's fault: 101 is not set away; c3, next in line, is offered to them.
    assert rig.rung("c3") == [["101"]]
    kinds = [(f.call_id, f.kind) for f in await rig.facts()]
    assert ("c2", FactKind.abandoned) in kinds and ("c2", FactKind.answered) not in kinds


async def test_a_callback_no_agent_answers_keeps_its_place() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101", "102"), callback_digit="5")
    rig.callback_outcome = CallbackOutcome.agent_missed
    rig.registered.discard(STAFF["102"])
    await _callback_waiting(rig)
    # 101 let it ring out (an ordinary no-answer) and is the only one: tried again until
    # the away rule (3 no-answers) takes them out; c3 never jumped ahead.
    assert {d[0] for d in rig.dialled} == {"c2"}
    assert rig.status("101") is Status.away
    assert rig.rung("c3") == []


async def test_a_callback_nobody_can_place_is_dropped() -> None:
    rig = Rig(strategy=Strategy.in_turn, members=("101",), callback_digit="5")
    rig.rt.dial_callback = None
    await _callback_waiting(rig)
    assert rig.rung("c3") == [["101"]]
    kinds = [(f.call_id, f.kind) for f in await rig.facts()]
    assert ("c2", FactKind.abandoned) in kinds


async def test_an_unknown_queue_opens_nothing() -> None:
    rig = Rig()
    opened = await rig.rt.open(
        ACCOUNT,
        "nope",
        "c1",
        caller_tags=frozenset(),
        language="en",
        prompts_dir=None,
        targets=rig.targets,
    )
    assert opened is None
